// Records the telemetry events whose names start with a prefix, for tests to read back.
#pragma once

#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "gen_durable/telemetry.hpp"

namespace gen_durable::testing {

// A log attached to one telemetry registry. A log of an engine's events is declared before the
// engine and attached after its start, so that it outlives every call of its handler.
// Thread-safe.
class EventLog {
 public:
  explicit EventLog(std::string prefix) : prefix_(std::move(prefix)) {}
  EventLog(std::string prefix, Telemetry& telemetry) : prefix_(std::move(prefix)) {
    AttachTo(telemetry);
  }
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  void AttachTo(Telemetry& telemetry) {
    telemetry.Attach(prefix_, [this](const TelemetryEvent& e) {
      std::lock_guard lock(mu_);
      events_.push_back(e);
    });
  }
  // The events recorded so far named exactly `name`, oldest first.
  std::vector<TelemetryEvent> Named(const std::string& name) {
    std::lock_guard lock(mu_);
    std::vector<TelemetryEvent> out;
    for (const auto& e : events_) {
      if (e.name == name) out.push_back(e);
    }
    return out;
  }

 private:
  const std::string prefix_;
  std::mutex mu_;
  std::vector<TelemetryEvent> events_;  // GUARDED_BY(mu_)
};

}  // namespace gen_durable::testing
