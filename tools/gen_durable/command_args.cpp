// What the CLI's commands make of their flag values (see command_args.hpp), and the parsers of
// --queues, --global-limit and --rate-limit.
#include "gen_durable/command_args.hpp"  // tools/

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <limits>
#include <set>

#include "gen_durable/info.hpp"
#include "gen_durable/util/duration_units.hpp"

namespace gen_durable::tools {

std::string RefusalReason(const DomainError& error) {
  const std::string code = ErrorCodeName(error.code);
  const std::string message = detail::OneLine(error.message);
  if (message.rfind(code + ":", 0) == 0) return message;
  return fmt::format("{}: {}", code, message);
}

Json ParseJsonFlag(const char* flag, const std::string& text) {
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    throw UsageError(fmt::format("{} is not valid JSON: {}", flag, e.what()));
  }
}

std::vector<std::string> SplitList(std::string_view text) {
  std::vector<std::string> items;
  while (!text.empty()) {
    const auto comma = text.find(',');
    if (const std::string_view item = text.substr(0, comma); !item.empty()) {
      items.emplace_back(item);
    }
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
  }
  return items;
}

std::int64_t ParseDurationMs(std::string_view text, std::int64_t bare_unit_ms) {
  auto bad = [&](std::string_view why) {
    return UsageError(fmt::format(
        "'{}' is not a duration: {} (write a number and a unit: 250ms, 30s, 5m, 1h, 1d; a bare "
        "number is {})",
        text, why, bare_unit_ms == 1 ? "milliseconds" : fmt::format("{} ms", bare_unit_ms)));
  };
  if (text.empty()) throw bad("it is empty");
  if (text.front() == '-') throw bad("it is negative");
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  std::size_t i = 0;
  while (i < text.size() && is_digit(text[i])) ++i;
  const std::string_view whole = text.substr(0, i);
  std::string_view fraction;
  bool point = false;
  if (i < text.size() && text[i] == '.') {
    point = true;
    const std::size_t from = ++i;
    while (i < text.size() && is_digit(text[i])) ++i;
    fraction = text.substr(from, i - from);
  }
  const std::string_view unit = text.substr(i);
  if (whole.empty() && fraction.empty()) throw bad("it does not start with a number");
  if (point && fraction.empty()) throw bad("no digit after the decimal point");
  const std::optional<std::int64_t> per_unit =
      unit.empty() ? std::optional<std::int64_t>(bare_unit_ms) : detail::DurationUnitMs(unit);
  if (!per_unit) throw bad(fmt::format("unknown unit '{}'", unit));
  const std::int64_t unit_ms = *per_unit;
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  std::int64_t ms = 0;
  if (!whole.empty()) {
    const auto n = ParseNumber<std::int64_t>(whole);
    if (!n || *n > kMax / unit_ms) throw bad("it is too large");
    ms = *n * unit_ms;
  }
  // The fraction without its trailing zeros, as an exact count of milliseconds.
  while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
  if (!fraction.empty()) {
    constexpr std::size_t kMaxDigits = 9;  // 10^9 x 1 day in ms still fits in 64 bits
    if (fraction.size() > kMaxDigits) throw bad("it is finer than a millisecond");
    std::int64_t scale = 1;
    for (std::size_t k = 0; k < fraction.size(); ++k) scale *= 10;
    const std::int64_t part = *ParseNumber<std::int64_t>(fraction) * unit_ms;
    if (part % scale != 0) throw bad("it is finer than a millisecond");
    if (ms > kMax - part / scale) throw bad("it is too large");
    ms += part / scale;
  }
  return ms;
}

void CheckStatusFlag(const std::optional<std::string>& status) {
  if (status && std::find(kInstanceStatuses.begin(), kInstanceStatuses.end(), *status) ==
                    kInstanceStatuses.end()) {
    throw UsageError(fmt::format("--status '{}' is not one of: {}", *status,
                                 fmt::join(kInstanceStatuses, ", ")));
  }
}

InstanceFilter FilterOf(const SelectArgs& a, const char* command) {
  const bool filtered = a.status || a.queue || a.fsm || a.older_than_ms;
  if (a.ids.empty() && !filtered && !a.all) {
    throw UsageError(fmt::format(
        "{}: name instance ids, or a filter (--status, --queue, --fsm, --older-than), or --all",
        command));
  }
  if (a.all && (filtered || !a.ids.empty())) {
    throw UsageError(fmt::format("{}: --all takes no ids and no filter", command));
  }
  CheckStatusFlag(a.status);
  if (a.older_than_ms && *a.older_than_ms < 0) throw UsageError("--older-than must be >= 0");
  InstanceFilter f;
  f.ids = a.ids;
  f.status = a.status;
  f.queue = a.queue;
  f.fsm = a.fsm;
  if (a.older_than_ms) f.older_than = Millis{*a.older_than_ms};
  return f;
}

