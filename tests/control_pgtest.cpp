// The control plane (docs/security.md, "Control plane"): operator requests are rows that only
// roles with privilege on the schema's tables can write; a NOTIFY on the control channel is a
// wake-up whose payload no engine reads. A forged or missed notification changes nothing, a node
// that was reconnecting still applies what was asked meanwhile, scale requests outlive the nodes
// they were sent to, and every value is range-checked.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <string>

#include "gen_durable/pg/connection.hpp"
#include "gen_durable/schema/migrations.hpp"
#include "support/engine_harness.hpp"

namespace gen_durable::testing {
namespace {

struct Hold {
  int n = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Hold, n)

class ControlTest : public EngineTest {
 protected:
  void TearDown() override {
    stranger_.reset();
    if (!role_.empty()) sql_->Exec("DROP ROLE IF EXISTS " + role_);
  }

  // A connection of a role that may connect to this test's database and nothing else: no
  // privilege on the schema or its tables (what any other application's role has on a shared
  // server).
  detail::pg::Connection& Stranger() {
    const std::string db = sql_->Exec("SELECT current_database()").String(0, 0);
    role_ = "gd_stranger_" + db;
    for (auto& ch : role_) {
      if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
    }
    sql_->Exec("DROP ROLE IF EXISTS " + role_);
    sql_->Exec("CREATE ROLE " + role_ + " LOGIN");
    sql_->Exec("REVOKE ALL ON SCHEMA public FROM PUBLIC");
    stranger_ = detail::pg::Connection::Open(db_ + " user=" + role_, "stranger");
    return *stranger_;
  }

  void Forge(const std::string& payload) {
    stranger_->ExecParams(
        "SELECT pg_notify($1, $2)",
        detail::pg::Params().Add(detail::ControlChannelFor("public")).Add(payload));
  }

