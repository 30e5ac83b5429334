// Group commit of step outcomes, with the ownership guard and reconnect on failure.
#include "gen_durable/runtime/flusher.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <unordered_set>
#include <utility>

#include "gen_durable/runtime/outcome_encoder.hpp"
#include "gen_durable/util/crash_point.hpp"

namespace gen_durable::detail {

Flusher::Flusher(ConnectionFactory connect, Store store, FlushSettings settings,
                 std::shared_ptr<Reporter> report)
    : store_(std::move(store)),
      settings_(std::move(settings)),
      report_(std::move(report)),
      conn_([connect = std::move(connect)] { return connect("flusher"); }) {}

Flusher::~Flusher() {
  if (thread_.joinable()) Stop(std::chrono::steady_clock::now());
}

void Flusher::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Flusher::Stop(std::chrono::steady_clock::time_point deadline) {
  {
    MutexLock lock(mu_);
    stopping_ = true;
    deadline_ = deadline;
  }
  cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
  // Anything that slipped in after the last flush is abandoned.
  conn_.Reset();
  MutexLock lock(mu_);
  closed_ = true;
  for (auto& p : pending_) p.done(CommitResult::kAbandoned);
  pending_.clear();
}

CommitResult Flusher::Commit(OutcomeRow row) {
  std::promise<CommitResult> result;
  auto fut = result.get_future();
  Submit(std::move(row), [&result](CommitResult r) { result.set_value(r); });
  return fut.get();
}

void Flusher::Submit(OutcomeRow row, std::function<void(CommitResult)> done) {
  {
    MutexLock lock(mu_);
    if (!closed_) {
      pending_.push_back(Pending{std::move(row), std::move(done)});
      done = nullptr;
    }
  }
  if (done) {
    done(CommitResult::kAbandoned);
    return;
  }
  cv_.NotifyOne();
}

void Flusher::Run() {
  std::vector<Pending> batch;
  for (;;) {
    {
      MutexLock lock(mu_);
      while (!stopping_ && pending_.empty()) cv_.Wait(mu_);
      if (pending_.empty() && stopping_) return;
      batch.swap(pending_);
    }
    if (!Flush(batch)) {
      for (auto& p : batch) p.done(CommitResult::kAbandoned);
    }
    batch.clear();
  }
}

bool Flusher::Flush(std::vector<Pending>& batch) {
  std::vector<OutcomeRow> rows;
  rows.reserve(batch.size());
  for (const auto& p : batch) rows.push_back(p.row);
  auto backoff = std::chrono::milliseconds(50);
  for (;;) {
    try {
      auto& conn = conn_.Get();
      GD_CRASH_POINT("before_flush_commit");
      // Values are absolute and guarded by lease_seq: re-running an in-doubt commit is safe.
      auto committed = store_.CommitOutcomes(conn, rows, settings_.node_id, settings_.lease_ttl,
                                             settings_.history);
      GD_CRASH_POINT("after_flush_commit");
      // (id, lease_seq) -> cancelled: by claim, as a batch may hold a stale outcome of a row
      // beside the outcome of its current claim
      std::map<std::pair<std::int64_t, std::int64_t>, bool> ok;
      for (const auto& c : committed) ok[{c.id, c.lease_seq}] = c.cancelled;
      report_->counters.flushes.fetch_add(1, std::memory_order_relaxed);
      for (auto& p : batch) {
        const auto it = ok.find({p.row.id, p.row.lease_seq});
        const bool was = it != ok.end();
        if (was) {
          report_->counters.committed.fetch_add(1, std::memory_order_relaxed);
        } else {
          report_->counters.stale.fetch_add(1, std::memory_order_relaxed);
          report_->Emit("outcome.stale", [&](TelemetryEvent& e) {
            e.measurements["count"] = 1;
            e.metadata["id"] = p.row.id;
            e.metadata["status"] = p.row.status;
          });
        }
        p.done(!was         ? CommitResult::kStale
               : it->second ? CommitResult::kCancelled
                            : CommitResult::kCommitted);
      }
      return true;
    } catch (const Error& e) {
      if (e.retry() == Retry::kFatal) {
        // A statement the server refuses (e.g. a value it cannot store) would fail forever:
        // commit the batch one row at a time so one bad outcome cannot hold back the others.
        spdlog::error("outcome commit refused: {}", e.what());
        if (rows.size() == 1) {
          OutcomeRow failed = rows[0];
          FailOutcome(failed, rows[0].attempt,
                      std::string("outcome could not be stored: ") + e.what());
          if (rows[0].status == failed.status && rows[0].last_error == failed.last_error) {
            return false;
          }
          rows[0] = failed;
          continue;
        }
        for (auto& p : batch) {
          CommitResult result = CommitResult::kAbandoned;
          std::vector<Pending> one;
          one.push_back(Pending{p.row, [&result](CommitResult r) { result = r; }});
          p.done(Flush(one) ? result : CommitResult::kAbandoned);
        }
        return true;
      }
      spdlog::warn("outcome commit failed ({}), retrying in {} ms", e.what(), backoff.count());
      conn_.DropIfBroken();
      {
        MutexLock lock(mu_);
        if (stopping_ && std::chrono::steady_clock::now() >= deadline_) return false;
      }
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    } catch (const std::exception& e) {
      // Not a database failure: nothing was sent. Give the rows up to the reaper rather than
      // leave their workers waiting forever.
      spdlog::error("outcome commit failed unexpectedly: {}", e.what());
      return false;
    }
  }
}

}  // namespace gen_durable::detail
