// Black-box tests of the `gen_durable` CLI: its output contract, exit statuses, and workers that
// crash, get killed or drain, all run as real child processes against a fresh database.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gen_durable/options.hpp"
#include "gen_durable/schema/embedded.hpp"
#include "support/child_process.hpp"
#include "support/pg_fixture.hpp"

namespace gen_durable {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Worker timings short enough for tests; the lease is long enough never to expire under a
// running step on a loaded CI machine.
const std::vector<std::string> kFastWorker = {
    "--poll-interval",      "100",  "--lease-ttl",     "10000",
    "--heartbeat-interval", "1000", "--reap-interval", "500"};

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

bool StartsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

using testing::ChildOptions;
using testing::ChildProcess;
using testing::CliCommand;
// exit_code is -1 when the CLI was killed by a signal or ran past the timeout.
using CliResult = testing::ChildResult;

// Runs the CLI on the embedded default under GEN_DURABLE_HOME=home (and without
// GEN_DURABLE_DATABASE_URL).
ChildOptions OnEmbeddedDefault(const std::string& home) {
  ChildOptions options;
  options.unset_env = {"GEN_DURABLE_DATABASE_URL"};
  options.set_env = {"GEN_DURABLE_HOME=" + home};
  return options;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override { db_ = testing::FreshDatabase(); }

  // Runs `gen_durable <args> --database <db>` to completion.
  CliResult Run(std::vector<std::string> args) {
    CliResult r = testing::RunChild(CliCommand(WithDatabase(std::move(args))));
    if (!r.exited) ADD_FAILURE() << "gen_durable did not exit within 60 s";
    return r;
  }

  std::unique_ptr<ChildProcess> Start(std::vector<std::string> args) {
    return std::make_unique<ChildProcess>(CliCommand(WithDatabase(std::move(args))));
  }

  std::unique_ptr<ChildProcess> StartWorker(std::vector<std::string> extra) {
    std::vector<std::string> args = {"worker"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Start(std::move(args));
  }

  // Inserts an instance and returns its id; fails the test unless stdout is the id alone.
  std::int64_t Insert(const std::string& fsm, const std::string& state,
                      std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"insert", fsm, "--state", state};
    args.insert(args.end(), extra.begin(), extra.end());
    CliResult r = Run(std::move(args));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(!r.out.empty() && r.out.back() == '\n') << "out: [" << r.out << "]";
    const std::string digits = r.out.empty() ? "" : r.out.substr(0, r.out.size() - 1);
    EXPECT_FALSE(digits.empty());
    EXPECT_EQ(digits.find_first_not_of("0123456789"), std::string::npos)
        << "out: [" << r.out << "]";
    return digits.empty() ? 0 : std::stoll(digits);
  }

  Json Show(std::int64_t id) {
    CliResult r = Run({"show", std::to_string(id), "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(Lines(r.out).size(), 1u) << r.out;
    return Json::parse(r.out);
  }

  std::vector<Json> ListJson(std::vector<std::string> filters) {
    std::vector<std::string> args = {"list", "--json"};
    args.insert(args.end(), filters.begin(), filters.end());
    CliResult r = Run(std::move(args));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<Json> rows;
    for (const auto& line : Lines(r.out)) rows.push_back(Json::parse(line));
    return rows;
  }

  // Polls `show --json` until `done` holds; returns the last view (the test fails on timeout).
  Json ShowUntil(std::int64_t id, const std::function<bool(const Json&)>& done,
                 Clock::duration timeout = seconds(60)) {
    const auto deadline = Clock::now() + timeout;
    Json info = Show(id);
    while (!done(info)) {
      if (Clock::now() >= deadline) {
        ADD_FAILURE() << "instance " << id << " did not reach the expected state: " << info.dump();
        break;
      }
      std::this_thread::sleep_for(milliseconds(100));
      info = Show(id);
    }
    return info;
  }

  Json ShowUntilTerminal(std::int64_t id, Clock::duration timeout = seconds(60)) {
    return ShowUntil(
        id,
        [](const Json& j) {
          const std::string s = j["status"];
          return s == "done" || s == "failed" || s == "cancelled";
        },
        timeout);
  }

  std::vector<std::string> WithDatabase(std::vector<std::string> args) const {
    args.push_back("--database");
    args.push_back(db_);
    return args;
  }

  std::string db_;
};

// A one-line reason on stderr, prefixed with the program name.
void ExpectOneLineReason(const CliResult& r) {
  EXPECT_TRUE(StartsWith(r.err, "gen_durable: ")) << r.err;
  EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST_F(CliTest, InsertPrintsOnlyTheIdAndShowJsonHasEveryContractField) {
  const std::int64_t id = Insert("demo.chain", R"({"steps": 3})",
                                 {"--queue", "q1", "--priority", "4", "--max-attempts", "7"});
  ASSERT_GT(id, 0);
  const Json j = Show(id);
  for (const char* field : {"id", "fsm", "fsm_version", "status", "step", "state", "attempt",
                            "queue", "priority", "partition_key", "unique_key", "result",
                            "last_error", "parent_id", "children", "signals"}) {
    EXPECT_TRUE(j.contains(field)) << "missing " << field << " in " << j.dump();
  }
  EXPECT_EQ(j["id"], id);
  EXPECT_EQ(j["fsm"], "demo.chain");
  EXPECT_EQ(j["fsm_version"], 1);
  EXPECT_EQ(j["status"], "runnable");
  EXPECT_EQ(j["step"], "start");
  EXPECT_EQ(j["state"], Json({{"steps", 3}}));
  EXPECT_EQ(j["attempt"], 0);
  EXPECT_EQ(j["queue"], "q1");
  EXPECT_EQ(j["priority"], 4);
  EXPECT_EQ(j["max_attempts"], 7);
  EXPECT_TRUE(j["partition_key"].is_null());
  EXPECT_TRUE(j["unique_key"].is_null());
  EXPECT_TRUE(j["result"].is_null());
  EXPECT_TRUE(j["last_error"].is_null());
  EXPECT_TRUE(j["parent_id"].is_null());
  EXPECT_EQ(j["children"], Json::array());
  EXPECT_EQ(j["signals"], Json::array());

  // The demo machines' defaults apply: demo.flaky's attempt limit and a job's first step.
  const Json flaky = Show(Insert("demo.flaky", R"({"fail_times": 1})"));
  EXPECT_EQ(flaky["max_attempts"], 5);
  EXPECT_EQ(flaky["queue"], "default");
  EXPECT_EQ(flaky["step"], "perform");

  CliResult human = Run({"show", std::to_string(id)});
  EXPECT_EQ(human.exit_code, 0) << human.err;
  EXPECT_NE(human.out.find("demo.chain"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("runnable"), std::string::npos) << human.out;
}

TEST_F(CliTest, InsertScheduleInDefersTheInstance) {
  const std::int64_t later = Insert("demo.noop", "{}", {"--schedule-in", "3600000"});
  const std::int64_t now = Insert("demo.noop", "{}");
  const Json a = Show(later);
  const Json b = Show(now);
  // ISO-8601 strings in one time zone compare chronologically.
  EXPECT_GT(a["eligible_at"].get<std::string>(), b["eligible_at"].get<std::string>());
  EXPECT_EQ(a["status"], "scheduled");
  EXPECT_EQ(b["status"], "runnable");
  const std::vector<Json> scheduled = ListJson({"--status", "scheduled"});
  ASSERT_EQ(scheduled.size(), 1u);
  EXPECT_EQ(scheduled[0]["id"], later);
}

TEST_F(CliTest, ListJsonPrintsOneObjectPerLineAndFilters) {
  const std::int64_t a = Insert("demo.noop", "{}");
  const std::int64_t b = Insert("demo.chain", R"({"steps": 2})", {"--queue", "other"});
  const std::int64_t c = Insert("demo.sleep", R"({"ms": 5})");

  const std::vector<Json> all = ListJson({});
  ASSERT_EQ(all.size(), 3u);
  std::set<std::int64_t> ids;
  for (const Json& row : all) {
    ids.insert(row["id"].get<std::int64_t>());
    for (const char* field : {"id", "fsm", "status", "step", "state", "attempt", "queue", "result",
                              "last_error", "children", "signals"}) {
      EXPECT_TRUE(row.contains(field)) << "missing " << field << " in " << row.dump();
    }
  }
  EXPECT_EQ(ids, (std::set<std::int64_t>{a, b, c}));

  const std::vector<Json> other = ListJson({"--queue", "other"});
  ASSERT_EQ(other.size(), 1u);
  EXPECT_EQ(other[0]["id"], b);
  const std::vector<Json> sleeps = ListJson({"--fsm", "demo.sleep"});
  ASSERT_EQ(sleeps.size(), 1u);
  EXPECT_EQ(sleeps[0]["id"], c);
  EXPECT_EQ(ListJson({"--limit", "2"}).size(), 2u);
  EXPECT_EQ(ListJson({"--status", "runnable"}).size(), 3u);
  EXPECT_TRUE(ListJson({"--status", "done"}).empty());

  CliResult table = Run({"list"});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_EQ(Lines(table.out).size(), 4u) << table.out;  // header + 3 rows
}

TEST_F(CliTest, StatsJsonCountsByQueueAndStatus) {
  Insert("demo.noop", "{}");
  Insert("demo.noop", "{}");
  Insert("demo.noop", "{}", {"--queue", "other"});
  CliResult r = Run({"stats", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(Lines(r.out).size(), 1u) << r.out;
  const Json j = Json::parse(r.out);
  ASSERT_TRUE(j["total"].is_object()) << j.dump();
  ASSERT_TRUE(j["queues"].is_object()) << j.dump();
  EXPECT_EQ(j["total"]["runnable"], 3);
  EXPECT_EQ(j["total"]["done"], 0);
  EXPECT_EQ(j["queues"]["default"]["runnable"], 2);
  EXPECT_EQ(j["queues"]["other"]["runnable"], 1);
  EXPECT_EQ(j["queues"].size(), 2u);

  CliResult table = Run({"stats"});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("other"), std::string::npos) << table.out;
}

TEST_F(CliTest, UsageErrorsExitTwoWithOneLineReason) {
  const std::vector<std::vector<std::string>> cases = {
      {"insert", "demo.noop", "--bogus"},
      {"insert", "demo.noop", "--state", "{not json"},
      {"insert", "demo.noop", "--state", "[1, 2]"},
      {"insert", "demo.noop", "--priority", "high"},
      {"insert", "demo.chain", "--step", "no_such_step"},
      {"insert"},
      {"show", "abc"},
      {"list", "--status", "sleeping"},
      {},
      {"frobnicate"},
      {"worker", "--queues", "default:x"},
      {"worker", "--queues", "default:-1"},
      {"worker", "--lease-ttl", "1000", "--heartbeat-interval", "1000"},
      {"signal", "1", "payment_confirmed", "--payload", "{not json"},
      {"signal", "1"},
      {"insert", "demo.noop", "--rate-limit", ":key"},
      {"insert", "demo.noop", "--rate-limit", "demo:"},
      {"insert", "demo.noop", "--unique-key", "k", "--unique-scope", "sleeping"},
      {"insert", "demo.noop", "--unique-scope", "done"},
      {"insert", "demo.noop", "--partition-key", ""},
      {"worker", "--rate-limit", "demo"},
      {"worker", "--rate-limit", "demo:x:1000"},
      {"worker", "--rate-limit", "demo:2:1000:4:5"},
      {"worker", "--rate-limit", ":2:1000"},
      {"worker", "--rate-limit", "demo:2:1000", "--rate-limit", "demo:3:1000"},
      {"worker", "--rate-limit", "demo:0:1000"},
      {"pause"},
      {"resume"},
      {"pause", "default", "other"},
      {"scale", "default"},
      {"scale", "default", "many"},
      {"scale", "default", "0"},
      {"scale", "default", "10001"},
      {"cancel"},
      {"cancel", "abc"},
      {"cancel", "1", "--reason", ""},
      {"cancel", "--status", "sleeping"},
      {"cancel", "--all", "--queue", "default"},
      {"retry"},
      {"retry", "--all", "1"},
      {"retry", "--older-than", "-1"},
      {"delete"},
      {"delete", "--older-than", "soon"},
      {"delete", "--fsm"},
      {"nodes", "extra"},
  };
  for (const auto& args : cases) {
    SCOPED_TRACE(::testing::PrintToString(args));
    CliResult r = Run(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    ExpectOneLineReason(r);
  }
  // Nothing was inserted by the refused commands.
  EXPECT_TRUE(ListJson({}).empty());
}

TEST_F(CliTest, UnknownIdOnShowExitsOne) {
  CliResult r = Run({"show", "987654321"});
  EXPECT_EQ(r.exit_code, 1);
  ExpectOneLineReason(r);
  EXPECT_EQ(r.err, "gen_durable: instance 987654321 not found\n");
}

TEST_F(CliTest, UnreachableDatabaseExitsOne) {
  const CliResult r = testing::RunChild(
      CliCommand({"stats", "--database", "host=/nonexistent/gd_socket dbname=x connect_timeout=2"}),
      {}, seconds(30));
  ASSERT_TRUE(r.exited);
  EXPECT_EQ(r.exit_code, 1);
  ExpectOneLineReason(r);
}

TEST_F(CliTest, HelpExitsZeroForEveryCommand) {
  for (const char* command :
       {"migrate", "insert", "signal", "show", "list", "stats", "worker", "demo", "bench", "pause",
        "resume", "scale", "cancel", "retry", "delete", "nodes", "dashboard"}) {
    CliResult r = Run({command, "--help"});
    EXPECT_EQ(r.exit_code, 0) << command << ": " << r.err;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << command << ": " << r.out;
  }
  CliResult root = Run({"--help"});
  EXPECT_EQ(root.exit_code, 0);
  EXPECT_NE(root.out.find("worker"), std::string::npos);
}

TEST_F(CliTest, MigratePrintsTheSchemaVersion) {
  CliResult r = Run({"migrate"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(Lines(r.out).size(), 1u);
  EXPECT_GT(std::stoi(r.out), 0);
  // Applying again is a no-op with the same version.
  EXPECT_EQ(Run({"migrate"}).out, r.out);
}

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

// The id a command printed alone on stdout (0, and a test failure, otherwise).
std::int64_t PrintedId(const CliResult& r) {
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const std::string digits = r.out.empty() ? "" : r.out.substr(0, r.out.size() - 1);
  const bool ok = !digits.empty() && r.out.back() == '\n' &&
                  digits.find_first_not_of("0123456789") == std::string::npos;
  EXPECT_TRUE(ok) << "out: [" << r.out << "]";
  return ok ? std::stoll(digits) : 0;
}

bool HasStatus(const Json& j, const char* status) { return j["status"] == status; }

// [start_us, end_us) of a demo.sleep result.
struct Span {
  std::int64_t start = 0;
  std::int64_t end = 0;
};
Span SleepSpan(const Json& info) {
  return {info["result"]["start_us"].get<std::int64_t>(),
          info["result"]["end_us"].get<std::int64_t>()};
}
bool Overlap(const Span& a, const Span& b) { return a.start < b.end && b.start < a.end; }

TEST_F(CliTest, SignalByIdWakesAnAwaitingCheckoutAndARepeatedDedupKeyReturnsTheSameId) {
  auto worker = StartWorker(kFastWorker);
  const std::int64_t id = Insert("demo.checkout", R"({"order": 7})");
  const std::string target = std::to_string(id);
  const Json parked = ShowUntil(id, [](const Json& j) { return HasStatus(j, "awaiting_signal"); });
  EXPECT_EQ(parked["step"], "await_pay") << parked.dump();

  // A signal it does not await stays in the inbox; a repeated dedup key delivers it once.
  const std::vector<std::string> note = {
      "signal", target, "note", "--payload", R"({"text": "gift wrap"})", "--dedup-key", "note-1"};
  const std::int64_t note_id = PrintedId(Run(note));
  ASSERT_GT(note_id, 0);
  EXPECT_EQ(PrintedId(Run(note)), note_id);
  std::vector<std::string> note_json = note;
  note_json.push_back("--json");
  CliResult as_json = Run(note_json);
  ASSERT_EQ(as_json.exit_code, 0) << as_json.err;
  EXPECT_EQ(Json::parse(as_json.out)["signal_id"], note_id) << as_json.out;

  const Json inbox = Show(id);
  EXPECT_EQ(inbox["status"], "awaiting_signal") << inbox.dump();
  ASSERT_EQ(inbox["signals"].size(), 1u) << inbox.dump();
  const Json& sg = inbox["signals"][0];
  EXPECT_EQ(sg["id"], note_id);
  EXPECT_EQ(sg["name"], "note");
  EXPECT_EQ(sg["payload"], Json({{"text", "gift wrap"}}));
  EXPECT_EQ(sg["consumed"], false);
  EXPECT_EQ(sg["dedup_key"], "note-1");
  CliResult human = Run({"show", target});
  ASSERT_EQ(human.exit_code, 0) << human.err;
  EXPECT_NE(human.out.find("#" + std::to_string(note_id) + R"( note {"text":"gift wrap"} pending)"),
            std::string::npos)
      << human.out;

  const std::int64_t paid_id =
      PrintedId(Run({"signal", target, "payment_confirmed", "--payload", R"({"amount": 5})"}));
  EXPECT_GT(paid_id, note_id);
  const Json done = ShowUntilTerminal(id);
  EXPECT_EQ(done["status"], "done") << done.dump();
  EXPECT_EQ(done["result"], Json({{"order", 7}, {"payment", {{"amount", 5}}}})) << done.dump();

  // A finished instance takes no more signals.
  CliResult late = Run({"signal", target, "payment_confirmed"});
  EXPECT_EQ(late.exit_code, 3) << late.err;
  ExpectOneLineReason(late);
  EXPECT_TRUE(StartsWith(late.err, "gen_durable: no_target: ")) << late.err;
}

TEST_F(CliTest, SignalByUniqueKeyWakesACheckoutAndAHeldKeyRefusesADuplicateInsert) {
  auto worker = StartWorker(kFastWorker);
  const std::int64_t id =
      Insert("demo.checkout", R"({"order": "A-2"})", {"--unique-key", "order-A-2"});
  const Json parked = ShowUntil(id, [](const Json& j) { return HasStatus(j, "awaiting_signal"); });
  EXPECT_EQ(parked["unique_key"], "order-A-2") << parked.dump();

  CliResult dup = Run(
      {"insert", "demo.checkout", "--state", R"({"order": "A-2"})", "--unique-key", "order-A-2"});
  EXPECT_EQ(dup.exit_code, 3) << dup.err;
  ExpectOneLineReason(dup);
  EXPECT_TRUE(StartsWith(dup.err, "gen_durable: duplicate: ")) << dup.err;

  EXPECT_GT(
      PrintedId(Run({"signal", "order-A-2", "payment_confirmed", "--payload", R"({"amount": 9})"})),
      0);
  const Json done = ShowUntilTerminal(id);
  EXPECT_EQ(done["status"], "done") << done.dump();
  EXPECT_EQ(done["result"], Json({{"order", "A-2"}, {"payment", {{"amount", 9}}}})) << done.dump();

  // The key is free again once its holder is terminal (the default scope is the live statuses).
  CliResult late = Run({"signal", "order-A-2", "payment_confirmed"});
  EXPECT_EQ(late.exit_code, 3) << late.err;
  ExpectOneLineReason(late);
  const std::int64_t again =
      Insert("demo.checkout", R"({"order": "A-2"})", {"--unique-key", "order-A-2"});
  EXPECT_GT(again, id);

  // A scope naming `done` keeps holding the key after completion.
  const std::int64_t once = Insert(
      "demo.noop", "{}", {"--unique-key", "once", "--unique-scope",
       "scheduled,runnable,executing,awaiting_signal,awaiting_children,done"});
  EXPECT_EQ(ShowUntilTerminal(once)["status"], "done");
  CliResult held = Run(
      {"insert", "demo.noop", "--unique-key", "once", "--unique-scope",
       "scheduled,runnable,executing,awaiting_signal,awaiting_children,done"});
  EXPECT_EQ(held.exit_code, 3) << held.err;
  ExpectOneLineReason(held);
}

// A webhook retried after the checkout finished: the sender must see the success it already
// had, not no_target. By unique key too, also once the key is held by a newer checkout (which
// must not take the old payment).
TEST_F(CliTest, ARedeliveredSignalExitsZeroWithTheFirstIdAfterItsTargetFinished) {
  auto worker = StartWorker(kFastWorker);
  const std::int64_t id = Insert("demo.checkout", R"({"order": 8})", {"--unique-key", "order-8"});
  const std::string target = std::to_string(id);
  ShowUntil(id, [](const Json& j) { return HasStatus(j, "awaiting_signal"); });
  const std::vector<std::string> pay = {"signal",    target,          "payment_confirmed",
                                        "--payload", R"({"amount": 3})", "--dedup-key",
                                        "pay-8"};
  const std::int64_t pay_id = PrintedId(Run(pay));
  ASSERT_GT(pay_id, 0);
  const Json done = ShowUntilTerminal(id);
  ASSERT_EQ(done["status"], "done") << done.dump();

  CliResult again = Run(pay);
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(PrintedId(again), pay_id);
  std::vector<std::string> pay_json = pay;
  pay_json.push_back("--json");
  CliResult as_json = Run(pay_json);
  ASSERT_EQ(as_json.exit_code, 0) << as_json.err;
  EXPECT_EQ(Json::parse(as_json.out)["signal_id"], pay_id) << as_json.out;
  // The kept record is listed, consumed.
  const Json shown = Show(id);
  ASSERT_EQ(shown["signals"].size(), 1u) << shown.dump();
  EXPECT_EQ(shown["signals"][0]["id"], pay_id);
  EXPECT_EQ(shown["signals"][0]["consumed"], true);

  // By unique key, with no live holder and then with a newer holder of the key.
  const std::vector<std::string> by_key = {"signal", "order-8", "payment_confirmed",
                                           "--dedup-key", "pay-8"};
  EXPECT_EQ(PrintedId(Run(by_key)), pay_id);
  const std::int64_t newer =
      Insert("demo.checkout", R"({"order": 8})", {"--unique-key", "order-8"});
  ShowUntil(newer, [](const Json& j) { return HasStatus(j, "awaiting_signal"); });
  EXPECT_EQ(PrintedId(Run(by_key)), pay_id);
  const Json untouched = Show(newer);
  EXPECT_EQ(untouched["status"], "awaiting_signal") << untouched.dump();
  EXPECT_TRUE(untouched["signals"].empty()) << untouched.dump();

  // Anything but a repeat is still refused by the finished instance.
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"signal", target, "payment_confirmed"},
        std::vector<std::string>{"signal", target, "payment_confirmed", "--dedup-key", "pay-9"}}) {
    SCOPED_TRACE(::testing::PrintToString(args));
    CliResult late = Run(args);
    EXPECT_EQ(late.exit_code, 3) << late.err;
    ExpectOneLineReason(late);
    EXPECT_TRUE(StartsWith(late.err, "gen_durable: no_target: ")) << late.err;
  }
}

TEST_F(CliTest, SignalToAnUnknownTargetExitsThree) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"signal", "987654321", "payment_confirmed"},
        std::vector<std::string>{"signal", "no-such-key", "payment_confirmed", "--payload", "1"},
        std::vector<std::string>{"signal", "--by-key", "42", "payment_confirmed"}}) {
    SCOPED_TRACE(::testing::PrintToString(args));
    CliResult r = Run(args);
    EXPECT_EQ(r.exit_code, 3) << r.err;
    ExpectOneLineReason(r);
    EXPECT_TRUE(StartsWith(r.err, "gen_durable: no_target: ")) << r.err;
  }
}

TEST_F(CliTest, FanoutJoinsItsChildrenAndCountsTheFailedOnes) {
  auto worker = StartWorker(kFastWorker);
  const std::int64_t id = Insert("demo.fanout", R"({"n": 6, "fail_every": 3})");
  const Json j = ShowUntilTerminal(id);
  EXPECT_EQ(j["status"], "done") << j.dump();
  EXPECT_EQ(j["result"], Json({{"done", 4}, {"failed", 2}})) << j.dump();
  ASSERT_EQ(j["children"].size(), 6u) << j.dump();
  int failed = 0;
  for (const Json& child_id : j["children"]) {
    const Json child = Show(child_id.get<std::int64_t>());
    EXPECT_EQ(child["fsm"], "demo.flaky") << child.dump();
    EXPECT_EQ(child["parent_id"], id) << child.dump();
    if (child["status"] == "failed") ++failed;
  }
  EXPECT_EQ(failed, 2);
  CliResult human = Run({"show", std::to_string(id)});
  ASSERT_EQ(human.exit_code, 0) << human.err;
  EXPECT_NE(human.out.find("(6)"), std::string::npos) << human.out;
}

TEST_F(CliTest, RateLimitedStepsStartNoFasterThanTheWorkersLimit) {
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(Insert("demo.limited", "{}"));
  std::vector<std::string> flags = kFastWorker;
  // Two limits, one with a burst, to exercise the repeated flag; `demo` allows 2 per second.
  flags.insert(flags.end(), {"--rate-limit", "demo:2:1000", "--rate-limit", "other:1:1000:3"});
  auto worker = StartWorker(flags);
  std::int64_t first = INT64_MAX;
  std::int64_t last = 0;
  for (std::int64_t id : ids) {
    const Json j = ShowUntilTerminal(id);
    ASSERT_EQ(j["status"], "done") << j.dump();
    const std::int64_t start = j["result"]["start_us"];
    first = std::min(first, start);
    last = std::max(last, start);
  }
  // A burst of 2, then 2 per second: 6 starts span about 2 s; assert a safe lower bound only.
  EXPECT_GE(last - first, 1'500'000) << "6 starts within " << (last - first) << " us";
  EXPECT_NE(worker->err().find("rate limits demo:2/1000ms,other:1/1000ms burst 3"),
            std::string::npos)
      << worker->err();
}

TEST_F(CliTest, InsertRateLimitThrottlesTheFirstStep) {
  const std::int64_t a = Insert("demo.sleep", R"({"ms": 0})", {"--rate-limit", "demo:acct-1"});
  const std::int64_t b = Insert("demo.sleep", R"({"ms": 0})", {"--rate-limit", "demo:acct-1"});
  std::vector<std::string> flags = kFastWorker;
  flags.insert(flags.end(), {"--rate-limit", "demo:1:1000"});
  auto worker = StartWorker(flags);
  const Json ja = ShowUntilTerminal(a);
  const Json jb = ShowUntilTerminal(b);
  ASSERT_EQ(ja["status"], "done") << ja.dump();
  ASSERT_EQ(jb["status"], "done") << jb.dump();
  // One token per second in that key's bucket: the second start waits for a refill.
  EXPECT_GE(std::abs(SleepSpan(jb).start - SleepSpan(ja).start), 900'000)
      << ja.dump() << " " << jb.dump();
}

TEST_F(CliTest, StepNamingAnUndefinedRateLimitFailsNamingIt) {
  const std::int64_t id = Insert("demo.limited", R"({"key": "k1"})");
  auto worker = StartWorker(kFastWorker);
  const Json j = ShowUntilTerminal(id);
  EXPECT_EQ(j["status"], "failed") << j.dump();
  const std::string error = j["last_error"].is_string() ? j["last_error"].get<std::string>() : "";
  EXPECT_NE(error.find("rate limit"), std::string::npos) << j.dump();
  EXPECT_NE(error.find("'demo'"), std::string::npos) << j.dump();
}

TEST_F(CliTest, PartitionKeySerializesStepsWhileDifferentKeysOverlap) {
  const std::int64_t a1 = Insert("demo.sleep", R"({"ms": 300})", {"--partition-key", "p"});
  const std::int64_t a2 = Insert("demo.sleep", R"({"ms": 300})", {"--partition-key", "p"});
  const std::int64_t b1 = Insert("demo.sleep", R"({"ms": 300})", {"--partition-key", "x"});
  const std::int64_t b2 = Insert("demo.sleep", R"({"ms": 300})", {"--partition-key", "y"});
  EXPECT_EQ(Show(a1)["partition_key"], "p");
  std::vector<std::string> flags = kFastWorker;
  flags.insert(flags.end(), {"--queues", "default:4"});
  auto worker = StartWorker(flags);
  std::map<std::int64_t, Span> spans;
  for (std::int64_t id : {a1, a2, b1, b2}) {
    const Json j = ShowUntilTerminal(id);
    ASSERT_EQ(j["status"], "done") << j.dump();
    spans[id] = SleepSpan(j);
  }
  EXPECT_FALSE(Overlap(spans[a1], spans[a2]))
      << "same key ran concurrently: [" << spans[a1].start << ", " << spans[a1].end << ") and ["
      << spans[a2].start << ", " << spans[a2].end << ")";
  EXPECT_TRUE(Overlap(spans[b1], spans[b2]))
      << "different keys did not overlap: [" << spans[b1].start << ", " << spans[b1].end
      << ") and [" << spans[b2].start << ", " << spans[b2].end << ")";
}

// A private GEN_DURABLE_HOME for the embedded default, removed at the end.
class EmbeddedHome {
 public:
  EmbeddedHome() {
    char dir[] = "/tmp/gd_cli_home_XXXXXX";  // short: the server's socket lives below it
    if (mkdtemp(dir) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = dir;
    // As root the server runs as `postgres`, which must reach the data directory.
    chmod(dir, 0755);
    if (geteuid() == 0) {
      if (passwd* pw = getpwnam("postgres"); pw != nullptr && chown(dir, pw->pw_uid, pw->pw_gid)) {
        throw std::runtime_error("chown failed");
      }
    }
  }
  ~EmbeddedHome() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  // The server's socket exists exactly while the server runs.
  bool ServerRunning() const { return std::filesystem::exists(path_ + "/pgdata/.s.PGSQL.5432"); }

 private:
  std::string path_;
};

bool WaitForStderr(const ChildProcess& p, const std::string& text, Clock::duration timeout) {
  const auto deadline = Clock::now() + timeout;
  while (p.err().find(text) == std::string::npos) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(50));
  }
  return true;
}

// With no --database the CLI creates and runs its own cluster. A process that only attached to
// a server another process started must leave it running when it exits.
TEST(CliEmbedded, RunsOnTheEmbeddedDefaultAndLeavesAnotherProcesssServerRunning) {
  EmbeddedHome home;
  auto run = [&](const std::vector<std::string>& args) {
    CliResult r = testing::RunChild(CliCommand(args), OnEmbeddedDefault(home.path()), seconds(120));
    if (!r.exited) ADD_FAILURE() << "gen_durable did not exit within 120 s";
    return r;
  };
  const CliResult stats = run({"stats", "--json"});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_NE(stats.err.find("starting embedded database at " + home.path() + "/pgdata"),
            std::string::npos)
      << stats.err;
  EXPECT_EQ(Json::parse(stats.out)["total"]["done"], 0);
  EXPECT_FALSE(home.ServerRunning()) << "the one-shot command started the server: it stops it";

  ChildProcess a(CliCommand({"worker", "--poll-interval", "100"}), OnEmbeddedDefault(home.path()));
  ASSERT_TRUE(WaitForStderr(a, "started node", seconds(60))) << a.err();
  ASSERT_TRUE(home.ServerRunning());
  {
    ChildProcess b(CliCommand({"worker", "--poll-interval", "100"}),
                   OnEmbeddedDefault(home.path()));
    ASSERT_TRUE(WaitForStderr(b, "started node", seconds(60))) << b.err();
    b.Signal(SIGTERM);
    ASSERT_TRUE(b.Wait(seconds(15))) << b.err();
    EXPECT_EQ(b.exit_code(), 0) << b.err();
  }
  EXPECT_TRUE(home.ServerRunning()) << "worker B stopped the server worker A started";

  const CliResult insert = run({"insert", "demo.chain", "--state", R"({"steps": 2})"});
  ASSERT_EQ(insert.exit_code, 0) << insert.err;
  const std::string id = insert.out.substr(0, insert.out.find('\n'));
  const auto deadline = Clock::now() + seconds(30);
  Json info;
  for (;;) {
    const CliResult show = run({"show", id, "--json"});
    ASSERT_EQ(show.exit_code, 0) << show.err;
    info = Json::parse(show.out);
    if (info["status"] == "done" || Clock::now() >= deadline) break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_EQ(info["status"], "done") << info.dump();
  EXPECT_EQ(info["result"], Json({{"steps", 2}}));

  a.Signal(SIGTERM);
  ASSERT_TRUE(a.Wait(seconds(15))) << a.err();
  EXPECT_EQ(a.exit_code(), 0) << a.err();
  EXPECT_FALSE(home.ServerRunning()) << "worker A started the server: it stops it on exit";
}

// --- bench ---

// The soak's output: one line per sample, then the summary; every line one JSON object.
struct SoakOutput {
  int exit_code = -1;
  std::string err;
  std::vector<Json> samples;
  Json summary;
};

class BenchTest : public CliTest {
 protected:
  // Runs `bench <args>`; expects exit 0 and one JSON object on stdout, and returns it.
  Json Bench(std::vector<std::string> args) {
    args.insert(args.begin(), "bench");
    CliResult r = Run(std::move(args));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const auto lines = Lines(r.out);
    EXPECT_EQ(lines.size(), 1u) << r.out;
    if (lines.size() != 1) return Json::object();
    Json j = Json::parse(lines[0]);
    EXPECT_EQ(j.value("system", ""), "gen_durable");
    return j;
  }

  // A rate the bench printed is its count over its elapsed time. Both are printed rounded (the
  // time to 1 ms, the rate to 0.1), which bounds how far they may disagree.
  static void ExpectRate(const Json& j, const char* rate, double count) {
    const double elapsed = j.value("elapsed_s", 0.0);
    ASSERT_GT(elapsed, 0.0) << j.dump();
    const double want = count / elapsed;
    const double slack = want * 0.0006 / elapsed + 0.1;
    EXPECT_NEAR(j.value(rate, 0.0), want, slack) << rate << " " << j.dump();
  }

  Json Totals() {
    CliResult r = Run({"stats", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Json::parse(r.out).at("total");
  }

  // Runs `bench soak <args>`: sample lines, then the summary; checks the exit status matches
  // the verdict.
  SoakOutput Soak(std::vector<std::string> args) {
    args.insert(args.begin(), {"bench", "soak"});
    CliResult r = Run(std::move(args));
    SoakOutput out;
    out.exit_code = r.exit_code;
    out.err = r.err;
    const auto lines = Lines(r.out);
    EXPECT_FALSE(lines.empty()) << r.err;
    for (std::size_t i = 0; i < lines.size(); ++i) {
      Json j = Json::parse(lines[i]);
      if (i + 1 < lines.size()) {
        EXPECT_EQ(j.value("type", ""), "sample") << lines[i];
        out.samples.push_back(std::move(j));
      } else {
        EXPECT_EQ(j.value("type", ""), "summary") << lines[i];
        out.summary = std::move(j);
      }
    }
    // The status is the verdict's: 0 only when every series levelled off and the load drained.
    const bool pass = out.summary.value("levels_off", Json()) == Json(true) &&
                      out.summary.value("drained", false);
    EXPECT_EQ(out.exit_code, pass ? 0 : 1) << r.err;
    if (!pass) {
      // The reason is the last line on stderr (the progress notes come before it).
      const auto err_lines = Lines(r.err);
      EXPECT_TRUE(!err_lines.empty() && StartsWith(err_lines.back(), "gen_durable: soak: "))
          << r.err;
    }
    return out;
  }
};

TEST_F(BenchTest, JobsDrainsEveryRowOnTwoNodesAndReportsItsFigures) {
  Json j = Bench({"jobs", "--count", "300", "--nodes", "2", "--concurrency", "4"});
  EXPECT_EQ(j.value("scenario", ""), "jobs");
  EXPECT_EQ(j.value("count", 0), 300);
  EXPECT_EQ(j.value("nodes", 0), 2);
  ExpectRate(j, "jobs_per_s", 300);
  EXPECT_EQ(j.value("steps_per_s", -1.0), j.value("jobs_per_s", 0.0));  // one step each
  EXPECT_GT(j.value("cpu_s", 0.0), 0.0);
  EXPECT_GT(j.value("rss_mb", 0.0), 0.0);
  EXPECT_EQ(j["settings"].value("concurrency", 0), 4);
  Json total = Totals();
  // Every job it inserted ran to done, and nothing else exists.
  EXPECT_EQ(total.value("done", 0), 300);
  EXPECT_EQ(total.value("executing", -1), 0);
  EXPECT_EQ(total.value("runnable", -1), 0);
  EXPECT_EQ(total.value("failed", -1), 0);
}

TEST_F(BenchTest, ChainRunsEveryStep) {
  Json j = Bench({"chain", "--count", "40", "--steps", "3"});
  EXPECT_EQ(j.value("steps", 0), 3);
  ExpectRate(j, "jobs_per_s", 40);
  ExpectRate(j, "steps_per_s", 40 * 3);
  EXPECT_EQ(Totals().value("done", 0), 40);
}

TEST_F(BenchTest, InsertLeavesTheRowsRunnable) {
  Json j = Bench({"insert", "--count", "500", "--batch", "100"});
  ExpectRate(j, "inserts_per_s", 500);
  Json total = Totals();
  EXPECT_EQ(total.value("runnable", 0), 500);
  EXPECT_EQ(total.value("done", -1), 0);  // no node ran
}

TEST_F(BenchTest, LatencyMeasuresInsertToStartAfterTheWarmup) {
  Json j = Bench({"latency", "--rate", "200", "--duration-s", "1.5"});
  // 300 inserts; the first second's 200 are warm-up.
  EXPECT_EQ(j.value("count", 0), 300);
  EXPECT_GE(j.value("samples", 0), 90);
  EXPECT_LE(j.value("samples", 0), 110);
  EXPECT_GT(j.value("p50_ms", 0.0), 0.0);
  EXPECT_LE(j.value("p50_ms", 0.0), j.value("p99_ms", 0.0));
  EXPECT_LE(j.value("p99_ms", 0.0), j.value("max_ms", 0.0));
  // The insert's own part of it.
  EXPECT_GT(j.value("insert_p50_ms", 0.0), 0.0);
  EXPECT_LE(j.value("insert_p50_ms", 0.0), j.value("insert_p99_ms", 0.0));
  EXPECT_EQ(Totals().value("done", 0), 300);
}

TEST_F(BenchTest, SignalMeasuresEveryResumedInstance) {
  Json j = Bench({"signal", "--count", "50", "--rate", "500"});
  EXPECT_EQ(j.value("samples", 0), 50);
  EXPECT_GT(j.value("p50_ms", 0.0), 0.0);
  EXPECT_LE(j.value("p50_ms", 0.0), j.value("max_ms", 0.0));
  EXPECT_EQ(Totals().value("done", 0), 50);
}

TEST_F(BenchTest, FanoutJoinsAllChildren) {
  Json j = Bench({"fanout", "--count", "100"});
  ExpectRate(j, "jobs_per_s", 100);
  EXPECT_EQ(Totals().value("done", 0), 101);
  // The parent's join saw all 100 children.
  const auto parents = ListJson({"--fsm", "bench.fanout"});
  ASSERT_EQ(parents.size(), 1u);
  const Json parent = Show(parents[0]["id"].get<std::int64_t>());
  EXPECT_EQ(parent["status"], "done");
  EXPECT_EQ(parent["result"], (Json{{"children", 100}})) << parent.dump();
}

TEST_F(BenchTest, LargeRunsBesideRetainedAndFutureRows) {
  Json j = Bench({"large", "--count", "200", "--large-rows", "1000"});
  EXPECT_EQ(j.value("large_rows", 0), 1000);
  Json total = Totals();
  EXPECT_EQ(total.value("done", 0), 1200);
  EXPECT_EQ(total.value("scheduled", 0), 1000);
}

TEST_F(BenchTest, SoakSamplesEveryIntervalAndSummarizes) {
  const SoakOutput out = Soak({"--rate", "200", "--duration-s", "6", "--sample-s", "1",
                               "--gc-retention-ms", "500", "--gc-interval-ms", "500",
                               "--concurrency", "8"});
  ASSERT_EQ(out.samples.size(), 6u);
  double last_elapsed = 0;
  std::int64_t sent = 0;
  std::int64_t completed = 0;
  std::int64_t gc_deleted = 0;
  for (const Json& s : out.samples) {
    EXPECT_GT(s.at("elapsed_s").get<double>(), last_elapsed) << s.dump();
    last_elapsed = s.at("elapsed_s").get<double>();
    for (const char* field :
         {"offered_per_s", "completed_per_s", "steps_per_s", "backlog", "parked", "p50_ms",
          "p99_ms", "load_rss_mb", "live_tuples", "dead_tuples", "autovacuum_count",
          "table_mb", "indexes_mb", "signals_mb", "signals_dead_tuples"}) {
      EXPECT_TRUE(s.contains(field) && s.at(field).is_number()) << field << " " << s.dump();
    }
    EXPECT_GT(s.at("rss_mb").get<double>(), 0.0) << s.dump();
    EXPECT_EQ(s.at("node_rss_mb").size(), 1u);
    // This database's sessions: the nodes', the load's and the bench's own at least.
    EXPECT_GE(s.at("connections").get<int>(), 3) << s.dump();
    EXPECT_GT(s.at("table_mb").get<double>(), 0.0);
    sent += s.at("sent").get<std::int64_t>();
    completed += s.at("completed").get<std::int64_t>();
    gc_deleted += s.at("gc_deleted").get<std::int64_t>();
  }
  EXPECT_GT(out.samples.back().at("completed").get<std::int64_t>(), 0);
  const Json& sum = out.summary;
  EXPECT_EQ(sum.value("scenario", ""), "soak");
  EXPECT_EQ(sum.value("samples", 0), 6);
  // 200/s for 6 s, every one of them finished.
  EXPECT_EQ(sum.value("sent", 0), 1200);
  EXPECT_EQ(sum.value("completed", 0), 1200);
  EXPECT_TRUE(sum.value("drained", false));
  EXPECT_LE(sent, 1200);
  EXPECT_LE(completed, 1200);
  EXPECT_GT(sum.value("steps", 0), 1200);  // chains, waits and fan-outs run several steps
  // A retention of half a second: GC deleted finished rows during the run.
  EXPECT_GT(gc_deleted, 0);
  EXPECT_GE(sum.value("gc_deleted", 0), gc_deleted);
  EXPECT_GT(sum.value("p50_ms", 0.0), 0.0);
  EXPECT_DOUBLE_EQ(sum.value("judged_from_s", 0.0), 2.0);  // the first third
  for (const char* series : {"rss_mb", "connections", "live_tuples", "dead_tuples", "table_mb",
                             "backlog", "completed_per_s"}) {
    ASSERT_TRUE(sum.at("series").contains(series)) << series;
    const Json& v = sum.at("series").at(series);
    EXPECT_EQ(v.value("samples", 0), 4) << series;  // elapsed 3, 4, 5 and 6
    EXPECT_TRUE(v.at("levels_off").is_boolean()) << series << " " << v.dump();
  }
  EXPECT_TRUE(sum.at("levels_off").is_boolean());
  Json total = Totals();
  for (const char* live : {"runnable", "executing", "awaiting_signal", "awaiting_children"}) {
    EXPECT_EQ(total.value(live, 0), 0) << live;
  }
}

TEST_F(BenchTest, TableThatKeepsGrowingWithoutGcFailsTheVerdict) {
  const SoakOutput out = Soak({"--rate", "500", "--duration-s", "8", "--sample-s", "1",
                               "--gc-interval-ms", "0", "--concurrency", "16"});
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_NE(out.err.find("live_tuples"), std::string::npos) << out.err;
  const Json& live = out.summary.at("series").at("live_tuples");
  EXPECT_EQ(live.at("levels_off"), Json(false)) << live.dump();
  EXPECT_GT(live.at("change").get<double>(), live.at("allowed").get<double>());
  EXPECT_EQ(out.summary.value("gc_deleted", -1), 0);
  EXPECT_EQ(out.summary.at("levels_off"), Json(false));
}

TEST_F(BenchTest, RefusesBadArgumentsAsUsageErrors) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"bench", "nosuch"}, {"bench", "jobs", "--nodes", "0"},
        {"bench", "jobs", "--rate", "0"}, {"bench", "chain", "--steps", "0"},
        {"bench", "soak", "--sample-s", "0"},
        {"bench", "soak", "--duration-s", "2", "--sample-s", "5"},
        {"bench", "soak", "--gc-retention-ms", "-1"},
        {"bench", "soak", "--gc-interval-ms", "-5"}}) {
    CliResult r = Run(args);
    EXPECT_EQ(r.exit_code, 2) << args[1] << " " << r.err;
    EXPECT_TRUE(StartsWith(r.err, "gen_durable: ")) << r.err;
  }
}

// A worker started while its database is down waits for it, noting each attempt, and a stop
// signal ends the wait with status 0. A database that does not exist is not waited for.
TEST_F(CliTest, WorkerWaitsForAnUnreachableServerButNotForAMissingDatabase) {
  ChildProcess waiting(
      CliCommand({"worker", "--database",
                  "host=/nonexistent/gd_socket dbname=x connect_timeout=2"}));
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

// --- operating it (docs/operations.md): the done-when checks of runtime queue control ---

class OpsCliTest : public CliTest {
 protected:
  std::vector<Json> Nodes() {
    CliResult r = Run({"nodes", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<Json> nodes;
    for (const auto& line : Lines(r.out)) nodes.push_back(Json::parse(line));
    return nodes;
  }

  // Polls `pred` every 100 ms for up to `timeout`.
  static bool Eventually(const std::function<bool()>& pred, Clock::duration timeout = seconds(30)) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(milliseconds(100));
    }
    return pred();
  }

  std::size_t CountStatus(const std::string& status) {
    return ListJson({"--status", status, "--limit", "1000"}).size();
  }
};

TEST_F(OpsCliTest, PauseFromOneCliStopsClaimsOnThreeWorkersAndResumeRestartsThem) {
  // kFastWorker, with polls every 200 ms.
  const std::vector<std::string> flags = {"--poll-interval", "200", "--lease-ttl", "10000",
                                          "--heartbeat-interval", "1000", "--reap-interval",
                                          "500", "--queues", "default:4"};
  std::vector<std::unique_ptr<ChildProcess>> workers;
  for (int i = 0; i < 3; ++i) workers.push_back(StartWorker(flags));
  ASSERT_TRUE(Eventually([&] { return Nodes().size() == 3; }))
      << "three workers did not start: " << Run({"nodes"}).out << workers[0]->err() << workers[1]->err();
  // They work before the pause.
  const auto before = Insert("demo.sleep", R"({"ms": 10})");
  EXPECT_EQ(ShowUntilTerminal(before)["status"], "done");

  CliResult paused = Run({"pause", "default"});
  ASSERT_EQ(paused.exit_code, 0) << paused.err;
  EXPECT_EQ(paused.out, "paused default (cluster-wide)\n");
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 9; ++i) ids.push_back(Insert("demo.sleep", R"({"ms": 10})"));
  // Every worker polls every 200 ms (and is woken by each insert's NOTIFY): ten poll intervals
  // give each of them many chances to claim, and none may.
  std::this_thread::sleep_for(seconds(2));
  EXPECT_EQ(CountStatus("runnable"), 9u);
  for (auto id : ids) EXPECT_EQ(Show(id)["attempt"], 0);
  CliResult stats = Run({"stats", "--json"});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  const Json st = Json::parse(stats.out);
  EXPECT_EQ(st["queues"]["default"]["runnable"], 9);  // the original contract still holds
  EXPECT_EQ(st["queue_info"]["default"]["paused"], true);
  EXPECT_EQ(st["queue_info"]["default"]["concurrency"].size(), 3u);  // 4 slots on each node
  EXPECT_EQ(Nodes().size(), 3u);  // all alive, just not claiming

  CliResult resumed = Run({"resume", "default", "--json"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(Json::parse(resumed.out), (Json{{"queue", "default"}, {"paused", false}}));
  for (auto id : ids) EXPECT_EQ(ShowUntilTerminal(id)["status"], "done");
  for (auto& w : workers) w->Signal(SIGTERM);
  for (auto& w : workers) EXPECT_TRUE(w->Wait(seconds(15))) << w->err();
}

TEST_F(OpsCliTest, CancellingARunningSleepEndsItCancelled) {
  std::vector<std::string> flags = kFastWorker;
  flags.insert(flags.end(), {"--queues", "default:2"});
  auto worker = StartWorker(flags);
  const auto id = Insert("demo.sleep", R"({"ms": 60000})");
  ShowUntil(id, [](const Json& j) { return j["status"] == "executing"; });
  CliResult r = Run({"cancel", std::to_string(id), "--reason", "operator said so"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, fmt::format("cancelled: -\nasked to stop (running): {}\n", id));
  const Json info = ShowUntilTerminal(id, seconds(15));
  EXPECT_EQ(info["status"], "cancelled") << info.dump();
  EXPECT_EQ(info["last_error"], "operator said so");
  ASSERT_GE(info["history"].size(), 1u) << info.dump();
  EXPECT_EQ(info["history"][0]["event"], "cancel");
  // A second cancel finds nothing live: refused, exit 3.
  CliResult again = Run({"cancel", std::to_string(id)});
  EXPECT_EQ(again.exit_code, 3) << again.err;
  ExpectOneLineReason(again);
  // Retry brings it back, and a cancel of the queued instance is immediate.
  CliResult retried = Run({"retry", std::to_string(id), "--json"});
  ASSERT_EQ(retried.exit_code, 0) << retried.err;
  EXPECT_EQ(Json::parse(retried.out), (Json{{"retried", {id}}}));
  ShowUntil(id, [](const Json& j) { return j["status"] == "executing"; });
  CliResult bulk = Run({"cancel", "--fsm", "demo.sleep", "--json"});
  ASSERT_EQ(bulk.exit_code, 0) << bulk.err;
  EXPECT_EQ(Json::parse(bulk.out)["requested"], Json({id}));
  EXPECT_EQ(ShowUntilTerminal(id, seconds(15))["status"], "cancelled");
  worker->Signal(SIGTERM);
  EXPECT_TRUE(worker->Wait(seconds(15))) << worker->err();
}

TEST_F(OpsCliTest, AutoscaledQueueGrowsUnderASleepBacklogAndShrinksAfterIt) {
  std::vector<std::string> flags = kFastWorker;
  flags.insert(flags.end(), {"--queues", "default:1-8", "--autoscale-interval", "200",
                             "--autoscale-cooldown", "500"});
  auto worker = StartWorker(flags);
  auto slots = [&] {
    auto nodes = Nodes();
    return nodes.size() == 1 ? nodes[0]["queues"].value("default", -1) : -1;
  };
  ASSERT_TRUE(Eventually([&] { return slots() == 1; })) << "the worker did not start with 1 slot";
  // The backlog is built in the paused queue: inserted one CLI process at a time, a busy
  // machine inserts no faster than one slot runs 300 ms sleeps, and the backlog never forms.
  // A paused queue has no backlog for the autoscaler, so it stays at 1 slot until the resume.
  ASSERT_EQ(Run({"pause", "default"}).exit_code, 0);
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 40; ++i) ids.push_back(Insert("demo.sleep", R"({"ms": 300})"));
  EXPECT_EQ(slots(), 1);
  ASSERT_EQ(Run({"resume", "default"}).exit_code, 0);
  EXPECT_TRUE(Eventually([&] { return slots() == 8; })) << "did not grow to 8: " << slots();
  // The slots were used: sleeps ran side by side (with 1 slot no two overlap).
  std::vector<std::pair<std::int64_t, int>> edges;  // (time, +1 start / -1 end)
  for (auto id : ids) {
    const Json info = ShowUntilTerminal(id);
    EXPECT_EQ(info["status"], "done");
    if (info["status"] != "done") continue;
    edges.emplace_back(info["result"]["start_us"].get<std::int64_t>(), 1);
    edges.emplace_back(info["result"]["end_us"].get<std::int64_t>(), -1);
  }
  std::sort(edges.begin(), edges.end());  // an end sorts before a start at the same moment
  int running = 0;
  int most = 0;
  for (const auto& [at, delta] : edges) {
    running += delta;
    most = std::max(most, running);
  }
  EXPECT_GT(most, 1) << "no two sleeps ran at once: the queue never ran on more than one slot";
  EXPECT_TRUE(Eventually([&] { return slots() == 1; })) << "did not shrink to 1: " << slots();
  worker->Signal(SIGTERM);
  ASSERT_TRUE(worker->Wait(seconds(15))) << worker->err();
  EXPECT_NE(worker->err().find("queues default:1-8"), std::string::npos) << worker->err();
}

TEST_F(OpsCliTest, ScaleRetryAndDeleteReportAndRefuseAsDocumented) {
  std::vector<std::string> flags = kFastWorker;
  flags.insert(flags.end(), {"--queues", "default:4"});
  auto worker = StartWorker(flags);
  ASSERT_TRUE(Eventually([&] { return Nodes().size() == 1; }));
  const std::string node = Nodes()[0]["id"];
  CliResult scaled = Run({"scale", "default", "2", "--node", node});
  ASSERT_EQ(scaled.exit_code, 0) << scaled.err;
  EXPECT_EQ(scaled.out, fmt::format("asked 1 node(s) to run default with 2 slots: {}\n", node));
  EXPECT_TRUE(Eventually([&] { return Nodes()[0]["queues"]["default"] == 2; }));

  const auto failed = Insert("demo.flaky", R"({"fail_times": 9})");
  EXPECT_EQ(ShowUntilTerminal(failed)["status"], "failed");
  const auto done = Insert("demo.noop", "{}");
  EXPECT_EQ(ShowUntilTerminal(done)["status"], "done");
  CliResult not_failed = Run({"retry", std::to_string(done)});
  EXPECT_EQ(not_failed.exit_code, 3);
  EXPECT_EQ(not_failed.out, "retried: -\n");
  CliResult by_filter = Run({"retry", "--status", "failed", "--json"});
  ASSERT_EQ(by_filter.exit_code, 0) << by_filter.err;
  EXPECT_EQ(Json::parse(by_filter.out)["retried"], Json({failed}));
  EXPECT_EQ(ShowUntilTerminal(failed)["status"], "failed");  // it fails again, as it should

  CliResult nothing = Run({"delete"});
  EXPECT_EQ(nothing.exit_code, 2);
  ExpectOneLineReason(nothing);
  CliResult deleted = Run({"delete", "--status", "done", "--json"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_EQ(Json::parse(deleted.out), (Json{{"deleted", 1}}));
  EXPECT_EQ(Run({"show", std::to_string(done)}).exit_code, 1);
  EXPECT_EQ(Run({"scale", "default", "0"}).exit_code, 2);
  EXPECT_EQ(Run({"cancel", "--status", "bogus"}).exit_code, 2);
  EXPECT_EQ(Run({"cancel", "--all", "7"}).exit_code, 2);
  worker->Signal(SIGTERM);
  EXPECT_TRUE(worker->Wait(seconds(15))) << worker->err();
}

// A pause that lands while every worker is busy with a backlog: the steps running finish, and
// from then on no row of the queue moves until the resume. A claim would change a row's status,
// attempt or updated_at (database timestamps), so those are compared across many poll intervals.
TEST_F(OpsCliTest, PauseUnderABacklogLetsRunningStepsFinishAndClaimsNothingMore) {
  const std::vector<std::string> flags = {"--poll-interval", "200", "--lease-ttl", "10000",
                                          "--heartbeat-interval", "1000", "--reap-interval",
                                          "500", "--queues", "default:2"};
  // The backlog is inserted into the paused queue, so it is whole when the workers start.
  ASSERT_EQ(Run({"pause", "default"}).exit_code, 0);
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 40; ++i) ids.push_back(Insert("demo.sleep", R"({"ms": 1000})"));
  std::vector<std::unique_ptr<ChildProcess>> workers;
  for (int i = 0; i < 3; ++i) workers.push_back(StartWorker(flags));
  ASSERT_TRUE(Eventually([&] { return Nodes().size() == 3; }));
  EXPECT_EQ(CountStatus("runnable"), 40u);

  ASSERT_EQ(Run({"resume", "default"}).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return CountStatus("executing") > 0; }))
      << "no worker claimed after the resume";
  CliResult paused = Run({"pause", "default", "--json"});
  ASSERT_EQ(paused.exit_code, 0) << paused.err;
  EXPECT_EQ(Json::parse(paused.out), (Json{{"queue", "default"}, {"paused", true}}));
  // 40 one-second steps on 6 slots take about 7 s: the pause lands with most still waiting.
  ASSERT_TRUE(Eventually([&] { return CountStatus("executing") == 0; }))
      << "the steps running at the pause did not finish";
  std::map<std::int64_t, std::string> waiting;  // id -> updated_at, as the database set it
  for (const Json& row : ListJson({"--status", "runnable", "--limit", "1000"})) {
    waiting[row["id"].get<std::int64_t>()] = row["updated_at"];
  }
  ASSERT_FALSE(waiting.empty()) << "the backlog drained before the pause landed";
  const std::size_t ran = ids.size() - waiting.size();
  EXPECT_EQ(CountStatus("done"), ran) << "a step running at the pause did not end done";

  // Ten poll intervals of three workers: any claim would show.
  std::this_thread::sleep_for(seconds(2));
  for (const Json& row : ListJson({"--limit", "1000"})) {
    const auto id = row["id"].get<std::int64_t>();
    const auto it = waiting.find(id);
    if (it == waiting.end()) {
      EXPECT_EQ(row["status"], "done") << row.dump();
      continue;
    }
    EXPECT_EQ(row["status"], "runnable") << row.dump();
    EXPECT_EQ(row["attempt"], 0) << row.dump();
    EXPECT_EQ(row["updated_at"], it->second) << "instance " << id << " moved while paused";
  }

  ASSERT_EQ(Run({"resume", "default"}).exit_code, 0);
  for (const auto& [id, _] : waiting) EXPECT_EQ(ShowUntilTerminal(id)["status"], "done");
  for (auto& w : workers) w->Signal(SIGTERM);
  for (auto& w : workers) EXPECT_TRUE(w->Wait(seconds(15))) << w->err();
}

// Queued instances need no worker to be cancelled, retried or deleted; each step shows in the
// instance's history.
TEST_F(OpsCliTest, CancelRetryAndDeleteOfQueuedInstancesNeedNoWorker) {
  const auto a = Insert("demo.noop", "{}");
  const auto b = Insert("demo.noop", "{}", {"--queue", "other"});
  const auto c = Insert("demo.chain", R"({"steps": 2})", {"--queue", "other"});

  CliResult cancelled = Run({"cancel", std::to_string(a), "--json"});
  ASSERT_EQ(cancelled.exit_code, 0) << cancelled.err;
  EXPECT_EQ(Json::parse(cancelled.out), (Json{{"cancelled", {a}}, {"requested", Json::array()}}));
  Json info = Show(a);
  EXPECT_EQ(info["status"], "cancelled");
  EXPECT_EQ(info["last_error"], "cancelled");
  ASSERT_EQ(info["history"].size(), 1u) << info.dump();
  EXPECT_EQ(info["history"][0]["event"], "cancel");
  EXPECT_EQ(info["history"][0]["status"], "cancelled");
  EXPECT_EQ(info["history"][0]["node"], "client");
  CliResult text = Run({"show", std::to_string(a)});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("\nhistory:"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(" cancel perform -> cancelled (attempt 0, client)"), std::string::npos)
      << text.out;

  // By filter: the queue `other`, both of its instances.
  CliResult by_queue = Run({"cancel", "--queue", "other", "--reason", "queue retired"});
  ASSERT_EQ(by_queue.exit_code, 0) << by_queue.err;
  EXPECT_EQ(by_queue.out, fmt::format("cancelled: {} {}\nasked to stop (running): -\n",
                                      std::min(b, c), std::max(b, c)));
  EXPECT_EQ(Show(c)["last_error"], "queue retired");

  CliResult retried = Run({"retry", std::to_string(a), std::to_string(b)});
  ASSERT_EQ(retried.exit_code, 0) << retried.err;
  EXPECT_EQ(retried.out, fmt::format("retried: {} {}\n", a, b));
  info = Show(a);
  EXPECT_EQ(info["status"], "runnable");
  EXPECT_EQ(info["attempt"], 0);
  ASSERT_EQ(info["history"].size(), 2u) << info.dump();
  EXPECT_EQ(info["history"][1]["event"], "retry");
  EXPECT_EQ(info["history"][1]["status"], "runnable");

  // Recent rows are not "older than an hour"; --all deletes what is left.
  CliResult old = Run({"delete", "--older-than", "3600000", "--json"});
  ASSERT_EQ(old.exit_code, 0) << old.err;
  EXPECT_EQ(Json::parse(old.out), (Json{{"deleted", 0}}));
  CliResult one = Run({"delete", std::to_string(c)});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_EQ(one.out, "deleted 1\n");
  EXPECT_EQ(Run({"show", std::to_string(c)}).exit_code, 1);
  CliResult all = Run({"delete", "--all", "--json"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(Json::parse(all.out), (Json{{"deleted", 2}}));
  EXPECT_TRUE(ListJson({}).empty());
}

// Refusals on domain grounds exit 3 with one line on stderr.
TEST_F(OpsCliTest, CancelAndRetryOfInstancesTheyDoNotApplyToExitThree) {
  const auto queued = Insert("demo.noop", "{}");
  CliResult unknown = Run({"cancel", "987654321"});
  EXPECT_EQ(unknown.exit_code, 3) << unknown.err;
  ExpectOneLineReason(unknown);
  EXPECT_NE(unknown.err.find("no_target"), std::string::npos) << unknown.err;

  // Not failed or cancelled: retry refuses, and prints what it did retry (nothing).
  for (const std::string& id : {std::to_string(queued), std::string("987654321")}) {
    CliResult r = Run({"retry", id});
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_EQ(r.out, "retried: -\n");
    EXPECT_TRUE(StartsWith(r.err, "gen_durable: not retried: " + id)) << r.err;
    EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;
  }
  EXPECT_EQ(Show(queued)["status"], "runnable");
  // A filter that matches nothing is no refusal: there was nothing to do.
  CliResult none = Run({"retry", "--status", "failed", "--json"});
  EXPECT_EQ(none.exit_code, 0) << none.err;
  EXPECT_EQ(Json::parse(none.out), (Json{{"retried", Json::array()}}));
}

// `nodes` and `stats` show each live node with what it runs, and per queue its state.
TEST_F(OpsCliTest, NodesAndStatsShowWhatEachNodeRunsAndEachQueuesState) {
  std::vector<std::string> flags = kFastWorker;
  flags.insert(flags.end(), {"--queues", "default:3", "--name", "ops-a"});
  auto worker = StartWorker(flags);
  const auto running = Insert("demo.sleep", R"({"ms": 60000})");
  ShowUntil(running, [](const Json& j) { return j["status"] == "executing"; });
  ASSERT_TRUE(Eventually([&] {
    auto n = Nodes();
    return n.size() == 1 && n[0]["running"] == 1;
  }));
  const Json node = Nodes()[0];
  EXPECT_EQ(node["engine"], "ops-a");
  EXPECT_EQ(node["pid"], worker->pid());
  EXPECT_FALSE(node["host"].get<std::string>().empty());
  EXPECT_EQ(node["queues"], (Json{{"default", 3}}));
  EXPECT_FALSE(node["heartbeat_at"].get<std::string>().empty());
  EXPECT_FALSE(node["started_at"].get<std::string>().empty());
  const std::string node_id = node["id"];
  EXPECT_NE(node_id.find(std::to_string(worker->pid())), std::string::npos) << node_id;

  CliResult table = Run({"nodes"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  const auto rows = Lines(table.out);
  ASSERT_EQ(rows.size(), 2u) << table.out;
  EXPECT_TRUE(StartsWith(rows[0], "NODE")) << rows[0];
  for (const char* column : {"ENGINE", "PID", "QUEUES", "RUNNING", "HEARTBEAT"}) {
    EXPECT_NE(rows[0].find(column), std::string::npos) << rows[0];
  }
  EXPECT_TRUE(StartsWith(rows[1], node_id)) << rows[1];
  EXPECT_NE(rows[1].find("default:3"), std::string::npos) << rows[1];

  // Paused, with one ready row waiting and one step running.
  ASSERT_EQ(Run({"pause", "default"}).exit_code, 0);
  Insert("demo.noop", "{}");
  CliResult stats = Run({"stats", "--json"});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  Json st = Json::parse(stats.out);
  EXPECT_EQ(st["queues"]["default"]["executing"], 1);
  EXPECT_EQ(st["queues"]["default"]["runnable"], 1);
  EXPECT_EQ(st["total"]["runnable"], 1);
  const Json& q = st["queue_info"]["default"];
  EXPECT_EQ(q["paused"], true);
  ASSERT_TRUE(q["oldest_ready_ms"].is_number()) << q.dump();
  EXPECT_GE(q["oldest_ready_ms"].get<double>(), 0);
  EXPECT_EQ(q["concurrency"], (Json{{node_id, 3}}));
  EXPECT_EQ(q["completed_last_minute"], 0);
  CliResult stats_table = Run({"stats"});
  ASSERT_EQ(stats_table.exit_code, 0) << stats_table.err;
  const auto lines = Lines(stats_table.out);
  ASSERT_GE(lines.size(), 3u) << stats_table.out;
  for (const char* column : {"paused", "oldest_ready", "done_1m", "slots"}) {
    EXPECT_NE(lines[0].find(column), std::string::npos) << lines[0];
  }
  EXPECT_TRUE(StartsWith(lines[1], "default ")) << lines[1];
  EXPECT_NE(lines[1].find(" yes "), std::string::npos) << lines[1];
  for (const auto& line : lines) EXPECT_NE(line.back(), ' ') << "[" << line << "]";

  // The running step, cancelled, counts as ended in the last minute.
  ASSERT_EQ(Run({"cancel", std::to_string(running)}).exit_code, 0);
  EXPECT_EQ(ShowUntilTerminal(running, seconds(15))["status"], "cancelled");
  st = Json::parse(Run({"stats", "--json"}).out);
  EXPECT_EQ(st["queue_info"]["default"]["completed_last_minute"], 1);
  worker->Signal(SIGTERM);
  EXPECT_TRUE(worker->Wait(seconds(15))) << worker->err();
}

// The port a server reported on stderr as "http://127.0.0.1:PORT/...", or 0.
int PortIn(const std::string& err) {
  const std::string marker = "http://127.0.0.1:";
  const auto at = err.find(marker);
  return at == std::string::npos ? 0 : std::atoi(err.c_str() + at + marker.size());
}

TEST_F(OpsCliTest, WorkerServesPrometheusMetricsAndTheDashboardCommandServesTheApi) {
  std::vector<std::string> flags = kFastWorker;
  flags.insert(flags.end(), {"--queues", "default:2", "--metrics-port", "0"});
  auto worker = StartWorker(flags);
  ASSERT_TRUE(Eventually([&] { return PortIn(worker->err()) > 0; })) << worker->err();
  const auto id = Insert("demo.chain", R"({"steps": 3})");
  EXPECT_EQ(ShowUntilTerminal(id)["status"], "done");
  httplib::Client metrics("127.0.0.1", PortIn(worker->err()));
  auto res = metrics.Get("/metrics");
  ASSERT_TRUE(res) << worker->err();
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->body.find(
                "gen_durable_steps_total{engine=\"gen_durable\",fsm=\"demo.chain\",kind=\"done\"} 1"),
            std::string::npos)
      << res->body;
  EXPECT_NE(res->body.find("gen_durable_queue_depth{engine=\"gen_durable\",queue=\"default\","
                           "status=\"done\"} 1"),
            std::string::npos)
      << res->body;

  auto dashboard = Start({"dashboard", "--port", "0"});
  ASSERT_TRUE(Eventually([&] { return PortIn(dashboard->err()) > 0; })) << dashboard->err();
  httplib::Client ui("127.0.0.1", PortIn(dashboard->err()));
  auto overview = ui.Get("/api/overview");
  ASSERT_TRUE(overview) << dashboard->err();
  const Json o = Json::parse(overview->body);
  EXPECT_EQ(o["nodes"].size(), 1u);
  EXPECT_EQ(o["queues"][0]["counts"]["done"], 1);
  EXPECT_NE(ui.Get("/")->body.find("<title>gen_durable</title>"), std::string::npos);
  dashboard->Signal(SIGTERM);
  ASSERT_TRUE(dashboard->Wait(seconds(10)));
  EXPECT_EQ(dashboard->exit_code(), 0) << dashboard->err();
  worker->Signal(SIGTERM);
  EXPECT_TRUE(worker->Wait(seconds(15))) << worker->err();
}

TEST_F(OpsCliTest, DashboardTokenFileAndReadOnlyFlags) {
  const std::string token_file =
      (std::filesystem::temp_directory_path() / ("gd_token_" + std::to_string(::getpid())))
          .string();
  {
    std::ofstream out(token_file);
    out << "cli-token-42\n";
  }
  std::filesystem::permissions(token_file, std::filesystem::perms::owner_read |
                                               std::filesystem::perms::owner_write);
  auto dashboard =
      Start({"dashboard", "--port", "0", "--token-file", token_file, "--read-only"});
  ASSERT_TRUE(Eventually([&] { return PortIn(dashboard->err()) > 0; })) << dashboard->err();
  EXPECT_NE(dashboard->err().find("token required, read-only"), std::string::npos)
      << dashboard->err();
  httplib::Client ui("127.0.0.1", PortIn(dashboard->err()));
  EXPECT_EQ(ui.Get("/api/overview")->status, 401);
  const httplib::Headers auth = {{"Authorization", "Bearer cli-token-42"}};
  EXPECT_EQ(ui.Get("/api/overview", auth)->status, 200);
  EXPECT_EQ(ui.Post("/api/queues/default/pause", auth, "{}", "application/json")->status, 403);
  dashboard->Signal(SIGTERM);
  ASSERT_TRUE(dashboard->Wait(seconds(10)));
  EXPECT_EQ(dashboard->exit_code(), 0) << dashboard->err();

  // A token file others can read is refused (exit 2, before anything listens).
  std::filesystem::permissions(token_file, std::filesystem::perms::group_read,
                               std::filesystem::perm_options::add);
  auto loose = Start({"dashboard", "--port", "0", "--token-file", token_file});
  ASSERT_TRUE(loose->Wait(seconds(10)));
  EXPECT_EQ(loose->exit_code(), 2) << loose->err();
  EXPECT_NE(loose->err().find("chmod 600"), std::string::npos) << loose->err();
  std::filesystem::remove(token_file);
}

// The embedded default hands the CLI a connection as the application role, which owns the
// database and the tables it migrates (in the default schema, public) but is no superuser.
TEST(CliEmbedded, ConnectsAsANonSuperuserThatOwnsTheTables) {
  EmbeddedHome home;
  const CliResult migrate =
      testing::RunChild(CliCommand({"migrate"}), OnEmbeddedDefault(home.path()), seconds(120));
  ASSERT_EQ(migrate.exit_code, 0) << migrate.err;

  detail::EmbeddedOptions o;
  o.data_dir = home.path() + "/pgdata";
  auto cluster = detail::EmbeddedCluster::Start(o);
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(
      PQconnectdb(cluster->ConnInfo("gen_durable").c_str()), &PQfinish);
  ASSERT_EQ(PQstatus(conn.get()), CONNECTION_OK) << PQerrorMessage(conn.get());
  std::unique_ptr<PGresult, decltype(&PQclear)> res(
      PQexec(conn.get(),
             "SELECT r.rolname, r.rolsuper FROM pg_database d JOIN pg_roles r "
             "ON r.oid = d.datdba WHERE d.datname = 'gen_durable' "
             "UNION ALL SELECT r.rolname, r.rolsuper FROM pg_class c JOIN pg_roles r "
             "ON r.oid = c.relowner WHERE c.oid = 'public.gd_instances'::regclass"),
      &PQclear);
  ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQerrorMessage(conn.get());
  ASSERT_EQ(PQntuples(res.get()), 2);
  for (int row = 0; row < 2; ++row) {
    EXPECT_STREQ(PQgetvalue(res.get(), row, 1), "f")
        << "owned by " << PQgetvalue(res.get(), row, 0) << ", a superuser";
  }
  // The connection the CLI uses: `current_user` is no superuser.
  std::unique_ptr<PGconn, decltype(&PQfinish)> app(
      PQconnectdb(cluster->AppConnInfo("gen_durable").c_str()), &PQfinish);
  ASSERT_EQ(PQstatus(app.get()), CONNECTION_OK) << PQerrorMessage(app.get());
  res.reset(PQexec(app.get(), "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"));
  ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQerrorMessage(app.get());
  EXPECT_STREQ(PQgetvalue(res.get(), 0, 0), "f");
  app.reset();
  conn.reset();
  cluster->Stop();
}

// A `gen_durable` database made by an earlier version belongs to the superuser, like its tables:
// the next start hands it over to the application role, and the commands keep working.
TEST(CliEmbedded, HandsADatabaseOfAnEarlierVersionOverToTheApplicationRole) {
  EmbeddedHome home;
  detail::EmbeddedOptions o;
  o.data_dir = home.path() + "/pgdata";
  {
    auto cluster = detail::EmbeddedCluster::Start(o);
    cluster->CreateDatabase("gen_durable");  // as `postgres`, as earlier versions did
    const CliResult old = testing::RunChild(
        CliCommand({"insert", "demo.chain", "--database", cluster->ConnInfo("gen_durable")}),
        {}, seconds(120));
    ASSERT_EQ(old.exit_code, 0) << old.err;
    cluster->Stop();
  }
  const CliResult stats =
      testing::RunChild(CliCommand({"stats", "--json"}), OnEmbeddedDefault(home.path()),
                        seconds(120));
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_EQ(Json::parse(stats.out)["total"]["runnable"], 1) << stats.out;

  auto cluster = detail::EmbeddedCluster::Start(o);
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(
      PQconnectdb(cluster->ConnInfo("gen_durable").c_str()), &PQfinish);
  ASSERT_EQ(PQstatus(conn.get()), CONNECTION_OK) << PQerrorMessage(conn.get());
  std::unique_ptr<PGresult, decltype(&PQclear)> res(
      PQexec(conn.get(),
             "SELECT c.relname || ' ' || r.rolname FROM pg_class c "
             "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_roles r ON r.oid = c.relowner "
             "WHERE n.nspname = 'public' AND r.rolsuper "
             "UNION ALL SELECT p.proname || ' ' || r.rolname FROM pg_proc p "
             "JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_roles r ON r.oid = p.proowner "
             "WHERE n.nspname = 'public' AND r.rolsuper "
             "UNION ALL SELECT 'database ' || r.rolname FROM pg_database d "
             "JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = 'gen_durable' AND r.rolsuper"),
      &PQclear);
  ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQerrorMessage(conn.get());
  for (int row = 0; row < PQntuples(res.get()); ++row) {
    ADD_FAILURE() << "still owned by a superuser: " << PQgetvalue(res.get(), row, 0);
  }
  conn.reset();
  cluster->Stop();
}

constexpr char kSecret[] = "S3cretPassw0rdXyz";

void ExpectNoSecret(const CliResult& r, const std::string& secret, const std::string& what) {
  EXPECT_EQ(r.out.find(secret), std::string::npos) << what << "\nstdout: " << r.out;
  EXPECT_EQ(r.err.find(secret), std::string::npos) << what << "\nstderr: " << r.err;
}

ChildOptions WithoutDatabaseUrl() {
  ChildOptions options;
  options.unset_env = {"GEN_DURABLE_DATABASE_URL"};
  return options;
}

// A password given with --database draws a warning naming the safer places, and is printed
// nowhere: not when the command works, not in libpq's error when the connection fails (libpq
// quotes a URI it cannot parse, and the token it stopped at).
TEST(CliSecrets, PasswordOnTheCommandLineWarnsAndIsNeverPrinted) {
  const std::string db = testing::FreshDatabase();
  const std::string secret = kSecret;
  struct Case {
    std::vector<std::string> args;
    bool connects;
    std::string hidden;  // what must not appear
  };
  const std::vector<Case> cases = {
      {{"stats", "--database", db + " password=" + secret}, true, secret},
      {{"stats", "--database=" + db + " password='" + secret + "'"}, true, secret},
      {{"stats", "--database", "postgresql://gd_user:" + secret + "@127.0.0.1:1/nodb"}, false,
       secret},
      {{"stats", "--database", "postgresql://gd_user:" + secret + "@[::1/nodb"}, false, secret},
      {{"stats", "--database", "postgresql://gd_user@[::1/nodb?password=" + secret}, false,
       secret},
      // `password=S3cre tPassw0rdXyz`: libpq quotes the second word as a keyword missing "=".
      {{"stats", "--database",
        "host=/nonexistent password=" + secret.substr(0, 5) + " " + secret.substr(5) + " x=1"},
       false, secret.substr(5)},
      // A positional argument by mistake: the parser's error quotes it.
      {{"stats", "postgresql://gd_user:" + secret + "@127.0.0.1:1/nodb"}, false, secret},
  };
  for (const Case& c : cases) {
    const std::string what = fmt::format("args: {}", fmt::join(c.args, " | "));
    const CliResult r = testing::RunChild(CliCommand(c.args), WithoutDatabaseUrl(), seconds(60));
    ASSERT_TRUE(r.exited) << what;
    if (c.connects) {
      EXPECT_EQ(r.exit_code, 0) << what << "\n" << r.err;
    } else {
      EXPECT_NE(r.exit_code, 0) << what;
    }
    EXPECT_NE(r.err.find("warning: a password on the command line"), std::string::npos)
        << what << "\n" << r.err;
    EXPECT_NE(r.err.find("GEN_DURABLE_DATABASE_URL"), std::string::npos) << what;
    EXPECT_NE(r.err.find("PGPASSFILE"), std::string::npos) << what;
    ExpectNoSecret(r, c.hidden, what);
  }
}

// While a worker runs, `ps` and /proc/PID/cmdline show its arguments: the password in them is
// overwritten once the command line is parsed (it was visible until then, which no program can
// prevent).
TEST(CliSecrets, RunningWorkerDoesNotShowThePasswordInItsCommandLine) {
  // Port 1 refuses connections: the worker keeps retrying, so it stays up to be looked at.
  const std::string url = "postgresql://gd_user:" + std::string(kSecret) + "@127.0.0.1:1/nodb";
  ChildProcess worker(CliCommand({"worker", "--poll-interval", "100", "--database", url}),
                      WithoutDatabaseUrl());
  ASSERT_TRUE(WaitForStderr(worker, "database unavailable", seconds(60))) << worker.err();
  std::ifstream in("/proc/" + std::to_string(worker.pid()) + "/cmdline", std::ios::binary);
  std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_NE(cmdline.find("127.0.0.1:1/nodb"), std::string::npos) << cmdline;
  EXPECT_EQ(cmdline.find(kSecret), std::string::npos) << cmdline;
  EXPECT_EQ(worker.err().find(kSecret), std::string::npos) << worker.err();
  worker.Signal(SIGTERM);
  EXPECT_TRUE(worker.Wait(seconds(15))) << worker.err();
}

// The same connection string from the environment is the recommended way: no warning, and a
// failure still does not print the password.
TEST(CliSecrets, DatabaseUrlFromTheEnvironmentDoesNotWarn) {
  const std::string db = testing::FreshDatabase();
  ChildOptions ok;
  ok.set_env = {"GEN_DURABLE_DATABASE_URL=" + db + " password=" + kSecret};
  const CliResult works = testing::RunChild(CliCommand({"stats"}), ok, seconds(60));
  EXPECT_EQ(works.exit_code, 0) << works.err;
  EXPECT_EQ(works.err.find("warning"), std::string::npos) << works.err;
  ExpectNoSecret(works, kSecret, "from the environment");

  ChildOptions bad;
  bad.set_env = {"GEN_DURABLE_DATABASE_URL=postgresql://gd_user:" + std::string(kSecret) +
                 "@[::1/nodb"};
  const CliResult fails = testing::RunChild(CliCommand({"stats"}), bad, seconds(60));
  EXPECT_NE(fails.exit_code, 0);
  EXPECT_EQ(fails.err.find("warning"), std::string::npos) << fails.err;
  ExpectNoSecret(fails, kSecret, "a malformed URL from the environment");
}

}  // namespace
}  // namespace gen_durable
