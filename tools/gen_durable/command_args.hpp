// What the CLI's commands make of their flag values beyond the parser: JSON, lists, numbers,
// statuses, instance selections, and the reason printed for a refusal.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "gen_durable/client.hpp"
#include "gen_durable/commands.hpp"  // tools/
#include "gen_durable/error.hpp"

namespace gen_durable::tools {

// "code: message" for a refusal, without doubling a prefix the library already wrote.
std::string RefusalReason(const DomainError& error);

// Parses JSON text given to `flag`; throws UsageError naming the flag when malformed.
Json ParseJsonFlag(const char* flag, const std::string& text);

// Splits "a,b,,c" into {"a", "b", "c"}.
std::vector<std::string> SplitList(std::string_view text);

// Parses all of `text` as a number, or returns nullopt.
template <typename T>
std::optional<T> ParseNumber(std::string_view text) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

// Parses a duration flag value: a number and a unit, `ms`, `s`, `m`, `h` or `d` (250ms, 30s,
// 5m, 1h, 1d); a bare number is in `bare_unit_ms` (milliseconds for every flag named without
// a unit, so existing scripts keep working; seconds for the `-s` flags). A decimal fraction is
// accepted when it comes to whole milliseconds (1.5s is 1500 ms; 0.5ms is refused). Returns
// milliseconds. Throws UsageError naming the problem: empty, negative, no number, an unknown
// unit, finer than a millisecond, or beyond the range of a 64-bit count of milliseconds.
std::int64_t ParseDurationMs(std::string_view text, std::int64_t bare_unit_ms = 1);

// Throws UsageError when a --status value is not an instance status.
void CheckStatusFlag(const std::optional<std::string>& status);

// The instances `command` (cancel, retry, delete) selects; throws UsageError for a selection
// that names nothing, mixes --all with ids or a filter, or holds a bad value.
InstanceFilter FilterOf(const SelectArgs& a, const char* command);

}  // namespace gen_durable::tools
