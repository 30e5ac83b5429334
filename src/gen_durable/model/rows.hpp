// The rows the engine moves between the database and its workers: a claimed instance, a new
// one to insert, an outcome to commit, and what the maintenance statements hand back. Plain
// values; the store (store/) reads and writes them, the runtime (runtime/) fills them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gen_durable/context.hpp"
#include "gen_durable/options.hpp"

namespace gen_durable::detail {

// One instance as claimed by a picker.
struct ClaimedRow {
  std::int64_t id = 0;
  std::string fsm;
  int fsm_version = 1;
  std::string step;
  Json state;
  int attempt = 0;
  int max_attempts = 0;  // 0: none
  int priority = 0;
  std::int64_t lease_seq = 0;
  std::string queue;
  std::optional<std::string> partition_key;
  std::optional<std::string> unique_key;
  // The token bucket this start is subject to (admitted by the RateLimiter before it runs).
  std::optional<RateLimitRef> rate_limit;
  // Set when a token of `rate_limit` was reserved for this start when the row was throttled
  // (see gd_rate_take): how long after the token's slot (the row's eligible_at) it was
  // claimed. A reserved row claimed within RateLimiter::kReservationGrace of its slot starts
  // without taking another token; a later one pays again.
  std::optional<Millis> rate_paid_late;
  std::vector<Signal> signals;        // unconsumed inbox, oldest first
  std::vector<ChildResult> children;  // of the last schedule_children
  // Set when the stored state cannot be decoded at all; the instance fails with this error.
  std::string state_error;
};

// A keyed row a claim left alone because another claim of its partition key was in flight or
// had just taken the key's last free slot (partition.contended).
struct ContendedRow {
  std::int64_t id = 0;
  std::string fsm;
  std::string partition_key;
};

// What one claim statement returns: the rows claimed, in claim order, and the keyed rows it
// skipped under contention (still runnable).
struct ClaimBatch {
  std::vector<ClaimedRow> rows;
  std::vector<ContendedRow> contended;
};

// The most JSON text one statement takes as a single jsonb parameter: half of what a jsonb
// value can hold (256 MiB), since jsonb takes more room than text for some values (small
// numbers). InsertBatch splits a larger batch; a join carrying more is refused.
inline constexpr std::size_t kMaxStatementJsonBytes = std::size_t{128} << 20;

// A fully resolved insert (defaults applied by the client).

struct NewInstance {
  std::string fsm;
  int fsm_version = 1;
  std::string queue;
  std::string step;
  std::string state;  // encoded JSON
  int priority = 0;
  std::optional<std::string> eligible_at;  // ISO-8601 / Postgres timestamptz text
  std::optional<std::int64_t> delay_ms;    // added to eligible_at (or now())
  std::optional<int> max_attempts;
  std::optional<std::string> partition_key;
  std::optional<std::string> unique_key;
  std::vector<std::string> unique_scope;  // empty: the default (non-terminal statuses)
  std::optional<RateLimitRef> rate_limit;
};

// One outcome to commit, in absolute terms (so a retried commit is idempotent).
struct OutcomeRow {
  std::int64_t id = 0;
  std::int64_t lease_seq = 0;
  std::string status;                // runnable, executing (kept claim), done, failed
  std::optional<std::string> step;   // new step (next)
  std::optional<std::string> state;  // new encoded state (next, replay)
  int attempt = 0;
  std::optional<std::int64_t> delay_ms;   // eligible_at := now() + delay (runnable rows)
  std::optional<std::int64_t> run_at_ms;  // or eligible_at := this time (ms since the epoch)
  std::optional<std::string> result;      // encoded JSON (done)
  std::optional<std::string> last_error;
  bool keep = false;  // keep the claim (inline run-ahead)
  // Partition key change: unset = keep; a value = set it; an empty inner value = release.
  std::optional<std::optional<std::string>> partition;
  std::optional<RateLimitRef> rate_limit;  // for the next start (cleared when unset)
  std::vector<std::int64_t> consume;       // signals shown to the step, consumed on commit
  bool clear_inbox = false;                // terminal: the inbox goes
  // await: status awaiting_signal
  std::vector<std::string> awaiting;
  bool keep_awaiting = false;  // replay: the awaited names stay
  std::optional<std::string> await_next_step;
  std::vector<std::int64_t> shown;      // signals the step saw (not wake reasons again)
  std::optional<std::int64_t> park_ms;  // await timeout / join deadline
  // schedule_children: status awaiting_children
  std::optional<std::string> join_next_step;
  std::vector<NewInstance> children;
  std::optional<int> wait_for;
  // For the history: the step that produced this outcome, its attempt, and how long it ran.
  std::string ran_step;
  int ran_attempt = 0;
  // Its place among the outcomes of its claim (0 for the step the claim started, 1 for the
  // first step run ahead on the kept claim, ...): a kept claim stays executing under the same
  // lease_seq, so this is what tells a retried commit that it was already applied.
  int claim_step = 0;
  std::optional<double> duration_ms;
};

// An outcome that passed the ownership guard. `cancelled`: the instance was cancelled while
// its step ran, so it committed as `cancelled` whatever the outcome said.
struct CommittedOutcome {
  std::int64_t id = 0;
  std::int64_t lease_seq = 0;  // of the claim whose outcome committed
  bool cancelled = false;
};

// One claim of a row: its id and the lease_seq the claim gave it. Statements acting for a
// claim match both, so they never touch a later claim of the same row.
struct ClaimRef {
  std::int64_t id = 0;
  std::int64_t lease_seq = 0;
};

struct ReapedRow {
  std::int64_t id;
  std::string status;  // runnable, or failed when max_attempts is exhausted
};

// A parked row woken by its deadline: `was` is awaiting_signal or awaiting_children.
struct ParkedWake {
  std::int64_t id;
  std::string was;
  std::string queue;
};

struct NodeRow {
  std::string id;
  std::string host;
  int pid;
  std::string proc_start;
  std::string pid_ns;  // "" when the node did not record it (an older version)
  // Its row was not refreshed for kSilentBeats of its heartbeat intervals nor for its lease
  // ttl: every lease it renewed has expired, so its claims are free for the taking whether it
  // lives or not (a live node's row goes silent while the database is out of its reach).
  bool silent = false;
};

}  // namespace gen_durable::detail
