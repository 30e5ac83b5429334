// Claims under contention: which node may act for a row, and which of its claims. A claim is a
// row's id with the lease_seq its claim statement gave it (docs/architecture.md, "Invariants"),
// and everything done for a claim (bookkeeping, outcomes, releases, the park re-check) must
// stay with that claim when the row is claimed again. Start-up reclaim must take only the rows
// of nodes that are proven dead, whatever their pids look like from here.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gen_durable/runtime/node.hpp"
#include "gen_durable/store/store.hpp"
#include "support/child_process.hpp"
#include "support/engine_harness.hpp"

namespace gen_durable::testing {
namespace {

struct Counter {
  int n = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Counter, n)

std::string HostName() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return host;
}

class LeasesTest : public EngineTest {
 protected:
  // The lease of row `id` as milliseconds since the epoch (0 when it has none).
  double LeaseMs(std::int64_t id) {
    return sql_
        ->Exec(
            "SELECT COALESCE(extract(epoch FROM lease_expires_at) * 1000, 0)::float8 "
            "FROM gd_instances WHERE id = " +
            std::to_string(id))
        .Double(0, 0);
  }
  std::int64_t LeaseSeq(std::int64_t id) {
    return Sql64("SELECT lease_seq FROM gd_instances WHERE id = " + std::to_string(id));
  }
  std::string Status(std::int64_t id) {
    return sql_->Exec("SELECT status FROM gd_instances WHERE id = " + std::to_string(id))
        .String(0, 0);
  }

  // A row held by `node` under claim `seq`, as a claim leaves it.
  std::int64_t ExecutingRow(const std::string& node, std::int64_t seq) {
    detail::pg::Params p;
    p.Add(node).Add(seq);
    return sql_
        ->ExecParams(R"SQL(
INSERT INTO gd_instances (fsm, step, status, locked_by, lease_seq, lease_expires_at)
VALUES ('t.lease', 'start', 'executing', $1, $2::bigint, now() + interval '1 minute')
RETURNING id)SQL",
                     p)
        .Int64(0, 0);
  }

  std::int64_t AddSignal(std::int64_t id, const std::string& name) {
    return Sql64("INSERT INTO gd_signals (instance_id, name) VALUES (" + std::to_string(id) +
                 ", '" + name + "') RETURNING id");
  }

  // A node row on this host, as an engine writes it.
  // A node row of this host name: 100 ms heartbeats, leases of `lease_ms`, last refreshed
  // `heartbeat_age` ago.
  void NodeRow(const std::string& id, int pid, const std::string& proc_start,
               const std::string& pid_ns, const std::string& heartbeat_age,
               std::int64_t lease_ms = 5'000) {
    detail::pg::Params p;
    p.Add(id).Add(HostName()).Add(pid).Add(proc_start).Add(pid_ns).Add(heartbeat_age);
    p.Add(lease_ms);
    sql_->ExecParams(R"SQL(
INSERT INTO gd_nodes (id, engine, host, pid, proc_start, pid_ns, heartbeat_ms, lease_ms,
                      heartbeat_at)
VALUES ($1, 'other', $2, $3, $4, NULLIF($5, ''), 100, $7::bigint, now() - $6::interval))SQL",
                     p);
  }

  detail::Store store_{"public"};
};

// --- a same-node re-claim (a row whose lease was lost, claimed again while its step runs) ---

