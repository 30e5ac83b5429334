// Telemetry: attach handlers to the engine's events (step.stop, pick.stop, reaper.reaped, ...).
//
//   engine->telemetry().Attach("step.", [](const gen_durable::TelemetryEvent& e) {
//     metrics.Observe(e.name, e.measurements.at("duration"));
//   });
//
// Handlers run synchronously on the engine thread that emits the event: keep them short.
// An exception thrown by a handler is caught and logged; it never reaches the engine.
// The events and their fields are listed in docs/guides/telemetry.md.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gen_durable/options.hpp"

namespace gen_durable {

struct TelemetryEvent {
  std::string name;                            // e.g. "step.stop"
  std::map<std::string, double> measurements;  // e.g. {"duration": 0.0012} (seconds)
  Json metadata;                               // e.g. {"id": 7, "fsm": "Checkout", ...}
};

using TelemetryHandler = std::function<void(const TelemetryEvent&)>;

// A registry of handlers. Thread-safe.
class Telemetry {
 public:
  using HandlerId = std::uint64_t;

  Telemetry();
  ~Telemetry();
  Telemetry(const Telemetry&) = delete;
  Telemetry& operator=(const Telemetry&) = delete;

  // Calls `handler` for every event whose name starts with `prefix` ("" for all).
  HandlerId Attach(std::string prefix, TelemetryHandler handler);
  // Removes a handler; unknown ids are ignored.
  void Detach(HandlerId id);
  // True when some handler would receive `name` (lets emitters skip building the event).
  bool Wants(const std::string& name) const;
  // Delivers `event` to every matching handler.
  void Emit(const TelemetryEvent& event) const;

 private:
  struct Registry;  // the handlers and their lock (telemetry.cpp)
  const std::unique_ptr<Registry> registry_;
};

}  // namespace gen_durable
