// Validation of engine options: every bad value is refused with the option's name.
#include "gen_durable/model/validate.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>

#include "gen_durable/conninfo.hpp"
#include "gen_durable/error.hpp"
#include "gen_durable/model/cron.hpp"

namespace gen_durable::detail {

namespace {

void RequirePositive(const char* name, Millis v) {
  if (v.count() <= 0) {
    throw ConfigError(fmt::format("{} must be > 0 ms (got {})", name, v.count()));
  }
}

// True iff `s` is well-formed UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF). Postgres refuses anything else in a text value, and JSON encoding would replace it.
bool ValidUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;  // truncated sequence
    for (std::size_t k = 1; k <= n; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xbf)) return false;
    }
    i += n + 1;
  }
  return true;
}

// The start of an oversized `value` for a message, control characters masked: an oversized
// name must not make an oversized or garbled error.
std::string Excerpt(std::string_view value) {
  constexpr std::size_t kShown = 40;
  std::size_t cut = std::min(kShown, value.size());
  while (cut < value.size() && cut > 0 && (static_cast<unsigned char>(value[cut]) & 0xc0) == 0x80) {
    --cut;
  }
  std::string out(value.substr(0, cut));
  for (char& ch : out) {
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
  }
  return out + "...";
}

}  // namespace

std::string NameProblem(std::string_view what, std::string_view value, std::size_t max_bytes) {
  if (value.empty()) return fmt::format("{} must not be empty", what);
  if (value.size() > max_bytes) {
    return fmt::format("{} '{}' is {} bytes, over the limit of {} bytes", what, Excerpt(value),
                       value.size(), max_bytes);
  }
  if (!ValidUtf8(value)) return fmt::format("{} is not valid UTF-8", what);
  for (std::size_t i = 0; i < value.size(); ++i) {
    const auto ch = static_cast<unsigned char>(value[i]);
    // The value itself is left out: its control characters would garble the message.
    if (ch < 0x20 || ch == 0x7f) {
      return fmt::format("{} contains a control character (byte {} is 0x{:02x})", what, i, ch);
    }
  }
  return {};
}

std::string KeyProblem(std::string_view what, std::string_view value) {
  if (value.empty()) return fmt::format("{} must not be empty", what);
  if (value.size() > kMaxKeyBytes) {
    return fmt::format("{} '{}' is {} bytes, over the limit of {} bytes", what, Excerpt(value),
                       value.size(), kMaxKeyBytes);
  }
  if (!ValidUtf8(value)) return fmt::format("{} is not valid UTF-8", what);
  if (value.find('\0') != std::string_view::npos) {
    return fmt::format("{} contains a NUL byte", what);
  }
  return {};
}

void ValidateIdentifier(const std::string& what, const std::string& value) {
  if (value.empty()) throw ConfigError(fmt::format("{} must not be empty", what));
  if (value.size() > 63) {
    throw ConfigError(fmt::format("{} '{}' is longer than 63 bytes", what, value));
  }
  for (unsigned char ch : value) {
    if (ch < 0x20 || ch == 0x7f) {
      throw ConfigError(fmt::format("{} '{}' contains a control character", what, value));
    }
  }
}

std::string SchemaNameProblem(std::string_view schema) {
  if (schema.empty()) return "schema must not be empty";
  bool ok = schema.size() <= kMaxIdentifierBytes;
  for (std::size_t i = 0; ok && i < schema.size(); ++i) {
    const char ch = schema[i];
    ok = (ch >= 'a' && ch <= 'z') || ch == '_' || (i > 0 && ch >= '0' && ch <= '9');
  }
  if (ok) return {};
  std::string shown(schema.substr(0, kMaxIdentifierBytes));
  for (char& ch : shown) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7f) ch = '?';
  }
  return fmt::format(
      "schema '{}{}' is not a valid schema name: use [a-z_][a-z0-9_]{{0,62}} (lower-case "
      "letters, digits and underscores, not starting with a digit, at most 63 bytes)",
      shown, schema.size() > kMaxIdentifierBytes ? "..." : "");
}

