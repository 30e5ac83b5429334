// Operating it (docs/operations.md): pause / resume, scale, autoscaling, reconfigure, safe stop,
// cancel, retry, delete, queue and node info, history, and isolation of tenants on separate
// schemas.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>

#include "support/engine_harness.hpp"

namespace gen_durable::testing {
namespace {

struct Nap {
  int ms = 0;
  bool fail = false;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Nap, ms, fail)

// Counts steps running at once, and the most seen.
struct Gauge {
  std::atomic<int> now{0}, peak{0}, runs{0};
  void Enter() {
    const int n = ++now;
    ++runs;
    int p = peak.load();
    while (n > p && !peak.compare_exchange_weak(p, n)) {
    }
  }
  void Leave() { --now; }
};

// A job that sleeps `ms` in 5 ms slices, stopping early when cancelled (its result says so),
// and fails when asked to.
AnyMachine Napper(const std::string& name, Gauge* gauge = nullptr) {
  return Job<Nap>(name)
      .MaxAttempts(1)
      .Perform([gauge](const Nap& a, JobContext& ctx) {
        if (gauge) gauge->Enter();
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(a.ms);
        bool cancelled = false;
        while (std::chrono::steady_clock::now() < until) {
          if (ctx.cancelled()) {
            cancelled = true;
            break;
          }
          std::this_thread::sleep_for(5ms);
        }
        if (gauge) gauge->Leave();
        if (a.fail) return JobResult::Error("asked to fail");
        // Returns success even when cancelled: the engine must still end it `cancelled`.
        return JobResult::Ok({{"saw_cancel", cancelled}});
      })
      .Build();
}

std::int64_t InsertNap(Client& c, const std::string& fsm, int ms, bool fail = false,
                       const std::string& queue = "default") {
  InsertOptions o;
  o.state = Json(Nap{ms, fail});
  o.queue = queue;
  auto id = c.Insert(fsm, o);
  EXPECT_TRUE(id.ok());
  return id.ok() ? *id : 0;
}

std::string StatusOf(Client& c, std::int64_t id) {
  auto info = c.Get(id);
  return info ? info->status : "missing";
}

class OperationsTest : public EngineTest {
 protected:
  std::optional<QueueInfo> Queue(const std::string& name) {
    for (auto& q : client_->Queues()) {
      if (q.name == name) return q;
    }
    return std::nullopt;
  }
};

// --- queue control ---

TEST_F(OperationsTest, PauseStopsClaimsOnEveryEngineAndResumeRestartsThem) {
  auto m = Napper("o.pause");
  auto a = Engine::Start(Options({m}));
  auto b = Engine::Start(Options({m}));
  client_->PauseQueue("default");
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(InsertNap(*client_, "o.pause", 0));
  // Both engines poll every 50-200 ms; give them many rounds to (wrongly) claim.
  std::this_thread::sleep_for(1s);
  for (auto id : ids) EXPECT_EQ(StatusOf(*client_, id), "runnable");
  auto q = Queue("default");
  ASSERT_TRUE(q);
  EXPECT_TRUE(q->paused);
  EXPECT_EQ(q->counts["runnable"], 6);
  EXPECT_TRUE(q->oldest_ready_ms.has_value());

  client_->ResumeQueue("default");
  for (auto id : ids) EXPECT_EQ(WaitTerminal(id).status, "done");
  EXPECT_FALSE(Queue("default")->paused);
  EXPECT_EQ(Queue("default")->completed_last_minute, 6);
}

TEST_F(OperationsTest, PauseOfAnotherQueueLeavesThisOneRunning) {
  auto m = Napper("o.other");
  auto e = Engine::Start(Options({m}));
  e->Pause("elsewhere");
  EXPECT_EQ(WaitTerminal(InsertNap(*client_, "o.other", 0)).status, "done");
  auto q = Queue("elsewhere");
  ASSERT_TRUE(q);
  EXPECT_TRUE(q->paused);
}

TEST_F(OperationsTest, PauseHandsBackRowsAlreadyPrefetched) {
  std::atomic<bool> go{false};
  std::atomic<int> runs{0};
  auto m = Job<Nap>("o.prefetched")
               .MaxAttempts(1)
               .Perform([&](const Nap&, JobContext&) {
                 ++runs;
                 while (!go) std::this_thread::sleep_for(2ms);
                 return JobResult::Ok();
               })
               .Build();
  auto o = Options({m}, 1);
  o.prefetch = 3;
  auto e = Engine::Start(o);
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(InsertNap(*client_, "o.prefetched", 0));
  // One runs; the other three wait in this node's buffer, claimed before the pause.
  ASSERT_TRUE(WaitUntil([&] {
    const auto q = e->Queues().at("default");
    return q.in_flight == 1 && q.buffered == 3;
  }));
  e->Pause("default");
  go = true;
  ASSERT_TRUE(WaitUntil([&] {
    const auto q = e->Queues().at("default");
    return q.in_flight == 0 && q.buffered == 0 &&
           Sql64("SELECT count(*) FROM gd_instances WHERE status = 'done'") >= 1;
  }));
  // The running step finished; the prefetched rows went back unstarted.
  EXPECT_EQ(runs.load(), 1);
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances WHERE status = 'runnable' "
                  "AND locked_by IS NULL"),
            3);
  e->Resume("default");
  for (auto id : ids) EXPECT_EQ(WaitTerminal(id).status, "done");
  EXPECT_EQ(runs.load(), 4);
}

