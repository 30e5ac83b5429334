// Admission of claimed rows through cluster-wide token buckets (docs/guides/rate-limits.md).
#include "gen_durable/runtime/rate_limiter.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

namespace gen_durable::detail {

namespace {

// Buckets of a name this engine does not configure are kept this long after their last use:
// during a rolling deploy other nodes may still configure the name and rely on its state.
constexpr Millis kUnconfiguredBucketIdle{86'400'000};

int BurstOf(const RateLimit& limit) { return limit.burst.value_or(limit.allowed); }

}  // namespace

RateLimiter::RateLimiter(RateLimitSettings settings, std::shared_ptr<const Reporter> report)
    : settings_(std::move(settings)), report_(std::move(report)), store_(settings_.schema) {}

bool RateLimiter::StartsOnItsReservation(const ClaimedRow& row) const {
  if (!row.rate_limit || !row.rate_paid_late) return false;
  const auto it = settings_.limits.find(row.rate_limit->name);
  if (it == settings_.limits.end() || it->second.allowed < 1) return false;
  // The refill time of the row's tokens: a reservation's slot is that far from its neighbours'.
  const auto refill = it->second.period * row.rate_limit->weight / it->second.allowed;
  const Millis grace =
      std::max(std::chrono::duration_cast<Millis>(refill), settings_.poll_interval);
  return *row.rate_paid_late <= grace;
}

std::vector<ClaimedRow> RateLimiter::Admit(pg::Connection& conn, std::vector<ClaimedRow> rows) {
  // What the SQL is asked for each row that names a limit, and which row it was for.
  std::vector<TokenRequest> requests;
  std::vector<std::size_t> request_rows;
  std::vector<RowRejection> rejections;
  std::vector<std::size_t> rejection_rows;
  std::vector<bool> unknown;  // per rejection: the limit is not configured (else: bad weight)

  const auto& limits = settings_.limits;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const ClaimedRow& row = rows[i];
    // (a row throttled earlier had its token reserved then: it starts now without another)
    if (!row.rate_limit || StartsOnItsReservation(row)) continue;
    const RateLimitRef& ref = *row.rate_limit;
    const auto it = limits.find(ref.name);
    std::string error;
    if (it == limits.end()) {
      error = fmt::format("unknown rate limit '{}'", ref.name);
    } else if (ref.weight < 1) {
      error = fmt::format("rate limit '{}': weight must be >= 1 (got {})", ref.name, ref.weight);
    } else if (ref.weight > BurstOf(it->second)) {
      // Waiting would not help: the bucket never holds more than its burst.
      error = fmt::format(
          "rate limit '{}': weight {} exceeds its burst of {}, so it can never be granted",
          ref.name, ref.weight, BurstOf(it->second));
    }
    if (!error.empty()) {
      rejections.push_back({row.id, row.lease_seq, std::move(error)});
      rejection_rows.push_back(i);
      unknown.push_back(it == limits.end());
      continue;
    }
    const RateLimit& limit = it->second;
    requests.push_back({row.id, row.lease_seq, ref.name, ref.key, row.queue, ref.weight,
                        limit.allowed, limit.period, BurstOf(limit)});
    request_rows.push_back(i);
  }
  if (requests.empty() && rejections.empty()) return rows;

  const auto result = store_.Admit(conn, settings_.node_id, requests, rejections);

  // Rows that are not admitted leave the vector: they were handed back, failed, or are no
  // longer this claim's (running them would only produce a stale outcome).
  std::vector<bool> keep(rows.size(), true);
  for (std::size_t n = 0; n < rejections.size(); ++n) {
    const ClaimedRow& row = rows[rejection_rows[n]];
    keep[rejection_rows[n]] = false;
    const bool applied =
        std::find(result.rejected.begin(), result.rejected.end(), row.id) != result.rejected.end();
    if (!applied) continue;
    const RateLimitRef& ref = *row.rate_limit;
    spdlog::warn("instance {} ({}, step {}) failed: {}", row.id, row.fsm, row.step,
                 rejections[n].error);
    if (unknown[n]) {
      report_->Emit("rate_limit.unknown", [&](TelemetryEvent& e) {
        e.measurements["count"] = 1;
        e.metadata["id"] = row.id;
        e.metadata["fsm"] = row.fsm;
        e.metadata["limit"] = ref.name;
      });
    } else {
      report_->Emit("rate_limit.rejected", [&](TelemetryEvent& e) {
        e.measurements["count"] = 1;
        e.measurements["weight"] = ref.weight;
        e.metadata["id"] = row.id;
        e.metadata["fsm"] = row.fsm;
        e.metadata["limit"] = ref.name;
        e.metadata["key"] = ref.key;
      });
    }
  }
  for (std::size_t n = 0; n < requests.size(); ++n) {
    const TokenGrant& grant = result.grants[n];
    if (grant.status == TokenGrant::Status::kGranted) continue;
    const ClaimedRow& row = rows[request_rows[n]];
    keep[request_rows[n]] = false;
    if (grant.status == TokenGrant::Status::kStale) {
      spdlog::debug("rate limit: instance {} is no longer claimed by this node; dropped", row.id);
      continue;
    }
    report_->Emit("rate_limit.throttled", [&](TelemetryEvent& e) {
      e.measurements["count"] = 1;
      e.measurements["wait_ms"] = static_cast<double>(grant.wait_ms);
      e.measurements["reserved"] = static_cast<double>(grant.reserved_behind);
      e.metadata["id"] = row.id;
      e.metadata["fsm"] = row.fsm;
      e.metadata["step"] = row.step;
      e.metadata["queue"] = row.queue;
      e.metadata["limit"] = requests[n].name;
      e.metadata["key"] = requests[n].key;
    });
  }

  std::vector<ClaimedRow> admitted;
  admitted.reserve(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (keep[i]) admitted.push_back(std::move(rows[i]));
  }
  return admitted;
}

std::int64_t RateLimiter::PruneIdle(pg::Connection& conn) {
  return store_.PruneIdle(conn, settings_.limits, kUnconfiguredBucketIdle);
}

}  // namespace gen_durable::detail
