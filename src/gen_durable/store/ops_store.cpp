// The SQL of operating a cluster: queue state, cancel / retry / delete, info, history, control
// messages. Each statement is named.
#include "gen_durable/store/ops_store.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "gen_durable/schema/migrations.hpp"
#include "gen_durable/store/store.hpp"

namespace gen_durable::detail {

namespace {

// The filter of the bulk statements, on gd_instances i: $1 ids, $2 status, $3 queue, $4 fsm,
// $5 updated longer than this many ms ago. An unset parameter matches everything.
constexpr const char* kFilter = R"SQL(
  ($1::bigint[] IS NULL OR i.id = ANY ($1::bigint[])) AND ($2::text IS NULL OR i.status = $2)
  AND ($3::text IS NULL OR i.queue = $3) AND ($4::text IS NULL OR i.fsm = $4)
  AND ($5::bigint IS NULL OR i.updated_at < now() - $5::bigint * interval '1 millisecond'))SQL";

// A child still counted by its parent's join barrier: retrying or deleting it would count it
// twice or never.
constexpr const char* kJoinedChild = R"SQL(
  EXISTS (SELECT 1 FROM {s}.gd_instances p
          WHERE p.id = i.parent_id AND p.status = 'awaiting_children'
            AND p.join_seq = i.parent_join))SQL";

std::string Sql(std::initializer_list<const char*> parts) {
  std::string out;
  for (const char* p : parts) out += p;
  return out;
}

std::map<std::string, int> QueuesOf(std::string_view json_text) {
  std::map<std::string, int> out;
  auto j = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return out;
  for (const auto& [k, v] : j.items()) {
    if (v.is_number_integer()) out[k] = v.get<int>();
  }
  return out;
}

}  // namespace