// The queue's pause reaches a node twice: through the control channel (its listener hands the
// buffer back) and, for Engine::Pause, directly. Whichever takes the buffer, Engine::Pause
// returns only once the rows are back in the table. (A fresh-clone run found none released yet:
// the listener had taken the buffer and was still releasing it when Pause found it empty.)
// The delay between the two sweeps the window of the listener's release.
TEST_F(OperationsTest, PauseReturnsOnlyOnceThePrefetchedRowsAreBackWhoeverTookThem) {
  std::atomic<bool> go{false};
  auto m = Job<Nap>("o.prefetched2")
               .MaxAttempts(1)
               .Perform([&](const Nap&, JobContext&) {
                 while (!go) std::this_thread::sleep_for(1ms);
                 return JobResult::Ok();
               })
               .Build();
  auto o = Options({m}, 1);
  o.prefetch = 3;
  auto e = Engine::Start(o);
  for (int round = 0; round < 12; ++round) {
    SCOPED_TRACE(
        fmt::format("round {} (the direct pause {} ms after the control one)", round, round));
    go = false;
    for (int i = 0; i < 4; ++i) InsertNap(*client_, "o.prefetched2", 0);
    ASSERT_TRUE(WaitUntil([&] {
      const auto q = e->Queues().at("default");
      return q.in_flight == 1 && q.buffered == 3;
    }));
    client_->PauseQueue("default");
    std::this_thread::sleep_for(std::chrono::milliseconds(round));
    e->Pause("default");
    EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances WHERE status = 'runnable' "
                    "AND locked_by IS NULL"),
              3);
    go = true;
    e->Resume("default");
    ASSERT_TRUE(WaitUntil(
        [&] { return Sql64("SELECT count(*) FROM gd_instances WHERE status <> 'done'") == 0; }));
  }
}

TEST_F(OperationsTest, PauseStopsAnInlineChainAtItsNextStep) {
  std::atomic<bool> go{false};
  std::atomic<bool> in_first{false};
  auto m = Machine<Json>("o.chain")
               .Step("start",
                     [&](StepContext<Json>& c) {
                       in_first = true;
                       while (!go) std::this_thread::sleep_for(2ms);
                       return Next("second", c.state());
                     })
               .Step("second", [](StepContext<Json>&) { return Done({}); })
               .Build();
  auto o = Options({m}, 1);
  o.inline_next = true;
  auto e = Engine::Start(o);
  auto id = *client_->Insert(m, {});
  ASSERT_TRUE(WaitUntil([&] { return in_first.load(); }));
  e->Pause("default");
  go = true;
  ASSERT_TRUE(WaitUntil([&] {
    auto info = client_->Get(id);
    return info && info->status == "runnable" && info->step == "second";
  }));
  EXPECT_TRUE(WaitUntil([&] { return e->Queues().at("default").in_flight == 0; }));
  EXPECT_EQ(StatusOf(*client_, id), "runnable");
  e->Resume("default");
  EXPECT_EQ(WaitTerminal(id).status, "done");
}

