// The cluster-wide concurrency limit of a queue (QueueConfig::global_limit): several engines
// with many slots each never run more than the limit at once, as a separate connection
// sampling the executing rows sees it; the limit changes at run time; a queue without a limit
// runs as wide as its slots; gd_queue_room counts under its lock with a fresh snapshot.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "support/engine_harness.hpp"

namespace gen_durable::testing {
namespace {

// Counts the executing rows of a queue every 2 ms on its own connection, keeping the highest
// count seen, until stopped.
class Sampler {
 public:
  Sampler(const std::string& db, std::string queue)
      : conn_(detail::pg::Connection::Open(db, "sampler")), queue_(std::move(queue)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Sampler() { Stop(); }

  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // Starts a new window: max() is the highest count seen since.
  void Reset() { max_ = 0; }
  int max() const { return max_; }
  int last() const { return last_; }
  int samples() const { return samples_; }

 private:
  void Run() {
    detail::pg::Params p;
    p.Add(queue_);
    while (!stop_) {
      const int n = static_cast<int>(
          conn_
              ->ExecParams(
                  "SELECT count(*) FROM gd_instances WHERE queue = $1 AND status = 'executing'", p)
              .Int64(0, 0));
      last_ = n;
      int seen = max_.load();
      while (n > seen && !max_.compare_exchange_weak(seen, n)) {
      }
      ++samples_;
      std::this_thread::sleep_for(2ms);
    }
  }

  std::unique_ptr<detail::pg::Connection> conn_;
  const std::string queue_;
  std::atomic<bool> stop_{false};
  std::atomic<int> max_{0};
  std::atomic<int> last_{0};
  std::atomic<int> samples_{0};
  std::thread thread_;
};

class GlobalLimitTest : public EngineTest {
 protected:
  // A job that sleeps args["ms"] milliseconds.
  static AnyMachine SleepJob() {
    return Job<Json>("t.nap")
        .Perform([](const Json& args, JobContext&) {
          std::this_thread::sleep_for(std::chrono::milliseconds(args.value("ms", 50)));
          return JobResult::Ok();
        })
        .Build();
  }

  // `n` engines serving "default" with `slots` slots each and the given limit.
  std::vector<std::unique_ptr<Engine>> StartEngines(int n, int slots, std::optional<int> limit) {
    std::vector<std::unique_ptr<Engine>> engines;
    for (int i = 0; i < n; ++i) {
      auto o = Options({SleepJob()}, slots);
      o.queues["default"].global_limit = limit;
      engines.push_back(Engine::Start(o));
    }
    return engines;
  }

  void InsertNaps(int n, int ms) {
    InsertRequest nap{"t.nap", 1, {}};
    nap.options.state = Json{{"ms", ms}};
    std::vector<InsertRequest> rows(n, nap);
    ASSERT_EQ(client_->InsertAll(rows).size(), static_cast<std::size_t>(n));
  }

