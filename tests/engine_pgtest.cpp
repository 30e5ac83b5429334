// End-to-end tests of machines, jobs and outcomes run by a real engine on a real Postgres.
#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <mutex>
#include <vector>

#include "gen_durable/runtime/node.hpp"
#include "gen_durable/schema/migrations.hpp"
#include "support/engine_harness.hpp"

namespace gen_durable::testing {
namespace {

struct Counter {
  int n = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Counter, n)

// --- outcomes ---

TEST_F(EngineTest, NextRunsTheNextStepWithTheNewState) {
  auto m =
      Machine<Counter>("t.next")
          .Step("start",
                [](StepContext<Counter>& c) { return Next("b", Counter{c.state().n + 1}); })
          .Step("b",
                [](StepContext<Counter>& c) {
                  return Done({{"n", c.state().n}, {"step", c.step()}, {"attempt", c.attempt()}});
                })
          .Build();
  auto engine = Engine::Start(Options({m}));
  auto id = client_->Insert(m, Counter{41});
  ASSERT_TRUE(id.ok());
  auto info = WaitTerminal(*id);
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result, (Json{{"n", 42}, {"step", "b"}, {"attempt", 0}}));
  EXPECT_EQ(info.step, "b");
  EXPECT_EQ(info.state, (Json{{"n", 42}}));
}

TEST_F(EngineTest, ReplayRunsTheSameStepAgainWithAttemptPlusOne) {
  auto m = Machine<Counter>("t.replay")
               .Step("start",
                     [](StepContext<Counter>& c) {
                       if (c.attempt() < 2) return Replay(Counter{c.state().n + 10}, 20ms);
                       return Done({{"n", c.state().n}, {"attempt", c.attempt()}});
                     })
               .Build();
  auto engine = Engine::Start(Options({m}));
  auto info = WaitTerminal(*client_->Insert(m, Counter{1}));
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result, (Json{{"n", 21}, {"attempt", 2}}));
  EXPECT_EQ(info.attempt, 2);
}

TEST_F(EngineTest, ReplayDelayPostponesEligibility) {
  std::atomic<int> runs{0};
  auto m = Machine<Counter>("t.replay_delay")
               .Step("start",
                     [&](StepContext<Counter>& c) {
                       ++runs;
                       return Replay(c.state(), std::chrono::minutes(10));
                     })
               .Build();
  auto engine = Engine::Start(Options({m}));
  auto id = *client_->Insert(m, Counter{});
  ASSERT_TRUE(WaitUntil([&] { return client_->Get(id)->attempt == 1; }));
  EXPECT_EQ(client_->Get(id)->status, "scheduled");
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances WHERE eligible_at > now() + interval '9 min'"),
            1);
  EXPECT_EQ(runs.load(), 1);
}

TEST_F(EngineTest, StopFailsWithTheReason) {
  auto m = Machine<Counter>("t.stop")
               .Step("start", [](StepContext<Counter>&) { return Stop("card declined"); })
               .Build();
  auto engine = Engine::Start(Options({m}));
  auto info = WaitTerminal(*client_->Insert(m, Counter{}));
  EXPECT_EQ(info.status, "failed");
  EXPECT_EQ(info.last_error, "card declined");
  EXPECT_TRUE(info.completed_at.has_value());
}

TEST_F(EngineTest, NextToAnUndefinedStepFailsClearly) {
  auto m = Machine<Counter>("t.badnext")
               .Step("start", [](StepContext<Counter>& c) { return Next("nowhere", c.state()); })
               .Build();
  auto engine = Engine::Start(Options({m}));
  auto info = WaitTerminal(*client_->Insert(m, Counter{}));
  EXPECT_EQ(info.status, "failed");
  EXPECT_NE(info.last_error->find("'nowhere'"), std::string::npos) << *info.last_error;
}

// --- errors ---

TEST_F(EngineTest, ExceptionGoesToTheErrorHandler) {
  auto m = Machine<Counter>("t.handler")
               .Step("start",
                     [](StepContext<Counter>& c) -> Outcome {
                       if (c.attempt() < 2)
                         throw std::runtime_error("boom " + std::to_string(c.attempt()));
                       return Done({{"attempt", c.attempt()}});
                     })
               .OnError([](const StepError& e, StepContext<Counter>& c) {
                 EXPECT_FALSE(e.decode_error);
                 return Replay(c.state(), 10ms);
               })
               .Build();
  auto engine = Engine::Start(Options({m}));
  auto info = WaitTerminal(*client_->Insert(m, Counter{}));
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result, (Json{{"attempt", 2}}));
  EXPECT_EQ(info.last_error, "boom 1");  // recorded by the replay the handler returned
}

TEST_F(EngineTest, DefaultErrorHandlerStopsWithTheMessage) {
  auto m =
      Machine<Counter>("t.nohandler")
          .Step("start", [](StepContext<Counter>&) -> Outcome { throw std::logic_error("bad"); })
          .Build();
  auto engine = Engine::Start(Options({m}));
  auto info = WaitTerminal(*client_->Insert(m, Counter{}));
  EXPECT_EQ(info.status, "failed");
  EXPECT_EQ(info.last_error, "bad");
}

TEST_F(EngineTest, UndecodableStateIsRoutedToTheHandlerNotACrash) {
  std::atomic<bool> saw_decode{false};
  auto m = Machine<Counter>("t.decode")
               .Step("start", [](StepContext<Counter>&) { return Done(); })
               .OnError([&](const StepError& e, StepContext<Counter>&) {
                 saw_decode = e.decode_error;
                 return Stop("rejected: " + e.message);
               })
               .Build();
  // An insert refuses such a state, so it is written behind the client's back.
  auto id = *client_->Insert(m, Counter{});
  sql_->Exec("UPDATE gd_instances SET state = '{\"n\": \"not a number\"}' WHERE id = " +
             std::to_string(id));
  auto engine = Engine::Start(Options({m}));
  auto info = WaitTerminal(id);
  EXPECT_TRUE(saw_decode.load());
  EXPECT_EQ(info.status, "failed");
  EXPECT_NE(info.last_error->find("state decode failed"), std::string::npos);
}

