// The invariants of docs/architecture.md ("Invariants and how they are enforced") that no other
// test pinned down: each test here fails when the rule it names is dropped from the engine.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <tuple>

#include "support/engine_harness.hpp"

namespace gen_durable::testing {
namespace {

using Clock = std::chrono::steady_clock;

// Blocks the calling step until `ready()` or a deadline; true when `ready()` came first. A step
// held by a test never outlives it by more than the deadline.
bool HoldUntil(const std::function<bool()>& ready, std::chrono::milliseconds limit = 30s) {
  const auto until = Clock::now() + limit;
  while (!ready()) {
    if (Clock::now() > until) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// "Leases of lost claims expire": a claim that committed while its node never received the
// rows leaves them executing under a live node's name. The heartbeat extends only the rows the
// node knows it holds, so their lease runs out and the reaper takes them back, while the row
// the node really runs, heartbeated over the same time, stays claimed.
TEST_F(EngineTest, ALiveNodesLostClaimIsNotHeartbeatedAndGetsReaped) {
  std::atomic<bool> release{false};
  auto held = Machine<Json>("inv.held")
                  .Step("start",
                        [&](StepContext<Json>&) {
                          HoldUntil([&] { return release.load(); });
                          return Done();
                        })
                  .Build();
  auto lost = Machine<Json>("inv.lost")
                  .Step("start",
                        [](StepContext<Json>& c) {
                          return Done({{"attempt", c.attempt()}});
                        })
                  .Build();
  auto o = Options({held, lost});
  o.lease_ttl = 1500ms;
  o.heartbeat_interval = 100ms;
  o.reap_interval = 50ms;
  auto engine = Engine::Start(o);
  const auto held_id = *client_->Insert(held);
  ASSERT_TRUE(WaitUntil([&] { return client_->Get(held_id)->status == "executing"; }));

  // The orphan: claimed in the database by this very node, known to none of its threads.
  const std::int64_t lost_id =
      sql_->ExecParams(
              "INSERT INTO gd_instances (fsm, step, status, locked_by, lease_seq, "
              "lease_expires_at) VALUES ('inv.lost', 'start', 'executing', $1, 1, "
              "now() + interval '1500 milliseconds') RETURNING id",
              detail::pg::Params().Add(engine->node_id()))
          .Int64(0, 0);
  // (status, lease expiry, lease_seq): a later claim of the row after the reaper handed it
  // back carries another lease_seq, and its lease is not the orphan's.
  auto lease_of = [&](std::int64_t id) {
    auto r = sql_->Exec(
        "SELECT status, coalesce(extract(epoch FROM lease_expires_at), 0), "
        "lease_seq FROM gd_instances WHERE id = " +
        std::to_string(id));
    return std::make_tuple(r.String(0, 0), std::string(r.Text(0, 1)), r.Int64(0, 2));
  };
  const std::string first_lease = std::get<1>(lease_of(lost_id));
  bool extended = false;
  const bool reaped = WaitUntil(
      [&] {
        const auto [status, lease, seq] = lease_of(lost_id);
        if (status == "executing" && seq == 1 && lease != first_lease) extended = true;
        return status != "executing" || seq != 1;
      },
      30s);
  EXPECT_FALSE(extended) << "the heartbeat extended a claim its node does not know it holds";
  ASSERT_TRUE(reaped) << "the lost claim was never reaped (lease now "
                      << std::get<1>(lease_of(lost_id)) << ", first " << first_lease << ")";
  const auto info = WaitTerminal(lost_id);
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result, (Json{{"attempt", 1}}));  // the reaper's attempt + 1
  EXPECT_NE(info.last_error.value_or("").find("lease lost"), std::string::npos)
      << info.last_error.value_or("");

  // The real claim lived through the same time on its heartbeat.
  auto running = client_->Get(held_id);
  EXPECT_EQ(running->status, "executing");
  EXPECT_EQ(running->attempt, 0);
  release = true;
  const auto held_info = WaitTerminal(held_id);
  EXPECT_EQ(held_info.status, "done");
  EXPECT_EQ(held_info.attempt, 0);
}

// A child that the test lets finish only when its name is in `released`.
struct Gate {
  std::mutex mu;
  std::set<std::string> released;
  void Release(const std::string& name) {
    std::lock_guard lock(mu);
    released.insert(name);
  }
  bool Released(const std::string& name) {
    std::lock_guard lock(mu);
    return released.count(name) > 0;
  }
};

// "Each ScheduleChildren opens a new barrier, and children of an older barrier do not count
// towards a newer one" (docs/guides/children.md): the parent leaves its first barrier by its
// deadline with child `a` still running, opens a second barrier for child `b`, and `a`
// finishing late must not release it.
TEST_F(EngineTest, ALateChildOfAnOldBarrierDoesNotCountTowardANewOne) {
  Gate gate;
  auto child = Job<Json>("inv.child")
                   .MaxAttempts(1)
                   .Perform([&](const Json& args, JobContext&) {
                     const std::string name = args.at("name");
                     HoldUntil([&] { return gate.Released(name); });
                     return JobResult::Ok({{"name", name}});
                   })
                   .Build();
  auto kid = [](const std::string& name) {
    InsertRequest r{"inv.child", std::nullopt, {}};
    r.options.state = Json{{"name", name}};
    return r;
  };
  auto parent = Machine<Json>("inv.parent")
                    .Step("start",
                          [&](StepContext<Json>& c) {
                            JoinOptions join;
                            join.deadline = 300ms;  // leaves with `a` still running
                            return ScheduleChildren("second", {kid("a")}, c.state(), join);
                          })
                    .Step("second",
                          [&](StepContext<Json>& c) {
                            return ScheduleChildren("joined", {kid("b")}, c.state());
                          })
                    .Step("joined",
                          [](StepContext<Json>& c) {
                            Json seen = Json::array();
                            for (const auto& ch : c.children()) {
                              seen.push_back({{"status", ch.status}, {"result", ch.result}});
                            }
                            return Done({{"children", seen}});
                          })
                    .Build();
  auto engine = Engine::Start(Options({parent, child}, 4));
  const auto id = *client_->Insert(parent);
  const std::string row = "SELECT count(*) FROM gd_instances WHERE id = " + std::to_string(id);
  // Parked on its second barrier, for `b`, while `a` of the first still runs.
  ASSERT_TRUE(WaitUntil([&] {
    return Sql64(row + " AND status = 'awaiting_children' AND join_seq = 2") == 1;
  })) << "the parent did not reach its second barrier: "
      << client_->Get(id)->status;
  const std::string a = "SELECT id FROM gd_instances WHERE state->>'name' = 'a'";
  ASSERT_EQ(Sql64("SELECT count(*) FROM gd_instances WHERE state->>'name' = 'a' "
                  "AND status NOT IN ('done', 'failed', 'cancelled')"),
            1);

  gate.Release("a");
  const auto a_info = WaitTerminal(Sql64(a));
  EXPECT_EQ(a_info.status, "done");
  // a's terminal transaction has run its trigger by now: the second barrier still waits.
  EXPECT_EQ(Sql64(row + " AND status = 'awaiting_children' AND join_pending = 1"), 1)
      << "the late child of the first barrier counted toward the second: parent is "
      << client_->Get(id)->status;

  gate.Release("b");
  const auto info = WaitTerminal(id);
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result,
            (Json{{"children", Json::array({{{"status", "done"}, {"result", {{"name", "b"}}}}})}}));
}

// "A next that names a rate limit or changes or releases its partition is never run inline":
// the partition is enforced by the claim, which an inline step would skip. Each such next goes
// back to its queue, so each step after one costs a claim; a plain next of the same keyed row
// (the control) runs inline on the first claim.
TEST_F(EngineTest, NoInlineRunAheadForANextThatChangesOrReleasesItsPartition) {
  auto keep = Machine<Json>("inv.keep")
                  .Step("start", [](StepContext<Json>& c) { return Next("end", c.state()); })
                  .Step("end", [](StepContext<Json>&) { return Done(); })
                  .Build();
  auto move = Machine<Json>("inv.move")
                  .Step("start",
                        [](StepContext<Json>& c) {
                          return Next("moved", c.state()).PartitionKey("b").Inline(true);
                        })
                  .Step("moved",
                        [](StepContext<Json>& c) {
                          return Next("free", c.state()).ReleasePartition().Inline(true);
                        })
                  .Step("free",
                        [](StepContext<Json>& c) {
                          return Done({{"key", c.partition_key() ? Json(*c.partition_key())
                                                                 : Json(nullptr)}});
                        })
                  .Build();
  auto o = Options({keep, move});
  o.inline_next = true;
  auto engine = Engine::Start(o);
  InsertOptions keyed;
  keyed.partition_key = "a";
  EXPECT_EQ(WaitTerminal(*client_->Insert(keep, keyed)).status, "done");
  EXPECT_EQ(engine->stats().claimed, 1) << "the control did not run inline";
  EXPECT_EQ(engine->stats().steps, 2);

  const auto info = WaitTerminal(*client_->Insert(move, keyed));
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result, (Json{{"key", nullptr}}));
  EXPECT_EQ(engine->stats().steps, 5);
  EXPECT_EQ(engine->stats().claimed, 1 + 3)
      << "a step after a next that moved or released the partition ran without a claim";
}

// "An outcome that fails the guard writes nothing": a stale outcome of a step that was shown a
// signal must not consume it, or the run that does commit would never see it.
TEST_F(EngineTest, AStaleOutcomeConsumesNoSignals) {
  std::atomic<int> runs{0};
  std::atomic<bool> started{false};
  std::atomic<bool> stolen{false};
  auto m =
      Machine<Json>("inv.stale_signal")
          .Step("start",
                [&](StepContext<Json>& c) {
                  if (!c.FindSignal("go")) return Await({"go"}, c.state());
                  if (runs++ == 0) {
                    started = true;
                    HoldUntil([&] { return stolen.load(); });
                  }
                  return Next("after", Json{{"shown", c.signals().size()}}).Inline(false);
                })
          .Step("after",
                [](StepContext<Json>& c) {
                  return Done({{"shown_before", c.state()["shown"]}, {"now", c.signals().size()}});
                })
          .Build();
  auto o = Options({m});
  o.lease_ttl = 1500ms;
  o.heartbeat_interval = 100ms;
  auto engine = Engine::Start(o);
  const auto id = *client_->Insert(m);
  ASSERT_TRUE(WaitUntil([&] { return client_->Get(id)->status == "awaiting_signal"; }));
  ASSERT_TRUE(client_->Signal(id, "go", Json{{"n", 1}}).ok());
  ASSERT_TRUE(WaitUntil([&] { return started.load(); }));
  // The claim moves on under the running step, as after a reap and a new claim by this node.
  sql_->Exec("UPDATE gd_instances SET lease_seq = lease_seq + 1000 WHERE id = " +
             std::to_string(id));
  stolen = true;
  ASSERT_TRUE(WaitUntil([&] { return engine->stats().stale >= 1; }));
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_signals WHERE consumed_at IS NULL AND instance_id = " +
                  std::to_string(id)),
            1)
      << "the stale outcome consumed the signal its step was shown";
  // Nobody holds the moved-on claim: the reaper returns the row, and the run that commits is
  // shown the signal again and consumes it.
  const auto info = WaitTerminal(id, 30s);
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result, (Json{{"shown_before", 1}, {"now", 0}}));
  EXPECT_EQ(runs.load(), 2);
}