TEST_F(OperationsTest, ScaleLimitsHowManyStepsRunAtOnce) {
  Gauge g;
  auto m = Napper("o.scale", &g);
  std::vector<Json> events;  // (declared before the engine: its handler outlives nothing)
  std::mutex mu;
  auto e = Engine::Start(Options({m}, 8));
  e->telemetry().Attach("queue.scaled", [&](const TelemetryEvent& ev) {
    std::lock_guard lock(mu);
    events.push_back({{"from", ev.measurements.at("from")},
                      {"to", ev.measurements.at("to")},
                      {"reason", ev.metadata.at("reason")}});
  });
  e->Scale("default", 2);
  EXPECT_EQ(e->Queues().at("default").concurrency, 2);
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 10; ++i) ids.push_back(InsertNap(*client_, "o.scale", 40));
  for (auto id : ids) WaitTerminal(id);
  EXPECT_LE(g.peak.load(), 2);
  EXPECT_EQ(g.runs.load(), 10);
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0], (Json{{"from", 8}, {"to", 2}, {"reason", "manual"}}));
  }
  // The node row shows it: what `gen_durable nodes` and the dashboard read.
  auto nodes = client_->Nodes();
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_EQ(nodes[0].id, e->node_id());
  EXPECT_EQ(nodes[0].queues.at("default"), 2);
  EXPECT_EQ(Queue("default")->concurrency.at(e->node_id()), 2);

  EXPECT_THROW(e->Scale("default", 0), InvalidArgument);
  EXPECT_THROW(e->Scale("nope", 3), InvalidArgument);
}

TEST_F(OperationsTest, ScaleRequestFromAClientReachesTheNamedNodeOnly) {
  auto m = Napper("o.scale_req");
  auto a = Engine::Start(Options({m}, 4));
  auto b = Engine::Start(Options({m}, 4));
  client_->ScaleQueue("default", 3, a->node_id());
  EXPECT_TRUE(WaitUntil([&] { return a->Queues().at("default").concurrency == 3; }));
  client_->ScaleQueue("default", 5);
  EXPECT_TRUE(WaitUntil([&] {
    return a->Queues().at("default").concurrency == 5 && b->Queues().at("default").concurrency == 5;
  }));
  EXPECT_THROW(client_->ScaleQueue("default", 0), InvalidArgument);
}

TEST_F(OperationsTest, AutoscaledQueueGrowsUnderABacklogAndShrinksAfterIt) {
  auto m = Napper("o.auto");
  auto o = Options({m});
  o.queues = {{"default", QueueConfig{1, 6}}};
  o.autoscale_interval = 100ms;
  o.autoscale_cooldown = 300ms;
  std::vector<std::pair<double, double>> changes;  // (declared before the engine, see above)
  std::mutex mu;
  auto e = Engine::Start(o);
  e->telemetry().Attach("queue.scaled", [&](const TelemetryEvent& ev) {
    std::lock_guard lock(mu);
    changes.emplace_back(ev.measurements.at("from"), ev.measurements.at("to"));
  });
  EXPECT_EQ(e->Queues().at("default").concurrency, 1);
  EXPECT_EQ(e->Queues().at("default").min, 1);
  EXPECT_EQ(e->Queues().at("default").max, 6);
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 30; ++i) ids.push_back(InsertNap(*client_, "o.auto", 100));
  EXPECT_TRUE(WaitUntil([&] { return e->Queues().at("default").concurrency == 6; }, 10s));
  for (auto id : ids) EXPECT_EQ(WaitTerminal(id, 30s).status, "done");
  EXPECT_TRUE(WaitUntil([&] { return e->Queues().at("default").concurrency == 1; }, 10s));
  e->Stop();
  std::lock_guard lock(mu);
  ASSERT_GE(changes.size(), 2u);
  EXPECT_GT(changes.front().second, changes.front().first);  // first a growth
  EXPECT_EQ(changes.back().second, 1);                       // last back to the minimum
  EXPECT_EQ(std::count_if(changes.begin(), changes.end(),
                          [](auto c) { return c.second > 6 || c.second < 1; }),
            0);
}

