// Every SQL statement the engine runs, one named function each. Nothing else writes SQL.
//
// A Store is bound to a schema; it owns the statement texts (with the schema substituted) and
// runs them on a connection the caller provides. Hot statements name the index serving them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gen_durable/client.hpp"
#include "gen_durable/options.hpp"
#include "gen_durable/pg/connection.hpp"

namespace gen_durable::detail {

// A Postgres array literal of ids ("{1,2,3}") for a bigint[] parameter.
std::string IdArray(const std::vector<std::int64_t>& ids);

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
  std::vector<Signal> signals;          // unconsumed inbox, oldest first
  std::vector<ChildResult> children;    // of the last schedule_children
  // Set when the stored state cannot be decoded at all; the instance fails with this error.
  std::string state_error;
};

// Decodes the JSON columns of a claimed row as gd_claim returns them: the state, and (unless
// NULL) the unconsumed inbox and the children of the last join. A column that cannot be decoded
// (jsonb stores numbers nlohmann cannot represent, e.g. 1e1000) sets row.state_error, and the
// instance fails without running its step. Never throws (but std::bad_alloc).
void DecodeClaimJson(std::string_view state, std::optional<std::string_view> signals,
                     std::optional<std::string_view> children, ClaimedRow& row);

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

// A fully resolved insert (defaults applied by the client).
// The most JSON text one statement takes as a single jsonb parameter: half of what a jsonb
// value can hold (256 MiB), since jsonb takes more room than text for some values (small
// numbers). InsertBatch splits a larger batch; a join carrying more is refused.
inline constexpr std::size_t kMaxStatementJsonBytes = std::size_t{128} << 20;

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
  std::vector<std::string> unique_scope;   // empty: the default (non-terminal statuses)
  std::optional<RateLimitRef> rate_limit;
};

// One outcome to commit, in absolute terms (so a retried commit is idempotent).
struct OutcomeRow {
  std::int64_t id = 0;
  std::int64_t lease_seq = 0;
  std::string status;                  // runnable, executing (kept claim), done, failed
  std::optional<std::string> step;     // new step (next)
  std::optional<std::string> state;    // new encoded state (next, replay)
  int attempt = 0;
  std::optional<std::int64_t> delay_ms;  // eligible_at := now() + delay (runnable rows)
  std::optional<std::string> result;   // encoded JSON (done)
  std::optional<std::string> last_error;
  bool keep = false;                   // keep the claim (inline run-ahead)
  // Partition key change: unset = keep; a value = set it; an empty inner value = release.
  std::optional<std::optional<std::string>> partition;
  std::optional<RateLimitRef> rate_limit;  // for the next start (cleared when unset)
  std::vector<std::int64_t> consume;       // signals shown to the step, consumed on commit
  bool clear_inbox = false;                // terminal: the inbox goes
  // await: status awaiting_signal
  std::vector<std::string> awaiting;
  bool keep_awaiting = false;              // replay: the awaited names stay
  std::optional<std::string> await_next_step;
  std::vector<std::int64_t> shown;         // signals the step saw (not wake reasons again)
  std::optional<std::int64_t> park_ms;     // await timeout / join deadline
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

// The parameters of one group commit, each a JSON array as text: the outcomes
// (gd_commit_outcomes $1), the parked rows to wake at once (gd_wake_parked $1), the children
// with their parent (gd_spawn_children $1) and the new join barriers (gd_spawn_children $3).
struct CommitPayload {
  std::string outcomes;
  std::string wakes;
  std::string children;
  std::string joins;
};
// Encodes `rows` for CommitOutcomes. Strings that are not valid UTF-8 are repaired (U+FFFD);
// states and results are written as they are (already encoded JSON).
CommitPayload EncodeCommit(const std::vector<OutcomeRow>& rows);

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

class Store {
 public:
  explicit Store(std::string schema);
  const std::string& schema() const { return schema_; }
  // The LISTEN/NOTIFY channel announcing new ready work (payload: the queue name).
  const std::string& channel() const { return channel_; }

  // Slots per partition key prefix (default 1 per key); read by Claim.
  void SetPartitionLimits(const std::map<std::string, int>& limits);

  // --- inserts ---
  // Inserts one row; nullopt when its unique key is held (duplicate). `ad_hoc` runs the
  // statement unnamed (for a borrowed caller connection that must not keep our statements).
  // Without `ready_queues` the statement announces the rows that are ready now on the channel,
  // in its own transaction (delivered at that transaction's commit: right for a caller's
  // transaction). With it, the statement announces nothing and adds the queues to announce to
  // `ready_queues` (each once), for AnnounceReady after the commit: a transaction that sends a
  // notification holds a cluster-wide lock through its commit's WAL flush, so notifying inserts
  // commit one at a time (docs/performance.md, "The cost of NOTIFY").
  std::optional<std::int64_t> InsertOne(pg::Connection& c, const NewInstance& row,
                                        bool ad_hoc = false,
                                        std::vector<std::string>* ready_queues = nullptr) const;
  // Inserts a batch atomically, dropping rows whose unique key is held; returns one entry per
  // request, in request order (nullopt: dropped as a duplicate). One statement, or, past
  // kMaxStatementJsonBytes, several in one transaction (one round trip). `ready_queues` as
  // for InsertOne.
  std::vector<std::optional<std::int64_t>> InsertBatch(
      pg::Connection& c, const std::vector<NewInstance>& rows, bool ad_hoc = false,
      std::vector<std::string>* ready_queues = nullptr) const;
  // Announces ready work in `queues` on the channel, in a transaction of its own whose commit
  // does not wait for the WAL flush, so it holds the notification lock only briefly. A lost
  // announcement costs an engine one poll interval, never a row.
  void AnnounceReady(pg::Connection& c, const std::vector<std::string>& queues) const;

