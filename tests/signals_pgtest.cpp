// Signals and await (SPEC §4): parking, waking on a name match, no lost wakeups, consumption,
// re-await without spinning, next_step and timeout, no_target, dedup, SQL functions.
#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <mutex>

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
  EXPECT_EQ(info.result["names"], (Json{"go"}));  // shown only what it awaited
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
  auto m = Machine<Json>("s.consume")
               .Step("start",
                     [&](StepContext<Json>& c) {
                       if (!c.FindSignal("go")) return Await({"go"}, c.state());
                       if (replays++ == 0) return Replay(c.state());  // keeps the inbox
                       return Next("after", Json{{"shown", c.signals().size()}}).Inline(false);
                     })
               .Step("after",
                     [](StepContext<Json>& c) {
                       return Done({{"shown_before", c.state()["shown"]},
                                    {"now", c.signals().size()}});
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
                         return Done({{"signal", c.FindSignal("go") != nullptr},
                                      {"attempt", c.attempt()}});
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

}  // namespace
}  // namespace gen_durable::testing
