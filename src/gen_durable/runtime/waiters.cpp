// The waiter registry of a client (see waiters.hpp): the listening thread and the wake-ups.
#include "gen_durable/runtime/waiters.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <utility>
#include <vector>

#include "gen_durable/options.hpp"
#include "gen_durable/pg/pool.hpp"

namespace gen_durable::detail {

WaitRegistry::WaitRegistry(std::string channel, Connect connect)
    : channel_(std::move(channel)), connect_(std::move(connect)) {
  // Without the pipe the thread still stops, within one wait (250 ms).
  if (pipe2(stop_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) stop_pipe_[0] = stop_pipe_[1] = -1;
}

WaitRegistry::~WaitRegistry() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
    WakeAll();
  }
  state_cv_.NotifyAll();
  if (stop_pipe_[1] >= 0) {
    const char byte = 0;
    [[maybe_unused]] const ssize_t n = write(stop_pipe_[1], &byte, 1);
  }
  if (thread_.joinable()) thread_.join();
  for (int fd : stop_pipe_) {
    if (fd >= 0) close(fd);
  }
}

void WaitRegistry::Listen(Clock::time_point until) {
  MutexLock lock(mu_);
  if (!started_) {
    started_ = true;
    thread_ = std::thread([this] { Run(); });
  }
  const auto ready_by = std::min(until, Clock::now() + std::chrono::seconds(5));
  while (!listening_ && !stopping_) {
    if (!state_cv_.WaitUntil(mu_, ready_by)) break;
  }
}

WaitRegistry::Ticket WaitRegistry::Register(std::int64_t id) {
  MutexLock lock(mu_);
  Entry& entry = entries_[id];
  ++entry.waiters;
  return Ticket(this, id, entry.wakes, epoch_);
}

bool WaitRegistry::listening() {
  MutexLock lock(mu_);
  return listening_;
}

void WaitRegistry::Unregister(std::int64_t id) {
  MutexLock lock(mu_);
  auto it = entries_.find(id);
  if (it != entries_.end() && --it->second.waiters == 0) entries_.erase(it);
}

void WaitRegistry::WakeAll() {
  ++epoch_;
  for (auto& [id, entry] : entries_) entry.cv.NotifyAll();
}

WaitRegistry::Ticket::~Ticket() { owner_->Unregister(id_); }

bool WaitRegistry::Ticket::WaitUntil(Clock::time_point until) {
  WaitRegistry& r = *owner_;
  MutexLock lock(r.mu_);
  Entry& entry = r.entries_[id_];  // registered: present until this ticket is destroyed
  for (;;) {
    if (entry.wakes != wakes_ || r.epoch_ != epoch_ || r.stopping_) {
      wakes_ = entry.wakes;
      epoch_ = r.epoch_;
      return true;
    }
    if (!entry.cv.WaitUntil(r.mu_, until)) {
      // (a wake-up racing the deadline still counts)
      const bool woke = entry.wakes != wakes_ || r.epoch_ != epoch_;
      wakes_ = entry.wakes;
      epoch_ = r.epoch_;
      return woke;
    }
  }
}

void WaitRegistry::Run() {
  pg::ReconnectingConnection conn(connect_);
  Millis retry{100};
  for (;;) {
    {
      MutexLock lock(mu_);
      if (stopping_) return;
    }
    try {
      if (!conn.usable()) {
        conn.Get().Listen(channel_);
        retry = Millis{100};
        MutexLock lock(mu_);
        listening_ = true;
        // Instances that ended while nobody listened were announced to no one: every waiter
        // reads its row again.
        WakeAll();
        state_cv_.NotifyAll();
      }
      // Returns at the first notification, or at once when the registry stops (the pipe).
      const std::vector<pg::Notification> got =
          conn.Get().WaitForNotifications(Millis{250}, stop_pipe_[0]);
      if (got.empty()) continue;
      MutexLock lock(mu_);
      for (const pg::Notification& n : got) {
        std::int64_t id = 0;
        const char* end = n.payload.data() + n.payload.size();
        const auto [ptr, ec] = std::from_chars(n.payload.data(), end, id);
        if (ec != std::errc() || ptr != end) continue;  // not ours: ignored
        if (auto it = entries_.find(id); it != entries_.end()) {
          ++it->second.wakes;
          it->second.cv.NotifyAll();
        }
      }
    } catch (const std::exception& e) {
      spdlog::debug("wait listener: {}", e.what());
      conn.Reset();
      MutexLock lock(mu_);
      listening_ = false;
      const auto until = std::chrono::steady_clock::now() + retry;
      while (!stopping_) {
        if (!state_cv_.WaitUntil(mu_, until)) break;
      }
      retry = std::min(retry * 2, Millis{5000});
    }
  }
}

}  // namespace gen_durable::detail
