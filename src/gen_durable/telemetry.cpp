// Telemetry handler registry.
#include "gen_durable/telemetry.hpp"

#include <spdlog/spdlog.h>

namespace gen_durable {

Telemetry::HandlerId Telemetry::Attach(std::string prefix, TelemetryHandler handler) {
  std::lock_guard lock(mu_);
  const HandlerId id = next_id_++;
  entries_.push_back({id, std::move(prefix), std::move(handler)});
  count_.store(entries_.size());
  return id;
}

void Telemetry::Detach(HandlerId id) {
  std::lock_guard lock(mu_);
  std::erase_if(entries_, [id](const Entry& e) { return e.id == id; });
  count_.store(entries_.size());
}

bool Telemetry::Wants(const std::string& name) const {
  if (count_.load(std::memory_order_relaxed) == 0) return false;  // the common, unobserved case
  std::lock_guard lock(mu_);
  for (const auto& e : entries_) {
    if (name.compare(0, e.prefix.size(), e.prefix) == 0) return true;
  }
  return false;
}

void Telemetry::Emit(const TelemetryEvent& event) const {
  std::vector<TelemetryHandler> matching;
  {
    std::lock_guard lock(mu_);
    for (const auto& e : entries_) {
      if (event.name.compare(0, e.prefix.size(), e.prefix) == 0) matching.push_back(e.handler);
    }
  }
  // Handlers run outside the lock so one may attach or detach another.
  for (const auto& h : matching) {
    try {
      h(event);
    } catch (const std::exception& ex) {
      spdlog::warn("telemetry handler for {} threw: {}", event.name, ex.what());
    } catch (...) {
      spdlog::warn("telemetry handler for {} threw", event.name);
    }
  }
}

}  // namespace gen_durable
