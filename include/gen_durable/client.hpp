// The client: insert instances and read them back, from any process (no engine needed).
//
//   auto client = gen_durable::Client::Connect({.database = "postgresql:///app"});
//   client->Migrate();
//   gen_durable::Result<std::int64_t> id = client->Insert(checkout, Order{42});
//
// Thread-safe: calls may come from many threads; each borrows a pooled connection.
// Infrastructure failures throw gen_durable::Error (see error.hpp for retry classes); expected
// domain outcomes (duplicate, ...) are returned in a Result.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gen_durable/error.hpp"
#include "gen_durable/machine.hpp"
#include "gen_durable/options.hpp"

struct pg_conn;

namespace gen_durable {

namespace detail {
class ClientImpl;
}

// A signal as stored in an instance's inbox.
struct SignalInfo {
  std::int64_t id = 0;
  std::string name;
  Json payload;
  std::optional<std::string> dedup_key;
  bool consumed = false;
  std::string inserted_at;
};

// One instance as stored.
struct InstanceInfo {
  std::int64_t id = 0;
  std::string fsm;
  int fsm_version = 1;
  // scheduled (waiting for eligible_at), runnable, executing, awaiting_signal,
  // awaiting_children, done, failed, cancelled
  std::string status;
  std::string step;
  Json state;
  int attempt = 0;
  std::optional<int> max_attempts;
  std::string queue;
  int priority = 0;
  std::optional<std::string> partition_key;
  std::optional<std::string> unique_key;
  Json result;  // null when none
  std::optional<std::string> last_error;
  std::optional<std::int64_t> parent_id;
  std::vector<std::int64_t> children;
  std::vector<SignalInfo> signals;  // filled by Get
  std::optional<std::string> locked_by;
  std::string inserted_at;  // ISO-8601 timestamps from the database
  std::string updated_at;
  std::string eligible_at;
  std::optional<std::string> lease_expires_at;
  std::optional<std::string> completed_at;

  // The object printed by `gen_durable show --json`.
  Json ToJson() const;
};

struct SignalOptions {
  // Delivering the same (target, dedup_key) twice stores one signal; the second call returns
  // the first signal's id.
  std::optional<std::string> dedup_key;
};

struct ListFilter {
  std::optional<std::string> status;
  std::optional<std::string> queue;
  std::optional<std::string> fsm;
  // Instances whose unique_key or partition_key equals this.
  std::optional<std::string> key;
  // Only instances with an id below this (paging through a long list, newest first).
  std::optional<std::int64_t> before_id;
  int limit = 100;
};

// Which instances a bulk operation (cancel, retry, delete) acts on: every instance matching
// all the fields set. An empty filter matches every instance (each operation still only
// touches the statuses it applies to).
struct InstanceFilter {
  std::vector<std::int64_t> ids;
  std::optional<std::string> status;
  std::optional<std::string> queue;
  std::optional<std::string> fsm;
  // Only instances last updated longer ago than this.
  std::optional<Millis> older_than;
};

struct CancelOptions {
  // Also cancel every descendant (children, their children, ...) that is not terminal.
  bool cascade = false;
  // Recorded as the instances' last_error.
  std::string reason = "cancelled";
};

// What a cancel did. Queued and parked instances are cancelled at once; a running one is asked
// to stop (its step sees ctx.cancelled()) and its next outcome becomes `cancelled`.
struct CancelReport {
  std::vector<std::int64_t> cancelled;  // now terminal `cancelled`
  std::vector<std::int64_t> requested;  // running: cancelled when their step returns
};

// One entry of an instance's history.
struct HistoryEntry {
  std::int64_t id = 0;
  std::string step;                  // the step that ran (or the step when an operator acted)
  std::string event;                 // "step", "cancel", "retry", "reap"
  std::string status;                // the instance's status after it
  int attempt = 0;
  std::optional<double> duration_ms; // of the step
  std::optional<std::string> error;
  std::string node;                  // node id, or "client" for an operator action
  std::string at;                    // ISO-8601

  // {"id", "event", "step", "status", "attempt", "duration_ms", "error", "node", "at"}, as in
  // `gen_durable show --json`.
  Json ToJson() const;
};

// A queue as the cluster sees it.
struct QueueInfo {
  std::string name;
  bool paused = false;
  std::map<std::string, std::int64_t> counts;  // status -> instances
  // Age of the oldest ready (runnable and due) instance, in ms; nullopt when none is ready.
  std::optional<double> oldest_ready_ms;
  // Concurrency of the queue on each live node that serves it (node id -> slots).
  std::map<std::string, int> concurrency;
  // Instances of the queue that ended (done, failed, cancelled) in the last minute.
  std::int64_t completed_last_minute = 0;
};

// A live engine, from its heartbeated row.
struct NodeInfo {
  std::string id;      // host:pid:token
  std::string engine;  // the engine's name
  std::string host;
  int pid = 0;
  std::map<std::string, int> queues;  // queue -> concurrency now
  std::string started_at;
  std::string heartbeat_at;
  std::int64_t running = 0;  // instances it holds executing now

  // The object printed by `gen_durable nodes --json`.
  Json ToJson() const;
};

// Counts by queue x status, and totals by status.
struct StatusCounts {
  std::map<std::string, std::int64_t> total;
  std::map<std::string, std::map<std::string, std::int64_t>> queues;
};

class Client {
 public:
  // Connects (lazily: the first call opens the first connection). Throws ConfigError on bad
  // options.
  static std::unique_ptr<Client> Connect(const ClientOptions& options);
  ~Client();

