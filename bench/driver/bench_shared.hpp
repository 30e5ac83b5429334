// What the processes of a benchmark run share: one anonymous memory map made before the fork
// (flags, progress, latency samples, each node's counters), and the small helpers every process
// of a run uses.
#pragma once

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "bench_args.hpp"                 // bench/driver/
#include "gen_durable/demo_machines.hpp"  // tools/
#include "gen_durable/options.hpp"

namespace gen_durable::benchmark {

using Clock = std::chrono::steady_clock;
using tools::NowMicros;

// The queue every bench machine runs on.
inline constexpr const char* kQueue = "bench";
inline constexpr std::int64_t kMaxSamples = 1 << 21;
inline constexpr Millis kChildPoll{2};
inline constexpr double kLatencyWarmupS = 1.0;
// Threads (and client connections) sending a paced load: inserts for latency, signals.
inline constexpr int kPacedThreads = 4;
// The soak's load inserts what is due every tick in one statement (a commit per instance would
// make the sender, not the engine, the limit on 2 cores), from a few threads so that a slow
// commit does not hold back the next tick.
inline constexpr int kSoakThreads = 4;
inline constexpr int kSoakTicksPerS = 100;
// Soak: the mix of every kSoakMix instances sent, one each of a chain, a signalled wait and a
// fan-out, the rest plain jobs.
inline constexpr int kSoakMix = 20;
inline constexpr int kSoakChainSteps = 5;
inline constexpr int kSoakFanoutChildren = 4;
inline constexpr Millis kSoakReapInterval{5'000};
// How long the soak waits, after its load, for the last instances to finish.
inline constexpr auto kSoakDrainLimit = std::chrono::minutes(2);

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
double HistogramPercentile(const std::vector<std::int64_t>& counts, double p);

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

// The run's shared map (MapShared made it).
Shared& shared();
// Makes the shared map; before the fork, once per process.
void MapShared();

// Records, in the latency log, the interval from `began_us` to now.
inline void Record(std::int64_t began_us) { shared().latencies.Record(began_us); }
// Counts a final step run.
inline void Finished() { shared().finished.fetch_add(1); }

// This process's resident memory, in KiB.
std::int64_t RssKb();
// Ends a child process that failed: its reason on stderr, the parent told.
[[noreturn]] void ChildFailed(const std::string& who, const std::exception& e);
// Waits until `flag` is set (true), or the run stops first (false).
bool WaitFlag(const std::atomic<int>& flag);

// The p-quantile (0..1) of sorted values; 0 when empty.
double Percentile(const std::vector<double>& sorted, double p);
// Adds the count and the percentiles of sorted latencies to `out`.
void AddLatency(Json& out, const std::vector<double>& sorted);
// `v` rounded to `digits` decimals.
double Round(double v, int digits);

}  // namespace gen_durable::benchmark