// The first run of a row blocks past the loss of its lease; the row is handed back (as the
// reaper does) and this same engine claims it again. When the first run ends, its stale outcome
// must neither end the second run's bookkeeping (its lease would stop being extended, and the
// reaper would run it a third time) nor commit.
TEST_F(LeasesTest, SameNodeReclaimKeepsTheNewClaimsLeaseExtended) {
  std::atomic<int> runs{0};
  std::latch first(1), second(1);
  auto m = Machine<Counter>("t.reclaimed")
               .Step("start",
                     [&](StepContext<Counter>&) {
                       const int n = ++runs;
                       (n == 1 ? first : second).wait();
                       return Done({{"run", n}});
                     })
               .Build();
  auto o = Options({m});
  o.heartbeat_interval = 100ms;  // the lease (3 s) is extended many times over while held
  auto engine = Engine::Start(o);
  const auto id = *client_->Insert(m, Counter{});
  ASSERT_TRUE(WaitUntil([&] { return runs.load() == 1; }));
  const std::int64_t seq1 = LeaseSeq(id);

  // The lease is lost while step 1 runs: the row goes back to the queue, as the reaper leaves
  // it, and this engine (the only one) claims it again.
  sql_->Exec(
      "UPDATE gd_instances SET status = 'runnable', attempt = attempt + 1, "
      "locked_by = NULL, lease_expires_at = NULL, eligible_at = now() WHERE id = " +
      std::to_string(id));
  ASSERT_TRUE(WaitUntil([&] { return runs.load() == 2; }));
  const std::int64_t seq2 = LeaseSeq(id);
  ASSERT_GT(seq2, seq1);

  // Step 1 ends: its outcome is stale.
  first.count_down();
  ASSERT_TRUE(WaitUntil([&] { return engine->stats().stale >= 1; }));
  EXPECT_EQ(Status(id), "executing");

  // The second claim is still held and heartbeated: its lease keeps moving past where it was.
  const double lease = LeaseMs(id);
  const bool extended =
      WaitUntil([&] { return LeaseSeq(id) == seq2 && LeaseMs(id) > lease + 1000; }, 15s);
  EXPECT_TRUE(extended) << "the lease of claim " << seq2 << " was not extended after the stale "
                        << "end of claim " << seq1 << "; now status " << Status(id)
                        << ", lease_seq " << LeaseSeq(id) << ", runs " << runs.load();

  second.count_down();
  const auto info = WaitTerminal(id);
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result, (Json{{"run", 2}}));
  EXPECT_EQ(info.attempt, 1);
  EXPECT_EQ(runs.load(), 2);
  engine->Stop();
}

// --- the ownership guard on every path out of a claim ---

// A stale outcome that parks (await) must not run the park re-check on the row: the row may be
// parked by its current claim, which saw a signal the stale step did not, and must stay parked.
TEST_F(LeasesTest, StaleParkOutcomeDoesNotWakeTheRowItsCurrentClaimParked) {
  const std::int64_t id = ExecutingRow("node-a", 5);
  const std::int64_t seen = AddSignal(id, "go");

  // The current claim (5) saw `go` and awaits another one: parked, not woken by `go`.
  detail::OutcomeRow park;
  park.id = id;
  park.lease_seq = 5;
  park.status = "awaiting_signal";
  park.awaiting = {"go"};
  park.shown = {seen};
  ASSERT_EQ(store_.CommitOutcomes(*sql_, {park}, "node-a", 60s, false).size(), 1u);
  ASSERT_EQ(Status(id), "awaiting_signal");

  // The outcome of an older claim of the same node, whose step saw nothing, arrives late.
  detail::OutcomeRow stale = park;
  stale.lease_seq = 3;
  stale.shown.clear();
  EXPECT_TRUE(store_.CommitOutcomes(*sql_, {stale}, "node-a", 60s, false).empty());
  EXPECT_EQ(Status(id), "awaiting_signal") << "the stale outcome woke the parked row";
}

// Releasing claims (drain, a cancelled buffered row, a failed admission) hands back only the
// claim named: a row claimed again since, here by the same node, keeps its new claim.
TEST_F(LeasesTest, ReleaseOfALostClaimLeavesTheRowsNewClaimAlone) {
  const std::int64_t id = ExecutingRow("node-a", 7);  // claimed again: lease_seq 4 -> 7
  const std::int64_t mine = ExecutingRow("node-a", 2);
  EXPECT_EQ(store_.ReleaseClaims(*sql_, "node-a", {{id, 4}, {mine, 2}}), 1);
  EXPECT_EQ(Status(id), "executing");
  EXPECT_EQ(LeaseSeq(id), 7);
  EXPECT_EQ(Status(mine), "runnable");
}

// One group commit may carry the stale outcome of a row beside the outcome of its current
// claim. Only the current one commits, and nothing of the stale one applies: it does not
// consume the signals its step was shown, nor is it reported as committed.
TEST_F(LeasesTest, StaleOutcomeBesideTheCurrentOneInOneCommitHasNoEffect) {
  const std::int64_t id = ExecutingRow("node-a", 9);
  const std::int64_t sig = AddSignal(id, "go");

  detail::OutcomeRow stale;  // claim 6: its step was shown `go` and moved on
  stale.id = id;
  stale.lease_seq = 6;
  stale.status = "runnable";
  stale.step = "next";
  stale.state = "{}";
  stale.consume = {sig};
  detail::OutcomeRow current;  // claim 9: its step has not seen `go` and waits for it
  current.id = id;
  current.lease_seq = 9;
  current.status = "awaiting_signal";
  current.awaiting = {"other"};
  current.shown = {};

  const auto done = store_.CommitOutcomes(*sql_, {stale, current}, "node-a", 60s, false);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].id, id);
  EXPECT_EQ(done[0].lease_seq, 9);
  EXPECT_EQ(Status(id), "awaiting_signal");
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_signals WHERE consumed_at IS NULL AND id = " +
                  std::to_string(sig)),
            1)
      << "the stale outcome consumed a signal";
}

