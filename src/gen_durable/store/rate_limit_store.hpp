// The SQL of rate limits (docs/guides/rate-limits.md): token buckets in gd_rate_buckets, and the
// claimed rows whose start they admit, hand back or fail.
//
// A RateLimitStore is bound to a schema like Store; it owns its statement texts and runs them on
// a connection the caller provides. The policy (which limit a row names, what is known, what is
// too heavy, what to report) belongs to RateLimiter; this class only knows how to take tokens
// atomically and how to release a row it could not admit.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "gen_durable/options.hpp"
#include "gen_durable/pg/connection.hpp"

namespace gen_durable::detail {

// A claimed row asking for `weight` tokens of bucket (name, key) under `limit`.
struct TokenRequest {
  std::int64_t id = 0;
  std::int64_t lease_seq = 0;
  std::string name;
  std::string key;    // "" for the limit's global bucket
  std::string queue;  // the row's queue: rows behind it in this queue share its reservation
  int weight = 1;
  int allowed = 1;
  Millis period{1000};
  int burst = 1;  // the limit's effective capacity (its `burst`, else `allowed`)
};

// What became of one TokenRequest.
struct TokenGrant {
  enum class Status {
    kGranted,    // tokens taken; the row may start
    kThrottled,  // not enough tokens: reserved; the row was handed back as `scheduled`
    kStale,      // the row is no longer this claim's; nothing was taken or written
  };
  Status status = Status::kStale;
  std::int64_t wait_ms = 0;  // kThrottled: how far in the future the row becomes eligible
  // kThrottled: runnable rows of the same queue and bucket whose tokens were reserved with it
  std::int64_t reserved_behind = 0;
};

// A claimed row to fail without running it, with `error` as its last_error.
struct RowRejection {
  std::int64_t id = 0;
  std::int64_t lease_seq = 0;
  std::string error;
};

class RateLimitStore {
 public:
  explicit RateLimitStore(std::string schema);

  // In one round trip: fails `rejections` and takes tokens for `requests`, all guarded by the
  // claim (status 'executing', locked_by = `node`, the request's lease_seq). A request whose
  // bucket is short reserves its tokens and hands its row back as `scheduled`, eligible when
  // they will have refilled; the runnable rows of its bucket queued behind it are reserved and
  // scheduled the same way, in claim order (see gd_rate_take).
  // Returns one TokenGrant per request (in order) and the ids of the rejections applied (the
  // others were stale). The batch is one implicit transaction: on error nothing was written.
  // Correct under concurrent nodes; never waits for anything but other admissions of the same
  // buckets (and the owner's own heartbeat). Throws DatabaseError.
  struct AdmitResult {
    std::vector<TokenGrant> grants;
    std::vector<std::int64_t> rejected;
  };
  AdmitResult Admit(pg::Connection& c, const std::string& node,
                    const std::vector<TokenRequest>& requests,
                    const std::vector<RowRejection>& rejections) const;

  // Deletes buckets that have refilled to their burst under their configured limit (a bucket in
  // debt is kept until its reservations are paid back), and buckets of names not in `limits` idle
  // for `unknown_idle`. Skips buckets an admission holds. Returns how many were deleted. Throws
  // DatabaseError.
  std::int64_t PruneIdle(pg::Connection& c, const std::map<std::string, RateLimit>& limits,
                         Millis unknown_idle) const;

 private:
  pg::Statement Make(const char* name, const char* sql) const;

  std::string schema_;
  pg::Statement lock_, take_, reject_, prune_;
};

}  // namespace gen_durable::detail
