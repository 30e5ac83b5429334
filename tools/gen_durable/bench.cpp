// `gen_durable bench`: the engine's own benchmark scenarios.
//
// Shape of a run: the parent process forks its worker nodes (and, for `latency`, a load
// process) before it opens any connection or starts any thread, so the children start clean.
// The parent inserts the scenario's rows untimed, notes the database clock, lets the nodes
// start their engines, and waits until every row it inserted is terminal. Elapsed time is
// measured on the database clock: from just before the nodes start to the last completed_at.
// The processes share one anonymous memory map for flags, progress and latency samples.
//
// `soak` differs: the load process sends a steady mixed load for --duration-s while the parent
// samples the processes and the database every --sample-s and prints each sample as it goes;
// GC runs with a short retention so that the table can reach a steady size.
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
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gen_durable/demo_machines.hpp"  // tools/
#include "gen_durable/engine.hpp"
#include "gen_durable/gen_durable.hpp"
#include "gen_durable/levelling.hpp"  // tools/
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
// The soak's load inserts what is due every tick in one statement (a commit per instance would
// make the sender, not the engine, the limit on 2 cores), from a few threads so that a slow
// commit does not hold back the next tick.
constexpr int kSoakThreads = 4;
constexpr int kSoakTicksPerS = 100;
// Soak: the mix of every kSoakMix instances sent, one each of a chain, a signalled wait and a
// fan-out, the rest plain jobs.
constexpr int kSoakMix = 20;
constexpr int kSoakChainSteps = 5;
constexpr int kSoakFanoutChildren = 4;
constexpr Millis kSoakReapInterval{5'000};
// How long the soak waits, after its load, for the last instances to finish.
constexpr auto kSoakDrainLimit = std::chrono::minutes(2);

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
const pg::Statement kBackendPid{"bench_backend_pid", "SELECT pg_backend_pid()"};
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

// Latencies by log-spaced buckets of ~4.4% (16 per power of two of microseconds): lock-free,
// so the parent can read a running count while the nodes add to it.
struct Histogram {
  static constexpr int kPerOctave = 16;
  static constexpr int kBuckets = 512;  // up to 2^32 us
  std::atomic<std::int64_t> counts[kBuckets];

  static int Bucket(std::int64_t us) {
    const double b = std::floor(
        std::log2(1.0 + static_cast<double>(std::max<std::int64_t>(us, 0))) * kPerOctave);
    return std::min(kBuckets - 1, static_cast<int>(b));
  }
  // A bucket's middle, in milliseconds.
  static double Ms(int bucket) { return (std::exp2((bucket + 0.5) / kPerOctave) - 1.0) / 1000.0; }
  void Add(std::int64_t us) { counts[Bucket(us)].fetch_add(1, std::memory_order_relaxed); }
  std::vector<std::int64_t> Snapshot() const {
    std::vector<std::int64_t> out(kBuckets);
    for (int i = 0; i < kBuckets; ++i) out[static_cast<std::size_t>(i)] = counts[i].load();
    return out;
  }
};

// The p-quantile (0..1) of bucket counts, in milliseconds; 0 when empty.
double HistogramPercentile(const std::vector<std::int64_t>& counts, double p) {
  std::int64_t total = 0;
  for (auto c : counts) total += c;
  if (total == 0) return 0;
  const auto rank = std::max<std::int64_t>(
      1, static_cast<std::int64_t>(std::ceil(p * static_cast<double>(total))));
  std::int64_t seen = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    seen += counts[i];
    if (seen >= rank) return Histogram::Ms(static_cast<int>(i));
  }
  return Histogram::Ms(Histogram::kBuckets - 1);
}

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
  // soak
  std::atomic<std::int64_t> sent;  // instances the load inserted (children not counted)
  std::atomic<std::int64_t> load_rss_kb;
  std::atomic<std::int64_t> steps[kMaxNodes];  // each node's engine counters
  std::atomic<std::int64_t> gc_deleted[kMaxNodes];
  std::atomic<std::int64_t> stale[kMaxNodes];
  std::atomic<std::int64_t> reaped[kMaxNodes];
  Histogram soak_latency;  // insert -> start of a soak job's step
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
    // soak: {t} as bench.latency, into the histogram the parent reads while the run goes on.
    Job<Json>("bench.soak_job")
        .Queue(kQueue)
        .Perform([](const Json& args, JobContext&) {
          g_shared->soak_latency.Add(NowMicros() - args.at("t").get<std::int64_t>());
          Finished();
          return JobResult::Ok();
        })
        .Register();
    // soak: parks until `go` (sent right after the insert, so it may arrive before the park).
    Machine<Json>("bench.soak_wait")
        .Queue(kQueue)
        .Step("start",
              [](StepContext<Json>& ctx) {
                if (ctx.FindSignal("go") == nullptr) return Await({"go"}, ctx.state());
                Finished();
                return Done();
              })
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
        fill_scheduled{kFillScheduled.name, WithSchema(kFillScheduled.sql, schema)},
        backlog{kBacklog.name, WithSchema(kBacklog.sql, schema)},
        db_stats(kDbStats) {}
  pg::Statement clock, max_id, progress, awaiting, fill_done, fill_scheduled, backlog, db_stats;
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
// took (open loop), from `threads` threads so that one slow call does not hold back the rest.
// Rethrows the first failure once every thread has stopped.
void Paced(std::int64_t total, int rate, const std::function<void(std::int64_t)>& send,
           int threads_n = kPacedThreads) {
  std::atomic<std::int64_t> next{0};
  std::exception_ptr error;
  std::mutex error_mu;
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < threads_n; ++t) {
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
    o.history = args.history;
    if (args.scenario == "soak") {
      // A short retention, swept often, so that the table reaches a steady size.
      o.gc = args.gc_interval_ms > 0;
      if (o.gc) o.gc_interval = Millis{args.gc_interval_ms};
      o.gc_retention = Millis{args.gc_retention_ms};
      o.reap_interval = kSoakReapInterval;
    } else {
      o.gc = false;  // the retained rows are part of what `large` measures
    }
    auto engine = Engine::Start(o);
    g_shared->started.fetch_add(1);
    while (g_shared->stop.load() == 0) {
      g_shared->rss_kb[index].store(RssKb());
      const EngineStats st = engine->stats();
      g_shared->steps[index].store(st.steps);
      g_shared->gc_deleted[index].store(st.gc_deleted);
      g_shared->stale[index].store(st.stale);
      g_shared->reaped[index].store(st.reaped);
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

// The soak's load: `rate` instances per second for `duration_s`, paced open loop in ticks of
// 1/kSoakTicksPerS s, each tick's instances inserted in one statement. Of every kSoakMix
// instances: a chain, a wait signalled right after its insert, a fan-out, and plain jobs.
[[noreturn]] void SoakLoadMain(const BenchArgs& args, const std::string& conninfo,
                               const std::string& schema) {
  if (!WaitFlag(g_shared->go_load)) std::_Exit(0);
  try {
    ClientOptions co;
    co.database = conninfo;
    co.schema = schema;
    co.pool_size = kSoakThreads;
    auto client = Client::Connect(co);
    g_shared->load_rss_kb.store(RssKb());
    g_shared->load_start_us.store(NowMicros());
    const auto ticks = static_cast<std::int64_t>(args.duration_s * kSoakTicksPerS);
    // Instances [first(k), first(k + 1)) are due in tick k.
    const auto first = [&](std::int64_t k) { return k * args.rate / kSoakTicksPerS; };
    Paced(
        ticks, kSoakTicksPerS,
        [&](std::int64_t k) {
          std::vector<InsertRequest> batch;
          const std::int64_t t = NowMicros();
          for (std::int64_t i = first(k); i < first(k + 1); ++i) {
            InsertRequest r{"bench.soak_job", {}, {}};
            switch (i % kSoakMix) {
              case 5:
                r.fsm = "bench.chain";
                r.options.state = ChainState{kSoakChainSteps, 0};
                break;
              case 10:
                r.fsm = "bench.soak_wait";
                break;
              case 15:
                r.fsm = "bench.fanout";
                r.options.state = FanoutState{kSoakFanoutChildren};
                break;
              default:
                r.options.state = {{"t", t}};
            }
            batch.push_back(std::move(r));
          }
          if (batch.empty()) return;
          const std::vector<std::int64_t> ids = client->InsertAll(batch);
          if (ids.size() != batch.size()) throw std::runtime_error("an insert was dropped");
          for (std::size_t j = 0; j < batch.size(); ++j) {
            if (batch[j].fsm == "bench.soak_wait") client->Signal(ids[j], "go", Json{}).value();
          }
          g_shared->sent.fetch_add(static_cast<std::int64_t>(batch.size()));
          if (k % kSoakTicksPerS == 0) g_shared->load_rss_kb.store(RssKb());
        },
        kSoakThreads);
    g_shared->load_end_us.store(NowMicros());
    g_shared->load_done.store(1);
    // The sessions stay open until the end, so that the last samples count them as before.
    while (g_shared->stop.load() == 0) std::this_thread::sleep_for(Millis{10});
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
    if (s == "soak") return Soak();
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
                       {"history", args_.history},
                       {"synchronous_commit",
                        args_.synchronous_commit.empty() ? "server" : args_.synchronous_commit}};
    return out;
  }

  std::int64_t count() const {
    if (args_.count > 0) return args_.count;
    const std::string& s = args_.scenario;
    if (s == "chain" || s == "fanout") return 10'000;
    if (s == "signal") return 1'000;
    if (s == "latency" || s == "soak") {
      return static_cast<std::int64_t>(args_.rate * args_.duration_s);
    }
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

  // What one soak sample reads.
  struct SoakReading {
    Clock::time_point at;
    std::int64_t sent = 0;
    std::int64_t finished = 0;
    std::int64_t steps = 0;
    std::int64_t gc_deleted = 0;
    std::vector<std::int64_t> latency;
  };

  SoakReading ReadCounters() const {
    SoakReading r;
    r.at = Clock::now();
    r.sent = g_shared->sent.load();
    r.finished = g_shared->finished.load();
    for (int i = 0; i < args_.nodes; ++i) {
      r.steps += g_shared->steps[i].load();
      r.gc_deleted += g_shared->gc_deleted[i].load();
    }
    r.latency = g_shared->soak_latency.Snapshot();
    return r;
  }

  // The private memory (RssAnon) of this database's client backends, in MiB; nullopt when the
  // server does not run on this machine (its pids are not postgres processes here).
  std::optional<double> BackendAnonMb() {
    if (!server_local_) return std::nullopt;
    const auto pids = conn_->Execute(kBackendPids);
    std::int64_t kb = 0;
    for (int i = 0; i < pids.rows(); ++i) {
      std::ifstream status("/proc/" + std::to_string(pids.Int64(i, 0)) + "/status");
      for (std::string line; std::getline(status, line);) {
        if (line.rfind("RssAnon:", 0) == 0) {
          kb += std::stoll(line.substr(8));
          break;
        }
      }
    }
    return static_cast<double>(kb) / 1024.0;
  }

  // One sample over the interval since `prev`: printed at once, and returned.
  Json SoakSample(const SoakReading& prev, const SoakReading& now, double elapsed_s) {
    const double dt = std::chrono::duration<double>(now.at - prev.at).count();
    Json j = {{"type", "sample"}, {"elapsed_s", Round(elapsed_s, 1)}};
    const auto sent = now.sent - prev.sent;
    const auto completed = now.finished - prev.finished;
    j["sent"] = sent;
    j["offered_per_s"] = Round(static_cast<double>(sent) / dt, 1);
    j["completed"] = completed;
    j["completed_per_s"] = Round(static_cast<double>(completed) / dt, 1);
    j["steps_per_s"] = Round(static_cast<double>(now.steps - prev.steps) / dt, 1);
    const auto backlog = conn_->Execute(q_.backlog);
    j["backlog"] = backlog.Int64(0, 0);
    j["parked"] = backlog.Int64(0, 1);
    std::vector<std::int64_t> latency(now.latency.size());
    for (std::size_t i = 0; i < latency.size(); ++i) latency[i] = now.latency[i] - prev.latency[i];
    j["p50_ms"] = Round(HistogramPercentile(latency, 0.50), 2);
    j["p99_ms"] = Round(HistogramPercentile(latency, 0.99), 2);
    Json nodes = Json::array();
    for (int i = 0; i < args_.nodes; ++i) {
      nodes.push_back(Round(static_cast<double>(g_shared->rss_kb[i].load()) / 1024.0, 1));
    }
    j["rss_mb"] = Round(static_cast<double>(RssSumKb()) / 1024.0, 1);
    j["node_rss_mb"] = std::move(nodes);
    j["load_rss_mb"] = Round(static_cast<double>(g_shared->load_rss_kb.load()) / 1024.0, 1);
    if (const auto pg_mb = BackendAnonMb()) j["pg_backend_mb"] = Round(*pg_mb, 1);
    const auto db = conn_->Execute(q_.db_stats, pg::Params().Add(schema_));
    j["connections"] = db.Int64(0, 0);
    j["live_tuples"] = db.Int64(0, 1);
    j["dead_tuples"] = db.Int64(0, 2);
    j["autovacuum_count"] = db.Int64(0, 3);
    j["table_mb"] = Round(static_cast<double>(db.Int64(0, 4)) / 1048576.0, 2);
    j["indexes_mb"] = Round(static_cast<double>(db.Int64(0, 7)) / 1048576.0, 2);  // of table_mb
    j["signals_dead_tuples"] = db.Int64(0, 5);
    j["signals_mb"] = Round(static_cast<double>(db.Int64(0, 6)) / 1048576.0, 2);
    j["gc_deleted"] = now.gc_deleted - prev.gc_deleted;
    fmt::print("{}\n", j.dump());
    std::fflush(stdout);
    return j;
  }

  // Sleeps until `t`, watching for a failed child.
  void SleepUntil(Clock::time_point t) const {
    while (Clock::now() < t) {
      Check();
      std::this_thread::sleep_for(std::min<Clock::duration>(Millis{50}, t - Clock::now()));
    }
  }

  // The series the verdict judges, with what counts as levelling off for each.
  std::vector<LevelRule> SoakRules() const {
    const double rate = args_.rate;
    return {
        // Sums over the nodes: allocator arenas and caches fill early, then stay.
        {"rss_mb", LevelRule::kMustNotGrow, LevelRule::kMedian, 2.0 * args_.nodes},
        {"load_rss_mb", LevelRule::kMustNotGrow, LevelRule::kMedian, 2.0},
        {"pg_backend_mb", LevelRule::kMustNotGrow, LevelRule::kMedian, 4.0},
        {"connections", LevelRule::kMustNotGrow, LevelRule::kMedian, 1.0},
        // GC deletes in sweeps: the live rows saw-tooth with the GC interval.
        {"live_tuples", LevelRule::kMustNotGrow, LevelRule::kMedian, 1'000.0},
        // Dead tuples saw-tooth with autovacuum (a minute apart by default): the peaks.
        {"dead_tuples", LevelRule::kMustNotGrow, LevelRule::kMax, 1'000.0},
        {"table_mb", LevelRule::kMustNotGrow, LevelRule::kMax, 1.0},
        {"signals_mb", LevelRule::kMustNotGrow, LevelRule::kMax, 1.0},
        // Half a second of load: the backlog breathes with claim batches and commits.
        {"backlog", LevelRule::kMustNotGrow, LevelRule::kMedian, std::max(100.0, rate / 2)},
        {"completed_per_s", LevelRule::kMustNotDrop, LevelRule::kMedian,
         std::max(5.0, rate * 0.02)},
    };
  }

  // The verdict over the samples taken after `from_s`: per series, and overall (true only when
  // every series was judged and levels off).
  Json SoakVerdict(const std::vector<Json>& samples, double from_s) const {
    Json series = Json::object();
    bool all = true;
    bool judged = true;
    for (const LevelRule& rule : SoakRules()) {
      std::vector<double> values;
      for (const Json& s : samples) {
        if (s.at("elapsed_s").get<double>() > from_s && s.contains(rule.series)) {
          values.push_back(s.at(rule.series).get<double>());
        }
      }
      if (values.empty()) continue;  // not measured here (pg_backend_mb on a remote server)
      const LevelVerdict v = Judge(values, rule);
      Json j = {{"samples", values.size()},
                {"stat", rule.statistic == LevelRule::kMax ? "max" : "median"},
                {"earlier", Round(v.earlier, 2)},
                {"later", Round(v.later, 2)},
                {"change", Round(v.change, 2)},
                {"allowed", Round(v.allowed, 2)}};
      if (rule.direction == LevelRule::kMustNotDrop) j["must_not"] = "drop";
      j["levels_off"] = v.judged ? Json(v.levels_off) : Json(nullptr);
      series[rule.series] = std::move(j);
      judged = judged && v.judged;
      all = all && (!v.judged || v.levels_off);
    }
    Json out = {{"series", std::move(series)}};
    out["levels_off"] = !all ? Json(false) : judged ? Json(true) : Json(nullptr);
    return out;
  }

  Json Soak() {
    {
      // Our own session's server process: is it a postgres process of this machine?
      const auto pid = conn_->Execute(kBackendPid).Int64(0, 0);
      std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline");
      std::string head;
      std::getline(cmdline, head, '\0');
      server_local_ = head.rfind("postgres", 0) == 0;
    }
    Go();
    WaitStarted();
    std::this_thread::sleep_for(Millis{200});  // the engines' first idle poll is behind them
    const SoakReading first = ReadCounters();
    const auto start = first.at;
    g_shared->go_load.store(1);
    const auto sample =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(args_.sample_s));
    const auto n_samples = static_cast<int>(std::floor(args_.duration_s / args_.sample_s + 1e-9));
    std::vector<Json> samples;
    SoakReading prev = first;
    for (int k = 1; k <= n_samples; ++k) {
      SleepUntil(start + k * sample);
      SoakReading now = ReadCounters();
      samples.push_back(
          SoakSample(prev, now, std::chrono::duration<double>(now.at - start).count()));
      prev = std::move(now);
    }
    while (g_shared->load_done.load() == 0) {
      Check();
      std::this_thread::sleep_for(Millis{10});
    }
    // Drain: every instance sent finished, nothing left waiting.
    const auto load_end = Clock::now();
    const std::int64_t sent = g_shared->sent.load();
    bool drained = false;
    while (Clock::now() < load_end + kSoakDrainLimit) {
      Check();
      if (g_shared->finished.load() >= sent) {
        const auto backlog = conn_->Execute(q_.backlog);
        if (backlog.Int64(0, 0) + backlog.Int64(0, 1) + backlog.Int64(0, 2) == 0) {
          drained = true;
          break;
        }
      }
      std::this_thread::sleep_for(Millis{20});
    }
    const SoakReading last = ReadCounters();
    const double load_s =
        static_cast<double>(g_shared->load_end_us.load() - g_shared->load_start_us.load()) / 1e6;
    // Judged once the warm-up (the first third) is over and GC has had time to delete: rows
    // finished at the start must have passed the retention and met a sweep.
    double from_s = args_.duration_s / 3;
    if (args_.gc_interval_ms > 0) {
      from_s =
          std::max(from_s, static_cast<double>(args_.gc_retention_ms + args_.gc_interval_ms) / 1e3);
    }
    Json out = Base();
    out["type"] = "summary";
    out["rate"] = args_.rate;
    out["duration_s"] = args_.duration_s;
    out["sample_s"] = args_.sample_s;
    out["settings"]["gc_retention_ms"] = args_.gc_retention_ms;
    out["settings"]["gc_interval_ms"] = args_.gc_interval_ms;
    out["settings"]["reap_interval_ms"] = kSoakReapInterval.count();
    out["mix"] = {{"job", kSoakMix - 3},
                  {"chain", 1},
                  {"signalled_wait", 1},
                  {"fanout", 1},
                  {"chain_steps", kSoakChainSteps},
                  {"fanout_children", kSoakFanoutChildren}};
    out["samples"] = samples.size();
    out["sent"] = sent;
    out["offered_per_s"] = Round(static_cast<double>(sent) / load_s, 1);
    out["completed"] = last.finished - first.finished;
    out["steps"] = last.steps - first.steps;
    out["gc_deleted"] = last.gc_deleted - first.gc_deleted;
    std::int64_t stale = 0;
    std::int64_t reaped = 0;
    for (int i = 0; i < args_.nodes; ++i) {
      stale += g_shared->stale[i].load();
      reaped += g_shared->reaped[i].load();
    }
    out["stale"] = stale;
    out["reaped"] = reaped;
    out["drained"] = drained;
    out["drain_s"] = Round(std::chrono::duration<double>(last.at - load_end).count(), 2);
    out["p50_ms"] = Round(HistogramPercentile(last.latency, 0.50), 2);
    out["p99_ms"] = Round(HistogramPercentile(last.latency, 0.99), 2);
    out["judged_from_s"] = Round(from_s, 1);
    Json verdict = SoakVerdict(samples, from_s);
    out["series"] = std::move(verdict["series"]);
    out["levels_off"] = std::move(verdict["levels_off"]);
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
  bool server_local_ = false;  // soak: the server's processes are readable in /proc here
};

void Validate(const BenchArgs& a) {
  static const char* kScenarios[] = {"jobs",   "chain",  "insert", "latency",
                                     "signal", "fanout", "large",  "soak"};
  if (std::none_of(std::begin(kScenarios), std::end(kScenarios),
                   [&](const char* s) { return a.scenario == s; })) {
    throw UsageError("unknown scenario '" + a.scenario +
                     "' (jobs, chain, insert, latency, signal, fanout, large, soak)");
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
  if (!(a.sample_s > 0)) throw UsageError("--sample-s must be > 0");
  if (a.scenario == "soak" && a.sample_s > a.duration_s) {
    throw UsageError("--sample-s must not exceed --duration-s");
  }
  if (a.gc_retention_ms < 0) throw UsageError("--gc-retention-ms must be >= 0");
  if (a.gc_interval_ms < 0) throw UsageError("--gc-interval-ms must be >= 0 (0: no GC)");
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
  if (args.scenario != "soak") return kExitOk;
  std::string why;
  if (!out.at("drained").get<bool>()) why = "the load did not drain; ";
  if (out.at("levels_off").is_null()) {
    why += fmt::format("too few samples after {} s to judge the levelling",
                       out.at("judged_from_s").dump());
  } else if (!out.at("levels_off").get<bool>()) {
    std::string growing;
    for (const auto& [name, v] : out.at("series").items()) {
      if (v.at("levels_off") == Json(false)) growing += (growing.empty() ? "" : ", ") + name;
    }
    why += "did not level off: " + growing;
  }
  if (why.empty()) return kExitOk;
  if (why.size() >= 2 && why.compare(why.size() - 2, 2, "; ") == 0) why.resize(why.size() - 2);
  fmt::print(stderr, "gen_durable: soak: {}\n", why);
  return kExitFailure;
}

}  // namespace gen_durable::tools
