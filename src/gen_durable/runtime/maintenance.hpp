// Background duties of an engine, one thread each: heartbeat (lease extension), the reaper and
// GC, and the NOTIFY listener that wakes idle pickers.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gen_durable/runtime/core.hpp"
#include "gen_durable/runtime/periodic.hpp"
#include "gen_durable/runtime/rate_limiter.hpp"

namespace gen_durable::detail {

// Extends the leases of every row this node holds, every heartbeat_interval, refreshes the
// node's own row, and calls `cancelled(id)` for each held row whose cancel was requested.
class Heartbeat {
 public:
  Heartbeat(std::shared_ptr<EngineCore> core, std::function<std::vector<std::int64_t>()> held,
            std::function<void(std::int64_t)> cancelled);
  ~Heartbeat() { Stop(); }
  void Start();
  void Stop();
  // Runs one round now (tests).
  void Beat();

 private:
  std::shared_ptr<EngineCore> core_;
  std::function<std::vector<std::int64_t>()> held_;
  std::function<void(std::int64_t)> cancelled_;
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

// LISTENs on the engine's channel and calls `on_queue(queue)` for each announcement, and on
// its control channel, calling `on_control(message)` for each control message (a JSON object).
class Listener {
 public:
  // `on_control` runs for every notification on the control channel, whatever its payload
  // (which is never read: anyone who can connect can send one), and after each (re)connect,
  // since notifications sent while the listener was away are lost.
  Listener(std::shared_ptr<EngineCore> core, std::function<void(const std::string&)> on_queue,
           std::function<void()> on_control);
  ~Listener() { Stop(); }
  void Start();
  void Stop();

 private:
  std::shared_ptr<EngineCore> core_;
  std::function<void(const std::string&)> on_queue_;
  std::function<void()> on_control_;
  std::mutex ready_mu_;
  std::condition_variable ready_cv_;
  bool listening_ = false;  // GUARDED_BY(ready_mu_)
  Wakeup wake_;
  std::thread thread_;
};

// Reclaims the rows of dead nodes on this host (a restarted node's predecessor) at start: a
// node whose pid, in the pid namespace this process shares with it, is gone, or, for a node of
// another namespace, whose row has been silent for longer than its lease ttl (and
// Store::kSilentBeats heartbeat intervals). Returns the number of rows reclaimed.
std::int64_t ReclaimDeadPredecessors(EngineCore& core, pg::Connection& conn);

}  // namespace gen_durable::detail
