// Black-box tests of the `gen_durable` CLI's output contract: what insert, show, list, stats and
// migrate print, exit statuses, one-line reasons and --help.
#include <gtest/gtest.h>

#include "support/cli_fixture.hpp"

namespace gen_durable::cli_test {
namespace {

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

}  // namespace
}  // namespace gen_durable::cli_test