TEST_F(EngineTest, MissingStateFieldsTakeDefaultsAndUnknownFieldsAreIgnored) {
  auto m = Machine<Json>("t.defaults")
               .Step("start",
                     [](StepContext<Json>& c) {
                       Counter decoded = c.state().get<Counter>();
                       return Done({{"n", decoded.n}});
                     })
               .Build();
  auto engine = Engine::Start(Options({m}));
  InsertOptions o;
  o.state = Json{{"unknown", 1}};
  auto info = WaitTerminal(*client_->Insert(m, o));
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result, (Json{{"n", 0}}));
}

TEST_F(EngineTest, UnknownStepNameFailsWithAClearError) {
  auto m = Machine<Counter>("t.unknownstep")
               .Step("start", [](StepContext<Counter>&) { return Done(); })
               .Build();
  auto engine = Engine::Start(Options({m}));
  // Inserted by name with an explicit step the machine does not have (as another node might).
  InsertRequest r{"t.unknownstep", 1, {}};
  r.options.step = "vanished";
  auto ids = client_->InsertAll({r});
  ASSERT_EQ(ids.size(), 1u);
  auto info = WaitTerminal(ids[0]);
  EXPECT_EQ(info.status, "failed");
  EXPECT_NE(info.last_error->find("unknown step 'vanished'"), std::string::npos)
      << *info.last_error;
}

TEST_F(EngineTest, InsertOfAnUndefinedStepOfAKnownMachineIsRefused) {
  auto m = Machine<Counter>("t.refuse")
               .Step("start", [](StepContext<Counter>&) { return Done(); })
               .Build();
  InsertOptions o;
  o.step = "nope";
  EXPECT_THROW((void)client_->Insert(m, o), InvalidArgument);
}

// --- jobs ---

TEST_F(EngineTest, JobOkWithResultIsDone) {
  auto j = Job<Counter>("t.job_ok")
               .Perform([](const Counter& a, JobContext&) {
                 return JobResult::Ok({{"twice", a.n * 2}});
               })
               .Build();
  auto engine = Engine::Start(Options({j}));
  auto info = WaitTerminal(*client_->Insert(j, Counter{21}));
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result, (Json{{"twice", 42}}));
}

TEST_F(EngineTest, JobErrorIsRetriedWithBackoffUntilMaxAttempts) {
  std::atomic<int> runs{0};
  std::vector<int> backoff_attempts;
  std::mutex mu;
  auto j = Job<Json>("t.job_err")
               .MaxAttempts(3)
               .Backoff([&](int attempt) {
                 std::lock_guard lock(mu);
                 backoff_attempts.push_back(attempt);
                 return 10ms;
               })
               .Perform([&](const Json&, JobContext&) {
                 ++runs;
                 return JobResult::Error("nope");
               })
               .Build();
  auto engine = Engine::Start(Options({j}));
  auto info = WaitTerminal(*client_->Insert(j));
  EXPECT_EQ(info.status, "failed");
  EXPECT_EQ(runs.load(), 3);
  EXPECT_EQ(info.attempt, 2);
  EXPECT_EQ(info.last_error, "nope (attempt 3 of 3)");
  std::lock_guard lock(mu);
  EXPECT_EQ(backoff_attempts, (std::vector<int>{0, 1}));
}

TEST_F(EngineTest, JobThrowCountsAsErrorAndRetries) {
  auto j = Job<Json>("t.job_throw")
               .Backoff([](int) { return 5ms; })
               .Perform([](const Json&, JobContext& ctx) {
                 if (ctx.attempt() == 0) throw std::runtime_error("first time fails");
                 return JobResult::Ok({{"attempt", ctx.attempt()}});
               })
               .Build();
  auto engine = Engine::Start(Options({j}));
  auto info = WaitTerminal(*client_->Insert(j));
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result, (Json{{"attempt", 1}}));
  EXPECT_EQ(info.last_error, "first time fails");
}

TEST_F(EngineTest, JobCancelFailsWithoutRetry) {
  std::atomic<int> runs{0};
  auto j = Job<Json>("t.job_cancel")
               .Perform([&](const Json&, JobContext&) {
                 ++runs;
                 return JobResult::Cancel("not worth retrying");
               })
               .Build();
  auto engine = Engine::Start(Options({j}));
  auto info = WaitTerminal(*client_->Insert(j));
  EXPECT_EQ(info.status, "failed");
  EXPECT_EQ(info.last_error, "not worth retrying");
  EXPECT_EQ(runs.load(), 1);
}

TEST_F(EngineTest, JobWithUndecodableArgsFailsAtOnce) {
  std::atomic<int> runs{0};
  auto j = Job<Counter>("t.job_badargs")
               .Perform([&](const Counter&, JobContext&) {
                 ++runs;
                 return JobResult::Ok();
               })
               .Build();
  // An insert refuses such args, so they are written behind the client's back.
  auto id = *client_->Insert(j, Counter{});
  sql_->Exec("UPDATE gd_instances SET state = '{\"n\": [1, 2]}' WHERE id = " + std::to_string(id));
  auto engine = Engine::Start(Options({j}));
  auto info = WaitTerminal(id);
  EXPECT_EQ(info.status, "failed");
  EXPECT_EQ(runs.load(), 0);
  EXPECT_NE(info.last_error->find("state decode failed"), std::string::npos);
}

