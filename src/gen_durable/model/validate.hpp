// Validation of engine and insert options, and the limits on names and keys.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "gen_durable/options.hpp"

namespace gen_durable::detail {

// Throws ConfigError naming the first invalid option. Logs a warning for risky but legal values
// (heartbeat_interval * 3 > lease_ttl).
void ValidateEngineOptions(const EngineOptions& o);
// Throws ConfigError for a negative or too large statement_timeout / network_timeout.
void ValidateSessionLimits(const ConnectionOptions& o);
// Throws ConfigError for an invalid queue name.
void ValidateIdentifier(const std::string& what, const std::string& value);
// What is wrong with `schema` as a schema name, or "" when nothing is. Only
// [a-z_][a-z0-9_]{0,62} is accepted: such a name is the same quoted or not, never needs
// escaping, and cannot close a quote of any kind in the SQL it is placed in.
std::string SchemaNameProblem(std::string_view schema);
// Throws ConfigError with SchemaNameProblem's text.
void ValidateSchemaName(std::string_view schema);

// Queue and schema names: what Postgres keeps of an identifier. An engine serves no longer
// queue name, so an insert into one would never run.
inline constexpr std::size_t kMaxIdentifierBytes = 63;
// Machine, step, signal and rate limit names.
inline constexpr std::size_t kMaxNameBytes = 255;
// Unique, partition, dedup and rate limit keys: well inside a b-tree index entry (2704 bytes),
// since each of them is indexed.
inline constexpr std::size_t kMaxKeyBytes = 2048;

// What is wrong with `value` as a name of at most `max_bytes` (not empty, valid UTF-8, no
// control characters), or "" when nothing is. `what` names the value in the message.
std::string NameProblem(std::string_view what, std::string_view value, std::size_t max_bytes);
// The same for a key (not empty, at most kMaxKeyBytes, valid UTF-8, no NUL byte: a text
// column cannot hold one). Control characters are allowed in keys.
std::string KeyProblem(std::string_view what, std::string_view value);

}  // namespace gen_durable::detail
