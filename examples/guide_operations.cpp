// Guide example: operating a cluster — queue control, autoscaling, cancel / retry / delete,
// queue and node info, history, and tenants on separate schemas. The snippets of
// docs/operations.md come from this file.
//
//   example_guide_operations DATABASE_URL   runs each operation once against that database
#include <chrono>
#include <gen_durable/gen_durable.hpp>
#include <iostream>
#include <string>
#include <thread>

namespace gd = gen_durable;
using namespace std::chrono_literals;

// A long job that stops early when cancelled.
const auto kExport = gd::Job<gd::Json>("ops.export")
                         .Queue("exports")
                         .Perform([](const gd::Json& args, gd::JobContext& ctx) {
                           for (int part = 0; part < args.value("parts", 10); ++part) {
                             if (ctx.cancelled()) return gd::JobResult::Cancel("stopped");
                             std::this_thread::sleep_for(100ms);  // one part of the export
                           }
                           return gd::JobResult::Ok({});
                         })
                         .Register();

gd::EngineOptions WorkerOptions(const std::string& database) {
  gd::EngineOptions opts;
  opts.database = database;
  opts.queues = {
      {"default", {10}},    // a fixed 10 slots
      {"exports", {1, 8}},  // autoscaled: 1 slot when idle, up to 8 under a backlog
  };
  opts.autoscale_interval = 1s;  // how often the backlog is looked at
  opts.autoscale_cooldown = 5s;  // shrink only after 5 s without a change
  opts.history = true;           // keep each step's outcome in the instance's history
  return opts;
}

void QueueControl(gd::Engine& engine, gd::Client& client) {
  client.PauseQueue("exports");     // every node stops claiming it (persisted)
  client.ResumeQueue("exports");    // and starts again at once
  engine.Scale("default", 4);       // this node only; autoscaling of the queue ends
  client.ScaleQueue("default", 6);  // every node serving the queue (persisted)
  engine.Reconfigure({{"default", {6}}, {"exports", {1, 8}}, {"reports", {2}}});
}

void Info(gd::Client& client) {
  for (auto q : client.Queues()) {  // (a copy: counts[] of a missing status is 0)
    std::cout << q.name << (q.paused ? " (paused)" : "") << ": " << q.counts["runnable"]
              << " ready, oldest " << q.oldest_ready_ms.value_or(0) << " ms, "
              << q.completed_last_minute << " done in the last minute\n";
  }
  for (const auto& n : client.Nodes()) {
    std::cout << n.id << " runs " << n.running << " steps, last seen " << n.heartbeat_at << "\n";
  }
}

void CancelRetryDelete(gd::Client& client, std::int64_t id) {
  gd::CancelReport r = client.Cancel(id, {.cascade = true, .reason = "customer left"});
  // r.cancelled: ended at once (queued, parked); r.requested: running, ending when their
  // step returns (ctx.cancelled() is true for them now).
  std::cout << r.cancelled.size() << " cancelled, " << r.requested.size() << " asked to stop\n";

  gd::InstanceFilter failed_exports;
  failed_exports.status = "failed";
  failed_exports.fsm = "ops.export";
  client.RetryWhere(failed_exports);  // back to runnable, attempt 0

  gd::InstanceFilter old_cancelled;
  old_cancelled.status = "cancelled";
  old_cancelled.older_than = 24h;
  client.DeleteWhere(old_cancelled);  // with their signals and history
}

void ShowHistory(gd::Client& client, std::int64_t id) {
  for (const auto& h : client.History(id)) {
    std::cout << h.at << " " << h.event << " " << h.step << " -> " << h.status
              << (h.error ? " (" + *h.error + ")" : "") << "\n";
  }
}

// Two tenants in one process: each engine and client on its own schema.
void Tenants(const std::string& database) {
  gd::EngineOptions a = WorkerOptions(database);
  a.name = "tenant-a";
  a.schema = "tenant_a";
  gd::EngineOptions b = WorkerOptions(database);
  b.name = "tenant-b";
  b.schema = "tenant_b";
  auto engine_a = gd::Engine::Start(a);
  auto engine_b = gd::Engine::Start(b);
  engine_a->Pause("exports");  // tenant b's exports keep running
  engine_a->Resume("exports");
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: " << argv[0] << " DATABASE_URL\n";
    return 2;
  }
  const std::string database = argv[1];
  auto engine = gd::Engine::Start(WorkerOptions(database));
  auto& client = engine->client();
  QueueControl(*engine, client);
  auto id = client.Insert(kExport, gd::Json{{"parts", 50}});
  if (!id.ok()) return 1;
  std::this_thread::sleep_for(300ms);  // let it start
  CancelRetryDelete(client, *id);
  Info(client);
  std::this_thread::sleep_for(300ms);  // let the cancelled step return
  ShowHistory(client, *id);
  engine->SafeStop();  // finish what runs, then stop
  Tenants(database);
  return 0;
}
