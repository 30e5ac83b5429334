// A stoppable wait: threads sleep on it between rounds and wake at once on Stop or Poke.
#pragma once

#include <chrono>

#include "gen_durable/util/thread_annotations.hpp"

namespace gen_durable::detail {

class Wakeup {
 public:
  // Sleeps up to `d`; returns false when stopped (then the caller exits its loop).
  template <typename Duration>
  bool WaitFor(Duration d) GD_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    const auto until = std::chrono::steady_clock::now() + d;
    while (!stopped_ && !poked_) {
      if (!cv_.WaitUntil(mu_, until)) break;
    }
    poked_ = false;
    return !stopped_;
  }
  void Poke() GD_EXCLUDES(mu_) {
    {
      MutexLock lock(mu_);
      poked_ = true;
    }
    cv_.NotifyAll();
  }
  void Stop() GD_EXCLUDES(mu_) {
    {
      MutexLock lock(mu_);
      stopped_ = true;
    }
    cv_.NotifyAll();
  }
  bool stopped() GD_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return stopped_;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  bool stopped_ GD_GUARDED_BY(mu_) = false;
  bool poked_ GD_GUARDED_BY(mu_) = false;
};

}  // namespace gen_durable::detail