// --- the ownership guard ---

TEST_F(EngineTest, LateOutcomeOfALostLeaseIsDroppedAndCounted) {
  std::latch started(1);
  std::latch stolen(1);
  auto m = Machine<Counter>("t.stale")
               .Step("start",
                     [&](StepContext<Counter>&) {
                       started.count_down();
                       stolen.wait();
                       return Done({{"late", true}});
                     })
               .Build();
  auto engine = Engine::Start(Options({m}));
  std::atomic<int> stale_events{0};
  engine->telemetry().Attach("outcome.stale", [&](const TelemetryEvent&) { ++stale_events; });
  auto id = *client_->Insert(m, Counter{});
  started.wait();
  // Another claimant takes the row over, as after a reap and a re-claim elsewhere.
  sql_->Exec(
      "UPDATE gd_instances SET locked_by = 'other-node', lease_seq = lease_seq + 1 "
      "WHERE id = " +
      std::to_string(id));
  stolen.count_down();
  ASSERT_TRUE(WaitUntil([&] { return engine->stats().stale == 1; }));
  auto info = client_->Get(id);
  EXPECT_EQ(info->status, "executing");
  EXPECT_EQ(info->locked_by, "other-node");
  EXPECT_TRUE(info->result.is_null());
  EXPECT_EQ(stale_events.load(), 1);
  engine->Stop();
}

// --- reaper and reclaim ---

TEST_F(EngineTest, ReaperReturnsExpiredLeasesWithAttemptPlusOne) {
  auto m = Machine<Counter>("t.reap")
               .Step("start",
                     [](StepContext<Counter>& c) {
                       return Done({{"attempt", c.attempt()}});
                     })
               .Build();
  auto id = *client_->Insert(m, Counter{});
  // A claim by a node that vanished: its lease has expired.
  sql_->Exec(
      "UPDATE gd_instances SET status = 'executing', locked_by = 'ghost', lease_seq = 1, "
      "lease_expires_at = now() - interval '1 second'");
  auto engine = Engine::Start(Options({m}));
  std::atomic<int> reaped{0};
  engine->telemetry().Attach("reaper.reaped", [&](const TelemetryEvent& e) {
    reaped += static_cast<int>(e.measurements.at("count"));
  });
  auto info = WaitTerminal(id);
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result, (Json{{"attempt", 1}}));
  EXPECT_NE(info.last_error->find("ghost"), std::string::npos);
  EXPECT_EQ(reaped.load(), 1);
  engine->Stop();
}

TEST_F(EngineTest, ReaperFailsARowWhoseAttemptsAreExhausted) {
  auto m = Machine<Counter>("t.reap_max")
               .MaxAttempts(2)
               .Step("start", [](StepContext<Counter>&) { return Done(); })
               .Build();
  auto id = *client_->Insert(m, Counter{});
  sql_->Exec(
      "UPDATE gd_instances SET status = 'executing', locked_by = 'ghost', attempt = 1, "
      "lease_expires_at = now() - interval '1 second'");
  auto engine = Engine::Start(Options({m}));
  auto info = WaitTerminal(id);
  EXPECT_EQ(info.status, "failed");
  EXPECT_EQ(info.attempt, 2);
  EXPECT_NE(info.last_error->find("max attempts"), std::string::npos);
}

TEST_F(EngineTest, LiveLeasesAreNotReaped) {
  std::latch release(1);
  auto m = Machine<Counter>("t.noreap")
               .Step("start",
                     [&](StepContext<Counter>&) {
                       release.wait();
                       return Done();
                     })
               .Build();
  auto o = Options({m});
  // Generous against a loaded machine: a heartbeat may be late, but not by 1.4 s.
  o.lease_ttl = 1500ms;
  o.heartbeat_interval = 100ms;
  o.reap_interval = 50ms;
  auto engine = Engine::Start(o);
  auto id = *client_->Insert(m, Counter{});
  ASSERT_TRUE(WaitUntil([&] { return client_->Get(id)->status == "executing"; }));
  std::this_thread::sleep_for(4000ms);  // several lease lengths, kept alive by the heartbeat
  EXPECT_EQ(engine->stats().reaped, 0);
  release.count_down();
  auto info = WaitTerminal(id);
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.attempt, 0);
}

TEST_F(EngineTest, DeadPredecessorClaimsAreReleasedAtStart) {
  auto m = Machine<Counter>("t.reclaim")
               .Step("start",
                     [](StepContext<Counter>& c) {
                       return Done({{"attempt", c.attempt()}});
                     })
               .Build();
  // A process that existed and is gone: fork a child and reap it.
  pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  const std::string dead = std::string(host) + ":" + std::to_string(child) + ":deadbeef";
  auto id = *client_->Insert(m, Counter{});
  // Its pid is of our pid namespace, where it names no process: proof of death at once.
  detail::pg::Params p;
  p.Add(dead).Add(std::string(host)).Add(static_cast<int>(child)).Add(detail::SelfPidNamespace());
  sql_->ExecParams(
      "INSERT INTO gd_nodes (id, engine, host, pid, pid_ns) "
      "VALUES ($1, 'old', $2, $3, $4)",
      p);
  sql_->ExecParams(
      "UPDATE gd_instances SET status = 'executing', locked_by = $1, "
      "lease_expires_at = now() + interval '1 hour'",
      detail::pg::Params().Add(dead));
  auto o = Options({m});
  o.reaper = false;  // only the reclaim at start can bring it back
  auto engine = Engine::Start(o);
  auto info = WaitTerminal(id);
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result, (Json{{"attempt", 1}}));
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_nodes WHERE id = '" + dead + "'"), 0);
}

