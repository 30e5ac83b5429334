// Black-box tests of the cluster-wide limit of a queue: three `gen_durable worker` processes of
// 8 slots each with `--global-limit q:3` never run more than 3 steps of q at once, as a
// separate connection sampling the executing rows sees it; `scale QUEUE --global N|none` and
// the flags' usage errors.
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <atomic>

#include "gen_durable/pg/connection.hpp"
#include "support/cli_fixture.hpp"

namespace gen_durable::cli_test {
namespace {

// The most steps of `spans` that overlap at one instant.
int MostAtOnce(const std::vector<Span>& spans) {
  std::vector<std::pair<std::int64_t, int>> edges;
  for (const Span& s : spans) {
    edges.emplace_back(s.start, 1);
    edges.emplace_back(s.end, -1);
  }
  std::sort(edges.begin(), edges.end());  // an end sorts before a start at the same instant
  int now = 0;
  int most = 0;
  for (const auto& [_, d] : edges) most = std::max(most, now += d);
  return most;
}

// The issue's test: global_limit 3, three nodes of 8 slots, a sampler every 2 ms.
TEST_F(OpsCliTest, ThreeWorkersOfEightSlotsNeverRunMoreThanTheGlobalLimit) {
  std::vector<std::string> flags = kFastWorker;
  flags.insert(flags.end(), {"--queues", "q:8", "--global-limit", "q:3"});
  std::vector<std::unique_ptr<ChildProcess>> workers;
  for (int i = 0; i < 3; ++i) workers.push_back(StartWorker(flags));
  ASSERT_TRUE(Eventually([&] { return Nodes().size() == 3; })) << workers[0]->err();
  for (const auto& w : workers) {
    EXPECT_TRUE(WaitForStderr(*w, "q:8 (cluster-wide 3)", seconds(30))) << w->err();
  }

  auto sql = detail::pg::Connection::Open(db_, "cli-test");
  std::atomic<bool> stop{false};
  std::atomic<int> most{0};
  std::atomic<int> samples{0};
  std::thread sampler([&] {
    auto c = detail::pg::Connection::Open(db_, "sampler");
    while (!stop) {
      const int n = static_cast<int>(
          c->Exec("SELECT count(*) FROM gd_instances WHERE queue = 'q' AND status = 'executing'")
              .Int64(0, 0));
      most = std::max(most.load(), n);
      ++samples;
      std::this_thread::sleep_for(milliseconds(2));
    }
  });
  // 60 sleeps of 50..100 ms, inserted at once while every worker is polling.
  sql->Exec(
      "SELECT gd_insert('demo.sleep', jsonb_build_object('ms', 50 + (g * 7) % 51), 'q') "
      "FROM generate_series(1, 60) g");
  const bool finished = Eventually(
      [&] {
        return sql->Exec("SELECT count(*) FROM gd_instances WHERE status = 'done'").Int64(0, 0) ==
               60;
      },
      seconds(120));
  stop = true;
  sampler.join();
  ASSERT_TRUE(finished) << ListJson({"--status", "runnable"}).size() << " still runnable";
  EXPECT_LE(most.load(), 3) << "the sampler saw more than 3 executing";
  EXPECT_EQ(most.load(), 3) << "the limit was never reached: the test could not see a breach";
  EXPECT_GT(samples.load(), 100);

  // The steps' own clocks agree: no instant had more than 3 sleeping, and the work was shared.
  std::vector<Span> spans;
  std::set<std::string> ran_by;
  for (const Json& row : ListJson({"--queue", "q", "--limit", "100"})) {
    const Json info = Show(row["id"].get<std::int64_t>());
    ASSERT_EQ(info["status"], "done") << info.dump();
    spans.push_back(SleepSpan(info));
    ran_by.insert(info["result"]["worker"].get<std::string>());
  }
  ASSERT_EQ(spans.size(), 60u);
  EXPECT_LE(MostAtOnce(spans), 3);
  EXPECT_GE(ran_by.size(), 2u) << "one worker ran everything: the others never contended";

  for (auto& w : workers) w->Signal(SIGTERM);
  for (auto& w : workers) {
    ASSERT_TRUE(w->Wait(seconds(15))) << w->err();
    EXPECT_EQ(w->exit_code(), 0) << w->err();
  }
}

// `scale QUEUE --global N` sets the limit a running worker obeys; `--global none` clears it;
// `stats` shows it.
TEST_F(OpsCliTest, ScaleGlobalSetsAndClearsTheLimitAtRunTime) {
  std::vector<std::string> flags = kFastWorker;
  flags.insert(flags.end(), {"--queues", "q:6"});
  auto worker = StartWorker(flags);
  ASSERT_TRUE(Eventually([&] { return Nodes().size() == 1; })) << worker->err();

  CliResult r = Run({"scale", "q", "--global", "1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "limited q: at most 1 executing across all nodes (was none)\n");
  for (int i = 0; i < 10; ++i) Insert("demo.sleep", R"({"ms": 500})", {"--queue", "q"});
  // One at a time: never two executing while the first ones run.
  std::size_t most = 0;
  const auto until = Clock::now() + milliseconds(1500);
  while (Clock::now() < until) {
    most = std::max(most, ListJson({"--status", "executing"}).size());
  }
  EXPECT_EQ(most, 1u);

  r = Run({"scale", "q", "--global", "6", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out),
            Json({{"queue", "q"}, {"global_limit", 6}, {"previous_global_limit", 1}}));
  // Raised: the rest start together.
  EXPECT_TRUE(Eventually([&] { return CountStatus("executing") >= 2; })) << worker->err();

  r = Run({"stats", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out)["queue_info"]["q"]["global_limit"], 6) << r.out;
  r = Run({"stats"});
  EXPECT_NE(r.out.find("global_limit"), std::string::npos) << r.out;

  r = Run({"scale", "q", "--global", "none"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "unlimited q: at most none executing across all nodes (was 6)\n");
  r = Run({"stats", "--json"});
  EXPECT_TRUE(Json::parse(r.out)["queue_info"]["q"]["global_limit"].is_null()) << r.out;

  // Slots and the limit in one call.
  r = Run({"scale", "q", "4", "--global", "2", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const Json both = Json::parse(r.out);
  EXPECT_EQ(both["concurrency"], 4);
  EXPECT_EQ(both["global_limit"], 2);
  worker->Signal(SIGTERM);
  ASSERT_TRUE(worker->Wait(seconds(15))) << worker->err();
}

TEST_F(CliTest, GlobalLimitFlagsRefuseBadValuesWithStatus2) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"scale", "q"},
           {"scale", "q", "--global", "0"},
           {"scale", "q", "--global", "-1"},
           {"scale", "q", "--global", "three"},
           {"scale", "q", "--global", "3", "--node", "x:1:2"},
           {"worker", "--queues", "q:8", "--global-limit", "q"},
           {"worker", "--queues", "q:8", "--global-limit", "q:0"},
           {"worker", "--queues", "q:8", "--global-limit", "q:x"},
           {"worker", "--queues", "q:8", "--global-limit", ":3"},
           {"worker", "--queues", "q:8", "--global-limit", "other:3"},
           {"worker", "--queues", "q:8", "--global-limit", "q:3", "--global-limit", "q:4"}}) {
    const CliResult r = Run(args);
    EXPECT_EQ(r.exit_code, 2) << fmt::format("{}", fmt::join(args, " ")) << ": " << r.err;
    ExpectOneLineReason(r);
  }
}

}  // namespace
}  // namespace gen_durable::cli_test
