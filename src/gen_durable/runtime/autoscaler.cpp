// The autoscaling rule and loop: see autoscaler.hpp.
#include "gen_durable/runtime/autoscaler.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <utility>

#include "gen_durable/pg/pool.hpp"

namespace gen_durable::detail {

int AutoscaleTarget(const AutoscaleInput& in) {
  const std::int64_t wanted = static_cast<std::int64_t>(in.in_flight) + in.backlog;
  const int target =
      static_cast<int>(std::clamp<std::int64_t>(wanted, in.min, std::max(in.min, in.max)));
  if (target >= in.current) return target;
  return in.cooled ? target : in.current;
}

Autoscaler::Autoscaler(QueueSet& queues, const OpsStore& ops, const Telemetry& telemetry,
                       Millis interval, Millis cooldown, ConnectionFactory connect)
    : queues_(queues),
      ops_(ops),
      telemetry_(telemetry),
      interval_(interval),
      cooldown_(cooldown),
      connect_(std::move(connect)) {}

void Autoscaler::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Autoscaler::Stop() {
  wake_.Stop();
  if (thread_.joinable()) thread_.join();
}

void Autoscaler::Run() {
  using Clock = std::chrono::steady_clock;
  pg::ReconnectingConnection conn([this] { return connect_("autoscaler"); });
  std::map<std::string, Clock::time_point> changed;  // last change per queue
  while (wake_.WaitFor(interval_)) {
    for (const auto& queue : queues_.Autoscaled()) {
      const std::string& q = queue.first;
      const QueueConfig& cfg = queue.second;
      auto runner = queues_.Runner(q);
      if (!runner) continue;
      try {
        pg::Connection& c = conn.Get();
        const auto state = runner->State();
        AutoscaleInput in;
        in.current = state.concurrency;
        in.min = cfg.concurrency;
        in.max = cfg.max;
        in.in_flight = state.in_flight + state.buffered;
        in.backlog = ops_.ReadyCount(c, q, cfg.max);
        const auto last = changed.find(q);
        in.cooled = last == changed.end() || Clock::now() - last->second >= cooldown_;
        const int target = AutoscaleTarget(in);
        if (target == in.current) continue;
        // A manual scale or a reconfigure since the snapshot wins.
        if (!queues_.IsAutoscaled(q)) continue;
        EmitEvent(telemetry_, "queue.autoscale", [&](TelemetryEvent& e) {
          e.measurements["backlog"] = static_cast<double>(in.backlog);
          e.measurements["in_flight"] = in.in_flight;
          e.measurements["from"] = in.current;
          e.measurements["to"] = target;
          e.metadata["queue"] = q;
        });
        queues_.Scale(q, target, target > in.current ? "autoscale up" : "autoscale down", false);
        changed[q] = Clock::now();
      } catch (const std::exception& e) {
        spdlog::warn("autoscaler: queue {}: {}", q, e.what());
        conn.DropIfBroken();
      }
    }
  }
}

}  // namespace gen_durable::detail