void ValidateSchemaName(std::string_view schema) {
  if (auto problem = SchemaNameProblem(schema); !problem.empty()) throw ConfigError(problem);
}

void ValidateSessionLimits(const ConnectionOptions& o) {
  // Postgres and the kernel take these as a 32-bit count of milliseconds.
  static constexpr std::int64_t kMax = 2'147'483'647;
  auto check = [](const char* name, const std::optional<Millis>& v) {
    if (v && (v->count() < 0 || v->count() > kMax)) {
      throw ConfigError(
          fmt::format("{} must be between 0 and {} ms (got {})", name, kMax, v->count()));
    }
  };
  check("statement_timeout", o.statement_timeout);
  check("network_timeout", o.network_timeout);
}

namespace {

// Names, expressions and zones of the schedules (their machines are checked by the engine,
// which knows what it serves).
void ValidateSchedules(const std::vector<Schedule>& schedules) {
  std::set<std::string> names;
  for (const auto& s : schedules) {
    if (auto problem = NameProblem("schedules: name", s.name, kMaxNameBytes); !problem.empty()) {
      throw ConfigError(problem);
    }
    if (!names.insert(s.name).second) {
      throw ConfigError(fmt::format("schedules: the name '{}' is used twice", s.name));
    }
    try {
      CronExpression::Parse(s.cron, s.time_zone);
    } catch (const InvalidArgument& e) {
      throw ConfigError(fmt::format("schedules: '{}': {}", s.name, e.what()));
    }
    if (s.fsm.empty()) {
      throw ConfigError(fmt::format("schedules: '{}': fsm (the machine) must be set", s.name));
    }
    if (s.queue) ValidateIdentifier(fmt::format("schedules: '{}': queue", s.name), *s.queue);
    if (s.missed == Schedule::Missed::kCatchUp && s.catch_up_max < 1) {
      throw ConfigError(fmt::format("schedules: '{}': catch_up_max must be >= 1 (got {})", s.name,
                                    s.catch_up_max));
    }
    if (!s.state.is_object()) {
      throw ConfigError(fmt::format("schedules: '{}': state must be a JSON object", s.name));
    }
  }
}

}  // namespace

