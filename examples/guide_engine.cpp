// Guide example: running an engine. The snippets of docs/guides/engine.md and
// docs/guides/telemetry.md come from this file.
//
//   example_guide_engine                          validates the options, then exits
//   example_guide_engine DATABASE_URL [SECONDS]   runs until SIGINT/SIGTERM (or SECONDS pass)
#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <gen_durable/gen_durable.hpp>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace gd = gen_durable;
using namespace std::chrono_literals;

// A long job that checks ctx.cancelled() between chunks of work. Once the engine stops waiting
// for it (drain_timeout passed) its outcome is discarded anyway; returning early frees the thread.
const auto kReindex = gd::Job<gd::Json>("guide.reindex")
                          .Queue("maintenance")
                          .Perform([](const gd::Json& args, gd::JobContext& ctx) {
                            const int chunks = args.value("chunks", 20);
                            for (int chunk = 0; chunk < chunks; ++chunk) {
                              if (ctx.cancelled()) return gd::JobResult::Error("interrupted");
                              std::this_thread::sleep_for(50ms);  // one chunk of work
                            }
                            return gd::JobResult::Ok({{"chunks", chunks}});
                          })
                          .Register();

// Every option with its default value, spelled out.
gd::EngineOptions DefaultOptions(const std::string& database) {
  gd::EngineOptions opts;
  opts.database = database;                  // libpq connection string or URI; required
  opts.schema = "public";                    // Postgres schema holding the tables
  opts.name = "gen_durable";                 // unique among the engines running in this process
  opts.all_registered_machines = true;       // serve every machine registered in the process,
  opts.machines = {};                        // plus these (old versions, unregistered ones)
  opts.queues = {{"default", {10}}};         // queue -> steps running at once on this node
  opts.lease_ttl = 60s;                      // a claim expires unless heartbeated
  opts.heartbeat_interval = 20s;             // lease extension period
  opts.poll_interval = 1s;                   // idle poll, when no NOTIFY arrives
  opts.max_poll_interval = 5s;               // ceiling of the idle backoff
  opts.reap_interval = 30s;                  // reaper sweep period
  opts.gc_interval = 60s;                    // GC sweep period; std::nullopt: no GC here
  opts.gc_retention = 24h;                   // keep terminal rows this long
  opts.gc_batch = 10'000;                    // rows deleted per statement at most
  opts.prefetch = 0;                         // rows claimed beyond the free slots
  opts.min_demand = 1;                       // claim only when this many slots are free
  opts.drain_timeout = 5s;                   // Stop() waits this long for running steps
  opts.reaper = true;                        // run the reaper on this node
  opts.gc = true;                            // run GC on this node
  opts.inline_next = true;                   // `next` runs the following step on the claim
  opts.max_inline_steps = 100;               // ... for at most this many steps in a row
  opts.max_payload_bytes = 8 * 1024 * 1024;  // largest state or result a step may return
  opts.autoscale_interval = 1s;              // autoscaled queues ({min, max}) re-evaluate
  opts.autoscale_cooldown = 5s;              // ... and shrink only after this long unchanged
  opts.history = false;                      // record each step in the instance's history
  opts.history_retention = 24h * 7;          // GC deletes older history entries
  return opts;
}

// --- telemetry ---

// Runs on the engine thread that emits the event: keep it short and never block.
void ReportSlowStep(const gd::TelemetryEvent& e) {
  if (e.measurements.at("duration") > 1.0) {
    std::cerr << "slow step: " << e.metadata.dump() << "\n";
  }
}

// Sums every measurement of every event, e.g. for a metrics exporter to read.
class EventTotals {
 public:
  void Add(const gd::TelemetryEvent& e) {
    std::lock_guard lock(mu_);
    for (const auto& [measurement, value] : e.measurements) {
      totals_[e.name + "." + measurement] += value;
    }
  }
  std::map<std::string, double> Snapshot() {
    std::lock_guard lock(mu_);
    return totals_;
  }

 private:
  std::mutex mu_;
  std::map<std::string, double> totals_;  // GUARDED_BY(mu_)
};

// Blocks until SIGINT or SIGTERM arrives, or `seconds` pass (0: no limit).
void WaitForStopSignal(const sigset_t& signals, int seconds) {
  if (seconds <= 0) {
    int sig = 0;
    sigwait(&signals, &sig);
    return;
  }
  timespec limit{seconds, 0};
  sigtimedwait(&signals, nullptr, &limit);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cout << "usage: example_guide_engine DATABASE_URL [SECONDS]\n";
    // Create validates without connecting: a bad value throws ConfigError naming the option.
    auto opts = DefaultOptions("postgresql:///app");
    opts.heartbeat_interval = opts.lease_ttl;
    try {
      gd::Engine::Create(opts);
    } catch (const gd::ConfigError& e) {
      std::cout << "refused as expected: " << e.what() << "\n";
    }
    return 0;
  }
  const int seconds = argc > 2 ? std::atoi(argv[2]) : 0;

  gd::EngineOptions opts = DefaultOptions(argv[1]);
  opts.name = "billing";
  opts.queues = {{"default", {10}}, {"maintenance", {2}}};
  opts.prefetch = 5;
  auto engine = gd::Engine::Create(opts);  // validates; throws ConfigError naming the option

  EventTotals totals;
  engine->telemetry().Attach("step.stop", ReportSlowStep);
  engine->telemetry().Attach("", [&totals](const gd::TelemetryEvent& e) { totals.Add(e); });

  // Block the stop signals before Start, so every engine thread inherits the mask and only
  // sigwait below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  engine->Start();  // migrates, reclaims a dead predecessor's rows, starts the threads

  // A second engine in the same process: its own name, schema and queues.
  gd::EngineOptions tenant = DefaultOptions(argv[1]);
  tenant.name = "tenant-b";
  tenant.schema = "tenant_b";
  tenant.queues = {{"default", {4}}};
  auto second = gd::Engine::Start(tenant);
  if (gd::Engine* found = gd::Engine::Find("tenant-b")) {
    std::cout << "running: " << found->name() << " as node " << found->node_id() << "\n";
  }

  gd::InsertOptions work;
  work.state = {{"chunks", 40}};
  auto id = engine->client().Insert(kReindex, work);

  WaitForStopSignal(signals, seconds);
  second->Stop();
  engine->Stop();  // stop claiming, hand back buffered rows, wait up to drain_timeout

  const gd::EngineStats stats = engine->stats();
  std::cout << "reindex #" << (id ? *id : 0) << "; steps " << stats.steps << ", committed "
            << stats.committed << ", released on stop " << stats.released << "\n";
  for (const auto& [name, total] : totals.Snapshot()) std::cout << name << " " << total << "\n";
  return 0;
}
