// The statements of periodic schedules: definitions, the firing of slots, reads.
#include "gen_durable/store/schedule_store.hpp"

#include "gen_durable/schema/migrations.hpp"
#include "gen_durable/store/row_codec.hpp"

namespace gen_durable::detail {

namespace {

// The columns of ScheduleRecord, in the order ReadRecord expects.
constexpr const char* kColumns =
    "name, cron, zone, fsm, fsm_version, step, queue, priority, max_attempts, state::text, "
    "missed, catch_up_max, (extract(epoch FROM last_fired) * 1000)::bigint, "
    "(extract(epoch FROM next_fire) * 1000)::bigint, "
    "(extract(epoch FROM created_at) * 1000)::bigint, "
    "(extract(epoch FROM updated_at) * 1000)::bigint";

// A new row, or a changed definition; last_fired and created_at stay.
constexpr const char* kUpsertSql = R"SQL(
INSERT INTO {s}.gd_schedules AS s
  (name, cron, zone, fsm, fsm_version, step, queue, priority, max_attempts, state, missed,
   catch_up_max, next_fire)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12,
        'epoch'::timestamptz + $13::bigint * interval '1 millisecond')
ON CONFLICT (name) DO UPDATE SET
  cron = EXCLUDED.cron, zone = EXCLUDED.zone, fsm = EXCLUDED.fsm,
  fsm_version = EXCLUDED.fsm_version, step = EXCLUDED.step, queue = EXCLUDED.queue,
  priority = EXCLUDED.priority, max_attempts = EXCLUDED.max_attempts, state = EXCLUDED.state,
  missed = EXCLUDED.missed, catch_up_max = EXCLUDED.catch_up_max,
  next_fire = EXCLUDED.next_fire, updated_at = now())SQL";

// Served by the primary key.
std::string ReadSql() {
  return std::string("SELECT ") + kColumns + " FROM {s}.gd_schedules WHERE name = $1";
}
std::string ListSql() {
  return std::string("SELECT ") + kColumns + " FROM {s}.gd_schedules ORDER BY name";
}

// The fire: a compare-and-set of last_fired (from the value the node read, $2, to the newest
// slot, $3) and the inserts of the slots' instances, in one statement. A concurrent fire of the
// same schedule waits for the row lock, then finds last_fired changed and writes nothing, so
// each slot is inserted by exactly one node; and the advance commits only with its inserts.
constexpr const char* kFireSql = R"SQL(
WITH adv AS (
  UPDATE {s}.gd_schedules
  SET last_fired = 'epoch'::timestamptz + $3::bigint * interval '1 millisecond',
      next_fire = 'epoch'::timestamptz + $4::bigint * interval '1 millisecond',
      updated_at = now()
  WHERE name = $1
    AND last_fired IS NOT DISTINCT FROM
        'epoch'::timestamptz + $2::bigint * interval '1 millisecond'
    AND (last_fired IS NULL
         OR last_fired < 'epoch'::timestamptz + $3::bigint * interval '1 millisecond')
  RETURNING fsm, fsm_version, step, queue, priority, max_attempts, state),
-- A slot's key is held in every status, until GC deletes its row: even with last_fired set
-- back by hand, a slot whose instance has ended is not inserted again.
ins AS (
  INSERT INTO {s}.gd_instances
    (fsm, fsm_version, queue, step, state, priority, max_attempts, unique_key, unique_scope)
  SELECT a.fsm, a.fsm_version, a.queue, a.step, a.state, a.priority, a.max_attempts, k.key,
         '{scheduled,runnable,executing,awaiting_signal,awaiting_children,done,failed,cancelled}'
  FROM adv a CROSS JOIN unnest($5::text[]) AS k(key)
  ORDER BY k.key
  ON CONFLICT (unique_hold) WHERE unique_hold IS NOT NULL DO NOTHING
  RETURNING id, unique_key, queue),
n AS (SELECT pg_notify($6, queue) FROM ins GROUP BY queue)
SELECT (SELECT count(*) FROM adv) AS advanced, i.id, i.unique_key
FROM (SELECT 1) AS one LEFT JOIN ins AS i ON true
WHERE (SELECT count(*) FROM n) >= 0
ORDER BY i.unique_key)SQL";

