// Signals and await (docs/guides/signals.md): parking, waking on a name match, no lost wakeups,
// consumption, re-await without spinning, next_step and timeout, no_target, dedup, SQL functions.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <latch>
#include <mutex>

#include "gen_durable/schema/migrations.hpp"
#include "gen_durable/store/store.hpp"
#include "support/engine_harness.hpp"

namespace gen_durable::testing {
namespace {

struct Seen {
  std::vector<std::string> names;
  Json payloads = Json::array();
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Seen, names, payloads)

// Awaits "go"; when woken by it, finishes with the names and payloads it was shown.
AnyMachine Waiter(const std::string& name) {
  return Machine<Json>(name)
      .Step("start",
            [](StepContext<Json>& c) {
              if (!c.FindSignal("go")) return Await({"go"}, c.state());
              Json names = Json::array();
              Json payloads = Json::array();
              for (const auto& s : c.signals()) {
                names.push_back(s.name);
                payloads.push_back(s.payload);
              }
              return Done({{"names", names}, {"payloads", payloads}});
            })
      .Build();
}

class SignalsTest : public EngineTest {
 protected:
  void WaitStatus(std::int64_t id, const std::string& status) {
    ASSERT_TRUE(WaitUntil([&] { return client_->Get(id)->status == status; }))
        << "instance " << id << " is " << client_->Get(id)->status << ", not " << status;
  }
};

TEST_F(SignalsTest, AwaitParksAndAMatchingSignalWakesTheSameStep) {
  auto m = Waiter("s.basic");
  auto engine = Engine::Start(Options({m}));
  auto id = *client_->Insert(m);
  WaitStatus(id, "awaiting_signal");
  auto sid = client_->Signal(id, "go", Json{{"amount", 100}});
  ASSERT_TRUE(sid.ok());
  auto info = WaitTerminal(id);
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result["names"], (Json{"go"}));
  EXPECT_EQ(info.result["payloads"], (Json::array({{{"amount", 100}}})));
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_signals"), 0);  // a terminal outcome clears the inbox
}

TEST_F(SignalsTest, OnlyAMatchingNameWakesAndOtherSignalsStayInTheInbox) {
  auto m = Waiter("s.names");
  auto engine = Engine::Start(Options({m}));
  auto id = *client_->Insert(m);
  WaitStatus(id, "awaiting_signal");
  ASSERT_TRUE(client_->Signal(id, "other", Json(1)).ok());
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(client_->Get(id)->status, "awaiting_signal");
  EXPECT_EQ(client_->Get(id)->signals.size(), 1u);
  ASSERT_TRUE(client_->Signal(id, "go", Json(2)).ok());
  auto info = WaitTerminal(id);
  EXPECT_EQ(info.result["names"], (Json{"go"}));           // shown only what it awaited
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_signals"), 0);  // done: the inbox is cleared
}

TEST_F(SignalsTest, ASignalThatArrivesBeforeTheParkIsNotLost) {
  std::latch running(1);
  std::latch sent(1);
  std::atomic<int> runs{0};
  auto m = Machine<Json>("s.early")
               .Step("start",
                     [&](StepContext<Json>& c) {
                       if (++runs == 1) {
                         running.count_down();
                         sent.wait();  // the signal is committed while this step still runs
                         return Await({"go"}, c.state());  // it was not shown: must not park
                       }
                       return Done({{"seen", c.FindSignal("go") != nullptr}});
                     })
               .Build();
  auto engine = Engine::Start(Options({m}));
  auto id = *client_->Insert(m);
  running.wait();
  ASSERT_TRUE(client_->Signal(id, "go").ok());
  sent.count_down();
  auto info = WaitTerminal(id);
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result, (Json{{"seen", true}}));
  EXPECT_EQ(runs.load(), 2);
}

TEST_F(SignalsTest, SignalsRacingParksLoseNoWakeup) {
  auto m = Waiter("s.race");
  auto engine = Engine::Start(Options({m}, 8));
  std::vector<InsertRequest> reqs(60, InsertRequest{"s.race", 1, {}});
  auto ids = client_->InsertAll(reqs);
  // Signal every instance at once, while most of them are being claimed and parked.
  std::vector<std::thread> senders;
  for (int t = 0; t < 3; ++t) {
    senders.emplace_back([&, t] {
      ClientOptions co;
      co.database = db_;
      auto c = Client::Connect(co);
      for (std::size_t i = t; i < ids.size(); i += 3) EXPECT_TRUE(c->Signal(ids[i], "go").ok());
    });
  }
  for (auto& s : senders) s.join();
  for (auto id : ids) EXPECT_EQ(WaitTerminal(id).status, "done") << id;
}