OpsStore::OpsStore(std::string schema) : schema_(std::move(schema)) {
  // The control channel carries no payload (docs/security.md, "Control plane"): anyone who
  // can connect can notify it, so a notification only wakes the engines, which read the tables
  // (ControlScales, PausedQueues, CancelRequested) for what a privileged role wrote.

  // Served by the primary key of gd_queues. The wake-up reaches every engine's listener at
  // commit; a resume also announces the queue's work on the work channel.
  set_paused_ = Make("gd_queue_set_paused", R"SQL(
WITH up AS (
  INSERT INTO {s}.gd_queues (name, paused) VALUES ($1, $2::boolean)
  ON CONFLICT (name) DO UPDATE SET paused = EXCLUDED.paused, updated_at = now()
  RETURNING name)
SELECT pg_notify('{k}', ''), CASE WHEN NOT $2::boolean THEN pg_notify('{c}', $1::text) END
FROM up)SQL");

  // The cluster-wide limit of queue $1 ($2; NULL: none), returning the value it replaced (NULL:
  // none) and whether a row was written (one row). Clearing the limit of a queue without a row
  // writes nothing. Served by the primary key of gd_queues. The work channel wakes the queue's idle
  // pickers, so a raised limit is used at once; a lowered one holds from the next claim.
  set_global_limit_ = Make("gd_queue_set_global_limit", R"SQL(
WITH old AS (SELECT global_limit FROM {s}.gd_queues WHERE name = $1),
up AS (
  INSERT INTO {s}.gd_queues (name, global_limit)
  SELECT $1, $2::integer WHERE $2::integer IS NOT NULL OR EXISTS (SELECT 1 FROM old)
  ON CONFLICT (name) DO UPDATE SET global_limit = EXCLUDED.global_limit, updated_at = now()
  RETURNING name)
SELECT (SELECT global_limit FROM old) AS previous,
       (SELECT count(*) FROM (SELECT pg_notify('{c}', name) FROM up) n) AS written)SQL");

  // The standing scale request of queue $1 for node $3 ('' / NULL: every node), replacing the
  // one before it (primary key of gd_control); a request for every node also supersedes the
  // per-node ones of the queue (a range of the same key).
  request_scale_ = Make("gd_control_request_scale", R"SQL(
WITH gone AS (
  DELETE FROM {s}.gd_control WHERE queue = $1 AND COALESCE($3::text, '') = '' AND node <> ''),
up AS (
  INSERT INTO {s}.gd_control (queue, node, concurrency, seq)
  VALUES ($1, COALESCE($3::text, ''), $2::integer, nextval('{s}.gd_control_seq'))
  ON CONFLICT (queue, node) DO UPDATE SET
    concurrency = EXCLUDED.concurrency, seq = EXCLUDED.seq, requested_at = now(), seen = '{}'
  RETURNING 1)
SELECT pg_notify('{k}', '') FROM up)SQL");

  // The requests node $1 (engine name $2) may apply: a scan of gd_control, which holds one row
  // per queue and target node. Every column as text: the engine decodes and range-checks them
  // (DecodeScaleRequest).
  control_scales_ = Make("gd_control_scales", R"SQL(
SELECT queue, node, concurrency::text, seq::text, seen ->> $2
FROM {s}.gd_control WHERE node IN ('', $1))SQL");

  // Engine $4 applied request ($1, $2) seq $3 under declared configuration $5 (primary key).
  control_seen_ = Make("gd_control_seen", R"SQL(
UPDATE {s}.gd_control SET seen = seen || jsonb_build_object($4::text, $5::text)
WHERE queue = $1 AND node = $2 AND seq = $3)SQL");

  // Requests for nodes that are gone (a node id is new at every start): a scan of gd_control,
  // each row probing the primary key of gd_nodes.
  control_prune_ = Make("gd_control_prune", R"SQL(
DELETE FROM {s}.gd_control c
WHERE c.node <> '' AND NOT EXISTS (SELECT 1 FROM {s}.gd_nodes n WHERE n.id = c.node))SQL");

  // Served by the primary key of gd_queues (a handful of rows).
  paused_queues_ = Make("gd_queue_paused", "SELECT name FROM {s}.gd_queues WHERE paused");

  // Info reads: whole-table aggregates, for operators (not the hot path).
  queue_counts_ =
      Make("gd_queue_counts", "SELECT queue, status, count(*) FROM {s}.gd_instances GROUP BY 1, 2");
  // Served by gd_instances_claim (runnable rows only).
  queue_ready_ = Make("gd_queue_oldest_ready", R"SQL(
SELECT queue, extract(epoch FROM now() - min(eligible_at)) * 1000
FROM {s}.gd_instances WHERE status = 'runnable' AND eligible_at <= now() GROUP BY queue)SQL");
  // Served by gd_instances_terminal (a range of the last minute's completions).
  queue_recent_ = Make("gd_queue_recent", R"SQL(
SELECT queue, count(*) FROM {s}.gd_instances
WHERE status IN ('done', 'failed', 'cancelled') AND completed_at > now() - interval '1 minute'
GROUP BY queue)SQL");
  queue_state_ = Make("gd_queue_state", "SELECT name, paused, global_limit FROM {s}.gd_queues");
  // Executing rows per node: served by gd_instances_executing (executing rows only).
  nodes_ = Make("gd_nodes_info", R"SQL(
SELECT n.id, n.engine, n.host, n.pid, n.queues::text, n.started_at, n.heartbeat_at,
       (SELECT count(*) FROM {s}.gd_instances i
        WHERE i.status = 'executing' AND i.locked_by = n.id)
FROM {s}.gd_nodes n ORDER BY n.started_at, n.id)SQL");

  // Backlog of an autoscaled queue: due rows, runnable (gd_instances_claim) or scheduled and
  // not yet promoted (gd_instances_scheduled), counted up to $2; none while paused.
  ready_count_ = Make("gd_queue_ready_count", R"SQL(
SELECT count(*) FROM (
  (SELECT 1 FROM {s}.gd_instances
   WHERE status = 'runnable' AND queue = $1 AND eligible_at <= now() LIMIT $2)
  UNION ALL
  (SELECT 1 FROM {s}.gd_instances
   WHERE status = 'scheduled' AND queue = $1 AND eligible_at <= now() LIMIT $2)) x
WHERE NOT EXISTS (SELECT 1 FROM {s}.gd_queues q WHERE q.name = $1 AND q.paused))SQL");

  // Cancels the matching live instances ($6: with their descendants, via gd_instances_parent;
  // Cancel passes false and locks a cascade's tree itself first, see gd_cancel_roots),
  // locked in id order. Queued and parked ones end now (their inbox is cleared); running ones get
  // cancel_requested, which every transition out of their claim honours, and the engines are
  // woken on the control channel to look for it (CancelRequested). $7 is the reason.
  cancel_ = Make("gd_cancel", Sql({R"SQL(
WITH RECURSIVE tree AS (
  SELECT i.id FROM {s}.gd_instances i
  WHERE i.status NOT IN ('done', 'failed', 'cancelled') AND )SQL",
                                   kFilter, R"SQL(
  UNION
  SELECT c.id FROM {s}.gd_instances c JOIN tree t ON c.parent_id = t.id
  WHERE $6::boolean),
live AS (
  SELECT i.id, i.status FROM {s}.gd_instances i
  WHERE i.id IN (SELECT id FROM tree) AND i.status NOT IN ('done', 'failed', 'cancelled')
  ORDER BY i.id FOR UPDATE),
ended AS (
  UPDATE {s}.gd_instances i SET
    status = 'cancelled', completed_at = now(), last_error = $7, locked_by = NULL,
    lease_expires_at = NULL, park_deadline = NULL, updated_at = now()
  FROM live WHERE i.id = live.id AND live.status <> 'executing'
  RETURNING i.id, i.step, i.attempt),
asked AS (
  UPDATE {s}.gd_instances i SET cancel_requested = $7, updated_at = now()
  FROM live WHERE i.id = live.id AND live.status = 'executing'
  RETURNING i.id, i.step, i.attempt),
-- their inbox is cleared as by a terminal outcome: signals without a dedup key go, keyed ones
-- are kept, marked consumed, for gd_signal to recognise a repeat (served by gd_signals_inbox)
inbox AS (
  DELETE FROM {s}.gd_signals s USING ended
  WHERE s.instance_id = ended.id AND s.consumed_at IS NULL AND s.dedup_key IS NULL),
kept AS (
  UPDATE {s}.gd_signals s SET consumed_at = now() FROM ended
  WHERE s.instance_id = ended.id AND s.consumed_at IS NULL AND s.dedup_key IS NOT NULL),
hist AS (
  INSERT INTO {s}.gd_history (instance_id, event, step, status, attempt, error, node)
  SELECT id, 'cancel', step, 'cancelled', attempt, $7, 'client' FROM ended
  UNION ALL
  SELECT id, 'cancel', step, 'executing', attempt, $7, 'client' FROM asked),
told AS (
  SELECT pg_notify('{k}', '') FROM (SELECT 1 FROM asked LIMIT 1) any_asked)
SELECT true, id FROM ended
UNION ALL
SELECT false, id FROM asked WHERE (SELECT count(*) FROM told) >= 0)SQL"})
                                  .c_str());

  // A cascade first locks its tree level by level, in one transaction, before gd_cancel runs
  // over the ids found. The commit that parks an instance on a new barrier and inserts its
  // children holds that instance's row lock until it commits: waiting for the lock here means
  // the next statement, on a newer snapshot, sees those children; and a commit not yet begun
  // finds the instance marked or ended and spawns none. One statement would miss them (its
  // snapshot predates the lock). Level one: the matching live instances, in id order.
  cancel_roots_ = Make("gd_cancel_roots", Sql({R"SQL(
SELECT i.id FROM {s}.gd_instances i
WHERE i.status NOT IN ('done', 'failed', 'cancelled') AND )SQL",
                                               kFilter, R"SQL(
ORDER BY i.id FOR UPDATE OF i)SQL"})
                                              .c_str());
  // Each further level: the children of the level above, in id order (gd_instances_parent).
  cancel_children_ = Make("gd_cancel_children", R"SQL(
SELECT c.id FROM {s}.gd_instances c WHERE c.parent_id = ANY ($1::bigint[])
ORDER BY c.id FOR UPDATE OF c)SQL");

  // Served by the primary key with the owner guard.
  cancel_requested_ = Make("gd_cancel_requested", R"SQL(
SELECT id FROM {s}.gd_instances
WHERE id = ANY ($2::bigint[]) AND status = 'executing' AND locked_by = $1
  AND cancel_requested IS NOT NULL)SQL");

  // Failed / cancelled instances back to runnable at the step where they ended. Rows busy
  // under another transaction are skipped.
  retry_ = Make("gd_retry", Sql({R"SQL(
WITH cand AS (
  SELECT i.id FROM {s}.gd_instances i
  WHERE i.status IN ('failed', 'cancelled') AND NOT )SQL",
                                 kJoinedChild, R"SQL(
    -- its unique key, when a runnable row holds it, must be free (gd_instances_unique)
    AND NOT (i.unique_key IS NOT NULL
             AND 'runnable' = ANY (COALESCE(i.unique_scope, '{scheduled,runnable,executing,'
                                            'awaiting_signal,awaiting_children}'))
             AND EXISTS (SELECT 1 FROM {s}.gd_instances o
                         WHERE o.unique_hold = i.unique_key AND o.id <> i.id))
    AND )SQL",
                                 kFilter, R"SQL(
  ORDER BY i.id LIMIT $6 FOR UPDATE OF i SKIP LOCKED),
upd AS (
  UPDATE {s}.gd_instances i SET
    status = 'runnable', attempt = 0, result = NULL, completed_at = NULL,
    cancel_requested = NULL, locked_by = NULL, lease_expires_at = NULL, park_deadline = NULL,
    eligible_at = now(), updated_at = now()
  FROM cand WHERE i.id = cand.id
  RETURNING i.id, i.queue, i.step),
hist AS (
  INSERT INTO {s}.gd_history (instance_id, event, step, status, attempt, node)
  SELECT id, 'retry', step, 'runnable', 0, 'client' FROM upd),
n AS (SELECT pg_notify('{c}', queue) FROM upd GROUP BY queue)
SELECT id FROM upd WHERE (SELECT count(*) FROM n) >= 0 ORDER BY id)SQL"})
                                .c_str());

  // Deletes up to $6 matching instances that are not executing, with their history (their
  // signals go by the foreign key's cascade). A child of its live parent's latest barrier
  // stays, finished or not: the join counts it and the parent's later steps read its result
  // (as gd_gc_sweep spares it). Its parent is probed by primary key.
  delete_ = Make("gd_delete", Sql({R"SQL(
WITH d AS (
  SELECT i.id FROM {s}.gd_instances i
  WHERE i.status <> 'executing'
    AND NOT EXISTS (SELECT 1 FROM {s}.gd_instances p
                    WHERE p.id = i.parent_id AND p.join_seq = i.parent_join
                      AND p.status NOT IN ('done', 'failed', 'cancelled'))
    AND )SQL",
                                   kFilter, R"SQL(
  ORDER BY i.id LIMIT $6 FOR UPDATE OF i SKIP LOCKED),
h AS (DELETE FROM {s}.gd_history h USING d WHERE h.instance_id = d.id),
del AS (DELETE FROM {s}.gd_instances i USING d WHERE i.id = d.id RETURNING 1)
SELECT count(*) FROM del)SQL"})
                                  .c_str());

  // Served by gd_history_instance.
  history_ = Make("gd_history_of", R"SQL(
SELECT id, step, event, status, attempt, duration_ms, error, node, at FROM (
  SELECT * FROM {s}.gd_history WHERE instance_id = $1 ORDER BY id DESC LIMIT $2) h
ORDER BY id)SQL");

  // Served by gd_history_at.
  history_sweep_ = Make("gd_history_sweep", R"SQL(
DELETE FROM {s}.gd_history WHERE id IN (
  SELECT id FROM {s}.gd_history
  WHERE at < now() - $1::bigint * interval '1 millisecond' ORDER BY at LIMIT $2))SQL");
}

