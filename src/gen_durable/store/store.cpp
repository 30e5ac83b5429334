// The SQL layer: every statement of the engine, named, with the index that serves it.
#include "gen_durable/store/store.hpp"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "gen_durable/schema/migrations.hpp"

namespace gen_durable::detail {

namespace {

// Due scheduled rows promoted per statement at most.
constexpr int kPromoteBatch = 10'000;

// Columns returned by the claim, in this order.
constexpr const char* kClaimReturning =
    "i.id, i.fsm, i.fsm_version, i.step, i.state, i.attempt, COALESCE(i.max_attempts, 0), "
    "i.priority, i.lease_seq, i.queue";

// Columns of InstanceInfo, in the order ReadInfo expects.
constexpr const char* kInfoColumns =
    "id, fsm, fsm_version, status, step, state, attempt, max_attempts, queue, priority, "
    "partition_key, unique_key, result, last_error, parent_id, locked_by, inserted_at, "
    "updated_at, eligible_at, lease_expires_at, completed_at";

// The effect of losing a lease, shared by the reaper and the reclaim of a dead node: the step
// runs again (attempt + 1) unless the attempt limit is exhausted.
constexpr const char* kReleaseLostLease = R"SQL(
  status = CASE WHEN COALESCE(i.max_attempts, 0) > 0 AND i.attempt + 1 >= i.max_attempts
                THEN 'failed' ELSE 'runnable' END,
  attempt = i.attempt + 1,
  last_error = 'lease lost: ' || COALESCE(i.locked_by, '?') || ' stopped heartbeating during step '
               || i.step || CASE WHEN COALESCE(i.max_attempts, 0) > 0
                                  AND i.attempt + 1 >= i.max_attempts
                             THEN ' (max attempts reached)' ELSE '' END,
  completed_at = CASE WHEN COALESCE(i.max_attempts, 0) > 0 AND i.attempt + 1 >= i.max_attempts
                      THEN now() END,
  locked_by = NULL, lease_expires_at = NULL, eligible_at = now(), updated_at = now()
)SQL";

// Parses stored JSON. jsonb accepts values nlohmann cannot represent (e.g. 1e1000); such a
// value must not take a node down, so the failure is returned instead of thrown.
std::optional<Json> ParseStored(std::string_view text, std::string* error) {
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {
    if (error) *error = e.what();
    return std::nullopt;
  }
}

// For reads: an unrepresentable value is shown as its stored text.
Json ParseForDisplay(std::string_view text) {
  auto j = ParseStored(text, nullptr);
  return j ? std::move(*j) : Json(std::string(text));
}

InstanceInfo ReadInfo(const pg::Result& r, int row) {
  InstanceInfo info;
  info.id = r.Int64(row, 0);
  info.fsm = r.String(row, 1);
  info.fsm_version = r.Int(row, 2);
  info.status = r.String(row, 3);
  info.step = r.String(row, 4);
  info.state = ParseForDisplay(r.Text(row, 5));
  info.attempt = r.Int(row, 6);
  if (!r.IsNull(row, 7)) info.max_attempts = r.Int(row, 7);
  info.queue = r.String(row, 8);
  info.priority = r.Int(row, 9);
  info.partition_key = r.OptString(row, 10);
  info.unique_key = r.OptString(row, 11);
  info.result = r.IsNull(row, 12) ? Json(nullptr) : ParseForDisplay(r.Text(row, 12));
  info.last_error = r.OptString(row, 13);
  info.parent_id = r.OptInt64(row, 14);
  info.locked_by = r.OptString(row, 15);
  info.inserted_at = r.String(row, 16);
  info.updated_at = r.String(row, 17);
  info.eligible_at = r.String(row, 18);
  info.lease_expires_at = r.OptString(row, 19);
  info.completed_at = r.OptString(row, 20);
  return info;
}

Json NewInstanceJson(const NewInstance& n) {
  Json j = {{"fsm", n.fsm},     {"fsm_version", n.fsm_version},
            {"queue", n.queue}, {"step", n.step},
            {"priority", n.priority}};
  j["state"] = Json::parse(n.state);
  j["eligible_at"] = n.eligible_at ? Json(*n.eligible_at) : Json(nullptr);
  j["delay_ms"] = n.delay_ms ? Json(*n.delay_ms) : Json(nullptr);
  j["max_attempts"] = n.max_attempts ? Json(*n.max_attempts) : Json(nullptr);
  return j;
}

pg::Params InsertParams(const NewInstance& n) {
  pg::Params p;
  p.Add(n.fsm).Add(n.fsm_version).Add(n.queue).Add(n.step).Add(n.state).Add(n.priority);
  p.Add(n.eligible_at).Add(n.delay_ms).Add(n.max_attempts);
  return p;
}

std::string IdArray(const std::vector<std::int64_t>& ids) {
  std::string s = "{";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(ids[i]);
  }
  s += '}';
  return s;
}

