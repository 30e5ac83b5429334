// Children and the join barrier (docs/guides/children.md), unique keys and partition keys
// (docs/guides/keys.md).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <latch>
#include <mutex>
#include <random>

#include "support/engine_harness.hpp"

namespace gen_durable::testing {
namespace {

struct Work {
  int n = 0;
  bool fail = false;
  int sleep_ms = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Work, n, fail, sleep_ms)

AnyMachine Worker() {
  return Job<Work>("c.work")
      .MaxAttempts(1)
      .Perform([](const Work& w, JobContext&) {
        if (w.sleep_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(w.sleep_ms));
        if (w.fail) return JobResult::Error("child " + std::to_string(w.n) + " failed");
        return JobResult::Ok({{"n", w.n}});
      })
      .Build();
}

InsertRequest Child(int n, bool fail = false, int sleep_ms = 0) {
  InsertRequest r{"c.work", std::nullopt, {}};
  r.options.state = Json(Work{n, fail, sleep_ms});
  return r;
}

// Fans out `children` and finishes with what the join step saw.
AnyMachine Parent(const std::string& name, std::function<std::vector<InsertRequest>()> children,
                  JoinOptions join = {}) {
  return Machine<Json>(name)
      .Step("start",
            [children, join](StepContext<Json>& c) {
              return ScheduleChildren("join", children(), c.state(), join);
            })
      .Step("join",
            [](StepContext<Json>& c) {
              Json seen = Json::array();
              for (const auto& ch : c.children()) {
                seen.push_back({{"status", ch.status},
                                {"result", ch.result},
                                {"error", ch.last_error ? Json(*ch.last_error) : Json(nullptr)}});
              }
              return Done({{"children", seen}});
            })
      .Build();
}

TEST_F(EngineTest, JoinWaitsForEveryChildAndSeesFailuresToo) {
  auto parent = Parent("c.parent", [] {
    return std::vector<InsertRequest>{Child(1), Child(2, true), Child(3, false, 100)};
  });
  auto engine = Engine::Start(Options({parent, Worker()}));
  auto id = *client_->Insert(parent);
  auto info = WaitTerminal(id);
  ASSERT_EQ(info.status, "done");
  const Json& seen = info.result["children"];
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0]["result"], (Json{{"n", 1}}));
  EXPECT_EQ(seen[1]["status"], "failed");
  EXPECT_NE(seen[1]["error"].get<std::string>().find("child 2 failed"), std::string::npos);
  EXPECT_EQ(seen[2]["status"], "done");
  EXPECT_EQ(info.children.size(), 3u);
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances WHERE parent_id = " + std::to_string(id)), 3);
}

TEST_F(EngineTest, NoChildCanFinishBeforeTheBarrierExists) {
  // Children that finish instantly, many of them: each one's terminal transaction must find
  // the barrier in place, or the parent would wait forever.
  auto parent = Parent("c.fast", [] {
    std::vector<InsertRequest> kids;
    for (int i = 0; i < 40; ++i) kids.push_back(Child(i));
    return kids;
  });
  auto engine = Engine::Start(Options({parent, Worker()}, 8));
  std::vector<InsertRequest> reqs(5, InsertRequest{"c.fast", 1, {}});
  for (auto id : client_->InsertAll(reqs)) {
    auto info = WaitTerminal(id);
    EXPECT_EQ(info.status, "done");
    EXPECT_EQ(info.result["children"].size(), 40u);
  }
}

TEST_F(EngineTest, KOfNJoinResumesAfterKChildren) {
  std::latch release(1);
  auto slow = Job<Work>("c.slow")
                  .Perform([&](const Work&, JobContext&) {
                    release.wait();
                    return JobResult::Ok();
                  })
                  .Build();
  JoinOptions join;
  join.wait_for = 2;
  auto parent = Parent(
      "c.kofn",
      [] {
        InsertRequest s1{"c.slow", std::nullopt, {}};
        InsertRequest s2{"c.slow", std::nullopt, {}};
        return std::vector<InsertRequest>{Child(1), s1, Child(2), s2};
      },
      join);
  auto engine = Engine::Start(Options({parent, Worker(), slow}, 6));
  auto id = *client_->Insert(parent);
  auto info = WaitTerminal(id);
  release.count_down();
  EXPECT_EQ(info.status, "done");
  int done = 0;
  for (const auto& c : info.result["children"]) done += c["status"] == "done";
  EXPECT_EQ(done, 2);
  EXPECT_EQ(info.result["children"].size(), 4u);
}

