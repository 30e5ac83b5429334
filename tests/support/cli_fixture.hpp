// The fixture of the CLI's black-box tests (tests/cli_*_pgtest.cpp): runs `gen_durable` as a
// child process against a fresh database, and reads its output contract.
#pragma once

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gen_durable/embedded/embedded.hpp"
#include "gen_durable/options.hpp"
#include "support/child_process.hpp"
#include "support/pg_fixture.hpp"

namespace gen_durable::cli_test {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Worker timings short enough for tests; the lease is long enough never to expire under a
// running step on a loaded CI machine.
inline const std::vector<std::string> kFastWorker = {
    "--poll-interval",      "100",  "--lease-ttl",     "10000",
    "--heartbeat-interval", "1000", "--reap-interval", "500"};

inline std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

inline bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

using testing::ChildOptions;
using testing::ChildProcess;
using testing::CliCommand;
// exit_code is -1 when the CLI was killed by a signal or ran past the timeout.
using CliResult = testing::ChildResult;

// Runs the CLI on the embedded default under GEN_DURABLE_HOME=home (and without
// GEN_DURABLE_DATABASE_URL).
inline ChildOptions OnEmbeddedDefault(const std::string& home) {
  ChildOptions options;
  options.unset_env = {"GEN_DURABLE_DATABASE_URL"};
  options.set_env = {"GEN_DURABLE_HOME=" + home};
  return options;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override { db_ = testing::FreshDatabase(); }

  // Runs `gen_durable <args> --database <db>` to completion.
  CliResult Run(std::vector<std::string> args) {
    CliResult r = testing::RunChild(CliCommand(WithDatabase(std::move(args))));
    if (!r.exited) ADD_FAILURE() << "gen_durable did not exit within 60 s";
    return r;
  }

  std::unique_ptr<ChildProcess> Start(std::vector<std::string> args) {
    return std::make_unique<ChildProcess>(CliCommand(WithDatabase(std::move(args))));
  }

  std::unique_ptr<ChildProcess> StartWorker(std::vector<std::string> extra) {
    std::vector<std::string> args = {"worker"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Start(std::move(args));
  }

  // Inserts an instance and returns its id; fails the test unless stdout is the id alone.
  std::int64_t Insert(const std::string& fsm, const std::string& state,
                      std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"insert", fsm, "--state", state};
    args.insert(args.end(), extra.begin(), extra.end());
    CliResult r = Run(std::move(args));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(!r.out.empty() && r.out.back() == '\n') << "out: [" << r.out << "]";
    const std::string digits = r.out.empty() ? "" : r.out.substr(0, r.out.size() - 1);
    EXPECT_FALSE(digits.empty());
    EXPECT_EQ(digits.find_first_not_of("0123456789"), std::string::npos)
        << "out: [" << r.out << "]";
    return digits.empty() ? 0 : std::stoll(digits);
  }

  Json Show(std::int64_t id) {
    CliResult r = Run({"show", std::to_string(id), "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(Lines(r.out).size(), 1u) << r.out;
    return Json::parse(r.out);
  }

  std::vector<Json> ListJson(std::vector<std::string> filters) {
    std::vector<std::string> args = {"list", "--json"};
    args.insert(args.end(), filters.begin(), filters.end());
    CliResult r = Run(std::move(args));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<Json> rows;
    for (const auto& line : Lines(r.out)) rows.push_back(Json::parse(line));
    return rows;
  }

  // Polls `show --json` until `done` holds; returns the last view (the test fails on timeout).
  Json ShowUntil(std::int64_t id, const std::function<bool(const Json&)>& done,
                 Clock::duration timeout = seconds(60)) {
    const auto deadline = Clock::now() + timeout;
    Json info = Show(id);
    while (!done(info)) {
      if (Clock::now() >= deadline) {
        ADD_FAILURE() << "instance " << id << " did not reach the expected state: " << info.dump();
        break;
      }
      std::this_thread::sleep_for(milliseconds(100));
      info = Show(id);
    }
    return info;
  }

  Json ShowUntilTerminal(std::int64_t id, Clock::duration timeout = seconds(60)) {
    return ShowUntil(
        id,
        [](const Json& j) {
          const std::string s = j["status"];
          return s == "done" || s == "failed" || s == "cancelled";
        },
        timeout);
  }

  std::vector<std::string> WithDatabase(std::vector<std::string> args) const {
    args.push_back("--database");
    args.push_back(db_);
    return args;
  }

  std::string db_;
};

// A one-line reason on stderr, prefixed with the program name.
inline void ExpectOneLineReason(const CliResult& r) {
  EXPECT_TRUE(StartsWith(r.err, "gen_durable: ")) << r.err;
  EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

// The id a command printed alone on stdout (0, and a test failure, otherwise).
inline std::int64_t PrintedId(const CliResult& r) {
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const std::string digits = r.out.empty() ? "" : r.out.substr(0, r.out.size() - 1);
  const bool ok = !digits.empty() && r.out.back() == '\n' &&
                  digits.find_first_not_of("0123456789") == std::string::npos;
  EXPECT_TRUE(ok) << "out: [" << r.out << "]";
  return ok ? std::stoll(digits) : 0;
}

inline bool HasStatus(const Json& j, const char* status) { return j["status"] == status; }

// [start_us, end_us) of a demo.sleep result.
struct Span {
  std::int64_t start = 0;
  std::int64_t end = 0;
};
inline Span SleepSpan(const Json& info) {
  return {info["result"]["start_us"].get<std::int64_t>(),
          info["result"]["end_us"].get<std::int64_t>()};
}
inline bool Overlap(const Span& a, const Span& b) { return a.start < b.end && b.start < a.end; }

// A private GEN_DURABLE_HOME for the embedded default, removed at the end.
class EmbeddedHome {
 public:
  EmbeddedHome() {
    char dir[] = "/tmp/gd_cli_home_XXXXXX";  // short: the server's socket lives below it
    if (mkdtemp(dir) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = dir;
    // As root the server runs as `postgres`, which must reach the data directory.
    chmod(dir, 0755);
    if (geteuid() == 0) {
      if (passwd* pw = getpwnam("postgres"); pw != nullptr && chown(dir, pw->pw_uid, pw->pw_gid)) {
        throw std::runtime_error("chown failed");
      }
    }
  }
  ~EmbeddedHome() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  // The server's socket exists exactly while the server runs.
  bool ServerRunning() const { return std::filesystem::exists(path_ + "/pgdata/.s.PGSQL.5432"); }

 private:
  std::string path_;
};

inline bool WaitForStderr(const ChildProcess& p, const std::string& text, Clock::duration timeout) {
  const auto deadline = Clock::now() + timeout;
  while (p.err().find(text) == std::string::npos) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(50));
  }
  return true;
}

// Operating it (docs/operations.md): the nodes, polling, counts by status.
class OpsCliTest : public CliTest {
 protected:
  std::vector<Json> Nodes() {
    CliResult r = Run({"nodes", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<Json> nodes;
    for (const auto& line : Lines(r.out)) nodes.push_back(Json::parse(line));
    return nodes;
  }

  // Polls `pred` every 100 ms for up to `timeout`.
  static bool Eventually(const std::function<bool()>& pred, Clock::duration timeout = seconds(30)) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(milliseconds(100));
    }
    return pred();
  }

  std::size_t CountStatus(const std::string& status) {
    return ListJson({"--status", status, "--limit", "1000"}).size();
  }
};

// The port a server reported on stderr as "http://127.0.0.1:PORT/...", or 0.
inline int PortIn(const std::string& err) {
  const std::string marker = "http://127.0.0.1:";
  const auto at = err.find(marker);
  return at == std::string::npos ? 0 : std::atoi(err.c_str() + at + marker.size());
}

}  // namespace gen_durable::cli_test
