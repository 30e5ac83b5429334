// What a running step's Context points at: the claimed row (advanced in place as the claim runs
// ahead inline) plus the cancellation flag.
#pragma once

#include <atomic>
#include <utility>

#include "gen_durable/model/rows.hpp"

namespace gen_durable::detail {

struct ContextData {
  explicit ContextData(ClaimedRow claimed) : row(std::move(claimed)) {}

  // What the step sees (Context::id(), step(), raw_state(), signals(), ...). Its state_error,
  // when set, means the stored state could not be read at all: the step is not run.
  ClaimedRow row;
  std::atomic<bool> cancelled{false};
};

}  // namespace gen_durable::detail