void ValidateEngineOptions(const EngineOptions& o) {
  ValidateSchedules(o.schedules);
  if (o.name.empty()) throw ConfigError("name must not be empty");
  if (o.database.empty()) throw ConfigError("database must be set (a libpq connection string)");
  ValidateSchemaName(o.schema);
  if (o.queues.empty()) throw ConfigError("queues must name at least one queue");
  for (const auto& [queue, cfg] : o.queues) {
    ValidateIdentifier("queue name", queue);
    if (cfg.concurrency < 0) {
      throw ConfigError(
          fmt::format("queues: concurrency of '{}' must be >= 0 (got {})", queue, cfg.concurrency));
    }
    if (cfg.concurrency > kMaxConcurrency) {
      throw ConfigError(fmt::format("queues: concurrency of '{}' must be <= {} (got {})", queue,
                                    kMaxConcurrency, cfg.concurrency));
    }
    if (cfg.max != 0 && (cfg.max <= cfg.concurrency || cfg.max > kMaxConcurrency)) {
      throw ConfigError(
          fmt::format("queues: max of '{}' must be above its concurrency ({}) and <= {} (got {})",
                      queue, cfg.concurrency, kMaxConcurrency, cfg.max));
    }
    if (cfg.global_limit && *cfg.global_limit < 1) {
      throw ConfigError(fmt::format("queues: global_limit of '{}' must be >= 1 (got {})", queue,
                                    *cfg.global_limit));
    }
  }
  RequirePositive("autoscale_interval", o.autoscale_interval);
  if (o.autoscale_cooldown.count() < 0) {
    throw ConfigError(
        fmt::format("autoscale_cooldown must be >= 0 ms (got {})", o.autoscale_cooldown.count()));
  }
  RequirePositive("history_retention", o.history_retention);
  RequirePositive("lease_ttl", o.lease_ttl);
  ValidateSessionLimits(o);
  RequirePositive("heartbeat_interval", o.heartbeat_interval);
  RequirePositive("poll_interval", o.poll_interval);
  RequirePositive("max_poll_interval", o.max_poll_interval);
  RequirePositive("reap_interval", o.reap_interval);
  if (o.gc_interval) RequirePositive("gc_interval", *o.gc_interval);
  if (o.gc_retention.count() < 0) throw ConfigError("gc_retention must be >= 0 ms");
  if (o.drain_timeout.count() < 0) throw ConfigError("drain_timeout must be >= 0 ms");
  if (o.max_poll_interval < o.poll_interval) {
    throw ConfigError(fmt::format("max_poll_interval ({} ms) must be >= poll_interval ({} ms)",
                                  o.max_poll_interval.count(), o.poll_interval.count()));
  }
  if (o.heartbeat_interval >= o.lease_ttl) {
    throw ConfigError(fmt::format(
        "heartbeat_interval ({} ms) must be shorter than lease_ttl ({} ms), or every lease "
        "expires before it is extended",
        o.heartbeat_interval.count(), o.lease_ttl.count()));
  }
  if (o.heartbeat_interval * 3 > o.lease_ttl) {
    spdlog::warn(
        "heartbeat_interval ({} ms) x 3 > lease_ttl ({} ms): one slow heartbeat may let a lease "
        "expire under a running step",
        o.heartbeat_interval.count(), o.lease_ttl.count());
  }
  if (o.gc_batch <= 0) throw ConfigError(fmt::format("gc_batch must be > 0 (got {})", o.gc_batch));
  if (o.prefetch < 0) throw ConfigError(fmt::format("prefetch must be >= 0 (got {})", o.prefetch));
  if (o.min_demand < 1) {
    throw ConfigError(fmt::format("min_demand must be >= 1 (got {})", o.min_demand));
  }
  for (const auto& [queue, cfg] : o.queues) {
    if (cfg.concurrency > 0 && o.min_demand > cfg.concurrency + o.prefetch) {
      throw ConfigError(fmt::format(
          "min_demand ({}) exceeds concurrency + prefetch of queue '{}' ({}): it would never "
          "claim",
          o.min_demand, queue, cfg.concurrency + o.prefetch));
    }
  }
  for (const auto& [prefix, slots] : o.partition_limits) {
    if (prefix.empty()) throw ConfigError("partition_limits: a prefix must not be empty");
    if (slots < 1) {
      throw ConfigError(
          fmt::format("partition_limits: '{}' must allow at least 1 step (got {})", prefix, slots));
    }
  }
  if (o.max_inline_steps < 0) throw ConfigError("max_inline_steps must be >= 0");
  if (o.max_payload_bytes == 0) throw ConfigError("max_payload_bytes must be > 0");
  for (const auto& [name, limit] : o.rate_limits) {
    if (name.empty()) throw ConfigError("rate_limits: a limit has an empty name");
    if (limit.allowed < 1) {
      throw ConfigError(
          fmt::format("rate_limits: allowed of '{}' must be >= 1 (got {})", name, limit.allowed));
    }
    if (limit.period.count() <= 0) {
      throw ConfigError(fmt::format("rate_limits: period of '{}' must be > 0 ms (got {})", name,
                                    limit.period.count()));
    }
    if (limit.burst && *limit.burst < 1) {
      throw ConfigError(
          fmt::format("rate_limits: burst of '{}' must be >= 1 (got {})", name, *limit.burst));
    }
  }
}

}  // namespace gen_durable::detail

// The public name check (gen_durable/conninfo.hpp) is the one every connection applies.
namespace gen_durable {

std::string SchemaNameProblem(std::string_view schema) { return detail::SchemaNameProblem(schema); }

}  // namespace gen_durable
