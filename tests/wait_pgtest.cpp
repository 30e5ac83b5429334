// Waiting for a result (Client::Wait, InsertAndWait; docs/guides/inserting.md): already ended,
// woken by the notification of the commit that ends the instance (the client's polling floor
// set far above what the tests allow), many waiters on one listening connection, timeout,
// unknown ids, cancel, and a forged notification that wakes but does not fool a waiter.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <thread>
#include <vector>

#include "support/engine_harness.hpp"

namespace gen_durable::testing {
namespace {

using Wall = std::chrono::system_clock;

struct Gated {
  int n = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Gated, n)

// Microseconds since the epoch.
std::int64_t WallUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(Wall::now().time_since_epoch())
      .count();
}

class WaitTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    // A polling floor no test waits for: a waiter that returns in time was woken by the
    // notification.
    ClientOptions co;
    co.database = db_;
    co.wait_poll_interval = std::chrono::seconds(30);
    waiter_ = Client::Connect(co);
  }

  // A job whose step waits for the gate to open, then ends done with {n}.
  MachineRef<Gated> GatedJob() {
    return Machine<Gated>("t.gated")
        .Step("start",
              [this](StepContext<Gated>& c) {
                const auto until = std::chrono::steady_clock::now() + 20s;
                while (!open_.load() && std::chrono::steady_clock::now() < until) {
                  std::this_thread::sleep_for(1ms);
                }
                return Done({{"n", c.state().n}});
              })
        .Build();
  }

  // When instance `id` ended, in microseconds since the epoch (the database's clock: the
  // start of the transaction that ended it).
  std::int64_t CompletedUs(std::int64_t id) {
    return Sql64(
        "SELECT (extract(epoch FROM completed_at) * 1000000)::bigint FROM gd_instances "
        "WHERE id = " +
        std::to_string(id));
  }

  std::int64_t ListeningSessions() {
    return Sql64(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'gen_durable:client-wait'");
  }

  std::unique_ptr<Client> waiter_;
  std::atomic<bool> open_{false};
};

TEST_F(WaitTest, AnInstanceAlreadyEndedIsReturnedAtOnce) {
  auto m = GatedJob();
  open_ = true;
  auto engine = Engine::Start(Options({m}));
  const std::int64_t id = *client_->Insert(m, Gated{7});
  WaitTerminal(id);
  const auto start = std::chrono::steady_clock::now();
  Result<InstanceInfo> info = waiter_->Wait(id, 10s);
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(info->id, id);
  EXPECT_EQ(info->status, "done");
  EXPECT_EQ(info->result, (Json{{"n", 7}}));
}

TEST_F(WaitTest, AWaiterWakesWithinMillisecondsOfTheCommitThatEndsTheInstance) {
  auto m = GatedJob();
  auto engine = Engine::Start(Options({m}));
  const std::int64_t id = *client_->Insert(m, Gated{3});
  ASSERT_TRUE(WaitUntil([&] { return client_->Get(id)->status == "executing"; }));
  auto waited = std::async(std::launch::async, [&] {
    Result<InstanceInfo> r = waiter_->Wait(id, 25s);
    return std::make_pair(std::move(r), WallUs());
  });
  std::this_thread::sleep_for(300ms);  // the waiter marks the row and sleeps
  open_ = true;
  auto [info, returned_us] = waited.get();
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->status, "done");
  EXPECT_EQ(info->result, (Json{{"n", 3}}));
  const double latency_ms = static_cast<double>(returned_us - CompletedUs(id)) / 1000.0;
  std::cout << "wait returned " << latency_ms << " ms after the ending transaction began\n";
  // Polling alone would take 30 s; the notification takes milliseconds (bound kept generous
  // for a loaded machine).
  EXPECT_LT(latency_ms, 500.0);
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances WHERE awaited"), 1);
}

