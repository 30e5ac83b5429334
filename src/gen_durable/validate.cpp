// Validation of engine options: every bad value is refused with the option's name.
#include "gen_durable/validate.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "gen_durable/error.hpp"

namespace gen_durable::detail {

namespace {

void RequirePositive(const char* name, Millis v) {
  if (v.count() <= 0) {
    throw ConfigError(fmt::format("{} must be > 0 ms (got {})", name, v.count()));
  }
}

}  // namespace

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

void ValidateEngineOptions(const EngineOptions& o) {
  if (o.name.empty()) throw ConfigError("name must not be empty");
  if (o.database.empty()) throw ConfigError("database must be set (a libpq connection string)");
  ValidateIdentifier("schema", o.schema);
  if (o.queues.empty()) throw ConfigError("queues must name at least one queue");
  for (const auto& [queue, cfg] : o.queues) {
    ValidateIdentifier("queue name", queue);
    if (cfg.concurrency < 0) {
      throw ConfigError(
          fmt::format("queues: concurrency of '{}' must be >= 0 (got {})", queue, cfg.concurrency));
    }
    if (cfg.concurrency > 10'000) {
      throw ConfigError(fmt::format("queues: concurrency of '{}' must be <= 10000 (got {})", queue,
                                    cfg.concurrency));
    }
  }
  RequirePositive("lease_ttl", o.lease_ttl);
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
      throw ConfigError(fmt::format("rate_limits: allowed of '{}' must be >= 1 (got {})", name,
                                    limit.allowed));
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
