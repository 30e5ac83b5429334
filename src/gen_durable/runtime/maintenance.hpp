// Background duties of an engine, one thread each: heartbeat (lease extension), the reaper and
// GC, and the NOTIFY listener that wakes idle pickers.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gen_durable/runtime/core.hpp"
#include "gen_durable/runtime/periodic.hpp"
#include "gen_durable/runtime/rate_limiter.hpp"

namespace gen_durable::detail {

// Extends the leases of every row this node holds, every heartbeat_interval, and refreshes
// the node's own row.
class Heartbeat {
 public:
  Heartbeat(std::shared_ptr<EngineCore> core, std::function<std::vector<std::int64_t>()> held);
  ~Heartbeat() { Stop(); }
  void Start();
  void Stop();
  // Runs one round now (tests).
  void Beat();

 private:
  std::shared_ptr<EngineCore> core_;
  std::function<std::vector<std::int64_t>()> held_;
  std::unique_ptr<pg::Connection> conn_;
  Wakeup wake_;
  std::thread thread_;
};

// The reaper (expired leases back to runnable with attempt + 1, dead node rows pruned) and GC
// (terminal rows past retention deleted in batches).
class Maintenance {
 public:
  // `poke(queue)` is called when a parked row of `queue` wakes at its deadline.
  Maintenance(std::shared_ptr<EngineCore> core, std::function<void(const std::string&)> poke);
  ~Maintenance() { Stop(); }
  void Start();
  void Stop();
  // One reaper sweep; returns the number of rows reclaimed.
  std::int64_t Reap();
  // One GC sweep (repeated while batches come back full); returns rows deleted.
  std::int64_t Collect();

 private:
  pg::Connection& Conn();
  std::shared_ptr<EngineCore> core_;
  std::function<void(const std::string&)> poke_;
  RateLimiter rate_limiter_;
  std::unique_ptr<pg::Connection> conn_;
  Wakeup wake_;
  std::thread thread_;
};

// LISTENs on the engine's channel and calls `on_queue(queue)` for each announcement.
class Listener {
 public:
  Listener(std::shared_ptr<EngineCore> core, std::function<void(const std::string&)> on_queue);
  ~Listener() { Stop(); }
  void Start();
  void Stop();

 private:
  std::shared_ptr<EngineCore> core_;
  std::function<void(const std::string&)> on_queue_;
  Wakeup wake_;
  std::thread thread_;
};

// Reclaims the rows of dead nodes on this host (a restarted node's predecessor) at start.
// Returns the number of rows reclaimed.
std::int64_t ReclaimDeadPredecessors(EngineCore& core, pg::Connection& conn);

}  // namespace gen_durable::detail
