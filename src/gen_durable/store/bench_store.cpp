// The benchmark driver's statements (see bench_store.hpp).
#include "gen_durable/store/bench_store.hpp"

#include "gen_durable/schema/migrations.hpp"

namespace gen_durable::detail {

namespace {

// The database clock: runs are timed from it to the rows' completed_at.
const pg::Statement kClock{"bench_clock", "SELECT extract(epoch FROM clock_timestamp())::float8"};
// The last id so far: the rows a run inserts are the ones above it.
const pg::Statement kMaxId{"bench_max_id", "SELECT COALESCE(max(id), 0) FROM {s}.gd_instances"};
// Rows of this run (id above the mark) not yet terminal, and the last completion among them.
const pg::Statement kProgress{"bench_progress", R"SQL(
SELECT count(*) FILTER (WHERE status NOT IN ('done', 'failed', 'cancelled')),
       count(*) FILTER (WHERE status <> 'done'),
       COALESCE(extract(epoch FROM max(completed_at)), 0)::float8
FROM {s}.gd_instances WHERE id > $1)SQL"};
// Rows of this run parked: `signal` sends its signals once every instance waits.
const pg::Statement kAwaiting{"bench_awaiting", R"SQL(
SELECT count(*) FROM {s}.gd_instances WHERE id > $1 AND status = 'awaiting_signal')SQL"};
// Soak samples. The instances not yet terminal, by what they wait for (the status index).
const pg::Statement kBacklog{"bench_backlog", R"SQL(
SELECT count(*) FILTER (WHERE status IN ('runnable', 'executing')),
       count(*) FILTER (WHERE status IN ('awaiting_signal', 'awaiting_children')),
       count(*) FILTER (WHERE status = 'scheduled')
FROM {s}.gd_instances
WHERE status IN ('scheduled', 'runnable', 'executing', 'awaiting_signal', 'awaiting_children'))SQL"};
// The client sessions on this database, and the instances and signals tables as the statistics
// collector and the storage see them ($1: the schema).
const pg::Statement kDbStats{"bench_db_stats", R"SQL(
SELECT (SELECT count(*) FROM pg_stat_activity
        WHERE datname = current_database() AND backend_type = 'client backend'),
       COALESCE(max(n_live_tup) FILTER (WHERE relname = 'gd_instances'), 0),
       COALESCE(max(n_dead_tup) FILTER (WHERE relname = 'gd_instances'), 0),
       COALESCE(max(autovacuum_count) FILTER (WHERE relname = 'gd_instances'), 0),
       COALESCE(max(pg_total_relation_size(relid)) FILTER (WHERE relname = 'gd_instances'), 0),
       COALESCE(max(n_dead_tup) FILTER (WHERE relname = 'gd_signals'), 0),
       COALESCE(max(pg_total_relation_size(relid)) FILTER (WHERE relname = 'gd_signals'), 0),
       COALESCE(max(pg_indexes_size(relid)) FILTER (WHERE relname = 'gd_instances'), 0)
FROM pg_stat_user_tables
WHERE schemaname = $1 AND relname IN ('gd_instances', 'gd_signals'))SQL"};
// Our own session's server process: the soak reads its /proc entry to learn whether the server
// runs on this machine.
const pg::Statement kBackendPid{"bench_backend_pid", "SELECT pg_backend_pid()"};
// Every client session's server process: the soak sums their private memory.
const pg::Statement kBackendPids{"bench_backend_pids", R"SQL(
SELECT pid FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend')SQL"};

// `large`: rows that finished an hour ago and rows due tomorrow, on the benchmark's queue.
const pg::Statement kFillDone{"bench_fill_done", R"SQL(
INSERT INTO {s}.gd_instances (fsm, queue, step, status, state, result, completed_at)
SELECT 'bench.noop', 'bench', 'perform', 'done', '{}', 'null', now() - interval '1 hour'
FROM generate_series(1, $1::bigint))SQL"};
const pg::Statement kFillScheduled{"bench_fill_scheduled", R"SQL(
INSERT INTO {s}.gd_instances (fsm, queue, step, status, state, eligible_at)
SELECT 'bench.noop', 'bench', 'perform', 'scheduled', '{}', now() + interval '1 day'
FROM generate_series(1, $1::bigint))SQL"};
// `large`: the filled table's statistics, so that the run's plans see its real size. A simple
// query: VACUUM cannot run inside the transaction a prepared statement may open.
constexpr const char* kVacuumInstances = "VACUUM ANALYZE {s}.gd_instances";

pg::Statement InSchema(const pg::Statement& s, const std::string& schema) {
  return {s.name, WithSchema(s.sql, schema)};
}

}  // namespace

BenchStore::BenchStore(const std::string& schema)
    : schema_(schema),
      max_id_(InSchema(kMaxId, schema)),
      progress_(InSchema(kProgress, schema)),
      awaiting_(InSchema(kAwaiting, schema)),
      backlog_(InSchema(kBacklog, schema)),
      fill_done_(InSchema(kFillDone, schema)),
      fill_scheduled_(InSchema(kFillScheduled, schema)),
      vacuum_(WithSchema(kVacuumInstances, schema)) {}

double BenchStore::Clock(pg::Connection& conn) { return conn.Execute(kClock).Double(0, 0); }

std::int64_t BenchStore::MaxId(pg::Connection& conn) { return conn.Execute(max_id_).Int64(0, 0); }

BenchStore::Progress BenchStore::ProgressAbove(pg::Connection& conn, std::int64_t mark) {
  const auto r = conn.Execute(progress_, pg::Params().Add(mark));
  return {r.Int64(0, 0), r.Int64(0, 1), r.Double(0, 2)};
}

std::int64_t BenchStore::AwaitingAbove(pg::Connection& conn, std::int64_t mark) {
  return conn.Execute(awaiting_, pg::Params().Add(mark)).Int64(0, 0);
}

BenchStore::Backlog BenchStore::ReadBacklog(pg::Connection& conn) {
  const auto r = conn.Execute(backlog_);
  return {r.Int64(0, 0), r.Int64(0, 1), r.Int64(0, 2)};
}

BenchStore::TableStats BenchStore::ReadTableStats(pg::Connection& conn) {
  const auto r = conn.Execute(kDbStats, pg::Params().Add(schema_));
  TableStats t;
  t.connections = r.Int64(0, 0);
  t.live_tuples = r.Int64(0, 1);
  t.dead_tuples = r.Int64(0, 2);
  t.autovacuum_count = r.Int64(0, 3);
  t.table_bytes = r.Int64(0, 4);
  t.signals_dead_tuples = r.Int64(0, 5);
  t.signals_bytes = r.Int64(0, 6);
  t.indexes_bytes = r.Int64(0, 7);
  return t;
}

std::int64_t BenchStore::BackendPid(pg::Connection& conn) {
  return conn.Execute(kBackendPid).Int64(0, 0);
}

std::vector<std::int64_t> BenchStore::BackendPids(pg::Connection& conn) {
  const auto r = conn.Execute(kBackendPids);
  std::vector<std::int64_t> out;
  out.reserve(static_cast<std::size_t>(r.rows()));
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.Int64(i, 0));
  return out;
}

void BenchStore::FillDone(pg::Connection& conn, std::int64_t n) {
  conn.Execute(fill_done_, pg::Params().Add(n));
}

void BenchStore::FillScheduled(pg::Connection& conn, std::int64_t n) {
  conn.Execute(fill_scheduled_, pg::Params().Add(n));
}

void BenchStore::VacuumInstances(pg::Connection& conn) { conn.Exec(vacuum_); }

}  // namespace gen_durable::detail
