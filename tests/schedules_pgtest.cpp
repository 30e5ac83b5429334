// Periodic schedules (docs/guides/schedules.md) on a real database: engines racing for the same
// slots insert each once, missed slots follow the policy, definitions are validated and
// recorded, and the client lists and triggers them.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "support/engine_harness.hpp"
#include "support/event_log.hpp"

namespace gen_durable::testing {
namespace {

namespace pg = detail::pg;

class SchedulesTest : public EngineTest {
 protected:
  MachineRef<Json> Tick() {
    return Job<Json>("t.tick")
        .Perform([](const Json&, JobContext&) { return JobResult::Ok(); })
        .Build();
  }

  EngineOptions WithSchedule(const std::string& cron, const std::string& name = "tick") {
    EngineOptions o = Options({Tick()});
    Schedule s;
    s.name = name;
    s.cron = cron;
    s.fsm = "t.tick";
    s.state = Json{{"from", "schedule"}};
    o.schedules = {s};
    return o;
  }

  // The slot keys of schedule `name` (sorted as text: not in time order below a second).
  std::vector<std::string> Keys(const std::string& name = "tick") {
    auto r =
        sql_->Exec("SELECT unique_key FROM gd_instances WHERE unique_key LIKE 'schedule:" + name +
                   ":2%' ORDER BY unique_key");
    std::vector<std::string> keys;
    for (int i = 0; i < r.rows(); ++i) keys.emplace_back(r.Text(i, 0));
    return keys;
  }

  // Milliseconds since the epoch of the slot in `key` ("schedule:NAME:2026-...Z").
  std::int64_t SlotMs(const std::string& key) {
    pg::Params p;
    p.Add(key.substr(key.find(":2") + 1));
    return sql_->ExecParams("SELECT (extract(epoch FROM $1::timestamptz) * 1000)::bigint", p)
        .Int64(0, 0);
  }
};

TEST_F(SchedulesTest, TwoEnginesRacingInsertEachSlotExactlyOnce) {
  EventLog a_events("schedule.");
  EventLog b_events("schedule.");
  auto a = Engine::Create(WithSchedule("@every 100ms"));
  auto b = Engine::Create(WithSchedule("@every 100ms"));
  a_events.AttachTo(a->telemetry());
  b_events.AttachTo(b->telemetry());
  a->Start();
  b->Start();
  std::this_thread::sleep_for(3s);
  a->Stop();
  b->Stop();

  const auto keys = Keys();
  ASSERT_GE(keys.size(), 10U) << "too few slots fired";
  std::set<std::string> distinct(keys.begin(), keys.end());
  EXPECT_EQ(distinct.size(), keys.size()) << "a slot was inserted twice";
  // Consecutive slots: none missing between the first and the last.
  std::vector<std::int64_t> slots;
  for (const auto& k : keys) slots.push_back(SlotMs(k));
  std::sort(slots.begin(), slots.end());
  EXPECT_EQ((slots.back() - slots.front()) / 100 + 1, static_cast<std::int64_t>(slots.size()))
      << slots.front() << " .. " << slots.back();
  // Each insert was reported once, by the engine that made it.
  const auto fired_a = a_events.Named("schedule.fired");
  const auto fired_b = b_events.Named("schedule.fired");
  EXPECT_EQ(fired_a.size() + fired_b.size(), keys.size());
  for (const auto& e : fired_a) {
    EXPECT_EQ(e.metadata["name"], "tick");
    EXPECT_GE(e.measurements.at("lag_ms"), 0);
  }
  // Every instance carries the definition's state and runs.
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances WHERE fsm = 't.tick' AND "
                  "state = '{\"from\": \"schedule\"}'::jsonb"),
            static_cast<std::int64_t>(keys.size()));
}

TEST_F(SchedulesTest, SkipInsertsNothingForSlotsMissedWhileNoNodeRan) {
  EventLog events("schedule.");
  auto first = Engine::Start(WithSchedule("* * * * * *"));
  std::this_thread::sleep_for(1500ms);
  first->Stop();
  const auto before = Keys();
  ASSERT_FALSE(before.empty());
  std::this_thread::sleep_for(3s);  // no node runs: three or so slots pass
  const auto restart_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  auto second = Engine::Create(WithSchedule("* * * * * *"));
  events.AttachTo(second->telemetry());
  second->Start();
  ASSERT_TRUE(WaitUntil([&] { return Keys().size() >= before.size() + 2; }, 10s));
  second->Stop();
  const auto after = Keys();
  for (std::size_t i = before.size(); i < after.size(); ++i) {
    EXPECT_GE(SlotMs(after[i]), restart_ms) << after[i] << " is a slot of the gap";
  }
  const auto missed = events.Named("schedule.missed");
  ASSERT_EQ(missed.size(), 1U);
  EXPECT_GE(missed[0].measurements.at("count"), 2);
  EXPECT_EQ(missed[0].metadata["name"], "tick");
}

