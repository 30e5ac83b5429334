// Crash points: for every point in kCrashPoints, a `gen_durable worker` (or `gen_durable signal`)
// is made to die there, a fresh worker takes over, and every instance must still end with exactly
// the right result: nothing lost, nothing applied twice, nothing left `executing`.
//
// Needs a build with -DGEN_DURABLE_CRASH_POINTS=ON (scripts/build turns it on); skipped otherwise.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "gen_durable/options.hpp"
#include "gen_durable/pg/connection.hpp"
#include "gen_durable/runtime/crash_point.hpp"
#include "support/pg_fixture.hpp"

namespace gen_durable {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kSkipReason[] =
    "built without crash points: configure with -DGEN_DURABLE_CRASH_POINTS=ON (scripts/build does)";

// Short leases so that a dead worker's claims would come back fast even without the reclaim at
// start (which a restarted worker on the same host does first).
const std::vector<std::string> kFastWorker = {
    "--poll-interval",      "100",  "--lease-ttl",     "3000",
    "--heartbeat-interval", "1000", "--reap-interval", "500"};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One CLI process, stdout and stderr in files; killed and reaped on destruction. `crash_at`
// becomes its GEN_DURABLE_CRASH_AT (and an inherited one is never passed on).
class Cli {
 public:
  Cli(std::vector<std::string> args, const std::string& db, std::optional<std::string> crash_at) {
    char out_path[] = "/tmp/gd_crash_out_XXXXXX";
    char err_path[] = "/tmp/gd_crash_err_XXXXXX";
    const int out_fd = mkstemp(out_path);
    const int err_fd = mkstemp(err_path);
    if (out_fd < 0 || err_fd < 0) throw std::runtime_error("mkstemp failed");
    out_path_ = out_path;
    err_path_ = err_path;
    std::vector<std::string> argv_store = {testing::CliPath()};
    argv_store.insert(argv_store.end(), args.begin(), args.end());
    argv_store.push_back("--database");
    argv_store.push_back(db);
    std::vector<char*> argv;
    for (auto& a : argv_store) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_store;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::string_view(*e).rfind("GEN_DURABLE_CRASH_AT=", 0) != 0) env_store.push_back(*e);
    }
    if (crash_at) env_store.push_back("GEN_DURABLE_CRASH_AT=" + *crash_at);
    std::vector<char*> envp;
    for (auto& e : env_store) envp.push_back(e.data());
    envp.push_back(nullptr);
    const int null_fd = open("/dev/null", O_RDONLY);
    // Only async-signal-safe calls between fork and exec: the test process has threads.
    pid_ = fork();
    if (pid_ == 0) {
      dup2(null_fd, 0);
      dup2(out_fd, 1);
      dup2(err_fd, 2);
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    close(null_fd);
    close(out_fd);
    close(err_fd);
    if (pid_ < 0) throw std::runtime_error("fork failed");
  }

  ~Cli() {
    if (!exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status_, 0);
    }
    unlink(out_path_.c_str());
    unlink(err_path_.c_str());
  }

  Cli(const Cli&) = delete;
  Cli& operator=(const Cli&) = delete;

  // Reaps the process if it has exited; true when it has. A worker restarted on the same host
  // takes over a predecessor's claims only once that one is reaped (a zombie still answers kill).
  bool Exited() {
    if (!exited_ && waitpid(pid_, &status_, WNOHANG) == pid_) exited_ = true;
    return exited_;
  }

  bool Wait(Clock::duration timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!Exited()) {
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(milliseconds(10));
    }
    return true;
  }

  void Signal(int sig) { kill(pid_, sig); }
  // The exit status, or -1 when the process died from a signal (or has not exited).
  int exit_code() const { return exited_ && WIFEXITED(status_) ? WEXITSTATUS(status_) : -1; }
  bool crashed() const { return exit_code() == detail::kCrashExitCode; }
  std::string out() const { return ReadAll(out_path_); }
  std::string err() const { return ReadAll(err_path_); }

 private:
  pid_t pid_ = -1;
  std::string out_path_;
  std::string err_path_;
  bool exited_ = false;
  int status_ = 0;
};

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!detail::CrashPointsEnabled()) GTEST_SKIP() << kSkipReason;
    db_ = testing::FreshDatabase();
  }

  // Runs a CLI command to completion (60 s at most).
  std::unique_ptr<Cli> Run(std::vector<std::string> args,
                           std::optional<std::string> crash_at = std::nullopt) {
    auto p = std::make_unique<Cli>(std::move(args), db_, std::move(crash_at));
    EXPECT_TRUE(p->Wait(seconds(60))) << "gen_durable did not exit within 60 s";
    return p;
  }

  std::unique_ptr<Cli> StartWorker(std::optional<std::string> crash_at = std::nullopt) {
    std::vector<std::string> args = {"worker"};
    args.insert(args.end(), kFastWorker.begin(), kFastWorker.end());
    return std::make_unique<Cli>(std::move(args), db_, std::move(crash_at));
  }

  // Inserts an instance with the CLI; returns its id (0 after a failed assertion).
  std::int64_t Insert(const std::string& fsm, const std::string& state) {
    auto p = Run({"insert", fsm, "--state", state});
    EXPECT_EQ(p->exit_code(), 0) << p->err();
    try {
      return std::stoll(p->out());
    } catch (const std::exception&) {
      ADD_FAILURE() << "insert printed no id: [" << p->out() << "]";
      return 0;
    }
  }

  detail::pg::Connection& Sql() {
    if (!sql_) sql_ = detail::pg::Connection::Open(db_);
    return *sql_;
  }

  std::int64_t Sql64(const std::string& query) { return Sql().Exec(query).Int64(0, 0); }

  std::string Status(std::int64_t id) {
    auto r = Sql().Exec("SELECT status FROM gd_instances WHERE id = " + std::to_string(id));
    return r.rows() == 1 ? r.String(0, 0) : "";
  }

  Json Column(std::int64_t id, const std::string& column) {
    auto r = Sql().Exec("SELECT " + column + " FROM gd_instances WHERE id = " + std::to_string(id));
    return r.rows() == 1 && !r.IsNull(0, 0) ? Json::parse(r.Text(0, 0)) : Json();
  }

  bool Terminal(std::int64_t id) {
    const std::string s = Status(id);
    return s == "done" || s == "failed" || s == "cancelled";
  }

  // Polls `cond` every 50 ms until it holds or `timeout` passes; returns whether it held.
  static bool Until(const std::function<bool()>& cond, Clock::duration timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!cond()) {
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(milliseconds(50));
    }
    return true;
  }

  // Stops a worker that is still running with SIGTERM; it must drain and exit cleanly.
  static void StopWorker(Cli& worker) {
    if (worker.Exited()) return;
    worker.Signal(SIGTERM);
    ASSERT_TRUE(worker.Wait(seconds(30))) << "worker did not stop: " << worker.err();
    EXPECT_EQ(worker.exit_code(), 0) << worker.err();
  }

  std::string db_;
  std::unique_ptr<detail::pg::Connection> sql_;
};

