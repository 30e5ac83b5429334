// The engine: wiring of the runtime components, named instances, start and graceful stop.
#include "gen_durable/engine.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <set>
#include <variant>
#include <mutex>
#include <thread>

#include "gen_durable/runtime/autoscaler.hpp"
#include "gen_durable/model/control.hpp"
#include "gen_durable/runtime/flusher.hpp"
#include "gen_durable/runtime/maintenance.hpp"
#include "gen_durable/runtime/node.hpp"
#include "gen_durable/runtime/queue_runner.hpp"
#include "gen_durable/schema/migrations.hpp"
#include "gen_durable/store/session.hpp"
#include "gen_durable/model/validate.hpp"

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
    : options(std::move(opts)),
      node_id(std::move(node)),
      store(MakeStore(options)),
      ops(options.schema) {
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
  return OpenSession(options.database, "gen_durable:" + options.name + ":" + role,
                     EngineSessionLimits(options));
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
    core_ = std::make_shared<EngineCore>(std::move(options), NewNodeId(self_));
    ClientOptions co;
    co.database = core_->options.database;
    co.schema = core_->options.schema;
    co.max_payload_bytes = core_->options.max_payload_bytes;
    // The engine's own inserts (children aside: they go through the flusher) share its bounds.
    const SessionLimits limits = EngineSessionLimits(core_->options);
    co.statement_timeout = limits.statement_timeout;
    co.network_timeout = limits.network_timeout;
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
      ReclaimDeadPredecessors(*core_, *conn);
      {
        std::lock_guard lock(mu_);
        configs_ = core_->options.queues;
        declared_ = configs_;
        handled_seq_.clear();
      }
      ApplyStandingScales(*conn);
      Json queues = Json::object();
      for (const auto& [q, cfg] : configs_) queues[q] = cfg.concurrency;
      core_->store.NodeUpsert(*conn, core_->node_id, core_->options.name, self_.host, self_.pid,
                              self_.proc_start, self_.pid_ns, core_->options.heartbeat_interval,
                              core_->options.lease_ttl, queues.dump());
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
    {
      std::lock_guard lock(mu_);
      for (const auto& [q, cfg] : configs_) StartRunnerLocked(q, cfg.concurrency);
    }
    heartbeat_ = std::make_unique<Heartbeat>(
        core_,
        [this] {
          std::vector<std::int64_t> ids;
          for (auto& r : AllRunners()) {
            auto held = r->HeldIds();
            ids.insert(ids.end(), held.begin(), held.end());
          }
          return ids;
        },
        [this](std::int64_t id) { CancelLocal(id); });
    heartbeat_->Start();
    maintenance_ =
        std::make_unique<Maintenance>(core_, [this](const std::string& q) { PokeQueue(q); });
    maintenance_->Start();
    // (before the listener, which pokes it once it listens)
    control_wake_ = std::make_unique<Wakeup>();
    control_ = std::thread([this] { ControlLoop(); });
    listener_ = std::make_unique<Listener>(
        core_, [this](const std::string& q) { PokeQueue(q); }, [this] { control_wake_->Poke(); });
    listener_->Start();
    autoscale_wake_ = std::make_unique<Wakeup>();
    autoscaler_ = std::thread([this] { AutoscaleLoop(); });
    std::lock_guard lock(g_names_mu);
    running_ = true;
  }

  // --- runtime queue control ---

  void StartRunnerLocked(const std::string& queue, int concurrency) {
    auto runner = std::make_shared<QueueRunner>(core_, flusher_, queue, concurrency);
    runners_[queue] = runner;
    runner->Start();
  }

  std::vector<std::shared_ptr<QueueRunner>> AllRunners() const {
    std::lock_guard lock(mu_);
    std::vector<std::shared_ptr<QueueRunner>> out;
    for (const auto& [_, r] : runners_) out.push_back(r);
    for (const auto& r : retiring_) out.push_back(r);
    return out;
  }

  std::shared_ptr<QueueRunner> Runner(const std::string& queue) const {
    std::lock_guard lock(mu_);
    auto it = runners_.find(queue);
    return it == runners_.end() ? nullptr : it->second;
  }

  void RequireRunning(const char* what) const {
    if (!running()) throw InvalidArgument(fmt::format("{}: the engine is not running", what));
  }

  // Sets the slots of `queue` on this node; `fixed` ends its autoscaling (a manual scale).
  void ScaleLocal(const std::string& queue, int concurrency, const char* reason, bool fixed) {
    if (concurrency < 0 || concurrency > kMaxConcurrency) {
      throw InvalidArgument(fmt::format("scale: concurrency must be in 0..{} (got {})",
                                        kMaxConcurrency, concurrency));
    }
    std::shared_ptr<QueueRunner> runner;
    {
      std::lock_guard lock(mu_);
      auto it = runners_.find(queue);
      if (it == runners_.end()) {
        throw InvalidArgument(fmt::format("scale: this node does not run queue '{}'", queue));
      }
      runner = it->second;
      if (fixed) configs_[queue] = QueueConfig{concurrency};
    }
    const int before = runner->Scale(concurrency);
    if (before != concurrency) {
      core_->Emit("queue.scaled", [&](TelemetryEvent& e) {
        e.measurements["count"] = 1;  // what gen_durable_queue_scaled_total adds up
        e.measurements["from"] = before;
        e.measurements["to"] = concurrency;
        e.metadata["queue"] = queue;
        e.metadata["reason"] = reason;
      });
      spdlog::info("queue {}: concurrency {} -> {} ({})", queue, before, concurrency, reason);
    }
    PublishQueues();
  }

  // Writes this node's queues and their concurrency to its row (what `nodes` shows).
  void PublishQueues() {
    Json queues = Json::object();
    for (const auto& [q, state] : LocalQueues()) {
      if (!state.draining) queues[q] = state.concurrency;
    }
    try {
      auto conn = core_->Connect("control");
      core_->store.NodeUpsert(*conn, core_->node_id, core_->options.name, self_.host, self_.pid,
                              self_.proc_start, self_.pid_ns, core_->options.heartbeat_interval,
                              core_->options.lease_ttl, queues.dump());
    } catch (const Error& e) {
      spdlog::warn("could not publish this node's queues: {}", e.what());
    }
  }

  std::map<std::string, LocalQueueState> LocalQueues() const {
    std::lock_guard lock(mu_);
    std::map<std::string, LocalQueueState> out;
    for (const auto& r : retiring_) out[r->queue()] = r->State();
    for (const auto& [q, r] : runners_) {
      auto state = r->State();
      if (auto it = configs_.find(q); it != configs_.end() && it->second.autoscaled()) {
        state.min = it->second.concurrency;
        state.max = it->second.max;
      }
      out[q] = state;
    }
    return out;
  }

  void Reconfigure(std::map<std::string, QueueConfig> queues) {
    RequireRunning("reconfigure");
    EngineOptions check = core_->options;
    check.queues = queues;
    ValidateEngineOptions(check);
    std::vector<std::pair<std::string, int>> rescale;
    {
      std::lock_guard lock(mu_);
      for (auto it = runners_.begin(); it != runners_.end();) {
        if (queues.count(it->first)) {
          ++it;
          continue;
        }
        // Not named any more: claim nothing, hand back the buffer, let running steps finish.
        const auto released = it->second->BeginDrain();
        core_->counters.released.fetch_add(released);
        retiring_.push_back(it->second);
        it = runners_.erase(it);
      }
      for (const auto& [q, cfg] : queues) {
        auto it = runners_.find(q);
        if (it == runners_.end()) {
          StartRunnerLocked(q, cfg.concurrency);
          continue;
        }
        const int now = it->second->State().concurrency;
        const int want = cfg.autoscaled() ? std::clamp(now, cfg.concurrency, cfg.max)
                                          : cfg.concurrency;
        if (want != now) rescale.emplace_back(q, want);
      }
      configs_ = queues;
      // A newer configuration: a request applied under the old one is not applied again.
      declared_ = queues;
    }
    for (const auto& [q, n] : rescale) ScaleLocal(q, n, "reconfigure", false);
    PublishQueues();
  }

  void SafeStop() {
    if (!running()) return;
    for (auto& r : AllRunners()) core_->counters.released.fetch_add(r->BeginDrain());
    for (auto& r : AllRunners()) r->WaitIdle(std::chrono::steady_clock::time_point::max());
    Stop();
  }

  // A running instance was cancelled: tell the queue that holds it.
  void CancelLocal(std::int64_t id) {
    for (auto& r : AllRunners()) {
      if (r->Cancel(id)) return;
    }
  }

  // --- operator requests (docs/security.md, "Control plane") ---
  //
  // Read from the tables only a privileged role writes, never from a notification's payload:
  // when the listener is woken on the control channel or (re)connects, and once per heartbeat
  // interval in any case, so a missed or forged notification changes nothing.

  struct DueScale {
    ScaleRequest request;
    std::string declared;  // this node's declared configuration of the queue
  };

  // The scale requests of gd_control to apply now; each one judged is marked handled.
  std::vector<DueScale> DueScales(pg::Connection& c) {
    std::vector<ScaleRequest> valid;
    for (const auto& row : core_->ops.ControlScales(c, core_->node_id, core_->options.name)) {
      auto decoded = DecodeScaleRequest(row, core_->node_id);
      if (const auto* why = std::get_if<std::string>(&decoded)) {
        const std::string key = row.queue.value_or("") + '\n' + row.seq.value_or("");
        if (refused_.insert(key).second) {
          spdlog::warn("control: scale request for queue '{}' (seq {}) refused: {}",
                       row.queue.value_or(""), row.seq.value_or(""), *why);
        }
        continue;
      }
      valid.push_back(std::get<ScaleRequest>(std::move(decoded)));
    }
    std::vector<DueScale> due;
    std::lock_guard lock(mu_);
    for (auto& [q, request] : LatestPerQueue(valid)) {
      auto cfg = declared_.find(q);
      if (cfg == declared_.end()) continue;  // a queue this node does not run
      auto& handled = handled_seq_[q];
      std::string declared = DeclaredConfig(cfg->second);
      const auto verdict = JudgeScale(request, handled, declared);
      if (verdict == ScaleVerdict::kAlreadyApplied) continue;
      handled = request.seq;
      if (verdict == ScaleVerdict::kConfigurationNewer) {
        spdlog::info("queue {}: scale request to {} (seq {}) not applied: this node's "
                     "configuration ({}) is newer than that request",
                     q, request.concurrency, request.seq, declared);
        continue;
      }
      due.push_back({std::move(request), std::move(declared)});
    }
    return due;
  }

  // At start, before any runner: a restarted node runs with what was asked meanwhile at once.
  void ApplyStandingScales(pg::Connection& c) {
    for (const auto& [request, declared] : DueScales(c)) {
      {
        std::lock_guard lock(mu_);
        configs_[request.queue] = QueueConfig{request.concurrency};
      }
      spdlog::info("queue {}: concurrency {} ({} declared; standing request)", request.queue,
                   request.concurrency, declared);
      core_->ops.ControlSeen(c, request, core_->options.name, declared);
    }
  }

  // Applies what the tables ask now: paused queues, scale requests, cancels of held rows.
  void SyncControl(pg::Connection& c) {
    const auto paused = core_->ops.PausedQueues(c);
    for (const auto& r : AllRunners()) {
      const bool want = paused.count(r->queue()) > 0;
      if (r->paused() != want) r->SetPaused(want);
    }
    for (const auto& [request, declared] : DueScales(c)) {
      if (!Runner(request.queue)) continue;
      ScaleLocal(request.queue, request.concurrency, "requested", true);
      core_->ops.ControlSeen(c, request, core_->options.name, declared);
    }
    std::vector<std::int64_t> held;
    for (const auto& r : AllRunners()) {
      auto ids = r->HeldIds();
      held.insert(held.end(), ids.begin(), ids.end());
    }
    if (held.empty()) return;
    for (auto id : core_->ops.CancelRequested(c, core_->node_id, held)) CancelLocal(id);
  }

  void ControlLoop() {
    std::unique_ptr<pg::Connection> conn;
    while (control_wake_->WaitFor(core_->options.heartbeat_interval)) {
      try {
        if (!conn || conn->broken()) conn = core_->Connect("control-reader");
        SyncControl(*conn);
      } catch (const std::exception& e) {
        spdlog::warn("control: reading operator requests failed: {}", e.what());
        if (conn && conn->broken()) conn.reset();
      }
    }
  }

  // Every autoscale_interval: each autoscaled queue's concurrency from its backlog.
  void AutoscaleLoop() {
    using Clock = std::chrono::steady_clock;
    std::unique_ptr<pg::Connection> conn;
    std::map<std::string, Clock::time_point> changed;  // last change per queue
    while (autoscale_wake_->WaitFor(core_->options.autoscale_interval)) {
      std::vector<std::pair<std::string, QueueConfig>> scaled;
      {
        std::lock_guard lock(mu_);
        for (const auto& [q, cfg] : configs_) {
          if (cfg.autoscaled() && runners_.count(q)) scaled.emplace_back(q, cfg);
        }
      }
      for (const auto& [q, cfg] : scaled) {
        auto runner = Runner(q);
        if (!runner) continue;
        try {
          if (!conn || conn->broken()) conn = core_->Connect("autoscaler");
          const auto state = runner->State();
          AutoscaleInput in;
          in.current = state.concurrency;
          in.min = cfg.concurrency;
          in.max = cfg.max;
          in.in_flight = state.in_flight + state.buffered;
          in.backlog = core_->ops.ReadyCount(*conn, q, cfg.max);
          const auto last = changed.find(q);
          in.cooled = last == changed.end() ||
                      Clock::now() - last->second >= core_->options.autoscale_cooldown;
          const int target = AutoscaleTarget(in);
          if (target == in.current) continue;
          {
            // A manual scale or a reconfigure since the snapshot wins.
            std::lock_guard lock(mu_);
            auto it = configs_.find(q);
            if (it == configs_.end() || !it->second.autoscaled()) continue;
          }
          core_->Emit("queue.autoscale", [&](TelemetryEvent& e) {
            e.measurements["backlog"] = static_cast<double>(in.backlog);
            e.measurements["in_flight"] = in.in_flight;
            e.measurements["from"] = in.current;
            e.measurements["to"] = target;
            e.metadata["queue"] = q;
          });
          ScaleLocal(q, target, target > in.current ? "autoscale up" : "autoscale down", false);
          changed[q] = Clock::now();
        } catch (const std::exception& e) {
          spdlog::warn("autoscaler: queue {}: {}", q, e.what());
          if (conn && conn->broken()) conn.reset();
        }
      }
    }
  }

  void Stop() {
    {
      std::lock_guard lock(g_names_mu);
      if (!running_) return;
      running_ = false;
    }
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + core_->options.drain_timeout;
    if (autoscale_wake_) autoscale_wake_->Stop();
    if (autoscaler_.joinable()) autoscaler_.join();
    if (control_wake_) control_wake_->Stop();
    if (control_.joinable()) control_.join();
    listener_->Stop();
    const auto runners = AllRunners();
    std::vector<std::int64_t> released;
    for (auto& r : runners) released.push_back(r->BeginDrain());
    int abandoned = 0;
    for (std::size_t i = 0; i < runners.size(); ++i) {
      const int left = runners[i]->WaitIdle(deadline);
      abandoned += left;
      core_->Emit("scheduler.drain", [&](TelemetryEvent& e) {
        e.measurements["released"] = static_cast<double>(released[i]);
        e.measurements["in_flight"] = left;
        e.metadata["queue"] = runners[i]->queue();
      });
    }
    // Outcomes already handed over still commit (retrying a lost connection until the
    // deadline); later ones are refused and their rows left to the reaper.
    flusher_->Stop(deadline);
    for (auto& r : runners) r->Finish();
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
    {
      std::lock_guard lock(mu_);
      runners_.clear();
      retiring_.clear();
    }
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
    if (auto r = Runner(queue)) r->Poke();
  }

  bool running() const {
    std::lock_guard lock(g_names_mu);
    return running_;
  }

  std::shared_ptr<EngineCore> core_;
  const ProcessIdentity self_ = SelfIdentity();
  std::unique_ptr<Client> client_;
  std::shared_ptr<Flusher> flusher_;
  mutable std::mutex mu_;
  std::map<std::string, QueueConfig> configs_;                   // GUARDED_BY(mu_)
  // The configuration given (options, or the last Reconfigure), as opposed to configs_, which
  // scales change.  GUARDED_BY(mu_)
  std::map<std::string, QueueConfig> declared_;
  // Per queue, the seq of the last scale request judged since start.  GUARDED_BY(mu_)
  std::map<std::string, std::int64_t> handled_seq_;
  std::set<std::string> refused_;  // requests already reported invalid (control thread only)
  std::unique_ptr<Wakeup> control_wake_;  // one per Start
  std::thread control_;
  std::map<std::string, std::shared_ptr<QueueRunner>> runners_;  // GUARDED_BY(mu_)
  // Queues removed by Reconfigure, finishing their running steps.  GUARDED_BY(mu_)
  std::vector<std::shared_ptr<QueueRunner>> retiring_;
  std::unique_ptr<Wakeup> autoscale_wake_;  // one per Start
  std::thread autoscaler_;
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

void Engine::Pause(const std::string& queue) {
  impl_->client_->PauseQueue(queue);
  if (auto r = impl_->Runner(queue)) r->SetPaused(true);
}

void Engine::Resume(const std::string& queue) {
  impl_->client_->ResumeQueue(queue);
  if (auto r = impl_->Runner(queue)) r->SetPaused(false);
}

void Engine::Scale(const std::string& queue, int concurrency) {
  impl_->RequireRunning("scale");
  if (concurrency < 1 || concurrency > kMaxConcurrency) {
    throw InvalidArgument(fmt::format("scale: concurrency must be in 1..{} (got {})",
                                      kMaxConcurrency, concurrency));
  }
  impl_->ScaleLocal(queue, concurrency, "manual", true);
}

void Engine::Reconfigure(std::map<std::string, QueueConfig> queues) {
  impl_->Reconfigure(std::move(queues));
}

void Engine::SafeStop() { impl_->SafeStop(); }

std::map<std::string, LocalQueueState> Engine::Queues() const { return impl_->LocalQueues(); }

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
