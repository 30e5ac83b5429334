// Turning an insert request into a row: machine defaults applied, every option validated.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>

#include "gen_durable/machine.hpp"
#include "gen_durable/model/rows.hpp"
#include "gen_durable/options.hpp"

namespace gen_durable::detail {

// Applies the defaults of `def` (when known; else version 1, queue "default", step "start")
// to `o` and validates it. Throws InvalidArgument naming the bad option.
NewInstance ResolveInsert(const std::string& fsm, std::optional<int> version, const MachineDef* def,
                          const InsertOptions& o, std::size_t max_payload);

// Looks the machine up with `find` (by name and version; nullopt version: the newest), then
// ResolveInsert. The default `find` is the process-wide registry.
using MachineLookup =
    std::function<std::shared_ptr<const MachineDef>(const std::string&, std::optional<int>)>;
NewInstance ResolveRegistered(const InsertRequest& request, std::size_t max_payload,
                              const MachineLookup& find = {});

}  // namespace gen_durable::detail
