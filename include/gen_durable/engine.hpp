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
// commit flusher, a heartbeat, a reaper and GC. Several engines may run in one process under
// different names (other databases, schemas or queue sets). Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "gen_durable/client.hpp"
#include "gen_durable/options.hpp"
#include "gen_durable/telemetry.hpp"

namespace gen_durable {

namespace detail {
class EngineImpl;
}

// Counters since start (also exported as telemetry).
struct EngineStats {
  std::int64_t claimed = 0;         // rows claimed
  std::int64_t steps = 0;           // steps run
  std::int64_t committed = 0;       // outcomes committed
  std::int64_t stale = 0;           // outcomes dropped by the ownership guard
  std::int64_t reaped = 0;          // expired leases reclaimed by this node's reaper
  std::int64_t gc_deleted = 0;      // terminal rows deleted by this node's GC
  std::int64_t flushes = 0;         // group commits
  std::int64_t released = 0;        // buffered rows released on stop
};

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
