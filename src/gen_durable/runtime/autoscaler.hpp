// The autoscaling of a queue configured {min, max} (docs/operations.md): the rule, pure so it
// is tested alone, and the loop that applies it to each autoscaled queue.
#pragma once

#include <cstdint>
#include <thread>

#include "gen_durable/runtime/core.hpp"
#include "gen_durable/runtime/periodic.hpp"
#include "gen_durable/runtime/queue_set.hpp"
#include "gen_durable/store/ops_store.hpp"

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

// Every `interval`: each autoscaled queue of `queues` scaled to AutoscaleTarget of its backlog
// (read with `ops`), shrinking no sooner than `cooldown` after its last change.
class Autoscaler {
 public:
  Autoscaler(QueueSet& queues, const OpsStore& ops, const Telemetry& telemetry, Millis interval,
             Millis cooldown, ConnectionFactory connect);
  ~Autoscaler() { Stop(); }
  void Start();
  void Stop();

 private:
  void Run();

  QueueSet& queues_;
  const OpsStore& ops_;
  const Telemetry& telemetry_;
  const Millis interval_;
  const Millis cooldown_;
  const ConnectionFactory connect_;
  Wakeup wake_;
  std::thread thread_;
};

}  // namespace gen_durable::detail
