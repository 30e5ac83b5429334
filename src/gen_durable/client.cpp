// The client: inserts (single, batch, transactional) and reads, over a small connection pool.
#include "gen_durable/client.hpp"

#include <fmt/format.h>

#include <chrono>
#include <mutex>

#include "gen_durable/pg/connection.hpp"
#include "gen_durable/schema/migrations.hpp"
#include "gen_durable/store/store.hpp"
#include "gen_durable/validate.hpp"

namespace gen_durable {

namespace detail {

namespace {

std::string FormatTimestamp(TimePoint tp) {
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(tp.time_since_epoch()).count();
  // Postgres parses this exactly: seconds since the epoch, converted in SQL-free text form.
  const std::time_t secs = static_cast<std::time_t>(us / 1'000'000);
  long frac = static_cast<long>(us % 1'000'000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  if (frac < 0) frac += 1'000'000;
  return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

}  // namespace

class ClientImpl {
 public:
  explicit ClientImpl(ClientOptions options) : options_(std::move(options)), store_(options_.schema) {}

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
      std::lock_guard lock(mu_);
      if (!free_.empty()) {
        auto c = std::move(free_.back());
        free_.pop_back();
        return Lease(this, std::move(c));
      }
    }
    auto c = pg::Connection::Open(options_.database, "gen_durable:client");
    c->Exec("SET TimeZone = 'UTC'");
    return Lease(this, std::move(c));
  }

  void Return(std::unique_ptr<pg::Connection> c) {
    if (!c || c->broken()) return;
    std::lock_guard lock(mu_);
    if (static_cast<int>(free_.size()) < options_.pool_size) free_.push_back(std::move(c));
  }

  // Applies defaults from the machine (when known) and validates.
  NewInstance Resolve(const std::string& fsm, std::optional<int> version, const MachineDef* def,
                      const InsertOptions& o) const {
    if (fsm.empty()) throw InvalidArgument("insert: machine name must not be empty");
    NewInstance n;
    n.fsm = fsm;
    n.fsm_version = def ? def->version : version.value_or(1);
    if (n.fsm_version < 1) throw InvalidArgument("insert: fsm_version must be >= 1");
    n.queue = o.queue.value_or(def ? def->queue : std::string("default"));
    if (n.queue.empty()) throw InvalidArgument("insert: queue must not be empty");
    n.step = o.step.value_or(def ? def->initial_step : std::string("start"));
    if (n.step.empty()) throw InvalidArgument("insert: step must not be empty");
    if (def && std::find(def->steps.begin(), def->steps.end(), n.step) == def->steps.end()) {
      throw InvalidArgument(fmt::format("insert: '{}' is not a step of machine '{}' version {}",
                                        n.step, fsm, n.fsm_version));
    }
    try {
      n.state = o.state.is_null() ? std::string("{}")
                                  : o.state.dump(-1, ' ', false, Json::error_handler_t::strict);
    } catch (const Json::exception& e) {
      throw InvalidArgument(std::string("insert: state is not valid JSON text: ") + e.what());
    }
    if (n.state.size() > options_.max_payload_bytes) {
      throw InvalidArgument(fmt::format("insert: state is {} bytes, over the {} byte limit",
                                        n.state.size(), options_.max_payload_bytes));
    }
    n.priority = o.priority;
    int schedules = (o.eligible_at ? 1 : 0) + (o.schedule_at ? 1 : 0) + (o.schedule_in ? 1 : 0);
    if (schedules > 1) {
      throw InvalidArgument("insert: give at most one of eligible_at, schedule_at, schedule_in");
    }
    if (o.eligible_at) n.eligible_at = FormatTimestamp(*o.eligible_at);
    if (o.schedule_at) n.eligible_at = FormatTimestamp(*o.schedule_at);
    if (o.schedule_in) {
      if (o.schedule_in->count() < 0) throw InvalidArgument("insert: schedule_in must be >= 0");
      n.delay_ms = o.schedule_in->count();
    }
    if (o.max_attempts) {
      if (*o.max_attempts < 0) throw InvalidArgument("insert: max_attempts must be >= 0");
      n.max_attempts = *o.max_attempts;
    } else if (def && def->max_attempts > 0) {
      n.max_attempts = def->max_attempts;
    }
    return n;
  }