TEST_F(EngineTest, LiveNodeOnTheSameHostKeepsItsClaims) {
  auto m = Machine<Counter>("t.livenode")
               .Step("start", [](StepContext<Counter>&) { return Done(); })
               .Build();
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  // Our parent process is alive: its claims must not be taken.
  const int alive = static_cast<int>(getppid());
  const std::string other = std::string(host) + ":" + std::to_string(alive) + ":cafe";
  auto id = *client_->Insert(m, Counter{});
  sql_->ExecParams(
      "INSERT INTO gd_nodes (id, engine, host, pid, pid_ns) "
      "VALUES ($1, 'x', $2, $3, $4)",
      detail::pg::Params()
          .Add(other)
          .Add(std::string(host))
          .Add(alive)
          .Add(detail::SelfPidNamespace()));
  sql_->ExecParams(
      "UPDATE gd_instances SET status = 'executing', locked_by = $1, "
      "lease_expires_at = now() + interval '1 hour'",
      detail::pg::Params().Add(other));
  auto o = Options({m});
  o.reaper = false;
  auto engine = Engine::Start(o);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(client_->Get(id)->status, "executing");
  EXPECT_EQ(client_->Get(id)->locked_by, other);
}

// --- GC ---

TEST_F(EngineTest, GcDeletesTerminalRowsPastRetentionInBatches) {
  auto m =
      Machine<Counter>("t.gc").Step("start", [](StepContext<Counter>&) { return Done(); }).Build();
  std::vector<InsertRequest> reqs(7, InsertRequest{"t.gc", 1, {}});
  auto ids = client_->InsertAll(reqs);
  ASSERT_EQ(ids.size(), 7u);
  // Five old terminal rows, one recent terminal row, one live row.
  sql_->Exec(
      "UPDATE gd_instances SET status = 'done', completed_at = now() - interval '2 hours' "
      "WHERE id <= " +
      std::to_string(ids[4]));
  sql_->Exec("UPDATE gd_instances SET status = 'failed', completed_at = now() WHERE id = " +
             std::to_string(ids[5]));
  sql_->Exec(
      "UPDATE gd_instances SET status = 'runnable', eligible_at = now() + interval '1 day' "
      "WHERE id = " +
      std::to_string(ids[6]));
  auto o = Options({m});
  o.gc_interval = 100ms;
  o.gc_retention = std::chrono::hours(1);
  o.gc_batch = 2;  // full batches: the sweep must repeat at once
  auto engine = Engine::Start(o);
  ASSERT_TRUE(WaitUntil([&] { return Sql64("SELECT count(*) FROM gd_instances") == 2; }));
  EXPECT_TRUE(client_->Get(ids[5]).has_value());
  EXPECT_TRUE(client_->Get(ids[6]).has_value());
  EXPECT_EQ(engine->stats().gc_deleted, 5);
}

// --- drain ---

TEST_F(EngineTest, StopReleasesBufferedRowsAndFinishesInFlightSteps) {
  std::latch running(1);
  std::atomic<bool> go{false};
  auto j = Job<Json>("t.drain")
               .Perform([&](const Json&, JobContext&) {
                 running.count_down();
                 while (!go) std::this_thread::sleep_for(5ms);
                 return JobResult::Ok();
               })
               .Build();
  auto o = Options({j}, 1);
  o.prefetch = 3;
  std::vector<InsertRequest> reqs(4, InsertRequest{"t.drain", 1, {}});
  auto ids = client_->InsertAll(reqs);
  auto engine = Engine::Start(o);
  running.wait();
  ASSERT_TRUE(WaitUntil(
      [&] { return Sql64("SELECT count(*) FROM gd_instances WHERE status = 'executing'") == 4; }));
  std::atomic<double> released{-1};
  engine->telemetry().Attach("scheduler.drain", [&](const TelemetryEvent& e) {
    released = e.measurements.at("released");
  });
  std::thread stopper([&] { engine->Stop(); });
  // The three buffered rows go back at once, before the running step finishes.
  ASSERT_TRUE(WaitUntil(
      [&] { return Sql64("SELECT count(*) FROM gd_instances WHERE status = 'runnable'") == 3; }));
  go = true;
  stopper.join();
  EXPECT_EQ(released.load(), 3);
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances WHERE status = 'done'"), 1);
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances WHERE status = 'runnable' AND attempt = 0"),
            3);
}

TEST_F(EngineTest, StepOutlivingTheDrainIsLeftToTheReaperAndSeesCancelled) {
  std::latch running(1);
  auto saw_cancel = std::make_shared<std::atomic<bool>>(false);
  auto j = Job<Json>("t.drain_timeout")
               .Perform([&running, saw_cancel](const Json&, JobContext& ctx) {
                 running.count_down();
                 const auto until = std::chrono::steady_clock::now() + 5s;
                 while (!ctx.cancelled() && std::chrono::steady_clock::now() < until) {
                   std::this_thread::sleep_for(5ms);
                 }
                 *saw_cancel = ctx.cancelled();
                 return JobResult::Ok();
               })
               .Build();
  auto o = Options({j}, 1);
  o.drain_timeout = 100ms;
  auto engine = Engine::Start(o);
  auto id = *client_->Insert(j);
  running.wait();
  engine->Stop();
  EXPECT_EQ(client_->Get(id)->status, "executing");  // its lease will expire; then the reaper
  ASSERT_TRUE(WaitUntil([&] { return saw_cancel->load(); }, 5s));
  std::this_thread::sleep_for(50ms);  // the abandoned step's outcome is refused, not committed
  EXPECT_EQ(client_->Get(id)->status, "executing");
}

// --- named engines and options ---

