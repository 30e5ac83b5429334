// `gen_durable bench SCENARIO`: throughput and latency figures of this engine on a database,
// one JSON object on stdout (the format bench/compare reads; see docs/performance.md). The
// scenarios are run by the benchmark driver (bench/driver/); this is the command around it.
#pragma once

#include "bench_args.hpp"            // bench/driver/
#include "gen_durable/commands.hpp"  // tools/

namespace gen_durable::tools {

using benchmark::BenchArgs;

// Checks the arguments (UsageError), opens the database, runs one scenario on it (a fresh
// database, or one only ever used by `bench`) and prints its figures. `soak` prints a sample
// line every `sample_s` and a summary line with a levelling verdict, and returns kExitFailure
// when a series did not level off (or could not be judged) or the load did not drain.
int RunBench(const GlobalOptions& global, const BenchArgs& args);

}  // namespace gen_durable::tools