  // Applies the schema migrations that are missing. Safe to run concurrently from several
  // processes (serialized by an advisory lock).
  void Migrate();
  // The schema version applied in the database (0 when none).
  int SchemaVersion();
  // Grants the existing database role `role` what `as` needs on this schema (migrating it
  // first), as docs/security.md's role guide says: run it as the schema's owner. Idempotent.
  // Throws InvalidArgument for a role that does not exist, DatabaseError when not allowed.
  void GrantRole(const std::string& role, DatabaseRole as);

  // Inserts one instance of `machine`. Throws InvalidArgument on bad options.
  Result<std::int64_t> Insert(const AnyMachine& machine, InsertOptions options = {});
  // Inserts one instance of the machine registered as `fsm` (newest version); unknown names
  // are inserted with defaults (version 1, queue "default", step "start") for other nodes.
  Result<std::int64_t> Insert(std::string_view fsm, InsertOptions options = {});
  // Typed insert: `state` becomes the initial state.
  template <typename State>
  Result<std::int64_t> Insert(const MachineRef<State>& machine, const State& state,
                              InsertOptions options = {}) {
    options.state = Json(state);
    return Insert(static_cast<const AnyMachine&>(machine), std::move(options));
  }
  // Inserts a batch atomically, in one statement (several in one transaction past 128 MiB of
  // state); returns the ids inserted, in request order.
  std::vector<std::int64_t> InsertAll(const std::vector<InsertRequest>& requests);

  // Transactional enqueue: runs the insert on the caller's own libpq connection, inside
  // whatever transaction the caller has open there, so the instance exists only if the
  // caller's transaction commits. The connection is not closed or otherwise changed.
  Result<std::int64_t> InsertWith(pg_conn* conn, const AnyMachine& machine,
                                  InsertOptions options = {});
  Result<std::int64_t> InsertWith(pg_conn* conn, std::string_view fsm,
                                  InsertOptions options = {});

  // Delivers a durable signal to instance `id`; wakes it when it awaits `name`. Returns the
  // signal id, or kNoTarget when the instance does not exist or is terminal.
  Result<std::int64_t> Signal(std::int64_t id, const std::string& name, Json payload = nullptr,
                              const SignalOptions& options = {});
  // The same, addressing the live instance holding `unique_key`.
  Result<std::int64_t> SignalByKey(const std::string& unique_key, const std::string& name,
                                   Json payload = nullptr, const SignalOptions& options = {});

  // Reads one instance (with its children ids and signals); nullopt when it does not exist.
  std::optional<InstanceInfo> Get(std::int64_t id);
  // Lists instances, newest first.
  std::vector<InstanceInfo> List(const ListFilter& filter);
  // Counts instances by queue and status.
  StatusCounts Counts();

  // --- operating it (docs/operations.md) ---
  // Pauses `queue` cluster-wide: no node claims its rows until Resume (persisted; every node
  // sees it at its next claim). Steps already running finish.
  void PauseQueue(const std::string& queue);
  void ResumeQueue(const std::string& queue);
  // Asks the engines serving `queue` (all of them, or only node `node`) to run it with
  // `concurrency` slots, like Engine::Scale on each. The request is a row of gd_control, so the
  // client's role needs privilege on that table (a NOTIFY only wakes the engines). It stands:
  // a node that starts later, or restarts, applies it too, unless that node's own configuration
  // of the queue changed since it applied it (docs/security.md, "Control plane"); a request for
  // one node ends with that node. Throws InvalidArgument unless 1 <= concurrency <=
  // kMaxConcurrency.
  void ScaleQueue(const std::string& queue, int concurrency,
                  const std::optional<std::string>& node = std::nullopt);
  // Per queue: paused, counts by status, oldest ready age, concurrency per live node. Every
  // queue that has instances, is paused, or is served by a live node.
  std::vector<QueueInfo> Queues();
  // Live nodes (rows heartbeated by running engines) with what each runs now.
  std::vector<NodeInfo> Nodes();

  // Cancels instance `id` (see CancelReport). Terminal instances are left alone (empty report).
  CancelReport Cancel(std::int64_t id, const CancelOptions& options = {});
  // Cancels every non-terminal instance matching `filter`.
  CancelReport CancelWhere(const InstanceFilter& filter, const CancelOptions& options = {});
  // Puts a failed or cancelled instance back to runnable (attempt 0, result and completion
  // cleared, last_error kept). Returns false when `id` is not failed or cancelled, when its
  // unique key is held by another live instance, or when its parent still waits on its join.
  bool Retry(std::int64_t id);
  // Retries every failed or cancelled instance matching `filter`; returns the ids retried.
  std::vector<std::int64_t> RetryWhere(const InstanceFilter& filter);
  // Deletes the instances matching `filter` (with their signals and history), except
  // executing ones (cancel them first) and children of a live parent's latest join (finished
  // or not: the parent reads them). Returns how many were deleted.
  std::int64_t DeleteWhere(const InstanceFilter& filter);
  // The history of instance `id`, oldest first (at most `limit` newest entries).
  std::vector<HistoryEntry> History(std::int64_t id, int limit = 200);

  const std::string& schema() const;

 private:
  explicit Client(std::unique_ptr<detail::ClientImpl> impl);
  std::unique_ptr<detail::ClientImpl> impl_;
};

}  // namespace gen_durable
