// The CLI's long-running commands: `worker` (an engine running the demo machines, with its
// metrics server and step log) and `dashboard`.
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <thread>
#include <vector>

#include "gen_durable/commands.hpp"  // tools/
#include "gen_durable/dashboard.hpp"
#include "gen_durable/demo_machines.hpp"  // tools/
#include "gen_durable/engine.hpp"
#include "gen_durable/error.hpp"
#include "gen_durable/metrics.hpp"

namespace gen_durable::tools {

sigset_t BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

namespace {

// --step-log: appends one JSON line per event to `path`. Each line goes out in one write(2) on
// an O_APPEND descriptor, so lines from several workers sharing the file never interleave and a
// line written before a SIGKILL is kept (it is in the kernel, not in a user-space buffer).
// Lines: {"ev":"step",id,fsm,step,attempt,kind,start_us,end_us,pid} when a step returns (before
// its outcome commits), {"ev":"stale",id,pid} when an outcome was dropped as stale, and
// {"ev":"reaped",ids,pid} when this node's reaper took expired leases back.
void AttachStepLog(Engine& engine, const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw ConfigError(fmt::format("--step-log {}: {}", path, std::strerror(errno)));
  }
  const int pid = static_cast<int>(getpid());
  auto write_line = [fd](Json line) {
    std::string text = line.dump();
    text += '\n';
    // A short write to a local file only happens when the disk is full; the log is best effort.
    [[maybe_unused]] const ssize_t n = ::write(fd, text.data(), text.size());
  };
  engine.telemetry().Attach("step.stop", [write_line, pid](const TelemetryEvent& e) {
    const std::int64_t end_us = NowMicros();
    const auto duration_us = static_cast<std::int64_t>(e.measurements.at("duration") * 1e6);
    write_line({{"ev", "step"},
                {"id", e.metadata.at("id")},
                {"fsm", e.metadata.at("fsm")},
                {"step", e.metadata.at("step")},
                {"attempt", e.metadata.at("attempt")},
                {"kind", e.metadata.at("kind")},
                {"start_us", end_us - duration_us},
                {"end_us", end_us},
                {"pid", pid}});
  });
  engine.telemetry().Attach("outcome.stale", [write_line, pid](const TelemetryEvent& e) {
    write_line({{"ev", "stale"}, {"id", e.metadata.at("id")}, {"pid", pid}});
  });
  engine.telemetry().Attach("reaper.reaped", [write_line, pid](const TelemetryEvent& e) {
    write_line({{"ev", "reaped"}, {"ids", e.metadata.at("ids")}, {"pid", pid}});
  });
}

}  // namespace