pg::Statement OpsStore::Make(const char* name, const char* sql) const {
  return pg::Statement{name, WithSchema(sql, schema_)};
}

pg::Params OpsStore::FilterParams(const InstanceFilter& f) {
  pg::Params p;
  if (f.ids.empty()) {
    p.AddNull();
  } else {
    p.Add(IdArray(f.ids));
  }
  p.Add(f.status).Add(f.queue).Add(f.fsm);
  if (f.older_than) {
    p.Add(static_cast<std::int64_t>(f.older_than->count()));
  } else {
    p.AddNull();
  }
  return p;
}

void OpsStore::SetPaused(pg::Connection& c, const std::string& queue, bool paused) const {
  c.Execute(set_paused_, pg::Params().Add(queue).Add(paused));
}

std::optional<int> OpsStore::SetGlobalLimit(pg::Connection& c, const std::string& queue,
                                            std::optional<int> limit) const {
  auto r = c.Execute(set_global_limit_, pg::Params().Add(queue).Add(limit));
  return r.row(0).Get<std::optional<int>>("previous");
}

void OpsStore::RequestScale(pg::Connection& c, const std::string& queue, int concurrency,
                            const std::optional<std::string>& node) const {
  c.Execute(request_scale_, pg::Params().Add(queue).Add(concurrency).Add(node));
}

