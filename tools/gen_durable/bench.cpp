// `gen_durable bench`: the engine's own benchmark scenarios.
//
// Shape of a run: the parent process forks its worker nodes (and, for `latency`, a load
// process) before it opens any connection or starts any thread, so the children start clean.
// The parent inserts the scenario's rows untimed, notes the database clock, lets the nodes
// start their engines, and waits until every row it inserted is terminal. Elapsed time is
// measured on the database clock: from just before the nodes start to the last completed_at.
// The processes share one anonymous memory map for flags, progress and latency samples.
#include "gen_durable/bench.hpp"  // tools/

#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gen_durable/demo_machines.hpp"  // tools/
#include "gen_durable/engine.hpp"
#include "gen_durable/gen_durable.hpp"
#include "gen_durable/pg/connection.hpp"
#include "gen_durable/schema/migrations.hpp"

namespace gen_durable::tools {

namespace {

using detail::WithSchema;
namespace pg = detail::pg;
using Clock = std::chrono::steady_clock;

constexpr const char* kQueue = "bench";
constexpr int kMaxNodes = 64;
constexpr std::int64_t kMaxSamples = 1 << 21;
constexpr Millis kChildPoll{2};
constexpr double kLatencyWarmupS = 1.0;
// Threads (and client connections) sending a paced load: inserts for latency, signals.
constexpr int kPacedThreads = 4;

// The statements the bench runs besides the engine's own (setup and measurement only).
const pg::Statement kClock{"bench_clock", "SELECT extract(epoch FROM clock_timestamp())::float8"};
const pg::Statement kMaxId{"bench_max_id", "SELECT COALESCE(max(id), 0) FROM {s}.gd_instances"};
// Rows of this run (id above the mark) not yet terminal, and the last completion among them.
const pg::Statement kProgress{"bench_progress", R"SQL(
SELECT count(*) FILTER (WHERE status NOT IN ('done', 'failed', 'cancelled')),
       count(*) FILTER (WHERE status <> 'done'),
       COALESCE(extract(epoch FROM max(completed_at)), 0)::float8
FROM {s}.gd_instances WHERE id > $1)SQL"};
const pg::Statement kAwaiting{"bench_awaiting", R"SQL(
SELECT count(*) FROM {s}.gd_instances WHERE id > $1 AND status = 'awaiting_signal')SQL"};
// `large`: rows that finished an hour ago and rows due tomorrow, on the benchmark's queue.
const pg::Statement kFillDone{"bench_fill_done", R"SQL(
INSERT INTO {s}.gd_instances (fsm, queue, step, status, state, result, completed_at)
SELECT 'bench.noop', 'bench', 'perform', 'done', '{}', 'null', now() - interval '1 hour'
FROM generate_series(1, $1::bigint))SQL"};
const pg::Statement kFillScheduled{"bench_fill_scheduled", R"SQL(
INSERT INTO {s}.gd_instances (fsm, queue, step, status, state, eligible_at)
SELECT 'bench.noop', 'bench', 'perform', 'scheduled', '{}', now() + interval '1 day'
FROM generate_series(1, $1::bigint))SQL"};

struct Sample {
  std::int64_t t_us;  // when the measured interval began (wall clock, microseconds)
  double ms;          // its length
};

// Intervals recorded by any process (the first kMaxSamples are kept).
struct SampleLog {
  std::atomic<std::int64_t> count;
  Sample samples[kMaxSamples];

  // Records the interval from `began_us` to now.
  void Record(std::int64_t began_us) {
    const std::int64_t i = count.fetch_add(1);
    if (i < kMaxSamples) {
      samples[i] = {began_us, static_cast<double>(NowMicros() - began_us) / 1000.0};
    }
  }