  std::string role_;
  std::unique_ptr<detail::pg::Connection> stranger_;
};

// A job that runs until `release`, noting whether it was told it was cancelled meanwhile.
AnyMachine Holder(const std::string& name, std::atomic<bool>* started, std::atomic<bool>* release,
                  std::atomic<bool>* told = nullptr) {
  return Job<Hold>(name)
      .MaxAttempts(1)
      .Perform([started, release, told](const Hold&, JobContext& ctx) {
        *started = true;
        bool saw_cancel = false;
        while (!*release) {
          if (ctx.cancelled()) {
            saw_cancel = true;
            if (told) *told = true;
          }
          std::this_thread::sleep_for(5ms);
        }
        return JobResult::Ok({{"saw_cancel", saw_cancel}});
      })
      .Build();
}

AnyMachine Quick(const std::string& name) {
  return Job<Hold>(name).Perform([](const Hold&, JobContext&) { return JobResult::Ok(); }).Build();
}

TEST_F(ControlTest, ForgedNotificationsFromARoleWithOnlyConnectChangeNothing) {
  std::atomic<bool> started{false}, release{false};
  auto held = Holder("c.held", &started, &release);
  auto quick = Quick("c.quick");
  auto o = Options({held, quick}, 4);
  o.queues["other"] = QueueConfig{2};
  auto e = Engine::Start(o);
  const auto held_id = *client_->Insert(held, {});
  ASSERT_TRUE(WaitUntil([&] { return started.load(); }));

  auto& stranger = Stranger();
  // It can write no request row either.
  try {
    stranger.Exec(
        "INSERT INTO public.gd_control (queue, concurrency, seq) VALUES ('default', 1, 1)");
    ADD_FAILURE() << "a role without privileges wrote a control request";
  } catch (const DatabaseError& err) {
    EXPECT_EQ(err.sqlstate(), "42501") << err.what();
  }
  // What the old control messages looked like, and worse.
  Forge(R"({"op":"scale","queue":"default","node":null,"concurrency":0})");
  Forge(fmt::format(R"({{"op":"scale","queue":"default","node":"{}","concurrency":1}})",
                    e->node_id()));
  Forge(R"({"op":"pause","queue":"default"})");
  Forge(fmt::format(R"({{"op":"cancel","id":{}}})", held_id));
  Forge(R"({"op":"reconfigure","queues":{}})");
  Forge("not json at all");
  Forge("");
  // A genuine request, sent after the forged ones: once it is applied, the node has handled
  // every notification before it (one listener reads them in commit order).
  client_->ScaleQueue("other", 3);
  ASSERT_TRUE(WaitUntil([&] { return e->Queues().at("other").concurrency == 3; }));

  const auto q = e->Queues().at("default");
  EXPECT_EQ(q.concurrency, 4);
  EXPECT_FALSE(q.paused);
  release = true;
  const auto info = WaitTerminal(held_id);
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.result.value("saw_cancel", true), false);
  // New work still runs.
  EXPECT_EQ(WaitTerminal(*client_->Insert(quick, {})).status, "done");
}

TEST_F(ControlTest, GenuineRequestsStillReachEveryNode) {
  std::atomic<bool> started{false}, release{false}, told{false};
  auto held = Holder("c.real", &started, &release, &told);
  auto a = Engine::Start(Options({held}, 4));
  auto b = Engine::Start(Options({held}, 4));
  client_->PauseQueue("default");
  EXPECT_TRUE(WaitUntil(
      [&] { return a->Queues().at("default").paused && b->Queues().at("default").paused; }));
  client_->ResumeQueue("default");
  EXPECT_TRUE(WaitUntil(
      [&] { return !a->Queues().at("default").paused && !b->Queues().at("default").paused; }));
  const auto id = *client_->Insert(held, {});
  ASSERT_TRUE(WaitUntil([&] { return started.load(); }));
  const auto report = client_->Cancel(id);
  ASSERT_EQ(report.requested.size(), 1u);
  // The running step is told and the row ends cancelled.
  EXPECT_TRUE(WaitUntil([&] { return told.load(); }));
  release = true;
  EXPECT_EQ(WaitTerminal(id).status, "cancelled");
}

TEST_F(ControlTest, RequestWrittenWhileANodeWasDisconnectedIsAppliedAfterItReconnects) {
  auto o = Options({Quick("c.reconnect")}, 4);
  auto e = Engine::Start(o);
  const std::string db = sql_->Exec("SELECT current_database()").String(0, 0);
  const std::string quoted = detail::pg::QuoteIdent(db);
  // (a database's own sessions may not close it to new ones)
  auto admin = detail::pg::Connection::Open(db_ + " dbname=postgres", "admin");
  struct Reopen {
    detail::pg::Connection* sql;
    std::string db;
    ~Reopen() { sql->Exec("ALTER DATABASE " + db + " ALLOW_CONNECTIONS true"); }
  };
  {
    // No new session may start, so the listener cut below cannot come back before the request.
    admin->Exec("ALTER DATABASE " + quoted + " ALLOW_CONNECTIONS false");
    Reopen reopen{admin.get(), quoted};
    const std::string listener = "gen_durable:" + o.name + ":listener";
    sql_->ExecParams(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = $1",
        detail::pg::Params().Add(listener));
    ASSERT_TRUE(WaitUntil([&] {
      return sql_->ExecParams(
                     "SELECT count(*) FROM pg_stat_activity "
                     "WHERE datname = current_database() AND application_name = $1",
                     detail::pg::Params().Add(listener))
                 .Int64(0, 0) == 0;
    }));
    // (the client's connection was opened before, and is reused)
    client_->ScaleQueue("default", 2);
  }
  EXPECT_TRUE(WaitUntil([&] { return e->Queues().at("default").concurrency == 2; }))
      << "concurrency " << e->Queues().at("default").concurrency;
}

TEST_F(ControlTest, RestartedNodeHonoursAPersistedScaleUnlessItsConfigurationChanged) {
  auto m = Quick("c.restart");
  auto o = Options({m}, 4);
  {
    auto e = Engine::Start(o);
    client_->ScaleQueue("default", 2);
    ASSERT_TRUE(WaitUntil([&] { return e->Queues().at("default").concurrency == 2; }));
  }
  {
    // The same node (name and configuration) restarted: it starts with what was asked.
    auto e = Engine::Start(o);
    EXPECT_EQ(e->Queues().at("default").concurrency, 2);
    EXPECT_EQ(client_->Nodes().at(0).queues.at("default"), 2);
  }
  {
    // A node that joins later follows the standing request too.
    auto e = Engine::Start(Options({m}, 4));
    EXPECT_EQ(e->Queues().at("default").concurrency, 2);
  }
  {
    // The node restarted with a changed configuration: its own is newer and wins...
    o.queues = {{"default", QueueConfig{6}}};
    auto e = Engine::Start(o);
    EXPECT_EQ(e->Queues().at("default").concurrency, 6);
    // ...until the next request.
    client_->ScaleQueue("default", 3);
    EXPECT_TRUE(WaitUntil([&] { return e->Queues().at("default").concurrency == 3; }));
  }
}

TEST_F(ControlTest, OutOfRangeRequestsAreRefusedByTheApiAndTheTable) {
  auto e = Engine::Start(Options({Quick("c.range")}, 4));
  for (int bad : {0, -1, 10'001, 2'000'000'000}) {
    try {
      client_->ScaleQueue("default", bad);
      ADD_FAILURE() << "scale to " << bad << " accepted";
    } catch (const InvalidArgument& err) {
      EXPECT_NE(std::string(err.what()).find("1..10000"), std::string::npos) << err.what();
    }
  }
  // Whoever writes the table directly (a role with the privilege, by hand) is held to the
  // same range.
  try {
    sql_->Exec(
        "INSERT INTO gd_control (queue, concurrency, seq) VALUES ('default', 2000000000, "
        "nextval('gd_control_seq'))");
    ADD_FAILURE() << "the table took a concurrency of 2000000000";
  } catch (const DatabaseError& err) {
    EXPECT_EQ(err.sqlstate(), "23514") << err.what();
  }
  // A valid request still applies after the refused ones.
  client_->ScaleQueue("default", 1);
  EXPECT_TRUE(WaitUntil([&] { return e->Queues().at("default").concurrency == 1; }));
}

}  // namespace
}  // namespace gen_durable::testing