// A Postgres text[] literal with every element quoted.
std::string TextArray(const std::vector<std::string>& items) {
  std::string s = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) s += ',';
    s += '"';
    for (char ch : items[i]) {
      if (ch == '"' || ch == '\\') s += '\\';
      s += ch;
    }
    s += '"';
  }
  s += '}';
  return s;
}

std::vector<ReapedRow> ReadReaped(const pg::Result& r) {
  std::vector<ReapedRow> out;
  out.reserve(r.rows());
  for (int i = 0; i < r.rows(); ++i) out.push_back({r.Int64(i, 0), r.String(i, 1)});
  return out;
}

}  // namespace

Store::Store(std::string schema) : schema_(std::move(schema)) {
  // NOTIFY channel names are identifiers (at most 63 bytes): a long schema name is hashed.
  channel_ = "gen_durable." + schema_;
  if (channel_.size() > 63) {
    channel_ = fmt::format("gen_durable.{:016x}", std::hash<std::string>{}(schema_));
  }

  // Single insert; announces ready work on the channel (delivered at commit, so a caller's
  // rolled-back transaction announces nothing).
  insert_one_ = Make("gd_insert_one", R"SQL(
WITH ins AS (
  INSERT INTO {s}.gd_instances
    (fsm, fsm_version, queue, step, state, priority, eligible_at, max_attempts, status)
  SELECT $1, $2, $3, $4, $5::jsonb, $6, t.at, $9,
         CASE WHEN t.at > now() THEN 'scheduled' ELSE 'runnable' END
  FROM (SELECT COALESCE($7::timestamptz, now())
               + COALESCE($8::bigint, 0) * interval '1 millisecond' AS at) t
  RETURNING id, queue, eligible_at),
n AS (SELECT pg_notify($10, queue) FROM ins WHERE eligible_at <= now())
SELECT ins.id FROM ins WHERE (SELECT count(*) FROM n) >= 0)SQL");

  // Batch insert from one JSON array (one statement, one round trip, one notify per queue).
  insert_batch_ = Make("gd_insert_batch", R"SQL(
WITH src AS (
  SELECT * FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (
    fsm text, fsm_version integer, queue text, step text, state jsonb, priority integer,
    eligible_at timestamptz, delay_ms bigint, max_attempts integer)) WITH ORDINALITY
    AS r(fsm, fsm_version, queue, step, state, priority, eligible_at, delay_ms, max_attempts,
         ord)),
ins AS (
  INSERT INTO {s}.gd_instances
    (fsm, fsm_version, queue, step, state, priority, eligible_at, max_attempts, status)
  SELECT fsm, fsm_version, queue, step, state, priority, at, max_attempts,
         CASE WHEN at > now() THEN 'scheduled' ELSE 'runnable' END
  FROM (SELECT src.*, COALESCE(eligible_at, now()) + COALESCE(delay_ms, 0)
                      * interval '1 millisecond' AS at FROM src) s
  ORDER BY ord
  RETURNING id, queue, eligible_at),
n AS (SELECT pg_notify($2, queue) FROM ins WHERE eligible_at <= now() GROUP BY queue)
SELECT ins.id FROM ins WHERE (SELECT count(*) FROM n) >= 0 ORDER BY ins.id)SQL");

  // Claim up to $2 ready rows of queue $1 for node $3. Served by gd_instances_claim: an
  // ordered range scan of the queue's runnable rows; SKIP LOCKED makes concurrent pickers
  // skip each other's rows instead of waiting. $5 restricts to machines this node knows.
  claim_ = Make("gd_claim", (std::string(R"SQL(
WITH picked AS (
  SELECT id FROM {s}.gd_instances
  WHERE status = 'runnable' AND queue = $1 AND eligible_at <= now()
    AND (fsm || '@' || fsm_version) = ANY($5::text[])
  ORDER BY priority, eligible_at, id
  LIMIT $2
  FOR UPDATE SKIP LOCKED)
UPDATE {s}.gd_instances i
SET status = 'executing', locked_by = $3, lease_seq = i.lease_seq + 1,
    lease_expires_at = now() + $4::bigint * interval '1 millisecond', updated_at = now()
FROM picked WHERE i.id = picked.id
RETURNING )SQL") + kClaimReturning)
                                    .c_str());

  // Moves due rows of queue $1 from scheduled to runnable. Served by gd_instances_scheduled.
  promote_ = Make("gd_promote_due", R"SQL(
WITH due AS (
  SELECT id FROM {s}.gd_instances
  WHERE status = 'scheduled' AND queue = $1 AND eligible_at <= now()
  ORDER BY eligible_at LIMIT $2
  FOR UPDATE SKIP LOCKED)
UPDATE {s}.gd_instances i SET status = 'runnable' FROM due WHERE i.id = due.id)SQL");

  // Group commit of outcomes. The guard (executing, locked_by, lease_seq) drops a stale
  // outcome; values are absolute so a retried in-doubt commit is idempotent.
  commit_ = Make("gd_commit_outcomes", R"SQL(
WITH o AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(
    id bigint, seq bigint, status text, step text, state jsonb, attempt integer,
    delay_ms bigint, result jsonb, last_error text, keep boolean))
UPDATE {s}.gd_instances i SET
  status = CASE WHEN o.status = 'runnable' AND COALESCE(o.delay_ms, 0) > 0 THEN 'scheduled'
                ELSE o.status END,
  step = COALESCE(o.step, i.step),
  state = COALESCE(o.state, i.state),
  attempt = o.attempt,
  eligible_at = CASE WHEN o.status = 'runnable'
                     THEN now() + COALESCE(o.delay_ms, 0) * interval '1 millisecond'
                     ELSE i.eligible_at END,
  result = o.result,
  last_error = COALESCE(o.last_error, i.last_error),
  locked_by = CASE WHEN o.keep THEN i.locked_by END,
  lease_expires_at = CASE WHEN o.keep THEN now() + $3::bigint * interval '1 millisecond' END,
  completed_at = CASE WHEN o.status IN ('done', 'failed', 'cancelled') THEN now() END,
  updated_at = now()
FROM o
WHERE i.id = o.id AND i.status = 'executing' AND i.locked_by = $2 AND i.lease_seq = o.seq
RETURNING i.id)SQL");

  // Served by the primary key (ids) with the owner guard.
  heartbeat_ = Make("gd_heartbeat", R"SQL(
UPDATE {s}.gd_instances
SET lease_expires_at = now() + $3::bigint * interval '1 millisecond'
WHERE id = ANY($2::bigint[]) AND status = 'executing' AND locked_by = $1)SQL");

  release_ = Make("gd_release_claims", R"SQL(
UPDATE {s}.gd_instances
SET status = 'runnable', locked_by = NULL, lease_expires_at = NULL, updated_at = now()
WHERE id = ANY($2::bigint[]) AND status = 'executing' AND locked_by = $1)SQL");

  // Served by gd_instances_lease. SKIP LOCKED: two reapers never fight over a row.
  reap_ = Make("gd_reap_expired", (std::string(R"SQL(
WITH expired AS (
  SELECT id FROM {s}.gd_instances
  WHERE status = 'executing' AND lease_expires_at < now()
  ORDER BY lease_expires_at LIMIT $1
  FOR UPDATE SKIP LOCKED)
UPDATE {s}.gd_instances i SET )SQL") + kReleaseLostLease +
                                   " FROM expired WHERE i.id = expired.id RETURNING i.id, i.status")
                                      .c_str());

  // Served by gd_instances_owner.
  reclaim_node_ = Make("gd_reclaim_node", (std::string("UPDATE {s}.gd_instances i SET ") +
                                           kReleaseLostLease +
                                           " WHERE i.status = 'executing' AND i.locked_by = $1 "
                                           "RETURNING i.id, i.status")
                                              .c_str());

  // Served by gd_instances_terminal: deletes at most $2 of the oldest terminal rows past
  // retention; never a full scan.
  gc_ = Make("gd_gc_sweep", R"SQL(
WITH old AS (
  SELECT id FROM {s}.gd_instances
  WHERE status IN ('done', 'failed', 'cancelled')
    AND completed_at < now() - $1::bigint * interval '1 millisecond'
  ORDER BY completed_at LIMIT $2
  FOR UPDATE SKIP LOCKED)
DELETE FROM {s}.gd_instances i USING old WHERE i.id = old.id)SQL");

  node_upsert_ = Make("gd_node_upsert", R"SQL(
INSERT INTO {s}.gd_nodes (id, engine, host, pid, proc_start, queues)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), queues = EXCLUDED.queues)SQL");
  node_heartbeat_ =
      Make("gd_node_heartbeat", "UPDATE {s}.gd_nodes SET heartbeat_at = now() WHERE id = $1");
  node_delete_ = Make("gd_node_delete", "DELETE FROM {s}.gd_nodes WHERE id = $1");
  nodes_on_host_ = Make("gd_nodes_on_host",
                        "SELECT id, host, pid, proc_start FROM {s}.gd_nodes WHERE host = $1");
  nodes_prune_ = Make("gd_nodes_prune", R"SQL(
DELETE FROM {s}.gd_nodes
WHERE heartbeat_at < now() - $1::bigint * interval '1 millisecond' RETURNING id)SQL");

  get_ = Make("gd_get",
              (std::string("SELECT ") + kInfoColumns + " FROM {s}.gd_instances WHERE id = $1")
                  .c_str());
  // Served by gd_instances_parent.
  children_ = Make("gd_children",
                   "SELECT id FROM {s}.gd_instances WHERE parent_id = $1 ORDER BY id");
  children_many_ = Make("gd_children_many",
                        "SELECT parent_id, id FROM {s}.gd_instances "
                        "WHERE parent_id = ANY($1::bigint[]) ORDER BY parent_id, id");
  list_ = Make("gd_list", (std::string("SELECT ") + kInfoColumns + R"SQL( FROM {s}.gd_instances
WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR queue = $2)
  AND ($3::text IS NULL OR fsm = $3)
ORDER BY id DESC LIMIT $4)SQL")
                              .c_str());
  counts_ = Make("gd_counts",
                 "SELECT queue, status, count(*) FROM {s}.gd_instances GROUP BY queue, status");
}