  NewInstance ResolveByName(std::string_view fsm, std::optional<int> version,
                            const InsertOptions& o) const {
    std::optional<AnyMachine> m = version ? FindRegistered(std::string(fsm), *version)
                                          : FindRegisteredLatest(std::string(fsm));
    return Resolve(std::string(fsm), version, m ? &m->def() : nullptr, o);
  }

  ClientOptions options_;
  Store store_;
  std::mutex mu_;
  std::vector<std::unique_ptr<pg::Connection>> free_;  // GUARDED_BY(mu_)
};

}  // namespace detail

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
            {"signals", Json::array()},
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
  return j;
}

Client::Client(std::unique_ptr<detail::ClientImpl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

std::unique_ptr<Client> Client::Connect(const ClientOptions& options) {
  if (options.database.empty()) {
    throw ConfigError("database must be set (a libpq connection string)");
  }
  detail::ValidateIdentifier("schema", options.schema);
  if (options.pool_size < 1) throw ConfigError("pool_size must be >= 1");
  if (options.max_payload_bytes == 0) throw ConfigError("max_payload_bytes must be > 0");
  return std::unique_ptr<Client>(new Client(std::make_unique<detail::ClientImpl>(options)));
}

const std::string& Client::schema() const { return impl_->options_.schema; }

void Client::Migrate() {
  auto c = impl_->Acquire();
  detail::Migrate(*c, impl_->options_.schema);
}

int Client::SchemaVersion() {
  auto c = impl_->Acquire();
  return detail::CurrentSchemaVersion(*c, impl_->options_.schema);
}

Result<std::int64_t> Client::Insert(const AnyMachine& machine, InsertOptions options) {
  if (!machine) throw InvalidArgument("insert: empty machine");
  auto row = impl_->Resolve(machine.name(), machine.version(), &machine.def(), options);
  auto c = impl_->Acquire();
  return impl_->store_.InsertOne(*c, row);
}

Result<std::int64_t> Client::Insert(std::string_view fsm, InsertOptions options) {
  auto row = impl_->ResolveByName(fsm, std::nullopt, options);
  auto c = impl_->Acquire();
  return impl_->store_.InsertOne(*c, row);
}

std::vector<std::int64_t> Client::InsertAll(const std::vector<InsertRequest>& requests) {
  std::vector<detail::NewInstance> rows;
  rows.reserve(requests.size());
  for (const auto& r : requests) rows.push_back(impl_->ResolveByName(r.fsm, r.version, r.options));
  if (rows.empty()) return {};
  auto c = impl_->Acquire();
  return impl_->store_.InsertBatch(*c, rows);
}

Result<std::int64_t> Client::InsertWith(pg_conn* conn, const AnyMachine& machine,
                                        InsertOptions options) {
  if (!conn) throw InvalidArgument("insert: null connection");
  if (!machine) throw InvalidArgument("insert: empty machine");
  auto row = impl_->Resolve(machine.name(), machine.version(), &machine.def(), options);
  auto borrowed = detail::pg::Connection::Borrow(conn);
  return impl_->store_.InsertOneAdHoc(*borrowed, row);
}

Result<std::int64_t> Client::InsertWith(pg_conn* conn, std::string_view fsm,
                                        InsertOptions options) {
  if (!conn) throw InvalidArgument("insert: null connection");
  auto row = impl_->ResolveByName(fsm, std::nullopt, options);
  auto borrowed = detail::pg::Connection::Borrow(conn);
  return impl_->store_.InsertOneAdHoc(*borrowed, row);
}

std::optional<InstanceInfo> Client::Get(std::int64_t id) {
  auto c = impl_->Acquire();
  return impl_->store_.Get(*c, id);
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

}  // namespace gen_durable
