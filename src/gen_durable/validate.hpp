// Validation of engine and insert options.
#pragma once

#include "gen_durable/options.hpp"

namespace gen_durable::detail {

// Throws ConfigError naming the first invalid option. Logs a warning for risky but legal values
// (heartbeat_interval * 3 > lease_ttl).
void ValidateEngineOptions(const EngineOptions& o);
// Throws ConfigError for an invalid schema or queue name.
void ValidateIdentifier(const std::string& what, const std::string& value);

}  // namespace gen_durable::detail
