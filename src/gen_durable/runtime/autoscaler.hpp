// The autoscaling rule of a queue configured {min, max} (docs/operations.md): pure, so it is tested
// alone.
#pragma once

#include <cstdint>

namespace gen_durable::detail {

struct AutoscaleInput {
  int current = 0;           // slots now
  int min = 0, max = 0;      // bounds
  std::int64_t backlog = 0;  // ready rows waiting in the database
  int in_flight = 0;         // steps running plus rows claimed and buffered on this node
  bool cooled = false;       // no change for at least the cooldown
};

// The concurrency the queue should have: enough slots for what runs and what waits
// (in_flight + backlog), within [min, max]. Growth is immediate; shrinking waits for the
// cooldown, so a queue whose backlog comes in bursts does not flap. Never below in_flight
// when shrinking (a scale-down lets running steps finish; it does not strand them).
int AutoscaleTarget(const AutoscaleInput& in);

}  // namespace gen_durable::detail