pg::Statement Store::Make(const char* name, const char* sql) const {
  return pg::Statement{name, WithSchema(sql, schema_)};
}

std::int64_t Store::InsertOne(pg::Connection& c, const NewInstance& row) const {
  pg::Params p = InsertParams(row);
  p.Add(channel_);
  return c.Execute(insert_one_, p).Int64(0, 0);
}

std::int64_t Store::InsertOneAdHoc(pg::Connection& c, const NewInstance& row) const {
  pg::Params p = InsertParams(row);
  p.Add(channel_);
  return c.ExecParams(insert_one_.sql, p).Int64(0, 0);
}

std::vector<std::int64_t> Store::InsertBatch(pg::Connection& c,
                                             const std::vector<NewInstance>& rows) const {
  if (rows.empty()) return {};
  Json arr = Json::array();
  for (const auto& r : rows) arr.push_back(NewInstanceJson(r));
  pg::Params p;
  p.Add(arr.dump()).Add(channel_);
  auto res = c.Execute(insert_batch_, p);
  std::vector<std::int64_t> ids;
  ids.reserve(res.rows());
  for (int i = 0; i < res.rows(); ++i) ids.push_back(res.Int64(i, 0));
  return ids;
}

std::vector<ClaimedRow> Store::Claim(pg::Connection& c, const std::string& queue, int limit,
                                     const std::string& node, Millis lease_ttl,
                                     const std::vector<std::string>& machines,
                                     bool promote) const {
  pg::Params p;
  p.Add(queue).Add(limit).Add(node).Add(static_cast<std::int64_t>(lease_ttl.count()));
  p.Add(TextArray(machines));
  pg::Result r;
  if (promote) {
    // One round trip: promote what is due, then claim (each statement sees the one before).
    pg::Params pp;
    pp.Add(queue).Add(kPromoteBatch);
    auto results = c.Pipeline({{&promote_, pp}, {&claim_, p}}, false);
    r = std::move(results.back());
  } else {
    r = c.Execute(claim_, p);
  }
  std::vector<ClaimedRow> rows;
  rows.reserve(r.rows());
  for (int i = 0; i < r.rows(); ++i) {
    ClaimedRow row;
    row.id = r.Int64(i, 0);
    row.fsm = r.String(i, 1);
    row.fsm_version = r.Int(i, 2);
    row.step = r.String(i, 3);
    std::string error;
    auto state = ParseStored(r.Text(i, 4), &error);
    if (state) {
      row.state = std::move(*state);
    } else {
      row.state_error = "stored state cannot be decoded: " + error;
    }
    row.attempt = r.Int(i, 5);
    row.max_attempts = r.Int(i, 6);
    row.priority = r.Int(i, 7);
    row.lease_seq = r.Int64(i, 8);
    row.queue = r.String(i, 9);
    rows.push_back(std::move(row));
  }
  // UPDATE ... RETURNING does not keep the picker's order; restore it.
  std::sort(rows.begin(), rows.end(), [](const ClaimedRow& a, const ClaimedRow& b) {
    return a.priority != b.priority ? a.priority < b.priority : a.id < b.id;
  });
  return rows;
}