std::map<std::string, QueueConfig> ParseQueues(const std::string& spec) {
  std::map<std::string, QueueConfig> queues;
  std::string_view rest = spec;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (item.empty()) continue;
    QueueConfig cfg;
    std::string_view name = item;
    if (const auto colon = item.rfind(':'); colon != std::string_view::npos) {
      name = item.substr(0, colon);
      const std::string_view number = item.substr(colon + 1);
      // NAME:N (fixed) or NAME:MIN-MAX (autoscaled)
      auto parse = [&](std::string_view digits, int& out) {
        const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
        if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) {
          throw UsageError(
              fmt::format("--queues: '{}' is not NAME:CONCURRENCY or NAME:MIN-MAX", item));
        }
      };
      if (const auto dash = number.find('-'); dash != std::string_view::npos && dash > 0) {
        parse(number.substr(0, dash), cfg.concurrency);
        parse(number.substr(dash + 1), cfg.max);
        if (cfg.max <= cfg.concurrency) {
          throw UsageError(fmt::format("--queues: '{}': MAX must be above MIN", item));
        }
      } else {
        parse(number, cfg.concurrency);
      }
    }
    if (name.empty()) throw UsageError(fmt::format("--queues: '{}' has no queue name", item));
    if (!queues.emplace(std::string(name), cfg).second) {
      throw UsageError(fmt::format("--queues: queue '{}' is named twice", name));
    }
  }
  if (queues.empty()) throw UsageError("--queues must name at least one queue");
  return queues;
}

void ApplyGlobalLimits(const std::vector<std::string>& specs,
                       std::map<std::string, QueueConfig>& queues) {
  std::set<std::string> seen;
  for (const std::string& spec : specs) {
    const auto colon = spec.rfind(':');
    const std::string name = spec.substr(0, colon == std::string::npos ? 0 : colon);
    const auto limit = colon == std::string::npos
                           ? std::nullopt
                           : ParseNumber<int>(std::string_view(spec).substr(colon + 1));
    if (name.empty() || !limit) {
      throw UsageError(fmt::format("--global-limit: '{}' is not QUEUE:N", spec));
    }
    if (*limit < 1) {
      throw UsageError(
          fmt::format("--global-limit: N of queue '{}' must be >= 1 (got {})", name, *limit));
    }
    auto it = queues.find(name);
    if (it == queues.end()) {
      throw UsageError(fmt::format(
          "--global-limit: queue '{}' is not served by this worker (name it in --queues)", name));
    }
    if (!seen.insert(name).second) {
      throw UsageError(fmt::format("--global-limit: queue '{}' is named twice", name));
    }
    it->second.global_limit = *limit;
  }
}

std::map<std::string, RateLimit> ParseRateLimits(const std::vector<std::string>& specs) {
  std::map<std::string, RateLimit> limits;
  for (const std::string& spec : specs) {
    std::vector<std::string_view> parts;
    std::string_view rest = spec;
    for (;;) {
      const auto colon = rest.find(':');
      parts.push_back(rest.substr(0, colon));
      if (colon == std::string_view::npos) break;
      rest = rest.substr(colon + 1);
    }
    auto bad = [&] {
      return UsageError(fmt::format("--rate-limit: '{}' is not NAME:ALLOWED:PERIOD[:BURST]", spec));
    };
    if (parts.size() < 3 || parts.size() > 4 || parts[0].empty()) throw bad();
    RateLimit limit;
    const auto allowed = ParseNumber<int>(parts[1]);
    if (!allowed) throw bad();
    limit.allowed = *allowed;
    try {
      limit.period = Millis{ParseDurationMs(parts[2])};
    } catch (const UsageError& e) {
      throw UsageError(fmt::format("--rate-limit: '{}': PERIOD {}", spec, e.what()));
    }
    if (parts.size() == 4) {
      const auto burst = ParseNumber<int>(parts[3]);
      if (!burst) throw bad();
      limit.burst = *burst;
    }
    if (!limits.emplace(std::string(parts[0]), limit).second) {
      throw UsageError(fmt::format("--rate-limit: limit '{}' is named twice", parts[0]));
    }
  }
  return limits;
}

RateLimitRef ParseRateLimitRef(const std::string& spec) {
  RateLimitRef ref;
  const auto colon = spec.find(':');
  ref.name = spec.substr(0, colon);
  if (colon != std::string::npos) {
    ref.key = spec.substr(colon + 1);
    if (ref.key.empty()) throw UsageError(fmt::format("--rate-limit: '{}' has an empty KEY", spec));
  }
  if (ref.name.empty()) throw UsageError(fmt::format("--rate-limit: '{}' has no NAME", spec));
  return ref;
}

std::vector<Schedule> ParseSchedules(const std::vector<std::string>& specs) {
  std::vector<Schedule> out;
  for (const auto& spec : specs) {
    std::vector<std::string> parts;
    std::size_t pos = 0;
    // NAME;CRON;FSM, then the rest whole: a JSON state may hold ';'.
    while (parts.size() < 3) {
      const std::size_t semi = spec.find(';', pos);
      if (semi == std::string::npos) break;
      parts.push_back(spec.substr(pos, semi - pos));
      pos = semi + 1;
    }
    parts.push_back(spec.substr(pos));
    if (parts.size() < 3) {
      throw UsageError(fmt::format("--schedule: '{}' is not NAME;CRON;FSM[;STATE_JSON]", spec));
    }
    Schedule s;
    s.name = parts[0];
    s.cron = parts[1];
    s.fsm = parts[2];
    if (s.name.empty()) throw UsageError(fmt::format("--schedule: '{}' has no NAME", spec));
    if (s.cron.empty()) throw UsageError(fmt::format("--schedule: '{}' has no CRON", spec));
    if (s.fsm.empty()) throw UsageError(fmt::format("--schedule: '{}' has no FSM", spec));
    if (parts.size() == 4) {
      s.state = ParseJsonFlag("--schedule: STATE_JSON", parts[3]);
      if (!s.state.is_object()) {
        throw UsageError(
            fmt::format("--schedule: the state of '{}' must be a JSON object", s.name));
      }
    }
    for (const auto& other : out) {
      if (other.name == s.name) {
        throw UsageError(fmt::format("--schedule: schedule '{}' is named twice", s.name));
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace gen_durable::tools
