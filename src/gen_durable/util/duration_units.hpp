// The units of a written duration, shared by every parser of one (the CLI's flags, `@every`
// in a cron expression): `ms`, `s`, `m`, `h` and `d`.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace gen_durable::detail {

// Milliseconds in one `unit`, or nullopt when `unit` is not one of ms, s, m, h, d.
inline std::optional<std::int64_t> DurationUnitMs(std::string_view unit) {
  if (unit == "ms") return 1;
  if (unit == "s") return 1'000;
  if (unit == "m") return 60'000;
  if (unit == "h") return 3'600'000;
  if (unit == "d") return 86'400'000;
  return std::nullopt;
}

}  // namespace gen_durable::detail
