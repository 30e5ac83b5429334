// The state shared by one engine's runtime components: see core.hpp.
#include "gen_durable/runtime/core.hpp"

#include <utility>

#include "gen_durable/store/session.hpp"

namespace gen_durable::detail {

namespace {
Store MakeStore(const EngineOptions& o) {
  Store s(o.schema);
  s.SetPartitionLimits(o.partition_limits);
  return s;
}
}  // namespace

EngineCore::EngineCore(EngineOptions opts, std::string node)
    : options(std::move(opts)),
      node_id(std::move(node)),
      store(MakeStore(options)),
      ops(options.schema) {
  auto add = [&](const AnyMachine& m) { machines[{m.name(), m.version()}] = m.shared(); };
  if (options.all_registered_machines) {
    for (const auto& m : AllRegistered()) add(m);
  }
  for (const auto& m : options.machines) {
    if (!m) throw ConfigError("machines: an entry is empty");
    add(m);  // explicit entries win over registered ones of the same name + version
  }
  for (const auto& [key, _] : machines) {
    machine_keys.push_back(key.first + "@" + std::to_string(key.second));
  }
}

std::unique_ptr<pg::Connection> EngineCore::Connect(const std::string& role) const {
  return Connector()(role);
}

ConnectionFactory EngineCore::Connector() const {
  return [database = options.database, prefix = "gen_durable:" + options.name + ":",
          limits = EngineSessionLimits(options)](const std::string& role) {
    return OpenSession(database, prefix + role, limits);
  };
}

std::shared_ptr<const MachineDef> EngineCore::FindMachine(const std::string& name,
                                                          int version) const {
  auto it = machines.find({name, version});
  return it == machines.end() ? nullptr : it->second;
}

std::shared_ptr<const MachineDef> EngineCore::FindMachineVersion(const std::string& name,
                                                                 std::optional<int> version) const {
  if (version) return FindMachine(name, *version);
  std::shared_ptr<const MachineDef> best;
  for (const auto& [key, def] : machines) {
    if (key.first == name && (!best || def->version > best->version)) best = def;
  }
  return best;
}

}  // namespace gen_durable::detail
