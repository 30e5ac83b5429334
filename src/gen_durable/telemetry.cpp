// Telemetry handler registry.
#include "gen_durable/telemetry.hpp"

#include <spdlog/spdlog.h>

#include <atomic>

#include "gen_durable/util/thread_annotations.hpp"

namespace gen_durable {

struct Telemetry::Registry {
  struct Entry {
    HandlerId id;
    std::string prefix;
    TelemetryHandler handler;
  };
  mutable detail::Mutex mu;
  std::vector<Entry> entries GD_GUARDED_BY(mu);
  HandlerId next_id GD_GUARDED_BY(mu) = 1;
  std::atomic<std::size_t> count{0};  // entries.size(), readable without the lock
};

Telemetry::Telemetry() : registry_(std::make_unique<Registry>()) {}
Telemetry::~Telemetry() = default;

Telemetry::HandlerId Telemetry::Attach(std::string prefix, TelemetryHandler handler) {
  auto& r = *registry_;
  detail::MutexLock lock(r.mu);
  const HandlerId id = r.next_id++;
  r.entries.push_back({id, std::move(prefix), std::move(handler)});
  r.count.store(r.entries.size());
  return id;
}

void Telemetry::Detach(HandlerId id) {
  auto& r = *registry_;
  detail::MutexLock lock(r.mu);
  std::erase_if(r.entries, [id](const Registry::Entry& e) { return e.id == id; });
  r.count.store(r.entries.size());
}

bool Telemetry::Wants(const std::string& name) const {
  const auto& r = *registry_;
  if (r.count.load(std::memory_order_relaxed) == 0) return false;  // the common, unobserved case
  detail::MutexLock lock(r.mu);
  for (const auto& e : r.entries) {
    if (name.compare(0, e.prefix.size(), e.prefix) == 0) return true;
  }
  return false;
}

void Telemetry::Emit(const TelemetryEvent& event) const {
  const auto& r = *registry_;
  std::vector<TelemetryHandler> matching;
  {
    detail::MutexLock lock(r.mu);
    for (const auto& e : r.entries) {
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
