// State shared by the runtime components of one engine. Held by shared_ptr so that a worker
// thread abandoned at the end of a drain can finish its step safely after the engine is gone.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gen_durable/info.hpp"
#include "gen_durable/machine.hpp"
#include "gen_durable/options.hpp"
#include "gen_durable/pg/connection.hpp"
#include "gen_durable/store/ops_store.hpp"
#include "gen_durable/store/store.hpp"
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

struct EngineCore {
  EngineCore(EngineOptions opts, std::string node);

  const EngineOptions options;
  const std::string node_id;
  const Store store;
  const OpsStore ops;
  Telemetry telemetry;
  Counters counters;
  // Claim statements issued by this node, for their lease_seq increments (see Store::Claim).
  std::atomic<std::int64_t> claims_issued{0};
  // Machines this node serves, by (name, version), and their "name@version" keys for the claim.
  std::map<std::pair<std::string, int>, std::shared_ptr<const MachineDef>> machines;
  std::vector<std::string> machine_keys;

  // Opens a connection to the engine's database (UTC session time zone). Throws DatabaseError.
  std::unique_ptr<pg::Connection> Connect(const std::string& role) const;
  std::shared_ptr<const MachineDef> FindMachine(const std::string& name, int version) const;
  // `version` or, when nullopt, the newest version this engine serves; nullptr when unknown.
  std::shared_ptr<const MachineDef> FindMachineVersion(const std::string& name,
                                                       std::optional<int> version) const;

  // Emits an event when some handler wants it; `build` fills measurements and metadata.
  template <typename Build>
  void Emit(const char* name, Build&& build) const {
    EmitEvent(telemetry, name, std::forward<Build>(build));
  }
};

}  // namespace gen_durable::detail
