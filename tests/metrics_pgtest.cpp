// Prometheus metrics (docs/guides/metrics.md): what an engine's Metrics render, served over HTTP,
// and checked by a real Prometheus text parser (Debian's python3-prometheus-client, run by
// /usr/bin/python3: the Debian package serves the system interpreter).
#include <gtest/gtest.h>
#include <httplib.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>

#include "gen_durable/metrics.hpp"
#include "support/engine_harness.hpp"

namespace gen_durable::testing {
namespace {

AnyMachine Chain() {
  return Machine<Json>("m.chain")
      .Step("start", [](StepContext<Json>& c) { return Next("end", c.state()); })
      .Step("end", [](StepContext<Json>&) { return Done({}); })
      .Build();
}

AnyMachine Failing() {
  return Job<Json>("m.fail")
      .MaxAttempts(1)
      .Perform([](const Json&, JobContext&) { return JobResult::Error("no"); })
      .Build();
}

// The value of the sample line `series` (name and labels, exactly as rendered), or -1.
double Sample(const std::string& text, const std::string& series) {
  const auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  const auto start = at + series.size() + 2;
  return std::stod(text.substr(start, text.find('\n', start) - start));
}

// Runs the text through prometheus_client's parser; returns its report (or why it could not).
std::pair<int, std::string> Parse(const std::string& text) {
  char path[] = "/tmp/gd_metrics_XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return {-1, "mkstemp failed"};
  close(fd);
  std::ofstream(path) << text;
  const std::string cmd =
      std::string(
          "/usr/bin/python3 -c 'import sys\nfrom prometheus_client.parser import "
          "text_string_to_metric_families as parse\nfams = list(parse(open(sys.argv[1])"
          ".read()))\nprint(len(fams), sum(len(f.samples) for f in fams))' ") +
      path + " 2>&1";
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf{};
  while (p && fgets(buf.data(), buf.size(), p)) out += buf.data();
  const int status = p ? pclose(p) : -1;
  unlink(path);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

bool ParserAvailable() {
  return std::system("/usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1") == 0;
}

class MetricsTest : public EngineTest {};

TEST_F(MetricsTest, CountersHistogramsAndGaugesFollowWhatTheEngineDid) {
  auto o = Options({Chain(), Failing()});
  const std::string odd = "q\"with\\odd";  // a quote and a backslash: both escaped
  o.queues[odd] = QueueConfig{1};
  auto engine = Engine::Start(o);
  Metrics metrics(*engine);
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(*client_->Insert("m.chain", {}));
  ids.push_back(*client_->Insert("m.fail", {}));
  InsertOptions other;
  other.queue = odd;
  ids.push_back(*client_->Insert("m.chain", other));
  for (auto id : ids) WaitTerminal(id);
  client_->PauseQueue("paused_q");
  client_->SetQueueGlobalLimit("default", 5);

  const std::string text = metrics.Render();
  const std::string e = "engine=\"" + engine->name() + "\"";
  EXPECT_EQ(Sample(text, "gen_durable_up{" + e + "}"), 1);
  EXPECT_EQ(Sample(text, "gen_durable_steps_total{" + e + ",fsm=\"m.chain\",kind=\"next\"}"), 4);
  EXPECT_EQ(Sample(text, "gen_durable_steps_total{" + e + ",fsm=\"m.chain\",kind=\"done\"}"), 4);
  EXPECT_EQ(Sample(text, "gen_durable_steps_total{" + e + ",fsm=\"m.fail\",kind=\"stop\"}"), 1);
  // Histograms: cumulative buckets ending in +Inf == _count.
  const std::string h = "gen_durable_step_duration_seconds";
  EXPECT_EQ(Sample(text, h + "_count{" + e + ",fsm=\"m.chain\"}"), 8);
  EXPECT_EQ(Sample(text, h + "_bucket{" + e + ",fsm=\"m.chain\",le=\"+Inf\"}"), 8);
  EXPECT_LE(Sample(text, h + "_bucket{" + e + ",fsm=\"m.chain\",le=\"0.001\"}"),
            Sample(text, h + "_bucket{" + e + ",fsm=\"m.chain\",le=\"60\"}"));
  EXPECT_GE(Sample(text, "gen_durable_claim_batch_size_count{" + e + ",queue=\"default\"}"), 1);
  // Cluster gauges, read from the database at render time.
  EXPECT_EQ(Sample(text, "gen_durable_queue_depth{" + e + ",queue=\"default\",status=\"done\"}"),
            3);
  EXPECT_EQ(Sample(text, "gen_durable_queue_paused{" + e + ",queue=\"paused_q\"}"), 1);
  EXPECT_EQ(Sample(text, "gen_durable_queue_global_limit{" + e + ",queue=\"default\"}"), 5);
  EXPECT_EQ(text.find("gen_durable_queue_global_limit{" + e + ",queue=\"paused_q\"}"),
            std::string::npos);  // only queues with a limit
  EXPECT_EQ(Sample(text, "gen_durable_queue_concurrency{" + e + ",queue=\"default\"}"), 4);
  // The odd queue name, escaped.
  EXPECT_EQ(
      Sample(text, "gen_durable_queue_depth{" + e + ",queue=\"q\\\"with\\\\odd\",status=\"done\"}"),
      1)
      << text;
  EXPECT_EQ(Sample(text, "gen_durable_stale_outcomes_total{" + e + "}"), 0);
  EXPECT_NE(text.find("# TYPE gen_durable_step_duration_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE gen_durable_steps_total counter\n"), std::string::npos);
}

TEST_F(MetricsTest, ScaledCounterCountsEachConcurrencyChange) {
  auto engine = Engine::Start(Options({Chain()}));
  Metrics metrics(*engine);
  engine->Scale("default", 2);
  engine->Scale("default", 3);
  engine->Scale("default", 3);  // no change: not counted
  const std::string text = metrics.Render();
  const std::string e = "engine=\"" + engine->name() + "\"";
  EXPECT_EQ(
      Sample(text, "gen_durable_queue_scaled_total{" + e + ",queue=\"default\",reason=\"manual\"}"),
      2)
      << text;
}

TEST_F(MetricsTest, ServerServesValidPrometheusTextAtMetricsOnly) {
  if (!ParserAvailable()) {
    const char* ci = std::getenv("CI");
    if (ci && std::string(ci) == "true") FAIL() << "python3-prometheus-client is not installed";
    GTEST_SKIP() << "python3-prometheus-client is not installed (scripts/deps installs it)";
  }
  auto engine = Engine::Start(Options({Chain()}));
  Metrics metrics(*engine);
  auto server = MetricsServer::Start(metrics);
  ASSERT_GT(server->port(), 0);
  WaitTerminal(*client_->Insert("m.chain", {}));
  httplib::Client http("127.0.0.1", server->port());
  auto res = http.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  auto [status, report] = Parse(res->body);
  ASSERT_EQ(status, 0) << report << "\n" << res->body;
  int families = 0;
  int samples = 0;
  ASSERT_EQ(std::sscanf(report.c_str(), "%d %d", &families, &samples), 2) << report;
  EXPECT_GE(families, 15);
  EXPECT_GT(samples, 30);
  EXPECT_EQ(http.Get("/")->status, 404);
  // A second server on the same port is refused with a clear error.
  MetricsServerOptions same;
  same.port = server->port();
  EXPECT_THROW(MetricsServer::Start(metrics, same), ConfigError);
  server->Stop();
  EXPECT_FALSE(http.Get("/metrics"));  // nothing listens any more
}

}  // namespace
}  // namespace gen_durable::testing
