// The rows of live engines (gd_nodes): registration, heartbeat, removal, and the look-ups a
// restarted or pruning node makes.
#include "gen_durable/store/store.hpp"

namespace gen_durable::detail {

namespace {

constexpr const char* kNodeUpsertSql = R"SQL(
INSERT INTO {s}.gd_nodes (id, engine, host, pid, proc_start, queues, pid_ns, heartbeat_ms,
                          lease_ms)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, NULLIF($7, ''), $8::bigint, $9::bigint)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), queues = EXCLUDED.queues)SQL";

constexpr const char* kNodeHeartbeatSql =
    "UPDATE {s}.gd_nodes SET heartbeat_at = now() WHERE id = $1";

constexpr const char* kNodeDeleteSql = "DELETE FROM {s}.gd_nodes WHERE id = $1";

// A scan: one row per running engine. `silent`: the row lags kSilentBeats of the node's own
// heartbeat interval and its lease ttl ($2 and $3 for a node that did not record them).
std::string NodesOnHostSql() {
  return R"SQL(
SELECT id, host, pid, proc_start, COALESCE(pid_ns, ''),
       heartbeat_at < now() - GREATEST()SQL" +
         std::to_string(Store::kSilentBeats) +
         R"SQL( * COALESCE(heartbeat_ms, $2::bigint),
                                                COALESCE(lease_ms, $3::bigint))
                                      * interval '1 millisecond'
FROM {s}.gd_nodes WHERE host = $1)SQL";
}

constexpr const char* kNodesPruneSql = R"SQL(
DELETE FROM {s}.gd_nodes
WHERE heartbeat_at < now() - $1::bigint * interval '1 millisecond' RETURNING id)SQL";

}  // namespace

void Store::MakeNodeStatements() {
  node_upsert_ = Make("gd_node_upsert", kNodeUpsertSql);
  node_heartbeat_ = Make("gd_node_heartbeat", kNodeHeartbeatSql);
  node_delete_ = Make("gd_node_delete", kNodeDeleteSql);
  nodes_on_host_ = Make("gd_nodes_on_host", NodesOnHostSql());
  nodes_prune_ = Make("gd_nodes_prune", kNodesPruneSql);
}

void Store::NodeUpsert(pg::Connection& c, const std::string& id, const std::string& engine,
                       const std::string& host, int pid, const std::string& proc_start,
                       const std::string& pid_ns, Millis heartbeat_interval, Millis lease_ttl,
                       const std::string& queues_json) const {
  pg::Params p;
  p.Add(id).Add(engine).Add(host).Add(pid).Add(proc_start).Add(queues_json).Add(pid_ns);
  p.Add(static_cast<std::int64_t>(heartbeat_interval.count()))
      .Add(static_cast<std::int64_t>(lease_ttl.count()));
  c.Execute(node_upsert_, p);
}

void Store::NodeHeartbeat(pg::Connection& c, const std::string& id) const {
  pg::Params p;
  p.Add(id);
  c.Execute(node_heartbeat_, p);
}

void Store::NodeDelete(pg::Connection& c, const std::string& id) const {
  pg::Params p;
  p.Add(id);
  c.Execute(node_delete_, p);
}

std::vector<NodeRow> Store::NodesOnHost(pg::Connection& c, const std::string& host,
                                        Millis heartbeat_interval, Millis lease_ttl) const {
  pg::Params p;
  p.Add(host)
      .Add(static_cast<std::int64_t>(heartbeat_interval.count()))
      .Add(static_cast<std::int64_t>(lease_ttl.count()));
  auto r = c.Execute(nodes_on_host_, p);
  std::vector<NodeRow> out;
  for (int i = 0; i < r.rows(); ++i) {
    // pid_ns and silent are unnamed expressions: read in column order
    pg::Row row = r.row(i);
    NodeRow node;
    node.id = row.Next<std::string>();
    node.host = row.Next<std::string>();
    node.pid = row.Next<int>();
    node.proc_start = row.Next<std::string>();
    node.pid_ns = row.Next<std::string>();
    node.silent = row.Next<bool>();
    out.push_back(std::move(node));
  }
  return out;
}

std::vector<std::string> Store::NodesPrune(pg::Connection& c, Millis age) const {
  pg::Params p;
  p.Add(static_cast<std::int64_t>(age.count()));
  auto r = c.Execute(nodes_prune_, p);
  std::vector<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.row(i).Get<std::string>("id"));
  return out;
}

}  // namespace gen_durable::detail
