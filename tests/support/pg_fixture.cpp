// Postgres for tests: the shared per-process cluster and per-test databases.
#include "support/pg_fixture.hpp"

#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>

#include "gen_durable/error.hpp"

namespace gen_durable::testing {
namespace {

namespace fs = std::filesystem;

// Postgres truncates longer identifiers, which would make distinct names collide.
constexpr std::size_t kMaxIdentifier = 63;

// Owns the process's cluster; static destruction stops a cluster we started and removes its
// temp dir, so a normal exit of the test binary leaves nothing behind.
struct ClusterHolder {
  std::unique_ptr<detail::EmbeddedCluster> cluster;
  std::string temp_dir;  // empty when attached to the script's cluster
  pid_t owner_pid = getpid();

  ~ClusterHolder() {
    // A forked child that calls exit() must leave the parent's cluster alone.
    if (getpid() != owner_pid) {
      (void)cluster.release();  // NOLINT: deliberately leaked; the parent owns the server
      return;
    }
    cluster.reset();
    if (!temp_dir.empty()) {
      std::error_code ec;
      fs::remove_all(temp_dir, ec);
    }
  }
};

ClusterHolder& Holder() {
  static ClusterHolder holder;
  return holder;
}

std::string MakeTempDir() {
  const char* tmp = std::getenv("TMPDIR");
  // Unix socket paths are limited to ~107 bytes, so keep the base short.
  std::string base = tmp != nullptr && *tmp == '/' && std::string(tmp).size() < 60 ? tmp : "/tmp";
  std::string pattern = base + "/gd_test_XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    throw Error("pg_fixture: mkdtemp(" + pattern + ") failed");
  }
  // mkdtemp makes it 0700; the server may run as `postgres` and must traverse it.
  chmod(pattern.c_str(), 0755);
  if (geteuid() == 0) {
    if (passwd* pw = getpwnam("postgres"); pw != nullptr) {
      if (chown(pattern.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        throw Error("pg_fixture: cannot chown " + pattern + " to postgres");
      }
    }
  }
  return pattern;
}

// "Suite.Name/3" -> "suite_name_3": lower case so the name needs no quoting when typed by hand.
std::string Sanitize(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    out += std::isalnum(c) ? static_cast<char>(std::tolower(c)) : '_';
  }
  return out;
}

}  // namespace

detail::EmbeddedCluster& Cluster() {
  static std::once_flag once;
  std::call_once(once, [] {
    ClusterHolder& holder = Holder();
    detail::EmbeddedOptions options;
    options.fast_unsafe = true;
    options.stop_on_exit = true;  // only stops what we started, never the script's cluster
    if (const char* shared = std::getenv("GEN_DURABLE_TEST_PGDATA");
        shared != nullptr && *shared != '\0') {
      options.data_dir = shared;
    } else {
      holder.temp_dir = MakeTempDir();
      options.data_dir = holder.temp_dir + "/pgdata";
    }
    try {
      holder.cluster = detail::EmbeddedCluster::Start(options);
    } catch (...) {
      if (!holder.temp_dir.empty()) {
        std::error_code ec;
        fs::remove_all(holder.temp_dir, ec);
        holder.temp_dir.clear();
      }
      throw;
    }
  });
  // call_once rethrows a failed start and lets the next caller try again.
  return *Holder().cluster;
}

std::string FreshDatabase() {
  static std::atomic<int> counter{0};
  std::string test = "gd";
  if (const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
      info != nullptr) {
    test = std::string(info->test_suite_name()) + "_" + info->name();
  }
  std::string suffix =
      "_" + std::to_string(static_cast<long>(getpid())) + "_" + std::to_string(++counter);
  std::string name = Sanitize(test);
  if (name.size() + suffix.size() > kMaxIdentifier) {
    name.resize(kMaxIdentifier - suffix.size());
  }
  name += suffix;
  detail::EmbeddedCluster& cluster = Cluster();
  cluster.CreateDatabase(name);
  return cluster.ConnInfo(name);
}

std::string CliPath() {
  if (const char* env = std::getenv("GEN_DURABLE_CLI"); env != nullptr && *env != '\0') {
    return env;
  }
#ifdef GEN_DURABLE_CLI_PATH
  return GEN_DURABLE_CLI_PATH;
#else
  return "gen_durable";
#endif
}

}  // namespace gen_durable::testing