TEST_F(EngineTest, JoinDeadlineResumesWithChildrenStillRunning) {
  std::latch release(1);
  auto slow = Job<Work>("c.stuck")
                  .Perform([&](const Work&, JobContext&) {
                    release.wait();
                    return JobResult::Ok();
                  })
                  .Build();
  JoinOptions join;
  join.deadline = 200ms;
  auto parent = Parent(
      "c.deadline",
      [] {
        return std::vector<InsertRequest>{InsertRequest{"c.stuck", std::nullopt, {}}};
      },
      join);
  auto o = Options({parent, slow});
  o.reap_interval = 100ms;
  auto engine = Engine::Start(o);
  auto info = WaitTerminal(*client_->Insert(parent));
  release.count_down();
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result["children"][0]["status"], "executing");
}

TEST_F(EngineTest, ChildrenNestToAnyDepth) {
  auto leaf = Worker();
  auto mid = Parent("c.mid", [] { return std::vector<InsertRequest>{Child(1), Child(2)}; });
  auto top = Parent("c.top", [] {
    return std::vector<InsertRequest>{InsertRequest{"c.mid", std::nullopt, {}},
                                      InsertRequest{"c.mid", std::nullopt, {}}};
  });
  auto engine = Engine::Start(Options({leaf, mid, top}, 6));
  auto info = WaitTerminal(*client_->Insert(top));
  ASSERT_EQ(info.status, "done");
  ASSERT_EQ(info.result["children"].size(), 2u);
  EXPECT_EQ(info.result["children"][0]["result"]["children"].size(), 2u);
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances"), 7);
}

TEST_F(EngineTest, DuplicateChildrenAreDroppedAndDoNotCount) {
  auto parent = Parent("c.dups", [] {
    auto a = Child(1);
    a.options.unique_key = "same";
    auto b = Child(2);
    b.options.unique_key = "same";
    return std::vector<InsertRequest>{a, b, Child(3)};
  });
  auto engine = Engine::Start(Options({parent, Worker()}));
  auto info = WaitTerminal(*client_->Insert(parent));
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result["children"].size(), 2u);
}

TEST_F(EngineTest, AJoinWithNoChildrenContinuesAtOnce) {
  auto parent = Parent("c.none", [] { return std::vector<InsertRequest>{}; });
  auto engine = Engine::Start(Options({parent}));
  auto info = WaitTerminal(*client_->Insert(parent));
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result["children"], Json::array());
}

TEST_F(EngineTest, GcSparesChildrenOfALiveParent) {
  auto parent = Machine<Json>("c.gc_parent")
                    .Step("start",
                          [](StepContext<Json>& c) {
                            return ScheduleChildren("wait", {Child(1)}, c.state());
                          })
                    .Step("wait", [](StepContext<Json>& c) { return Await({"never"}, c.state()); })
                    .Build();
  auto o = Options({parent, Worker()});
  o.gc_interval = 100ms;
  o.gc_retention = 0ms;
  auto engine = Engine::Start(o);
  auto id = *client_->Insert(parent);
  ASSERT_TRUE(WaitUntil([&] { return client_->Get(id)->status == "awaiting_signal"; }));
  std::this_thread::sleep_for(400ms);  // several GC sweeps with zero retention
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances WHERE parent_id = " + std::to_string(id)), 1);
}

