// The client: inserts (single, batch, transactional), reads and waits for results, over a small
// connection pool.
#include "gen_durable/client.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "gen_durable/model/cron.hpp"
#include "gen_durable/model/resolve.hpp"
#include "gen_durable/model/validate.hpp"
#include "gen_durable/pg/connection.hpp"
#include "gen_durable/runtime/waiters.hpp"
#include "gen_durable/schema/migrations.hpp"
#include "gen_durable/store/ops_store.hpp"
#include "gen_durable/store/schedule_store.hpp"
#include "gen_durable/store/session.hpp"
#include "gen_durable/store/store.hpp"
#include "gen_durable/store/wait_store.hpp"
#include "gen_durable/util/thread_annotations.hpp"

namespace gen_durable {

namespace detail {

class ClientImpl {
 public:
  explicit ClientImpl(ClientOptions options)
      : options_(std::move(options)),
        store_(options_.schema),
        ops_(options_.schema),
        wait_store_(options_.schema),
        schedules_(options_.schema),
        waiters_(wait_store_.channel(), [this] {
          return OpenSession(options_.database, kWaitSessionName, ClientSessionLimits(options_));
        }) {}

  // The application_name of the listening session Wait shares (one per client).
  static constexpr const char* kWaitSessionName = "gen_durable:client-wait";

  // Runs `op` on a pooled connection, again (up to 3 times) when it fails in a retryable way
  // before anything was written: a deadlock with a concurrent commit, a lost connection.
  template <typename Op>
  auto Retrying(Op&& op) {
    for (int attempt = 1;; ++attempt) {
      try {
        auto c = Acquire();
        return op(*c);
      } catch (const DatabaseError& e) {
        if (attempt >= 3 || e.retry() != Retry::kRetryable) throw;
      }
    }
  }

  // A pooled connection, returned on destruction unless broken.
  class Lease {
   public:
    Lease(ClientImpl* owner, std::unique_ptr<pg::Connection> conn)
        : owner_(owner), conn_(std::move(conn)) {}
    ~Lease() { owner_->Return(std::move(conn_)); }
    pg::Connection& operator*() { return *conn_; }

   private:
    ClientImpl* owner_;
    std::unique_ptr<pg::Connection> conn_;
  };

  Lease Acquire() {
    {
      MutexLock lock(mu_);
      if (!free_.empty()) {
        auto c = std::move(free_.back());
        free_.pop_back();
        return Lease(this, std::move(c));
      }
    }
    return Lease(
        this, OpenSession(options_.database, "gen_durable:client", ClientSessionLimits(options_)));
  }

  void Return(std::unique_ptr<pg::Connection> c) {
    if (!c || c->broken()) return;
    MutexLock lock(mu_);
    if (static_cast<int>(free_.size()) < options_.pool_size) free_.push_back(std::move(c));
  }

  NewInstance Resolve(const std::string& fsm, std::optional<int> version, const MachineDef* def,
                      const InsertOptions& o) const {
    return ResolveInsert(fsm, version, def, o, options_.max_payload_bytes);
  }

  NewInstance ResolveByName(std::string_view fsm, std::optional<int> version,
                            const InsertOptions& o) const {
    return ResolveRegistered(InsertRequest{std::string(fsm), version, o},
                             options_.max_payload_bytes);
  }

  static Result<std::int64_t> Inserted(std::optional<std::int64_t> id, const NewInstance& row) {
    if (id) return *id;
    return DomainError{ErrorCode::kDuplicate,
                       fmt::format("duplicate: unique key '{}' is held by another instance",
                                   row.unique_key.value_or(""))};
  }

  Result<std::int64_t> Signal(std::optional<std::int64_t> id, std::optional<std::string> key,
                              const std::string& name, const Json& payload,
                              const SignalOptions& options) {
    auto require = [](const std::string& problem) {
      if (!problem.empty()) throw InvalidArgument(problem);
    };
    require(NameProblem("signal: name", name, kMaxNameBytes));
    if (key) require(KeyProblem("signal: unique key", *key));
    if (options.dedup_key) require(KeyProblem("signal: dedup_key", *options.dedup_key));
    std::string encoded;
    try {
      encoded = payload.dump(-1, ' ', false, Json::error_handler_t::strict);
    } catch (const Json::exception& e) {
      throw InvalidArgument(std::string("signal: payload is not valid JSON text: ") + e.what());
    }
    if (encoded.size() > options_.max_payload_bytes) {
      throw InvalidArgument(fmt::format("signal: payload is {} bytes, over max_payload_bytes ({})",
                                        encoded.size(), options_.max_payload_bytes));
    }
    auto c = Acquire();
    try {
      return store_.Signal(*c, id, key, name, encoded, options.dedup_key);
    } catch (const DatabaseError& e) {
      if (e.sqlstate() == Store::kNoTargetState) {
        return DomainError{ErrorCode::kNoTarget,
                           id ? fmt::format("no_target: no live instance {}", *id)
                              : fmt::format("no_target: no live instance holds key '{}'", *key)};
      }
      throw;
    }
  }

