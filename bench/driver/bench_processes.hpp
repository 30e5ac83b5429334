// The child processes of a benchmark run: the worker nodes (an engine each) and the load
// process of `latency` and `soak`, forked before the parent opens a connection or starts a
// thread; and the open-loop pacing their loads (and the parent's signals) keep to.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench_args.hpp"    // bench/driver/
#include "bench_shared.hpp"  // bench/driver/
#include "gen_durable/client.hpp"

namespace gen_durable::benchmark {

// A client of the run's database with `pool_size` sessions.
std::unique_ptr<Client> ConnectClient(const std::string& conninfo, const std::string& schema,
                                      int pool_size);

// Calls send(i) for i in [0, total), call i due at start + i / rate whatever the earlier ones
// took (open loop), from `threads` threads so that one slow call does not hold back the rest.
// Rethrows the first failure once every thread has stopped.
void Paced(std::int64_t total, int rate, const std::function<void(std::int64_t)>& send,
           int threads_n = kPacedThreads);

// A worker node: waits for go, runs an engine on the bench queue until stop.
[[noreturn]] void NodeMain(int index, const BenchArgs& args, const std::string& conninfo,
                           const std::string& schema);
// The latency load: `rate` single-row inserts per second for `duration_s`, paced open loop,
// each carrying the time just before its insert.
[[noreturn]] void LoadMain(const BenchArgs& args, const std::string& conninfo,
                           const std::string& schema);
// The soak's load: `rate` instances per second for `duration_s`, paced open loop in ticks of
// 1/kSoakTicksPerS s, each tick's instances inserted in one statement. Of every kSoakMix
// instances: a chain, a wait signalled right after its insert, a fan-out, and plain jobs.
[[noreturn]] void SoakLoadMain(const BenchArgs& args, const std::string& conninfo,
                               const std::string& schema);

// The children of a run, and what they used once stopped.
struct Children {
  std::vector<pid_t> nodes;
  pid_t load = -1;
  double node_cpu_s = 0;  // user + system, summed over nodes
  long max_rss_kb = 0;

  // Stops every child and collects their resource use. Idempotent.
  void StopAll();

 private:
  void Reap(pid_t pid, bool node);
};

}  // namespace gen_durable::benchmark
