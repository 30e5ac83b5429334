// The SQL of the benchmark driver (bench/driver/) besides the engine's own: the database clock,
// the progress of a run's rows, the soak's samples, and the rows `large` fills the table with.
//
// A BenchStore is bound to a schema like Store; it owns its statement texts and runs them on a
// connection the caller provides. It is not part of the engine: only the driver uses it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gen_durable/pg/connection.hpp"

namespace gen_durable::detail {

class BenchStore {
 public:
  explicit BenchStore(const std::string& schema);

  // The database's clock, in seconds since the epoch: a run is timed on it.
  double Clock(pg::Connection& conn);
  // The highest instance id so far (0 when none): a run's rows are the ones above it.
  std::int64_t MaxId(pg::Connection& conn);

  struct Progress {
    std::int64_t live = 0;        // not yet terminal
    std::int64_t not_done = 0;    // not ended `done` (terminal or not)
    double last_completed_s = 0;  // the last completion, database clock (0: none)
  };
  // The rows above `mark`.
  Progress ProgressAbove(pg::Connection& conn, std::int64_t mark);
  // The rows above `mark` parked on a signal.
  std::int64_t AwaitingAbove(pg::Connection& conn, std::int64_t mark);

  // The instances not yet terminal, by what they wait for.
  struct Backlog {
    std::int64_t ready = 0;   // runnable or executing
    std::int64_t parked = 0;  // awaiting a signal or children
    std::int64_t scheduled = 0;
  };
  Backlog ReadBacklog(pg::Connection& conn);

  // The client sessions on this database, and the instances and signals tables as the
  // statistics collector and the storage see them.
  struct TableStats {
    std::int64_t connections = 0;
    std::int64_t live_tuples = 0;
    std::int64_t dead_tuples = 0;
    std::int64_t autovacuum_count = 0;
    std::int64_t table_bytes = 0;  // gd_instances with its indexes and TOAST
    std::int64_t signals_dead_tuples = 0;
    std::int64_t signals_bytes = 0;
    std::int64_t indexes_bytes = 0;  // gd_instances' indexes (part of table_bytes)
  };
  TableStats ReadTableStats(pg::Connection& conn);

  // The server process of `conn`'s session, and those of every client session on this
  // database.
  std::int64_t BackendPid(pg::Connection& conn);
  std::vector<std::int64_t> BackendPids(pg::Connection& conn);

  // `large`: `n` rows that finished an hour ago, `n` rows due tomorrow (on the bench queue),
  // then fresh planner statistics for the table.
  void FillDone(pg::Connection& conn, std::int64_t n);
  void FillScheduled(pg::Connection& conn, std::int64_t n);
  void VacuumInstances(pg::Connection& conn);

 private:
  std::string schema_;
  pg::Statement max_id_, progress_, awaiting_, backlog_, fill_done_, fill_scheduled_;
  std::string vacuum_;
};

}  // namespace gen_durable::detail
