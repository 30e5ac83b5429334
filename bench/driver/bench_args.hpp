// What a benchmark run is asked for: the scenario and its knobs, as `gen_durable bench` parses
// them (docs/performance.md).
#pragma once

#include <cstdint>
#include <string>

namespace gen_durable::benchmark {

// The scenarios, in the order the CLI names them.
inline constexpr const char* kScenarios[] = {"jobs",   "chain",  "insert", "latency",
                                             "signal", "fanout", "large",  "soak"};
// Worker processes a run may fork (each has its slots in the shared map).
inline constexpr int kMaxNodes = 64;

struct BenchArgs {
  // jobs, chain, insert, latency, signal, fanout, large, soak
  std::string scenario;
  // Instances (jobs, chain, insert, signal, large), or children (fanout). 0: the scenario's
  // default (100 000 jobs / insert / large, 10 000 chain / fanout, 1 000 signal).
  std::int64_t count = 0;
  int steps = 5;  // chain: steps per instance
  // Steps here do no work, so wide slots and a deep prefetch make large claim and commit
  // batches (docs/performance.md, "Tuning").
  int concurrency = 64;    // worker slots per node
  int prefetch = 64;       // rows claimed per node beyond its free slots
  int nodes = 1;           // worker processes
  int rate = 1'000;        // latency: inserts/s offered; signal: signals/s sent; soak: instances/s
  double duration_s = 10;  // latency, soak: how long the load runs
  double sample_s = 10;    // soak: seconds between two samples
  std::int64_t gc_retention_ms = 30'000;  // soak: terminal rows kept this long before GC
  std::int64_t gc_interval_ms = 5'000;    // soak: GC sweep period; 0: no GC
  std::int64_t large_rows = 1'000'000;    // large: done rows and future rows present
  int batch = 1'000;  // rows per insert statement (setup and the insert scenario)
  bool inline_next = true;
  bool history = false;  // record every step in gd_history (its cost: docs/performance.md)
  std::string synchronous_commit;  // empty: the server's setting; else on, off, local, ...
};

}  // namespace gen_durable::benchmark