TEST_F(EngineTest, TwoEnginesCannotShareAName) {
  auto m = Machine<Counter>("t.named")
               .Step("start", [](StepContext<Counter>&) { return Done(); })
               .Build();
  auto o = Options({m});
  o.name = "shared-name";
  auto first = Engine::Start(o);
  EXPECT_EQ(Engine::Find("shared-name"), first.get());
  EXPECT_THROW(Engine::Start(o), AlreadyStarted);
  auto other = o;
  other.name = "other-name";
  auto second = Engine::Start(other);
  EXPECT_EQ(Engine::Find("other-name"), second.get());
  first->Stop();
  EXPECT_EQ(Engine::Find("shared-name"), nullptr);
  auto again = Engine::Start(o);  // the name is free again after a stop
  EXPECT_TRUE(again->running());
}

// --- inserts ---

TEST_F(EngineTest, LowerPriorityRunsFirst) {
  std::mutex mu;
  std::vector<int> order;
  auto j = Job<Counter>("t.prio")
               .Perform([&](const Counter& a, JobContext&) {
                 std::lock_guard lock(mu);
                 order.push_back(a.n);
                 return JobResult::Ok();
               })
               .Build();
  std::vector<InsertRequest> reqs;
  for (int p : {5, 1, 3, 0, 4}) {
    InsertRequest r{"t.prio", 1, {}};
    r.options.priority = p;
    r.options.state = Json{{"n", p}};
    reqs.push_back(r);
  }
  auto ids = client_->InsertAll(reqs);
  auto engine = Engine::Start(Options({j}, 1));
  for (auto id : ids) WaitTerminal(id);
  std::lock_guard lock(mu);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 3, 4, 5}));
}

TEST_F(EngineTest, ScheduledRowsWaitUntilEligible) {
  auto j = Job<Json>("t.sched")
               .Perform([](const Json&, JobContext&) { return JobResult::Ok(); })
               .Build();
  auto engine = Engine::Start(Options({j}));
  InsertOptions later;
  later.schedule_in = std::chrono::minutes(10);
  auto far = *client_->Insert(j, later);
  InsertOptions at;
  at.schedule_at = std::chrono::system_clock::now() + 200ms;
  auto soon = *client_->Insert(j, at);
  EXPECT_EQ(WaitTerminal(soon).status, "done");
  EXPECT_EQ(client_->Get(far)->status, "scheduled");
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances WHERE id = " + std::to_string(far) +
                  " AND eligible_at > now() + interval '9 minutes'"),
            1);
  InsertOptions both;
  both.schedule_in = 1s;
  both.schedule_at = std::chrono::system_clock::now();
  EXPECT_THROW((void)client_->Insert(j, both), InvalidArgument);
}

TEST_F(EngineTest, InsertAllReturnsIdsInRequestOrder) {
  std::vector<InsertRequest> reqs;
  for (int i = 0; i < 50; ++i) {
    InsertRequest r{"t.any", std::nullopt, {}};
    r.options.state = Json{{"i", i}};
    reqs.push_back(r);
  }
  auto ids = client_->InsertAll(reqs);
  ASSERT_EQ(ids.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(client_->Get(ids[i])->state, (Json{{"i", i}}));
  EXPECT_TRUE(client_->InsertAll({}).empty());
}

// Rows each within max_payload_bytes (8 MiB) but together over what one jsonb value holds
// (256 MiB): the batch is split over several statements of one transaction.
TEST_F(EngineTest, InsertAllBeyondOneJsonbValueIsSplitAndStaysAtomic) {
  constexpr std::size_t kBlob = 8 * 1024 * 1024 - 64;
  std::vector<InsertRequest> reqs;
  for (int i = 0; i < 34; ++i) {  // 34 x 8 MiB = 272 MiB
    InsertRequest r{"t.bulky", std::nullopt, {}};
    r.options.state = Json{{"i", i}, {"blob", std::string(kBlob, 'a' + i % 26)}};
    reqs.push_back(std::move(r));
  }
  reqs[1].options.unique_key = "same";
  reqs[33].options.unique_key = "same";  // a duplicate of the first, in another statement
  auto ids = client_->InsertAll(reqs);
  ASSERT_EQ(ids.size(), 33u);
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances"), 33);
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances WHERE octet_length(state->>'blob') = " +
                  std::to_string(kBlob)),
            33);
  // Ids in request order (the duplicate dropped).
  for (int i : {0, 1, 2, 32}) {
    EXPECT_EQ(
        Sql64("SELECT (state->>'i')::int FROM gd_instances WHERE id = " + std::to_string(ids[i])),
        i);
  }
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances WHERE unique_key = 'same'"), 1);
  // All or nothing: a row the server refuses, last in the batch, takes the others with it.
  sql_->Exec(R"(
    CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'refused'; END $$;
    CREATE TRIGGER refuse BEFORE INSERT ON gd_instances FOR EACH ROW
      WHEN (NEW.fsm = 't.refused') EXECUTE FUNCTION refuse();)");
  reqs[33].fsm = "t.refused";
  reqs[33].options.unique_key.reset();
  EXPECT_THROW(client_->InsertAll(reqs), DatabaseError);
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances"), 33);
}

// A join whose children, each within max_payload_bytes, add up to more than one statement
// carries is refused before anything is written, with an error that says so.
TEST_F(EngineTest, ScheduleChildrenBeyondOneStatementIsRefusedClearly) {
  auto m = Machine<Json>("t.fanout")
               .Step("start",
                     [](StepContext<Json>& c) {
                       std::vector<InsertRequest> kids;
                       for (int i = 0; i < 34; ++i) {  // 34 x 8 MiB
                         InsertRequest r{"t.kid", std::nullopt, {}};
                         r.options.state = Json{{"blob", std::string(8 * 1024 * 1024 - 64, 'k')}};
                         kids.push_back(std::move(r));
                       }
                       return ScheduleChildren("join", kids, c.state());
                     })
               .Step("join", [](StepContext<Json>&) { return Done({}); })
               .Build();
  auto engine = Engine::Start(Options({m}));
  auto info = WaitTerminal(*client_->Insert(m), 120s);
  EXPECT_EQ(info.status, "failed");
  ASSERT_TRUE(info.last_error);
  EXPECT_NE(info.last_error->find("schedule_children"), std::string::npos) << *info.last_error;
  EXPECT_NE(info.last_error->find("34 children"), std::string::npos) << *info.last_error;
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances WHERE fsm = 't.kid'"), 0);
}

