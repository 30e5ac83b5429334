// What every runtime component reports through (telemetry events and the engine's counters),
// and how it opens its connections.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "gen_durable/pg/connection.hpp"
#include "gen_durable/telemetry.hpp"

namespace gen_durable::detail {

struct Counters {
  std::atomic<std::int64_t> claimed{0}, steps{0}, committed{0}, stale{0}, reaped{0}, gc_deleted{0},
      flushes{0}, released{0};
};

// Opens a connection to the engine's database for `role` (the session's application_name).
using ConnectionFactory = std::function<std::unique_ptr<pg::Connection>(const std::string& role)>;

// Emits event `name` when some handler of `telemetry` wants it; `build` fills measurements and
// metadata (not called otherwise).
template <typename Build>
void EmitEvent(const Telemetry& telemetry, const char* name, Build&& build) {
  const std::string n(name);
  if (!telemetry.Wants(n)) return;
  TelemetryEvent e;
  e.name = n;
  e.metadata = Json::object();
  build(e);
  telemetry.Emit(e);
}

// What components report through: the engine's telemetry handlers and its counters. Shared
// by pointer so that an abandoned worker thread can still report after the engine is gone.
struct Reporter {
  Telemetry telemetry;
  Counters counters;

  // Emits an event when some handler wants it; `build` fills measurements and metadata.
  template <typename Build>
  void Emit(const char* name, Build&& build) const {
    EmitEvent(telemetry, name, std::forward<Build>(build));
  }
};

}  // namespace gen_durable::detail