TEST_F(OperationsTest, ReconfigureStartsNewQueuesAndStopsUnnamedOnes) {
  Gauge g;
  auto m = Napper("o.reconf", &g);
  auto e = Engine::Start(Options({m}, 2));
  const auto running = InsertNap(*client_, "o.reconf", 300);
  // Started, not only claimed: a claimed row still in the buffer is handed back by the drain,
  // and its queue is gone.
  EXPECT_TRUE(WaitUntil([&] { return g.runs.load() >= 1; }));
  e->Reconfigure({{"fast", QueueConfig{3}}});
  // The running step finishes; new work on the dropped queue stays put; the new queue runs.
  EXPECT_EQ(WaitTerminal(running).status, "done");
  const auto left = InsertNap(*client_, "o.reconf", 0);
  const auto fast = InsertNap(*client_, "o.reconf", 0, false, "fast");
  EXPECT_EQ(WaitTerminal(fast).status, "done");
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(StatusOf(*client_, left), "runnable");
  auto queues = e->Queues();
  EXPECT_EQ(queues.at("fast").concurrency, 3);
  EXPECT_TRUE(queues.at("default").draining);
  EXPECT_EQ(client_->Nodes().at(0).queues, (std::map<std::string, int>{{"fast", 3}}));
  EXPECT_THROW(e->Reconfigure({}), ConfigError);
}

TEST_F(OperationsTest, SafeStopWaitsForRunningStepsBeyondTheDrainTimeout) {
  Gauge g;
  auto m = Napper("o.safe", &g);
  auto o = Options({m});
  o.drain_timeout = 50ms;
  auto e = Engine::Start(o);
  const auto id = InsertNap(*client_, "o.safe", 400);
  // Started, not only claimed: a claimed row still in the buffer is handed back by the stop.
  EXPECT_TRUE(WaitUntil([&] { return g.runs.load() >= 1; }));
  e->SafeStop();
  EXPECT_FALSE(e->running());
  EXPECT_EQ(StatusOf(*client_, id), "done");
}

// --- cancel ---

TEST_F(OperationsTest, CancelOfAQueuedInstanceEndsItAtOnce) {
  client_->PauseQueue("default");
  const auto id = InsertNap(*client_, "o.queued", 0);
  ASSERT_TRUE(client_->Signal(id, "ignored").ok());
  auto report = client_->Cancel(id, {.cascade = false, .reason = "not needed"});
  EXPECT_EQ(report.cancelled, std::vector<std::int64_t>{id});
  EXPECT_TRUE(report.requested.empty());
  auto info = client_->Get(id);
  EXPECT_EQ(info->status, "cancelled");
  EXPECT_EQ(info->last_error, "not needed");
  EXPECT_TRUE(info->completed_at.has_value());
  EXPECT_TRUE(info->signals.empty());  // the inbox went
  auto history = client_->History(id);
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].event, "cancel");
  EXPECT_EQ(history[0].node, "client");
  // Terminal now: a second cancel does nothing.
  auto again = client_->Cancel(id);
  EXPECT_TRUE(again.cancelled.empty());
  EXPECT_TRUE(again.requested.empty());
}