TEST_F(EngineTest, TransactionalEnqueueFollowsTheCallersTransaction) {
  auto j =
      Job<Json>("t.tx").Perform([](const Json&, JobContext&) { return JobResult::Ok(); }).Build();
  auto engine = Engine::Start(Options({j}));
  auto app = detail::pg::Connection::Open(db_, "app");
  app->Exec("CREATE TABLE orders (id int)");
  app->Exec("BEGIN");
  app->Exec("INSERT INTO orders VALUES (1)");
  auto rolled = engine->client().InsertWith(app->raw(), j);
  ASSERT_TRUE(rolled.ok());
  app->Exec("ROLLBACK");
  EXPECT_FALSE(client_->Get(*rolled).has_value());
  app->Exec("BEGIN");
  app->Exec("INSERT INTO orders VALUES (2)");
  auto kept = engine->client().InsertWith(app->raw(), j);
  app->Exec("COMMIT");
  EXPECT_EQ(WaitTerminal(*kept).status, "done");
  EXPECT_EQ(Sql64("SELECT count(*) FROM orders"), 1);
}

// --- inline run-ahead, telemetry, machines ---

TEST_F(EngineTest, InlineNextRunsOnTheSameClaim) {
  auto chain = [](const std::string& name) {
    return Machine<Counter>(name)
        .Step("start",
              [](StepContext<Counter>& c) {
                if (c.state().n >= 4) return Done({{"n", c.state().n}});
                return Next("start", Counter{c.state().n + 1});
              })
        .Build();
  };
  auto m = chain("t.inline");
  auto o = Options({m});
  auto engine = Engine::Start(o);
  EXPECT_EQ(WaitTerminal(*client_->Insert(m, Counter{})).result, (Json{{"n", 4}}));
  EXPECT_EQ(engine->stats().claimed, 1);
  EXPECT_EQ(engine->stats().steps, 5);
  engine->Stop();

  auto m2 = chain("t.queued");
  auto o2 = Options({m2});
  o2.inline_next = false;
  auto engine2 = Engine::Start(o2);
  EXPECT_EQ(WaitTerminal(*client_->Insert(m2, Counter{})).result, (Json{{"n", 4}}));
  EXPECT_EQ(engine2->stats().claimed, 5);
}

TEST_F(EngineTest, TelemetryReportsStepsAndPicks) {
  auto m = Machine<Counter>("t.telemetry")
               .Step("start", [](StepContext<Counter>& c) { return Next("end", c.state()); })
               .Step("end", [](StepContext<Counter>&) { return Done(); })
               .Build();
  auto engine = Engine::Create(Options({m}));
  std::mutex mu;
  std::vector<std::string> kinds;
  int picks_with_rows = 0;
  engine->telemetry().Attach("step.stop", [&](const TelemetryEvent& e) {
    std::lock_guard lock(mu);
    kinds.push_back(e.metadata.at("kind"));
    EXPECT_GE(e.measurements.at("duration"), 0.0);
    EXPECT_EQ(e.metadata.at("fsm"), "t.telemetry");
  });
  engine->telemetry().Attach("pick.stop", [&](const TelemetryEvent& e) {
    std::lock_guard lock(mu);
    if (e.measurements.at("count") > 0) ++picks_with_rows;
    EXPECT_EQ(e.metadata.at("queue"), "default");
  });
  engine->Start();
  WaitTerminal(*client_->Insert(m, Counter{}));
  engine->Stop();
  std::lock_guard lock(mu);
  EXPECT_EQ(kinds, (std::vector<std::string>{"next", "done"}));
  EXPECT_EQ(picks_with_rows, 1);
}

TEST_F(EngineTest, RowsOfUnknownMachinesAreNotClaimed) {
  auto m = Machine<Counter>("t.known")
               .Step("start", [](StepContext<Counter>&) { return Done(); })
               .Build();
  auto foreign = *client_->Insert("some.other.machine");
  auto engine = Engine::Start(Options({m}));
  auto mine = *client_->Insert(m, Counter{});
  EXPECT_EQ(WaitTerminal(mine).status, "done");
  EXPECT_EQ(client_->Get(foreign)->status, "runnable");
  EXPECT_EQ(engine->stats().claimed, 1);
}

TEST_F(EngineTest, AnInstanceFinishesOnTheVersionItStartedOn) {
  auto v1 = Machine<Counter>("t.versioned")
                .Step("start", [](StepContext<Counter>& c) { return Next("end", c.state()); })
                .Step("end",
                      [](StepContext<Counter>&) {
                        return Done({{"version", 1}});
                      })
                .Build();
  auto v2 = Machine<Counter>("t.versioned")
                .Version(2)
                .Step("start",
                      [](StepContext<Counter>&) {
                        return Done({{"version", 2}});
                      })
                .Build();
  auto engine = Engine::Start(Options({v1, v2}));
  auto old_id = *client_->Insert(v1, Counter{});
  auto new_id = *client_->Insert(v2, Counter{});
  EXPECT_EQ(WaitTerminal(old_id).result, (Json{{"version", 1}}));
  EXPECT_EQ(WaitTerminal(new_id).result, (Json{{"version", 2}}));
  EXPECT_EQ(client_->Get(old_id)->fsm_version, 1);
}

