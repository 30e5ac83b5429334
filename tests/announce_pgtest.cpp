// Wake-ups of inserts: a client's insert commits without a notification and announces its
// ready queues after the commit (coalesced between concurrent calls); an insert inside a
// caller's transaction announces at that transaction's commit.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <thread>

#include "support/engine_harness.hpp"

namespace gen_durable::testing {
namespace {

class AnnounceTest : public EngineTest {
 protected:
  // An engine that looks for work only once a minute unless woken, so an instance that
  // finishes within the test's deadline was started by an announcement.
  EngineOptions Sleepy(std::vector<AnyMachine> machines) {
    EngineOptions o = Options(std::move(machines), 8);
    o.queues = {{"default", QueueConfig{8}}, {"other", QueueConfig{8}}};
    o.poll_interval = 60'000ms;
    o.max_poll_interval = 60'000ms;
    o.lease_ttl = 120'000ms;
    o.heartbeat_interval = 10'000ms;
    return o;
  }

  // Waits until the engine's listener has subscribed, and its feeders have made the claim
  // they make at start: from then on only an announcement (or a minute) starts new work.
  void WaitListeningAndIdle(const EngineOptions& o) {
    ASSERT_TRUE(WaitUntil([&] {
      auto r = sql_->ExecParams(
          "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
          "AND query LIKE 'LISTEN%'",
          detail::pg::Params().Add("gen_durable:" + o.name + ":listener"));
      return r.Int64(0, 0) > 0;
    })) << "the engine never listened";
    ASSERT_TRUE(WaitUntil([&] {
      auto r = sql_->ExecParams(
          "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1 "
          "AND state = 'idle' AND query <> ''",
          detail::pg::Params().Add("gen_durable:" + o.name + ":feeder:%"));
      return r.Int64(0, 0) >= 2;
    })) << "the feeders never claimed";
  }

  static AnyMachine Echo() {
    return Machine<Json>("announce.echo")
        .Step("start", [](StepContext<Json>& c) { return Done(c.state()); })
        .Build();
  }
};

TEST_F(AnnounceTest, AnInsertWakesAnIdleEngineAfterItsCommit) {
  auto m = Echo();
  EngineOptions o = Sleepy({m});
  auto engine = Engine::Start(o);
  WaitListeningAndIdle(o);
  auto id = *client_->Insert(m);
  EXPECT_EQ(WaitTerminal(id, 30s).status, "done");
  InsertOptions other;
  other.queue = "other";
  auto batch = client_->InsertAll({{"announce.echo", 1, other}, {"announce.echo", 1, {}}});
  ASSERT_EQ(batch.size(), 2u);
  for (auto b : batch) EXPECT_EQ(WaitTerminal(b, 30s).status, "done");
}

TEST_F(AnnounceTest, ConcurrentInsertsIntoSeveralQueuesAreAllAnnounced) {
  auto m = Echo();
  EngineOptions o = Sleepy({m});
  auto engine = Engine::Start(o);
  WaitListeningAndIdle(o);
  ClientOptions co;
  co.database = db_;
  co.pool_size = 8;
  auto client = Client::Connect(co);
  std::vector<std::int64_t> ids(8 * 25);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        InsertOptions io;
        io.queue = (i + t) % 2 ? "other" : "default";
        ids[t * 25 + i] = client->Insert(m, io).value();
      }
    });
  }
  for (auto& t : threads) t.join();
  // The last inserts must have been announced too: none is left to the minute's poll.
  for (auto id : ids) EXPECT_EQ(WaitTerminal(id, 30s).status, "done") << id;
}

TEST_F(AnnounceTest, AnInsertInACallersTransactionIsAnnouncedAtItsCommit) {
  auto m = Echo();
  EngineOptions o = Sleepy({m});
  auto engine = Engine::Start(o);
  WaitListeningAndIdle(o);
  auto caller = detail::pg::Connection::Open(db_, "caller");
  caller->Exec("BEGIN");
  auto id = *client_->InsertWith(caller->raw(), m);
  caller->Exec("COMMIT");
  EXPECT_EQ(WaitTerminal(id, 30s).status, "done");
}

}  // namespace
}  // namespace gen_durable::testing
