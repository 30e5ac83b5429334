// Helpers for engine tests: a fresh database, short timings, waiting for instances.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "gen_durable/gen_durable.hpp"
#include "gen_durable/pg/connection.hpp"
#include "support/pg_fixture.hpp"

namespace gen_durable::testing {

using namespace std::chrono_literals;

inline bool IsTerminal(const std::string& status) {
  return status == "done" || status == "failed" || status == "cancelled";
}

// Polls `pred` every 10 ms until it is true or `timeout` passes; returns its last value.
inline bool WaitUntil(const std::function<bool()>& pred,
                      std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = FreshDatabase();
    ClientOptions co;
    co.database = db_;
    client_ = Client::Connect(co);
    client_->Migrate();
    sql_ = detail::pg::Connection::Open(db_, "engine_test");
  }

  // Options with short timings serving exactly `machines`.
  EngineOptions Options(std::vector<AnyMachine> machines, int concurrency = 4) {
    EngineOptions o;
    o.database = db_;
    o.name = "test-" + std::to_string(counter_++);
    o.all_registered_machines = false;
    o.machines = std::move(machines);
    o.queues = {{"default", QueueConfig{concurrency}}};
    o.lease_ttl = 3000ms;
    o.heartbeat_interval = 500ms;
    o.poll_interval = 50ms;
    o.max_poll_interval = 200ms;
    o.reap_interval = 200ms;
    o.gc_interval.reset();
    o.drain_timeout = 2000ms;
    return o;
  }

  // Waits for `id` to be terminal; fails the test on timeout.
  InstanceInfo WaitTerminal(std::int64_t id, std::chrono::milliseconds timeout = 20s) {
    std::optional<InstanceInfo> info;
    const bool ok = WaitUntil(
        [&] {
          info = client_->Get(id);
          return info && IsTerminal(info->status);
        },
        timeout);
    EXPECT_TRUE(ok) << "instance " << id << " not terminal; status "
                    << (info ? info->status : std::string("missing"));
    return info.value_or(InstanceInfo{});
  }

  std::int64_t Sql64(const std::string& q) { return sql_->Exec(q).Int64(0, 0); }

  std::string db_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<detail::pg::Connection> sql_;
  int counter_ = 0;
};

}  // namespace gen_durable::testing
