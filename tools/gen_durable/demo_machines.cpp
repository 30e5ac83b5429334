// The built-in demo machines. They retry after at most 100 ms so demos and tests run quickly.
#include "gen_durable/demo_machines.hpp"  // tools/

#include <unistd.h>

#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "gen_durable/gen_durable.hpp"

namespace gen_durable::tools {

namespace {

std::int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Identifies the process that ran a step: host and pid.
std::string WorkerName() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return std::string(host) + ":" + std::to_string(getpid());
}

Millis ShortBackoff(int attempt) { return Millis{std::min(10 * (1 << std::min(attempt, 3)), 100)}; }

struct SleepArgs {
  std::int64_t ms = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SleepArgs, ms)

struct ChainState {
  int steps = 1;
  int ran = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ChainState, steps, ran)

struct FlakyArgs {
  int fail_times = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(FlakyArgs, fail_times)

void RegisterAll() {
  // demo.noop: a job that completes at once.
  Job<Json>("demo.noop").Perform([](const Json&, JobContext&) { return JobResult::Ok(); }).Register();

  // demo.sleep {ms}: sleeps, then reports when and where it ran.
  Job<SleepArgs>("demo.sleep")
      .Backoff(ShortBackoff)
      .Perform([](const SleepArgs& a, JobContext&) {
        const auto start = NowMicros();
        if (a.ms < 0) return JobResult::Cancel("ms must be >= 0");
        std::this_thread::sleep_for(Millis{a.ms});
        return JobResult::Ok(
            {{"start_us", start}, {"end_us", NowMicros()}, {"worker", WorkerName()}});
      })
      .Register();

  // demo.chain {steps}: `steps` steps, each a `next`; result {steps: count run}.
  Machine<ChainState>("demo.chain")
      .Step("start",
            [](StepContext<ChainState>& ctx) {
              ChainState s = ctx.state();
              s.ran += 1;
              if (s.ran >= s.steps) return Done({{"steps", s.ran}});
              return Next("start", s);
            })
      .Register();

  // demo.flaky {fail_times}: throws on its first fail_times attempts; max_attempts 5.
  Job<FlakyArgs>("demo.flaky")
      .MaxAttempts(5)
      .Backoff(ShortBackoff)
      .Perform([](const FlakyArgs& a, JobContext& ctx) {
        if (ctx.attempt() < a.fail_times) {
          throw std::runtime_error("flaky failure on attempt " + std::to_string(ctx.attempt()));
        }
        return JobResult::Ok({{"attempts", ctx.attempt() + 1}});
      })
      .Register();

  // demo.crash {}: kills its own process on attempt 0 (exercises the reaper); then completes.
  Job<Json>("demo.crash")
      .MaxAttempts(5)
      .Backoff(ShortBackoff)
      .Perform([](const Json&, JobContext& ctx) {
        if (ctx.attempt() == 0) {
          std::this_thread::sleep_for(Millis{20});  // be mid-step, with the claim held
          _exit(137);
        }
        return JobResult::Ok({{"attempts", ctx.attempt() + 1}});
      })
      .Register();
}

}  // namespace

void RegisterDemoMachines() {
  static std::once_flag once;
  std::call_once(once, RegisterAll);
}

}  // namespace gen_durable::tools
