// Per-queue feeder and worker pool: claim in batches, run steps, commit, run ahead inline.
#include "gen_durable/runtime/queue_runner.hpp"

#include "gen_durable/model/resolve.hpp"
#include "gen_durable/util/crash_point.hpp"
#include "gen_durable/model/validate.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <limits>

namespace gen_durable::detail {

namespace {

using Clock = std::chrono::steady_clock;

std::string Encode(const Json& j) {
  // Invalid UTF-8 in user strings is replaced rather than failing the whole outcome.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

QueueRunner::QueueRunner(std::shared_ptr<EngineCore> core, std::shared_ptr<Flusher> flusher,
                         std::string queue, int concurrency)
    : core_(std::move(core)),
      flusher_(std::move(flusher)),
      rate_limiter_(core_),
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
  std::lock_guard lock(mu_);
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
    std::lock_guard lock(mu_);
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
  work_cv_.notify_all();  // surplus idle workers end
  feeder_cv_.notify_one();  // the demand changed
  return before;
}

void QueueRunner::SetPaused(bool paused) {
  std::lock_guard pausing(pause_mu_);
  if (!paused) {
    paused_.store(false);
    Poke();
    return;
  }
  std::vector<ClaimRef> claims;
  {
    std::lock_guard lock(mu_);
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
    std::lock_guard lock(mu_);
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
  std::lock_guard lock(mu_);
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
    std::lock_guard lock(mu_);
    poked_ = true;
    maybe_more_ = true;
  }
  feeder_cv_.notify_one();
}

void QueueRunner::NoteDue(Clock::time_point when) {
  {
    std::lock_guard lock(mu_);
    if (when >= due_at_) return;
    due_at_ = when;
  }
  feeder_cv_.notify_one();
}

std::vector<std::int64_t> QueueRunner::HeldIds() {
  std::lock_guard lock(mu_);
  std::vector<std::int64_t> ids;
  ids.reserve(buffer_.size() + running_.size());
  for (const auto& r : buffer_) ids.push_back(r.id);
  for (const auto& [key, _] : running_) ids.push_back(key.first);
  for (const auto& key : committing_) ids.push_back(key.first);
  return ids;
}

int QueueRunner::DemandLocked() const {
  if (concurrency_ == 0) return 0;
  // Outcomes on their way to the database occupy no worker, so they do not count against the
  // slots (claiming while the previous batch commits keeps the workers busy); past a bound,
  // a slow database holds the claims back instead of letting them pile up.
  const int window = concurrency_ + core_->options.prefetch;
  if (static_cast<int>(committing_.size()) >= kCommitWindows * window) return 0;
  const int held = static_cast<int>(running_.size() + buffer_.size());
  return std::max(0, window - held);
}

void QueueRunner::FeederLoop() {
  const auto& opts = core_->options;
  std::unique_ptr<pg::Connection> conn;
  Millis interval = opts.poll_interval;
  Millis retry = Millis{100};
  // Scheduled rows are promoted to runnable by the pickers, at most this often (and whenever a
  // locally known due time passes), in the same round trip as the claim.
  const Millis promote_every = std::min(opts.poll_interval, Millis{250});
  auto next_promote = Clock::now();
  int contended = 0;
  for (;;) {
    int demand = 0;
    int least = opts.min_demand;
    bool promote = false;
    std::uint64_t pauses = 0;
    {
      std::lock_guard lock(mu_);
      if (stopping_) break;
      demand = DemandLocked();
      pauses = pauses_;
      // A queue scaled below min_demand (Scale, a control message) could never free that many
      // slots: then it claims once all of them are free, so any queue with a slot claims.
      least = std::min(opts.min_demand, concurrency_ + opts.prefetch);
      if (poked_) interval = opts.poll_interval;
      poked_ = false;
      slot_freed_ = false;
      const auto now = Clock::now();
      if (now >= next_promote || now >= due_at_) {
        promote = true;
        next_promote = now + promote_every;
        if (now >= due_at_) due_at_ = Clock::time_point::max();
      }
    }
    bool full = false;
    if (demand > 0 && demand >= least) {
      std::vector<ClaimedRow> rows;
      int claimed = 0;
      try {
        if (!conn || conn->broken()) conn = core_->Connect("feeder:" + queue_);
        ClaimBatch batch =
            core_->store.Claim(*conn, queue_, demand, core_->node_id, opts.lease_ttl,
                               core_->machine_keys, promote, core_->claims_issued.fetch_add(1) + 1);
        rows = std::move(batch.rows);
        retry = Millis{100};
        claimed = static_cast<int>(rows.size());
        if (batch.contended.empty()) {
          contended = 0;
        } else {
          // Another node holds these rows' keys right now; the rest of the batch is ours.
          ReportContended(batch.contended);
          ++contended;
        }
        const bool limited = std::any_of(rows.begin(), rows.end(), [&](const ClaimedRow& r) {
          return r.rate_limit && !rate_limiter_.StartsOnItsReservation(r);
        });
        if (limited) {
          const std::vector<ClaimRef> held = Claims(rows);
          try {
            rows = rate_limiter_.Admit(*conn, std::move(rows));
          } catch (...) {
            // Nothing was admitted; hand the claims back rather than leave them to the reaper.
            Release(held);
            throw;
          }
        }
      } catch (const std::exception& e) {
        // Never let a failure end the feeder: a lost connection, or anything unexpected.
        spdlog::warn("queue {}: claim failed ({}); retrying in {} ms", queue_, e.what(),
                     retry.count());
        next_promote = Clock::now();
        if (conn && conn->broken()) conn.reset();
        std::unique_lock lock(mu_);
        feeder_cv_.wait_for(lock, retry, [&] { return stopping_; });
        retry = std::min(retry * 2, std::max(opts.max_poll_interval, Millis{5000}));
        continue;
      }
      const int count = static_cast<int>(rows.size());
      // Fullness and idleness follow what the claim found, not what admission let through:
      // a backlog of throttled rows is work to page past, never a reason to back off. Rows left
      // to a contending claim took places in the batch that other rows may fill: pick again at
      // once, a few times, then wait for the poll (or a poke) rather than spin on a busy key.
      full = claimed == demand || (contended > 0 && contended < 3);
      interval =
          claimed == 0 ? std::min(interval * 2, opts.max_poll_interval) : opts.poll_interval;
      core_->counters.claimed.fetch_add(count, std::memory_order_relaxed);
      core_->Emit("pick.stop", [&](TelemetryEvent& e) {
        e.measurements["count"] = count;
        e.measurements["demand"] = demand;
        e.metadata["queue"] = queue_;
        e.metadata["worker"] = core_->node_id;
      });
      std::vector<ClaimedRow> late;
      {
        std::lock_guard lock(mu_);
        // A pause that arrived while this claim was in flight: its rows go back unstarted.
        if (stopping_ || pauses_ != pauses) {
          late = std::move(rows);
        } else {
          for (auto& r : rows) buffer_.push_back(std::move(r));
          maybe_more_ = full;
        }
      }
      // One wake-up per row (at most one per worker): waking every idle worker for a small
      // batch would send most of them back to sleep, hundreds at a time on a wide queue.
      for (int i = 0; i < std::min(count, demand); ++i) work_cv_.notify_one();
      if (!late.empty()) Release(Claims(late));  // claimed after the drain or a pause began
    }
    core_->Emit("scheduler.saturation", [&](TelemetryEvent& e) {
      std::lock_guard lock(mu_);
      e.measurements["in_flight"] = static_cast<double>(running_.size());
      e.measurements["buffer"] = static_cast<double>(buffer_.size());
      e.measurements["concurrency"] = concurrency_;
      e.measurements["prefetch"] = opts.prefetch;
      e.metadata["queue"] = queue_;
    });
    if (full) continue;  // the queue may hold more: ask again for whatever demand is left
    std::unique_lock lock(mu_);
    const auto until = std::min(Clock::now() + interval, due_at_);
    feeder_cv_.wait_until(lock, until, [&] {
      return stopping_ || poked_ || (slot_freed_ && maybe_more_) || Clock::now() >= due_at_;
    });
  }
}

void QueueRunner::ReportContended(const std::vector<ContendedRow>& rows) {
  for (const auto& row : rows) {
    spdlog::debug("queue {}: instance {} skipped, partition {} is being claimed elsewhere",
                  queue_, row.id, row.partition_key);
    core_->Emit("partition.contended", [&](TelemetryEvent& ev) {
      ev.measurements["count"] = 1;
      ev.metadata["id"] = row.id;
      ev.metadata["fsm"] = row.fsm;
      ev.metadata["partition_key"] = row.partition_key;
      ev.metadata["queue"] = queue_;
    });
  }
}

std::vector<ClaimRef> QueueRunner::TakeBufferLocked() {
  std::vector<ClaimRef> claims;
  claims.reserve(buffer_.size());
  for (const auto& r : buffer_) claims.push_back({r.id, r.lease_seq});
  buffer_.clear();
  return claims;
}

std::vector<ClaimRef> QueueRunner::Claims(const std::vector<ClaimedRow>& rows) {
  std::vector<ClaimRef> claims;
  claims.reserve(rows.size());
  for (const auto& r : rows) claims.push_back({r.id, r.lease_seq});
  return claims;
}

std::int64_t QueueRunner::Release(const std::vector<ClaimRef>& claims) {
  if (claims.empty()) return 0;
  try {
    auto conn = core_->Connect("release:" + queue_);
    const auto n = core_->store.ReleaseClaims(*conn, core_->node_id, claims);
    core_->counters.released.fetch_add(n, std::memory_order_relaxed);
    return n;
  } catch (const Error& e) {
    spdlog::warn("queue {}: could not release {} claims ({}); the reaper will", queue_,
                 claims.size(), e.what());
    return 0;
  }
}

void QueueRunner::WorkerLoop() {
  for (;;) {
    std::shared_ptr<ContextData> data;
    std::int64_t lease_seq = 0;
    {
      std::unique_lock lock(mu_);
      work_cv_.wait(lock, [&] {
        return stopping_ || !buffer_.empty() || workers_alive_ > concurrency_;
      });
      if (stopping_) return;  // the buffer was handed back by BeginDrain
      if (workers_alive_ > concurrency_) {
        // Scaled down: this worker is surplus (and idle: its step, if any, is done).
        --workers_alive_;
        exited_.push_back(std::this_thread::get_id());
        return;
      }
      ClaimedRow row = std::move(buffer_.front());
      buffer_.pop_front();
      data = std::make_shared<ContextData>();
      data->id = row.id;
      data->fsm = std::move(row.fsm);
      data->fsm_version = row.fsm_version;
      data->step = std::move(row.step);
      data->attempt = row.attempt;
      data->max_attempts = row.max_attempts;
      data->queue = std::move(row.queue);
      data->priority = row.priority;
      data->state = std::move(row.state);
      data->load_error = std::move(row.state_error);
      data->partition_key = std::move(row.partition_key);
      data->unique_key = std::move(row.unique_key);
      data->signals = std::move(row.signals);
      data->children = std::move(row.children);
      lease_seq = row.lease_seq;
      running_[{data->id, lease_seq}] = Running{data};
    }
    GD_CRASH_POINT("after_claim");
    RunClaim(data, lease_seq);
    {
      std::lock_guard lock(mu_);
      running_.erase({data->id, lease_seq});
      slot_freed_ = true;
      if (running_.empty()) idle_cv_.notify_all();
    }
    feeder_cv_.notify_one();
  }
}

namespace {

bool HasStep(const MachineDef& def, const std::string& step) {
  return std::find(def.steps.begin(), def.steps.end(), step) != def.steps.end();
}

// Turns `row` into a failed outcome with `error`, dropping everything else it carried.
OutcomeRow& Fail(OutcomeRow& row, int attempt, std::string error) {
  const auto id = row.id;
  const auto seq = row.lease_seq;
  row = OutcomeRow{};
  row.id = id;
  row.lease_seq = seq;
  row.status = "failed";
  row.attempt = attempt;
  row.clear_inbox = true;
  row.last_error = std::move(error);
  return row;
}

std::vector<std::int64_t> SignalIds(const ContextData& data) {
  std::vector<std::int64_t> ids;
  for (const auto& s : data.signals) ids.push_back(s.id);
  return ids;
}

}  // namespace

bool QueueRunner::MayInline(const Outcome& out) const {
  // (a paused queue starts no step it did not claim before the pause)
  return out.kind() == OutcomeKind::kNext && !out.rate_limit() && !out.partition_key() &&
         !paused_.load(std::memory_order_relaxed) &&
         out.inline_next().value_or(core_->options.inline_next);
}

OutcomeRow QueueRunner::Encode(const MachineDef& def, const ContextData& data,
                               std::int64_t lease_seq, const Outcome& out, bool keep) const {
  if (out.rate_limit() && !core_->options.rate_limits.count(out.rate_limit()->name)) {
    core_->Emit("rate_limit.unknown", [&](TelemetryEvent& e) {
      e.measurements["count"] = 1;
      e.metadata["id"] = data.id;
      e.metadata["fsm"] = data.fsm;
      e.metadata["limit"] = out.rate_limit()->name;
    });
  }
  return EncodeOutcome(def, data, lease_seq, out, keep, core_->options,
                       [this](const std::string& name, std::optional<int> version) {
                         return core_->FindMachineVersion(name, version);
                       });
}

OutcomeRow EncodeOutcome(const MachineDef& def, const ContextData& data, std::int64_t lease_seq,
                         const Outcome& out, bool keep, const EngineOptions& options,
                         const MachineLookup& find) {
  OutcomeRow row;
  row.id = data.id;
  row.lease_seq = lease_seq;
  if (!out.reason().empty() && out.kind() != OutcomeKind::kStop) row.last_error = out.reason();
  if (out.rate_limit()) {
    const auto& rl = *out.rate_limit();
    if (!options.rate_limits.count(rl.name)) {
      // The next step does not run under a limit nobody defined: fail (reported by the caller).
      return Fail(row, data.attempt,
                  fmt::format("step '{}' named rate limit '{}', which this engine does not "
                              "define (EngineOptions::rate_limits)",
                              data.step, rl.name));
    }
    if (rl.weight < 1) return Fail(row, data.attempt, "rate limit weight must be >= 1");
    row.rate_limit = rl;
  }
  if (out.partition_key()) {
    if (*out.partition_key() && (*out.partition_key())->empty()) {
      return Fail(row, data.attempt, "partition key must not be empty (use ReleasePartition)");
    }
    row.partition = *out.partition_key();
  }
  switch (out.kind()) {
    case OutcomeKind::kNext:
      if (!HasStep(def, out.step())) {
        return Fail(row, data.attempt,
                    fmt::format("step '{}' returned next('{}'), which is not a step of machine "
                                "'{}' version {}",
                                data.step, out.step(), def.name, def.version));
      }
      row.status = keep ? "executing" : "runnable";
      row.step = out.step();
      row.state = gen_durable::detail::Encode(out.state());
      row.attempt = 0;
      row.keep = keep;
      row.consume = SignalIds(data);
      break;
    case OutcomeKind::kReplay:
      if (data.max_attempts > 0 && data.attempt + 1 >= data.max_attempts) {
        // The crash-loop guard covers replays too: a handler that replays forever stops here.
        return Fail(row, data.attempt,
                    fmt::format("{}{}max attempts ({}) reached in step '{}'{}", out.reason(),
                                out.reason().empty() ? "" : " (", data.max_attempts, data.step,
                                out.reason().empty() ? "" : ")"));
      }
      row.status = "runnable";
      row.state = gen_durable::detail::Encode(out.state());
      row.attempt = data.attempt + 1;
      row.delay_ms = out.delay().count();
      row.keep_awaiting = true;
      break;
    case OutcomeKind::kAwait: {
      const auto& opts = out.await_options();
      if (out.await_names().empty()) {
        return Fail(row, data.attempt, fmt::format("step '{}' awaited no signal name", data.step));
      }
      for (const auto& n : out.await_names()) {
        // A name no signal can carry would park the instance for good.
        auto problem = NameProblem("await: signal name", n, kMaxNameBytes);
        if (!problem.empty()) return Fail(row, data.attempt, std::move(problem));
      }
      if (opts.next_step && !HasStep(def, *opts.next_step)) {
        return Fail(row, data.attempt,
                    fmt::format("await next_step '{}' is not a step of machine '{}'",
                                *opts.next_step, def.name));
      }
      row.status = "awaiting_signal";
      row.state = gen_durable::detail::Encode(out.state());
      row.attempt = data.attempt;
      row.awaiting = out.await_names();
      row.await_next_step = opts.next_step;
      row.shown = SignalIds(data);
      if (opts.timeout) row.park_ms = std::max<std::int64_t>(0, opts.timeout->count());
      break;
    }
    case OutcomeKind::kScheduleChildren: {
      const auto& opts = out.join_options();
      if (!HasStep(def, out.step())) {
        return Fail(row, data.attempt,
                    fmt::format("schedule_children next step '{}' is not a step of machine '{}'",
                                out.step(), def.name));
      }
      if (opts.wait_for && *opts.wait_for < 1) {
        return Fail(row, data.attempt, "schedule_children: wait_for must be >= 1");
      }
      try {
        for (const auto& child : out.children()) {
          row.children.push_back(ResolveRegistered(child, options.max_payload_bytes, find));
        }
      } catch (const std::exception& e) {
        return Fail(row, data.attempt,
                    fmt::format("step '{}' scheduled an invalid child: {}", data.step, e.what()));
      }
      // The children are inserted by one statement, which takes at most this much.
      std::size_t bytes = 0;
      for (const auto& child : row.children) bytes += child.state.size();
      if (bytes > kMaxStatementJsonBytes) {
        return Fail(row, data.attempt,
                    fmt::format("step '{}' called schedule_children with {} children carrying "
                                "{} bytes of state, over the {} bytes one join can insert; "
                                "schedule fewer or smaller children (or nest the joins)",
                                data.step, row.children.size(), bytes, kMaxStatementJsonBytes));
      }
      row.status = "awaiting_children";
      row.state = gen_durable::detail::Encode(out.state());
      row.attempt = data.attempt;
      row.join_next_step = out.step();
      row.wait_for = opts.wait_for;
      row.consume = SignalIds(data);
      if (opts.deadline) row.park_ms = std::max<std::int64_t>(0, opts.deadline->count());
      break;
    }
    case OutcomeKind::kDone:
      row.status = "done";
      row.attempt = data.attempt;
      row.clear_inbox = true;
      if (!out.result().is_null()) row.result = gen_durable::detail::Encode(out.result());
      break;
    case OutcomeKind::kStop:
      row.status = "failed";
      row.attempt = data.attempt;
      row.clear_inbox = true;
      row.last_error = out.reason().empty() ? std::string("stopped") : out.reason();
      break;
  }
  const std::size_t limit = options.max_payload_bytes;
  const std::size_t size = std::max(row.state ? row.state->size() : 0,
                                    row.result ? row.result->size() : 0);
  if (size > limit) {
    return Fail(row, data.attempt,
                fmt::format("step '{}' produced {} bytes of state/result, over "
                            "max_payload_bytes ({})",
                            data.step, size, limit));
  }
  return row;
}

namespace {

void NoteStale(CommitResult res, std::int64_t id, const std::string& step) {
  if (res == CommitResult::kStale) {
    spdlog::info("instance {}: outcome of step {} dropped (lease lost)", id, step);
  }
}

}  // namespace

void QueueRunner::RunClaim(std::shared_ptr<ContextData> data, std::int64_t lease_seq) {
  auto def = core_->FindMachine(data->fsm, data->fsm_version);
  int inline_steps = 0;
  for (;;) {
    const auto t0 = Clock::now();
    Outcome out = Stop("unreachable");
    if (!def) {
      out = Stop(fmt::format("machine '{}' version {} is not registered on node {}", data->fsm,
                             data->fsm_version, core_->node_id));
    } else if (!data->load_error.empty()) {
      out = Stop(data->load_error);
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
    core_->counters.steps.fetch_add(1, std::memory_order_relaxed);
    core_->Emit("step.stop", [&](TelemetryEvent& e) {
      e.measurements["duration"] = seconds;
      e.metadata["id"] = data->id;
      e.metadata["fsm"] = data->fsm;
      e.metadata["step"] = data->step;
      e.metadata["attempt"] = data->attempt;
      e.metadata["kind"] = OutcomeKindName(out.kind());
    });
    GD_CRASH_POINT("mid_step");  // the step has returned; nothing of its outcome has left

    bool keep = false;
    if (def && MayInline(out) && !data->cancelled.load()) {
      std::lock_guard lock(mu_);
      keep = !stopping_ && inline_steps < core_->options.max_inline_steps;
    }
    OutcomeRow row;
    row.id = data->id;
    row.lease_seq = lease_seq;
    try {
      if (def) {
        row = Encode(*def, *data, lease_seq, out, keep);
      } else {
        Fail(row, data->attempt, out.reason());
      }
    } catch (const std::exception& e) {
      Fail(row, data->attempt, std::string("outcome could not be encoded: ") + e.what());
    }
    row.ran_step = data->step;
    row.ran_attempt = data->attempt;
    row.claim_step = inline_steps;
    row.duration_ms = seconds * 1000.0;
    if (!row.keep) {
      // Nothing of this instance runs before the commit: let the worker move on.
      {
        std::lock_guard lock(mu_);
        committing_.insert({row.id, row.lease_seq});
      }
      std::weak_ptr<QueueRunner> self = weak_from_this();
      const std::string step = data->step;
      const bool partitioned = data->partition_key.has_value();
      flusher_->Submit(row, [self, row, step, partitioned](CommitResult res) {
        NoteStale(res, row.id, step);
        if (auto runner = self.lock()) runner->Committed(row, res, partitioned);
      });
      return;
    }
    const CommitResult res = flusher_->Commit(row);
    NoteStale(res, data->id, data->step);
    if (res != CommitResult::kCommitted) return;
    // Run ahead on the same claim: the commit above made the transition durable.
    data->step = *row.step;
    data->attempt = 0;
    data->state = out.state();
    data->signals.clear();  // consumed by this commit; later ones wake a later await
    ++inline_steps;
  }
}

void QueueRunner::Committed(const OutcomeRow& row, CommitResult result, bool partitioned) {
  {
    std::lock_guard lock(mu_);
    committing_.erase({row.id, row.lease_seq});
    slot_freed_ = true;
  }
  feeder_cv_.notify_one();
  if (result == CommitResult::kCancelled && partitioned) Poke();  // its key's slot is free
  if (result != CommitResult::kCommitted) return;
  if (partitioned || row.status == "awaiting_children" || row.status == "awaiting_signal") {
    // A partition slot was freed (the key's next row may start now), or a join with nothing
    // to wait for / a signal already there made the row runnable at once.
    Poke();
  }
  if (row.status == "runnable") {
    const auto delay = row.delay_ms.value_or(0);
    if (delay == 0) {
      Poke();
    } else {
      NoteDue(Clock::now() + Millis{delay});
    }
  }
}

std::int64_t QueueRunner::BeginDrain() {
  std::vector<ClaimRef> claims;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    claims = TakeBufferLocked();
  }
  work_cv_.notify_all();
  feeder_cv_.notify_all();
  return Release(claims);
}

int QueueRunner::WaitIdle(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  idle_cv_.wait_until(lock, deadline, [&] { return running_.empty(); });
  return static_cast<int>(running_.size());
}

void QueueRunner::Finish() {
  if (feeder_.joinable()) feeder_.join();
  bool busy = false;
  {
    std::lock_guard lock(mu_);
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
