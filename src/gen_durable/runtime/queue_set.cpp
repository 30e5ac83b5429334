// The queue set: see queue_set.hpp.
#include "gen_durable/runtime/queue_set.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

namespace gen_durable::detail {

QueueSet::QueueSet(std::shared_ptr<EngineCore> core, const NodePublisher& node)
    : core_(std::move(core)), node_(node) {}

void QueueSet::Configure(std::map<std::string, QueueConfig> queues) {
  MutexLock lock(mu_);
  configs_ = queues;
  declared_ = std::move(queues);
}

void QueueSet::SetConfigured(const std::string& queue, int concurrency) {
  MutexLock lock(mu_);
  configs_[queue] = QueueConfig{concurrency};
}

std::map<std::string, int> QueueSet::Concurrencies() const {
  MutexLock lock(mu_);
  std::map<std::string, int> out;
  for (const auto& [q, cfg] : configs_) out[q] = cfg.concurrency;
  return out;
}

std::map<std::string, QueueConfig> QueueSet::Declared() const {
  MutexLock lock(mu_);
  return declared_;
}

std::vector<std::pair<std::string, QueueConfig>> QueueSet::Autoscaled() const {
  MutexLock lock(mu_);
  std::vector<std::pair<std::string, QueueConfig>> out;
  for (const auto& [q, cfg] : configs_) {
    if (cfg.autoscaled() && runners_.count(q)) out.emplace_back(q, cfg);
  }
  return out;
}

bool QueueSet::IsAutoscaled(const std::string& queue) const {
  MutexLock lock(mu_);
  auto it = configs_.find(queue);
  return it != configs_.end() && it->second.autoscaled();
}

void QueueSet::StartRunners(std::shared_ptr<Flusher> flusher) {
  MutexLock lock(mu_);
  flusher_ = std::move(flusher);
  for (const auto& [q, cfg] : configs_) StartRunnerLocked(q, cfg.concurrency);
}

void QueueSet::StartRunnerLocked(const std::string& queue, int concurrency) {
  auto runner = std::make_shared<QueueRunner>(core_, flusher_, queue, concurrency);
  runners_[queue] = runner;
  runner->Start();
}

std::vector<std::shared_ptr<QueueRunner>> QueueSet::All() const {
  MutexLock lock(mu_);
  std::vector<std::shared_ptr<QueueRunner>> out;
  for (const auto& [_, r] : runners_) out.push_back(r);
  for (const auto& r : retiring_) out.push_back(r);
  return out;
}

std::shared_ptr<QueueRunner> QueueSet::Runner(const std::string& queue) const {
  MutexLock lock(mu_);
  auto it = runners_.find(queue);
  return it == runners_.end() ? nullptr : it->second;
}

void QueueSet::Clear() {
  MutexLock lock(mu_);
  runners_.clear();
  retiring_.clear();
  flusher_.reset();
}

void QueueSet::Scale(const std::string& queue, int concurrency, const char* reason, bool fixed) {
  if (concurrency < 0 || concurrency > kMaxConcurrency) {
    throw InvalidArgument(
        fmt::format("scale: concurrency must be in 0..{} (got {})", kMaxConcurrency, concurrency));
  }
  std::shared_ptr<QueueRunner> runner;
  {
    MutexLock lock(mu_);
    auto it = runners_.find(queue);
    if (it == runners_.end()) {
      throw InvalidArgument(fmt::format("scale: this node does not run queue '{}'", queue));
    }
    runner = it->second;
    if (fixed) configs_[queue] = QueueConfig{concurrency};
  }
  const int before = runner->Scale(concurrency);
  if (before != concurrency) {
    core_->Emit("queue.scaled", [&](TelemetryEvent& e) {
      e.measurements["count"] = 1;  // what gen_durable_queue_scaled_total adds up
      e.measurements["from"] = before;
      e.measurements["to"] = concurrency;
      e.metadata["queue"] = queue;
      e.metadata["reason"] = reason;
    });
    spdlog::info("queue {}: concurrency {} -> {} ({})", queue, before, concurrency, reason);
  }
  node_.Publish(LocalQueues());
}

void QueueSet::Reconfigure(std::map<std::string, QueueConfig> queues) {
  std::vector<std::pair<std::string, int>> rescale;
  {
    MutexLock lock(mu_);
    for (auto it = runners_.begin(); it != runners_.end();) {
      if (queues.count(it->first)) {
        ++it;
        continue;
      }
      // Not named any more: claim nothing, hand back the buffer, let running steps finish.
      const auto released = it->second->BeginDrain();
      core_->report->counters.released.fetch_add(released);
      retiring_.push_back(it->second);
      it = runners_.erase(it);
    }
    for (const auto& [q, cfg] : queues) {
      auto it = runners_.find(q);
      if (it == runners_.end()) {
        StartRunnerLocked(q, cfg.concurrency);
        continue;
      }
      const int now = it->second->State().concurrency;
      const int want =
          cfg.autoscaled() ? std::clamp(now, cfg.concurrency, cfg.max) : cfg.concurrency;
      if (want != now) rescale.emplace_back(q, want);
    }
    configs_ = queues;
    // A newer configuration: a request applied under the old one is not applied again.
    declared_ = std::move(queues);
  }
  for (const auto& [q, n] : rescale) Scale(q, n, "reconfigure", false);
  node_.Publish(LocalQueues());
}

std::map<std::string, LocalQueueState> QueueSet::LocalQueues() const {
  MutexLock lock(mu_);
  std::map<std::string, LocalQueueState> out;
  for (const auto& r : retiring_) out[r->queue()] = r->State();
  for (const auto& [q, r] : runners_) {
    auto state = r->State();
    if (auto it = configs_.find(q); it != configs_.end() && it->second.autoscaled()) {
      state.min = it->second.concurrency;
      state.max = it->second.max;
    }
    out[q] = state;
  }
  return out;
}

void QueueSet::SyncPaused(const std::set<std::string>& paused) {
  for (const auto& r : All()) {
    const bool want = paused.count(r->queue()) > 0;
    if (r->paused() != want) r->SetPaused(want);
  }
}

std::vector<std::int64_t> QueueSet::HeldIds() const {
  std::vector<std::int64_t> ids;
  for (const auto& r : All()) {
    auto held = r->HeldIds();
    ids.insert(ids.end(), held.begin(), held.end());
  }
  return ids;
}

void QueueSet::Cancel(std::int64_t id) const {
  for (const auto& r : All()) {
    if (r->Cancel(id)) return;
  }
}

void QueueSet::Poke(const std::string& queue) const {
  if (auto r = Runner(queue)) r->Poke();
}

void QueueSet::DrainAll() const {
  for (const auto& r : All()) core_->report->counters.released.fetch_add(r->BeginDrain());
}

}  // namespace gen_durable::detail
