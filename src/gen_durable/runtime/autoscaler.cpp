// The autoscaling rule: see autoscaler.hpp.
#include "gen_durable/runtime/autoscaler.hpp"

#include <algorithm>

namespace gen_durable::detail {

int AutoscaleTarget(const AutoscaleInput& in) {
  const std::int64_t wanted = static_cast<std::int64_t>(in.in_flight) + in.backlog;
  const int target = static_cast<int>(
      std::clamp<std::int64_t>(wanted, in.min, std::max(in.min, in.max)));
  if (target >= in.current) return target;
  return in.cooled ? target : in.current;
}

}  // namespace gen_durable::detail
