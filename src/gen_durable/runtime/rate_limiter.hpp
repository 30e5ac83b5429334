// Cluster-wide token buckets (docs/guides/rate-limits.md): admission of claimed rows that name a
// rate limit.
//
// A row carries the limit its next start is subject to (set by the outcome that led to it, or
// by the insert). After a claim, and before any such row runs, the feeder asks Admit() to take
// tokens for those rows, in one round trip. A row whose bucket is short reserves its tokens and
// is handed back as `scheduled` for the moment they will have refilled, together with the
// runnable rows of its bucket queued behind it, each reserved one token-time later: the backlog
// waits outside the claim index in token order, comes due one row per token, holds no worker
// slot while it waits and never blocks unrelated rows of the queue. A reserved row's next
// claim starts it without taking tokens again, if it comes in time: a reservation is a slot
// in time, and rows whose slots passed long ago (a dead worker held them, the database was
// down, the queue was paused) would otherwise all start together, far beyond the burst. A
// reserved row claimed later than the grace (its tokens' refill time, at least the poll
// interval) pays again like any other row.
#pragma once

#include <memory>
#include <vector>

#include "gen_durable/options.hpp"
#include "gen_durable/pg/connection.hpp"
#include "gen_durable/runtime/reporter.hpp"
#include "gen_durable/store/rate_limit_store.hpp"
#include "gen_durable/store/store.hpp"

namespace gen_durable::detail {

// The engine's rate-limit configuration, as the limiter uses it.
struct RateLimitSettings {
  std::string schema;
  std::string node_id;
  std::map<std::string, RateLimit> limits;  // EngineOptions::rate_limits
  Millis poll_interval;                     // the least grace a reservation has

  static RateLimitSettings Of(const EngineOptions& options, const std::string& node_id) {
    return {options.schema, node_id, options.rate_limits, options.poll_interval};
  }
};

class RateLimiter {
 public:
  // Reports unknown limits, rejections and throttled rows through `report`.
  RateLimiter(RateLimitSettings settings, std::shared_ptr<const Reporter> report);

  // Returns the rows that may start now. Rows naming a limit this engine does not define are
  // failed with a clear last_error (and reported); throttled rows are handed back and reported
  // with `rate_limit.throttled`. Rows without a limit pass untouched. Throws DatabaseError.
  std::vector<ClaimedRow> Admit(pg::Connection& conn, std::vector<ClaimedRow> rows);

  // True when `row` holds a reserved token and was claimed within the grace of its slot, so
  // it starts without admission.
  bool StartsOnItsReservation(const ClaimedRow& row) const;

  // Deletes buckets that have been idle long enough to be full again. Returns how many.
  std::int64_t PruneIdle(pg::Connection& conn);

 private:
  const RateLimitSettings settings_;
  const std::shared_ptr<const Reporter> report_;
  const RateLimitStore store_;
};

}  // namespace gen_durable::detail
