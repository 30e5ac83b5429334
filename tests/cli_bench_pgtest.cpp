// Black-box tests of `gen_durable bench`: every scenario's figures, the soak's samples and
// verdict, and the refused arguments.
#include <gtest/gtest.h>

#include "support/cli_fixture.hpp"

namespace gen_durable::cli_test {
namespace {

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
  const SoakOutput out =
      Soak({"--rate", "200", "--duration-s", "6", "--sample-s", "1", "--gc-retention-ms", "500",
            "--gc-interval-ms", "500", "--concurrency", "8"});
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
          "p99_ms", "load_rss_mb", "live_tuples", "dead_tuples", "autovacuum_count", "table_mb",
          "indexes_mb", "signals_mb", "signals_dead_tuples"}) {
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
       {std::vector<std::string>{"bench", "nosuch"},
        {"bench", "jobs", "--nodes", "0"},
        {"bench", "jobs", "--rate", "0"},
        {"bench", "chain", "--steps", "0"},
        {"bench", "soak", "--sample-s", "0"},
        {"bench", "soak", "--duration-s", "2", "--sample-s", "5"},
        {"bench", "soak", "--gc-retention-ms", "-1"},
        {"bench", "soak", "--gc-interval-ms", "-5"}}) {
    CliResult r = Run(args);
    EXPECT_EQ(r.exit_code, 2) << args[1] << " " << r.err;
    EXPECT_TRUE(StartsWith(r.err, "gen_durable: ")) << r.err;
  }
}

}  // namespace
}  // namespace gen_durable::cli_test