std::int64_t Store::PromoteDue(pg::Connection& c, const std::string& queue) const {
  pg::Params p;
  p.Add(queue).Add(kPromoteBatch);
  return c.Execute(promote_, p).affected();
}

std::vector<std::int64_t> Store::CommitOutcomes(pg::Connection& c,
                                                const std::vector<OutcomeRow>& rows,
                                                const std::string& node, Millis lease_ttl) const {
  // The array is assembled as text: states and results are already encoded JSON, and
  // re-parsing them only to print them again would cost more than the commit.
  std::string arr = "[";
  auto str = [](const std::optional<std::string>& s) {
    return s ? Json(*s).dump(-1, ' ', false, Json::error_handler_t::replace) : std::string("null");
  };
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& o = rows[i];
    if (i) arr += ',';
    arr += fmt::format(
        R"({{"id":{},"seq":{},"status":"{}","attempt":{},"keep":{},"step":{},"state":{},)"
        R"("delay_ms":{},"result":{},"last_error":{}}})",
        o.id, o.lease_seq, o.status, o.attempt, o.keep ? "true" : "false", str(o.step),
        o.state ? *o.state : "null", o.delay_ms ? std::to_string(*o.delay_ms) : "null",
        o.result ? *o.result : "null", str(o.last_error));
  }
  arr += ']';
  pg::Params p;
  p.Add(arr).Add(node).Add(static_cast<std::int64_t>(lease_ttl.count()));
  auto r = c.Execute(commit_, p);
  std::vector<std::int64_t> ids;
  ids.reserve(r.rows());
  for (int i = 0; i < r.rows(); ++i) ids.push_back(r.Int64(i, 0));
  return ids;
}

