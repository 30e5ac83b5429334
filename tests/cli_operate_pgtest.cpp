// Black-box tests of operating a cluster from the CLI (docs/operations.md): pause and resume,
// scale and autoscaling, cancel, retry and delete.
#include <gtest/gtest.h>

#include "support/cli_fixture.hpp"

namespace gen_durable::cli_test {
namespace {

TEST_F(OpsCliTest, PauseFromOneCliStopsClaimsOnThreeWorkersAndResumeRestartsThem) {
  // kFastWorker, with polls every 200 ms.
  const std::vector<std::string> flags = {
      "--poll-interval", "200", "--lease-ttl", "10000",    "--heartbeat-interval", "1000",
      "--reap-interval", "500", "--queues",    "default:4"};
  std::vector<std::unique_ptr<ChildProcess>> workers;
  for (int i = 0; i < 3; ++i) workers.push_back(StartWorker(flags));
  ASSERT_TRUE(Eventually([&] { return Nodes().size() == 3; }))
      << "three workers did not start: " << Run({"nodes"}).out << workers[0]->err()
      << workers[1]->err();
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
  EXPECT_EQ(Nodes().size(), 3u);                                     // all alive, just not claiming

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
  const std::vector<std::string> flags = {
      "--poll-interval", "200", "--lease-ttl", "10000",    "--heartbeat-interval", "1000",
      "--reap-interval", "500", "--queues",    "default:2"};
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

}  // namespace
}  // namespace gen_durable::cli_test
