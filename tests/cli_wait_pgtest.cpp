// Black-box tests of `gen_durable insert --wait` (the result on stdout, the id on stderr, exit
// 0 / 1 / 124) and of duration flags with units.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "gen_durable/pg/connection.hpp"
#include "support/cli_fixture.hpp"

namespace gen_durable::cli_test {
namespace {

// kFastWorker's timings, written with units.
const std::vector<std::string> kFastWorkerWithUnits = {
    "--poll-interval",      "100ms", "--lease-ttl",     "10s",
    "--heartbeat-interval", "1s",    "--reap-interval", "0.5s"};

std::int64_t WallUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST_F(CliTest, InsertWaitPrintsTheResultOfAChainWithinMillisecondsOfItsEnd) {
  auto worker = StartWorker(kFastWorkerWithUnits);
  // The worker is up once it has run something.
  ShowUntilTerminal(Insert("demo.noop", "{}"));
  auto sql = detail::pg::Connection::Open(db_, "cli_wait_test");
  for (int run = 0; run < 3; ++run) {
    CliResult r = Run({"insert", "demo.chain", "--state", R"({"steps":5})", "--wait"});
    const std::int64_t returned_us = WallUs();
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "{\"steps\":5}\n");
    // The id alone on stderr.
    const std::vector<std::string> err = Lines(r.err);
    ASSERT_EQ(err.size(), 1u) << r.err;
    ASSERT_EQ(err[0].find_first_not_of("0123456789"), std::string::npos) << r.err;
    const std::int64_t id = std::stoll(err[0]);
    EXPECT_EQ(Show(id)["status"], "done");
    // The client reads the row again once a second at least; the notification wakes it within
    // milliseconds of the commit that ended the chain. The bound is generous for a loaded
    // machine (it also covers the CLI's exit and this test noticing it) and well below the
    // second that polling alone would take.
    const std::int64_t completed_us =
        sql->Exec(
               "SELECT (extract(epoch FROM completed_at) * 1000000)::bigint "
               "FROM gd_instances WHERE id = " +
               std::to_string(id))
            .Int64(0, 0);
    const double latency_ms = static_cast<double>(returned_us - completed_us) / 1000.0;
    std::cout << "insert --wait returned " << latency_ms << " ms after the chain's end\n";
    EXPECT_LT(latency_ms, 500.0);
  }
}

TEST_F(CliTest, InsertWaitExitsOneWithTheLastErrorWhenTheInstanceFails) {
  auto worker = StartWorker(kFastWorker);
  CliResult r = Run({"insert", "demo.flaky", "--state", R"({"fail_times":9})", "--wait=60s"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  const std::vector<std::string> err = Lines(r.err);
  ASSERT_EQ(err.size(), 2u) << r.err;  // the id, then the reason
  const std::string id = err[0];
  EXPECT_TRUE(StartsWith(err[1], "gen_durable: instance " + id + " failed: ")) << r.err;
  const Json info = Show(std::stoll(id));
  EXPECT_EQ(info["status"], "failed");
  EXPECT_EQ(err[1],
            "gen_durable: instance " + id + " failed: " + info["last_error"].get<std::string>());
}

TEST_F(CliTest, InsertWaitTimesOutWith124WhenNoWorkerRuns) {
  const auto start = Clock::now();
  CliResult r = Run({"insert", "demo.noop", "--wait=300ms"});
  const auto took = Clock::now() - start;
  EXPECT_EQ(r.exit_code, 124) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  const std::vector<std::string> err = Lines(r.err);
  ASSERT_EQ(err.size(), 2u) << r.err;
  EXPECT_EQ(err[1], "gen_durable: timeout: instance " + err[0] + " is still runnable after 300 ms");
  EXPECT_GE(took, milliseconds(300));
  EXPECT_EQ(Show(std::stoll(err[0]))["status"], "runnable");
}

TEST_F(CliTest, DurationFlagsTakeUnitsAndBadOnesAreUsageErrors) {
  // An hour from now: scheduled.
  const std::int64_t later = Insert("demo.noop", "{}", {"--schedule-in", "1h"});
  EXPECT_EQ(Show(later)["status"], "scheduled");
  // A bare number is milliseconds, as before.
  const std::int64_t soon = Insert("demo.noop", "{}", {"--schedule-in", "3600000"});
  EXPECT_EQ(Show(soon)["status"], "scheduled");

  const std::vector<std::vector<std::string>> bad = {
      {"insert", "demo.noop", "--schedule-in", "5x"},
      {"insert", "demo.noop", "--schedule-in", "-1s"},
      {"insert", "demo.noop", "--wait=1.5"},
      {"insert", "demo.noop", "--wait=soon"},
      {"insert", "demo.noop", "--wait", "5s"},  // the value goes with '='
      {"worker", "--lease-ttl", "1.0001s"},
      {"worker", "--rate-limit", "demo:5:1w"},
      {"cancel", "--older-than", "", "--all"},
      {"demo", "--timeout", "1.5s"},  // counts whole seconds
  };
  for (const auto& args : bad) {
    CliResult r = Run(args);
    EXPECT_EQ(r.exit_code, 2) << args[0] << " " << args[2] << ": " << r.err;
    ExpectOneLineReason(r);
  }
  CliResult unit = Run({"insert", "demo.noop", "--schedule-in", "5x"});
  EXPECT_NE(unit.err.find("'5x' is not a duration: unknown unit 'x'"), std::string::npos)
      << unit.err;
  CliResult help = Run({"worker", "--help"});
  EXPECT_NE(help.out.find("250ms, 30s, 5m, 1h, 1d"), std::string::npos) << help.out;
}

}  // namespace
}  // namespace gen_durable::cli_test
