// One benchmark run, as the parent process sees it: forks the children, inserts the
// scenario's rows, lets the nodes go, waits, and computes the figures. The soak's sampling and
// verdict are in bench_soak.cpp, the other scenarios in bench_run.cpp.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_args.hpp"       // bench/driver/
#include "bench_processes.hpp"  // bench/driver/
#include "bench_shared.hpp"     // bench/driver/
#include "gen_durable/client.hpp"
#include "gen_durable/pg/connection.hpp"
#include "gen_durable/store/bench_store.hpp"
#include "levelling.hpp"  // bench/driver/

namespace gen_durable::benchmark {

using detail::BenchStore;
namespace pg = detail::pg;

class Run {
 public:
  Run(const BenchArgs& args, std::string conninfo, std::string schema)
      : args_(args), conninfo_(std::move(conninfo)), schema_(std::move(schema)), store_(schema_) {}

  // Forks the children, runs the scenario, stops the children; the scenario's figures.
  Json Execute();

 private:
  template <typename F>
  pid_t Fork(F body) {
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) body();  // never returns
    return pid;
  }

  void Connect();
  Json Scenario();
  double DbClock() { return store_.Clock(*conn_); }
  // Inserts `n` instances of `fsm` in statements of --batch rows; returns their ids.
  std::vector<std::int64_t> InsertMany(const std::string& fsm, std::int64_t n,
                                       const std::function<Json()>& state);
  // The highest id so far: the rows of this run are the ones above it.
  std::int64_t Mark() { return store_.MaxId(*conn_); }
  void Check() const;
  // Starts the nodes; returns the database time just before.
  double Go();
  void WaitStarted();
  std::int64_t RssSumKb() const;
  // Waits until `expected` final steps ran and every row above `mark` is terminal; returns the
  // last completion time (database clock). Samples the nodes' RSS at 10% of the way.
  double WaitDone(std::int64_t mark, std::int64_t expected);
  Json Base() const;
  std::int64_t count() const;
  void AddRss(Json& out) const;

  Json Jobs(bool large);
  Json Chain();
  Json Insert();
  Json Latency();
  Json SignalLatency();
  Json Fanout();

  // What one soak sample reads.
  struct SoakReading {
    Clock::time_point at;
    std::int64_t sent = 0;
    std::int64_t finished = 0;
    std::int64_t steps = 0;
    std::int64_t gc_deleted = 0;
    std::vector<std::int64_t> latency;
  };
  SoakReading ReadCounters() const;
  // The private memory (RssAnon) of this database's client backends, in MiB; nullopt when the
  // server does not run on this machine (its pids are not postgres processes here).
  std::optional<double> BackendAnonMb();
  // One sample over the interval since `prev`: printed at once, and returned.
  Json SoakSample(const SoakReading& prev, const SoakReading& now, double elapsed_s);
  // Sleeps until `t`, watching for a failed child.
  void SleepUntil(Clock::time_point t) const;
  // The series the verdict judges, with what counts as levelling off for each.
  std::vector<LevelRule> SoakRules() const;
  // The verdict over the samples taken after `from_s`: per series, and overall (true only when
  // every series was judged and levels off).
  Json SoakVerdict(const std::vector<Json>& samples, double from_s) const;
  Json Soak();

  const BenchArgs& args_;
  std::string conninfo_;
  std::string schema_;
  BenchStore store_;
  Children children_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<pg::Connection> conn_;
  std::int64_t rss_start_kb_ = 0;
  std::int64_t rss_end_kb_ = 0;
  bool server_local_ = false;  // soak: the server's processes are readable in /proc here
};

}  // namespace gen_durable::benchmark
