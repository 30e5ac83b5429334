// Lock annotations the compiler checks, and a mutex that carries them.
//
// clang's -Wthread-safety proves, at compile time, that a member marked GD_GUARDED_BY(mu_) is
// only touched with mu_ held and that a function marked GD_REQUIRES(mu_) is only called so
// (scripts/check-thread-safety runs it over the library; CI fails on a warning). Other
// compilers see plain code: every macro expands to nothing.
//
//   class Queue {
//    public:
//     void Push(int v) GD_EXCLUDES(mu_) {
//       MutexLock lock(mu_);
//       items_.push_back(v);
//       ready_.NotifyOne();
//     }
//     int Pop() GD_EXCLUDES(mu_) {
//       MutexLock lock(mu_);
//       while (items_.empty()) ready_.Wait(mu_);
//       ...
//     }
//    private:
//     Mutex mu_;
//     CondVar ready_;
//     std::deque<int> items_ GD_GUARDED_BY(mu_);
//   };
//
// A wait's condition is written as a loop around Wait (as above), not as a predicate lambda:
// the analysis does not know that a lambda runs with the lock held.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define GD_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define GD_THREAD_ANNOTATION(x)
#endif

#define GD_CAPABILITY(x) GD_THREAD_ANNOTATION(capability(x))
#define GD_SCOPED_CAPABILITY GD_THREAD_ANNOTATION(scoped_lockable)
#define GD_GUARDED_BY(x) GD_THREAD_ANNOTATION(guarded_by(x))
#define GD_PT_GUARDED_BY(x) GD_THREAD_ANNOTATION(pt_guarded_by(x))
#define GD_ACQUIRED_BEFORE(...) GD_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define GD_ACQUIRED_AFTER(...) GD_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define GD_REQUIRES(...) GD_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define GD_ACQUIRE(...) GD_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define GD_RELEASE(...) GD_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define GD_EXCLUDES(...) GD_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define GD_RETURN_CAPABILITY(x) GD_THREAD_ANNOTATION(lock_returned(x))
// For the rare function the analysis cannot follow; say why beside it.
#define GD_NO_THREAD_SAFETY_ANALYSIS GD_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace gen_durable::detail {

// A std::mutex the analysis knows as a capability.
class GD_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() GD_ACQUIRE() { mu_.lock(); }
  void Unlock() GD_RELEASE() { mu_.unlock(); }

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds a Mutex for its scope.
class GD_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) GD_ACQUIRE(mu) : mu_(mu) { mu_.Lock(); }
  ~MutexLock() GD_RELEASE() { mu_.Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

// A condition variable waited on with a Mutex held (which it releases while it waits).
class CondVar {
 public:
  void Wait(Mutex& mu) GD_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu.mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  // Returns false when `deadline` passed (the caller rechecks its condition either way).
  template <typename Clock, typename Duration>
  bool WaitUntil(Mutex& mu, const std::chrono::time_point<Clock, Duration>& deadline)
      GD_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu.mu_, std::adopt_lock);
    const bool woke = cv_.wait_until(lock, deadline) == std::cv_status::no_timeout;
    lock.release();
    return woke;
  }
  template <typename Rep, typename Period>
  bool WaitFor(Mutex& mu, const std::chrono::duration<Rep, Period>& timeout) GD_REQUIRES(mu) {
    return WaitUntil(mu, std::chrono::steady_clock::now() + timeout);
  }
  void NotifyOne() { cv_.notify_one(); }
  void NotifyAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace gen_durable::detail