std::vector<ControlRow> OpsStore::ControlScales(pg::Connection& c, const std::string& node,
                                                const std::string& engine) const {
  auto r = c.Execute(control_scales_, pg::Params().Add(node).Add(engine));
  std::vector<ControlRow> out;
  for (int i = 0; i < r.rows(); ++i) {
    pg::Row in = r.row(i);  // in column order: `seen` is an unnamed expression
    ControlRow row;
    row.queue = in.Next<std::optional<std::string>>();
    row.node = in.Next<std::optional<std::string>>();
    row.concurrency = in.Next<std::optional<std::string>>();
    row.seq = in.Next<std::optional<std::string>>();
    row.seen = in.Next<std::optional<std::string>>();
    out.push_back(std::move(row));
  }
  return out;
}

void OpsStore::ControlSeen(pg::Connection& c, const ScaleRequest& request,
                           const std::string& engine, const std::string& declared) const {
  c.Execute(
      control_seen_,
      pg::Params().Add(request.queue).Add(request.node).Add(request.seq).Add(engine).Add(declared));
}

std::int64_t OpsStore::ControlPrune(pg::Connection& c) const {
  return c.Execute(control_prune_).affected();
}

std::set<std::string> OpsStore::PausedQueues(pg::Connection& c) const {
  auto r = c.Execute(paused_queues_);
  std::set<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.insert(r.String(i, 0));
  return out;
}

