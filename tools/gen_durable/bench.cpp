// `gen_durable bench`: checks the arguments, opens the database and hands the run to the
// benchmark driver (bench/driver/), then prints its figures and, for `soak`, the verdict.
#include "gen_durable/bench.hpp"  // tools/

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <string>

#include "bench_driver.hpp"  // bench/driver/

namespace gen_durable::tools {

namespace {

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

void Validate(const BenchArgs& a) {
  if (std::none_of(std::begin(benchmark::kScenarios), std::end(benchmark::kScenarios),
                   [&](const char* s) { return a.scenario == s; })) {
    throw UsageError("unknown scenario '" + a.scenario +
                     "' (jobs, chain, insert, latency, signal, fanout, large, soak)");
  }
  if (a.count < 0) throw UsageError("--count must be >= 0");
  if (a.steps < 1) throw UsageError("--steps must be >= 1");
  if (a.nodes < 1 || a.nodes > benchmark::kMaxNodes) {
    throw UsageError(fmt::format("--nodes must be in 1..{}", benchmark::kMaxNodes));
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
  Session session(global);
  const Json out = benchmark::RunScenario(
      args, WithSynchronousCommit(session.conninfo(), args.synchronous_commit), session.schema());
  fmt::print("{}\n", out.dump());
  if (args.scenario != "soak") return kExitOk;
  const std::string why = benchmark::SoakFailure(out);
  if (why.empty()) return kExitOk;
  fmt::print(stderr, "gen_durable: soak: {}\n", why);
  return kExitFailure;
}

}  // namespace gen_durable::tools
