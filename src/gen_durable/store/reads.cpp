// Reads of instances for the client and the dashboard (Get, List, Counts, with children and
// signals), and the delivery of a signal.
#include <map>

#include "gen_durable/store/store.hpp"
#include "gen_durable/util/crash_point.hpp"

namespace gen_durable::detail {

namespace {

// Columns of InstanceInfo, in the order ReadInfo expects.
constexpr const char* kInfoColumns =
    "id, fsm, fsm_version, status, step, state, attempt, max_attempts, queue, priority, "
    "partition_key, unique_key, result, last_error, parent_id, locked_by, inserted_at, "
    "updated_at, eligible_at, lease_expires_at, completed_at";

std::string GetSql() {
  return std::string("SELECT ") + kInfoColumns + " FROM {s}.gd_instances WHERE id = $1";
}

// Served by gd_instances_parent.
// Served by gd_instances_parent: the children ids of a set of instances.
constexpr const char* kChildrenSql =
    "SELECT parent_id, id FROM {s}.gd_instances "
    "WHERE parent_id = ANY($1::bigint[]) ORDER BY parent_id, id";

std::string ListSql() {
  return std::string("SELECT ") + kInfoColumns + R"SQL( FROM {s}.gd_instances
WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR queue = $2)
  AND ($3::text IS NULL OR fsm = $3)
  AND ($5::text IS NULL OR unique_key = $5 OR partition_key = $5)
  AND ($6::bigint IS NULL OR id < $6)
ORDER BY id DESC LIMIT $4)SQL";
}

// The function holds the race-free delivery logic (migration 2, replaced by 5), so SQL
// callers share it.
constexpr const char* kDeliverSignalSql =
    "SELECT {s}.gd_signal($1::bigint, $2::text, $3::text, $4::jsonb, $5::text)";

// Served by gd_signals_inbox (its instance_id prefix; sorted by id here).
constexpr const char* kSignalsOfSql = R"SQL(
SELECT id, name, payload, dedup_key, consumed_at IS NOT NULL, inserted_at
FROM {s}.gd_signals WHERE instance_id = $1 ORDER BY id)SQL";

constexpr const char* kCountsSql =
    "SELECT queue, status, count(*) FROM {s}.gd_instances GROUP BY queue, status";

InstanceInfo ReadInfo(const pg::Row& row) {
  InstanceInfo info;
  info.id = row.Get<std::int64_t>("id");
  info.fsm = row.Get<std::string>("fsm");
  info.fsm_version = row.Get<int>("fsm_version");
  info.status = row.Get<std::string>("status");
  info.step = row.Get<std::string>("step");
  info.state = ParseForDisplay(row.Get<std::string_view>("state"));
  info.attempt = row.Get<int>("attempt");
  if (auto max_attempts = row.Get<std::optional<int>>("max_attempts")) {
    info.max_attempts = *max_attempts;
  }
  info.queue = row.Get<std::string>("queue");
  info.priority = row.Get<int>("priority");
  info.partition_key = row.Get<std::optional<std::string>>("partition_key");
  info.unique_key = row.Get<std::optional<std::string>>("unique_key");
  const auto result = row.Get<std::optional<std::string_view>>("result");
  info.result = result ? ParseForDisplay(*result) : Json(nullptr);
  info.last_error = row.Get<std::optional<std::string>>("last_error");
  info.parent_id = row.Get<std::optional<std::int64_t>>("parent_id");
  info.locked_by = row.Get<std::optional<std::string>>("locked_by");
  info.inserted_at = row.Get<std::string>("inserted_at");
  info.updated_at = row.Get<std::string>("updated_at");
  info.eligible_at = row.Get<std::string>("eligible_at");
  info.lease_expires_at = row.Get<std::optional<std::string>>("lease_expires_at");
  info.completed_at = row.Get<std::optional<std::string>>("completed_at");
  return info;
}

}  // namespace

void Store::MakeReadStatements() {
  get_ = Make("gd_get", GetSql());
  children_ = Make("gd_children", kChildrenSql);
  list_ = Make("gd_list", ListSql());
  signal_ = Make("gd_deliver_signal", kDeliverSignalSql);
  signals_of_ = Make("gd_signals_of", kSignalsOfSql);
  counts_ = Make("gd_counts", kCountsSql);
}

std::optional<InstanceInfo> Store::Get(pg::Connection& c, std::int64_t id) const {
  pg::Params p;
  p.Add(id);
  auto r = c.Execute(get_, p);
  if (r.rows() == 0) return std::nullopt;
  InstanceInfo info = ReadInfo(r.row(0));
  FillChildren(c, std::span<InstanceInfo>(&info, 1));
  auto sg = c.Execute(signals_of_, p);
  for (int i = 0; i < sg.rows(); ++i) {
    pg::Row row = sg.row(i);  // in column order: `consumed` is an unnamed expression
    SignalInfo s;
    s.id = row.Next<std::int64_t>();
    s.name = row.Next<std::string>();
    s.payload = ParseForDisplay(row.Next<std::string_view>());
    s.dedup_key = row.Next<std::optional<std::string>>();
    s.consumed = row.Next<bool>();
    s.inserted_at = row.Next<std::string>();
    info.signals.push_back(std::move(s));
  }
  return info;
}

std::int64_t Store::Signal(pg::Connection& c, std::optional<std::int64_t> id,
                           const std::optional<std::string>& key, const std::string& name,
                           const std::string& payload,
                           const std::optional<std::string>& dedup) const {
  pg::Params p;
  p.Add(id).Add(key).Add(name).Add(payload).Add(dedup);
  const std::int64_t signal_id = c.Execute(signal_, p).row(0).Next<std::int64_t>();
  GD_CRASH_POINT("mid_signal_delivery");  // committed; the caller has not learnt the id
  return signal_id;
}

std::vector<InstanceInfo> Store::List(pg::Connection& c, const ListFilter& f) const {
  pg::Params p;
  p.Add(f.status).Add(f.queue).Add(f.fsm).Add(f.limit).Add(f.key).Add(f.before_id);
  auto r = c.Execute(list_, p);
  std::vector<InstanceInfo> out;
  out.reserve(r.rows());
  for (int i = 0; i < r.rows(); ++i) out.push_back(ReadInfo(r.row(i)));
  FillChildren(c, out);
  return out;
}

void Store::FillChildren(pg::Connection& c, std::span<InstanceInfo> infos) const {
  if (infos.empty()) return;
  std::vector<std::int64_t> ids;
  for (const auto& info : infos) ids.push_back(info.id);
  std::map<std::int64_t, std::vector<std::int64_t>> kids;
  auto ch = c.Execute(children_, pg::Params().Add(IdArray(ids)));
  for (int i = 0; i < ch.rows(); ++i) {
    const pg::Row row = ch.row(i);
    kids[row.Get<std::int64_t>("parent_id")].push_back(row.Get<std::int64_t>("id"));
  }
  for (auto& info : infos) {
    if (auto it = kids.find(info.id); it != kids.end()) info.children = std::move(it->second);
  }
}

StatusCounts Store::Counts(pg::Connection& c) const {
  auto r = c.Execute(counts_);
  StatusCounts out;
  for (int i = 0; i < r.rows(); ++i) {
    const pg::Row row = r.row(i);
    const auto queue = row.Get<std::string>("queue");
    const auto status = row.Get<std::string>("status");
    const auto n = row.Get<std::int64_t>("count");
    out.queues[queue][status] += n;
    out.total[status] += n;
  }
  return out;
}

}  // namespace gen_durable::detail
