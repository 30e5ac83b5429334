// The benchmark driver: runs one scenario of `gen_durable bench` on a database and returns its
// figures (docs/performance.md). The CLI parses and checks the arguments, opens the database
// and prints; everything in between is here.
//
// Shape of a run: the parent process forks its worker nodes (and, for `latency` and `soak`, a
// load process) before it opens any connection or starts any thread, so the children start
// clean. The parent inserts the scenario's rows untimed, notes the database clock, lets the nodes
// start their engines, and waits until every row it inserted is terminal. Elapsed time is
// measured on the database clock: from just before the nodes start to the last completed_at.
// The processes share one anonymous memory map for flags, progress and latency samples.
//
// `soak` differs: the load process sends a steady mixed load for --duration-s while the parent
// samples the processes and the database every --sample-s and prints each sample as it goes;
// GC runs with a short retention so that the table can reach a steady size.
#pragma once

#include <string>

#include "bench_args.hpp"  // bench/driver/
#include "gen_durable/options.hpp"

namespace gen_durable::benchmark {

// Runs `args.scenario` (valid arguments assumed) on the database `conninfo`, tables in `schema`,
// and returns its figures as one JSON object (for `soak`, the summary; its samples go to stdout
// as they are taken). Once per process: the shared map and the bench machines are set up here.
Json RunScenario(const BenchArgs& args, const std::string& conninfo, const std::string& schema);

// Why a soak's summary fails (the load did not drain, a series did not level off or could not
// be judged), or "" when it passes.
std::string SoakFailure(const Json& summary);

}  // namespace gen_durable::benchmark