// The line a fired point writes to stderr.
std::string FiredLine(std::string_view point) {
  return "crash point " + std::string(point) + " reached";
}

class CrashPointTest : public CrashTest, public ::testing::WithParamInterface<std::string_view> {};

// One workload meets every point: a chain (claims, steps, commits, inline run-ahead), a checkout
// parked on a signal sent with a dedup key, and a fan-out (children inserted with the park, two
// of them failing). Each process runs with GEN_DURABLE_CRASH_AT=<point> until the point has fired
// once — the first worker, the signal's sender, else the worker that runs after the signal — and
// the caller retries the signal with the same dedup key; then a fresh worker must finish
// everything exactly right.
TEST_P(CrashPointTest, EveryInstanceCompletesCorrectlyAfterACrashThere) {
  const std::string point(GetParam());
  const std::int64_t chain = Insert("demo.chain", R"({"steps": 5})");
  const std::int64_t checkout = Insert("demo.checkout", R"({"order": "o-1"})");
  const std::int64_t fanout = Insert("demo.fanout", R"({"n": 6, "fail_every": 3})");
  ASSERT_TRUE(chain > 0 && checkout > 0 && fanout > 0);
  const Json payment = {{"amount", 42}, {"currency", "EUR"}};
  const std::vector<std::string> send = {"signal",    std::to_string(checkout), "payment_confirmed",
                                         "--payload", payment.dump(),           "--dedup-key",
                                         "evt-1"};
  const std::string children_of_fanout =
      "SELECT count(*) FROM gd_instances WHERE parent_id = " + std::to_string(fanout);
  const std::string evt1 = " FROM gd_signals WHERE instance_id = " + std::to_string(checkout) +
                           " AND dedup_key = 'evt-1'";
  int fired = 0;
  std::string fired_err;  // the stderr of the process the point ended
  auto note = [&](Cli& p) {
    if (!p.crashed()) return;
    ++fired;
    fired_err = p.err();
  };

  // 1. A worker runs everything the signal is not needed for (or dies at the point).
  auto first = StartWorker(point);
  ASSERT_TRUE(Until(
      [&] {
        return first->Exited() ||
               (Terminal(chain) && Terminal(fanout) && Status(checkout) == "awaiting_signal");
      },
      seconds(60)))
      << "the worker neither crashed nor got everything to the signal: " << first->err();
  if (first->Exited()) {
    ASSERT_TRUE(first->crashed()) << "exit " << first->exit_code() << ": " << first->err();
    note(*first);
    if (point == "mid_child_insert") {
      // The parent's park and its children were one transaction, rolled back by the crash.
      EXPECT_EQ(Sql64(children_of_fanout), 0);
      EXPECT_EQ(Status(fanout), "executing");
    }
  } else {
    StopWorker(*first);
    if (HasFatalFailure()) return;
  }

  // 2. The payment arrives (the sender may die at the point); the caller, having seen no answer,
  // sends it again with the same dedup key while the checkout is still waiting for it.
  auto sender = Run(send, fired == 0 ? std::optional<std::string>(point) : std::nullopt);
  ASSERT_TRUE(sender->exit_code() == 0 || sender->crashed()) << sender->err();
  note(*sender);
  if (sender->crashed()) {
    EXPECT_EQ(Sql64("SELECT count(*)" + evt1), 1) << "the signal committed before the crash";
  }
  auto resend = Run(send);
  ASSERT_EQ(resend->exit_code(), 0) << resend->err();
  EXPECT_EQ(Sql64("SELECT count(*)" + evt1), 1) << "one signal for the dedup key";
  EXPECT_EQ(Sql64("SELECT id" + evt1), std::stoll(resend->out()))
      << "the retry answers with the delivered signal's id";

  // 3. Workers run to the end; the first of them still armed if nothing has fired yet.
  auto all_terminal = [&] { return Terminal(chain) && Terminal(checkout) && Terminal(fanout); };
  std::unique_ptr<Cli> worker =
      StartWorker(fired == 0 ? std::optional<std::string>(point) : std::nullopt);
  bool finished = Until([&] { return worker->Exited() || all_terminal(); }, seconds(90));
  if (finished && worker->Exited()) {
    ASSERT_TRUE(worker->crashed()) << "exit " << worker->exit_code() << ": " << worker->err();
    note(*worker);
    worker = StartWorker();
    finished = Until(all_terminal, seconds(90));
  }
  StopWorker(*worker);
  ASSERT_TRUE(finished) << "not every instance finished: chain " << Status(chain) << ", checkout "
                        << Status(checkout) << ", fanout " << Status(fanout) << "\n"
                        << worker->err();

  // The point really fired, once, and said so.
  ASSERT_EQ(fired, 1) << "crash point " << point << " never fired";
  EXPECT_NE(fired_err.find(FiredLine(point)), std::string::npos) << fired_err;

  // Exactly the right results: every step counted once, the payment delivered, each child
  // inserted once and joined, no claim left behind.
  EXPECT_EQ(Status(chain), "done");
  EXPECT_EQ(Column(chain, "result"), Json({{"steps", 5}}));
  EXPECT_EQ(Status(checkout), "done");
  EXPECT_EQ(Column(checkout, "result"), Json({{"order", "o-1"}, {"payment", payment}}));
  EXPECT_EQ(Status(fanout), "done");
  EXPECT_EQ(Column(fanout, "result"), Json({{"done", 4}, {"failed", 2}}));
  EXPECT_EQ(Sql64(children_of_fanout), 6);
  EXPECT_EQ(Sql64(children_of_fanout + " AND status = 'done'"), 4);
  EXPECT_EQ(Sql64(children_of_fanout + " AND status = 'failed'"), 2);
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances WHERE status = 'executing'"), 0);
}