std::int64_t Store::Heartbeat(pg::Connection& c, const std::string& node,
                              const std::vector<std::int64_t>& ids, Millis lease_ttl) const {
  if (ids.empty()) return 0;
  pg::Params p;
  p.Add(node).Add(IdArray(ids)).Add(static_cast<std::int64_t>(lease_ttl.count()));
  return c.Execute(heartbeat_, p).affected();
}

std::int64_t Store::ReleaseClaims(pg::Connection& c, const std::string& node,
                                  const std::vector<std::int64_t>& ids) const {
  if (ids.empty()) return 0;
  pg::Params p;
  p.Add(node).Add(IdArray(ids));
  return c.Execute(release_, p).affected();
}

std::vector<ReapedRow> Store::ReapExpired(pg::Connection& c, int limit) const {
  pg::Params p;
  p.Add(limit);
  return ReadReaped(c.Execute(reap_, p));
}

std::vector<ReapedRow> Store::ReclaimNode(pg::Connection& c, const std::string& node) const {
  pg::Params p;
  p.Add(node);
  return ReadReaped(c.Execute(reclaim_node_, p));
}

std::int64_t Store::GcSweep(pg::Connection& c, Millis retention, int limit) const {
  pg::Params p;
  p.Add(static_cast<std::int64_t>(retention.count())).Add(limit);
  return c.Execute(gc_, p).affected();
}