TEST_F(SignalsTest, ReawaitingAccumulatesSignalsWithoutSpinning) {
  std::atomic<int> runs{0};
  auto m = Machine<Json>("s.accumulate")
               .Step("start",
                     [&](StepContext<Json>& c) {
                       ++runs;
                       int go = 0;
                       for (const auto& s : c.signals()) go += s.name == "go";
                       if (go < 3) return Await({"go"}, c.state());  // consumes nothing
                       return Done({{"go", go}});
                     })
               .Build();
  auto engine = Engine::Start(Options({m}));
  auto id = *client_->Insert(m);
  WaitStatus(id, "awaiting_signal");
  ASSERT_TRUE(client_->Signal(id, "go").ok());
  ASSERT_TRUE(WaitUntil([&] { return runs.load() == 2; }));
  WaitStatus(id, "awaiting_signal");
  std::this_thread::sleep_for(300ms);  // unconsumed "go" in the inbox must not wake it again
  EXPECT_EQ(runs.load(), 2);
  ASSERT_TRUE(client_->Signal(id, "go").ok());
  ASSERT_TRUE(client_->Signal(id, "go").ok());
  auto info = WaitTerminal(id);
  EXPECT_EQ(info.result, (Json{{"go", 3}}));
  EXPECT_LE(runs.load(), 4);
}

TEST_F(SignalsTest, NextConsumesExactlyTheSignalsTheStepWasShownReplayNone) {
  std::atomic<int> replays{0};
  auto m =
      Machine<Json>("s.consume")
          .Step("start",
                [&](StepContext<Json>& c) {
                  if (!c.FindSignal("go")) return Await({"go"}, c.state());
                  if (replays++ == 0) return Replay(c.state());  // keeps the inbox
                  return Next("after", Json{{"shown", c.signals().size()}}).Inline(false);
                })
          .Step("after",
                [](StepContext<Json>& c) {
                  return Done({{"shown_before", c.state()["shown"]}, {"now", c.signals().size()}});
                })
          .Build();
  auto engine = Engine::Start(Options({m}));
  auto id = *client_->Insert(m);
  WaitStatus(id, "awaiting_signal");
  ASSERT_TRUE(client_->Signal(id, "go").ok());
  auto info = WaitTerminal(id);
  EXPECT_EQ(info.result, (Json{{"shown_before", 1}, {"now", 0}}));
}

TEST_F(SignalsTest, AwaitCanResumeAtAnotherStep) {
  auto m = Machine<Json>("s.next_step")
               .Step("start",
                     [](StepContext<Json>& c) {
                       AwaitOptions o;
                       o.next_step = "paid";
                       return Await({"paid"}, c.state(), o);
                     })
               .Step("paid",
                     [](StepContext<Json>& c) {
                       return Done({{"payload", c.FindSignal("paid")->payload}});
                     })
               .Build();
  auto engine = Engine::Start(Options({m}));
  auto id = *client_->Insert(m);
  WaitStatus(id, "awaiting_signal");
  ASSERT_TRUE(client_->Signal(id, "paid", Json(7)).ok());
  EXPECT_EQ(WaitTerminal(id).result, (Json{{"payload", 7}}));
}

TEST_F(SignalsTest, AwaitTimeoutWakesWithoutASignalAndKeepsTheAttempt) {
  auto m = Machine<Json>("s.timeout")
               .Step("start",
                     [](StepContext<Json>& c) {
                       if (c.state().value("waited", false)) {
                         return Done(
                             {{"signal", c.FindSignal("go") != nullptr}, {"attempt", c.attempt()}});
                       }
                       AwaitOptions o;
                       o.timeout = 200ms;
                       return Await({"go"}, Json{{"waited", true}}, o);
                     })
               .Build();
  auto o = Options({m});
  o.reap_interval = 100ms;
  auto engine = Engine::Create(o);
  std::atomic<int> timeouts{0};
  engine->telemetry().Attach("await.timeout", [&](const TelemetryEvent&) { ++timeouts; });
  engine->Start();
  auto info = WaitTerminal(*client_->Insert(m));
  EXPECT_EQ(info.result, (Json{{"signal", false}, {"attempt", 0}}));
  engine->Stop();
  EXPECT_EQ(timeouts.load(), 1);
}