  // The lengths of the intervals begun since `from_us` (warm-up excluded), sorted.
  std::vector<double> Sorted(std::int64_t from_us) const {
    const std::int64_t n = std::min(count.load(), kMaxSamples);
    std::vector<double> out;
    out.reserve(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      if (samples[i].t_us >= from_us) out.push_back(samples[i].ms);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
};

// Lives in a MAP_SHARED anonymous mapping made before the fork; only lock-free atomics.
struct Shared {
  std::atomic<int> go_nodes;
  std::atomic<int> go_load;
  std::atomic<int> stop;
  std::atomic<int> started;            // nodes whose engine runs
  std::atomic<int> failed;             // a child failed (its message went to stderr)
  std::atomic<std::int64_t> finished;  // final steps run (before their commit)
  std::atomic<std::int64_t> rss_kb[kMaxNodes];
  std::atomic<std::int64_t> load_start_us;
  std::atomic<std::int64_t> load_end_us;
  std::atomic<int> load_done;
  SampleLog latencies;  // insert or signal -> start of the step
  SampleLog inserts;    // latency: each insert's own round trip and commit (counts the inserts)
};
static_assert(std::atomic<std::int64_t>::is_always_lock_free);

Shared* g_shared = nullptr;

void Record(std::int64_t began_us) { g_shared->latencies.Record(began_us); }

void Finished() { g_shared->finished.fetch_add(1); }

struct FanoutState {
  int n = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(FanoutState, n)

// The machines the scenarios run. Steps do no work of their own: the figures are the engine's.
void RegisterBenchMachines() {
  static std::once_flag once;
  std::call_once(once, [] {
    Job<Json>("bench.noop")
        .Queue(kQueue)
        .Perform([](const Json&, JobContext&) {
          Finished();
          return JobResult::Ok();
        })
        .Register();
    // {t}: records the time from t (set just before its insert) to the start of its step.
    Job<Json>("bench.latency")
        .Queue(kQueue)
        .Perform([](const Json& args, JobContext&) {
          Record(args.at("t").get<std::int64_t>());
          Finished();
          return JobResult::Ok();
        })
        .Register();
    Machine<ChainState>("bench.chain")
        .Queue(kQueue)
        .Step("start",
              [](StepContext<ChainState>& ctx) {
                ChainState s = ctx.state();
                if (++s.ran >= s.steps) {
                  Finished();
                  return Done();
                }
                return Next("start", s);
              })
        .Register();
    // Parks until `go`, whose payload {t} is when it was sent; records t -> resumed step.
    Machine<Json>("bench.signal")
        .Queue(kQueue)
        .Step("start",
              [](StepContext<Json>& ctx) {
                const Signal* go = ctx.FindSignal("go");
                if (go == nullptr) return Await({"go"}, ctx.state());
                Record(go->payload.at("t").get<std::int64_t>());
                Finished();
                return Done();
              })
        .Register();
    Machine<FanoutState>("bench.fanout")
        .Queue(kQueue)
        .Step("start",
              [](StepContext<FanoutState>& ctx) {
                std::vector<InsertRequest> children(static_cast<std::size_t>(ctx.state().n),
                                                    InsertRequest{"bench.child", {}, {}});
                return ScheduleChildren("join", std::move(children), ctx.state());
              })
        .Step("join",
              [](StepContext<FanoutState>& ctx) {
                Finished();
                return Done({{"children", ctx.children().size()}});
              })
        .Register();
    Job<Json>("bench.child")
        .Queue(kQueue)
        .Perform([](const Json&, JobContext&) { return JobResult::Ok(); })
        .Register();
  });
}

// The bench's own statements, with the schema filled in.
struct Queries {
  explicit Queries(const std::string& schema)
      : clock(kClock),
        max_id{kMaxId.name, WithSchema(kMaxId.sql, schema)},
        progress{kProgress.name, WithSchema(kProgress.sql, schema)},
        awaiting{kAwaiting.name, WithSchema(kAwaiting.sql, schema)},
        fill_done{kFillDone.name, WithSchema(kFillDone.sql, schema)},
        fill_scheduled{kFillScheduled.name, WithSchema(kFillScheduled.sql, schema)} {}
  pg::Statement clock, max_id, progress, awaiting, fill_done, fill_scheduled;
};

// `conninfo` with synchronous_commit set for every session it opens.
std::string WithSynchronousCommit(const std::string& conninfo, const std::string& value) {
  if (value.empty()) return conninfo;
  const bool uri = conninfo.rfind("postgresql://", 0) == 0 || conninfo.rfind("postgres://", 0) == 0;
  if (uri) {
    const char sep = conninfo.find('?') == std::string::npos ? '?' : '&';
    return conninfo + sep + "options=-csynchronous_commit%3D" + value;
  }
  return conninfo + " options='-csynchronous_commit=" + value + "'";
}

std::int64_t RssKb() {
  std::ifstream statm("/proc/self/statm");
  std::int64_t size = 0;
  std::int64_t resident = 0;
  statm >> size >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

// Ends a child process that failed: its reason on stderr, the parent told.
[[noreturn]] void ChildFailed(const std::string& who, const std::exception& e) {
  fmt::print(stderr, "gen_durable bench: {}: {}\n", who, OneLine(e.what()));
  g_shared->failed.store(1);
  std::fflush(stderr);
  std::_Exit(1);
}

// Calls send(i) for i in [0, total), call i due at start + i / rate whatever the earlier ones
// took (open loop), from a few threads so that one slow call does not hold back the rest.
// Rethrows the first failure once every thread has stopped.
void Paced(std::int64_t total, int rate, const std::function<void(std::int64_t)>& send) {
  std::atomic<std::int64_t> next{0};
  std::exception_ptr error;
  std::mutex error_mu;
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kPacedThreads; ++t) {
    threads.emplace_back([&] {
      try {
        for (std::int64_t i; (i = next.fetch_add(1)) < total;) {
          std::this_thread::sleep_until(start + std::chrono::microseconds(i * 1'000'000 / rate));
          send(i);
        }
      } catch (...) {
        std::lock_guard lock(error_mu);
        if (!error) error = std::current_exception();
        next.store(total);  // the others stop too
      }
    });
  }
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
}

bool WaitFlag(const std::atomic<int>& flag) {
  while (flag.load() == 0) {
    if (g_shared->stop.load() != 0) return false;
    std::this_thread::sleep_for(kChildPoll);
  }
  return true;
}

// A worker node: waits for go, runs an engine on the bench queue until stop.
[[noreturn]] void NodeMain(int index, const BenchArgs& args, const std::string& conninfo,
                           const std::string& schema) {
  if (!WaitFlag(g_shared->go_nodes)) std::_Exit(0);
  try {
    EngineOptions o;
    o.database = conninfo;
    o.schema = schema;
    o.name = "bench";
    o.queues = {{kQueue, QueueConfig{args.concurrency}}};
    o.prefetch = args.prefetch;
    o.inline_next = args.inline_next;
    o.gc = false;  // the retained rows are part of what `large` measures
    auto engine = Engine::Start(o);
    g_shared->started.fetch_add(1);
    while (g_shared->stop.load() == 0) {
      g_shared->rss_kb[index].store(RssKb());
      std::this_thread::sleep_for(kChildPoll);
    }
    engine->Stop();
  } catch (const std::exception& e) {
    ChildFailed(fmt::format("node {}", index), e);
  }
  std::_Exit(0);
}

// The latency load: `rate` single-row inserts per second for `duration_s`, paced open loop,
// each carrying the time just before its insert.
[[noreturn]] void LoadMain(const BenchArgs& args, const std::string& conninfo,
                           const std::string& schema) {
  if (!WaitFlag(g_shared->go_load)) std::_Exit(0);
  try {
    ClientOptions co;
    co.database = conninfo;
    co.schema = schema;
    co.pool_size = kPacedThreads;
    auto client = Client::Connect(co);
    g_shared->load_start_us.store(NowMicros());
    Paced(static_cast<std::int64_t>(args.rate * args.duration_s), args.rate, [&](std::int64_t) {
      InsertOptions io;
      const std::int64_t t = NowMicros();
      io.state = {{"t", t}};
      client->Insert("bench.latency", std::move(io)).value();
      g_shared->inserts.Record(t);
    });
    g_shared->load_end_us.store(NowMicros());
    g_shared->load_done.store(1);
  } catch (const std::exception& e) {
    ChildFailed("load", e);
  }
  std::_Exit(0);
}

struct Children {
  std::vector<pid_t> nodes;
  pid_t load = -1;
  double node_cpu_s = 0;  // user + system, summed over nodes
  long max_rss_kb = 0;

  // Stops every child and collects their resource use. Idempotent.
  void StopAll() {
    g_shared->stop.store(1);
    for (pid_t pid : nodes) Reap(pid, true);
    if (load > 0) Reap(load, false);
    nodes.clear();
    load = -1;
  }

 private:
  void Reap(pid_t pid, bool node) {
    int status = 0;
    rusage ru{};
    while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
    }
    if (!node) return;
    node_cpu_s += static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                  static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    max_rss_kb = std::max(max_rss_kb, ru.ru_maxrss);
  }
};

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(rank, sorted.size() - 1)];
}

void AddLatency(Json& out, const std::vector<double>& sorted) {
  out["samples"] = sorted.size();
  out["p50_ms"] = Percentile(sorted, 0.50);
  out["p90_ms"] = Percentile(sorted, 0.90);
  out["p99_ms"] = Percentile(sorted, 0.99);
  out["max_ms"] = sorted.empty() ? 0.0 : sorted.back();
}

double Round(double v, int digits) {
  const double scale = std::pow(10.0, digits);
  return std::round(v * scale) / scale;
}

class Run {
 public:
  Run(const BenchArgs& args, std::string conninfo, std::string schema)
      : args_(args), conninfo_(std::move(conninfo)), schema_(std::move(schema)), q_(schema_) {}

