// What the CLI's commands make of their flag values (see command_args.hpp), and the parsers of
// --queues and --rate-limit.
#include "gen_durable/command_args.hpp"  // tools/

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "gen_durable/info.hpp"

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
      return UsageError(
          fmt::format("--rate-limit: '{}' is not NAME:ALLOWED:PERIOD_MS[:BURST]", spec));
    };
    if (parts.size() < 3 || parts.size() > 4 || parts[0].empty()) throw bad();
    RateLimit limit;
    const auto allowed = ParseNumber<int>(parts[1]);
    const auto period = ParseNumber<std::int64_t>(parts[2]);
    if (!allowed || !period) throw bad();
    limit.allowed = *allowed;
    limit.period = Millis{*period};
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
