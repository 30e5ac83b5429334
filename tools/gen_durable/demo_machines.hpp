// The built-in demo machines of the CLI (docs/guides/cli.md), also the first examples users read.
#pragma once

#include <cstdint>

#include "gen_durable/options.hpp"

namespace gen_durable::tools {

// Registers demo.noop, demo.sleep, demo.chain, demo.flaky, demo.checkout, demo.fanout,
// demo.limited and demo.crash (idempotent).
void RegisterDemoMachines();

// Wall-clock microseconds since the epoch, as the demo machines report times (and the bench
// stamps its samples).
std::int64_t NowMicros();

// The state of demo.chain (and bench.chain): `steps` steps in all, `ran` of them run.
struct ChainState {
  int steps = 1;
  int ran = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ChainState, steps, ran)

}  // namespace gen_durable::tools