TEST_F(OperationsTest, CancelOfARunningStepSetsItsFlagAndEndsItCancelled) {
  auto m = Napper("o.running");
  auto e = Engine::Start(Options({m}));
  const auto id = InsertNap(*client_, "o.running", 60'000);
  EXPECT_TRUE(WaitUntil([&] { return StatusOf(*client_, id) == "executing"; }));
  auto report = client_->Cancel(id);
  EXPECT_EQ(report.requested, std::vector<std::int64_t>{id});
  auto info = WaitTerminal(id, 10s);
  EXPECT_EQ(info.status, "cancelled");
  EXPECT_EQ(info.last_error, "cancelled");
  EXPECT_TRUE(info.result.is_null());  // the step's Ok was replaced
  EXPECT_EQ(e->stats().stale, 0);
}

TEST_F(OperationsTest, CancelledRunningStepThatIgnoresTheFlagStillEndsCancelled) {
  std::atomic<bool> release{false};
  auto m = Machine<Json>("o.stubborn")
               .Step("start",
                     [&](StepContext<Json>& c) {
                       while (!release.load()) std::this_thread::sleep_for(5ms);
                       return Next("more", c.state());  // would run inline
                     })
               .Step("more",
                     [](StepContext<Json>&) {
                       return Done({{"ran", "more"}});
                     })
               .Build();
  auto e = Engine::Start(Options({m}));
  auto id = client_->Insert(m, {});
  ASSERT_TRUE(id.ok());
  EXPECT_TRUE(WaitUntil([&] { return StatusOf(*client_, *id) == "executing"; }));
  client_->Cancel(*id);
  release = true;
  auto info = WaitTerminal(*id);
  EXPECT_EQ(info.status, "cancelled");
  EXPECT_EQ(info.step, "more");  // its outcome's step was recorded, nothing ran after it
  EXPECT_TRUE(info.result.is_null());
}

TEST_F(OperationsTest, CancelWithCascadeEndsTheWholeTree) {
  auto child = Machine<Json>("o.child")
                   .Step("start", [](StepContext<Json>& c) { return Await({"never"}, c.state()); })
                   .Build();
  auto parent = Machine<Json>("o.parent")
                    .Step("start",
                          [](StepContext<Json>& c) {
                            std::vector<InsertRequest> kids(3, InsertRequest{"o.child", {}, {}});
                            return ScheduleChildren("join", kids, c.state());
                          })
                    .Step("join", [](StepContext<Json>&) { return Done({}); })
                    .Build();
  auto e = Engine::Start(Options({child, parent}));
  auto id = client_->Insert(parent, {});
  ASSERT_TRUE(id.ok());
  std::vector<std::int64_t> kids;
  EXPECT_TRUE(WaitUntil([&] {
    auto info = client_->Get(*id);
    if (!info || info->status != "awaiting_children" || info->children.size() != 3) return false;
    kids = info->children;
    return std::all_of(kids.begin(), kids.end(),
                       [&](std::int64_t k) { return StatusOf(*client_, k) == "awaiting_signal"; });
  }));
  // Without cascade only the target ends; here a child alone first.
  auto one = client_->Cancel(kids[0]);
  EXPECT_EQ(one.cancelled, std::vector<std::int64_t>{kids[0]});
  EXPECT_EQ(StatusOf(*client_, *id), "awaiting_children");
  auto all = client_->Cancel(*id, {.cascade = true});
  std::vector<std::int64_t> expected = {*id, kids[1], kids[2]};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(all.cancelled, expected);
  for (auto k : kids) EXPECT_EQ(StatusOf(*client_, k), "cancelled");
  EXPECT_EQ(StatusOf(*client_, *id), "cancelled");
}

// A cascading cancel that meets a commit in flight: the commit (held open here on a second
// connection, as the flusher's transaction would be) parks `parent` on a new barrier and
// inserts its child; the cancel waits for the parent's row lock, and must then see that child.
TEST_F(OperationsTest, CascadeCancelReachesChildrenSpawnedByACommitItWaitedFor) {
  auto in_flight = detail::pg::Connection::Open(db_, "in_flight_commit");
  auto insert = [&] { return InsertNap(*client_, "o.tree", 0); };
  auto claim = [&](std::int64_t id) {
    sql_->Exec(
        fmt::format("UPDATE gd_instances SET status = 'executing', locked_by = 'n:1:x', "
                    "lease_expires_at = now() + interval '1 hour' WHERE id = {}",
                    id));
  };
  // Runs the cascade of `root` while `parent`'s commit spawns a child; returns the child.
  auto race = [&](std::int64_t root, std::int64_t parent) {
    in_flight->Exec("BEGIN");
    in_flight->Exec(fmt::format(
        "UPDATE gd_instances SET status = 'awaiting_children', join_seq = join_seq + 1, "
        "join_pending = 1, join_next_step = 'start', locked_by = NULL, lease_expires_at = NULL "
        "WHERE id = {}",
        parent));
    const auto child = in_flight
                           ->Exec(fmt::format("INSERT INTO gd_instances (fsm, step, parent_id, "
                                              "parent_join) SELECT 'o.tree', 'start', id, "
                                              "join_seq FROM gd_instances WHERE id = {} "
                                              "RETURNING id",
                                              parent))
                           .Int64(0, 0);
    CancelReport report;
    std::thread cancel([&] { report = client_->Cancel(root, {.cascade = true}); });
    // The cancel is blocked on a row lock the commit holds; only then does the commit land.
    const bool waiting = WaitUntil([&] {
      return Sql64(
                 "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                 "AND wait_event_type = 'Lock'") > 0;
    });
    in_flight->Exec("COMMIT");
    cancel.join();
    EXPECT_TRUE(waiting);
    EXPECT_TRUE(std::count(report.cancelled.begin(), report.cancelled.end(), child))
        << "child " << child << " missed";
    return child;
  };
  // The root itself commits its children.
  const auto root = insert();
  claim(root);
  const auto child = race(root, root);
  EXPECT_EQ(StatusOf(*client_, root), "cancelled");
  EXPECT_EQ(StatusOf(*client_, child), "cancelled");
  // A child running under a parked root commits grandchildren.
  const auto top = insert();
  const auto mid = insert();
  sql_->Exec(
      fmt::format("UPDATE gd_instances SET status = 'awaiting_children', join_seq = 1, "
                  "join_pending = 1, join_next_step = 'start' WHERE id = {}",
                  top));
  sql_->Exec(fmt::format("UPDATE gd_instances SET parent_id = {}, parent_join = 1 WHERE id = {}",
                         top, mid));
  claim(mid);
  const auto grandchild = race(top, mid);
  EXPECT_EQ(StatusOf(*client_, top), "cancelled");
  EXPECT_EQ(StatusOf(*client_, grandchild), "cancelled");
  // `mid` was executing when the cancel locked it, then parked by its commit: ended too.
  EXPECT_EQ(StatusOf(*client_, mid), "cancelled");
}

TEST_F(OperationsTest, CancelWhereFiltersByQueueAndFsm) {
  client_->PauseQueue("default");
  client_->PauseQueue("other");
  const auto a = InsertNap(*client_, "o.f1", 0);
  const auto b = InsertNap(*client_, "o.f2", 0);
  const auto c = InsertNap(*client_, "o.f1", 0, false, "other");
  InstanceFilter f;
  f.fsm = "o.f1";
  f.queue = "default";
  EXPECT_EQ(client_->CancelWhere(f).cancelled, std::vector<std::int64_t>{a});
  EXPECT_EQ(StatusOf(*client_, b), "runnable");
  EXPECT_EQ(StatusOf(*client_, c), "runnable");
}

TEST_F(OperationsTest, ALostLeaseOfACancelledRowEndsItCancelled) {
  const auto id = InsertNap(*client_, "o.lost", 0);
  // A node that died mid-step after the cancel was asked.
  sql_->Exec(
      fmt::format("UPDATE gd_instances SET status = 'executing', locked_by = 'gone:1:x', "
                  "lease_expires_at = now() - interval '1 second', cancel_requested = 'stop it' "
                  "WHERE id = {}",
                  id));
  auto m = Napper("o.lost");
  auto e = Engine::Start(Options({m}));
  auto info = WaitTerminal(id);
  EXPECT_EQ(info.status, "cancelled");
  EXPECT_EQ(info.last_error, "stop it");
}

// --- retry and delete ---

TEST_F(OperationsTest, RetryPutsFailedAndCancelledInstancesBackToWork) {
  auto m = Napper("o.retry");
  auto e = Engine::Start(Options({m}));
  const auto failed = InsertNap(*client_, "o.retry", 0, /*fail=*/true);
  EXPECT_EQ(WaitTerminal(failed).status, "failed");
  EXPECT_FALSE(client_->Retry(InsertNap(*client_, "o.retry", 0)));  // not failed: refused
  // Retried as it is: it fails again, with attempt 0 again and a fresh completion.
  EXPECT_TRUE(client_->Retry(failed));
  auto again = WaitTerminal(failed);
  EXPECT_EQ(again.status, "failed");
  EXPECT_EQ(again.attempt, 0);

  // Bulk: every failed instance of the fsm; they fail again but were retried.
  const auto other = InsertNap(*client_, "o.retry", 0, true);
  WaitTerminal(other);
  InstanceFilter f;
  f.status = "failed";
  f.fsm = "o.retry";
  auto ids = client_->RetryWhere(f);
  EXPECT_EQ(ids, (std::vector<std::int64_t>{failed, other}));
  auto history = client_->History(failed);
  EXPECT_EQ(std::count_if(history.begin(), history.end(),
                          [](const HistoryEntry& h) { return h.event == "retry"; }),
            2);
}

TEST_F(OperationsTest, RetryOfACancelledInstanceRunsItToDone) {
  client_->PauseQueue("default");
  const auto id = InsertNap(*client_, "o.revive", 0);
  client_->Cancel(id);
  client_->ResumeQueue("default");
  auto m = Napper("o.revive");
  auto e = Engine::Start(Options({m}));
  EXPECT_TRUE(client_->Retry(id));
  auto info = WaitTerminal(id);
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result, (Json{{"saw_cancel", false}}));
  auto history = client_->History(id);
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[0].event, "cancel");
  EXPECT_EQ(history[1].event, "retry");
  EXPECT_EQ(history[1].status, "runnable");
}