TEST_F(EngineTest, OversizedStateFailsTheInstanceWithAClearError) {
  auto m = Machine<Json>("t.big")
               .Step("start",
                     [](StepContext<Json>&) {
                       return Next("start", Json{{"blob", std::string(5000, 'x')}});
                     })
               .Build();
  auto o = Options({m});
  o.max_payload_bytes = 1000;
  auto engine = Engine::Start(o);
  auto info = WaitTerminal(*client_->Insert(m));
  EXPECT_EQ(info.status, "failed");
  EXPECT_NE(info.last_error->find("max_payload_bytes"), std::string::npos);
}

// --- schema ---

TEST_F(EngineTest, MigrateAppliesOnlyWhatIsMissingAndHonoursTheSchema) {
  EXPECT_EQ(client_->SchemaVersion(), detail::LatestSchemaVersion());
  client_->Migrate();  // nothing left to apply
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_schema_migrations"),
            static_cast<std::int64_t>(detail::Migrations().size()));

  auto m = Machine<Counter>("t.schema")
               .Step("start", [](StepContext<Counter>&) { return Done(); })
               .Build();
  auto o = Options({m});
  o.schema = "tenant_honoured";
  auto engine = Engine::Start(o);
  auto id = *engine->client().Insert(m, Counter{});
  ASSERT_TRUE(WaitUntil([&] { return engine->client().Get(id)->status == "done"; }));
  EXPECT_EQ(Sql64("SELECT count(*) FROM tenant_honoured.gd_instances"), 1);
  EXPECT_EQ(Sql64("SELECT count(*) FROM public.gd_instances"), 0);
}

// --- connection loss ---