TEST_F(EngineTest, DeleteSparesFinishedChildrenOfAParentWaitingOnItsJoin) {
  std::atomic<bool> go{false};
  auto gate = Job<Work>("c.gate")
                  .MaxAttempts(1)
                  .Perform([&](const Work&, JobContext&) {
                    while (!go) std::this_thread::sleep_for(2ms);
                    return JobResult::Ok();
                  })
                  .Build();
  auto parent = Parent("c.del_parent", [] {
    return std::vector<InsertRequest>{Child(1), InsertRequest{"c.gate", std::nullopt, {}}};
  });
  auto engine = Engine::Start(Options({parent, Worker(), gate}));
  auto id = *client_->Insert(parent);
  const std::string finished =
      "SELECT count(*) FROM gd_instances WHERE fsm = 'c.work' AND "
      "status = 'done' AND parent_id = " +
      std::to_string(id);
  ASSERT_TRUE(WaitUntil([&] { return Sql64(finished) == 1; }));
  ASSERT_EQ(client_->Get(id)->status, "awaiting_children");
  const auto child = Sql64("SELECT id FROM gd_instances WHERE fsm = 'c.work'");
  // By status, and by the child's id: the join still counts it, so neither deletes it.
  InstanceFilter done;
  done.status = "done";
  EXPECT_EQ(client_->DeleteWhere(done), 0);
  InstanceFilter by_id;
  by_id.ids = {child};
  EXPECT_EQ(client_->DeleteWhere(by_id), 0);
  EXPECT_EQ(Sql64(finished), 1);
  go = true;
  auto info = WaitTerminal(id);
  ASSERT_EQ(info.status, "done");
  ASSERT_EQ(info.result["children"].size(), 2u);
  EXPECT_EQ(info.result["children"][0]["result"], (Json{{"n", 1}}));
  // The parent has ended: its children are plain finished rows now.
  InstanceFilter kids;
  kids.fsm = "c.work";
  EXPECT_EQ(client_->DeleteWhere(kids), 1);
}

// Deadlocks the server has reported so far (its log, in the data directory).
int ServerDeadlocks(detail::pg::Connection& sql) {
  const auto dir = sql.Exec("SELECT current_setting('data_directory')").String(0, 0);
  std::ifstream log(dir + "/server.log");
  int n = 0;
  for (std::string line; std::getline(log, line);) {
    if (line.find("deadlock detected") != std::string::npos) ++n;
  }
  return n;
}

// Two nodes, many parents joining at once, children with unique keys that interleave the
// parents in id order (one spawn statement inserts them by key): the commits of the children's
// outcomes reach their parents (the join trigger) in orders that differ between the nodes.
// Every join must complete with all its children, and the server must report no deadlock.
TEST_F(EngineTest, JoinsAcrossParentsOnTwoNodesCompleteWithoutDeadlocks) {
  auto parent = Machine<Json>("c.many")
                    .Step("start",
                          [](StepContext<Json>& c) {
                            const int p = c.state().value("p", 0);
                            std::vector<InsertRequest> kids;
                            for (int k = 0; k < 8; ++k) {
                              InsertRequest r = Child(k);
                              r.options.unique_key = fmt::format("k{:03d}-{:06d}", k, p);
                              kids.push_back(std::move(r));
                            }
                            return ScheduleChildren("join", kids, c.state());
                          })
                    .Step("join",
                          [](StepContext<Json>& c) {
                            return Done({{"n", c.children().size()}});
                          })
                    .Build();
  auto a = Engine::Start(Options({parent, Worker()}, 16));
  auto b = Engine::Start(Options({parent, Worker()}, 16));
  const int before = ServerDeadlocks(*sql_);
  for (int round = 0; round < 5; ++round) {
    std::vector<InsertRequest> reqs;
    for (int p = 0; p < 60; ++p) {
      InsertRequest r{"c.many", std::nullopt, {}};
      r.options.state = Json{{"p", round * 1000 + p}};
      reqs.push_back(std::move(r));
    }
    for (auto id : client_->InsertAll(reqs)) {
      auto info = WaitTerminal(id, 60s);
      EXPECT_EQ(info.status, "done");
      EXPECT_EQ(info.result["n"], 8);
    }
  }
  const int deadlocks = ServerDeadlocks(*sql_) - before;
  std::printf("server deadlock reports during the run: %d\n", deadlocks);
  EXPECT_EQ(deadlocks, 0);
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances WHERE fsm = 'c.work' AND status = 'done'"),
            5 * 60 * 8);
}

// --- unique keys ---