INSTANTIATE_TEST_SUITE_P(AllPoints, CrashPointTest, ::testing::ValuesIn(detail::kCrashPoints),
                         [](const ::testing::TestParamInfo<std::string_view>& info) {
                           return std::string(info.param);
                         });

// `name:N` fires on the N-th hit only: the chain's first two commits pass, the third ends the
// worker with that step committed, and the restarted worker runs the remaining two steps.
TEST_F(CrashTest, NthHitFiresOnlyOnThatHit) {
  const std::int64_t chain = Insert("demo.chain", R"({"steps": 5})");
  ASSERT_GT(chain, 0);
  auto doomed = StartWorker("after_flush_commit:3");
  ASSERT_TRUE(doomed->Wait(seconds(60))) << "the point never fired: " << doomed->err();
  ASSERT_TRUE(doomed->crashed()) << "exit " << doomed->exit_code() << ": " << doomed->err();
  EXPECT_NE(doomed->err().find(FiredLine("after_flush_commit") + " (hit 3)"), std::string::npos)
      << doomed->err();
  EXPECT_EQ(Column(chain, "state"), Json({{"steps", 5}, {"ran", 3}}));
  EXPECT_EQ(Status(chain), "executing");  // an inline run-ahead keeps its claim

  auto worker = StartWorker();
  const bool finished = Until([&] { return Terminal(chain); }, seconds(60));
  StopWorker(*worker);
  ASSERT_TRUE(finished) << worker->err();
  EXPECT_EQ(Status(chain), "done");
  EXPECT_EQ(Column(chain, "result"), Json({{"steps", 5}}));
}

// A value naming no point is reported and arms nothing: the worker runs normally.
TEST_F(CrashTest, UnknownPointIsReportedAndInert) {
  const std::int64_t chain = Insert("demo.chain", R"({"steps": 3})");
  ASSERT_GT(chain, 0);
  auto worker = StartWorker("no_such_point");
  const bool finished = Until([&] { return Terminal(chain); }, seconds(60));
  StopWorker(*worker);
  ASSERT_TRUE(finished) << worker->err();
  EXPECT_EQ(Column(chain, "result"), Json({{"steps", 3}}));
  EXPECT_NE(worker->err().find("GEN_DURABLE_CRASH_AT=no_such_point names no crash point"),
            std::string::npos)
      << worker->err();
}

}  // namespace
}  // namespace gen_durable
