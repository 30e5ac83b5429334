// The engine: wiring of the runtime components, named instances, start and graceful stop.
#include "gen_durable/engine.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <map>
#include <mutex>

#include "gen_durable/runtime/flusher.hpp"
#include "gen_durable/runtime/maintenance.hpp"
#include "gen_durable/runtime/node.hpp"
#include "gen_durable/runtime/queue_runner.hpp"
#include "gen_durable/schema/migrations.hpp"
#include "gen_durable/validate.hpp"

namespace gen_durable {

namespace detail {

namespace {
Store MakeStore(const EngineOptions& o) {
  Store s(o.schema);
  s.SetPartitionLimits(o.partition_limits);
  return s;
}
}  // namespace

EngineCore::EngineCore(EngineOptions opts, std::string node)
    : options(std::move(opts)), node_id(std::move(node)), store(MakeStore(options)) {
  auto add = [&](const AnyMachine& m) {
    machines[{m.name(), m.version()}] = m.shared();
  };
  if (options.all_registered_machines) {
    for (const auto& m : AllRegistered()) add(m);
  }
  for (const auto& m : options.machines) {
    if (!m) throw ConfigError("machines: an entry is empty");
    add(m);  // explicit entries win over registered ones of the same name + version
  }
  for (const auto& [key, _] : machines) {
    machine_keys.push_back(key.first + "@" + std::to_string(key.second));
  }
}

std::unique_ptr<pg::Connection> EngineCore::Connect(const std::string& role) const {
  auto c = pg::Connection::Open(options.database, "gen_durable:" + options.name + ":" + role);
  c->Exec("SET TimeZone = 'UTC'");
  return c;
}

std::shared_ptr<const MachineDef> EngineCore::FindMachine(const std::string& name,
                                                           int version) const {
  auto it = machines.find({name, version});
  return it == machines.end() ? nullptr : it->second;
}

std::shared_ptr<const MachineDef> EngineCore::FindMachineVersion(
    const std::string& name, std::optional<int> version) const {
  if (version) return FindMachine(name, *version);
  std::shared_ptr<const MachineDef> best;
  for (const auto& [key, def] : machines) {
    if (key.first == name && (!best || def->version > best->version)) best = def;
  }
  return best;
}

namespace {

std::mutex g_names_mu;
std::map<std::string, Engine*>& Names() {
  static auto* names = new std::map<std::string, Engine*>();
  return *names;
}

}  // namespace

class EngineImpl {
 public:
  explicit EngineImpl(EngineOptions options) {
    ValidateEngineOptions(options);
    const auto self = SelfIdentity();
    core_ = std::make_shared<EngineCore>(std::move(options), NewNodeId(self));
    ClientOptions co;
    co.database = core_->options.database;
    co.schema = core_->options.schema;
    co.max_payload_bytes = core_->options.max_payload_bytes;
    client_ = Client::Connect(co);
  }

  ~EngineImpl() { Stop(); }

  void Start(Engine* owner) {
    {
      std::lock_guard lock(g_names_mu);
      if (running_) return;
      if (Names().count(core_->options.name)) throw AlreadyStarted(core_->options.name);
      Names()[core_->options.name] = owner;
    }
    try {
      auto conn = core_->Connect("control");
      Migrate(*conn, core_->options.schema);
      const auto self = SelfIdentity();
      ReclaimDeadPredecessors(*core_, *conn);
      Json queues = Json::object();
      for (const auto& [q, cfg] : core_->options.queues) queues[q] = cfg.concurrency;
      core_->store.NodeUpsert(*conn, core_->node_id, core_->options.name, self.host, self.pid,
                              self.proc_start, queues.dump());
    } catch (...) {
      std::lock_guard lock(g_names_mu);
      Names().erase(core_->options.name);
      throw;
    }
    // spdlog creates its registry on first use. Doing that here, before any engine thread
    // exists, orders it before every thread's logging (the library's own guard of that static
    // is invisible to ThreadSanitizer, which otherwise reports a race between two threads'
    // first log lines).
    spdlog::default_logger_raw();
    flusher_ = std::make_shared<Flusher>(core_);
    flusher_->Start();
    for (const auto& [q, cfg] : core_->options.queues) {
      auto runner = std::make_shared<QueueRunner>(core_, flusher_, q, cfg.concurrency);
      runners_[q] = runner;
      runner->Start();
    }
    heartbeat_ = std::make_unique<Heartbeat>(core_, [this] {
      std::vector<std::int64_t> ids;
      for (auto& [_, r] : runners_) {
        auto held = r->HeldIds();
        ids.insert(ids.end(), held.begin(), held.end());
      }
      return ids;
    });
    heartbeat_->Start();
    maintenance_ =
        std::make_unique<Maintenance>(core_, [this](const std::string& q) { PokeQueue(q); });
    maintenance_->Start();
    listener_ = std::make_unique<Listener>(core_, [this](const std::string& q) { PokeQueue(q); });
    listener_->Start();
    std::lock_guard lock(g_names_mu);
    running_ = true;
  }