TEST_F(EngineTest, AUniqueKeyIsHeldOnlyWithinItsScope) {
  auto j =
      Job<Json>("u.job").Perform([](const Json&, JobContext&) { return JobResult::Ok(); }).Build();
  InsertOptions o;
  o.unique_key = "k1";
  auto first = client_->Insert(j, o);
  ASSERT_TRUE(first.ok());
  auto dup = client_->Insert(j, o);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.code(), ErrorCode::kDuplicate);
  auto engine = Engine::Start(Options({j}));
  WaitTerminal(*first);
  EXPECT_TRUE(client_->Insert(j, o).ok());  // done is outside the default scope

  InsertOptions forever = o;
  forever.unique_key = "k2";
  forever.unique_scope = {"scheduled",       "runnable",          "executing",
                          "awaiting_signal", "awaiting_children", "done"};
  auto once = *client_->Insert(j, forever);
  WaitTerminal(once);
  EXPECT_EQ(client_->Insert(j, forever).code(), ErrorCode::kDuplicate);
  InsertOptions bad = o;
  bad.unique_scope = {"nonsense"};
  EXPECT_THROW((void)client_->Insert(j, bad), InvalidArgument);
  bad.unique_scope = {"executing"};  // a live row could move into it: refused
  EXPECT_THROW((void)client_->Insert(j, bad), InvalidArgument);
}

TEST_F(EngineTest, InsertAllDropsDuplicatesAndKeepsRequestOrder) {
  std::vector<InsertRequest> reqs;
  for (const char* k : {"b", "a", "b", "c"}) {
    InsertRequest r{"u.any", std::nullopt, {}};
    r.options.unique_key = k;
    r.options.state = Json{{"k", k}};
    reqs.push_back(r);
  }
  reqs.push_back(InsertRequest{"u.any", std::nullopt, {}});
  auto ids = client_->InsertAll(reqs);
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(client_->Get(ids[0])->state, (Json{{"k", "b"}}));
  EXPECT_EQ(client_->Get(ids[1])->state, (Json{{"k", "a"}}));
  EXPECT_EQ(client_->Get(ids[2])->state, (Json{{"k", "c"}}));
  EXPECT_FALSE(client_->Get(ids[3])->unique_key.has_value());
}