  Json Execute() {
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

 private:
  template <typename F>
  pid_t Fork(F body) {
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) body();  // never returns
    return pid;
  }

  void Connect() {
    ClientOptions co;
    co.database = conninfo_;
    co.schema = schema_;
    co.pool_size = kPacedThreads;
    client_ = Client::Connect(co);
    client_->Migrate();
    conn_ = pg::Connection::Open(conninfo_, "gen_durable bench");
  }

  Json Scenario() {
    Connect();
    const std::string& s = args_.scenario;
    if (s == "jobs" || s == "large") return Jobs(s == "large");
    if (s == "chain") return Chain();
    if (s == "insert") return Insert();
    if (s == "latency") return Latency();
    if (s == "signal") return SignalLatency();
    return Fanout();
  }

  double DbClock() { return conn_->Execute(q_.clock).Double(0, 0); }

  // Inserts `n` instances of `fsm` in statements of --batch rows; returns their ids.
  std::vector<std::int64_t> InsertMany(const std::string& fsm, std::int64_t n,
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

  // The highest id so far: the rows of this run are the ones above it.
  std::int64_t Mark() { return conn_->Execute(q_.max_id).Int64(0, 0); }

  void Check() const {
    if (g_shared->failed.load() != 0) throw std::runtime_error("a benchmark process failed");
  }

  // Starts the nodes; returns the database time just before.
  double Go() {
    const double t0 = DbClock();
    g_shared->go_nodes.store(1);
    return t0;
  }

  void WaitStarted() {
    while (g_shared->started.load() < args_.nodes) {
      Check();
      std::this_thread::sleep_for(kChildPoll);
    }
  }

  std::int64_t RssSumKb() const {
    std::int64_t sum = 0;
    for (int i = 0; i < args_.nodes; ++i) sum += g_shared->rss_kb[i].load();
    return sum;
  }

  // Waits until `expected` final steps ran and every row above `mark` is terminal; returns the
  // last completion time (database clock). Samples the nodes' RSS at 10% of the way.
  double WaitDone(std::int64_t mark, std::int64_t expected) {
    const auto deadline = Clock::now() + std::chrono::minutes(30);
    while (g_shared->finished.load() < expected) {
      Check();
      if (rss_start_kb_ == 0 && g_shared->finished.load() * 10 >= expected) {
        rss_start_kb_ = RssSumKb();
      }
      if (Clock::now() > deadline) throw std::runtime_error("benchmark timed out");
      std::this_thread::sleep_for(kChildPoll);
    }
    for (;;) {
      const auto r = conn_->Execute(q_.progress, pg::Params().Add(mark));
      if (r.Int64(0, 0) == 0) {
        if (r.Int64(0, 1) != 0) {
          throw std::runtime_error(fmt::format("{} instances did not end done", r.Int64(0, 1)));
        }
        rss_end_kb_ = RssSumKb();
        return r.Double(0, 2);
      }
      Check();
      if (Clock::now() > deadline) throw std::runtime_error("benchmark timed out");
      std::this_thread::sleep_for(Millis{5});
    }
  }

  Json Base() const {
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
                       {"synchronous_commit",
                        args_.synchronous_commit.empty() ? "server" : args_.synchronous_commit}};
    return out;
  }

