// The engine: the object a host application owns to run machines on this node.
//
//   gen_durable::EngineOptions opts;
//   opts.database = "postgresql:///app";
//   opts.queues = {{"default", {10}}, {"checkout", {5}}};
//   auto engine = gen_durable::Engine::Create(opts);   // validates options; nothing runs yet
//   engine->telemetry().Attach("", LogEvent);            // optional: see every event
//   engine->Start();                                     // migrate, reclaim, start threads
//   ...
//   engine->Stop();                                      // graceful drain (also in ~Engine)
//
// One engine runs a scheduler per queue (batched claims), a worker pool per queue, a group
// commit flusher, a heartbeat, a reaper and GC, and a thread firing its periodic schedules (when
// it carries any). Several engines may run in one process under
// different names (other databases, schemas or queue sets). Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "gen_durable/client.hpp"
#include "gen_durable/options.hpp"
#include "gen_durable/telemetry.hpp"

namespace gen_durable {

namespace detail {
class EngineImpl;
}

class Engine {
 public:
  // Validates `options` (throws ConfigError naming the bad option) without starting.
  static std::unique_ptr<Engine> Create(EngineOptions options);
  // Create + Start.
  static std::unique_ptr<Engine> Start(EngineOptions options);
  ~Engine();  // Stop()

  // Registers the name (throws AlreadyStarted when taken), migrates the schema, releases the
  // claims of a dead predecessor on this host, and starts every thread. Throws DatabaseError
  // when the database cannot be reached at start.
  void Start();
  // Graceful stop: stop claiming, release buffered rows at once, wait up to drain_timeout for
  // in-flight steps, then leave what still runs to the reaper. Idempotent.
  void Stop();
  bool running() const;

  // --- runtime queue control (docs/operations.md) ---
  // Pauses / resumes `queue` cluster-wide (persisted: every node stops claiming it at its next
  // claim; running steps finish). The same as client().PauseQueue / ResumeQueue, and wakes
  // this node's picker at once on resume.
  void Pause(const std::string& queue);
  void Resume(const std::string& queue);
  // Sets the concurrency of `queue` on this node (fixed from now on). Lowering it lets running
  // steps finish. Throws InvalidArgument for a queue this node does not run or n < 1.
  void Scale(const std::string& queue, int concurrency);
  // Makes `queues` the complete list this node runs: new ones start, changed ones scale, and
  // queues not named stop claiming (their buffered rows go back, their running steps finish).
  // A global_limit set in `queues` is stored for the whole cluster, as at Start.
  void Reconfigure(std::map<std::string, QueueConfig> queues);
  // Stops claiming on every queue, releases buffered rows, waits for every running step to
  // finish (however long it takes), then stops the engine.
  void SafeStop();
  // This node's queues now.
  std::map<std::string, LocalQueueState> Queues() const;

  // The running engine named `name` in this process, or nullptr.
  static Engine* Find(const std::string& name);

  const std::string& name() const;
  // Identity of this node in `locked_by` and the nodes table ("host:pid:token").
  const std::string& node_id() const;
  const EngineOptions& options() const;
  // A client on the same database and schema.
  Client& client();
  Telemetry& telemetry();
  EngineStats stats() const;

 private:
  explicit Engine(std::unique_ptr<detail::EngineImpl> impl);
  std::unique_ptr<detail::EngineImpl> impl_;
};

}  // namespace gen_durable