// "Node rows silent for max(10 x lease_ttl, 10 min) are pruned by the reaper": a node row of
// another host silent for 11 minutes goes, one silent for 5 minutes and the engine's own stay.
TEST_F(EngineTest, SilentNodeRowsArePruned) {
  sql_->Exec(
      "INSERT INTO gd_nodes (id, engine, host, pid, heartbeat_at) VALUES "
      "('elsewhere:1:gone', 'gone', 'elsewhere', 1, now() - interval '11 minutes'), "
      "('elsewhere:2:quiet', 'quiet', 'elsewhere', 2, now() - interval '5 minutes')");
  auto m =
      Machine<Json>("inv.nodes").Step("start", [](StepContext<Json>&) { return Done(); }).Build();
  auto engine = Engine::Start(Options({m}));
  EXPECT_TRUE(WaitUntil([&] {
    return Sql64("SELECT count(*) FROM gd_nodes WHERE id = 'elsewhere:1:gone'") == 0;
  })) << "a node row silent for 11 minutes was not pruned";
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_nodes WHERE id = 'elsewhere:2:quiet'"), 1);
  detail::pg::Params own;
  own.Add(engine->node_id());
  EXPECT_EQ(sql_->ExecParams("SELECT count(*) FROM gd_nodes WHERE id = $1", own).Int64(0, 0), 1);
}

}  // namespace
}  // namespace gen_durable::testing
