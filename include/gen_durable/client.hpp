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
#include "gen_durable/info.hpp"
#include "gen_durable/machine.hpp"
#include "gen_durable/options.hpp"

struct pg_conn;

namespace gen_durable {

namespace detail {
class ClientImpl;
}

struct SignalOptions {
  // Delivering the same (target, dedup_key) twice stores one signal; the second call returns
  // the first signal's id.
  std::optional<std::string> dedup_key;
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
  Result<std::int64_t> InsertWith(pg_conn* conn, std::string_view fsm, InsertOptions options = {});

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

  // --- periodic schedules (docs/guides/schedules.md) ---
  // Every schedule recorded in the database (engines carrying one write it at start), by name,
  // with its last and next fire times.
  std::vector<ScheduleInfo> Schedules();
  // Inserts one run of schedule `name` now, outside its slots, from its recorded definition,
  // with the unique key "schedule:NAME:manual:TIME"; its slots are not affected. Returns the
  // new id, or kNotFound when no schedule of that name is recorded.
  Result<std::int64_t> TriggerSchedule(const std::string& name);

  const std::string& schema() const;

 private:
  explicit Client(std::unique_ptr<detail::ClientImpl> impl);
  std::unique_ptr<detail::ClientImpl> impl_;
};

}  // namespace gen_durable