  // --- the hot loop ---
  // Claims up to `limit` ready rows; with `promote`, first moves due scheduled rows of the
  // queue to runnable in the same round trip. `claim_no` numbers this node's claim statements
  // (1, 2, ...): each claimed row's lease_seq grows by it (see gd_claim). A keyed row whose key
  // another claim holds at that moment is skipped and listed in `contended`; it never fails the
  // batch.
  ClaimBatch Claim(pg::Connection& c, const std::string& queue, int limit,
                                const std::string& node, Millis lease_ttl,
                                const std::vector<std::string>& machines, bool promote,
                                std::int64_t claim_no) const;
  // Returns the outcomes that committed (the others were stale). With `history`, each step
  // outcome (a row with ran_step) also gets its gd_history entry.
  std::vector<CommittedOutcome> CommitOutcomes(pg::Connection& c,
                                               const std::vector<OutcomeRow>& rows,
                                               const std::string& node, Millis lease_ttl,
                                               bool history) const;
  // Extends the leases of `ids` held by `node`; returns how many were extended.
  std::int64_t Heartbeat(pg::Connection& c, const std::string& node,
                         const std::vector<std::int64_t>& ids, Millis lease_ttl) const;
  // Hands un-started claims back (attempt unchanged). A row claimed again since (a lease lost
  // and re-claimed, by this node or another) is left alone. Returns the count released.
  std::int64_t ReleaseClaims(pg::Connection& c, const std::string& node,
                             const std::vector<ClaimRef>& claims) const;

  // --- maintenance ---
  std::vector<ReapedRow> ReapExpired(pg::Connection& c, int limit) const;
  // Wakes parked rows whose await timeout or join deadline passed.
  std::vector<ParkedWake> ReapParked(pg::Connection& c, int limit) const;
  // Reclaims every row held by a dead node (like the reaper, without waiting for the lease).
  std::vector<ReapedRow> ReclaimNode(pg::Connection& c, const std::string& node) const;
  std::int64_t GcSweep(pg::Connection& c, Millis retention, int limit) const;

  // --- nodes ---
  void NodeUpsert(pg::Connection& c, const std::string& id, const std::string& engine,
                  const std::string& host, int pid, const std::string& proc_start,
                  const std::string& pid_ns, Millis heartbeat_interval, Millis lease_ttl,
                  const std::string& queues_json) const;
  void NodeHeartbeat(pg::Connection& c, const std::string& id) const;
  void NodeDelete(pg::Connection& c, const std::string& id) const;
  // Heartbeat intervals a node's row may lag before the node counts as silent (NodeRow); the
  // lag must also exceed the node's lease ttl.
  static constexpr int kSilentBeats = 3;
  // The nodes of host name `host`; a node that did not record its heartbeat interval or lease
  // ttl is judged by `heartbeat_interval` and `lease_ttl`.
  std::vector<NodeRow> NodesOnHost(pg::Connection& c, const std::string& host,
                                   Millis heartbeat_interval, Millis lease_ttl) const;
  // Deletes node rows not heartbeated for `age`; returns their ids.
  std::vector<std::string> NodesPrune(pg::Connection& c, Millis age) const;

  // --- signals ---
  // SQLSTATE raised by gd_signal when the target is unknown or terminal.
  static constexpr const char* kNoTargetState = "GD404";
  // Delivers a signal through gd_signal (by id, or by unique key); returns the signal id.
  std::int64_t Signal(pg::Connection& c, std::optional<std::int64_t> id,
                      const std::optional<std::string>& key, const std::string& name,
                      const std::string& payload, const std::optional<std::string>& dedup) const;

  // --- reads ---
  std::optional<InstanceInfo> Get(pg::Connection& c, std::int64_t id) const;
  std::vector<InstanceInfo> List(pg::Connection& c, const ListFilter& f) const;
  StatusCounts Counts(pg::Connection& c) const;

 private:
  pg::Statement Make(const char* name, const char* sql) const;
  // Sets each instance's children ids (one query for all of them).
  void FillChildren(pg::Connection& c, std::span<InstanceInfo> infos) const;

  std::string schema_;
  std::string channel_;
  std::string partition_limits_;  // JSON object prefix -> slots
  pg::Statement insert_batch_, announce_, promote_, claim_async_, claim_, commit_, wake_parked_, spawn_children_, heartbeat_, release_, reap_,
      reclaim_node_, reap_parked_, gc_, node_upsert_, node_heartbeat_, node_delete_, nodes_on_host_,
      nodes_prune_, get_, children_, list_, counts_, signal_, signals_of_;
};

}  // namespace gen_durable::detail