int RunWorker(const GlobalOptions& global, const WorkerArgs& args) {
  EngineOptions options;
  options.name = args.name;
  options.schema = global.schema;
  options.queues = ParseQueues(args.queues);
  ApplyGlobalLimits(args.global_limits, options.queues);
  options.lease_ttl = Millis{args.lease_ttl_ms};
  options.heartbeat_interval = Millis{args.heartbeat_interval_ms.value_or(
      std::clamp<std::int64_t>(args.lease_ttl_ms / 3, 1, options.heartbeat_interval.count()))};
  options.poll_interval = Millis{args.poll_interval_ms};
  // There is no flag for the idle backoff ceiling: keep it from refusing a long poll interval.
  options.max_poll_interval = std::max(options.max_poll_interval, options.poll_interval);
  options.reap_interval = Millis{args.reap_interval_ms};
  if (args.gc_interval_ms == 0) {
    options.gc_interval.reset();
  } else {
    options.gc_interval = Millis{args.gc_interval_ms};
  }
  options.gc_retention = Millis{args.gc_retention_ms};
  options.prefetch = args.prefetch;
  options.drain_timeout = Millis{args.drain_timeout_ms};
  options.autoscale_interval = Millis{args.autoscale_interval_ms};
  options.autoscale_cooldown = Millis{args.autoscale_cooldown_ms};
  options.history = args.history;
  options.history_retention = Millis{args.history_retention_ms};
  options.rate_limits = ParseRateLimits(args.rate_limits);
  options.schedules = ParseSchedules(args.schedules);

  RegisterDemoMachines();
  Session session(global);
  options.database = session.conninfo();
  // Validates every option (ConfigError: exit 2) before anything runs.
  std::unique_ptr<Engine> engine = Engine::Create(options);

  if (!args.step_log.empty()) AttachStepLog(*engine, args.step_log);
  // The metrics endpoint binds before anything runs, so a taken port fails at once.
  std::unique_ptr<Metrics> metrics;
  std::unique_ptr<MetricsServer> metrics_server;
  if (args.metrics_port) {
    metrics = std::make_unique<Metrics>(*engine);
    MetricsServerOptions mo;
    mo.bind = args.metrics_bind;
    mo.port = *args.metrics_port;
    mo.security = HttpSecurityOf(args.metrics_http, kMetricsTokenEnv);
    metrics_server = MetricsServer::Start(*metrics, mo);
  }

  // Engine threads inherit the mask, so only the sigwait below ever sees these signals.
  const sigset_t signals = BlockTerminationSignals();
  // A worker started while the database is down (a restart, a failover) waits for it instead of
  // exiting, as the engine's own threads do once it runs. Only a retryable failure is waited
  // out; a wrong password or a missing database still exits at once.
  for (std::int64_t backoff_ms = 100;; backoff_ms = std::min<std::int64_t>(backoff_ms * 2, 5000)) {
    try {
      engine->Start();
      break;
    } catch (const Error& e) {
      if (e.retry() == Retry::kFatal) throw;
      fmt::print(stderr, "gen_durable worker: database unavailable ({}); retrying in {} ms\n",
                 e.what(), backoff_ms);
      const timespec wait{static_cast<time_t>(backoff_ms / 1000),
                          static_cast<long>(backoff_ms % 1000) * 1'000'000};
      if (sigtimedwait(&signals, nullptr, &wait) > 0) {
        fmt::print(stderr, "gen_durable worker: stopped before the database was reachable\n");
        std::fflush(nullptr);
        std::_Exit(kExitOk);
      }
    }
  }
  std::string queues;
  for (const auto& [name, cfg] : options.queues) {
    queues += fmt::format("{}{}:{}", queues.empty() ? "" : ",", name,
                          cfg.autoscaled() ? fmt::format("{}-{}", cfg.concurrency, cfg.max)
                                           : std::to_string(cfg.concurrency));
    if (cfg.global_limit) queues += fmt::format(" (cluster-wide {})", *cfg.global_limit);
  }
  std::string limits;
  for (const auto& [name, limit] : options.rate_limits) {
    limits += fmt::format("{}{}:{}/{}ms", limits.empty() ? "" : ",", name, limit.allowed,
                          limit.period.count());
    if (limit.burst) limits += fmt::format(" burst {}", *limit.burst);
  }
  std::string schedules;
  for (const auto& s : options.schedules) {
    schedules += fmt::format("{}{} '{}' {}", schedules.empty() ? "" : ", ", s.name, s.cron, s.fsm);
  }
  fmt::print(stderr, "gen_durable worker: started node {} (queues {}{}{})\n", engine->node_id(),
             queues, limits.empty() ? "" : fmt::format("; rate limits {}", limits),
             schedules.empty() ? "" : fmt::format("; schedules {}", schedules));
  if (metrics_server) {
    fmt::print(stderr, "gen_durable worker: metrics at {}://{}:{}/metrics\n",
               args.metrics_http.tls_cert.empty() ? "http" : "https", args.metrics_bind,
               metrics_server->port());
  }

  int sig = 0;
  sigwait(&signals, &sig);
  fmt::print(stderr, "gen_durable worker: {} received, draining (up to {} ms)\n",
             sig == SIGINT ? "SIGINT" : "SIGTERM", args.drain_timeout_ms);
  // A second signal means "now": the rows still held go back through the reaper.
  std::thread([signals] {
    int again = 0;
    sigwait(&signals, &again);
    fmt::print(stderr, "gen_durable worker: second signal, exiting without draining\n");
    std::_Exit(kExitFailure);
  }).detach();

  if (metrics_server) metrics_server->Stop();
  engine->Stop();
  const EngineStats stats = engine->stats();
  fmt::print(stderr,
             "gen_durable worker: stopped node {} ({} steps run, {} buffered rows released)\n",
             engine->node_id(), stats.steps, stats.released);
  // The engine's connections close with it, so the embedded server (if this process started it)
  // sees no other client and stops.
  metrics_server.reset();
  metrics.reset();
  engine.reset();
  session.Close();
  spdlog::default_logger()->flush();
  std::fflush(nullptr);
  // Steps abandoned after drain_timeout may still be running; their rows are the reaper's now,
  // and running destructors under them would be unsafe.
  std::_Exit(kExitOk);
}

HttpSecurityOptions HttpSecurityOf(const HttpArgs& args, const char* token_env) {
  HttpSecurityOptions o;
  if (!args.token_file.empty()) {
    o.token = ReadSecretFile(args.token_file);
  } else if (const char* env = std::getenv(token_env); env && *env) {
    o.token = env;
  }
  o.read_only = args.read_only;
  o.allow_unauthenticated = args.allow_unauthenticated;
  o.allowed_hosts = args.allow_hosts;
  o.tls_cert_file = args.tls_cert;
  o.tls_key_file = args.tls_key;
  return o;
}

int RunDashboard(const GlobalOptions& global, const DashboardArgs& args) {
  // Credentials and address are checked before the database is reached.
  DashboardOptions options;
  options.bind = args.bind;
  options.port = args.port;
  options.refresh_ms = args.refresh_ms;
  options.security = HttpSecurityOf(args.http, kDashboardTokenEnv);
  Session session(global);
  // Waits for SIGINT / SIGTERM only: block them before the server's thread exists.
  const sigset_t signals = BlockTerminationSignals();
  auto dashboard = Dashboard::Start(session.client(), options);
  fmt::print(stderr, "gen_durable dashboard: {}://{}:{}/ (schema {}{}{}); Ctrl-C stops it\n",
             dashboard->tls() ? "https" : "http", args.bind, dashboard->port(), session.schema(),
             options.security.token.empty() ? ", no credentials" : ", token required",
             options.security.read_only ? ", read-only" : "");
  int sig = 0;
  sigwait(&signals, &sig);
  dashboard->Stop();
  fmt::print(stderr, "gen_durable dashboard: stopped\n");
  return kExitOk;
}

}  // namespace gen_durable::tools