  void Stop() {
    {
      std::lock_guard lock(g_names_mu);
      if (!running_) return;
      running_ = false;
    }
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + core_->options.drain_timeout;
    listener_->Stop();
    std::map<std::string, std::int64_t> released;
    for (auto& [q, r] : runners_) released[q] = r->BeginDrain();
    int abandoned = 0;
    for (auto& [q, r] : runners_) {
      const int left = r->WaitIdle(deadline);
      abandoned += left;
      // (a named reference: clang 14 cannot capture a structured binding)
      const std::string& queue = q;
      core_->Emit("scheduler.drain", [&](TelemetryEvent& e) {
        e.measurements["released"] = static_cast<double>(released[queue]);
        e.measurements["in_flight"] = left;
        e.metadata["queue"] = queue;
      });
    }
    // Outcomes already handed over still commit (retrying a lost connection until the
    // deadline); later ones are refused and their rows left to the reaper.
    flusher_->Stop(deadline);
    for (auto& [_, r] : runners_) r->Finish();
    heartbeat_->Stop();
    maintenance_->Stop();
    if (abandoned == 0) {
      try {
        auto conn = core_->Connect("control");
        core_->store.NodeDelete(*conn, core_->node_id);
      } catch (const Error& e) {
        spdlog::warn("could not remove node row: {}", e.what());
      }
    } else {
      spdlog::warn("engine {}: {} steps still running after drain_timeout; their rows go back "
                   "to the queue when their leases expire",
                   core_->options.name, abandoned);
    }
    runners_.clear();
    // Close every connection of the background threads (an abandoned step keeps only the
    // flusher object, whose connection is closed by its Stop).
    heartbeat_.reset();
    maintenance_.reset();
    listener_.reset();
    flusher_.reset();
    std::lock_guard lock(g_names_mu);
    Names().erase(core_->options.name);
  }

  // New work may be ready on `queue` (a NOTIFY, a parked row woken at its deadline).
  void PokeQueue(const std::string& queue) {
    auto it = runners_.find(queue);
    if (it != runners_.end()) it->second->Poke();
  }

  bool running() const {
    std::lock_guard lock(g_names_mu);
    return running_;
  }

  std::shared_ptr<EngineCore> core_;
  std::unique_ptr<Client> client_;
  std::shared_ptr<Flusher> flusher_;
  std::map<std::string, std::shared_ptr<QueueRunner>> runners_;
  std::unique_ptr<Heartbeat> heartbeat_;
  std::unique_ptr<Maintenance> maintenance_;
  std::unique_ptr<Listener> listener_;
  bool running_ = false;  // GUARDED_BY(g_names_mu)
};

}  // namespace detail

Engine::Engine(std::unique_ptr<detail::EngineImpl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() { Stop(); }

std::unique_ptr<Engine> Engine::Create(EngineOptions options) {
  return std::unique_ptr<Engine>(
      new Engine(std::make_unique<detail::EngineImpl>(std::move(options))));
}

std::unique_ptr<Engine> Engine::Start(EngineOptions options) {
  auto e = Create(std::move(options));
  e->Start();
  return e;
}

void Engine::Start() { impl_->Start(this); }
void Engine::Stop() { impl_->Stop(); }
bool Engine::running() const { return impl_->running(); }

Engine* Engine::Find(const std::string& name) {
  std::lock_guard lock(detail::g_names_mu);
  auto it = detail::Names().find(name);
  return it == detail::Names().end() ? nullptr : it->second;
}

const std::string& Engine::name() const { return impl_->core_->options.name; }
const std::string& Engine::node_id() const { return impl_->core_->node_id; }
const EngineOptions& Engine::options() const { return impl_->core_->options; }
Client& Engine::client() { return *impl_->client_; }
Telemetry& Engine::telemetry() { return impl_->core_->telemetry; }

EngineStats Engine::stats() const {
  const auto& c = impl_->core_->counters;
  EngineStats s;
  s.claimed = c.claimed.load();
  s.steps = c.steps.load();
  s.committed = c.committed.load();
  s.stale = c.stale.load();
  s.reaped = c.reaped.load();
  s.gc_deleted = c.gc_deleted.load();
  s.flushes = c.flushes.load();
  s.released = c.released.load();
  return s;
}

}  // namespace gen_durable
