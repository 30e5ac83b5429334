// Black-box tests of periodic schedules through the CLI: two `gen_durable worker` processes
// carrying the same every-second schedule insert one instance per slot, and after both stop
// the `skip` policy inserts nothing for the gap; `schedules` lists and triggers them.
#include <gtest/gtest.h>

#include <cstdio>
#include <set>

#include "support/cli_fixture.hpp"

namespace gen_durable::cli_test {
namespace {

const char* const kEverySecond = "tick;* * * * * *;demo.noop";

// Seconds since the epoch of a slot key "schedule:tick:2026-12-06T10:00:05Z".
std::int64_t SlotSeconds(const std::string& key) {
  const std::string iso = key.substr(std::string("schedule:tick:").size());
  int y = 0;
  unsigned mo = 0, d = 0;
  int h = 0, mi = 0, s = 0;
  EXPECT_EQ(std::sscanf(iso.c_str(), "%d-%u-%uT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &s), 6) << key;
  const std::chrono::sys_days day{std::chrono::year{y} / std::chrono::month{mo} /
                                  std::chrono::day{d}};
  return day.time_since_epoch().count() * 86400LL + h * 3600 + mi * 60 + s;
}

class ScheduleCliTest : public CliTest {
 protected:
  // The slots inserted so far, as seconds since the epoch, ascending; fails on a duplicate.
  std::vector<std::int64_t> Slots() {
    std::vector<std::int64_t> slots;
    for (const Json& row : ListJson({"--fsm", "demo.noop", "--limit", "100000"})) {
      if (!row["unique_key"].is_string()) continue;
      const std::string key = row["unique_key"];
      if (key.rfind("schedule:tick:2", 0) != 0) continue;
      slots.push_back(SlotSeconds(key));
    }
    std::sort(slots.begin(), slots.end());
    EXPECT_EQ(std::set<std::int64_t>(slots.begin(), slots.end()).size(), slots.size())
        << "a slot was inserted twice";
    return slots;
  }

  std::unique_ptr<ChildProcess> StartTicker() {
    auto w = StartWorker(
        {"--queues", "default:4", "--poll-interval", "100", "--schedule", kEverySecond});
    EXPECT_TRUE(WaitForStderr(*w, "started node", seconds(30))) << w->err();
    return w;
  }

  void StopWorker(ChildProcess& w) {
    w.Signal(SIGTERM);
    ASSERT_TRUE(w.Wait(seconds(20))) << w.err();
    EXPECT_EQ(w.exit_code(), 0) << w.err();
  }
};

TEST_F(ScheduleCliTest, TwoWorkersInsertOneInstancePerSlotAndSkipTheGap) {
  auto a = StartTicker();
  auto b = StartTicker();
  std::this_thread::sleep_for(seconds(10));
  StopWorker(*a);
  StopWorker(*b);
  const std::vector<std::int64_t> first = Slots();
  ASSERT_GE(first.size(), 8U) << "too few slots in 10 s";
  // One per second while a node was up: consecutive, none missing.
  EXPECT_EQ(first.back() - first.front() + 1, static_cast<std::int64_t>(first.size()));
  EXPECT_NE(a->err().find("schedules tick"), std::string::npos) << a->err();

  // Both stopped for 5 s, then one starts again: the gap's slots are skipped.
  std::this_thread::sleep_for(seconds(5));
  const std::int64_t restart = std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count();
  auto c = StartTicker();
  std::this_thread::sleep_for(seconds(3));
  StopWorker(*c);
  const std::vector<std::int64_t> all = Slots();
  ASSERT_GT(all.size(), first.size()) << "the restarted worker fired nothing";
  std::vector<std::int64_t> later(all.begin() + static_cast<std::ptrdiff_t>(first.size()),
                                  all.end());
  EXPECT_GE(later.front(), restart) << "a slot of the gap was inserted";
  EXPECT_GE(later.front() - first.back(), 5) << "a slot of the gap was inserted";
  EXPECT_EQ(later.back() - later.front() + 1, static_cast<std::int64_t>(later.size()));

  // `schedules --json`: one object per line with the contract's fields.
  CliResult r = Run({"schedules", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(Lines(r.out).size(), 1U) << r.out;
  const Json s = Json::parse(r.out);
  EXPECT_EQ(s["name"], "tick");
  EXPECT_EQ(s["cron"], "* * * * * *");
  EXPECT_EQ(s["fsm"], "demo.noop");
  EXPECT_EQ(SlotSeconds("schedule:tick:" + s["last_fired"].get<std::string>()), all.back());
  EXPECT_TRUE(s["next_fire"].is_string()) << r.out;
}

TEST_F(ScheduleCliTest, SchedulesListsAndTriggers) {
  auto w = StartWorker({"--schedule", "nightly;0 3 * * *;demo.chain;{\"steps\": 2}"});
  ASSERT_TRUE(WaitForStderr(*w, "started node", seconds(30))) << w->err();
  CliResult table = Run({"schedules"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("NEXT FIRE"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("nightly"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("0 3 * * *"), std::string::npos) << table.out;

  CliResult trigger = Run({"schedules", "trigger", "nightly"});
  ASSERT_EQ(trigger.exit_code, 0) << trigger.err;
  const std::int64_t id = PrintedId(trigger);
  const Json done = ShowUntilTerminal(id);
  EXPECT_EQ(done["status"], "done") << done.dump();
  EXPECT_EQ(done["result"], Json({{"steps", 2}}));
  EXPECT_EQ(done["unique_key"].get<std::string>().rfind("schedule:nightly:manual:", 0), 0U)
      << done.dump();

  CliResult unknown = Run({"schedules", "trigger", "nope"});
  EXPECT_EQ(unknown.exit_code, 3);
  ExpectOneLineReason(unknown);
  EXPECT_NE(unknown.err.find("nope"), std::string::npos) << unknown.err;
  StopWorker(*w);
}

TEST_F(ScheduleCliTest, BadScheduleValuesAreUsageErrors) {
  const std::vector<std::string> bad = {
      "tick",                             // no CRON, no FSM
      "tick;* * * * *",                   // no FSM
      ";* * * * *;demo.noop",             // no NAME
      "tick;61 * * * *;demo.noop",        // bad cron
      "tick;@every 5x;demo.noop",         // bad duration
      "tick;* * * * *;demo.nope",         // unknown machine
      "tick;* * * * *;demo.noop;[1, 2]",  // state not an object
      "tick;* * * * *;demo.noop;{bad",    // state not JSON
  };
  for (const auto& value : bad) {
    CliResult r = Run({"worker", "--schedule", value});
    EXPECT_EQ(r.exit_code, 2) << value << ": " << r.err;
    EXPECT_TRUE(StartsWith(r.err, "gen_durable: ")) << r.err;
    EXPECT_EQ(Lines(r.err).size(), 1U) << r.err;
  }
  CliResult twice =
      Run({"worker", "--schedule", "t;* * * * *;demo.noop", "--schedule", "t;@hourly;demo.noop"});
  EXPECT_EQ(twice.exit_code, 2) << twice.err;
  EXPECT_NE(twice.err.find("named twice"), std::string::npos) << twice.err;
}

}  // namespace
}  // namespace gen_durable::cli_test
