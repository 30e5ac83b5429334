// The group-commit flusher: coalesces the outcomes waiting at one moment into one statement.
//
// A worker hands its outcome to Commit() and blocks until the transaction holding it has
// committed, or to Submit() with a callback when nothing of the instance runs before that
// commit (the one guarantee: nothing proceeds before its state is durable). While one commit
// is in flight, new outcomes queue up and go together in the next one.
#pragma once

#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "gen_durable/pg/pool.hpp"
#include "gen_durable/runtime/reporter.hpp"
#include "gen_durable/store/store.hpp"
#include "gen_durable/util/thread_annotations.hpp"

namespace gen_durable::detail {

enum class CommitResult {
  kCommitted,  // the outcome is durable
  kCancelled,  // committed, but as `cancelled`: the instance was cancelled while its step ran
  kStale,      // the ownership guard refused it: the lease was lost, nothing was written
  kAbandoned,  // the flusher stopped before it could commit (the reaper will recover the row)
};

// What a commit writes beside the outcomes.
struct FlushSettings {
  std::string node_id;  // the owner the ownership guard checks
  Millis lease_ttl;     // the lease of a committed row that stays with this node
  bool history;         // each outcome is recorded in its instance's history too
};

class Flusher {
 public:
  // Commits through `store` on connections from `connect`; reports stale outcomes and counts
  // flushes through `report`.
  Flusher(ConnectionFactory connect, Store store, FlushSettings settings,
          std::shared_ptr<Reporter> report);
  ~Flusher();
  void Start();
  // Commits what is pending (retrying a lost connection until `deadline`), then stops;
  // later Commit() calls return kAbandoned at once.
  void Stop(std::chrono::steady_clock::time_point deadline) GD_EXCLUDES(mu_);
  // Blocks until `row` is committed or refused. Thread-safe.
  CommitResult Commit(OutcomeRow row) GD_EXCLUDES(mu_);
  // Queues `row` and returns at once; `done` runs on the flusher thread with the result (it
  // must be quick and must not call back into the flusher). Thread-safe.
  void Submit(OutcomeRow row, std::function<void(CommitResult)> done) GD_EXCLUDES(mu_);

 private:
  struct Pending {
    OutcomeRow row;
    std::function<void(CommitResult)> done;
  };
  void Run() GD_EXCLUDES(mu_);
  // Returns false when the batch could not be committed before the stop deadline.
  bool Flush(std::vector<Pending>& batch) GD_EXCLUDES(mu_);

  const Store store_;
  const FlushSettings settings_;
  const std::shared_ptr<Reporter> report_;
  Mutex mu_;
  CondVar cv_;
  std::vector<Pending> pending_ GD_GUARDED_BY(mu_);
  bool stopping_ GD_GUARDED_BY(mu_) = false;
  bool closed_ GD_GUARDED_BY(mu_) = false;
  std::chrono::steady_clock::time_point deadline_ GD_GUARDED_BY(mu_){};
  pg::ReconnectingConnection conn_;  // flusher thread only
  std::thread thread_;
};

}  // namespace gen_durable::detail