TEST_F(EngineTest, EngineSurvivesItsConnectionsBeingKilled) {
  // Each of the three kills must land mid-work: the jobs are held back in thirds, the n-th
  // third until the n-th kill has happened (with a deadline, so a missing kill fails the test
  // below instead of hanging it).
  constexpr int kJobs = 200;
  constexpr int kKills = 3;
  std::atomic<int> kills{0};
  std::atomic<int> started{0};
  auto j = Job<Counter>("t.killconn")
               .Perform([&](const Counter&, JobContext&) {
                 const int n = started++;
                 const int need = std::min(kKills, 1 + n * kKills / kJobs);
                 const auto until = std::chrono::steady_clock::now() + 30s;
                 while (kills.load() < need && std::chrono::steady_clock::now() < until) {
                   std::this_thread::sleep_for(2ms);
                 }
                 return JobResult::Ok();
               })
               .Build();
  auto engine = Engine::Start(Options({j}));
  std::vector<InsertRequest> reqs(kJobs, InsertRequest{"t.killconn", 1, {}});
  auto ids = client_->InsertAll(reqs);
  for (int k = 1; k <= kKills; ++k) {
    // Wait until steps are waiting for this kill: the engine is at work when it strikes.
    ASSERT_TRUE(WaitUntil([&] { return started.load() > (k - 1) * kJobs / kKills; }))
        << "no step started before kill " << k;
    const std::int64_t terminated = Sql64(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name LIKE 'gen_durable:test-%' AND pid <> pg_backend_pid() "
        // the cluster is shared with tests running in parallel: only this database
        "AND datname = current_database()");
    const std::int64_t done = Sql64("SELECT count(*) FROM gd_instances WHERE status = 'done'");
    EXPECT_GE(terminated, 1) << "kill " << k << " found no connection of the engine";
    EXPECT_LT(done, kJobs) << "kill " << k << " came after the work was over";
    kills = k;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(WaitUntil(
      [&] { return Sql64("SELECT count(*) FROM gd_instances WHERE status = 'done'") == kJobs; },
      60s));
  EXPECT_TRUE(engine->running());
}

// --- bad stored data, long schemas, privileges, replay guard ---

TEST_F(EngineTest, UnrepresentableStoredStateFailsTheInstanceNotTheNode) {
  auto m = Machine<Json>("t.huge_number")
               .Step("start", [](StepContext<Json>&) { return Done(); })
               .Build();
  auto bad = *client_->Insert(m);
  sql_->Exec("UPDATE gd_instances SET state = '{\"x\": 1e1000}' WHERE id = " + std::to_string(bad));
  auto engine = Engine::Start(Options({m}));
  auto good = *client_->Insert(m);
  auto info = WaitTerminal(bad);
  EXPECT_EQ(info.status, "failed");
  EXPECT_NE(info.last_error->find("stored state cannot be decoded"), std::string::npos);
  EXPECT_EQ(WaitTerminal(good).status, "done");
  EXPECT_TRUE(engine->running());
}

TEST_F(EngineTest, LongSchemaNamesWork) {
  auto m = Machine<Json>("t.long_schema")
               .Step("start", [](StepContext<Json>&) { return Done(); })
               .Build();
  auto o = Options({m});
  o.schema = std::string(63, 's');
  auto engine = Engine::Start(o);
  auto id = *engine->client().Insert(m);
  ASSERT_TRUE(WaitUntil([&] { return engine->client().Get(id)->status == "done"; }));
}

TEST_F(EngineTest, AMigratedSchemaNeedsNoCreatePrivilege) {
  auto m =
      Machine<Json>("t.noprivs").Step("start", [](StepContext<Json>&) { return Done(); }).Build();
  sql_->Exec("DROP ROLE IF EXISTS gd_app_" + std::to_string(getpid()));
  const std::string role = "gd_app_" + std::to_string(getpid());
  sql_->Exec("CREATE ROLE " + role + " LOGIN");
  sql_->Exec("REVOKE CREATE ON SCHEMA public FROM PUBLIC");
  sql_->Exec("GRANT USAGE ON SCHEMA public TO " + role);
  sql_->Exec("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO " + role);
  auto o = Options({m});
  o.database = db_ + " user=" + role;
  auto engine = Engine::Start(o);
  auto id = *engine->client().Insert(m);
  EXPECT_TRUE(WaitUntil([&] { return engine->client().Get(id)->status == "done"; }));
  engine->Stop();
  engine.reset();
  sql_->Exec("REASSIGN OWNED BY " + role + " TO postgres; DROP OWNED BY " + role + "; DROP ROLE " +
             role);
}

TEST_F(EngineTest, MaxAttemptsStopsAHandlerThatReplaysForever) {
  std::atomic<int> runs{0};
  auto m = Machine<Json>("t.replay_forever")
               .MaxAttempts(4)
               .Step("start",
                     [&](StepContext<Json>&) -> Outcome {
                       ++runs;
                       throw std::runtime_error("always");
                     })
               .OnError([](const StepError&, StepContext<Json>& c) { return Replay(c.state()); })
               .Build();
  auto engine = Engine::Start(Options({m}));
  auto info = WaitTerminal(*client_->Insert(m));
  EXPECT_EQ(info.status, "failed");
  EXPECT_EQ(runs.load(), 4);
  EXPECT_NE(info.last_error->find("max attempts (4)"), std::string::npos) << *info.last_error;
}

// --- feeder knobs ---

TEST_F(EngineTest, MinDemandHoldsClaimsBackUntilEnoughSlotsAreFree) {
  std::atomic<bool> go{false};
  auto j = Job<Json>("t.min_demand")
               .Perform([&](const Json&, JobContext&) {
                 while (!go) std::this_thread::sleep_for(2ms);
                 return JobResult::Ok();
               })
               .Build();
  auto o = Options({j}, 4);
  o.min_demand = 3;
  auto engine = Engine::Create(o);
  std::mutex mu;
  std::vector<double> demands;
  engine->telemetry().Attach("pick.stop", [&](const TelemetryEvent& e) {
    std::lock_guard lock(mu);
    demands.push_back(e.measurements.at("demand"));
  });
  engine->Start();
  std::vector<InsertRequest> reqs(6, InsertRequest{"t.min_demand", 1, {}});
  client_->InsertAll(reqs);
  // 4 run; 2 wait. Freeing fewer than 3 slots must not trigger a claim.
  ASSERT_TRUE(WaitUntil(
      [&] { return Sql64("SELECT count(*) FROM gd_instances WHERE status = 'executing'") == 4; }));
  go = true;
  ASSERT_TRUE(WaitUntil(
      [&] { return Sql64("SELECT count(*) FROM gd_instances WHERE status = 'done'") == 6; }));
  engine->Stop();  // no more events into the locals below
  std::lock_guard lock(mu);
  ASSERT_FALSE(demands.empty());
  for (double d : demands) EXPECT_GE(d, 3.0);
}

TEST_F(EngineTest, AQueueScaledBelowMinDemandStillClaims) {
  auto j = Job<Json>("t.below_min_demand")
               .Perform([](const Json&, JobContext&) { return JobResult::Ok(); })
               .Build();
  auto o = Options({j}, 4);
  o.min_demand = 3;
  auto engine = Engine::Start(o);
  // A manual scale: 1 slot can never free 3 at once.
  engine->Scale("default", 1);
  std::vector<InsertRequest> reqs(3, InsertRequest{"t.below_min_demand", 1, {}});
  for (auto id : client_->InsertAll(reqs)) EXPECT_EQ(WaitTerminal(id, 10s).status, "done");
  // A scale request on the control channel: 2 slots.
  client_->ScaleQueue("default", 2);
  ASSERT_TRUE(WaitUntil([&] { return engine->Queues().at("default").concurrency == 2; }));
  for (auto id : client_->InsertAll(reqs)) EXPECT_EQ(WaitTerminal(id, 10s).status, "done");
}

TEST_F(EngineTest, IdleQueuesBackOffAndSnapBackWhenWorkArrives) {
  auto j =
      Job<Json>("t.idle").Perform([](const Json&, JobContext&) { return JobResult::Ok(); }).Build();
  auto o = Options({j});
  o.poll_interval = 20ms;
  o.max_poll_interval = 320ms;
  auto engine = Engine::Create(o);
  std::atomic<int> picks{0};
  engine->telemetry().Attach("pick.stop", [&](const TelemetryEvent&) { ++picks; });
  engine->Start();
  std::this_thread::sleep_for(2000ms);
  // Without backoff an idle queue would poll about 100 times in 2 s; doubling to 320 ms caps it
  // near 10. A slow machine polls less, never more.
  EXPECT_LT(picks.load(), 30);
  EXPECT_GT(picks.load(), 0);
  // New work is announced (NOTIFY) and picked without waiting out the backed-off interval.
  auto id = *client_->Insert(j);
  EXPECT_EQ(WaitTerminal(id).status, "done");
  engine->Stop();  // handlers capture locals declared after the engine
}

TEST_F(EngineTest, AnOutcomeCanOptOutOfInlineRunAhead) {
  auto m = Machine<Counter>("t.no_inline")
               .Step("start",
                     [](StepContext<Counter>& c) { return Next("end", c.state()).Inline(false); })
               .Step("end", [](StepContext<Counter>&) { return Done(); })
               .Build();
  auto engine = Engine::Start(Options({m}));
  EXPECT_EQ(WaitTerminal(*client_->Insert(m, Counter{})).status, "done");
  EXPECT_EQ(engine->stats().claimed, 2);
}

}  // namespace
}  // namespace gen_durable::testing
