// What the runtime components of one engine share. Each component takes only the parts it
// uses (a Reporter, a ConnectionFactory, a Store, settings by value); the whole EngineCore goes
// only to the queue set and its runners, which use nearly all of it. Held by shared_ptr so
// that a worker thread abandoned at the end of a drain can finish its step safely after the
// engine is gone.
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
#include "gen_durable/runtime/reporter.hpp"
#include "gen_durable/store/ops_store.hpp"
#include "gen_durable/store/store.hpp"

namespace gen_durable::detail {

struct EngineCore {
  EngineCore(EngineOptions opts, std::string node);

  const EngineOptions options;
  const std::string node_id;
  const Store store;
  const OpsStore ops;
  const std::shared_ptr<Reporter> report = std::make_shared<Reporter>();
  // Claim statements issued by this node, for their lease_seq increments (see Store::Claim).
  std::atomic<std::int64_t> claims_issued{0};
  // Machines this node serves, by (name, version), and their "name@version" keys for the claim.
  std::map<std::pair<std::string, int>, std::shared_ptr<const MachineDef>> machines;
  std::vector<std::string> machine_keys;

  // Opens a connection to the engine's database (UTC session time zone). Throws DatabaseError.
  std::unique_ptr<pg::Connection> Connect(const std::string& role) const;
  // A factory doing what Connect does, holding copies of what it needs (not the core).
  ConnectionFactory Connector() const;
  std::shared_ptr<const MachineDef> FindMachine(const std::string& name, int version) const;
  // `version` or, when nullopt, the newest version this engine serves; nullptr when unknown.
  std::shared_ptr<const MachineDef> FindMachineVersion(const std::string& name,
                                                       std::optional<int> version) const;

  // Emits an event when some handler wants it; `build` fills measurements and metadata.
  template <typename Build>
  void Emit(const char* name, Build&& build) const {
    report->Emit(name, std::forward<Build>(build));
  }
};

}  // namespace gen_durable::detail