TEST_F(SignalsTest, SignalsToUnknownOrTerminalInstancesAreRefusedAndDedupIsIdempotent) {
  auto m = Waiter("s.refuse");
  auto engine = Engine::Start(Options({m}));
  auto unknown = client_->Signal(987654, "go");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.code(), ErrorCode::kNoTarget);
  EXPECT_FALSE(client_->SignalByKey("nobody", "go").ok());

  auto id = *client_->Insert(m);
  SignalOptions dedup;
  dedup.dedup_key = "evt-7";
  auto first = client_->Signal(id, "go", Json(1), dedup);
  auto second = client_->Signal(id, "go", Json(2), dedup);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, *second);
  auto info = WaitTerminal(id);
  EXPECT_EQ(info.result["payloads"], (Json{1}));
  auto late = client_->Signal(id, "go");
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.code(), ErrorCode::kNoTarget);
}

TEST_F(SignalsTest, SignalsAddressAnInstanceByItsUniqueKey) {
  auto m = Waiter("s.by_key");
  auto engine = Engine::Start(Options({m}));
  InsertOptions o;
  o.unique_key = "order:42";
  auto id = *client_->Insert(m, o);
  WaitStatus(id, "awaiting_signal");
  ASSERT_TRUE(client_->SignalByKey("order:42", "go", Json("paid")).ok());
  EXPECT_EQ(WaitTerminal(id).result["payloads"], (Json{"paid"}));
}

TEST_F(SignalsTest, SqlFunctionsInsertAndSignalFromPlainSql) {
  auto m = Waiter("s.sql");
  auto engine = Engine::Start(Options({m}));
  const auto id = Sql64("SELECT gd_insert('s.sql', '{}'::jsonb, unique_key => 'sql-1')");
  EXPECT_EQ(sql_->Exec("SELECT gd_insert('s.sql', unique_key => 'sql-1') IS NULL").Bool(0, 0),
            true);  // duplicate key: NULL
  WaitStatus(id, "awaiting_signal");
  sql_->Exec("SELECT gd_signal(NULL, 'sql-1', 'go', '{\"via\": \"sql\"}')");
  EXPECT_EQ(WaitTerminal(id).result["payloads"], (Json::array({{{"via", "sql"}}})));
  EXPECT_THROW(sql_->Exec("SELECT gd_signal(" + std::to_string(id) + ", NULL, 'go')"),
               DatabaseError);
}

TEST_F(SignalsTest, AnEarlySignalWaitsForTheStepThatAwaitsIt) {
  // The seed's checkout: the payment may arrive before the instance reaches await_pay; the
  // steps before it must not consume it.
  auto m = Machine<Json>("s.checkout")
               .Step("start", [](StepContext<Json>& c) { return Next("await_pay", c.state()); })
               .Step("await_pay",
                     [](StepContext<Json>& c) {
                       const Signal* paid = c.FindSignal("payment_confirmed");
                       if (!paid) return Await({"payment_confirmed"}, c.state());
                       return Next("ship", Json{{"payment", paid->payload}});
                     })
               .Step("ship", [](StepContext<Json>& c) { return Done(c.state()); })
               .Build();
  auto id = *client_->Insert(m);
  ASSERT_TRUE(client_->Signal(id, "payment_confirmed", Json{{"amount", 100}}).ok());
  auto engine = Engine::Start(Options({m}));
  EXPECT_EQ(WaitTerminal(id).result, (Json{{"payment", {{"amount", 100}}}}));
}