TEST_F(SchedulesTest, CatchUpInsertsTheNewestMissedSlotsUpToItsLimit) {
  auto o = WithSchedule("* * * * * *");
  o.schedules[0].missed = Schedule::Missed::kCatchUp;
  o.schedules[0].catch_up_max = 2;
  {
    auto first = Engine::Start(o);
    first->Stop();
  }
  // As if the last slot fired ten seconds ago and every node stopped since (the slots the
  // first engine may have fired while it started and stopped go: only the second's count).
  sql_->Exec("DELETE FROM gd_instances");
  sql_->Exec(
      "UPDATE gd_schedules SET last_fired = date_trunc('second', now()) - interval '10 seconds'");
  const std::int64_t gap_start_ms =
      Sql64("SELECT (extract(epoch FROM last_fired) * 1000)::bigint FROM gd_schedules");
  EventLog events("schedule.");
  auto second = Engine::Create(o);
  events.AttachTo(second->telemetry());
  second->Start();
  const std::int64_t started_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count();
  ASSERT_TRUE(WaitUntil([&] { return Keys().size() >= 4; }, 15s));
  second->Stop();
  const auto keys = Keys();
  std::vector<std::int64_t> slots;
  for (const auto& k : keys) slots.push_back(SlotMs(k));
  std::sort(slots.begin(), slots.end());
  // The two newest missed slots (both before the start), then every slot since: consecutive.
  EXPECT_EQ((slots.back() - slots.front()) / 1000 + 1, static_cast<std::int64_t>(slots.size()));
  EXPECT_LT(slots.front(), started_ms - 900) << keys.front() << " is not a missed slot";
  EXPECT_GE(slots.front(), gap_start_ms + 8000) << "more than the two newest were caught up";
  const auto missed = events.Named("schedule.missed");
  ASSERT_EQ(missed.size(), 1U);
  EXPECT_GE(missed[0].measurements.at("count"), 8);
}

TEST_F(SchedulesTest, ClientListsAndTriggersSchedulesAndTheNewestDefinitionWins) {
  {
    auto e = Engine::Start(WithSchedule("0 0 1 1 *"));  // no slot during the test
    e->Stop();
  }
  auto listed = client_->Schedules();
  ASSERT_EQ(listed.size(), 1U);
  EXPECT_EQ(listed[0].name, "tick");
  EXPECT_EQ(listed[0].cron, "0 0 1 1 *");
  EXPECT_EQ(listed[0].fsm, "t.tick");
  EXPECT_EQ(listed[0].time_zone, "UTC");
  EXPECT_EQ(listed[0].missed, "skip");
  EXPECT_FALSE(listed[0].last_fired.has_value());
  ASSERT_TRUE(listed[0].next_fire.has_value());
  EXPECT_NE(listed[0].next_fire->find("-01-01T00:00:00Z"), std::string::npos)
      << *listed[0].next_fire;

  auto id = client_->TriggerSchedule("tick");
  ASSERT_TRUE(id.ok());
  auto info = client_->Get(*id);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->fsm, "t.tick");
  ASSERT_TRUE(info->unique_key.has_value());
  EXPECT_EQ(info->unique_key->rfind("schedule:tick:manual:", 0), 0U) << *info->unique_key;
  auto missing = client_->TriggerSchedule("nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.code(), ErrorCode::kNotFound);

  // A changed expression is recorded at the next start and fires from its next slot.
  auto e = Engine::Start(WithSchedule("@every 200ms"));
  ASSERT_TRUE(WaitUntil([&] { return !Keys().empty(); }, 10s));
  e->Stop();
  listed = client_->Schedules();
  ASSERT_EQ(listed.size(), 1U);
  EXPECT_EQ(listed[0].cron, "@every 200ms");
  ASSERT_TRUE(listed[0].last_fired.has_value());
  const auto keys = Keys();
  EXPECT_NE(std::find(keys.begin(), keys.end(), "schedule:tick:" + *listed[0].last_fired),
            keys.end())
      << *listed[0].last_fired;
}

TEST_F(SchedulesTest, BadSchedulesAreRefusedWithTheirReason) {
  struct Bad {
    std::function<void(Schedule&)> change;
    std::string expected;
  };
  const std::vector<Bad> cases = {
      {[](Schedule& s) { s.cron = "61 * * * *"; }, "minute field '61'"},
      {[](Schedule& s) { s.cron = "* * *"; }, "expected 5 fields"},
      {[](Schedule& s) { s.time_zone = "Europe/Atlantis"; }, "unknown time zone 'Europe/Atlantis'"},
      {[](Schedule& s) { s.fsm = "t.nope"; }, "machine 't.nope' is not served"},
      {[](Schedule& s) { s.name = ""; }, "schedules: name"},
      {[](Schedule& s) {
         s.missed = Schedule::Missed::kCatchUp;
         s.catch_up_max = 0;
       },
       "catch_up_max"},
  };
  for (const auto& c : cases) {
    auto o = WithSchedule("* * * * *");
    c.change(o.schedules[0]);
    try {
      Engine::Create(o);
      ADD_FAILURE() << "accepted; expected: " << c.expected;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(c.expected), std::string::npos) << e.what();
    }
  }
  auto o = WithSchedule("* * * * *");
  o.schedules.push_back(o.schedules[0]);
  try {
    Engine::Create(o);
    ADD_FAILURE() << "a duplicate name was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("used twice"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gen_durable::testing