// One instance of the definition now, last_fired untouched.
constexpr const char* kTriggerSql = R"SQL(
WITH ins AS (
  INSERT INTO {s}.gd_instances
    (fsm, fsm_version, queue, step, state, priority, max_attempts, unique_key)
  SELECT fsm, fsm_version, queue, step, state, priority, max_attempts, $2
  FROM {s}.gd_schedules WHERE name = $1
  ON CONFLICT (unique_hold) WHERE unique_hold IS NOT NULL DO NOTHING
  RETURNING id, queue),
n AS (SELECT pg_notify($3, queue) FROM ins)
SELECT id FROM ins WHERE (SELECT count(*) FROM n) >= 0)SQL";

ScheduleRecord ReadRecord(pg::Row row) {
  ScheduleRecord r;
  auto& d = r.definition;
  d.name = row.Next<std::string>();
  d.cron = row.Next<std::string>();
  d.zone = row.Next<std::string>();
  d.fsm = row.Next<std::string>();
  d.fsm_version = row.Next<int>();
  d.step = row.Next<std::string>();
  d.queue = row.Next<std::string>();
  d.priority = row.Next<int>();
  d.max_attempts = row.Next<std::optional<int>>();
  d.state = row.Next<std::string>();
  d.missed = row.Next<std::string>();
  d.catch_up_max = row.Next<int>();
  r.last_fired_ms = row.Next<std::optional<std::int64_t>>();
  r.next_fire_ms = row.Next<std::optional<std::int64_t>>();
  r.created_ms = row.Next<std::int64_t>();
  r.updated_ms = row.Next<std::int64_t>();
  return r;
}

}  // namespace

ScheduleStore::ScheduleStore(std::string schema)
    : schema_(std::move(schema)), channel_(ChannelFor(schema_)) {
  upsert_ = Make("gd_schedule_upsert", kUpsertSql);
  read_ = Make("gd_schedule_read", ReadSql());
  list_ = Make("gd_schedule_list", ListSql());
  fire_ = Make("gd_schedule_fire", kFireSql);
  trigger_ = Make("gd_schedule_trigger", kTriggerSql);
}

pg::Statement ScheduleStore::Make(const char* name, const std::string& sql) const {
  return pg::Statement{name, WithSchema(sql, schema_)};
}

void ScheduleStore::Upsert(pg::Connection& c, const ScheduleDefinition& d,
                           std::optional<std::int64_t> next_fire_ms) const {
  pg::Params p;
  p.Add(d.name)
      .Add(d.cron)
      .Add(d.zone)
      .Add(d.fsm)
      .Add(d.fsm_version)
      .Add(d.step)
      .Add(d.queue)
      .Add(d.priority)
      .Add(d.max_attempts)
      .Add(d.state)
      .Add(d.missed)
      .Add(d.catch_up_max)
      .Add(next_fire_ms);
  c.Execute(upsert_, p);
}

std::optional<ScheduleRecord> ScheduleStore::Read(pg::Connection& c,
                                                  const std::string& name) const {
  auto r = c.Execute(read_, pg::Params().Add(name));
  if (r.rows() == 0) return std::nullopt;
  return ReadRecord(r.row(0));
}

std::vector<ScheduleRecord> ScheduleStore::List(pg::Connection& c) const {
  auto r = c.Execute(list_);
  std::vector<ScheduleRecord> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(ReadRecord(r.row(i)));
  return out;
}

FireResult ScheduleStore::Fire(pg::Connection& c, const std::string& name,
                               std::optional<std::int64_t> expected_ms, std::int64_t new_last_ms,
                               std::optional<std::int64_t> next_fire_ms,
                               const std::vector<std::string>& keys) const {
  pg::Params p;
  p.Add(name)
      .Add(expected_ms)
      .Add(new_last_ms)
      .Add(next_fire_ms)
      .Add(TextArray(keys))
      .Add(channel_);
  auto r = c.Execute(fire_, p);
  FireResult out;
  for (int i = 0; i < r.rows(); ++i) {
    pg::Row row = r.row(i);
    out.advanced = row.Next<std::int64_t>() > 0;
    auto id = row.Next<std::optional<std::int64_t>>();
    auto key = row.Next<std::optional<std::string>>();
    if (id && key) out.inserted.emplace_back(*id, std::move(*key));
  }
  return out;
}

std::optional<std::int64_t> ScheduleStore::Trigger(pg::Connection& c, const std::string& name,
                                                   const std::string& key) const {
  auto r = c.Execute(trigger_, pg::Params().Add(name).Add(key).Add(channel_));
  if (r.rows() == 0) return std::nullopt;
  return r.row(0).Get<std::int64_t>("id");
}

}  // namespace gen_durable::detail
