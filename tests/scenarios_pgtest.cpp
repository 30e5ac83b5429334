// Black-box scenarios that drive the gen_durable CLI from shell scripts in tests/scenarios/.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "support/pg_fixture.hpp"

namespace gen_durable::testing {
namespace {

// GEN_DURABLE_TESTS_DIR is the absolute tests/ directory (tests/CMakeLists.txt); __FILE__ would
// do, but a compiler cache may rewrite it to a path relative to the build directory.
std::string ScenarioPath(const std::string& name) {
  return std::string(GEN_DURABLE_TESTS_DIR) + "/scenarios/" + name;
}

// The acceptance run: chains, flaky jobs and self-killing jobs on two supervised
// workers, one of them also SIGKILLed, all ending done with the right results.
TEST(Scenarios, CrashRecoveryLosesNothing) {
  const std::string cmd = "bash '" + ScenarioPath("crash_recovery.sh") + "' '" + CliPath() + "' '" +
                          FreshDatabase() + "'";
  const int rc = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(rc)) << cmd;
  EXPECT_EQ(WEXITSTATUS(rc), 0) << cmd;
}

}  // namespace
}  // namespace gen_durable::testing