  // Wakes the engines of `queues` after an insert committed on `c`. Announcements of calls
  // running at once are coalesced, as a group commit: one caller sends every queue added so
  // far in one statement while the others wait for a send that started after they added
  // theirs, so each call waits for at most two sends. A failed send is dropped: the engines
  // find the rows at their next poll.
  void Announce(pg::Connection& c, const std::vector<std::string>& queues) {
    if (queues.empty()) return;
    std::vector<std::string> batch;
    std::uint64_t batch_ticket = 0;
    {
      MutexLock lock(announce_mu_);
      for (const auto& q : queues) {
        if (std::find(pending_.begin(), pending_.end(), q) == pending_.end()) pending_.push_back(q);
      }
      const std::uint64_t ticket = ++added_;
      for (;;) {
        if (sent_ >= ticket) return;  // a send that started after our add included ours
        if (!announcing_) break;
        announce_cv_.Wait(announce_mu_);
      }
      announcing_ = true;
      batch.swap(pending_);
      batch_ticket = added_;
    }
    try {
      store_.AnnounceReady(c, batch);
    } catch (const std::exception&) {
      // Nothing was lost but a wake-up (see above); the announcing flag must be cleared.
    }
    {
      MutexLock lock(announce_mu_);
      sent_ = batch_ticket;
      announcing_ = false;
    }
    announce_cv_.NotifyAll();
  }

  using Clock = std::chrono::steady_clock;

  // Inserts `row` and marks it awaited in the same transaction, so that no engine can end it
  // unmarked (and the mark never contends with a claim of the row); then announces it.
  Result<std::int64_t> InsertAwaited(const NewInstance& row) {
    auto c = Acquire();
    std::vector<std::string> ready;
    std::optional<std::int64_t> id;
    (*c).Exec("BEGIN");
    try {
      id = store_.InsertOne(*c, row, /*ad_hoc=*/false, &ready);
      if (id) wait_store_.WatchInTransaction(*c, *id);
      (*c).Exec("COMMIT");
    } catch (...) {
      if (!(*c).broken()) {
        try {
          (*c).Exec("ROLLBACK");
        } catch (...) {
        }
      }
      throw;
    }
    Announce(*c, ready);
    return Inserted(id, row);
  }

  // When a wait of `timeout` from now ends (far-off timeouts never do).
  static Clock::time_point DeadlineOf(Millis timeout) {
    if (timeout < Millis{0}) throw InvalidArgument("wait: timeout must be >= 0");
    if (timeout >= std::chrono::hours(24 * 365 * 100)) return Clock::time_point::max();
    return Clock::now() + timeout;
  }

