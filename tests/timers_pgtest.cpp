// Durable timers (Next(...).After / .At): the instance waits as `scheduled`, holding no worker,
// across an engine restart, with its attempt counter untouched.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <vector>

#include "support/engine_harness.hpp"

namespace gen_durable::testing {
namespace {

using Clock = std::chrono::steady_clock;

struct Ticks {
  int left = 0;
  std::int64_t ms = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Ticks, left, ms)

// A machine whose step waits `ms` with a timer `left` times, recording when each run began and
// the attempt it saw.
struct Recorder {
  std::mutex mu;
  std::vector<Clock::time_point> runs;
  std::vector<int> attempts;

  auto Timer(const std::string& name) {
    return Machine<Ticks>(name)
        .Step("start",
              [this](StepContext<Ticks>& c) {
                {
                  std::lock_guard<std::mutex> lock(mu);
                  runs.push_back(Clock::now());
                  attempts.push_back(c.attempt());
                }
                Ticks t = c.state();
                if (t.left == 0) return Done({{"ticks", runs.size()}});
                t.left -= 1;
                return Next("start", t).After(Millis{t.ms});
              })
        .Build();
  }
};

TEST_F(EngineTest, AfterRunsTheNextStepOnceTheDelayHasPassedWithAttemptZero) {
  Recorder rec;
  auto m = rec.Timer("t.timer");
  auto engine = Engine::Start(Options({m}));
  const auto id = *client_->Insert(m, Ticks{3, 300});
  const auto info = WaitTerminal(id);
  ASSERT_EQ(info.status, "done") << info.last_error.value_or("");
  EXPECT_EQ(info.attempt, 0);
  std::lock_guard<std::mutex> lock(rec.mu);
  ASSERT_EQ(rec.runs.size(), 4u);
  for (std::size_t i = 1; i < rec.runs.size(); ++i) {
    // Never early: each step begins at least the timer's length after the previous one.
    EXPECT_GE(rec.runs[i] - rec.runs[i - 1], Millis{300}) << "step " << i;
  }
  for (int a : rec.attempts) EXPECT_EQ(a, 0);
}

TEST_F(EngineTest, AWaitingTimerHoldsNoWorkerAndOutlivesTheEngine) {
  Recorder rec;
  auto timer = rec.Timer("t.timer_restart");
  std::atomic<int> quick_runs{0};
  auto quick = Machine<Ticks>("t.quick")
                   .Step("start",
                         [&](StepContext<Ticks>&) {
                           ++quick_runs;
                           return Done(Json::object());
                         })
                   .Build();
  // One slot: had the waiting instance kept it, nothing else could run.
  auto options = Options({timer, quick}, /*concurrency=*/1);
  auto engine = Engine::Start(options);
  const auto id = *client_->Insert(timer, Ticks{1, 2000});
  ASSERT_TRUE(WaitUntil([&] { return client_->Get(id)->status == "scheduled"; }));
  const auto other = *client_->Insert(quick, Ticks{});
  EXPECT_EQ(WaitTerminal(other, 5s).status, "done");
  EXPECT_EQ(client_->Get(id)->status, "scheduled");
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances WHERE locked_by IS NOT NULL"), 0);

  engine->Stop();
  engine.reset();
  auto again = Engine::Start(options);  // another node (a new node id) takes the timer
  const auto info = WaitTerminal(id);
  EXPECT_EQ(info.status, "done") << info.last_error.value_or("");
  EXPECT_EQ(info.attempt, 0);
  std::lock_guard<std::mutex> lock(rec.mu);
  ASSERT_EQ(rec.runs.size(), 2u);
  EXPECT_GE(rec.runs[1] - rec.runs[0], Millis{2000});
}

TEST_F(EngineTest, AtWaitsUntilAWallClockTimeAndATimeInThePastRunsAtOnce) {
  std::atomic<int> runs{0};
  std::atomic<bool> far{true};
  auto m =
      Machine<Ticks>("t.at")
          .Step("start",
                [&](StepContext<Ticks>& c) {
                  ++runs;
                  const auto now = std::chrono::system_clock::now();
                  return Next("end", c.state())
                      .At(far ? now + std::chrono::hours(24 * 365) : now - std::chrono::hours(1));
                })
          .Step("end", [](StepContext<Ticks>&) { return Done(Json::object()); })
          .Build();
  auto engine = Engine::Start(Options({m}));
  const auto year = *client_->Insert(m, Ticks{});
  ASSERT_TRUE(WaitUntil([&] { return client_->Get(year)->status == "scheduled"; }));
  EXPECT_EQ(client_->Get(year)->step, "end");
  EXPECT_EQ(Sql64(fmt::format("SELECT count(*) FROM gd_instances WHERE id = {} AND eligible_at > "
                              "now() + interval '364 days'",
                              year)),
            1);
  far = false;
  const auto past = *client_->Insert(m, Ticks{});
  EXPECT_EQ(WaitTerminal(past, 5s).status, "done");
  EXPECT_EQ(client_->Get(year)->status, "scheduled");
  EXPECT_EQ(runs.load(), 2);
}

TEST_F(EngineTest, ATimerOnDoneFailsTheInstanceClearly) {
  auto m =
      Machine<Ticks>("t.done_timer")
          .Step("start", [](StepContext<Ticks>&) { return Done(Json::object()).After(Millis{10}); })
          .Build();
  auto engine = Engine::Start(Options({m}));
  const auto info = WaitTerminal(*client_->Insert(m, Ticks{}));
  EXPECT_EQ(info.status, "failed");
  EXPECT_NE(info.last_error.value_or("").find("with a timer (After/At)"), std::string::npos)
      << info.last_error.value_or("");
}

}  // namespace
}  // namespace gen_durable::testing
