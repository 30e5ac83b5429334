// Black-box tests of passwords given to the CLI: a warning, never printed, scrubbed from the
// running process's command line.
#include <gtest/gtest.h>

#include "support/cli_fixture.hpp"

namespace gen_durable::cli_test {
namespace {

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
      {{"stats", "--database", "postgresql://gd_user:" + secret + "@127.0.0.1:1/nodb"},
       false,
       secret},
      {{"stats", "--database", "postgresql://gd_user:" + secret + "@[::1/nodb"}, false, secret},
      {{"stats", "--database", "postgresql://gd_user@[::1/nodb?password=" + secret}, false, secret},
      // `password=S3cre tPassw0rdXyz`: libpq quotes the second word as a keyword missing "=".
      {{"stats", "--database",
        "host=/nonexistent password=" + secret.substr(0, 5) + " " + secret.substr(5) + " x=1"},
       false,
       secret.substr(5)},
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
        << what << "\n"
        << r.err;
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
}  // namespace gen_durable::cli_test
