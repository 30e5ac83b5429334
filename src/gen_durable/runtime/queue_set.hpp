// The queues an engine runs on this node: one QueueRunner each, their configuration, and the
// runtime changes to them (scale, reconfigure, pause, cancel, poke). The listener, the
// heartbeat, the reaper, the control reader and the autoscaler act on the queues through it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gen_durable/info.hpp"
#include "gen_durable/options.hpp"
#include "gen_durable/runtime/core.hpp"
#include "gen_durable/runtime/flusher.hpp"
#include "gen_durable/runtime/node.hpp"
#include "gen_durable/runtime/queue_runner.hpp"
#include "gen_durable/util/thread_annotations.hpp"

namespace gen_durable::detail {

class QueueSet {
 public:
  // `core` builds the runners; `node` publishes the queues after each change.
  QueueSet(std::shared_ptr<EngineCore> core, const NodePublisher& node);

  // Before a start: `queues` becomes both the configuration and the declared one; no runner
  // runs yet.
  void Configure(std::map<std::string, QueueConfig> queues) GD_EXCLUDES(mu_);
  // Fixes the concurrency of `queue` before its runner starts (a standing scale request).
  void SetConfigured(const std::string& queue, int concurrency) GD_EXCLUDES(mu_);
  // The concurrency of each configured queue.
  std::map<std::string, int> Concurrencies() const GD_EXCLUDES(mu_);
  // The declared configuration of each queue (options, or the last Reconfigure), as opposed to
  // the configuration, which scales change.
  std::map<std::string, QueueConfig> Declared() const GD_EXCLUDES(mu_);
  // The autoscaled queues with a runner, and their configuration.
  std::vector<std::pair<std::string, QueueConfig>> Autoscaled() const GD_EXCLUDES(mu_);
  // Whether `queue` is still autoscaled (no manual scale or reconfigure since).
  bool IsAutoscaled(const std::string& queue) const GD_EXCLUDES(mu_);

  // Starts a runner per configured queue, committing through `flusher`.
  void StartRunners(std::shared_ptr<Flusher> flusher) GD_EXCLUDES(mu_);
  // Every runner, the retiring ones (removed by Reconfigure) included.
  std::vector<std::shared_ptr<QueueRunner>> All() const GD_EXCLUDES(mu_);
  std::shared_ptr<QueueRunner> Runner(const std::string& queue) const GD_EXCLUDES(mu_);
  // Forgets every runner (after a stop).
  void Clear() GD_EXCLUDES(mu_);

  // Sets the slots of `queue` on this node; `fixed` ends its autoscaling (a manual scale).
  // Throws InvalidArgument for a queue this node does not run or a count out of range.
  void Scale(const std::string& queue, int concurrency, const char* reason, bool fixed)
      GD_EXCLUDES(mu_);
  // Applies a new (validated) set of queues: removed ones drain, new ones start, others are
  // rescaled into their bounds.
  void Reconfigure(std::map<std::string, QueueConfig> queues) GD_EXCLUDES(mu_);
  std::map<std::string, LocalQueueState> LocalQueues() const GD_EXCLUDES(mu_);

  // Pauses the queues named in `paused` and resumes the others.
  void SyncPaused(const std::set<std::string>& paused);
  // Ids of every row a queue holds a claim on.
  std::vector<std::int64_t> HeldIds() const;
  // A running instance was cancelled: tells the queue that holds it.
  void Cancel(std::int64_t id) const;
  // New work may be ready on `queue` (a NOTIFY, a parked row woken at its deadline).
  void Poke(const std::string& queue) const;
  // Stops every runner's claims and hands their buffers back; counts the rows released.
  void DrainAll() const;

 private:
  void StartRunnerLocked(const std::string& queue, int concurrency) GD_REQUIRES(mu_);

  const std::shared_ptr<EngineCore> core_;
  const NodePublisher& node_;
  std::shared_ptr<Flusher> flusher_ GD_GUARDED_BY(mu_);
  mutable Mutex mu_;
  std::map<std::string, QueueConfig> configs_ GD_GUARDED_BY(mu_);
  std::map<std::string, QueueConfig> declared_ GD_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<QueueRunner>> runners_ GD_GUARDED_BY(mu_);
  // Queues removed by Reconfigure, finishing their running steps.
  std::vector<std::shared_ptr<QueueRunner>> retiring_ GD_GUARDED_BY(mu_);
};

}  // namespace gen_durable::detail