TEST_F(OperationsTest, RetryRefusesAnInstanceWhoseUniqueKeyIsTakenAgain) {
  client_->PauseQueue("default");
  InsertOptions o;
  o.unique_key = "order-1";
  auto first = client_->Insert("o.uniq", o);
  ASSERT_TRUE(first.ok());
  client_->Cancel(*first);
  auto second = client_->Insert("o.uniq", o);  // the key is free again: a new holder
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(client_->Retry(*first));
  EXPECT_EQ(StatusOf(*client_, *first), "cancelled");
  // Two cancelled holders of one free key: a bulk retry revives exactly one of them.
  client_->Cancel(*second);
  InstanceFilter f;
  f.fsm = "o.uniq";
  EXPECT_EQ(client_->RetryWhere(f).size(), 1u);
}

TEST_F(OperationsTest, DeleteWhereRemovesMatchingRowsButNeverRunningOnes) {
  auto m = Napper("o.del");
  auto e = Engine::Start(Options({m}));
  const auto done = InsertNap(*client_, "o.del", 0);
  WaitTerminal(done);
  const auto running = InsertNap(*client_, "o.del", 2000);
  EXPECT_TRUE(WaitUntil([&] { return StatusOf(*client_, running) == "executing"; }));
  InstanceFilter f;
  f.fsm = "o.del";
  EXPECT_EQ(client_->DeleteWhere(f), 1);
  EXPECT_FALSE(client_->Get(done).has_value());
  EXPECT_TRUE(client_->Get(running).has_value());
  InstanceFilter old;
  old.older_than = std::chrono::hours(1);
  EXPECT_EQ(client_->DeleteWhere(old), 0);
}

