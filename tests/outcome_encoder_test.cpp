// The outcome encoder: what row each kind of outcome commits, and how an invalid one fails.
#include "gen_durable/runtime/outcome_encoder.hpp"

#include <gtest/gtest.h>

#include <memory>

#include "gen_durable/model/status.hpp"

namespace gen_durable::detail {
namespace {

MachineDef Def() {
  MachineDef def;
  def.name = "t.enc";
  def.version = 1;
  def.steps = {"start", "next", "join"};
  return def;
}

// A claim of row 7 (lease_seq 3) at step "start", attempt 1, shown signals 11 and 12.
ClaimedRow Claimed() {
  ClaimedRow row;
  row.id = 7;
  row.lease_seq = 3;
  row.fsm = "t.enc";
  row.step = "start";
  row.attempt = 1;
  row.max_attempts = 3;
  row.signals = {Signal{11, "go", nullptr}, Signal{12, "go", nullptr}};
  return row;
}

OutcomeRow Encode(const Outcome& out, bool keep = false, EngineOptions options = {}) {
  const MachineDef def = Def();
  auto find = [def](const std::string& name, std::optional<int>) {
    return name == def.name ? std::make_shared<const MachineDef>(def) : nullptr;
  };
  return EncodeOutcome(def, Claimed(), out, keep, options, find);
}

std::string Name(Status s) { return std::string(StatusName(s)); }

void ExpectFailed(const OutcomeRow& row, const std::string& error_part) {
  EXPECT_EQ(row.status, Name(Status::kFailed));
  EXPECT_EQ(row.id, 7);
  EXPECT_EQ(row.lease_seq, 3);
  EXPECT_EQ(row.attempt, 1);
  EXPECT_TRUE(row.clear_inbox);
  ASSERT_TRUE(row.last_error.has_value());
  EXPECT_NE(row.last_error->find(error_part), std::string::npos) << *row.last_error;
  EXPECT_FALSE(row.step.has_value());
  EXPECT_FALSE(row.state.has_value());
  EXPECT_TRUE(row.consume.empty());
  EXPECT_TRUE(row.awaiting.empty());
  EXPECT_TRUE(row.children.empty());
  EXPECT_FALSE(row.rate_limit.has_value());
  EXPECT_FALSE(row.partition.has_value());
  EXPECT_FALSE(row.keep);
}

TEST(OutcomeEncoder, NextQueuesTheStepAndConsumesTheSignalsShown) {
  const auto row = Encode(Next("next", Json{{"n", 1}}));
  EXPECT_EQ(row.id, 7);
  EXPECT_EQ(row.lease_seq, 3);
  EXPECT_EQ(row.status, Name(Status::kRunnable));
  EXPECT_EQ(row.step, "next");
  EXPECT_EQ(row.state, R"({"n":1})");
  EXPECT_EQ(row.attempt, 0);
  EXPECT_FALSE(row.keep);
  EXPECT_EQ(row.consume, (std::vector<std::int64_t>{11, 12}));
  EXPECT_FALSE(row.clear_inbox);
}

TEST(OutcomeEncoder, NextKeptRunsAheadOnTheClaim) {
  const auto row = Encode(Next("next", Json::object()), /*keep=*/true);
  EXPECT_EQ(row.status, Name(Status::kExecuting));
  EXPECT_TRUE(row.keep);
}

TEST(OutcomeEncoder, NextToAStepTheMachineLacksFails) {
  ExpectFailed(Encode(Next("nowhere", Json::object())), "returned next('nowhere')");
}

TEST(OutcomeEncoder, ReplayCountsAnAttemptAndKeepsTheAwait) {
  const auto row = Encode(Replay(Json{{"n", 2}}, Millis{500}).WithError("busy"));
  EXPECT_EQ(row.status, Name(Status::kRunnable));
  EXPECT_EQ(row.attempt, 2);
  EXPECT_EQ(row.delay_ms, 500);
  EXPECT_TRUE(row.keep_awaiting);
  EXPECT_FALSE(row.step.has_value());
  EXPECT_EQ(row.last_error, "busy");
  EXPECT_TRUE(row.consume.empty());
}

TEST(OutcomeEncoder, AfterMakesNextADurableTimerThatKeepsNoClaim) {
  const auto row = Encode(Next("next", Json::object()).After(Millis{2000}), /*keep=*/true);
  EXPECT_EQ(row.status, Name(Status::kRunnable));
  EXPECT_EQ(row.attempt, 0);  // the attempt counter is not touched by the wait
  EXPECT_EQ(row.delay_ms, 2000);
  EXPECT_FALSE(row.run_at_ms.has_value());
  EXPECT_FALSE(row.keep);  // a timer never runs ahead on the same claim
}

TEST(OutcomeEncoder, AtSetsAnAbsoluteTimeAndReplacesAnEarlierAfter) {
  const auto when = std::chrono::system_clock::time_point{} + Millis{1'800'000'000'000};
  const auto row = Encode(Next("next", Json::object()).After(Millis{5}).At(when));
  EXPECT_EQ(row.run_at_ms, 1'800'000'000'000);
  EXPECT_FALSE(row.delay_ms.has_value());
  const auto replay = Encode(Replay(Json::object(), Millis{500}).At(when));
  EXPECT_EQ(replay.run_at_ms, 1'800'000'000'000);
  EXPECT_FALSE(replay.delay_ms.has_value());
  EXPECT_EQ(replay.attempt, 2);  // a replay still counts its attempt
}

TEST(OutcomeEncoder, ATimerOnAnOutcomeThatTakesNoneFails) {
  ExpectFailed(Encode(Done(Json::object()).After(Millis{10})),
               "returned done with a timer (After/At)");
  ExpectFailed(Encode(Await({"go"}, Json::object()).After(Millis{10})),
               "returned await with a timer (After/At)");
}

TEST(OutcomeEncoder, ReplayAtTheLastAttemptFails) {
  ClaimedRow last = Claimed();
  last.attempt = 2;  // of max_attempts 3: a replay would be the fourth run
  const auto row =
      EncodeOutcome(Def(), last, Replay(Json::object()).WithError("busy"), false, {}, {});
  EXPECT_EQ(row.status, Name(Status::kFailed));
  EXPECT_EQ(row.attempt, 2);
  EXPECT_EQ(row.last_error, "busy (max attempts (3) reached in step 'start')");
}

TEST(OutcomeEncoder, DoneStoresTheResultAndClearsTheInbox) {
  const auto row = Encode(Done(Json{{"ok", true}}));
  EXPECT_EQ(row.status, Name(Status::kDone));
  EXPECT_EQ(row.result, R"({"ok":true})");
  EXPECT_TRUE(row.clear_inbox);
  EXPECT_TRUE(row.consume.empty());
  EXPECT_EQ(row.attempt, 1);
}

TEST(OutcomeEncoder, StopFailsWithItsReason) {
  const auto row = Encode(Stop("gave up"));
  EXPECT_EQ(row.status, Name(Status::kFailed));
  EXPECT_EQ(row.last_error, "gave up");
  EXPECT_TRUE(row.clear_inbox);
  EXPECT_EQ(Encode(Stop("")).last_error, "stopped");
}

TEST(OutcomeEncoder, AwaitParksOnTheNamesAndRemembersWhatWasShown) {
  AwaitOptions opts;
  opts.next_step = "next";
  opts.timeout = Millis{-5};
  const auto row = Encode(Await({"a", "b"}, Json{{"n", 3}}, opts));
  EXPECT_EQ(row.status, Name(Status::kAwaitingSignal));
  EXPECT_EQ(row.awaiting, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(row.await_next_step, "next");
  EXPECT_EQ(row.shown, (std::vector<std::int64_t>{11, 12}));
  EXPECT_TRUE(row.consume.empty());
  EXPECT_EQ(row.park_ms, 0);  // a past timeout wakes at once
  EXPECT_EQ(row.attempt, 1);
  EXPECT_EQ(row.state, R"({"n":3})");
}

TEST(OutcomeEncoder, AwaitOfNothingOrAnUnknownNextStepFails) {
  ExpectFailed(Encode(Await(std::vector<std::string>{}, Json::object())), "awaited no signal");
  AwaitOptions opts;
  opts.next_step = "nowhere";
  ExpectFailed(Encode(Await({"a"}, Json::object(), opts)), "await next_step 'nowhere'");
}

TEST(OutcomeEncoder, ScheduleChildrenResolvesThemAndParksOnTheJoin) {
  JoinOptions opts;
  opts.wait_for = 1;
  opts.deadline = Millis{2000};
  const auto row = Encode(ScheduleChildren(
      "join", {InsertRequest{"t.enc", 1, {}}, InsertRequest{"t.enc", std::nullopt, {}}},
      Json::object(), opts));
  EXPECT_EQ(row.status, Name(Status::kAwaitingChildren));
  EXPECT_EQ(row.join_next_step, "join");
  EXPECT_EQ(row.wait_for, 1);
  EXPECT_EQ(row.park_ms, 2000);
  EXPECT_EQ(row.consume, (std::vector<std::int64_t>{11, 12}));
  ASSERT_EQ(row.children.size(), 2u);
  EXPECT_EQ(row.children[0].fsm, "t.enc");
  EXPECT_EQ(row.children[0].step, "start");
}

TEST(OutcomeEncoder, AnInvalidJoinFailsWithoutItsChildren) {
  JoinOptions none;
  none.wait_for = 0;
  ExpectFailed(
      Encode(ScheduleChildren("join", {InsertRequest{"t.enc", 1, {}}}, Json::object(), none)),
      "wait_for must be >= 1");
  ExpectFailed(Encode(ScheduleChildren("nowhere", {}, Json::object())), "next step 'nowhere'");
  InsertOptions bad;
  bad.max_attempts = -1;
  ExpectFailed(Encode(ScheduleChildren("join", {InsertRequest{"t.enc", 1, bad}}, Json::object())),
               "scheduled an invalid child");
}

TEST(OutcomeEncoder, AnUndefinedRateLimitOrABadPartitionKeyFails) {
  ExpectFailed(Encode(Next("next", Json::object()).RateLimit("nope", "", 1)), "rate limit 'nope'");
  EngineOptions limited;
  limited.rate_limits["api"] = RateLimit{};
  const auto row = Encode(Next("next", Json::object()).RateLimit("api", "k", 2), false, limited);
  EXPECT_EQ(row.status, Name(Status::kRunnable));
  ASSERT_TRUE(row.rate_limit.has_value());
  EXPECT_EQ(row.rate_limit->weight, 2);
  ExpectFailed(Encode(Next("next", Json::object()).PartitionKey("")),
               "partition key must not be empty");
}

TEST(OutcomeEncoder, AStateOverTheLimitFails) {
  EngineOptions small;
  small.max_payload_bytes = 10;
  ExpectFailed(Encode(Next("next", Json{{"blob", "0123456789"}}), false, small),
               "over max_payload_bytes (10)");
}

TEST(FailOutcome, KeepsTheClaimAndTheHistoryAndDropsTheRest) {
  OutcomeRow row =
      Encode(ScheduleChildren("join", {InsertRequest{"t.enc", 1, {}}}, Json::object()));
  row.claim_step = 2;
  row.ran_step = "start";
  row.ran_attempt = 1;
  row.duration_ms = 4.5;
  row.partition = std::optional<std::string>("k");
  FailOutcome(row, 1, "refused");
  ExpectFailed(row, "refused");
  EXPECT_EQ(row.claim_step, 2);
  EXPECT_EQ(row.ran_step, "start");
  EXPECT_EQ(row.ran_attempt, 1);
  EXPECT_EQ(row.duration_ms, 4.5);
  EXPECT_FALSE(row.join_next_step.has_value());
  EXPECT_FALSE(row.park_ms.has_value());
}

}  // namespace
}  // namespace gen_durable::detail