TEST_F(WaitTest, ManyWaitersShareOneListeningConnection) {
  auto m = GatedJob();
  auto engine = Engine::Start(Options({m}, /*concurrency=*/16));
  constexpr int kWaiters = 16;
  std::vector<std::int64_t> ids;
  for (int i = 0; i < kWaiters; ++i) ids.push_back(*client_->Insert(m, Gated{i}));
  // Two waiters on one instance, and one on each of the others.
  std::vector<std::future<Result<InstanceInfo>>> waits;
  for (int i = 0; i < kWaiters; ++i) {
    waits.push_back(std::async(std::launch::async, [&, i] { return waiter_->Wait(ids[i], 25s); }));
  }
  waits.push_back(std::async(std::launch::async, [&] { return waiter_->Wait(ids[0], 25s); }));
  ASSERT_TRUE(WaitUntil(
      [&] { return Sql64("SELECT count(*) FROM gd_instances WHERE awaited") == kWaiters; }));
  EXPECT_EQ(ListeningSessions(), 1);
  const auto opened = std::chrono::steady_clock::now();
  open_ = true;
  for (std::size_t i = 0; i < waits.size(); ++i) {
    Result<InstanceInfo> info = waits[i].get();
    ASSERT_TRUE(info.ok()) << info.error().message;
    EXPECT_EQ(info->status, "done");
    EXPECT_EQ(info->result, (Json{{"n", i < kWaiters ? static_cast<int>(i) : 0}}));
  }
  // Every one woken by its notification, long before the 30 s polling floor.
  EXPECT_LT(std::chrono::steady_clock::now() - opened, 10s);
  EXPECT_EQ(ListeningSessions(), 1);
  // The listener goes with its client.
  waiter_.reset();
  EXPECT_TRUE(WaitUntil([&] { return ListeningSessions() == 0; }, 5s));
}

TEST_F(WaitTest, ATimeoutIsReportedAsKTimeoutAndTheInstanceGoesOn) {
  auto m = GatedJob();  // no engine: it stays runnable
  const std::int64_t id = *client_->Insert(m, Gated{});
  const auto start = std::chrono::steady_clock::now();
  Result<InstanceInfo> info = waiter_->Wait(id, 300ms);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.code(), ErrorCode::kTimeout);
  EXPECT_EQ(info.error().message,
            "timeout: instance " + std::to_string(id) + " is still runnable after 300 ms");
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 5s);
  EXPECT_EQ(client_->Get(id)->status, "runnable");
  // 0 looks once.
  EXPECT_EQ(waiter_->Wait(id, 0ms).code(), ErrorCode::kTimeout);
  EXPECT_THROW((void)waiter_->Wait(id, -1ms), InvalidArgument);
}

TEST_F(WaitTest, AnUnknownIdIsNotFound) {
  const auto start = std::chrono::steady_clock::now();
  Result<InstanceInfo> info = waiter_->Wait(987654321, 10s);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.code(), ErrorCode::kNotFound);
  EXPECT_EQ(info.error().message, "not_found: no instance 987654321");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST_F(WaitTest, CancelWakesTheWaiter) {
  auto m = GatedJob();  // no engine: cancel ends the queued row at once
  const std::int64_t id = *client_->Insert(m, Gated{});
  auto waited = std::async(std::launch::async, [&] { return waiter_->Wait(id, 25s); });
  ASSERT_TRUE(WaitUntil([&] { return Sql64("SELECT count(*) FROM gd_instances WHERE awaited"); }));
  CancelOptions not_needed;
  not_needed.reason = "not needed";
  const auto cancelled = std::chrono::steady_clock::now();
  EXPECT_EQ(client_->Cancel(id, not_needed).cancelled.size(), 1u);
  Result<InstanceInfo> info = waited.get();
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - cancelled, 5s);
  EXPECT_EQ(info->status, "cancelled");
  EXPECT_EQ(info->last_error, "not needed");
}