// --- info and history ---

TEST_F(OperationsTest, NodesReportTheirQueuesAndRunningInstances) {
  auto m = Napper("o.nodes");
  auto o = Options({m}, 3);
  o.queues["second"] = QueueConfig{2, 5};
  auto e = Engine::Start(o);
  const auto id = InsertNap(*client_, "o.nodes", 2000);
  EXPECT_TRUE(WaitUntil([&] { return StatusOf(*client_, id) == "executing"; }));
  auto nodes = client_->Nodes();
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_EQ(nodes[0].engine, e->name());
  EXPECT_EQ(nodes[0].pid, static_cast<int>(getpid()));
  EXPECT_EQ(nodes[0].running, 1);
  EXPECT_EQ(nodes[0].queues, (std::map<std::string, int>{{"default", 3}, {"second", 2}}));
  EXPECT_FALSE(nodes[0].heartbeat_at.empty());
  client_->Cancel(id);
  WaitTerminal(id);
}

TEST_F(OperationsTest, HistoryRecordsEveryStepWhenEnabledAndGcSweepsOldEntries) {
  auto m = Machine<Json>("o.hist")
               .Step("start", [](StepContext<Json>& c) { return Next("second", c.state()); })
               .Step("second",
                     [](StepContext<Json>& c) {
                       if (c.attempt() == 0) throw std::runtime_error("first try fails");
                       return Done({});
                     })
               .OnError([](const StepError&, StepContext<Json>& c) { return Replay(c.state()); })
               .Build();
  auto o = Options({m});
  o.history = true;
  auto e = Engine::Start(o);
  auto id = client_->Insert(m, {});
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(WaitTerminal(*id).status, "done");
  auto h = client_->History(*id);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0].step, "start");
  EXPECT_EQ(h[1].step, "second");
  EXPECT_EQ(h[1].attempt, 0);
  EXPECT_TRUE(h[1].error.has_value());
  EXPECT_NE(h[1].error->find("first try fails"), std::string::npos);
  EXPECT_EQ(h[2].step, "second");
  EXPECT_EQ(h[2].attempt, 1);
  EXPECT_EQ(h[2].status, "done");
  for (const auto& entry : h) {
    EXPECT_EQ(entry.event, "step");
    EXPECT_EQ(entry.node, e->node_id());
    ASSERT_TRUE(entry.duration_ms.has_value());
    EXPECT_GE(*entry.duration_ms, 0.0);
  }
  EXPECT_EQ(client_->History(*id, 1).size(), 1u);
  e->Stop();

  // Retention: GC deletes entries past it.
  auto g = Options({m});
  g.gc_interval = 50ms;
  g.history_retention = 1ms;
  auto gc = Engine::Start(g);
  EXPECT_TRUE(WaitUntil([&] { return client_->History(*id).empty(); }));
}

