// Crash points: named places where a test build ends the process abruptly, as a power cut or
// SIGKILL would, so that tests can prove every instance still completes after a restart.
//
// Compiled in only with the CMake option GEN_DURABLE_CRASH_POINTS (off by default, on in the
// project's own build); without it GD_CRASH_POINT compiles to nothing. With it, a point is inert
// unless the environment variable GEN_DURABLE_CRASH_AT named it when the process started:
//
//   GEN_DURABLE_CRASH_AT=after_claim     the first time any thread reaches after_claim
//   GEN_DURABLE_CRASH_AT=after_claim:3   the third time
//
// Firing writes one line to stderr naming the point, then calls _exit(kCrashExitCode): no
// destructors, no flush of buffers, no drain. A disarmed point costs one load of a constant.
//
//   GD_CRASH_POINT("after_flush_commit");  // the name must be in kCrashPoints (checked at
//                                          // compile time)
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace gen_durable::detail {

// The exit status of a process ended by a crash point.
inline constexpr int kCrashExitCode = 86;

// Every crash point, in the order an instance meets them. The test that walks them
// (tests/crash_points_pgtest.cpp) runs each one and fails for a point its workload never
// reaches, so a point added here is tested too (or the workload must grow to reach it).
inline constexpr std::array<std::string_view, 6> kCrashPoints = {
    // QueueRunner::WorkerLoop: a worker took a claimed row; the step has not started.
    "after_claim",
    // QueueRunner::RunClaim: the step returned; its outcome is not yet encoded or handed over.
    "mid_step",
    // Flusher::Flush: the batch is about to be sent; nothing of it has reached the database.
    "before_flush_commit",
    // Flusher::Flush: the batch committed; no worker has been told.
    "after_flush_commit",
    // Store::CommitOutcomes, a batch with ScheduleChildren: its statements executed in a
    // transaction left open (children inserted, not committed).
    "mid_child_insert",
    // Store::Signal: the signal committed; the caller has not learnt its id.
    "mid_signal_delivery",
};

// The index of `name` in kCrashPoints; a name not in the list does not compile.
consteval int CrashPointIndex(std::string_view name) {
  for (std::size_t i = 0; i < kCrashPoints.size(); ++i) {
    if (kCrashPoints[i] == name) return static_cast<int>(i);
  }
  throw "not a crash point: add the name to kCrashPoints";
}

// True when this build has crash points compiled in (GEN_DURABLE_CRASH_POINTS).
bool CrashPointsEnabled();

#ifdef GEN_DURABLE_CRASH_POINTS

// The point GEN_DURABLE_CRASH_AT armed, as its index + 1; 0 (also before the environment has
// been read) arms none.
extern const int crash_armed_point;

// Counts a hit of the armed point; true for the hit that must fire. Thread-safe.
bool CrashPointDue(int index);

// Writes the point's name to stderr and ends the process with kCrashExitCode.
[[noreturn]] void CrashNow(int index);

// True when the crash point `name` is armed and this hit must fire. For points that need to
// set something up first (see store.cpp); then end the process with GD_CRASH_NOW.
#define GD_CRASH_POINT_DUE(name)                                                                   \
  (::gen_durable::detail::crash_armed_point == ::gen_durable::detail::CrashPointIndex(name) + 1 && \
   ::gen_durable::detail::CrashPointDue(::gen_durable::detail::CrashPointIndex(name)))
#define GD_CRASH_NOW(name) \
  ::gen_durable::detail::CrashNow(::gen_durable::detail::CrashPointIndex(name))

#else

#define GD_CRASH_POINT_DUE(name) \
  (static_cast<void>(::gen_durable::detail::CrashPointIndex(name)), false)
#define GD_CRASH_NOW(name) static_cast<void>(::gen_durable::detail::CrashPointIndex(name))

#endif

// Ends the process here when GEN_DURABLE_CRASH_AT names `name` (and this is the hit it names).
#define GD_CRASH_POINT(name)                          \
  do {                                                \
    if (GD_CRASH_POINT_DUE(name)) GD_CRASH_NOW(name); \
  } while (false)

}  // namespace gen_durable::detail