std::vector<NodeInfo> OpsStore::Nodes(pg::Connection& c) const {
  auto r = c.Execute(nodes_);
  std::vector<NodeInfo> out;
  for (int i = 0; i < r.rows(); ++i) {
    const pg::Row row = r.row(i);
    NodeInfo n;
    n.id = row.Get<std::string>("id");
    n.engine = row.Get<std::string>("engine");
    n.host = row.Get<std::string>("host");
    n.pid = row.Get<int>("pid");
    n.queues = QueuesOf(row.Get<std::string_view>("queues"));
    n.started_at = row.Get<std::string>("started_at");
    n.heartbeat_at = row.Get<std::string>("heartbeat_at");
    n.running = row.Get<std::int64_t>("count");
    out.push_back(std::move(n));
  }
  return out;
}

std::vector<QueueInfo> OpsStore::Queues(pg::Connection& c) const {
  std::map<std::string, QueueInfo> by_name;
  auto at = [&](const std::string& name) -> QueueInfo& {
    auto& q = by_name[name];
    q.name = name;
    return q;
  };
  auto counts = c.Execute(queue_counts_);
  for (int i = 0; i < counts.rows(); ++i) {
    const pg::Row row = counts.row(i);
    at(row.Get<std::string>("queue")).counts[row.Get<std::string>("status")] =
        row.Get<std::int64_t>("count");
  }
  auto ready = c.Execute(queue_ready_);
  for (int i = 0; i < ready.rows(); ++i) {
    pg::Row row = ready.row(i);  // in column order: the age is an unnamed expression
    const auto queue = row.Next<std::string>();
    at(queue).oldest_ready_ms = row.Next<double>();
  }
  auto recent = c.Execute(queue_recent_);
  for (int i = 0; i < recent.rows(); ++i) {
    const pg::Row row = recent.row(i);
    at(row.Get<std::string>("queue")).completed_last_minute = row.Get<std::int64_t>("count");
  }
  auto state = c.Execute(queue_state_);
  for (int i = 0; i < state.rows(); ++i) {
    const pg::Row row = state.row(i);
    QueueInfo& q = at(row.Get<std::string>("name"));
    q.paused = row.Get<bool>("paused");
    q.global_limit = row.Get<std::optional<int>>("global_limit");
  }
  for (const auto& node : Nodes(c)) {
    for (const auto& [q, n] : node.queues) at(q).concurrency[node.id] = n;
  }
  std::vector<QueueInfo> out;
  out.reserve(by_name.size());
  for (auto& [_, q] : by_name) out.push_back(std::move(q));
  return out;
}