TEST_F(OperationsTest, HistoryIsOffByDefault) {
  auto m = Napper("o.nohist");
  auto e = Engine::Start(Options({m}));
  const auto id = InsertNap(*client_, "o.nohist", 0);
  WaitTerminal(id);
  EXPECT_TRUE(client_->History(id).empty());
}

// --- tenants ---

TEST_F(OperationsTest, EnginesOnSeparateSchemasAreIsolated) {
  auto m = Napper("o.tenant");
  auto tenant = [&](const std::string& schema) {
    ClientOptions co;
    co.database = db_;
    co.schema = schema;
    auto c = Client::Connect(co);
    c->Migrate();
    return c;
  };
  auto ca = tenant("tenant_a");
  auto cb = tenant("tenant_b");
  auto oa = Options({m});
  oa.schema = "tenant_a";
  oa.gc_interval = 50ms;
  oa.gc_retention = 1ms;
  auto ob = Options({m});
  ob.schema = "tenant_b";
  auto ea = Engine::Start(oa);
  auto eb = Engine::Start(ob);

  // GC of tenant a deletes a's finished rows, never b's.
  const auto b_done = InsertNap(*cb, "o.tenant", 0);
  EXPECT_TRUE(WaitUntil([&] { return StatusOf(*cb, b_done) == "done"; }));
  const auto a_done = InsertNap(*ca, "o.tenant", 0);
  EXPECT_TRUE(WaitUntil([&] { return !ca->Get(a_done).has_value(); }));
  EXPECT_EQ(StatusOf(*cb, b_done), "done");

  // A pause of a's default queue leaves b's running.
  ca->PauseQueue("default");
  const auto a_waits = InsertNap(*ca, "o.tenant", 0);
  const auto b_runs = InsertNap(*cb, "o.tenant", 0);
  EXPECT_TRUE(WaitUntil([&] { return StatusOf(*cb, b_runs) == "done"; }));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(StatusOf(*ca, a_waits), "runnable");
  EXPECT_FALSE(cb->Queues().at(0).paused);

  // A cancel by filter on a touches nothing of b.
  const auto b_parked = InsertNap(*cb, "o.tenant", 60'000);
  EXPECT_TRUE(WaitUntil([&] { return StatusOf(*cb, b_parked) == "executing"; }));
  EXPECT_TRUE(ca->CancelWhere(InstanceFilter{}).requested.empty());
  EXPECT_EQ(StatusOf(*cb, b_parked), "executing");
  // Each tenant's nodes are its own.
  ASSERT_EQ(ca->Nodes().size(), 1u);
  EXPECT_EQ(ca->Nodes()[0].id, ea->node_id());
  EXPECT_EQ(cb->Nodes()[0].id, eb->node_id());
  cb->Cancel(b_parked);
  EXPECT_TRUE(WaitUntil([&] { return StatusOf(*cb, b_parked) == "cancelled"; }));
}

}  // namespace
}  // namespace gen_durable::testing
