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
#include <functional>
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

// A Wait timeout that never ends.
inline constexpr Millis kWaitForever = Millis::max();

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

  // --- waiting for a result (docs/guides/inserting.md, "Waiting for a result") ---
  // Waits until instance `id` is terminal (done, failed or cancelled) and returns it as Get
  // would. Returns kNotFound when there is no such instance (or it was deleted meanwhile) and
  // kTimeout when it is not terminal after `timeout` (it goes on running; wait again at will).
  // `kWaitForever` waits without limit; 0 looks once. Woken within milliseconds of the commit
  // that ends the instance by a notification on one listening connection per client, shared by
  // every waiter of the process; the instance is also read again every
  // ClientOptions::wait_poll_interval, so a lost notification only delays. Marks the row (an
  // UPDATE: the role needs the engine's privileges; docs/security.md). Thread-safe; throws
  // InvalidArgument for a negative timeout and DatabaseError as Get does.
  Result<InstanceInfo> Wait(std::int64_t id, Millis timeout);
  // Inserts, then waits as Wait does: "run this and give me the answer". Returns what Insert
  // refuses (kDuplicate) or what Wait returns. On kTimeout the instance goes on running (the
  // message names its id). `inserted`, when set, is called with the id once the insert has
  // committed, before the wait. Faster than Insert then Wait: the row is marked as it is
  // inserted, so the mark never meets an engine's claim of the row.
  Result<InstanceInfo> InsertAndWait(const AnyMachine& machine, InsertOptions options,
                                     Millis timeout,
                                     const std::function<void(std::int64_t)>& inserted = {});
  Result<InstanceInfo> InsertAndWait(std::string_view fsm, InsertOptions options, Millis timeout,
                                     const std::function<void(std::int64_t)>& inserted = {});
  template <typename State>
  Result<InstanceInfo> InsertAndWait(const MachineRef<State>& machine, const State& state,
                                     Millis timeout, InsertOptions options = {}) {
    options.state = Json(state);
    return InsertAndWait(static_cast<const AnyMachine&>(machine), std::move(options), timeout);
  }
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
  // Sets the cluster-wide limit of `queue`: at most `limit` of its steps executing at once
  // across every node, from the next claim of each node on (steps already running finish: under
  // a lowered limit no step starts until fewer than `limit` run). nullopt clears it. Persisted in
  // the queue's row of gd_queues (the client's role needs privilege on that table); an engine
  // that starts later with another QueueConfig::global_limit for the queue replaces it.
  // Returns the limit it replaced (nullopt: none). Throws InvalidArgument unless limit >= 1.
  std::optional<int> SetQueueGlobalLimit(const std::string& queue, std::optional<int> limit);
  // Per queue: paused, counts by status, oldest ready age, concurrency per live node, the
  // cluster-wide limit. Every queue that has instances, has a row in gd_queues (paused once, or
  // given a limit), or is served by a live node.
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
