// The built-in demo machines. They retry after at most 100 ms so demos and tests run quickly.
#include "gen_durable/demo_machines.hpp"  // tools/

#include <unistd.h>

#include <chrono>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gen_durable/gen_durable.hpp"

namespace gen_durable::tools {

namespace {

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

struct FlakyArgs {
  int fail_times = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(FlakyArgs, fail_times)

// `order` and `payment` are whatever JSON the caller gave: an order number, an object, ...
struct CheckoutState {
  Json order;
  Json payment;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(CheckoutState, order, payment)

struct FanoutState {
  int n = 0;
  int fail_every = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(FanoutState, n, fail_every)

struct TimerState {
  int steps = 1;
  std::int64_t ms = 0;
  int waited = 0;    // timers passed so far
  int attempts = 0;  // the sum of the attempt counters the steps saw
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TimerState, steps, ms, waited, attempts)

struct LimitedState {
  std::optional<std::string> key;
};

// By hand: the macros cannot leave an unset optional out, and `{key: null}` should mean unset.
void to_json(Json& j, const LimitedState& s) {
  j = Json::object();
  if (s.key) j["key"] = *s.key;
}
void from_json(const Json& j, LimitedState& s) {
  const auto it = j.find("key");
  if (it == j.end() || it->is_null()) {
    s.key.reset();
  } else {
    s.key = it->get<std::string>();
  }
}

// The child fanned out by demo.fanout: i is 1-based.
InsertRequest FanoutChild(const FanoutState& s, int i, const std::string& queue) {
  InsertRequest child{"demo.flaky", std::nullopt, {}};
  const bool fails = s.fail_every > 0 && i % s.fail_every == 0;
  child.options.state = {{"fail_times", fails ? 5 : 0}};
  // The parent's queue, so a worker (or the demo) serving the parent also runs its children.
  child.options.queue = queue;
  return child;
}

void RegisterAll() {
  // demo.noop: a job that completes at once.
  Job<Json>("demo.noop")
      .Perform([](const Json&, JobContext&) { return JobResult::Ok(); })
      .Register();

  // demo.sleep {ms}: sleeps, then reports when and where it ran.
  Job<SleepArgs>("demo.sleep")
      .Backoff(ShortBackoff)
      .Perform([](const SleepArgs& a, JobContext& ctx) {
        const auto start = NowMicros();
        if (a.ms < 0) return JobResult::Cancel("ms must be >= 0");
        // Sleeps in short slices so a cancel is noticed within 10 ms.
        const auto until = std::chrono::steady_clock::now() + Millis{a.ms};
        while (std::chrono::steady_clock::now() < until) {
          if (ctx.cancelled()) return JobResult::Cancel("cancelled while sleeping");
          std::this_thread::sleep_until(
              std::min(until, std::chrono::steady_clock::now() + Millis{10}));
        }
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

  // demo.timer {steps, ms}: `steps` durable timers of `ms` each, a step after each; result
  // {steps, attempts}, attempts the sum of the attempt counters seen (0: no step was retried).
  Machine<TimerState>("demo.timer")
      .Step("start",
            [](StepContext<TimerState>& ctx) {
              TimerState s = ctx.state();
              s.attempts += ctx.attempt();
              if (s.waited >= s.steps) {
                return Done({{"steps", s.waited}, {"attempts", s.attempts}});
              }
              s.waited += 1;
              return Next("start", s).After(Millis{s.ms});
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

  // demo.checkout {order}: start -> await_pay (parks until `payment_confirmed`) -> ship; result
  // {order, payment} where payment is the signal's payload.
  Machine<CheckoutState>("demo.checkout")
      .Step("start", [](StepContext<CheckoutState>& ctx) { return Next("await_pay", ctx.state()); })
      .Step("await_pay",
            [](StepContext<CheckoutState>& ctx) {
              const Signal* paid = ctx.FindSignal("payment_confirmed");
              if (paid == nullptr) return Await({"payment_confirmed"}, ctx.state());
              CheckoutState s = ctx.state();
              s.payment = paid->payload;
              return Next("ship", s);
            })
      .Step("ship",
            [](StepContext<CheckoutState>& ctx) {
              return Done({{"order", ctx.state().order}, {"payment", ctx.state().payment}});
            })
      .Register();

  // demo.fanout {n, fail_every}: n demo.flaky children, child i (1-based) failing when
  // fail_every > 0 and i % fail_every == 0; joins; result {done, failed} counted from them
  // (`failed` counts every child that did not end done, cancelled ones included).
  Machine<FanoutState>("demo.fanout")
      .Step("start",
            [](StepContext<FanoutState>& ctx) {
              const FanoutState& s = ctx.state();
              if (s.n < 0) return Stop("n must be >= 0");
              std::vector<InsertRequest> children;
              children.reserve(static_cast<std::size_t>(s.n));
              for (int i = 1; i <= s.n; ++i) children.push_back(FanoutChild(s, i, ctx.queue()));
              return ScheduleChildren("join", std::move(children), s);
            })
      .Step("join",
            [](StepContext<FanoutState>& ctx) {
              int done = 0;
              int failed = 0;
              for (const ChildResult& child : ctx.children()) {
                (child.status == "done" ? done : failed) += 1;
              }
              return Done({{"done", done}, {"failed", failed}});
            })
      .Register();

  // demo.limited {key?}: `call` starts under the `demo` rate limit (one bucket per key when key
  // is set); result {start_us}. A worker defines the limit with --rate-limit demo:ALLOWED:MS.
  Machine<LimitedState>("demo.limited")
      .Step("start",
            [](StepContext<LimitedState>& ctx) {
              const LimitedState& s = ctx.state();
              return s.key ? Next("call", s).RateLimit("demo", *s.key)
                           : Next("call", s).RateLimit("demo");
            })
      .Step("call",
            [](StepContext<LimitedState>&) {
              return Done({{"start_us", NowMicros()}});
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

std::int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void RegisterDemoMachines() {
  static std::once_flag once;
  std::call_once(once, RegisterAll);
}

}  // namespace gen_durable::tools
