// Black-box tests of `gen_durable worker` and `demo`: workers that run, crash, get killed, drain
// or wait for their database, as real child processes against a fresh database.
#include <gtest/gtest.h>

#include "support/cli_fixture.hpp"

namespace gen_durable::cli_test {
namespace {

TEST_F(CliTest, WorkerRunsChainsAndFlakyJobsToCompletion) {
  const std::int64_t chain = Insert("demo.chain", R"({"steps": 5})");
  const std::int64_t flaky_ok = Insert("demo.flaky", R"({"fail_times": 2})");
  const std::int64_t flaky_bad = Insert("demo.flaky", R"({"fail_times": 6})");
  const std::int64_t noop = Insert("demo.noop", "{}");
  std::vector<std::string> flags = kFastWorker;
  flags.insert(flags.end(), {"--queues", "default:4"});
  auto worker = StartWorker(flags);

  const Json c = ShowUntilTerminal(chain);
  EXPECT_EQ(c["status"], "done") << c.dump();
  EXPECT_EQ(c["result"], Json({{"steps", 5}}));
  const Json ok = ShowUntilTerminal(flaky_ok);
  EXPECT_EQ(ok["status"], "done") << ok.dump();
  EXPECT_EQ(ok["result"], Json({{"attempts", 3}}));
  EXPECT_EQ(ok["attempt"], 2);
  const Json bad = ShowUntilTerminal(flaky_bad);
  EXPECT_EQ(bad["status"], "failed") << bad.dump();
  EXPECT_NE(bad["last_error"].get<std::string>().find("flaky failure"), std::string::npos)
      << bad.dump();
  EXPECT_EQ(ShowUntilTerminal(noop)["status"], "done");

  worker->Signal(SIGTERM);
  ASSERT_TRUE(worker->Wait(seconds(15))) << worker->err();
  EXPECT_EQ(worker->exit_code(), 0) << worker->err();
  EXPECT_NE(worker->err().find("started node"), std::string::npos) << worker->err();
  EXPECT_NE(worker->err().find("stopped node"), std::string::npos) << worker->err();
}

// Durable timers: demo.timer waits 2 s with a timer before each of its 3 steps, and the worker
// is replaced during the second wait. The instance finishes in about 6 s, every step at
// attempt 0, and no row is claimed while it waits.
TEST_F(CliTest, TimerStepsFinishInTheirTimeWithAttemptZeroAcrossAWorkerRestart) {
  const auto start = Clock::now();
  const std::int64_t id = Insert("demo.timer", R"({"steps": 3, "ms": 2000})");
  auto a = StartWorker(kFastWorker);
  const Json waiting = ShowUntil(id, [](const Json& j) {
    return j["state"].value("waited", 0) >= 2 && j["status"] == "scheduled";
  });
  EXPECT_TRUE(waiting["locked_by"].is_null()) << waiting.dump();
  a->Signal(SIGTERM);
  ASSERT_TRUE(a->Wait(seconds(15))) << a->err();
  EXPECT_EQ(a->exit_code(), 0) << a->err();
  auto b = StartWorker(kFastWorker);

  const Json done = ShowUntilTerminal(id);
  const auto took = Clock::now() - start;
  EXPECT_EQ(done["status"], "done") << done.dump();
  EXPECT_EQ(done["result"], Json({{"steps", 3}, {"attempts", 0}})) << done.dump();
  EXPECT_EQ(done["attempt"], 0) << done.dump();
  EXPECT_GE(took, seconds(6));
  // "About 6 s": the timers plus polling and two process starts, generously bounded.
  EXPECT_LT(took, seconds(15));
}

// The crash test of the issue: a worker is SIGKILLed mid-step; the next worker re-runs what it
// held, and nothing is left `executing`.
TEST_F(CliTest, RowsOfAKilledWorkerAreRerunByTheNextWorker) {
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(Insert("demo.sleep", R"({"ms": 3000})"));
  const std::vector<std::string> short_lease = {
      "--queues",        "default:2", "--lease-ttl",     "2000", "--heartbeat-interval", "500",
      "--reap-interval", "500",       "--poll-interval", "100"};
  auto a = StartWorker(short_lease);

  std::vector<Json> executing;
  const auto deadline = Clock::now() + seconds(30);
  while ((executing = ListJson({"--status", "executing"})).empty()) {
    ASSERT_LT(Clock::now(), deadline) << "worker A never started a step: " << a->err();
    std::this_thread::sleep_for(milliseconds(50));
  }
  a->Signal(SIGKILL);
  ASSERT_TRUE(a->Wait(seconds(10)));
  ASSERT_TRUE(a->killed_by(SIGKILL));

  // With no worker alive, A's claims are still held: the kill really abandoned them mid-step.
  std::set<std::int64_t> killed;
  for (const Json& row : executing) {
    const std::int64_t id = row["id"];
    killed.insert(id);
    const Json now = Show(id);
    EXPECT_EQ(now["status"], "executing") << now.dump();
    EXPECT_TRUE(now["result"].is_null()) << now.dump();
  }

  // B has a slot for every row, so the re-runs do not queue behind each other.
  std::vector<std::string> b_flags = short_lease;
  b_flags[1] = "default:4";
  auto b = StartWorker(b_flags);
  for (std::int64_t id : ids) {
    const Json j = ShowUntilTerminal(id);
    EXPECT_EQ(j["status"], "done") << j.dump();
    if (killed.count(id) != 0) {
      EXPECT_GE(j["attempt"].get<int>(), 1) << j.dump();
      // demo.sleep records the process that ran it: B re-ran what A abandoned.
      const std::string ran_by = j["result"]["worker"];
      EXPECT_TRUE(ran_by.size() > std::to_string(b->pid()).size() &&
                  ran_by.substr(ran_by.rfind(':') + 1) == std::to_string(b->pid()))
          << j.dump() << " (worker B is pid " << b->pid() << ")";
    }
  }
  EXPECT_TRUE(ListJson({"--status", "executing"}).empty());
  EXPECT_EQ(ListJson({"--status", "done"}).size(), ids.size());

  b->Signal(SIGTERM);
  ASSERT_TRUE(b->Wait(seconds(15))) << b->err();
  EXPECT_EQ(b->exit_code(), 0) << b->err();
}

// demo.crash kills its own worker on attempt 0. The restarted worker on the same host releases
// the dead predecessor's claim at start, so recovery does not wait for the (long) lease.
TEST_F(CliTest, CrashedStepCompletesOnRestartedWorkerWithoutWaitingForTheLease) {
  const std::int64_t id = Insert("demo.crash", "{}");
  const std::vector<std::string> long_lease = {
      "--lease-ttl",     "120000", "--heartbeat-interval", "1000",
      "--reap-interval", "120000", "--poll-interval",      "100"};
  auto a = StartWorker(long_lease);
  ASSERT_TRUE(a->Wait(seconds(30))) << "demo.crash did not kill its worker: " << a->err();
  EXPECT_EQ(a->exit_code(), 137) << a->err();
  const Json held = Show(id);
  EXPECT_EQ(held["status"], "executing") << held.dump();

  const auto restart = Clock::now();
  auto b = StartWorker(long_lease);
  // Well under the 120 s lease: only the reclaim at start can explain completion.
  const Json j = ShowUntilTerminal(id, seconds(20));
  EXPECT_LT(Clock::now() - restart, seconds(20));
  EXPECT_EQ(j["status"], "done") << j.dump();
  EXPECT_EQ(j["result"], Json({{"attempts", 2}})) << j.dump();
  EXPECT_EQ(j["attempt"], 1) << j.dump();

  b->Signal(SIGTERM);
  ASSERT_TRUE(b->Wait(seconds(15))) << b->err();
  EXPECT_EQ(b->exit_code(), 0) << b->err();
}

// SIGTERM drains: buffered (prefetched) rows go back to `runnable` at once, and the worker exits
// soon after drain_timeout even though its one running step would take 10 s more.
TEST_F(CliTest, SigtermReleasesBufferedRowsAndExitsAfterDrainTimeout) {
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(Insert("demo.sleep", R"({"ms": 10000})"));
  auto worker = StartWorker({"--queues", "default:1", "--prefetch", "5", "--drain-timeout", "1000",
                             "--poll-interval", "100", "--lease-ttl", "30000",
                             "--heartbeat-interval", "1000"});
  // One slot + prefetch 5 claims all four: one runs, three wait in the buffer.
  const auto deadline = Clock::now() + seconds(30);
  while (ListJson({"--status", "executing"}).size() < ids.size()) {
    ASSERT_LT(Clock::now(), deadline) << "the worker never claimed every row: " << worker->err();
    std::this_thread::sleep_for(milliseconds(50));
  }

  const auto term = Clock::now();
  worker->Signal(SIGTERM);
  ASSERT_TRUE(worker->Wait(seconds(1 + 3))) << "no exit within drain_timeout + 3 s";
  EXPECT_LT(Clock::now() - term, milliseconds(1000 + 3000));
  EXPECT_EQ(worker->exit_code(), 0) << worker->err();

  const std::vector<Json> runnable = ListJson({"--status", "runnable"});
  const std::vector<Json> executing = ListJson({"--status", "executing"});
  // The buffered rows are released; only the abandoned in-flight step may still hold its lease.
  EXPECT_GE(runnable.size(), ids.size() - 1);
  EXPECT_LE(executing.size(), 1u);
  EXPECT_EQ(runnable.size() + executing.size(), ids.size());
  for (const Json& row : runnable) {
    EXPECT_TRUE(row["locked_by"].is_null()) << row.dump();
    EXPECT_TRUE(row["result"].is_null()) << row.dump();
  }
}

TEST_F(CliTest, DemoRunsEveryInstanceToATerminalStatus) {
  // 116 = 80 noop, 20 chain, 8 sleep, 8 flaky; flaky fail_times i % 7 fails for 5 and 6.
  CliResult r = Run({"demo", "--count", "116", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(Lines(r.out).size(), 1u) << r.out;
  const Json j = Json::parse(r.out);
  EXPECT_EQ(j["total"], 116);
  EXPECT_EQ(j["done"], 114) << j.dump();
  EXPECT_EQ(j["failed"], 2) << j.dump();
  EXPECT_NE(j["failed_sample"]["last_error"].get<std::string>().find("flaky failure"),
            std::string::npos)
      << j.dump();
  EXPECT_GT(j["steps"].get<std::int64_t>(), 116);
  EXPECT_TRUE(ListJson({"--status", "executing"}).empty());

  // Beside the mix: a checkout the demo woke with a signal, and a fan-out that joined.
  EXPECT_EQ(j["checkout"]["status"], "done") << j.dump();
  EXPECT_TRUE(j["checkout"]["signal_id"].is_number_integer()) << j.dump();
  EXPECT_EQ(j["checkout"]["result"]["order"], "A-1001") << j.dump();
  EXPECT_TRUE(j["checkout"]["result"]["payment"].is_object()) << j.dump();
  EXPECT_EQ(j["fanout"]["status"], "done") << j.dump();
  EXPECT_EQ(j["fanout"]["children"], 10) << j.dump();
  EXPECT_EQ(j["fanout"]["result"], Json({{"done", 8}, {"failed", 2}})) << j.dump();
  EXPECT_NE(r.err.find("awaiting_signal"), std::string::npos) << r.err;
  const Json checkout = Show(j["checkout"]["id"].get<std::int64_t>());
  EXPECT_EQ(checkout["fsm"], "demo.checkout");
  EXPECT_EQ(checkout["result"], j["checkout"]["result"]);

  // The human summary carries the same story.
  CliResult human = Run({"demo", "--count", "29"});
  ASSERT_EQ(human.exit_code, 0) << human.err;
  EXPECT_NE(human.out.find("checkout"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find(R"({"done":8,"failed":2})"), std::string::npos) << human.out;
}

// A worker started while its database is down waits for it, noting each attempt, and a stop
// signal ends the wait with status 0. A database that does not exist is not waited for.
TEST_F(CliTest, WorkerWaitsForAnUnreachableServerButNotForAMissingDatabase) {
  ChildProcess waiting(CliCommand(
      {"worker", "--database", "host=/nonexistent/gd_socket dbname=x connect_timeout=2"}));
  ASSERT_TRUE(WaitForStderr(waiting, "database unavailable", seconds(30))) << waiting.err();
  EXPECT_FALSE(waiting.Wait(milliseconds(500))) << "exited instead of waiting: " << waiting.err();
  waiting.Signal(SIGTERM);
  ASSERT_TRUE(waiting.Wait(seconds(30)));
  EXPECT_EQ(waiting.exit_code(), 0) << waiting.err();
  EXPECT_NE(waiting.err().find("stopped before the database was reachable"), std::string::npos)
      << waiting.err();

  const std::string missing = db_.substr(0, db_.find("dbname=")) + "dbname=gd_no_such_database";
  ChildProcess refused(CliCommand({"worker", "--database", missing}));
  ASSERT_TRUE(refused.Wait(seconds(30))) << "waited for a database that does not exist";
  EXPECT_EQ(refused.exit_code(), 1);
  EXPECT_NE(refused.err().find("does not exist"), std::string::npos) << refused.err();
}

}  // namespace
}  // namespace gen_durable::cli_test
