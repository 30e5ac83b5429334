// The benchmark's scenarios but the soak: set up, timed on the database clock, figures
// (see bench_driver.hpp for the shape of a run).
#include "bench_run.hpp"  // bench/driver/

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "bench_driver.hpp"    // bench/driver/
#include "bench_machines.hpp"  // bench/driver/
#include "gen_durable/gen_durable.hpp"

namespace gen_durable::benchmark {

Json Run::Execute() {
  const bool workers = args_.scenario != "insert";
  // Fork first: no connection is open and no thread runs in this process yet.
  std::fflush(stdout);
  std::fflush(stderr);
  if (workers) {
    for (int i = 0; i < args_.nodes; ++i)
      children_.nodes.push_back(Fork([&] { NodeMain(i, args_, conninfo_, schema_); }));
  }
  if (args_.scenario == "latency")
    children_.load = Fork([&] { LoadMain(args_, conninfo_, schema_); });
  if (args_.scenario == "soak")
    children_.load = Fork([&] { SoakLoadMain(args_, conninfo_, schema_); });
  try {
    Json out = Scenario();
    children_.StopAll();
    if (workers) {
      out["cpu_s"] = Round(children_.node_cpu_s, 3);
      out["rss_mb"] = Round(static_cast<double>(children_.max_rss_kb) / 1024.0, 1);
    }
    return out;
  } catch (...) {
    children_.StopAll();
    throw;
  }
}

void Run::Connect() {
  client_ = ConnectClient(conninfo_, schema_, kPacedThreads);
  client_->Migrate();
  conn_ = pg::Connection::Open(conninfo_, "gen_durable bench");
}

Json Run::Scenario() {
  Connect();
  const std::string& s = args_.scenario;
  if (s == "jobs" || s == "large") return Jobs(s == "large");
  if (s == "chain") return Chain();
  if (s == "insert") return Insert();
  if (s == "latency") return Latency();
  if (s == "signal") return SignalLatency();
  if (s == "soak") return Soak();
  return Fanout();
}

std::vector<std::int64_t> Run::InsertMany(const std::string& fsm, std::int64_t n,
                                          const std::function<Json()>& state) {
  std::vector<std::int64_t> ids;
  ids.reserve(static_cast<std::size_t>(n));
  std::vector<InsertRequest> batch;
  for (std::int64_t i = 0; i < n; ++i) {
    InsertRequest r{fsm, {}, {}};
    r.options.state = state();
    batch.push_back(std::move(r));
    if (static_cast<int>(batch.size()) == args_.batch || i + 1 == n) {
      const auto inserted = client_->InsertAll(batch);
      ids.insert(ids.end(), inserted.begin(), inserted.end());
      batch.clear();
    }
  }
  return ids;
}

void Run::Check() const {
  if (shared().failed.load() != 0) throw std::runtime_error("a benchmark process failed");
}

double Run::Go() {
  const double t0 = DbClock();
  shared().go_nodes.store(1);
  return t0;
}

void Run::WaitStarted() {
  while (shared().started.load() < args_.nodes) {
    Check();
    std::this_thread::sleep_for(kChildPoll);
  }
}

std::int64_t Run::RssSumKb() const {
  std::int64_t sum = 0;
  for (int i = 0; i < args_.nodes; ++i) sum += shared().rss_kb[i].load();
  return sum;
}

double Run::WaitDone(std::int64_t mark, std::int64_t expected) {
  const auto deadline = Clock::now() + std::chrono::minutes(30);
  while (shared().finished.load() < expected) {
    Check();
    if (rss_start_kb_ == 0 && shared().finished.load() * 10 >= expected) {
      rss_start_kb_ = RssSumKb();
    }
    if (Clock::now() > deadline) throw std::runtime_error("benchmark timed out");
    std::this_thread::sleep_for(kChildPoll);
  }
  for (;;) {
    const BenchStore::Progress p = store_.ProgressAbove(*conn_, mark);
    if (p.live == 0) {
      if (p.not_done != 0) {
        throw std::runtime_error(fmt::format("{} instances did not end done", p.not_done));
      }
      rss_end_kb_ = RssSumKb();
      return p.last_completed_s;
    }
    Check();
    if (Clock::now() > deadline) throw std::runtime_error("benchmark timed out");
    std::this_thread::sleep_for(Millis{5});
  }
}

Json Run::Base() const {
  Json out = {{"system", "gen_durable"},
              {"scenario", args_.scenario},
              {"count", count()},
              {"concurrency", args_.concurrency},
              {"nodes", args_.nodes}};
  out["settings"] = {{"concurrency", args_.concurrency},
                     {"prefetch", args_.prefetch},
                     {"nodes", args_.nodes},
                     {"batch", args_.batch},
                     {"inline_next", args_.inline_next},
                     {"history", args_.history},
                     {"synchronous_commit",
                      args_.synchronous_commit.empty() ? "server" : args_.synchronous_commit}};
  return out;
}

std::int64_t Run::count() const {
  if (args_.count > 0) return args_.count;
  const std::string& s = args_.scenario;
  if (s == "chain" || s == "fanout") return 10'000;
  if (s == "signal") return 1'000;
  if (s == "latency" || s == "soak") {
    return static_cast<std::int64_t>(args_.rate * args_.duration_s);
  }
  return 100'000;
}

void Run::AddRss(Json& out) const {
  out["rss_start_mb"] = Round(static_cast<double>(rss_start_kb_) / 1024.0, 1);
  out["rss_end_mb"] = Round(static_cast<double>(rss_end_kb_) / 1024.0, 1);
}

Json Run::Jobs(bool large) {
  const std::int64_t n = count();
  Json out = Base();
  if (large) {
    fmt::print(stderr, "bench: filling {} done and {} scheduled rows\n", args_.large_rows,
               args_.large_rows);
    store_.FillDone(*conn_, args_.large_rows);
    store_.FillScheduled(*conn_, args_.large_rows);
    store_.VacuumInstances(*conn_);
    out["large_rows"] = args_.large_rows;
  }
  const std::int64_t mark = Mark();
  fmt::print(stderr, "bench: inserting {} jobs\n", n);
  InsertMany("bench.noop", n, [] { return Json::object(); });
  const double t0 = Go();
  const double end = WaitDone(mark, n);
  const double elapsed = end - t0;
  out["elapsed_s"] = Round(elapsed, 3);
  out["jobs_per_s"] = Round(static_cast<double>(n) / elapsed, 1);
  out["steps_per_s"] = out["jobs_per_s"];
  AddRss(out);
  return out;
}

Json Run::Chain() {
  const std::int64_t n = count();
  const std::int64_t mark = Mark();
  InsertMany("bench.chain", n, [&] { return Json{{"steps", args_.steps}}; });
  const double t0 = Go();
  const double elapsed = WaitDone(mark, n) - t0;
  Json out = Base();
  out["steps"] = args_.steps;
  out["elapsed_s"] = Round(elapsed, 3);
  out["jobs_per_s"] = Round(static_cast<double>(n) / elapsed, 1);
  out["steps_per_s"] = Round(static_cast<double>(n * args_.steps) / elapsed, 1);
  AddRss(out);
  return out;
}

Json Run::Insert() {
  const std::int64_t n = count();
  const auto start = Clock::now();
  InsertMany("bench.noop", n, [] { return Json::object(); });
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  Json out = Base();
  out["elapsed_s"] = Round(elapsed, 3);
  out["inserts_per_s"] = Round(static_cast<double>(n) / elapsed, 1);
  return out;
}

Json Run::Latency() {
  const std::int64_t mark = Mark();
  Go();
  WaitStarted();
  std::this_thread::sleep_for(Millis{200});  // the engines' first idle poll is behind them
  shared().go_load.store(1);
  while (shared().load_done.load() == 0) {
    Check();
    std::this_thread::sleep_for(Millis{10});
  }
  const std::int64_t inserted = shared().inserts.count.load();
  WaitDone(mark, inserted);
  const double load_s =
      static_cast<double>(shared().load_end_us.load() - shared().load_start_us.load()) / 1e6;
  Json out = Base();
  out["count"] = inserted;
  out["rate"] = args_.rate;
  out["duration_s"] = args_.duration_s;
  out["offered_per_s"] = Round(static_cast<double>(inserted) / load_s, 1);
  const std::int64_t from =
      shared().load_start_us.load() + static_cast<std::int64_t>(kLatencyWarmupS * 1e6);
  AddLatency(out, shared().latencies.Sorted(from));
  // The insert's own round trip and commit, which the latency above includes.
  const auto inserts = shared().inserts.Sorted(from);
  out["insert_p50_ms"] = Percentile(inserts, 0.50);
  out["insert_p99_ms"] = Percentile(inserts, 0.99);
  return out;
}

Json Run::SignalLatency() {
  const std::int64_t n = count();
  const std::int64_t mark = Mark();
  const std::vector<std::int64_t> ids =
      InsertMany("bench.signal", n, [] { return Json::object(); });
  Go();
  const auto deadline = Clock::now() + std::chrono::minutes(5);
  while (store_.AwaitingAbove(*conn_, mark) < n) {
    Check();
    if (Clock::now() > deadline) throw std::runtime_error("instances did not all park");
    std::this_thread::sleep_for(Millis{20});
  }
  Paced(n, args_.rate, [&](std::int64_t i) {
    client_->Signal(ids[static_cast<std::size_t>(i)], "go", Json{{"t", NowMicros()}}).value();
  });
  WaitDone(mark, n);
  Json out = Base();
  out["rate"] = args_.rate;
  AddLatency(out, shared().latencies.Sorted(0));
  return out;
}

Json Run::Fanout() {
  const std::int64_t n = count();
  const std::int64_t mark = Mark();
  InsertOptions io;
  io.state = {{"n", n}};
  client_->Insert("bench.fanout", std::move(io)).value();
  const double t0 = Go();
  const double elapsed = WaitDone(mark, 1) - t0;
  Json out = Base();
  out["elapsed_s"] = Round(elapsed, 3);
  out["jobs_per_s"] = Round(static_cast<double>(n) / elapsed, 1);
  AddRss(out);
  return out;
}

Json RunScenario(const BenchArgs& args, const std::string& conninfo, const std::string& schema) {
  RegisterBenchMachines();
  MapShared();
  Run run(args, conninfo, schema);
  return run.Execute();
}

}  // namespace gen_durable::benchmark