  std::int64_t Done() { return Sql64("SELECT count(*) FROM gd_instances WHERE status = 'done'"); }
};

// Three engines of 8 slots each, limit 3: never more than 3 executing, and all of it runs.
TEST_F(GlobalLimitTest, SeveralEnginesWithManySlotsNeverExceedTheLimit) {
  auto engines = StartEngines(3, 8, 3);
  auto queues = client_->Queues();
  ASSERT_EQ(queues.size(), 1u);
  EXPECT_EQ(queues[0].global_limit, 3);
  Sampler sampler(db_, "default");
  InsertNaps(90, 30);
  EXPECT_TRUE(WaitUntil([&] { return Done() == 90; }, 60s)) << Done() << " of 90 done";
  sampler.Stop();
  EXPECT_LE(sampler.max(), 3) << "more steps executing at once than the limit";
  // The limit was reached (the engines together had 24 slots): the sampler can see a breach.
  EXPECT_EQ(sampler.max(), 3) << sampler.samples() << " samples";
  EXPECT_GT(sampler.samples(), 100);
}

// Without a limit the same engines run as wide as their slots: what the limit changes.
TEST_F(GlobalLimitTest, WithoutALimitTheQueueRunsAsWideAsItsSlots) {
  auto engines = StartEngines(3, 8, std::nullopt);
  Sampler sampler(db_, "default");
  InsertNaps(90, 100);
  EXPECT_TRUE(WaitUntil([&] { return Done() == 90; }, 60s)) << Done() << " of 90 done";
  sampler.Stop();
  // (no upper bound to check: a row whose step ended stays executing until its outcome's
  // group commit, and does not hold a slot meanwhile)
  EXPECT_GT(sampler.max(), 8) << "the three engines never ran more than one engine's slots";
}

// Client::SetQueueGlobalLimit (what `scale --global` calls) takes effect on running engines:
// raised, the queue widens to the new limit and no further; cleared, it runs on its slots.
TEST_F(GlobalLimitTest, ALimitChangedAtRunTimeTakesEffect) {
  auto engines = StartEngines(2, 8, 2);
  Sampler sampler(db_, "default");
  InsertNaps(400, 100);
  ASSERT_TRUE(WaitUntil([&] { return Done() >= 10; }, 30s));
  sampler.Reset();
  ASSERT_TRUE(WaitUntil([&] { return Done() >= 20; }, 30s));
  EXPECT_EQ(sampler.max(), 2);

  EXPECT_EQ(client_->SetQueueGlobalLimit("default", 5), 2);
  ASSERT_TRUE(WaitUntil([&] { return sampler.last() == 5; }, 30s)) << sampler.max();
  sampler.Reset();
  const auto at = Done();
  ASSERT_TRUE(WaitUntil([&] { return Done() >= at + 30; }, 30s));
  EXPECT_EQ(sampler.max(), 5);
  EXPECT_EQ(client_->Queues()[0].global_limit, 5);

  EXPECT_EQ(client_->SetQueueGlobalLimit("default", std::nullopt), 5);
  EXPECT_TRUE(WaitUntil([&] { return sampler.last() > 5; }, 30s)) << sampler.max();
  EXPECT_FALSE(client_->Queues()[0].global_limit.has_value());
  for (auto& e : engines) e->Stop();
}

// The stored value: written by an engine that configures one (the last start wins), left alone
// by one that does not; bad values are refused before anything is written.
TEST_F(GlobalLimitTest, TheLastEngineToStartWithALimitSetsIt) {
  auto limit_of = [&]() -> std::optional<int> {
    for (const auto& q : client_->Queues()) {
      if (q.name == "default") return q.global_limit;
    }
    return std::nullopt;
  };
  auto first = StartEngines(1, 2, 4);
  EXPECT_EQ(limit_of(), 4);
  auto second = StartEngines(1, 2, 6);
  EXPECT_EQ(limit_of(), 6);
  auto third = StartEngines(1, 2, std::nullopt);
  EXPECT_EQ(limit_of(), 6);
  EXPECT_EQ(client_->SetQueueGlobalLimit("default", 1), 6);
  EXPECT_EQ(limit_of(), 1);
  // Reconfigure with a limit stores it too.
  first[0]->Reconfigure({{"default", QueueConfig{2, 0, 7}}});
  EXPECT_EQ(limit_of(), 7);

  EXPECT_THROW(client_->SetQueueGlobalLimit("default", 0), InvalidArgument);
  EXPECT_THROW(client_->SetQueueGlobalLimit("", 3), InvalidArgument);
  EXPECT_EQ(limit_of(), 7);
  auto o = Options({SleepJob()}, 2);
  o.queues["default"].global_limit = 0;
  EXPECT_THROW(Engine::Create(o), ConfigError);
  // Clearing the limit of a queue nobody named creates no row.
  EXPECT_EQ(client_->SetQueueGlobalLimit("elsewhere", std::nullopt), std::nullopt);
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_queues WHERE name = 'elsewhere'"), 0);
}

// gd_queue_room, the claim's LIMIT: a claim of a limited queue waits for the one in flight and
// then counts with a snapshot taken after the lock, so it sees the rows that claim took; it
// switches its transaction to a synchronous commit. A queue without a limit takes no lock.
TEST_F(GlobalLimitTest, RoomIsCountedUnderTheQueueLockWithAFreshSnapshot) {
  InsertNaps(10, 1);
  ASSERT_EQ(client_->SetQueueGlobalLimit("default", 3), std::nullopt);
  auto first = detail::pg::Connection::Open(db_, "first-claim");
  first->Exec("BEGIN");
  first->Exec("SET LOCAL synchronous_commit = off");
  EXPECT_EQ(first->Exec("SELECT gd_queue_room('default', 5)").Int(0, 0), 3);
  EXPECT_EQ(first->Exec("SHOW synchronous_commit").String(0, 0), "on");
  // The first claim takes two rows, uncommitted.
  first->Exec(
      "UPDATE gd_instances SET status = 'executing', locked_by = 'first', "
      "lease_expires_at = now() + interval '1 hour' "
      "WHERE id IN (SELECT id FROM gd_instances ORDER BY id LIMIT 2)");

  std::atomic<int> second_room{-1};
  std::thread second([&] {
    auto c = detail::pg::Connection::Open(db_, "second-claim");
    c->Exec("BEGIN");
    second_room = c->Exec("SELECT gd_queue_room('default', 5)").Int(0, 0);
    c->Exec("COMMIT");
  });
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(second_room.load(), -1) << "the second claim did not wait for the first";
  first->Exec("COMMIT");
  second.join();
  EXPECT_EQ(second_room.load(), 1);  // 3 - the 2 the first claim committed

  // No limit: no lock, no change of the commit mode.
  auto other = detail::pg::Connection::Open(db_, "other-claim");
  other->Exec("BEGIN");
  other->Exec("SET LOCAL synchronous_commit = off");
  EXPECT_EQ(other->Exec("SELECT gd_queue_room('unlimited', 7)").Int(0, 0), 7);
  EXPECT_EQ(other->Exec("SHOW synchronous_commit").String(0, 0), "off");
  EXPECT_EQ(Sql64("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                  "(SELECT oid FROM pg_database WHERE datname = current_database())"),
            0);
  other->Exec("COMMIT");
  // A full queue: no room, and the commit mode is left as it was.
  client_->SetQueueGlobalLimit("default", 2);
  other->Exec("BEGIN");
  other->Exec("SET LOCAL synchronous_commit = off");
  EXPECT_EQ(other->Exec("SELECT gd_queue_room('default', 7)").Int(0, 0), 0);
  EXPECT_EQ(other->Exec("SHOW synchronous_commit").String(0, 0), "off");
  other->Exec("COMMIT");
}

}  // namespace
}  // namespace gen_durable::testing