TEST_F(EngineTest, ConcurrentBatchesSharingNewKeysNeitherDeadlockNorDuplicate) {
  std::vector<std::thread> threads;
  std::atomic<int> inserted{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      ClientOptions co;
      co.database = db_;
      auto c = Client::Connect(co);
      std::mt19937 rng(t);
      for (int round = 0; round < 5; ++round) {
        std::vector<InsertRequest> reqs;
        for (int k = 0; k < 50; ++k) {
          InsertRequest r{"u.any", std::nullopt, {}};
          r.options.unique_key = "key-" + std::to_string(k);
          reqs.push_back(r);
        }
        std::shuffle(reqs.begin(), reqs.end(), rng);
        inserted += static_cast<int>(c->InsertAll(reqs).size());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(inserted.load(), 50);
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances"), 50);
}

// --- partition keys ---

struct Span {
  std::atomic<int> running{0};
  std::atomic<int> max_running{0};
  void Enter() {
    const int now = ++running;
    int seen = max_running.load();
    while (now > seen && !max_running.compare_exchange_weak(seen, now)) {
    }
  }
  void Leave() { --running; }
};

TEST_F(EngineTest, OnePartitionKeyRunsOneStepAtATimeAcrossNodes) {
  Span same;
  auto j = Job<Json>("p.job")
               .Perform([&](const Json&, JobContext&) {
                 same.Enter();
                 std::this_thread::sleep_for(30ms);
                 same.Leave();
                 return JobResult::Ok();
               })
               .Build();
  std::vector<InsertRequest> reqs;
  for (int i = 0; i < 12; ++i) {
    InsertRequest r{"p.job", 1, {}};
    r.options.partition_key = "account:1";
    reqs.push_back(r);
  }
  auto ids = client_->InsertAll(reqs);
  // Two engines on the same database act as two nodes.
  auto a = Engine::Start(Options({j}, 6));
  auto b = Engine::Start(Options({j}, 6));
  for (auto id : ids) EXPECT_EQ(WaitTerminal(id).status, "done");
  EXPECT_EQ(same.max_running.load(), 1);
}

TEST_F(EngineTest, DifferentPartitionKeysRunInParallel) {
  Span spans;
  // A barrier of three with a deadline: each step waits for the other two to be running, and
  // gives up after a while, so keys that do not run side by side fail the test instead of
  // hanging it until the test runner's timeout.
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  int gave_up = 0;
  std::optional<std::chrono::steady_clock::time_point> deadline;  // set by the first to arrive
  auto j = Job<Json>("p.par")
               .Perform([&](const Json&, JobContext&) {
                 spans.Enter();
                 {
                   std::unique_lock lock(mu);
                   arrived += 1;
                   cv.notify_all();
                   if (!deadline) deadline = std::chrono::steady_clock::now() + 20s;
                   if (!cv.wait_until(lock, *deadline, [&] { return arrived >= 3; })) {
                     gave_up += 1;
                   }
                 }
                 spans.Leave();
                 return JobResult::Ok();
               })
               .Build();
  std::vector<InsertRequest> reqs;
  for (int i = 0; i < 3; ++i) {
    InsertRequest r{"p.par", 1, {}};
    r.options.partition_key = "k" + std::to_string(i);
    reqs.push_back(r);
  }
  auto ids = client_->InsertAll(reqs);
  auto engine = Engine::Start(Options({j}, 3));
  for (auto id : ids) EXPECT_EQ(WaitTerminal(id, 40s).status, "done");
  std::lock_guard lock(mu);
  EXPECT_EQ(gave_up, 0) << "steps of three different keys did not all run at once: "
                        << "the most running together was " << spans.max_running.load();
  EXPECT_EQ(spans.max_running.load(), 3);
}

TEST_F(EngineTest, AnOutcomeCanMoveOrReleaseThePartition) {
  auto m =
      Machine<Json>("p.move")
          .Step("start",
                [](StepContext<Json>& c) { return Next("moved", c.state()).PartitionKey("b"); })
          .Step("moved",
                [](StepContext<Json>& c) {
                  return Next("free", Json{{"was", c.partition_key().value_or("")}})
                      .ReleasePartition();
                })
          .Step("free",
                [](StepContext<Json>& c) {
                  return Done({{"was", c.state()["was"]},
                               {"now", c.partition_key() ? Json(*c.partition_key()) : Json()}});
                })
          .Build();
  auto engine = Engine::Start(Options({m}));
  InsertOptions o;
  o.partition_key = "a";
  auto info = WaitTerminal(*client_->Insert(m, o));
  EXPECT_EQ(info.result, (Json{{"was", "b"}, {"now", nullptr}}));
  EXPECT_FALSE(info.partition_key.has_value());
}

TEST_F(EngineTest, PartitionLimitsGrantKSlotsPerKeyWithThePrefix) {
  Span limited;
  Span plain;
  auto j = Job<Json>("p.limit")
               .Perform([&](const Json& a, JobContext& ctx) {
                 Span& s = ctx.partition_key()->rfind("stripe:", 0) == 0 ? limited : plain;
                 s.Enter();
                 std::this_thread::sleep_for(40ms);
                 s.Leave();
                 (void)a;
                 return JobResult::Ok();
               })
               .Build();
  std::vector<InsertRequest> reqs;
  for (int i = 0; i < 12; ++i) {
    InsertRequest r{"p.limit", 1, {}};
    r.options.partition_key = i % 2 ? "stripe:acct" : "other:acct";
    reqs.push_back(r);
  }
  auto ids = client_->InsertAll(reqs);
  auto o = Options({j}, 8);
  o.partition_limits = {{"stripe:", 3}};
  auto engine = Engine::Start(o);
  for (auto id : ids) EXPECT_EQ(WaitTerminal(id).status, "done");
  EXPECT_LE(limited.max_running.load(), 3);
  EXPECT_GE(limited.max_running.load(), 2);  // more than one slot was really used
  EXPECT_EQ(plain.max_running.load(), 1);
}

}  // namespace
}  // namespace gen_durable::testing
