// Black-box tests of the CLI's views of a running cluster: `nodes` and `stats`, the worker's
// metrics server and the dashboard command.
#include <gtest/gtest.h>

#include "support/cli_fixture.hpp"

namespace gen_durable::cli_test {
namespace {

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
  EXPECT_NE(
      res->body.find(
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
  std::filesystem::permissions(
      token_file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto dashboard = Start({"dashboard", "--port", "0", "--token-file", token_file, "--read-only"});
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

}  // namespace
}  // namespace gen_durable::cli_test
