// What a running step's Context points at: the claimed row plus the cancellation flag.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gen_durable/context.hpp"
#include "gen_durable/options.hpp"

namespace gen_durable::detail {

struct ContextData {
  std::int64_t id = 0;
  std::string fsm;
  int fsm_version = 1;
  std::string step;
  int attempt = 0;
  int max_attempts = 0;
  std::string queue;
  int priority = 0;
  Json state;
  std::optional<std::string> partition_key;
  std::optional<std::string> unique_key;
  std::vector<Signal> signals;
  std::vector<ChildResult> children;
  // Set when the stored state could not be read at all: the step is not run.
  std::string load_error;
  std::atomic<bool> cancelled{false};
};

}  // namespace gen_durable::detail
