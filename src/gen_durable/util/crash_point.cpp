// Crash points: GEN_DURABLE_CRASH_AT read once at start, and the abrupt exit.
#include "gen_durable/util/crash_point.hpp"

#ifdef GEN_DURABLE_CRASH_POINTS

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#endif

namespace gen_durable::detail {

#ifdef GEN_DURABLE_CRASH_POINTS

bool CrashPointsEnabled() { return true; }

namespace {

struct CrashArm {
  int point = 0;         // index + 1; 0: none
  std::int64_t nth = 1;  // fire on this hit of the point
};

// Parses GEN_DURABLE_CRASH_AT: `name` or `name:N` (N >= 1). A value naming no point is
// reported rather than silently ignored, which would let a misspelt test pass.
CrashArm ReadArm() {
  CrashArm arm;
  const char* env = std::getenv("GEN_DURABLE_CRASH_AT");
  if (env == nullptr || *env == '\0') return arm;
  std::string name = env;
  const auto colon = name.find(':');
  if (colon != std::string::npos) {
    const std::string count = name.substr(colon + 1);
    name.resize(colon);
    char* end = nullptr;
    const long long n = std::strtoll(count.c_str(), &end, 10);
    if (count.empty() || *end != '\0' || n < 1) {
      std::fprintf(stderr,
                   "gen_durable: GEN_DURABLE_CRASH_AT=%s: the hit after ':' must be a "
                   "number >= 1; no crash point armed\n",
                   env);
      return arm;
    }
    arm.nth = n;
  }
  for (std::size_t i = 0; i < kCrashPoints.size(); ++i) {
    if (kCrashPoints[i] == name) {
      arm.point = static_cast<int>(i) + 1;
      return arm;
    }
  }
  std::fprintf(stderr, "gen_durable: GEN_DURABLE_CRASH_AT=%s names no crash point; none armed\n",
               env);
  return arm;
}

const CrashArm kArm = ReadArm();

}  // namespace

// Initialized with kArm, before main and so before any engine thread can reach a point.
const int crash_armed_point = kArm.point;

bool CrashPointDue(int index) {
  static std::atomic<std::int64_t> hits{0};
  // Only the armed point counts (the macro checked it); `==` fires once even if several
  // threads pass at the same moment.
  return index + 1 == kArm.point && hits.fetch_add(1, std::memory_order_relaxed) + 1 == kArm.nth;
}

void CrashNow(int index) {
  // Unbuffered, async-signal-safe output: stdio buffers are deliberately left unflushed.
  char line[160];
  const std::string_view name = kCrashPoints[static_cast<std::size_t>(index)];
  const int len = std::snprintf(line, sizeof(line),
                                "gen_durable: crash point %.*s reached (hit %lld); exiting "
                                "with status %d\n",
                                static_cast<int>(name.size()), name.data(),
                                static_cast<long long>(kArm.nth), kCrashExitCode);
  if (len > 0) {
    [[maybe_unused]] const ssize_t written =
        write(STDERR_FILENO, line,
              std::min<std::size_t>(static_cast<std::size_t>(len), sizeof(line) - 1));
  }
  _exit(kCrashExitCode);
}

#else

bool CrashPointsEnabled() { return false; }

#endif

}  // namespace gen_durable::detail
