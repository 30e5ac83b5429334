// Crash points: for every point in kCrashPoints, a `gen_durable worker` (or `gen_durable signal`)
// is made to die there, a fresh worker takes over, and every instance must still end with exactly
// the right result: nothing lost, nothing applied twice, nothing left `executing`.
//
// Needs a build with -DGEN_DURABLE_CRASH_POINTS=ON (scripts/build turns it on); skipped otherwise.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "gen_durable/options.hpp"
#include "gen_durable/pg/connection.hpp"
#include "gen_durable/util/crash_point.hpp"
#include "support/child_process.hpp"
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

using testing::ChildProcess;

// The CLI running `args` on database `db`. `crash_at` becomes its GEN_DURABLE_CRASH_AT (and an
// inherited one is never passed on).
std::unique_ptr<ChildProcess> StartCli(std::vector<std::string> args, const std::string& db,
                                       const std::optional<std::string>& crash_at) {
  args.insert(args.end(), {"--database", db});
  testing::ChildOptions options;
  options.unset_env = {"GEN_DURABLE_CRASH_AT"};
  if (crash_at) options.set_env = {"GEN_DURABLE_CRASH_AT=" + *crash_at};
  return std::make_unique<ChildProcess>(testing::CliCommand(args), options);
}

// True when the process died at a crash point.
bool Crashed(const ChildProcess& p) { return p.exit_code() == detail::kCrashExitCode; }

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!detail::CrashPointsEnabled()) GTEST_SKIP() << kSkipReason;
    db_ = testing::FreshDatabase();
  }

  // Runs a CLI command to completion (60 s at most).
  std::unique_ptr<ChildProcess> Run(std::vector<std::string> args,
                                    std::optional<std::string> crash_at = std::nullopt) {
    auto p = StartCli(std::move(args), db_, crash_at);
    EXPECT_TRUE(p->Wait(seconds(60))) << "gen_durable did not exit within 60 s";
    return p;
  }

  std::unique_ptr<ChildProcess> StartWorker(std::optional<std::string> crash_at = std::nullopt) {
    std::vector<std::string> args = {"worker"};
    args.insert(args.end(), kFastWorker.begin(), kFastWorker.end());
    return StartCli(std::move(args), db_, crash_at);
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
  static void StopWorker(ChildProcess& worker) {
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
  auto note = [&](ChildProcess& p) {
    if (!Crashed(p)) return;
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
    ASSERT_TRUE(Crashed(*first)) << "exit " << first->exit_code() << ": " << first->err();
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
  ASSERT_TRUE(sender->exit_code() == 0 || Crashed(*sender)) << sender->err();
  note(*sender);
  if (Crashed(*sender)) {
    EXPECT_EQ(Sql64("SELECT count(*)" + evt1), 1) << "the signal committed before the crash";
  }
  auto resend = Run(send);
  ASSERT_EQ(resend->exit_code(), 0) << resend->err();
  EXPECT_EQ(Sql64("SELECT count(*)" + evt1), 1) << "one signal for the dedup key";
  EXPECT_EQ(Sql64("SELECT id" + evt1), std::stoll(resend->out()))
      << "the retry answers with the delivered signal's id";

  // 3. Workers run to the end; the first of them still armed if nothing has fired yet.
  auto all_terminal = [&] { return Terminal(chain) && Terminal(checkout) && Terminal(fanout); };
  std::unique_ptr<ChildProcess> worker =
      StartWorker(fired == 0 ? std::optional<std::string>(point) : std::nullopt);
  bool finished = Until([&] { return worker->Exited() || all_terminal(); }, seconds(90));
  if (finished && worker->Exited()) {
    ASSERT_TRUE(Crashed(*worker)) << "exit " << worker->exit_code() << ": " << worker->err();
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
  ASSERT_TRUE(Crashed(*doomed)) << "exit " << doomed->exit_code() << ": " << doomed->err();
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