// A kept claim (inline run-ahead) stays executing under the same lease_seq, so a commit retried
// after an unknown result passed the guard again and wrote the step's history entry twice (a
// chaos run counted 6 transitions for a chain of 5). Each outcome names its place in the claim:
// a repeat of one already applied is answered as committed and changes nothing.
TEST_F(LeasesTest, ARetriedCommitOfAKeptClaimWritesItsTransitionOnce) {
  const std::int64_t id = ExecutingRow("node-a", 3);
  detail::OutcomeRow first;
  first.id = id;
  first.lease_seq = 3;
  first.status = "executing";
  first.keep = true;
  first.step = "second";
  first.state = R"({"n":1})";
  first.ran_step = "start";
  auto history = [&] {
    return Sql64("SELECT count(*) FROM gd_history WHERE instance_id = " + std::to_string(id));
  };
  ASSERT_EQ(store_.CommitOutcomes(*sql_, {first}, "node-a", 60s, true).size(), 1u);
  // The same commit again, as after a connection lost before its reply.
  const auto again = store_.CommitOutcomes(*sql_, {first}, "node-a", 60s, true);
  EXPECT_EQ(again.size(), 1u) << "an applied outcome was reported stale";
  EXPECT_EQ(history(), 1) << "the retried commit wrote the transition again";
  // The claim's next step goes on as usual.
  detail::OutcomeRow next = first;
  next.claim_step = 1;
  next.step = "third";
  next.state = R"({"n":2})";
  next.ran_step = "second";
  ASSERT_EQ(store_.CommitOutcomes(*sql_, {next}, "node-a", 60s, true).size(), 1u);
  EXPECT_EQ(history(), 2);
  EXPECT_EQ(Status(id), "executing");
  EXPECT_EQ(client_->Get(id)->step, "third");
}

// --- start-up reclaim: only nodes proven dead ---

// A node of this host name whose pid lives in another pid namespace: its pid says nothing here
// (this one is dead in ours), and its row is fresh. Its claims stay its own.
TEST_F(LeasesTest, NodeOfAnotherPidNamespaceWithAFreshRowKeepsItsClaims) {
  pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  const std::string other = HostName() + ":" + std::to_string(child) + ":0ther";
  NodeRow(other, static_cast<int>(child), "1", "some-boot/pid:[1]", "0 s");
  const std::int64_t id = ExecutingRow(other, 1);
  auto m = Machine<Counter>("t.lease").Step("start", [](auto&) { return Done(); }).Build();
  auto o = Options({m});
  o.reaper = false;
  auto engine = Engine::Start(o);  // the reclaim runs before Start returns
  EXPECT_EQ(Status(id), "executing");
  EXPECT_EQ(client_->Get(id)->locked_by.value_or("(none)"), other);
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_nodes WHERE id = '" + other + "'"), 1);
  engine->Stop();
}

// The same node, silent for longer than its leases last: its claims have expired, so the
// reclaim at start takes them (here the reaper is off) and deletes its row.
TEST_F(LeasesTest, NodeOfAnotherPidNamespaceSilentPastItsLeaseIsReclaimedAtStart) {
  const std::string other = HostName() + ":1:0ther";
  NodeRow(other, 1, "1", "some-boot/pid:[1]", "10 s", 5'000);  // leases of 5 s, silent 10 s
  const std::int64_t id = ExecutingRow(other, 1);
  auto m = Machine<Counter>("t.lease")
               .Step("start",
                     [](StepContext<Counter>& c) {
                       return Done({{"attempt", c.attempt()}});
                     })
               .Build();
  auto o = Options({m});
  o.reaper = false;  // only the reclaim at start can bring it back
  auto engine = Engine::Start(o);
  const auto info = WaitTerminal(id);
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result, (Json{{"attempt", 1}}));
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_nodes WHERE id = '" + other + "'"), 0);
  engine->Stop();
}