// A webhook retried after its target finished must get the success it already had: the dedup
// records of a finished instance stay until GC deletes it, whichever way it ended.
TEST_F(SignalsTest, ARepeatedDedupKeySucceedsWithTheFirstIdAfterTheTargetFinished) {
  auto m = Waiter("s.redeliver");
  auto engine = Engine::Start(Options({m}));
  SignalOptions evt;
  evt.dedup_key = "evt-1";
  const auto id = *client_->Insert(m);
  auto first = client_->Signal(id, "go", Json(1), evt);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(WaitTerminal(id).status, "done");
  auto again = client_->Signal(id, "go", Json(2), evt);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(*again, *first);
  auto info = client_->Get(id);
  ASSERT_EQ(info->signals.size(), 1u);  // the record, consumed; the repeat stored nothing
  EXPECT_TRUE(info->signals[0].consumed);
  EXPECT_EQ(info->signals[0].payload, Json(1));
  // Anything but a repeat is refused: no dedup key, or one never delivered.
  EXPECT_EQ(client_->Signal(id, "go").code(), ErrorCode::kNoTarget);
  SignalOptions other;
  other.dedup_key = "evt-2";
  EXPECT_EQ(client_->Signal(id, "go", Json(3), other).code(), ErrorCode::kNoTarget);

  // Cancelled while parked, with signals it never awaited: the keyed one is kept (marked
  // consumed, so a retry of the instance is not shown it), the one without a key goes.
  const auto parked = *client_->Insert(m);
  WaitStatus(parked, "awaiting_signal");
  SignalOptions note;
  note.dedup_key = "note-1";
  auto note_id = client_->Signal(parked, "note", Json("keyed"), note);
  ASSERT_TRUE(note_id.ok());
  ASSERT_TRUE(client_->Signal(parked, "note", Json("plain")).ok());
  ASSERT_EQ(client_->Cancel(parked).cancelled, std::vector<std::int64_t>{parked});
  auto retried = client_->Signal(parked, "note", Json("keyed"), note);
  ASSERT_TRUE(retried.ok()) << retried.error().message;
  EXPECT_EQ(*retried, *note_id);
  auto cancelled = client_->Get(parked);
  ASSERT_EQ(cancelled->signals.size(), 1u);
  EXPECT_EQ(cancelled->signals[0].id, *note_id);
  EXPECT_TRUE(cancelled->signals[0].consumed);

  // Once GC has deleted the instance, it is unknown.
  detail::Store store("public");
  EXPECT_EQ(store.GcSweep(*sql_, Millis(0), 100), 2);
  EXPECT_EQ(client_->Signal(id, "go", Json(2), evt).code(), ErrorCode::kNoTarget);
  EXPECT_EQ(client_->Signal(parked, "note", Json("keyed"), note).code(), ErrorCode::kNoTarget);
}

// By unique key, a dedup key is recognised among every instance that held the key: a retry
// that arrives after the key passed to a newer instance does not reach the newer one.
TEST_F(SignalsTest, ARepeatByUniqueKeyIsRecognisedAcrossTheInstancesThatHeldTheKey) {
  auto m = Waiter("s.rekey");
  auto engine = Engine::Start(Options({m}));
  InsertOptions key;
  key.unique_key = "order:9";
  SignalOptions evt;
  evt.dedup_key = "evt-9";
  const auto old_id = *client_->Insert(m, key);
  auto first = client_->SignalByKey("order:9", "go", Json("old"), evt);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(WaitTerminal(old_id).result["payloads"], (Json{"old"}));
  // No live holder: a repeat succeeds, anything else is refused.
  auto again = client_->SignalByKey("order:9", "go", Json("old"), evt);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(*again, *first);
  EXPECT_EQ(client_->SignalByKey("order:9", "go").code(), ErrorCode::kNoTarget);

  const auto new_id = *client_->Insert(m, key);
  WaitStatus(new_id, "awaiting_signal");
  auto late = client_->SignalByKey("order:9", "go", Json("old"), evt);
  ASSERT_TRUE(late.ok()) << late.error().message;
  EXPECT_EQ(*late, *first);
  // (delivery is synchronous: a stored signal would be in the inbox or have woken the row)
  auto newer = client_->Get(new_id);
  EXPECT_EQ(newer->status, "awaiting_signal");
  EXPECT_TRUE(newer->signals.empty());
  SignalOptions fresh;
  fresh.dedup_key = "evt-10";
  auto next = client_->SignalByKey("order:9", "go", Json("new"), fresh);
  ASSERT_TRUE(next.ok());
  EXPECT_GT(*next, *first);
  EXPECT_EQ(WaitTerminal(new_id).result["payloads"], (Json{"new"}));
}

