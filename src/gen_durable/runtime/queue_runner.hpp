// One queue on this node: a feeder thread that claims batches, and a pool of worker threads
// that run steps and hand their outcomes to the flusher.
//
// The feeder claims up to (concurrency + prefetch - in_flight - buffered) rows when at least
// min_demand slots are free (all of them, when a scale left fewer than that), backs off while
// the queue is idle (doubling the poll interval up to max_poll_interval) and snaps back when
// work appears or is announced (Poke).
#pragma once

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gen_durable/model/context_data.hpp"
#include "gen_durable/runtime/core.hpp"
#include "gen_durable/runtime/flusher.hpp"
#include "gen_durable/runtime/rate_limiter.hpp"
#include "gen_durable/util/thread_annotations.hpp"

namespace gen_durable::detail {

class QueueRunner : public std::enable_shared_from_this<QueueRunner> {
 public:
  QueueRunner(std::shared_ptr<EngineCore> core, std::shared_ptr<Flusher> flusher, std::string queue,
              int concurrency);
  ~QueueRunner();

  void Start() GD_EXCLUDES(mu_);
  // New work may be ready (a NOTIFY, or a local commit of a runnable row).
  void Poke() GD_EXCLUDES(mu_);
  // A row of this queue becomes due at `when` (a local replay with a delay): wake then.
  void NoteDue(std::chrono::steady_clock::time_point when) GD_EXCLUDES(mu_);
  // Ids of every row this queue holds a claim on (buffered, running, and with an outcome on its
  // way to the database), for the heartbeat.
  std::vector<std::int64_t> HeldIds() GD_EXCLUDES(mu_);

  // Sets the number of slots (>= 1): more workers start at once; surplus workers end when their
  // step is done. Returns the previous count.
  int Scale(int concurrency) GD_EXCLUDES(mu_);
  // The queue was paused / resumed cluster-wide: a paused queue hands its buffered (claimed,
  // not started) rows back and runs no inline step ahead; running steps finish (claims are
  // refused by the database itself). Resuming pokes the feeder. A pause returns once the
  // buffer is back in the table, whichever caller took it (the control listener and
  // Engine::Pause both pause; calls are taken one at a time).
  void SetPaused(bool paused) GD_EXCLUDES(pause_mu_, mu_);
  // Instance `id` was cancelled: a running step sees ctx.cancelled(); a buffered row is handed
  // back (and so ends `cancelled`). Returns false when this queue does not hold it.
  bool Cancel(std::int64_t id) GD_EXCLUDES(mu_);
  LocalQueueState State() const GD_EXCLUDES(mu_);
  bool paused() const { return paused_.load(); }

  // Stops claiming and releases buffered rows back to the queue. Returns how many.
  std::int64_t BeginDrain() GD_EXCLUDES(mu_);
  // Waits until no step runs or `deadline` passes; returns how many still run.
  int WaitIdle(std::chrono::steady_clock::time_point deadline) GD_EXCLUDES(mu_);
  // Joins every thread that has finished; detaches workers still running a step after the
  // drain deadline (their cancel flag is set and their outcome will be dropped).
  void Finish() GD_EXCLUDES(mu_);

  const std::string& queue() const { return queue_; }

 private:
  struct Running {
    std::shared_ptr<ContextData> data;
  };
  // One claim of a row: (id, lease_seq). A row whose lease was lost may be claimed again by
  // this node while the step of the lost claim still runs; the two claims are tracked apart, so
  // the end of the old one leaves the new one's bookkeeping (and its heartbeat) alone.
  using ClaimKey = std::pair<std::int64_t, std::int64_t>;
  void FeederLoop();
  void WorkerLoop();
  // Starts `n` more workers.
  void SpawnWorkersLocked(int n) GD_REQUIRES(mu_);
  void RunClaim(std::shared_ptr<ContextData> data, std::int64_t lease_seq);
  // True when `out` may run its next step on the same claim: a plain `next` with no rate limit
  // (that start must be admitted) and no partition change (the key may be busy).
  bool MayInline(const Outcome& out) const;
  // EncodeOutcome with this engine's options and machines; reports an unknown rate limit.
  OutcomeRow Encode(const MachineDef& def, const ClaimedRow& data, const Outcome& out,
                    bool keep) const;
  // Hands un-started claims back to the queue (on a fresh connection; a failure is logged and
  // left to the reaper). Returns how many were released.
  std::int64_t Release(const std::vector<ClaimRef>& claims);
  static std::vector<ClaimRef> Claims(const std::vector<ClaimedRow>& rows);
  // Empties the buffer (rows claimed, not started) and returns their claims, for a release.
  std::vector<ClaimRef> TakeBufferLocked() GD_REQUIRES(mu_);
  // Reports keyed rows a claim left alone because another claim held their key
  // (`partition.contended`, one event per row).
  void ReportContended(const std::vector<ContendedRow>& rows);
  int DemandLocked() const GD_REQUIRES(mu_);
  // After the commit of a claim's last outcome: frees the row and wakes whoever it concerns.
  // `partitioned`: the row held a partition slot, which the commit released.
  void Committed(const OutcomeRow& row, CommitResult result, bool partitioned);
  // Outcomes awaiting their commit, in multiples of concurrency + prefetch, beyond which the
  // feeder stops claiming.
  static constexpr int kCommitWindows = 4;

  std::shared_ptr<EngineCore> core_;
  std::shared_ptr<Flusher> flusher_;
  RateLimiter rate_limiter_;
  const std::string queue_;
  std::atomic<bool> paused_{false};

  // Held across a whole SetPaused, the hand-back included (taken before mu_, never inside it).
  Mutex pause_mu_ GD_ACQUIRED_BEFORE(mu_);
  mutable Mutex mu_;
  int concurrency_ GD_GUARDED_BY(mu_);
  int workers_alive_ GD_GUARDED_BY(mu_) = 0;
  // Workers ended by a scale-down.
  std::vector<std::thread::id> exited_ GD_GUARDED_BY(mu_);
  CondVar work_cv_;    // workers wait for buffered rows
  CondVar feeder_cv_;  // the feeder waits for demand, pokes, or its timer
  CondVar idle_cv_;    // drain waits for in_flight == 0
  std::deque<ClaimedRow> buffer_ GD_GUARDED_BY(mu_);
  std::map<ClaimKey, Running> running_ GD_GUARDED_BY(mu_);
  // Claims whose final outcome awaits its commit: no step of theirs runs until it commits, so
  // their worker has moved on, but the claim is still held.
  std::set<ClaimKey> committing_ GD_GUARDED_BY(mu_);
  bool stopping_ GD_GUARDED_BY(mu_) = false;
  bool poked_ GD_GUARDED_BY(mu_) = false;
  bool maybe_more_ GD_GUARDED_BY(mu_) = false;  // a full pick or a poke: more may be ready
  bool slot_freed_ GD_GUARDED_BY(mu_) = false;
  // Pauses so far: the rows of a claim that raced one are handed back.
  std::uint64_t pauses_ GD_GUARDED_BY(mu_) = 0;
  // Earliest known due time of a scheduled row of this queue.
  std::chrono::steady_clock::time_point due_at_ GD_GUARDED_BY(mu_) =
      std::chrono::steady_clock::time_point::max();

  std::thread feeder_;
  std::vector<std::thread> workers_;
};

}  // namespace gen_durable::detail