// A node of another namespace silent for many heartbeat intervals but not yet for its lease: a
// live node is that late whenever the database is unreachable for a while (a restart, a
// failover), and its steps still run. Nothing proves it dead, so its claims stay its own.
TEST_F(LeasesTest, NodeOfAnotherPidNamespaceSilentWithinItsLeaseKeepsItsClaims) {
  const std::string other = HostName() + ":1:0ther";
  NodeRow(other, 1, "1", "some-boot/pid:[1]", "3 s", 60'000);  // 30 beats late, lease 60 s
  const std::int64_t id = ExecutingRow(other, 1);
  auto m = Machine<Counter>("t.lease").Step("start", [](auto&) { return Done(); }).Build();
  auto o = Options({m});
  o.reaper = false;
  auto engine = Engine::Start(o);  // the reclaim runs before Start returns
  EXPECT_EQ(Status(id), "executing") << "a claim within its lease was taken";
  EXPECT_EQ(client_->Get(id)->locked_by.value_or("(none)"), other);
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_nodes WHERE id = '" + other + "'"), 1);
  engine->Stop();
}

// A node of this pid namespace whose process is alive, with a row silent far past its lease
// (its heartbeats could not reach the database during a series of server restarts). The pid
// proves it alive: its running steps keep their claims. Taking them let a second step of the
// same partition key start beside a running one in a chaos run.
TEST_F(LeasesTest, LiveNodeOfThisPidNamespaceWithASilentRowKeepsItsClaims) {
  const std::string ns = detail::SelfPidNamespace();
  if (ns.empty()) GTEST_SKIP() << "this process cannot read its pid namespace";
  pid_t child = fork();
  if (child == 0) {
    pause();
    _exit(0);
  }
  const std::string start = detail::ProcStart(static_cast<int>(child));
  ASSERT_FALSE(start.empty());
  const std::string live = HostName() + ":" + std::to_string(child) + ":alive";
  NodeRow(live, static_cast<int>(child), start, ns, "10 s", 5'000);
  const std::int64_t id = ExecutingRow(live, 1);
  auto m = Machine<Counter>("t.lease").Step("start", [](auto&) { return Done(); }).Build();
  auto o = Options({m});
  o.reaper = false;
  auto engine = Engine::Start(o);
  EXPECT_EQ(Status(id), "executing") << "a live node's claim was taken";
  EXPECT_EQ(client_->Get(id)->locked_by.value_or("(none)"), live);
  engine->Stop();
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
}

// A node that did not record its namespace (an older version) is judged by its row alone.
TEST_F(LeasesTest, NodeWithoutARecordedNamespaceIsJudgedByItsRow) {
  pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  const std::string fresh = HostName() + ":" + std::to_string(child) + ":fresh";
  NodeRow(fresh, static_cast<int>(child), "", "", "0 s");
  const std::int64_t kept = ExecutingRow(fresh, 1);
  auto m = Machine<Counter>("t.lease").Step("start", [](auto&) { return Done(); }).Build();
  auto o = Options({m});
  o.reaper = false;
  auto engine = Engine::Start(o);
  EXPECT_EQ(Status(kept), "executing");
  engine->Stop();
}

// --- the same, with real workers in a pid namespace of their own ---

// `unshare -pf --mount-proc` (root) puts a worker in a new pid namespace with its own /proc,
// as a container sharing the host's network and name does.
bool UnshareWorks() {
  ChildResult r =
      RunChild({"unshare", "-pf", "--mount-proc", "true"}, {}, std::chrono::seconds(30));
  return r.exited && r.exit_code == 0;
}

class LeasesCliTest : public LeasesTest {
 protected:
  // A worker process; `contained`: in a pid namespace of its own (it is pid 1 there).
  std::unique_ptr<ChildProcess> Worker(bool contained, std::vector<std::string> flags) {
    std::vector<std::string> args = {"worker", "--database", db_};
    args.insert(args.end(), flags.begin(), flags.end());
    std::vector<std::string> argv = CliCommand(args);
    ChildOptions options;
    if (contained) {
      // --kill-child: the worker does not outlive unshare; signals go to the whole group.
      argv.insert(argv.begin(), {"unshare", "-pf", "--mount-proc", "--kill-child"});
      options.own_process_group = true;
    }
    return std::make_unique<ChildProcess>(argv, options);
  }

  // Inserts a demo.sleep job (a machine of the CLI) with the CLI; returns its id.
  std::int64_t InsertSleep(int ms) {
    ChildResult r =
        RunChild(CliCommand({"insert", "demo.sleep", "--state",
                             "{\"ms\": " + std::to_string(ms) + "}", "--database", db_}));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? std::stoll(r.out) : 0;
  }

  std::int64_t Nodes() { return Sql64("SELECT count(*) FROM gd_nodes"); }
  std::int64_t OtherNodes(const std::string& than) {
    return Sql64("SELECT count(*) FROM gd_nodes WHERE id <> '" + than + "'");
  }
};

// Long leases and reaper periods: nothing but the reclaim at start can move a claim.
const std::vector<std::string> kSlowReaper = {
    "--lease-ttl",     "120000", "--heartbeat-interval", "200",
    "--reap-interval", "120000", "--poll-interval",      "100"};

// A live worker in its own pid namespace holds a row mid-step; a worker started beside it on the
// host, outside that namespace, sees a pid (1) that is another process here. It must leave the
// claim alone: the step is running.
TEST_F(LeasesCliTest, WorkerInAnotherPidNamespaceKeepsItsClaimsWhenAnotherStarts) {
  if (!UnshareWorks()) GTEST_SKIP() << "unshare -pf --mount-proc is not permitted here";
  const std::int64_t id = InsertSleep(600'000);
  auto a = Worker(true, kSlowReaper);
  ASSERT_TRUE(WaitUntil([&] { return Status(id) == "executing"; }, 30s)) << a->err();
  const std::string holder = *client_->Get(id)->locked_by;
  EXPECT_EQ(holder.substr(holder.find(':')), std::string(":1") + holder.substr(holder.rfind(':')))
      << "worker A is not pid 1 of its namespace: " << holder;
  const std::int64_t seq = LeaseSeq(id);

  auto b = Worker(false, kSlowReaper);
  // B writes its node row after the reclaim: once it is there, the reclaim has run.
  ASSERT_TRUE(WaitUntil([&] { return OtherNodes(holder) == 1; }, 30s)) << b->err();
  EXPECT_EQ(Nodes(), 2) << "worker A's node row was deleted as dead";
  const auto info = client_->Get(id);
  EXPECT_EQ(info->status, "executing");
  EXPECT_EQ(info->locked_by.value_or("(none)"), holder);
  EXPECT_EQ(info->attempt, 0) << "the running step's claim was taken: "
                              << info->last_error.value_or("");
  EXPECT_EQ(LeaseSeq(id), seq);

  b->Signal(SIGTERM);
  EXPECT_TRUE(b->Wait(std::chrono::seconds(15))) << b->err();
  a->Kill();
}

// A worker in its own pid namespace dies mid-step; once its row has been silent for longer
// than its leases last, a worker starting outside the namespace takes its claim at once (the
// reaper would not sweep for 120 s).
TEST_F(LeasesCliTest, DeadWorkerOfAnotherPidNamespaceIsReclaimedOnceSilent) {
  if (!UnshareWorks()) GTEST_SKIP() << "unshare -pf --mount-proc is not permitted here";
  const std::int64_t id = InsertSleep(2'000);
  std::vector<std::string> short_lease = kSlowReaper;
  short_lease[1] = "3000";  // --lease-ttl
  auto a = Worker(true, short_lease);
  ASSERT_TRUE(WaitUntil([&] { return Status(id) == "executing"; }, 30s)) << a->err();
  const std::string holder = *client_->Get(id)->locked_by;
  a->Kill();
  // Its row stops being refreshed: wait until it has been silent for longer than its lease.
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Sql64("SELECT count(*) FROM gd_nodes WHERE id = '" + holder +
                     "' AND heartbeat_at < now() - interval '4 seconds'") == 1;
      },
      30s));
  EXPECT_EQ(Status(id), "executing");

  const auto start = std::chrono::steady_clock::now();
  auto b = Worker(false, kSlowReaper);
  const auto info = WaitTerminal(id, 60s);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 60s);
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.attempt, 1);
  EXPECT_NE(info.last_error.value_or("").find(holder), std::string::npos)
      << info.last_error.value_or("");
  b->Signal(SIGTERM);
  EXPECT_TRUE(b->Wait(std::chrono::seconds(15))) << b->err();
}

}  // namespace
}  // namespace gen_durable::testing
