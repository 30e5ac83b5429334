// The examples users read first, run against a real database: they must work, not only build.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "support/pg_fixture.hpp"

namespace gen_durable::testing {
namespace {

struct Run {
  int exit_code;
  std::string out;
};

Run RunCommand(const std::string& cmd) {
  Run r{-1, ""};
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), buf.size(), p)) r.out += buf.data();
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string Quote(const std::string& s) { return "'" + s + "'"; }

#ifdef GEN_DURABLE_EXAMPLE_QUICKSTART
TEST(Examples, QuickstartRunsTheCheckoutAndTheJob) {
  auto r = RunCommand(std::string("timeout 60 ") + GEN_DURABLE_EXAMPLE_QUICKSTART + " " +
                      Quote(FreshDatabase()));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find(R"(checkout: {"order":42,"shipped":true})"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(R"(greet: {"greeting":"hello, world"})"), std::string::npos) << r.out;
}

TEST(Examples, CleanupJobRemovesThePath) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("gd_cleanup_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "nested");
  std::ofstream(dir / "nested" / "file") << "x";
  auto r = RunCommand(std::string("timeout 60 ") + GEN_DURABLE_EXAMPLE_CLEANUP + " " +
                      Quote(FreshDatabase()) + " " + Quote(dir.string()));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir));
}
#endif

#ifdef GEN_DURABLE_EXAMPLE_OPERATIONS
TEST(Examples, OperationsGuideCancelsTheRunningExportAndShowsItsHistory) {
  auto r = RunCommand(std::string("timeout 60 ") + GEN_DURABLE_EXAMPLE_OPERATIONS + " " +
                      Quote(FreshDatabase()));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  // The export was running when cancelled: asked to stop, then ended by its step.
  EXPECT_NE(r.out.find("0 cancelled, 1 asked to stop"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cancel perform -> executing (customer left)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("step perform -> cancelled"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("exports: 0 ready"), std::string::npos) << r.out;
}
#endif

#ifdef GEN_DURABLE_EXAMPLE_TIMERS
TEST(Examples, TimersGuideWaitsThenEndsTheTrialAtAttemptZero) {
  auto r = RunCommand(std::string("timeout 60 ") + GEN_DURABLE_EXAMPLE_TIMERS + " " +
                      Quote(FreshDatabase()));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto welcome = r.out.find("mail to ada@example.com: welcome");
  const auto remind = r.out.find("your trial ends soon");
  const auto end = r.out.find("your trial has ended");
  ASSERT_NE(end, std::string::npos) << r.out;
  EXPECT_LT(welcome, remind) << r.out;
  EXPECT_LT(remind, end) << r.out;
  EXPECT_NE(r.out.find(R"(done {"attempt":0,"user":"ada@example.com"})"), std::string::npos)
      << r.out;
}
#endif

#ifdef GEN_DURABLE_EXAMPLE_CHECKOUT
TEST(Examples, SeedCheckoutAwaitsThePaymentAndShips) {
  auto r = RunCommand(std::string("timeout 60 ") + GEN_DURABLE_EXAMPLE_CHECKOUT + " " +
                      Quote(FreshDatabase()));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("shipped"), std::string::npos) << r.out;
}
#endif

}  // namespace
}  // namespace gen_durable::testing