  // Waits for instance `id`, its row marked already when `marked` (then the caller called
  // waiters_.Listen before the mark).
  Result<InstanceInfo> Wait(std::int64_t id, Millis timeout, Clock::time_point deadline,
                            bool marked) {
    // Listening before the mark commits, registered before the row is read: an end committed
    // after the read is announced to this waiter.
    if (!marked) waiters_.Listen(deadline);
    detail::WaitRegistry::Ticket ticket = waiters_.Register(id);
    std::optional<std::string> status;
    std::optional<InstanceInfo> info;
    if (marked) {
      info = Retrying([&](pg::Connection& c) { return store_.Get(c, id); });
      if (info) status = info->status;
    } else {
      try {
        status = Retrying([&](pg::Connection& c) { return wait_store_.Watch(c, id); });
      } catch (const DatabaseError& e) {
        if (e.sqlstate() != "42501") throw;
        // A role that may read but not update the row waits by polling alone.
        info = Retrying([&](pg::Connection& c) { return store_.Get(c, id); });
        if (info) status = info->status;
      }
    }
    for (;;) {
      if (!status) {
        return DomainError{ErrorCode::kNotFound, fmt::format("not_found: no instance {}", id)};
      }
      if (IsTerminalStatus(*status)) {
        if (!info) info = Retrying([&](pg::Connection& c) { return store_.Get(c, id); });
        if (info && IsTerminalStatus(info->status)) return *std::move(info);
        status = info ? std::optional<std::string>(info->status) : std::nullopt;
        info.reset();
        continue;  // retried meanwhile (or deleted)
      }
      info.reset();
      const auto now = Clock::now();
      if (now >= deadline) {
        return DomainError{ErrorCode::kTimeout,
                           fmt::format("timeout: instance {} is still {} after {} ms", id, *status,
                                       timeout.count())};
      }
      const auto poll = options_.wait_poll_interval;
      ticket.WaitUntil(deadline - now > poll ? now + poll : deadline);
      // The row says what happened, never the notification (anyone may send one). A database
      // that is out of reach for a while is waited out like the instance, until the deadline.
      try {
        info = Retrying([&](pg::Connection& c) { return store_.Get(c, id); });
      } catch (const DatabaseError& e) {
        if (e.retry() != Retry::kRetryable || Clock::now() >= deadline) throw;
        continue;
      }
      status = info ? std::optional<std::string>(info->status) : std::nullopt;
    }
  }