// A mailbox that lives forever: each wake takes what arrived and awaits again. Consumed signals
// without a dedup key are deleted; keyed ones are kept (marked) for their dedup key.
TEST_F(SignalsTest, ConsumedSignalsWithoutADedupKeyAreDeleted) {
  auto m = Machine<Json>("s.mailbox")
               .Step("start",
                     [](StepContext<Json>& c) {
                       if (c.signals().empty()) return Await({"msg"}, c.state());
                       Json s = c.state();
                       s["n"] = s.value("n", 0) + static_cast<int>(c.signals().size());
                       return Next("start", s).Inline(false);
                     })
               .Build();
  auto engine = Engine::Start(Options({m}));
  const auto id = *client_->Insert(m);
  constexpr int kMessages = 40;
  for (int i = 0; i < kMessages; ++i) {
    SignalOptions o;
    if (i % 2 == 0) o.dedup_key = "m-" + std::to_string(i);
    ASSERT_TRUE(client_->Signal(id, "msg", Json(i), o).ok());
  }
  ASSERT_TRUE(WaitUntil([&] {
    auto info = client_->Get(id);
    return info->state.value("n", 0) == kMessages && info->status == "awaiting_signal";
  })) << client_->Get(id)->state.dump();
  const std::string of = " FROM gd_signals WHERE instance_id = " + std::to_string(id);
  EXPECT_EQ(Sql64("SELECT count(*)" + of + " AND dedup_key IS NULL"), 0)
      << "consumed signals without a dedup key are still stored";
  EXPECT_EQ(
      Sql64("SELECT count(*)" + of + " AND dedup_key IS NOT NULL AND consumed_at IS NOT NULL"),
      kMessages / 2);
  EXPECT_EQ(Sql64("SELECT count(*)" + of), kMessages / 2);
}

// Buffers of one EXPLAIN (ANALYZE, BUFFERS) run: of the nodes reading gd_signals, and in all.
struct PlanCost {
  std::int64_t inbox = 0;
  std::int64_t total = 0;
};

std::int64_t Buffers(const Json& node) {
  return node.value("Shared Hit Blocks", std::int64_t{0}) +
         node.value("Shared Read Blocks", std::int64_t{0});
}

void AddInbox(const Json& node, PlanCost& cost) {
  if (node.value("Relation Name", "") == "gd_signals") cost.inbox += Buffers(node);
  if (node.contains("Plans")) {
    for (const auto& child : node["Plans"]) AddInbox(child, cost);
  }
}