TEST_F(WaitTest, TheListenerReconnectsByItselfAndItsWaitersMissNothingMeanwhile) {
  auto m = GatedJob();  // no engine: cancel ends the queued rows at once
  const std::int64_t id = *client_->Insert(m, Gated{});
  auto waited = std::async(std::launch::async, [&] { return waiter_->Wait(id, 25s); });
  ASSERT_TRUE(WaitUntil([&] { return Sql64("SELECT count(*) FROM gd_instances WHERE awaited"); }));
  // The listening session dies; the row ends before (or while) it comes back.
  EXPECT_EQ(Sql64("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                  "WHERE datname = current_database() "
                  "AND application_name = 'gen_durable:client-wait'"),
            1);
  const auto cancelled = std::chrono::steady_clock::now();
  ASSERT_EQ(client_->Cancel(id).cancelled.size(), 1u);
  Result<InstanceInfo> info = waited.get();
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->status, "cancelled");
  // Read again once the listener was back, long before the 30 s polling floor.
  EXPECT_LT(std::chrono::steady_clock::now() - cancelled, 10s);
  ASSERT_TRUE(WaitUntil([&] { return ListeningSessions() == 1; }, 10s));

  // The new session carries the notifications of later ends.
  const std::int64_t next = *client_->Insert(m, Gated{});
  auto again = std::async(std::launch::async, [&] { return waiter_->Wait(next, 25s); });
  ASSERT_TRUE(WaitUntil([&] {
    return Sql64("SELECT count(*) FROM gd_instances WHERE awaited AND id = " +
                 std::to_string(next)) == 1;
  }));
  const auto ended = std::chrono::steady_clock::now();
  ASSERT_EQ(client_->Cancel(next).cancelled.size(), 1u);
  Result<InstanceInfo> next_info = again.get();
  ASSERT_TRUE(next_info.ok()) << next_info.error().message;
  EXPECT_EQ(next_info->status, "cancelled");
  EXPECT_LT(std::chrono::steady_clock::now() - ended, 5s);
}

TEST_F(WaitTest, AForgedNotificationWakesAWaiterThatReadsTheRowAndWaitsOn) {
  auto m = GatedJob();  // no engine
  const std::int64_t id = *client_->Insert(m, Gated{});
  auto waited = std::async(std::launch::async, [&] { return waiter_->Wait(id, 1500ms); });
  ASSERT_TRUE(WaitUntil([&] { return Sql64("SELECT count(*) FROM gd_instances WHERE awaited"); }));
  // Anyone who can connect can notify the channel: the waiter only takes it as a hint.
  const std::string channel =
      sql_->Exec("SELECT 'gen_durable_wait.' || current_schema()").String(0, 0);
  sql_->Exec("SELECT pg_notify('" + channel + "', '" + std::to_string(id) + "')");
  sql_->Exec("SELECT pg_notify('" + channel + "', 'not an id')");
  Result<InstanceInfo> info = waited.get();
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.code(), ErrorCode::kTimeout);
}

TEST_F(WaitTest, InsertAndWaitReturnsTheResultAndFailuresAreInstancesToo) {
  auto m = GatedJob();
  open_ = true;
  auto stop = Machine<Gated>("t.refuse")
                  .Step("start", [](StepContext<Gated>&) { return Stop("card declined"); })
                  .Build();
  auto engine = Engine::Start(Options({m, stop}));
  std::int64_t seen = 0;
  InsertOptions five;
  five.state = Json{{"n", 5}};
  Result<InstanceInfo> done =
      waiter_->InsertAndWait(m, five, 20s, [&](std::int64_t id) { seen = id; });
  ASSERT_TRUE(done.ok()) << done.error().message;
  EXPECT_EQ(done->id, seen);
  EXPECT_EQ(done->status, "done");
  EXPECT_EQ(done->result, (Json{{"n", 5}}));

  Result<InstanceInfo> failed = waiter_->InsertAndWait(stop, Gated{}, 20s);
  ASSERT_TRUE(failed.ok()) << failed.error().message;
  EXPECT_EQ(failed->status, "failed");
  EXPECT_EQ(failed->last_error, "card declined");

  // A held unique key refuses the insert, as Insert does.
  InsertOptions keyed;
  keyed.unique_key = "k1";
  ASSERT_TRUE(client_->Insert("t.not_served", keyed).ok());
  EXPECT_EQ(waiter_->InsertAndWait("t.not_served", keyed, 1s).code(), ErrorCode::kDuplicate);
}

}  // namespace
}  // namespace gen_durable::testing
