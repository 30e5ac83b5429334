// Background duties of an engine, one thread each: heartbeat (lease extension), the reaper and
// GC, and the NOTIFY listener that wakes idle pickers.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gen_durable/pg/pool.hpp"
#include "gen_durable/runtime/control.hpp"
#include "gen_durable/runtime/periodic.hpp"
#include "gen_durable/runtime/queue_set.hpp"
#include "gen_durable/runtime/rate_limiter.hpp"
#include "gen_durable/runtime/reporter.hpp"
#include "gen_durable/store/ops_store.hpp"
#include "gen_durable/store/store.hpp"
#include "gen_durable/util/thread_annotations.hpp"

namespace gen_durable::detail {

// Extends the leases of every row the queues hold, every heartbeat_interval, refreshes the
// node's own row, and cancels the held rows whose cancel was requested.
class Heartbeat {
 public:
  // Beats every `interval` for node `node_id`, extending leases to `lease_ttl`.
  Heartbeat(const Store& store, const OpsStore& ops, std::string node_id, Millis interval,
            Millis lease_ttl, ConnectionFactory connect, QueueSet& queues);
  ~Heartbeat() { Stop(); }
  void Start();
  void Stop();
  // Runs one round now (tests).
  void Beat();

 private:
  const Store& store_;
  const OpsStore& ops_;
  const std::string node_id_;
  const Millis interval_;
  const Millis lease_ttl_;
  QueueSet& queues_;
  pg::ReconnectingConnection conn_;
  Wakeup wake_;
  std::thread thread_;
};

// When the reaper and GC run, and what they keep.
struct MaintenanceSettings {
  bool reaper;  // reap on this node
  Millis reap_interval;
  Millis lease_ttl;                   // node rows silent for ten leases (10 min at least) go
  std::optional<Millis> gc_interval;  // nullopt: no GC on this node
  Millis gc_retention;                // terminal rows older than this are deleted
  int gc_batch;                       // rows per delete statement
  Millis history_retention;           // history entries older than this are deleted
  RateLimitSettings rate_limits;      // idle buckets are pruned with the GC

  static MaintenanceSettings Of(const EngineOptions& options, const std::string& node_id);
};

// The reaper (expired leases back to runnable with attempt + 1, dead node rows pruned) and GC
// (terminal rows past retention deleted in batches).
class Maintenance {
 public:
  // The queue of a parked row woken at its deadline is poked in `queues`; reaped rows and
  // sweeps are reported through `report`. `store` and `ops` must outlive it.
  Maintenance(const Store& store, const OpsStore& ops, MaintenanceSettings settings,
              ConnectionFactory connect, std::shared_ptr<Reporter> report, QueueSet& queues);
  ~Maintenance() { Stop(); }
  void Start();
  void Stop();
  // One reaper sweep; returns the number of rows reclaimed.
  std::int64_t Reap();
  // One GC sweep (repeated while batches come back full); returns rows deleted.
  std::int64_t Collect();

 private:
  const Store& store_;
  const OpsStore& ops_;
  const MaintenanceSettings settings_;
  const std::shared_ptr<Reporter> report_;
  QueueSet& queues_;
  RateLimiter rate_limiter_;
  pg::ReconnectingConnection conn_;
  Wakeup wake_;
  std::thread thread_;
};

// LISTENs on the engine's channel and pokes the queue each announcement names, and on its
// control channel, waking the control reader.
class Listener {
 public:
  // `control` is woken for every notification on the control channel, whatever its payload
  // (which is never read: anyone who can connect can send one), and after each (re)connect,
  // since notifications sent while the listener was away are lost.
  // Listens on `channel` (new work, its payload a queue name) and `control_channel`.
  Listener(std::string channel, std::string control_channel, ConnectionFactory connect,
           QueueSet& queues, ControlReader& control);
  ~Listener() { Stop(); }
  void Start();
  void Stop();

 private:
  const std::string channel_;
  const std::string control_channel_;
  const ConnectionFactory connect_;
  QueueSet& queues_;
  ControlReader& control_;
  Mutex ready_mu_;
  CondVar ready_cv_;
  bool listening_ GD_GUARDED_BY(ready_mu_) = false;
  Wakeup wake_;
  std::thread thread_;
};

// Reclaims the rows of dead nodes on this host (a restarted node's predecessor) at start: a
// node whose pid, in the pid namespace this process shares with it, is gone, or, for a node of
// another namespace, whose row has been silent for longer than its lease ttl (and
// Store::kSilentBeats heartbeat intervals). Returns the number of rows reclaimed.
// `node_id` is this node's; reclaimed rows are reported through `report`.
std::int64_t ReclaimDeadPredecessors(const Store& store, const std::string& node_id,
                                     Millis heartbeat_interval, Millis lease_ttl, Reporter& report,
                                     pg::Connection& conn);

}  // namespace gen_durable::detail
