// A stoppable wait: threads sleep on it between rounds and wake at once on Stop or Poke.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace gen_durable::detail {

class Wakeup {
 public:
  // Sleeps up to `d`; returns false when stopped (then the caller exits its loop).
  template <typename Duration>
  bool WaitFor(Duration d) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, d, [&] { return stopped_ || poked_; });
    poked_ = false;
    return !stopped_;
  }
  void Poke() {
    {
      std::lock_guard lock(mu_);
      poked_ = true;
    }
    cv_.notify_all();
  }
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
    }
    cv_.notify_all();
  }
  bool stopped() {
    std::lock_guard lock(mu_);
    return stopped_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;  // GUARDED_BY(mu_)
  bool poked_ = false;    // GUARDED_BY(mu_)
};

}  // namespace gen_durable::detail