  std::int64_t count() const {
    if (args_.count > 0) return args_.count;
    const std::string& s = args_.scenario;
    if (s == "chain" || s == "fanout") return 10'000;
    if (s == "signal") return 1'000;
    if (s == "latency") return static_cast<std::int64_t>(args_.rate * args_.duration_s);
    return 100'000;
  }

  void AddRss(Json& out) const {
    out["rss_start_mb"] = Round(static_cast<double>(rss_start_kb_) / 1024.0, 1);
    out["rss_end_mb"] = Round(static_cast<double>(rss_end_kb_) / 1024.0, 1);
  }

  Json Jobs(bool large) {
    const std::int64_t n = count();
    Json out = Base();
    if (large) {
      fmt::print(stderr, "bench: filling {} done and {} scheduled rows\n", args_.large_rows,
                 args_.large_rows);
      conn_->Execute(q_.fill_done, pg::Params().Add(args_.large_rows));
      conn_->Execute(q_.fill_scheduled, pg::Params().Add(args_.large_rows));
      conn_->Exec(WithSchema("VACUUM ANALYZE {s}.gd_instances", schema_));
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

  Json Chain() {
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

  Json Insert() {
    const std::int64_t n = count();
    const auto start = Clock::now();
    InsertMany("bench.noop", n, [] { return Json::object(); });
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    Json out = Base();
    out["elapsed_s"] = Round(elapsed, 3);
    out["inserts_per_s"] = Round(static_cast<double>(n) / elapsed, 1);
    return out;
  }

  Json Latency() {
    const std::int64_t mark = Mark();
    Go();
    WaitStarted();
    std::this_thread::sleep_for(Millis{200});  // the engines' first idle poll is behind them
    g_shared->go_load.store(1);
    while (g_shared->load_done.load() == 0) {
      Check();
      std::this_thread::sleep_for(Millis{10});
    }
    const std::int64_t inserted = g_shared->inserts.count.load();
    WaitDone(mark, inserted);
    const double load_s =
        static_cast<double>(g_shared->load_end_us.load() - g_shared->load_start_us.load()) / 1e6;
    Json out = Base();
    out["count"] = inserted;
    out["rate"] = args_.rate;
    out["duration_s"] = args_.duration_s;
    out["offered_per_s"] = Round(static_cast<double>(inserted) / load_s, 1);
    const std::int64_t from =
        g_shared->load_start_us.load() + static_cast<std::int64_t>(kLatencyWarmupS * 1e6);
    AddLatency(out, g_shared->latencies.Sorted(from));
    // The insert's own round trip and commit, which the latency above includes.
    const auto inserts = g_shared->inserts.Sorted(from);
    out["insert_p50_ms"] = Percentile(inserts, 0.50);
    out["insert_p99_ms"] = Percentile(inserts, 0.99);
    return out;
  }

  Json SignalLatency() {
    const std::int64_t n = count();
    const std::int64_t mark = Mark();
    const std::vector<std::int64_t> ids =
        InsertMany("bench.signal", n, [] { return Json::object(); });
    Go();
    const auto deadline = Clock::now() + std::chrono::minutes(5);
    while (conn_->Execute(q_.awaiting, pg::Params().Add(mark)).Int64(0, 0) < n) {
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
    AddLatency(out, g_shared->latencies.Sorted(0));
    return out;
  }

  Json Fanout() {
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

  const BenchArgs& args_;
  std::string conninfo_;
  std::string schema_;
  Queries q_;
  Children children_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<pg::Connection> conn_;
  std::int64_t rss_start_kb_ = 0;
  std::int64_t rss_end_kb_ = 0;
};

void Validate(const BenchArgs& a) {
  static const char* kScenarios[] = {"jobs",   "chain",  "insert", "latency",
                                     "signal", "fanout", "large"};
  if (std::none_of(std::begin(kScenarios), std::end(kScenarios),
                   [&](const char* s) { return a.scenario == s; })) {
    throw UsageError("unknown scenario '" + a.scenario +
                     "' (jobs, chain, insert, latency, signal, fanout, large)");
  }
  if (a.count < 0) throw UsageError("--count must be >= 0");
  if (a.steps < 1) throw UsageError("--steps must be >= 1");
  if (a.nodes < 1 || a.nodes > kMaxNodes) {
    throw UsageError(fmt::format("--nodes must be in 1..{}", kMaxNodes));
  }
  if (a.concurrency < 1) throw UsageError("--concurrency must be >= 1");
  if (a.prefetch < 0) throw UsageError("--prefetch must be >= 0");
  if (a.rate < 1) throw UsageError("--rate must be >= 1");
  if (!(a.duration_s > 0)) throw UsageError("--duration-s must be > 0");
  if (a.large_rows < 0) throw UsageError("--large-rows must be >= 0");
  if (a.batch < 1) throw UsageError("--batch must be >= 1");
}

}  // namespace

int RunBench(const GlobalOptions& global, const BenchArgs& args) {
  Validate(args);
  RegisterBenchMachines();
  Session session(global);
  void* mem = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) throw std::runtime_error("mmap failed");
  g_shared = new (mem) Shared;  // the mapping is zeroed: no need to touch every page
  Run run(args, WithSynchronousCommit(session.conninfo(), args.synchronous_commit),
          session.schema());
  const Json out = run.Execute();
  fmt::print("{}\n", out.dump());
  return kExitOk;
}

}  // namespace gen_durable::tools