// Runs `statement` (an EXECUTE of a statement the store prepared on `c`) under EXPLAIN
// (ANALYZE, BUFFERS) and rolls it back.
// `prepare` runs first in the same transaction (rolled back with it).
PlanCost Explain(detail::pg::Connection& c, const std::string& statement,
                 const std::string& prepare = "") {
  c.Exec("BEGIN");
  if (!prepare.empty()) c.Exec(prepare);
  auto r = c.Exec("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement);
  c.Exec("ROLLBACK");
  const Json plan = Json::parse(r.Text(0, 0))[0]["Plan"];
  PlanCost cost;
  cost.total = Buffers(plan);
  AddInbox(plan, cost);
  return cost;
}

// The wake of a long-lived mailbox: the park's re-check (gd_wake_parked) and the claim that
// shows the step its signals (gd_claim) must read as much of the inbox after 100,000 consumed
// signals as for an instance that never had one. The engine's own statements run on this
// connection through the store, so the plans measured are theirs.
TEST_F(SignalsTest, AWakeReadsNoMoreOfTheInboxAfter100000ConsumedSignalsThanAfterNone) {
  detail::Store store("public");
  detail::pg::Connection& c = *sql_;
  const std::vector<std::string> machines = {"s.mailbox@1"};
  std::int64_t claim_no = 0;
  auto claim = [&] {
    return store.Claim(c, "default", 10, "node-t", Millis(60000), machines, false, ++claim_no).rows;
  };
  // Await "go" (shown: what the step saw), or go on to "start" again consuming what it saw.
  auto outcome = [](const detail::ClaimedRow& r, bool await) {
    detail::OutcomeRow o;
    o.id = r.id;
    o.lease_seq = r.lease_seq;
    o.state = "{}";
    o.attempt = r.attempt;
    if (await) {
      o.status = "awaiting_signal";
      o.awaiting = {"go"};
    } else {
      o.status = "runnable";
      o.step = "start";
    }
    for (const auto& s : r.signals) (await ? o.shown : o.consume).push_back(s.id);
    return o;
  };
  auto commit = [&](const std::vector<detail::OutcomeRow>& rows) {
    EXPECT_EQ(store.CommitOutcomes(c, rows, "node-t", Millis(60000), false).size(), rows.size());
  };
  constexpr int kConsumed = 100'000;
  constexpr int kPlain = 1'000;

  // Other instances (in another queue) with 100 kept records each: an inbox table of many
  // instances, as in production, so that the planner's estimates for one instance are.
  sql_->Exec(
      "WITH o AS (SELECT gd_insert('s.other', queue => 'other') AS id "
      "           FROM generate_series(1, 1000)) "
      "INSERT INTO gd_signals (instance_id, name, dedup_key, consumed_at) "
      "SELECT o.id, 'go', 'evt-' || g, now() FROM o, generate_series(1, 100) g");
  // The history of a long-lived mailbox: 100,000 signals with dedup keys, consumed long ago
  // (their records are kept), then 1,000 without keys, consumed by the engine's commit.
  const auto big = Sql64("SELECT gd_insert('s.mailbox')");
  sql_->Exec(
      fmt::format("INSERT INTO gd_signals (instance_id, name, dedup_key, consumed_at) "
                  "SELECT {}, 'go', 'evt-' || g, now() FROM generate_series(1, {}) g",
                  big, kConsumed));
  sql_->Exec(fmt::format(
      "INSERT INTO gd_signals (instance_id, name) SELECT {}, 'go' FROM generate_series(1, {}) g",
      big, kPlain));
  auto rows = claim();
  ASSERT_EQ(rows.size(), 1u);
  commit({outcome(rows[0], true)});  // the re-check finds the signals: runnable at once
  rows = claim();
  ASSERT_EQ(rows.size(), 1u);
  ASSERT_EQ(rows[0].signals.size(), static_cast<std::size_t>(kPlain));
  commit({outcome(rows[0], false)});  // consumes them
  // A mailbox that never had a signal, for comparison; both park on "go".
  const auto base = Sql64("SELECT gd_insert('s.mailbox')");
  rows = claim();
  ASSERT_EQ(rows.size(), 2u);
  commit({outcome(rows[0], true), outcome(rows[1], true)});
  const std::string of_big = " FROM gd_signals WHERE instance_id = " + std::to_string(big);
  EXPECT_EQ(Sql64("SELECT count(*)" + of_big + " AND consumed_at IS NULL"), 0);
  EXPECT_EQ(Sql64("SELECT count(*)" + of_big), kConsumed)
      << "the consumed signals without a dedup key are still stored";
  // The 1,000 entries just deleted are dead in the unconsumed range: a vacuum that cleans the
  // index (it skips that when few heap pages hold dead rows) removes them. The steady state
  // without a vacuum is measured below.
  sql_->Exec("VACUUM (INDEX_CLEANUP ON, ANALYZE) gd_signals");

  // The re-check runs in the park's own transaction and only for the claim that parked the
  // row: the probe touches the row first (updated_at = now(), as the park does) and names the
  // row's lease_seq, so the inbox probe is reached.
  auto wake_probe = [&](std::int64_t id) {
    const auto seq = Sql64("SELECT lease_seq FROM gd_instances WHERE id = " + std::to_string(id));
    return Explain(
        c,
        fmt::format(R"(EXECUTE gd_wake_parked('[{{"id": {}, "seq": {}, "shown": null}}]'))", id,
                    seq),
        "UPDATE gd_instances SET updated_at = now() WHERE id = " + std::to_string(id));
  };
  auto claim_cost = [&] {
    return Explain(
        c, fmt::format("EXECUTE gd_claim('default', 10, 'node-t', 60000, '{{s.mailbox@1}}', "
                       "'{{}}', {})",
                       ++claim_no));
  };
  const PlanCost park_base = wake_probe(base);
  const PlanCost park_big = wake_probe(big);
  ASSERT_TRUE(client_->Signal(base, "go").ok());
  const PlanCost claim_base = claim_cost();
  rows = claim();  // (really: base is parked again, with its signal shown)
  ASSERT_EQ(rows.size(), 1u);
  ASSERT_EQ(rows[0].id, base);
  commit({outcome(rows[0], true)});
  ASSERT_TRUE(client_->Signal(big, "go").ok());
  const PlanCost claim_big = claim_cost();
  // Then a mailbox's steady state, with no vacuum: 400 more wakes, each consuming one signal
  // (every other one with a dedup key). Each leaves a dead entry in the unconsumed range; the
  // next probe marks it, and it is dropped when its leaf page fills, so the range stays small.
  constexpr int kWakes = 400;
  for (int i = 0; i < kWakes; ++i) {
    rows = claim();
    ASSERT_EQ(rows.size(), 1u);
    ASSERT_EQ(rows[0].signals.size(), 1u);
    commit({outcome(rows[0], false)});
    rows = claim();
    ASSERT_EQ(rows.size(), 1u);
    commit({outcome(rows[0], true)});
    if (i + 1 == kWakes) break;
    SignalOptions o;
    if (i % 2 == 0) o.dedup_key = "later-" + std::to_string(i);
    ASSERT_TRUE(client_->Signal(big, "go", Json(i), o).ok());
  }
  const PlanCost park_steady = wake_probe(big);
  ASSERT_TRUE(client_->Signal(big, "go").ok());
  const PlanCost claim_steady = claim_cost();
  std::cout << fmt::format(
      "[ inbox cost ] buffers read of gd_signals (statement total): park re-check {} ({}) with "
      "no signal ever, {} ({}) after {} consumed, {} ({}) after {} more wakes; claim {} ({}), "
      "{} ({}), {} ({})\n",
      park_base.inbox, park_base.total, park_big.inbox, park_big.total, kConsumed + kPlain,
      park_steady.inbox, park_steady.total, kWakes, claim_base.inbox, claim_base.total,
      claim_big.inbox, claim_big.total, claim_steady.inbox, claim_steady.total);
  // (the same index and table for both: equal depth, so equal reads; 2 buffers of slack) A
  // probe reads an index path and the heap pages of what it returns; 10 bounds that, and keeps
  // a plan that scans the whole table for both from passing.
  EXPECT_LE(park_big.inbox, park_base.inbox + 2);
  EXPECT_LE(claim_big.inbox, claim_base.inbox + 2);
  // (plus the leaf page holding the marked entries of recent wakes)
  EXPECT_LE(park_steady.inbox, park_base.inbox + 4);
  EXPECT_LE(claim_steady.inbox, claim_base.inbox + 4);
  for (const PlanCost& cost :
       {park_base, park_big, park_steady, claim_base, claim_big, claim_steady}) {
    EXPECT_GT(cost.inbox, 0) << "the plan no longer reads gd_signals: the test measures nothing";
    EXPECT_LE(cost.inbox, 10);
  }
}

// The signals migration on a table an older engine filled: the consumed signals without a dedup
// key go, the rest stay, and the dedup records answer repeats at once.
TEST_F(SignalsTest, TheSignalsMigrationAppliesToAnInboxWithRows) {
  auto conn = detail::pg::Connection::Open(db_, "migrate");
  const std::string schema = "older";
  conn->Exec(
      "CREATE SCHEMA older; CREATE TABLE older.gd_schema_migrations (version integer PRIMARY "
      "KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())");
  constexpr int kSignalsMigration = 5;  // dedup records kept, consumed signals off the path
  for (const auto& m : detail::Migrations()) {
    if (m.version == kSignalsMigration) break;
    conn->Exec(detail::WithSchema(m.sql, schema));
    conn->Exec(fmt::format("INSERT INTO older.gd_schema_migrations VALUES ({}, 'x')", m.version));
  }
  const auto id = conn->Exec("SELECT older.gd_insert('s.old')").Int64(0, 0);
  conn->Exec(
      fmt::format("INSERT INTO older.gd_signals (instance_id, name, dedup_key, consumed_at) VALUES "
                  "({0}, 'plain-consumed', NULL, now()), ({0}, 'keyed-consumed', 'k', now()), "
                  "({0}, 'plain-pending', NULL, NULL)",
                  id));
  const auto later = std::count_if(detail::Migrations().begin(), detail::Migrations().end(),
                                   [](const auto& m) { return m.version >= kSignalsMigration; });
  EXPECT_EQ(detail::Migrate(*conn, schema), later);
  auto names = conn->Exec("SELECT string_agg(name, ',' ORDER BY id) FROM older.gd_signals");
  EXPECT_EQ(names.String(0, 0), "keyed-consumed,plain-pending");
  const auto keyed =
      conn->Exec("SELECT id FROM older.gd_signals WHERE dedup_key = 'k'").Int64(0, 0);
  EXPECT_EQ(conn->Exec(fmt::format("SELECT older.gd_signal({}, NULL, 'again', 'null', 'k')", id))
                .Int64(0, 0),
            keyed);
}

}  // namespace
}  // namespace gen_durable::testing
