// The engine: wiring of the runtime components, named instances, start and graceful stop.
#include "gen_durable/engine.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "gen_durable/model/resolve.hpp"
#include "gen_durable/model/validate.hpp"
#include "gen_durable/runtime/autoscaler.hpp"
#include "gen_durable/runtime/control.hpp"
#include "gen_durable/runtime/flusher.hpp"
#include "gen_durable/runtime/maintenance.hpp"
#include "gen_durable/runtime/node.hpp"
#include "gen_durable/runtime/queue_set.hpp"
#include "gen_durable/runtime/scheduler.hpp"
#include "gen_durable/schema/migrations.hpp"
#include "gen_durable/store/session.hpp"
#include "gen_durable/util/thread_annotations.hpp"

namespace gen_durable {

namespace detail {

namespace {

Mutex g_names_mu;
// The started engines by name (Engine::Find).
std::map<std::string, Engine*>& Names() GD_REQUIRES(g_names_mu) {
  static auto* names = new std::map<std::string, Engine*>();
  return *names;
}

// The schedules of `core`'s options with their instances resolved against the machines the
// engine serves. Throws ConfigError for a machine it does not serve or a bad state.
std::vector<ScheduleDefinition> ResolveSchedules(const EngineCore& core) {
  std::vector<ScheduleDefinition> out;
  for (const auto& s : core.options.schedules) {
    const auto def = core.FindMachineVersion(s.fsm, std::nullopt);
    if (!def) {
      throw ConfigError(fmt::format(
          "schedules: '{}': machine '{}' is not served by this engine (register it, or list "
          "it in machines)",
          s.name, s.fsm));
    }
    InsertOptions io;
    io.state = s.state;
    io.queue = s.queue;
    io.priority = s.priority;
    NewInstance row;
    try {
      row = ResolveInsert(s.fsm, std::nullopt, def.get(), io, core.options.max_payload_bytes);
    } catch (const InvalidArgument& e) {
      throw ConfigError(fmt::format("schedules: '{}': {}", s.name, e.what()));
    }
    ScheduleDefinition d;
    d.name = s.name;
    d.cron = s.cron;
    d.zone = s.time_zone;
    d.fsm = row.fsm;
    d.fsm_version = row.fsm_version;
    d.step = row.step;
    d.queue = row.queue;
    d.priority = row.priority;
    d.max_attempts = row.max_attempts;
    d.state = row.state;
    d.missed = s.missed == Schedule::Missed::kCatchUp ? "catch_up" : "skip";
    d.catch_up_max = s.catch_up_max;
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace

class EngineImpl {
 public:
  explicit EngineImpl(EngineOptions options) {
    ValidateEngineOptions(options);
    core_ = std::make_shared<EngineCore>(std::move(options), NewNodeId(self_));
    const auto& o = core_->options;
    node_ = std::make_unique<NodePublisher>(core_->store, core_->node_id, o.name, self_,
                                            o.heartbeat_interval, o.lease_ttl, core_->Connector());
    queues_ = std::make_unique<QueueSet>(core_, *node_);
    schedule_store_ = std::make_unique<ScheduleStore>(o.schema);
    schedules_ = ResolveSchedules(*core_);
    ClientOptions co;
    co.database = o.database;
    co.schema = o.schema;
    co.max_payload_bytes = o.max_payload_bytes;
    // The engine's own inserts (children aside: they go through the flusher) share its bounds.
    const SessionLimits limits = EngineSessionLimits(o);
    co.statement_timeout = limits.statement_timeout;
    co.network_timeout = limits.network_timeout;
    client_ = Client::Connect(co);
  }

  ~EngineImpl() { Stop(); }

  void Start(Engine* owner) {
    {
      MutexLock lock(g_names_mu);
      if (running_) return;
      if (Names().count(core_->options.name)) throw AlreadyStarted(core_->options.name);
      Names()[core_->options.name] = owner;
    }
    const auto& o = core_->options;
    control_ = std::make_unique<ControlReader>(*queues_, core_->ops, core_->node_id, o.name,
                                               o.heartbeat_interval, core_->Connector());
    try {
      auto conn = core_->Connect("control");
      Migrate(*conn, o.schema);
      ReclaimDeadPredecessors(core_->store, core_->node_id, o.heartbeat_interval, o.lease_ttl,
                              *core_->report, *conn);
      WriteGlobalLimits(*conn, o.queues);
      queues_->Configure(o.queues);
      control_->ApplyStandingScales(*conn);
      node_->Upsert(*conn, queues_->Concurrencies());
      scheduler_ = std::make_unique<Scheduler>(*schedule_store_, schedules_, core_->Connector(),
                                               core_->report);
      scheduler_->Register(*conn);
    } catch (...) {
      MutexLock lock(g_names_mu);
      Names().erase(core_->options.name);
      throw;
    }
    // spdlog creates its registry on first use. Doing that here, before any engine thread
    // exists, orders it before every thread's logging (the library's own guard of that static
    // is invisible to ThreadSanitizer, which otherwise reports a race between two threads'
    // first log lines).
    spdlog::default_logger_raw();
    flusher_ = std::make_shared<Flusher>(core_->Connector(), core_->store,
                                         FlushSettings{core_->node_id, o.lease_ttl, o.history},
                                         core_->report);
    flusher_->Start();
    queues_->StartRunners(flusher_);
    heartbeat_ =
        std::make_unique<Heartbeat>(core_->store, core_->ops, core_->node_id, o.heartbeat_interval,
                                    o.lease_ttl, core_->Connector(), *queues_);
    heartbeat_->Start();
    maintenance_ = std::make_unique<Maintenance>(core_->store, core_->ops,
                                                 MaintenanceSettings::Of(o, core_->node_id),
                                                 core_->Connector(), core_->report, *queues_);
    maintenance_->Start();
    control_->Start();  // (before the listener, which wakes it once it listens)
    listener_ = std::make_unique<Listener>(core_->store.channel(), ControlChannelFor(o.schema),
                                           core_->Connector(), *queues_, *control_);
    listener_->Start();
    autoscaler_ = std::make_unique<Autoscaler>(*queues_, core_->ops, core_->report->telemetry,
                                               o.autoscale_interval, o.autoscale_cooldown,
                                               core_->Connector());
    autoscaler_->Start();
    scheduler_->Start();
    MutexLock lock(g_names_mu);
    running_ = true;
  }

  // Stores the cluster-wide limits `queues` configure (QueueConfig::global_limit): the last
  // writer wins, and one that changes another node's value says so.
  void WriteGlobalLimits(pg::Connection& conn, const std::map<std::string, QueueConfig>& queues) {
    for (const auto& [queue, cfg] : queues) {
      if (!cfg.global_limit) continue;
      const auto before = core_->ops.SetGlobalLimit(conn, queue, cfg.global_limit);
      if (before && *before != *cfg.global_limit) {
        spdlog::warn(
            "queue {}: cluster-wide limit changed from {} to {} by this node's configuration "
            "(every node now uses {})",
            queue, *before, *cfg.global_limit, *cfg.global_limit);
      } else if (!before) {
        spdlog::info("queue {}: cluster-wide limit {}", queue, *cfg.global_limit);
      }
    }
  }

  void RequireRunning(const char* what) const {
    if (!running()) throw InvalidArgument(fmt::format("{}: the engine is not running", what));
  }

  void Reconfigure(std::map<std::string, QueueConfig> queues) {
    RequireRunning("reconfigure");
    EngineOptions check = core_->options;
    check.queues = queues;
    ValidateEngineOptions(check);
    const bool limits = std::any_of(queues.begin(), queues.end(), [](const auto& q) {
      return q.second.global_limit.has_value();
    });
    if (limits) {
      auto conn = core_->Connect("control");
      WriteGlobalLimits(*conn, queues);
    }
    queues_->Reconfigure(std::move(queues));
  }

  void SafeStop() {
    if (!running()) return;
    queues_->DrainAll();
    for (auto& r : queues_->All()) r->WaitIdle(std::chrono::steady_clock::time_point::max());
    Stop();
  }

  void Stop() {
    {
      MutexLock lock(g_names_mu);
      if (!running_) return;
      running_ = false;
    }
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + core_->options.drain_timeout;
    scheduler_->Stop();  // first: a stopping node inserts no more slots
    autoscaler_->Stop();
    control_->Stop();
    listener_->Stop();
    const auto runners = queues_->All();
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
      node_->Remove();
    } else {
      spdlog::warn(
          "engine {}: {} steps still running after drain_timeout; their rows go back "
          "to the queue when their leases expire",
          core_->options.name, abandoned);
    }
    queues_->Clear();
    // Close every connection of the background threads (an abandoned step keeps only the
    // flusher object, whose connection is closed by its Stop).
    heartbeat_.reset();
    maintenance_.reset();
    scheduler_.reset();
    listener_.reset();
    autoscaler_.reset();
    control_.reset();
    flusher_.reset();
    MutexLock lock(g_names_mu);
    Names().erase(core_->options.name);
  }

  bool running() const {
    MutexLock lock(g_names_mu);
    return running_;
  }

  std::shared_ptr<EngineCore> core_;
  const ProcessIdentity self_ = SelfIdentity();
  std::unique_ptr<NodePublisher> node_;
  std::unique_ptr<QueueSet> queues_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<ScheduleStore> schedule_store_;
  std::vector<ScheduleDefinition> schedules_;
  std::shared_ptr<Flusher> flusher_;
  // One of each per Start (created by Start, destroyed by Stop).
  std::unique_ptr<ControlReader> control_;
  std::unique_ptr<Autoscaler> autoscaler_;
  std::unique_ptr<Heartbeat> heartbeat_;
  std::unique_ptr<Maintenance> maintenance_;
  std::unique_ptr<Listener> listener_;
  std::unique_ptr<Scheduler> scheduler_;
  bool running_ GD_GUARDED_BY(g_names_mu) = false;
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
  detail::MutexLock lock(detail::g_names_mu);
  auto it = detail::Names().find(name);
  return it == detail::Names().end() ? nullptr : it->second;
}

const std::string& Engine::name() const { return impl_->core_->options.name; }
const std::string& Engine::node_id() const { return impl_->core_->node_id; }
const EngineOptions& Engine::options() const { return impl_->core_->options; }
Client& Engine::client() { return *impl_->client_; }
Telemetry& Engine::telemetry() { return impl_->core_->report->telemetry; }

void Engine::Pause(const std::string& queue) {
  impl_->client_->PauseQueue(queue);
  if (auto r = impl_->queues_->Runner(queue)) r->SetPaused(true);
}

void Engine::Resume(const std::string& queue) {
  impl_->client_->ResumeQueue(queue);
  if (auto r = impl_->queues_->Runner(queue)) r->SetPaused(false);
}

void Engine::Scale(const std::string& queue, int concurrency) {
  impl_->RequireRunning("scale");
  if (concurrency < 1 || concurrency > kMaxConcurrency) {
    throw InvalidArgument(
        fmt::format("scale: concurrency must be in 1..{} (got {})", kMaxConcurrency, concurrency));
  }
  impl_->queues_->Scale(queue, concurrency, "manual", true);
}

void Engine::Reconfigure(std::map<std::string, QueueConfig> queues) {
  impl_->Reconfigure(std::move(queues));
}

void Engine::SafeStop() { impl_->SafeStop(); }

std::map<std::string, LocalQueueState> Engine::Queues() const {
  return impl_->queues_->LocalQueues();
}

EngineStats Engine::stats() const {
  const auto& c = impl_->core_->report->counters;
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
