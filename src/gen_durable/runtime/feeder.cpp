// The feeder of a queue runner: claims batches for the queue's free slots (backing off while the
// queue is idle), admits rate-limited rows, and hands claims it cannot use back to the table.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "gen_durable/pg/pool.hpp"
#include "gen_durable/runtime/queue_runner.hpp"

namespace gen_durable::detail {

namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

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
  pg::ReconnectingConnection conn([this] { return core_->Connect("feeder:" + queue_); });
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
      MutexLock lock(mu_);
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
        pg::Connection& c = conn.Get();
        ClaimBatch batch =
            core_->store.Claim(c, queue_, demand, core_->node_id, opts.lease_ttl,
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
            rows = rate_limiter_.Admit(c, std::move(rows));
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
        conn.DropIfBroken();
        {
          MutexLock lock(mu_);
          const auto until = Clock::now() + retry;
          while (!stopping_) {
            if (!feeder_cv_.WaitUntil(mu_, until)) break;
          }
        }
        retry = std::min(retry * 2, std::max(opts.max_poll_interval, Millis{5000}));
        continue;
      }
      const int count = static_cast<int>(rows.size());
      // Fullness and idleness follow what the claim found, not what admission let through:
      // a backlog of throttled rows is work to page past, never a reason to back off. Rows left
      // to a contending claim took places in the batch that other rows may fill: pick again at
      // once, a few times, then wait for the poll (or a poke) rather than spin on a busy key.
      full = claimed == demand || (contended > 0 && contended < 3);
      interval = claimed == 0 ? std::min(interval * 2, opts.max_poll_interval) : opts.poll_interval;
      core_->report->counters.claimed.fetch_add(count, std::memory_order_relaxed);
      core_->Emit("pick.stop", [&](TelemetryEvent& e) {
        e.measurements["count"] = count;
        e.measurements["demand"] = demand;
        e.metadata["queue"] = queue_;
        e.metadata["worker"] = core_->node_id;
      });
      std::vector<ClaimedRow> late;
      {
        MutexLock lock(mu_);
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
      for (int i = 0; i < std::min(count, demand); ++i) work_cv_.NotifyOne();
      if (!late.empty()) Release(Claims(late));  // claimed after the drain or a pause began
    }
    core_->Emit("scheduler.saturation", [&](TelemetryEvent& e) {
      MutexLock lock(mu_);
      e.measurements["in_flight"] = static_cast<double>(running_.size());
      e.measurements["buffer"] = static_cast<double>(buffer_.size());
      e.measurements["concurrency"] = concurrency_;
      e.measurements["prefetch"] = opts.prefetch;
      e.metadata["queue"] = queue_;
    });
    if (full) continue;  // the queue may hold more: ask again for whatever demand is left
    MutexLock lock(mu_);
    const auto until = std::min(Clock::now() + interval, due_at_);
    while (!(stopping_ || poked_ || (slot_freed_ && maybe_more_) || Clock::now() >= due_at_)) {
      if (!feeder_cv_.WaitUntil(mu_, until)) break;
    }
  }
}

void QueueRunner::ReportContended(const std::vector<ContendedRow>& rows) {
  for (const auto& row : rows) {
    spdlog::debug("queue {}: instance {} skipped, partition {} is being claimed elsewhere", queue_,
                  row.id, row.partition_key);
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
    core_->report->counters.released.fetch_add(n, std::memory_order_relaxed);
    return n;
  } catch (const Error& e) {
    spdlog::warn("queue {}: could not release {} claims ({}); the reaper will", queue_,
                 claims.size(), e.what());
    return 0;
  }
}

}  // namespace gen_durable::detail