void Store::NodeUpsert(pg::Connection& c, const std::string& id, const std::string& engine,
                       const std::string& host, int pid, const std::string& proc_start,
                       const std::string& queues_json) const {
  pg::Params p;
  p.Add(id).Add(engine).Add(host).Add(pid).Add(proc_start).Add(queues_json);
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

std::vector<NodeRow> Store::NodesOnHost(pg::Connection& c, const std::string& host) const {
  pg::Params p;
  p.Add(host);
  auto r = c.Execute(nodes_on_host_, p);
  std::vector<NodeRow> out;
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back({r.String(i, 0), r.String(i, 1), r.Int(i, 2), r.String(i, 3)});
  }
  return out;
}

std::vector<std::string> Store::NodesPrune(pg::Connection& c, Millis age) const {
  pg::Params p;
  p.Add(static_cast<std::int64_t>(age.count()));
  auto r = c.Execute(nodes_prune_, p);
  std::vector<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.String(i, 0));
  return out;
}

std::optional<InstanceInfo> Store::Get(pg::Connection& c, std::int64_t id) const {
  pg::Params p;
  p.Add(id);
  auto r = c.Execute(get_, p);
  if (r.rows() == 0) return std::nullopt;
  InstanceInfo info = ReadInfo(r, 0);
  auto ch = c.Execute(children_, p);
  for (int i = 0; i < ch.rows(); ++i) info.children.push_back(ch.Int64(i, 0));
  return info;
}

std::vector<InstanceInfo> Store::List(pg::Connection& c, const ListFilter& f) const {
  pg::Params p;
  p.Add(f.status).Add(f.queue).Add(f.fsm).Add(f.limit);
  auto r = c.Execute(list_, p);
  std::vector<InstanceInfo> out;
  out.reserve(r.rows());
  std::vector<std::int64_t> ids;
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back(ReadInfo(r, i));
    ids.push_back(out.back().id);
  }
  if (ids.empty()) return out;
  std::map<std::int64_t, std::vector<std::int64_t>> kids;
  auto ch = c.Execute(children_many_, pg::Params().Add(IdArray(ids)));
  for (int i = 0; i < ch.rows(); ++i) kids[ch.Int64(i, 0)].push_back(ch.Int64(i, 1));
  for (auto& info : out) {
    if (auto it = kids.find(info.id); it != kids.end()) info.children = std::move(it->second);
  }
  return out;
}

StatusCounts Store::Counts(pg::Connection& c) const {
  auto r = c.Execute(counts_);
  StatusCounts out;
  for (int i = 0; i < r.rows(); ++i) {
    const std::string queue = r.String(i, 0);
    const std::string status = r.String(i, 1);
    const std::int64_t n = r.Int64(i, 2);
    out.queues[queue][status] += n;
    out.total[status] += n;
  }
  return out;
}

}  // namespace gen_durable::detail
