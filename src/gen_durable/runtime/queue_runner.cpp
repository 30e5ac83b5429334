// A queue runner's life (start, scale, pause, cancel, drain) and its workers: run steps, hand
// their outcomes to the flusher, run ahead inline. The feeder that claims is feeder.cpp.
#include "gen_durable/runtime/queue_runner.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <limits>

#include "gen_durable/model/status.hpp"
#include "gen_durable/runtime/outcome_encoder.hpp"
#include "gen_durable/util/crash_point.hpp"

namespace gen_durable::detail {

namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

QueueRunner::QueueRunner(std::shared_ptr<EngineCore> core, std::shared_ptr<Flusher> flusher,
                         std::string queue, int concurrency)
    : core_(std::move(core)),
      flusher_(std::move(flusher)),
      rate_limiter_(RateLimitSettings::Of(core_->options, core_->node_id), core_->report),
      queue_(std::move(queue)),
      concurrency_(concurrency) {}

QueueRunner::~QueueRunner() {
  // Finish() joined or detached every thread; a joinable one here would be a bug.
  if (feeder_.joinable()) feeder_.detach();
  for (auto& w : workers_) {
    if (w.joinable()) w.detach();
  }
}

void QueueRunner::Start() {
  auto self = shared_from_this();
  feeder_ = std::thread([self] { self->FeederLoop(); });
  MutexLock lock(mu_);
  SpawnWorkersLocked(concurrency_);
}

void QueueRunner::SpawnWorkersLocked(int n) {
  auto self = shared_from_this();
  for (int i = 0; i < n; ++i) {
    workers_.emplace_back([self] { self->WorkerLoop(); });
    ++workers_alive_;
  }
}

int QueueRunner::Scale(int concurrency) {
  std::vector<std::thread> ended;
  int before = 0;
  {
    MutexLock lock(mu_);
    before = concurrency_;
    concurrency_ = concurrency;
    // Reap the threads of earlier scale-downs (they have returned; joining is immediate).
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (std::find(exited_.begin(), exited_.end(), it->get_id()) != exited_.end()) {
        ended.push_back(std::move(*it));
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
    exited_.clear();
    if (!stopping_ && workers_alive_ < concurrency_) {
      SpawnWorkersLocked(concurrency_ - workers_alive_);
    }
    slot_freed_ = true;
    maybe_more_ = true;
  }
  for (auto& t : ended) t.join();
  work_cv_.NotifyAll();    // surplus idle workers end
  feeder_cv_.NotifyOne();  // the demand changed
  return before;
}

void QueueRunner::SetPaused(bool paused) {
  MutexLock pausing(pause_mu_);
  if (!paused) {
    paused_.store(false);
    Poke();
    return;
  }
  std::vector<ClaimRef> claims;
  {
    MutexLock lock(mu_);
    paused_.store(true);
    ++pauses_;  // a claim already on its way back is handed back too (FeederLoop)
    // Rows claimed before the pause but not started would otherwise run during it.
    claims = TakeBufferLocked();
  }
  Release(claims);
}

bool QueueRunner::Cancel(std::int64_t id) {
  std::optional<ClaimRef> buffered;
  {
    MutexLock lock(mu_);
    // (every claim of the row this node runs: a lost one's step is told too)
    bool running = false;
    for (auto it = running_.lower_bound({id, std::numeric_limits<std::int64_t>::min()});
         it != running_.end() && it->first.first == id; ++it) {
      it->second.data->cancelled.store(true);
      running = true;
    }
    if (running) return true;
    for (auto it = buffer_.begin(); it != buffer_.end(); ++it) {
      if (it->id == id) {
        buffered = ClaimRef{it->id, it->lease_seq};
        buffer_.erase(it);
        break;
      }
    }
  }
  // The release honours the cancel: the row ends `cancelled`.
  if (buffered) Release({*buffered});
  return buffered.has_value();
}

LocalQueueState QueueRunner::State() const {
  MutexLock lock(mu_);
  LocalQueueState s;
  s.concurrency = concurrency_;
  s.min = s.max = concurrency_;
  s.in_flight = static_cast<int>(running_.size());
  s.buffered = static_cast<int>(buffer_.size());
  s.draining = stopping_;
  s.paused = paused_.load();
  return s;
}

void QueueRunner::Poke() {
  {
    MutexLock lock(mu_);
    poked_ = true;
    maybe_more_ = true;
  }
  feeder_cv_.NotifyOne();
}

void QueueRunner::NoteDue(Clock::time_point when) {
  {
    MutexLock lock(mu_);
    if (when >= due_at_) return;
    due_at_ = when;
  }
  feeder_cv_.NotifyOne();
}

std::vector<std::int64_t> QueueRunner::HeldIds() {
  MutexLock lock(mu_);
  std::vector<std::int64_t> ids;
  ids.reserve(buffer_.size() + running_.size());
  for (const auto& r : buffer_) ids.push_back(r.id);
  for (const auto& [key, _] : running_) ids.push_back(key.first);
  for (const auto& key : committing_) ids.push_back(key.first);
  return ids;
}

void QueueRunner::WorkerLoop() {
  for (;;) {
    std::shared_ptr<ContextData> data;
    std::int64_t lease_seq = 0;
    {
      MutexLock lock(mu_);
      while (!(stopping_ || !buffer_.empty() || workers_alive_ > concurrency_)) {
        work_cv_.Wait(mu_);
      }
      if (stopping_) return;  // the buffer was handed back by BeginDrain
      if (workers_alive_ > concurrency_) {
        // Scaled down: this worker is surplus (and idle: its step, if any, is done).
        --workers_alive_;
        exited_.push_back(std::this_thread::get_id());
        return;
      }
      ClaimedRow row = std::move(buffer_.front());
      buffer_.pop_front();
      lease_seq = row.lease_seq;
      data = std::make_shared<ContextData>(std::move(row));
      running_[{data->row.id, lease_seq}] = Running{data};
    }
    GD_CRASH_POINT("after_claim");
    RunClaim(data, lease_seq);
    {
      MutexLock lock(mu_);
      running_.erase({data->row.id, lease_seq});
      slot_freed_ = true;
      if (running_.empty()) idle_cv_.NotifyAll();
    }
    feeder_cv_.NotifyOne();
  }
}

bool QueueRunner::MayInline(const Outcome& out) const {
  // (a paused queue starts no step it did not claim before the pause)
  return out.kind() == OutcomeKind::kNext && !out.rate_limit() && !out.partition_key() &&
         !out.after() && !out.at() && !paused_.load(std::memory_order_relaxed) &&
         out.inline_next().value_or(core_->options.inline_next);
}

OutcomeRow QueueRunner::Encode(const MachineDef& def, const ClaimedRow& data, const Outcome& out,
                               bool keep) const {
  if (out.rate_limit() && !core_->options.rate_limits.count(out.rate_limit()->name)) {
    core_->Emit("rate_limit.unknown", [&](TelemetryEvent& e) {
      e.measurements["count"] = 1;
      e.metadata["id"] = data.id;
      e.metadata["fsm"] = data.fsm;
      e.metadata["limit"] = out.rate_limit()->name;
    });
  }
  return EncodeOutcome(def, data, out, keep, core_->options,
                       [this](const std::string& name, std::optional<int> version) {
                         return core_->FindMachineVersion(name, version);
                       });
}

namespace {

void NoteStale(CommitResult res, std::int64_t id, const std::string& step) {
  if (res == CommitResult::kStale) {
    spdlog::info("instance {}: outcome of step {} dropped (lease lost)", id, step);
  }
}

}  // namespace

void QueueRunner::RunClaim(std::shared_ptr<ContextData> data, std::int64_t lease_seq) {
  auto def = core_->FindMachine(data->row.fsm, data->row.fsm_version);
  int inline_steps = 0;
  for (;;) {
    const auto t0 = Clock::now();
    Outcome out = Stop("unreachable");
    if (!def) {
      out = Stop(fmt::format("machine '{}' version {} is not registered on node {}", data->row.fsm,
                             data->row.fsm_version, core_->node_id));
    } else if (!data->row.state_error.empty()) {
      out = Stop(data->row.state_error);
    } else {
      try {
        out = def->run(data.get());
      } catch (const std::exception& e) {
        out = Stop(std::string("step runner failed: ") + e.what());
      } catch (...) {
        out = Stop("step runner failed");
      }
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    core_->report->counters.steps.fetch_add(1, std::memory_order_relaxed);
    core_->Emit("step.stop", [&](TelemetryEvent& e) {
      e.measurements["duration"] = seconds;
      e.metadata["id"] = data->row.id;
      e.metadata["fsm"] = data->row.fsm;
      e.metadata["step"] = data->row.step;
      e.metadata["attempt"] = data->row.attempt;
      e.metadata["kind"] = OutcomeKindName(out.kind());
    });
    GD_CRASH_POINT("mid_step");  // the step has returned; nothing of its outcome has left

    bool keep = false;
    if (def && MayInline(out) && !data->cancelled.load()) {
      MutexLock lock(mu_);
      keep = !stopping_ && inline_steps < core_->options.max_inline_steps;
    }
    OutcomeRow row;
    row.id = data->row.id;
    row.lease_seq = lease_seq;
    try {
      if (def) {
        row = Encode(*def, data->row, out, keep);
      } else {
        FailOutcome(row, data->row.attempt, out.reason());
      }
    } catch (const std::exception& e) {
      FailOutcome(row, data->row.attempt, std::string("outcome could not be encoded: ") + e.what());
    }
    row.ran_step = data->row.step;
    row.ran_attempt = data->row.attempt;
    row.claim_step = inline_steps;
    row.duration_ms = seconds * 1000.0;
    if (!row.keep) {
      // Nothing of this instance runs before the commit: let the worker move on.
      {
        MutexLock lock(mu_);
        committing_.insert({row.id, row.lease_seq});
      }
      std::weak_ptr<QueueRunner> self = weak_from_this();
      const std::string step = data->row.step;
      const bool partitioned = data->row.partition_key.has_value();
      flusher_->Submit(row, [self, row, step, partitioned](CommitResult res) {
        NoteStale(res, row.id, step);
        if (auto runner = self.lock()) runner->Committed(row, res, partitioned);
      });
      return;
    }
    const CommitResult res = flusher_->Commit(row);
    NoteStale(res, data->row.id, data->row.step);
    if (res != CommitResult::kCommitted) return;
    // Run ahead on the same claim: the commit above made the transition durable.
    data->row.step = *row.step;
    data->row.attempt = 0;
    data->row.state = out.state();
    data->row.signals.clear();  // consumed by this commit; later ones wake a later await
    ++inline_steps;
  }
}

void QueueRunner::Committed(const OutcomeRow& row, CommitResult result, bool partitioned) {
  {
    MutexLock lock(mu_);
    committing_.erase({row.id, row.lease_seq});
    slot_freed_ = true;
  }
  feeder_cv_.NotifyOne();
  if (result == CommitResult::kCancelled && partitioned) Poke();  // its key's slot is free
  if (result != CommitResult::kCommitted) return;
  if (partitioned || row.status == StatusName(Status::kAwaitingChildren) ||
      row.status == StatusName(Status::kAwaitingSignal)) {
    // A partition slot was freed (the key's next row may start now), or a join with nothing
    // to wait for / a signal already there made the row runnable at once.
    Poke();
  }
  if (row.status == StatusName(Status::kRunnable)) {
    Millis delay{row.delay_ms.value_or(0)};
    if (row.run_at_ms) {
      // A timer at a wall-clock time: its due time on this node's steady clock.
      delay = std::max(Millis{0}, Millis{*row.run_at_ms} -
                                      std::chrono::duration_cast<Millis>(
                                          std::chrono::system_clock::now().time_since_epoch()));
    }
    if (delay == Millis{0}) {
      Poke();
    } else {
      NoteDue(Clock::now() + delay);
    }
  }
}

std::int64_t QueueRunner::BeginDrain() {
  std::vector<ClaimRef> claims;
  {
    MutexLock lock(mu_);
    stopping_ = true;
    claims = TakeBufferLocked();
  }
  work_cv_.NotifyAll();
  feeder_cv_.NotifyAll();
  return Release(claims);
}

int QueueRunner::WaitIdle(std::chrono::steady_clock::time_point deadline) {
  MutexLock lock(mu_);
  while (!running_.empty()) {
    if (!idle_cv_.WaitUntil(mu_, deadline)) break;
  }
  return static_cast<int>(running_.size());
}

void QueueRunner::Finish() {
  if (feeder_.joinable()) feeder_.join();
  bool busy = false;
  {
    MutexLock lock(mu_);
    busy = !running_.empty();
    for (auto& [id, r] : running_) r.data->cancelled.store(true);
  }
  for (auto& w : workers_) {
    if (!w.joinable()) continue;
    // A worker still inside a step cannot be interrupted: let it finish on its own. It holds
    // this runner alive; its outcome will be refused by the stopped flusher.
    if (busy) {
      w.detach();
    } else {
      w.join();
    }
  }
}

}  // namespace gen_durable::detail
