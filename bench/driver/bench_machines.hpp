// The machines a benchmark run drives. Their steps do no work of their own (the figures are
// the engine's); they count what finished and record latencies in the shared map.
#pragma once

#include "gen_durable/gen_durable.hpp"

namespace gen_durable::benchmark {

// The state of bench.fanout: how many children it schedules.
struct FanoutState {
  int n = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(FanoutState, n)

// Registers the bench.* machines (idempotent).
void RegisterBenchMachines();

}  // namespace gen_durable::benchmark
