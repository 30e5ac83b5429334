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
  int limit = 100;
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
  // Inserts a batch in one statement; returns the ids inserted, in request order.
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

  const std::string& schema() const;

 private:
  explicit Client(std::unique_ptr<detail::ClientImpl> impl);
  std::unique_ptr<detail::ClientImpl> impl_;
};

}  // namespace gen_durable