std::int64_t OpsStore::ReadyCount(pg::Connection& c, const std::string& queue, int cap) const {
  return c.Execute(ready_count_, pg::Params().Add(queue).Add(cap)).Int64(0, 0);
}

CancelReport OpsStore::Cancel(pg::Connection& c, const InstanceFilter& filter,
                              const CancelOptions& options) const {
  if (!options.cascade) {
    auto p = FilterParams(filter);
    p.Add(false).Add(options.reason);
    return Reported(c.Execute(cancel_, p));
  }
  // See gd_cancel_roots: lock the tree level by level, then cancel exactly what was locked.
  c.Exec("BEGIN");
  try {
    std::vector<std::int64_t> tree;
    auto level = c.Execute(cancel_roots_, FilterParams(filter));
    while (level.rows() > 0) {
      std::vector<std::int64_t> ids;
      ids.reserve(level.rows());
      for (int i = 0; i < level.rows(); ++i) ids.push_back(level.Int64(i, 0));
      tree.insert(tree.end(), ids.begin(), ids.end());
      level = c.Execute(cancel_children_, pg::Params().Add(IdArray(ids)));
    }
    CancelReport report;
    if (!tree.empty()) {
      InstanceFilter locked;
      locked.ids = std::move(tree);
      auto p = FilterParams(locked);
      p.Add(false).Add(options.reason);
      report = Reported(c.Execute(cancel_, p));
    }
    c.Exec("COMMIT");
    return report;
  } catch (...) {
    if (!c.broken()) {
      try {
        c.Exec("ROLLBACK");
      } catch (const std::exception&) {
        // the connection is gone: the server ends the transaction itself
      }
    }
    throw;
  }
}

CancelReport OpsStore::Reported(const pg::Result& r) {
  CancelReport report;
  for (int i = 0; i < r.rows(); ++i) {
    pg::Row row = r.row(i);  // in column order: (cancelled now, id); the flag is unnamed
    const bool cancelled = row.Next<bool>();
    (cancelled ? report.cancelled : report.requested).push_back(row.Next<std::int64_t>());
  }
  std::sort(report.cancelled.begin(), report.cancelled.end());
  std::sort(report.requested.begin(), report.requested.end());
  return report;
}

std::vector<std::int64_t> OpsStore::CancelRequested(pg::Connection& c, const std::string& node,
                                                    const std::vector<std::int64_t>& ids) const {
  auto r = c.Execute(cancel_requested_, pg::Params().Add(node).Add(IdArray(ids)));
  std::vector<std::int64_t> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.Int64(i, 0));
  return out;
}

std::vector<std::int64_t> OpsStore::Retry(pg::Connection& c, const InstanceFilter& filter,
                                          std::optional<int> limit) const {
  auto p = FilterParams(filter);
  p.Add(limit);
  auto r = c.Execute(retry_, p);
  std::vector<std::int64_t> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.Int64(i, 0));
  return out;
}

std::int64_t OpsStore::Delete(pg::Connection& c, const InstanceFilter& filter, int batch) const {
  auto p = FilterParams(filter);
  p.Add(batch);
  return c.Execute(delete_, p).Int64(0, 0);
}

std::vector<HistoryEntry> OpsStore::History(pg::Connection& c, std::int64_t id, int limit) const {
  auto r = c.Execute(history_, pg::Params().Add(id).Add(limit));
  std::vector<HistoryEntry> out;
  for (int i = 0; i < r.rows(); ++i) {
    const pg::Row row = r.row(i);
    HistoryEntry h;
    h.id = row.Get<std::int64_t>("id");
    h.step = row.Get<std::string>("step");
    h.event = row.Get<std::string>("event");
    h.status = row.Get<std::string>("status");
    h.attempt = row.Get<int>("attempt");
    if (auto duration = row.Get<std::optional<double>>("duration_ms")) h.duration_ms = *duration;
    h.error = row.Get<std::optional<std::string>>("error");
    h.node = row.Get<std::string>("node");
    h.at = row.Get<std::string>("at");
    out.push_back(std::move(h));
  }
  return out;
}

std::int64_t OpsStore::HistorySweep(pg::Connection& c, Millis retention, int limit) const {
  return c
      .Execute(history_sweep_,
               pg::Params().Add(static_cast<std::int64_t>(retention.count())).Add(limit))
      .affected();
}

}  // namespace gen_durable::detail