  ClientOptions options_;
  Store store_;
  OpsStore ops_;
  WaitStore wait_store_;
  ScheduleStore schedules_;
  Mutex mu_;
  std::vector<std::unique_ptr<pg::Connection>> free_ GD_GUARDED_BY(mu_);
  Mutex announce_mu_;
  CondVar announce_cv_;
  std::vector<std::string> pending_ GD_GUARDED_BY(announce_mu_);  // queues not yet announced
  std::uint64_t added_ GD_GUARDED_BY(announce_mu_) = 0;           // tickets handed out
  std::uint64_t sent_ GD_GUARDED_BY(announce_mu_) = 0;            // tickets announced
  bool announcing_ GD_GUARDED_BY(announce_mu_) = false;
  // Last: its thread uses the members above until it is stopped.
  WaitRegistry waiters_;
};

}  // namespace detail

Json HistoryEntry::ToJson() const {
  return {{"id", id},
          {"event", event},
          {"step", step},
          {"status", status},
          {"attempt", attempt},
          {"duration_ms", duration_ms ? Json(*duration_ms) : Json(nullptr)},
          {"error", error ? Json(*error) : Json(nullptr)},
          {"node", node},
          {"at", at}};
}

Json NodeInfo::ToJson() const {
  return {{"id", id},
          {"engine", engine},
          {"host", host},
          {"pid", pid},
          {"queues", queues},
          {"running", running},
          {"started_at", started_at},
          {"heartbeat_at", heartbeat_at}};
}

Json ScheduleInfo::ToJson() const {
  return {{"name", name},
          {"cron", cron},
          {"time_zone", time_zone},
          {"fsm", fsm},
          {"queue", queue},
          {"priority", priority},
          {"state", state},
          {"missed", missed},
          {"catch_up_max", catch_up_max},
          {"last_fired", last_fired ? Json(*last_fired) : Json(nullptr)},
          {"next_fire", next_fire ? Json(*next_fire) : Json(nullptr)},
          {"updated_at", updated_at}};
}

Json InstanceInfo::ToJson() const {
  Json j = {{"id", id},
            {"fsm", fsm},
            {"fsm_version", fsm_version},
            {"status", status},
            {"step", step},
            {"state", state},
            {"attempt", attempt},
            {"queue", queue},
            {"priority", priority},
            {"result", result},
            {"children", children},
            {"inserted_at", inserted_at},
            {"updated_at", updated_at},
            {"eligible_at", eligible_at}};
  auto opt = [&](const char* k, const auto& v) { j[k] = v ? Json(*v) : Json(nullptr); };
  opt("max_attempts", max_attempts);
  opt("partition_key", partition_key);
  opt("unique_key", unique_key);
  opt("last_error", last_error);
  opt("parent_id", parent_id);
  opt("locked_by", locked_by);
  opt("lease_expires_at", lease_expires_at);
  opt("completed_at", completed_at);
  Json sigs = Json::array();
  for (const auto& sg : signals) {
    sigs.push_back({{"id", sg.id},
                    {"name", sg.name},
                    {"payload", sg.payload},
                    {"dedup_key", sg.dedup_key ? Json(*sg.dedup_key) : Json(nullptr)},
                    {"consumed", sg.consumed},
                    {"inserted_at", sg.inserted_at}});
  }
  j["signals"] = std::move(sigs);
  return j;
}

Client::Client(std::unique_ptr<detail::ClientImpl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

std::unique_ptr<Client> Client::Connect(const ClientOptions& options) {
  if (options.database.empty()) {
    throw ConfigError("database must be set (a libpq connection string)");
  }
  detail::ValidateSchemaName(options.schema);
  if (options.pool_size < 1) throw ConfigError("pool_size must be >= 1");
  if (options.max_payload_bytes == 0) throw ConfigError("max_payload_bytes must be > 0");
  if (options.wait_poll_interval <= Millis{0}) throw ConfigError("wait_poll_interval must be > 0");
  detail::ValidateSessionLimits(options);
  return std::unique_ptr<Client>(new Client(std::make_unique<detail::ClientImpl>(options)));
}

const std::string& Client::schema() const { return impl_->options_.schema; }

void Client::Migrate() {
  auto c = impl_->Acquire();
  detail::Migrate(*c, impl_->options_.schema);
}

void Client::GrantRole(const std::string& role, DatabaseRole as) {
  auto c = impl_->Acquire();
  detail::Migrate(*c, impl_->options_.schema);
  detail::GrantRole(*c, impl_->options_.schema, role, as);
}

int Client::SchemaVersion() {
  auto c = impl_->Acquire();
  return detail::CurrentSchemaVersion(*c, impl_->options_.schema);
}

Result<std::int64_t> Client::Insert(const AnyMachine& machine, InsertOptions options) {
  if (!machine) throw InvalidArgument("insert: empty machine");
  auto row = impl_->Resolve(machine.name(), machine.version(), &machine.def(), options);
  auto c = impl_->Acquire();
  std::vector<std::string> ready;
  auto id = impl_->store_.InsertOne(*c, row, /*ad_hoc=*/false, &ready);
  impl_->Announce(*c, ready);
  return impl_->Inserted(id, row);
}

Result<std::int64_t> Client::Insert(std::string_view fsm, InsertOptions options) {
  auto row = impl_->ResolveByName(fsm, std::nullopt, options);
  auto c = impl_->Acquire();
  std::vector<std::string> ready;
  auto id = impl_->store_.InsertOne(*c, row, /*ad_hoc=*/false, &ready);
  impl_->Announce(*c, ready);
  return impl_->Inserted(id, row);
}

std::vector<std::int64_t> Client::InsertAll(const std::vector<InsertRequest>& requests) {
  std::vector<detail::NewInstance> rows;
  rows.reserve(requests.size());
  for (const auto& r : requests) rows.push_back(impl_->ResolveByName(r.fsm, r.version, r.options));
  if (rows.empty()) return {};
  auto c = impl_->Acquire();
  std::vector<std::string> ready;
  std::vector<std::int64_t> ids;
  for (const auto& id : impl_->store_.InsertBatch(*c, rows, /*ad_hoc=*/false, &ready)) {
    if (id) ids.push_back(*id);
  }
  impl_->Announce(*c, ready);
  return ids;
}

Result<std::int64_t> Client::InsertWith(pg_conn* conn, const AnyMachine& machine,
                                        InsertOptions options) {
  if (!conn) throw InvalidArgument("insert: null connection");
  if (!machine) throw InvalidArgument("insert: empty machine");
  auto row = impl_->Resolve(machine.name(), machine.version(), &machine.def(), options);
  auto borrowed = detail::pg::Connection::Borrow(conn);
  return impl_->Inserted(impl_->store_.InsertOne(*borrowed, row, /*ad_hoc=*/true), row);
}

Result<std::int64_t> Client::InsertWith(pg_conn* conn, std::string_view fsm,
                                        InsertOptions options) {
  if (!conn) throw InvalidArgument("insert: null connection");
  auto row = impl_->ResolveByName(fsm, std::nullopt, options);
  auto borrowed = detail::pg::Connection::Borrow(conn);
  return impl_->Inserted(impl_->store_.InsertOne(*borrowed, row, /*ad_hoc=*/true), row);
}

Result<std::int64_t> Client::Signal(std::int64_t id, const std::string& name, Json payload,
                                    const SignalOptions& options) {
  return impl_->Signal(id, std::nullopt, name, payload, options);
}

Result<std::int64_t> Client::SignalByKey(const std::string& unique_key, const std::string& name,
                                         Json payload, const SignalOptions& options) {
  return impl_->Signal(std::nullopt, unique_key, name, payload, options);
}

std::optional<InstanceInfo> Client::Get(std::int64_t id) {
  auto c = impl_->Acquire();
  return impl_->store_.Get(*c, id);
}

Result<InstanceInfo> Client::Wait(std::int64_t id, Millis timeout) {
  const auto deadline = detail::ClientImpl::DeadlineOf(timeout);
  return impl_->Wait(id, timeout, deadline, /*marked=*/false);
}

Result<InstanceInfo> Client::InsertAndWait(const AnyMachine& machine, InsertOptions options,
                                           Millis timeout,
                                           const std::function<void(std::int64_t)>& inserted) {
  if (!machine) throw InvalidArgument("insert: empty machine");
  const auto deadline = detail::ClientImpl::DeadlineOf(timeout);
  auto row = impl_->Resolve(machine.name(), machine.version(), &machine.def(), options);
  impl_->waiters_.Listen(deadline);  // before the mark commits (with the insert)
  Result<std::int64_t> id = impl_->InsertAwaited(row);
  if (!id) return id.error();
  if (inserted) inserted(*id);
  return impl_->Wait(*id, timeout, deadline, /*marked=*/true);
}

Result<InstanceInfo> Client::InsertAndWait(std::string_view fsm, InsertOptions options,
                                           Millis timeout,
                                           const std::function<void(std::int64_t)>& inserted) {
  const auto deadline = detail::ClientImpl::DeadlineOf(timeout);
  auto row = impl_->ResolveByName(fsm, std::nullopt, options);
  impl_->waiters_.Listen(deadline);  // before the mark commits (with the insert)
  Result<std::int64_t> id = impl_->InsertAwaited(row);
  if (!id) return id.error();
  if (inserted) inserted(*id);
  return impl_->Wait(*id, timeout, deadline, /*marked=*/true);
}

std::vector<InstanceInfo> Client::List(const ListFilter& filter) {
  if (filter.limit < 0) throw InvalidArgument("list: limit must be >= 0");
  auto c = impl_->Acquire();
  return impl_->store_.List(*c, filter);
}

StatusCounts Client::Counts() {
  auto c = impl_->Acquire();
  return impl_->store_.Counts(*c);
}

namespace {

void RequireQueueName(const std::string& queue) {
  if (auto problem = detail::NameProblem("queue", queue, detail::kMaxNameBytes); !problem.empty()) {
    throw InvalidArgument(problem);
  }
}

InstanceFilter OneId(std::int64_t id) {
  InstanceFilter f;
  f.ids = {id};
  return f;
}

}  // namespace

void Client::PauseQueue(const std::string& queue) {
  RequireQueueName(queue);
  impl_->Retrying([&](detail::pg::Connection& c) { impl_->ops_.SetPaused(c, queue, true); });
}

void Client::ResumeQueue(const std::string& queue) {
  RequireQueueName(queue);
  impl_->Retrying([&](detail::pg::Connection& c) { impl_->ops_.SetPaused(c, queue, false); });
}

void Client::ScaleQueue(const std::string& queue, int concurrency,
                        const std::optional<std::string>& node) {
  RequireQueueName(queue);
  if (concurrency < 1 || concurrency > kMaxConcurrency) {
    throw InvalidArgument(
        fmt::format("scale: concurrency must be in 1..{} (got {})", kMaxConcurrency, concurrency));
  }
  if (node) {
    if (auto problem = detail::NameProblem("node", *node, detail::kMaxNameBytes);
        !problem.empty()) {
      throw InvalidArgument(problem);
    }
  }
  impl_->Retrying(
      [&](detail::pg::Connection& c) { impl_->ops_.RequestScale(c, queue, concurrency, node); });
}

std::optional<int> Client::SetQueueGlobalLimit(const std::string& queue, std::optional<int> limit) {
  RequireQueueName(queue);
  if (limit && *limit < 1) {
    throw InvalidArgument(fmt::format(
        "global limit of queue '{}' must be >= 1 (got {}); clear it with no limit", queue, *limit));
  }
  return impl_->Retrying(
      [&](detail::pg::Connection& c) { return impl_->ops_.SetGlobalLimit(c, queue, limit); });
}

std::vector<QueueInfo> Client::Queues() {
  return impl_->Retrying([&](detail::pg::Connection& c) { return impl_->ops_.Queues(c); });
}

std::vector<NodeInfo> Client::Nodes() {
  return impl_->Retrying([&](detail::pg::Connection& c) { return impl_->ops_.Nodes(c); });
}

CancelReport Client::Cancel(std::int64_t id, const CancelOptions& options) {
  return CancelWhere(OneId(id), options);
}

CancelReport Client::CancelWhere(const InstanceFilter& filter, const CancelOptions& options) {
  if (options.reason.empty()) throw InvalidArgument("cancel: reason must not be empty");
  return impl_->Retrying(
      [&](detail::pg::Connection& c) { return impl_->ops_.Cancel(c, filter, options); });
}

bool Client::Retry(std::int64_t id) { return !RetryWhere(OneId(id)).empty(); }

std::vector<std::int64_t> Client::RetryWhere(const InstanceFilter& filter) {
  try {
    return impl_->Retrying(
        [&](detail::pg::Connection& c) { return impl_->ops_.Retry(c, filter, std::nullopt); });
  } catch (const DatabaseError& e) {
    if (e.sqlstate() != "23505") throw;
  }
  // Two of them wanted the same unique key back: one at a time, the first takes it and the
  // others are skipped.
  std::vector<std::int64_t> retried;
  for (;;) {
    auto ids =
        impl_->Retrying([&](detail::pg::Connection& c) { return impl_->ops_.Retry(c, filter, 1); });
    if (ids.empty()) return retried;
    retried.insert(retried.end(), ids.begin(), ids.end());
  }
}

std::int64_t Client::DeleteWhere(const InstanceFilter& filter) {
  constexpr int kBatch = 10'000;
  std::int64_t total = 0;
  for (;;) {
    const auto n = impl_->Retrying(
        [&](detail::pg::Connection& c) { return impl_->ops_.Delete(c, filter, kBatch); });
    total += n;
    if (n < kBatch) return total;
  }
}

std::vector<HistoryEntry> Client::History(std::int64_t id, int limit) {
  if (limit < 1) throw InvalidArgument("history: limit must be >= 1");
  return impl_->Retrying(
      [&](detail::pg::Connection& c) { return impl_->ops_.History(c, id, limit); });
}

}  // namespace gen_durable

namespace gen_durable {

namespace {

std::string IsoOfMs(std::int64_t ms) {
  return detail::IsoUtc(std::chrono::system_clock::time_point{std::chrono::milliseconds{ms}});
}

}  // namespace

std::vector<ScheduleInfo> Client::Schedules() {
  const auto records =
      impl_->Retrying([&](detail::pg::Connection& c) { return impl_->schedules_.List(c); });
  std::vector<ScheduleInfo> out;
  for (const auto& r : records) {
    const auto& d = r.definition;
    ScheduleInfo info;
    info.name = d.name;
    info.cron = d.cron;
    info.time_zone = d.zone;
    info.fsm = d.fsm;
    info.queue = d.queue;
    info.priority = d.priority;
    info.state = Json::parse(d.state);
    info.missed = d.missed;
    info.catch_up_max = d.catch_up_max;
    if (r.last_fired_ms) info.last_fired = IsoOfMs(*r.last_fired_ms);
    if (r.next_fire_ms) info.next_fire = IsoOfMs(*r.next_fire_ms);
    info.updated_at = IsoOfMs(r.updated_ms);
    out.push_back(std::move(info));
  }
  return out;
}

Result<std::int64_t> Client::TriggerSchedule(const std::string& name) {
  const std::string key =
      "schedule:" + name + ":manual:" + detail::IsoUtc(std::chrono::system_clock::now());
  // (not retried: a lost connection during the insert must not insert twice)
  auto c = impl_->Acquire();
  auto id = impl_->schedules_.Trigger(*c, name, key);
  if (!id) {
    return DomainError{ErrorCode::kNotFound,
                       fmt::format("schedule '{}' is not recorded (no engine carrying it has "
                                   "started on this database)",
                                   name)};
  }
  return *id;
}

}  // namespace gen_durable
