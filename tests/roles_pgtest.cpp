// Database privileges (docs/security.md, "Database roles"): pinned search paths, the
// SECURITY DEFINER entry points, the grants of each role of the guide, the limits the SQL
// functions enforce themselves, and schema names.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include "gen_durable/schema/migrations.hpp"
#include "support/child_process.hpp"
#include "support/engine_harness.hpp"

namespace gen_durable::testing {
namespace {

using detail::pg::Connection;

class RolesTest : public EngineTest {
 protected:
  void TearDown() override {
    for (const auto& role : roles_) {
      try {
        sql_->Exec(fmt::format("DROP OWNED BY {0}; DROP ROLE {0}", role));
      } catch (const std::exception& e) {
        ADD_FAILURE() << "dropping role " << role << ": " << e.what();
      }
    }
  }

  // A new login role with no privileges, unique to this test process (roles are cluster-wide).
  std::string NewRole(const std::string& what) {
    static std::atomic<int> counter{0};
    std::string role = fmt::format("gd_{}_{}_{}", what, getpid(), ++counter);
    sql_->Exec("CREATE ROLE " + role + " LOGIN");
    roles_.push_back(role);
    return role;
  }

  std::string As(const std::string& role) const { return db_ + " user=" + role; }

  std::unique_ptr<Connection> ConnectAs(const std::string& role) {
    return Connection::Open(As(role), "roles_test");
  }

  void Grant(const std::string& role, DatabaseRole as, const std::string& schema = "public") {
    if (schema == "public") {
      client_->GrantRole(role, as);
    } else {
      ClientOptions co;
      co.database = db_;
      co.schema = schema;
      Client::Connect(co)->GrantRole(role, as);
    }
  }

  // The SQLSTATE of the error `sql` raises on `conn` ("" when it succeeds).
  static std::string StateOf(Connection& conn, const std::string& sql,
                             std::string* what = nullptr) {
    try {
      conn.Exec(sql);
      return "";
    } catch (const DatabaseError& e) {
      if (what != nullptr) *what = e.what();
      return e.sqlstate();
    }
  }

  std::vector<std::string> roles_;
};

// Every function of the schema, and the ones without search_path = pg_catalog, pg_temp.
std::vector<std::string> UnpinnedFunctions(Connection& sql, const std::string& schema) {
  detail::pg::Params p;
  p.Add(schema);
  auto r = sql.ExecParams(
      "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
      "WHERE n.nspname = $1 AND NOT COALESCE('search_path=pg_catalog, pg_temp' = ANY "
      "(p.proconfig), false) ORDER BY 1",
      p);
  std::vector<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.Text(i, 0));
  return out;
}

TEST_F(RolesTest, EveryFunctionOfTheSchemaPinsItsSearchPath) {
  EXPECT_GE(Sql64("SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                  "WHERE n.nspname = 'public'"),
            4);
  EXPECT_EQ(UnpinnedFunctions(*sql_, "public"), std::vector<std::string>{});
  ClientOptions co;
  co.database = db_;
  co.schema = "tenant_pinned";
  Client::Connect(co)->Migrate();
  EXPECT_EQ(UnpinnedFunctions(*sql_, "tenant_pinned"), std::vector<std::string>{});
}

TEST_F(RolesTest, TheEntryPointsAreSecurityDefinerAndNotExecutableByPublic) {
  auto r = sql_->Exec(
      "SELECT p.proname, p.prosecdef, pg_get_userbyid(p.proowner), "
      "has_function_privilege('public', p.oid, 'EXECUTE') "
      "FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace "
      "AND p.proname IN ('gd_insert', 'gd_signal') ORDER BY 1");
  ASSERT_EQ(r.rows(), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(r.Bool(i, 1)) << r.Text(i, 0) << " is not SECURITY DEFINER";
    EXPECT_EQ(r.Text(i, 2), "postgres") << r.Text(i, 0);  // the role that migrated
    EXPECT_FALSE(r.Bool(i, 3)) << r.Text(i, 0) << " is executable by PUBLIC";
  }
}

TEST_F(RolesTest, AProducerWithOnlyExecuteInsertsAndSignalsButReadsAndWritesNoTable) {
  const std::string producer = NewRole("producer");
  Grant(producer, DatabaseRole::kProducer);
  auto conn = ConnectAs(producer);
  std::string what;
  EXPECT_EQ(StateOf(*conn, "SELECT gd_insert('r.produced', unique_key => 'order:1')", &what), "")
      << what;
  EXPECT_EQ(
      StateOf(*conn, "SELECT gd_signal(NULL, 'order:1', 'paid', '{\"amount\": 1}', 'e1')", &what),
      "")
      << what;
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances WHERE fsm = 'r.produced'"), 1);
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_signals WHERE name = 'paid'"), 1);
  // 42501: insufficient_privilege
  for (const char* sql :
       {"SELECT * FROM gd_instances", "SELECT * FROM gd_signals", "SELECT * FROM gd_queues",
        "UPDATE gd_instances SET priority = 1", "DELETE FROM gd_instances",
        "INSERT INTO gd_instances (fsm, step) VALUES ('x', 'start')",
        "UPDATE gd_queues SET paused = true", "DELETE FROM gd_signals"}) {
    EXPECT_EQ(StateOf(*conn, sql), "42501") << sql;
  }
}

TEST_F(RolesTest, AViewerReadsEveryTableAndWritesNone) {
  const Result<std::int64_t> viewed = client_->Insert("r.viewed");
  ASSERT_TRUE(viewed.ok());
  const std::string viewer = NewRole("viewer");
  Grant(viewer, DatabaseRole::kViewer);
  auto conn = ConnectAs(viewer);
  for (const char* table : {"gd_instances", "gd_signals", "gd_nodes", "gd_queues", "gd_history",
                            "gd_rate_buckets", "gd_schedules", "gd_schema_migrations"}) {
    std::string what;
    EXPECT_EQ(StateOf(*conn, fmt::format("SELECT count(*) FROM {}", table), &what), "")
        << table << ": " << what;
  }
  for (const char* sql : {"UPDATE gd_instances SET priority = 1", "DELETE FROM gd_instances",
                          "INSERT INTO gd_queues (name, paused) VALUES ('default', true)",
                          "SELECT gd_insert('r.viewer')", "SELECT gd_signal(1, NULL, 'x')"}) {
    EXPECT_EQ(StateOf(*conn, sql), "42501") << sql;
  }
  // The read side of the client works for it: list, show, counts.
  ClientOptions co;
  co.database = As(viewer);
  auto client = Client::Connect(co);
  EXPECT_EQ(client->List({}).size(), 1u);
  EXPECT_THROW((void)client->Insert("r.viewer"), DatabaseError);
  // Wait cannot mark the row for it: it waits by reading the row alone.
  EXPECT_EQ(client->Wait(*viewed, 300ms).code(), ErrorCode::kTimeout);
  EXPECT_EQ(sql_->Exec("SELECT count(*) FROM gd_instances WHERE awaited").Int64(0, 0), 0);
  ASSERT_EQ(client_->Cancel(*viewed).cancelled.size(), 1u);
  const Result<InstanceInfo> ended = client->Wait(*viewed, 10s);
  ASSERT_TRUE(ended.ok()) << ended.error().message;
  EXPECT_EQ(ended->status, "cancelled");
}

TEST_F(RolesTest, AnEngineRoleRunsWorkersSignalsAndChildren) {
  const std::string engine_role = NewRole("engine");
  Grant(engine_role, DatabaseRole::kEngine);
  auto child =
      Machine<Json>("r.child").Step("start", [](StepContext<Json>&) { return Done(); }).Build();
  auto m =
      Machine<Json>("r.engine")
          .Step("start",
                [](StepContext<Json>& c) -> Outcome {
                  if (!c.FindSignal("go")) return Await({"go"}, c.state());
                  return Next("spawn", c.state());
                })
          .Step("spawn",
                [](StepContext<Json>& c) {
                  return ScheduleChildren(
                      "joined", {InsertRequest{"r.child", 1, {}}, InsertRequest{"r.child", 1, {}}},
                      c.state());
                })
          .Step("joined", [](StepContext<Json>&) { return Done(); })
          .Build();
  auto o = Options({m, child});
  o.database = As(engine_role);
  o.gc_interval = 100ms;
  auto engine = Engine::Start(o);
  auto id = *engine->client().Insert(m);
  ASSERT_TRUE(WaitUntil([&] { return client_->Get(id)->status == "awaiting_signal"; }));
  ASSERT_TRUE(engine->client().Signal(id, "go").ok());
  EXPECT_EQ(WaitTerminal(id).status, "done");
  engine->client().PauseQueue("default");
  engine->client().ResumeQueue("default");
  engine->Stop();
}

TEST_F(RolesTest, OneTenantsEngineRoleCannotTouchAnotherTenantsSchema) {
  for (const char* schema : {"tenant_a", "tenant_b"}) {
    ClientOptions co;
    co.database = db_;
    co.schema = schema;
    Client::Connect(co)->Migrate();
  }
  const std::string a = NewRole("engine_a");
  Grant(a, DatabaseRole::kEngine, "tenant_a");
  auto conn = ConnectAs(a);
  std::string what;
  EXPECT_EQ(StateOf(*conn, "SELECT count(*) FROM tenant_a.gd_instances", &what), "") << what;
  EXPECT_EQ(StateOf(*conn, "SELECT tenant_a.gd_insert('r.mine')", &what), "") << what;
  for (const char* sql :
       {"SELECT count(*) FROM tenant_b.gd_instances", "SELECT tenant_b.gd_insert('r.theirs')",
        "SELECT tenant_b.gd_signal(1, NULL, 'x')", "UPDATE tenant_b.gd_queues SET paused = true",
        "DELETE FROM tenant_b.gd_instances", "SELECT count(*) FROM public.gd_instances",
        "SELECT public.gd_insert('r.theirs')"}) {
    EXPECT_EQ(StateOf(*conn, sql), "42501") << sql;
  }
  auto m =
      Machine<Json>("r.tenant").Step("start", [](StepContext<Json>&) { return Done(); }).Build();
  auto o = Options({m});
  o.database = As(a);
  o.schema = "tenant_b";
  EXPECT_THROW(Engine::Start(o), Error);
  EXPECT_EQ(Sql64("SELECT count(*) FROM tenant_b.gd_instances"), 0);
}

// A role that may create objects in public (the default before Postgres 15, and common on
// shared databases) plants an operator that matches gd_insert's `bigint * interval` better
// than pg_catalog's `float8 * interval`, and a pg_notify that callers with public first in
// their search_path would find.
TEST_F(RolesTest, AHostileRoleCannotChangeWhatTheFunctionsDo) {
  const std::string hostile = NewRole("hostile");
  sql_->Exec("GRANT CREATE ON SCHEMA public TO " + hostile);
  Grant(hostile, DatabaseRole::kProducer);
  {
    auto conn = ConnectAs(hostile);
    conn->Exec(
        "CREATE FUNCTION public.gd_later(bigint, interval) RETURNS interval LANGUAGE sql "
        "AS $$ SELECT interval '1 year' $$");
    conn->Exec(
        "CREATE OPERATOR public.* (LEFTARG = bigint, RIGHTARG = interval, "
        "FUNCTION = public.gd_later)");
    conn->Exec(
        "CREATE FUNCTION public.pg_notify(text, text) RETURNS void LANGUAGE plpgsql "
        "AS $$ BEGIN RAISE EXCEPTION 'hijacked as %', current_user; END $$");
    conn->Exec(
        "CREATE FUNCTION public.octet_length(jsonb) RETURNS integer LANGUAGE plpgsql "
        "AS $$ BEGIN RAISE EXCEPTION 'hijacked as %', current_user; END $$");
  }
  // The owner, with the default search path ("$user", public): the operator is found.
  auto id = Sql64("SELECT gd_insert('r.hijack')");
  EXPECT_EQ(sql_->Exec(fmt::format("SELECT status FROM gd_instances WHERE id = {}", id)).Text(0, 0),
            "runnable");
  // The hostile role itself, with public ahead of pg_catalog: its pg_notify would run as the
  // definer.
  auto conn = ConnectAs(hostile);
  conn->Exec("SET search_path = public, pg_catalog");
  std::string what;
  EXPECT_EQ(StateOf(*conn, "SELECT gd_insert('r.hijack2')", &what), "") << what;
  EXPECT_EQ(StateOf(*conn, "SELECT gd_signal(NULL, NULL, 'x')", &what), "GD404") << what;
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances WHERE fsm = 'r.hijack2' AND "
                  "status = 'runnable'"),
            1);
}

// The engine's and client's own statements: `now() + $1::bigint * interval '1 millisecond'`
// (leases, delays) would run a `bigint * interval` planted in public, with the engine's rights.
TEST_F(RolesTest, AHostileOperatorIsNotRunByTheEnginesStatements) {
  const std::string hostile = NewRole("hostile_op");
  sql_->Exec("GRANT CREATE ON SCHEMA public TO " + hostile);
  {
    auto conn = ConnectAs(hostile);
    conn->Exec(
        "CREATE FUNCTION public.gd_mul(bigint, interval) RETURNS interval LANGUAGE plpgsql "
        "AS $$ BEGIN RAISE EXCEPTION 'hijacked as %', current_user; END $$");
    conn->Exec(
        "CREATE OPERATOR public.* (LEFTARG = bigint, RIGHTARG = interval, "
        "FUNCTION = public.gd_mul)");
  }
  auto m =
      Machine<Json>("r.operator").Step("start", [](StepContext<Json>&) { return Done(); }).Build();
  ClientOptions co;
  co.database = db_;
  auto client = Client::Connect(co);
  std::int64_t id = 0;
  try {
    InsertOptions later;
    later.schedule_in = 1ms;
    id = *client->Insert(m, later);
  } catch (const std::exception& e) {
    FAIL() << "insert: " << e.what();
  }
  auto engine = Engine::Start(Options({m}));
  EXPECT_EQ(WaitTerminal(id).status, "done");
}

TEST_F(RolesTest, OversizeAndInvalidInputsAreRefusedBySql) {
  const auto id = Sql64("SELECT gd_insert('r.limits', unique_key => 'lim')");
  const std::string big_state = fmt::format("jsonb_build_object('s', repeat('x', {}))", 8 << 20);
  const std::string calls[] = {
      "SELECT gd_insert('')",
      "SELECT gd_insert(NULL)",
      "SELECT gd_insert(repeat('f', 256))",
      "SELECT gd_insert(E'a\\nb')",
      "SELECT gd_insert('r', queue => repeat('q', 64))",
      "SELECT gd_insert('r', queue => '')",
      "SELECT gd_insert('r', queue => E'q\\x01')",
      "SELECT gd_insert('r', step => repeat('s', 256))",
      "SELECT gd_insert('r', step => '')",
      "SELECT gd_insert('r', unique_key => repeat('k', 2049))",
      "SELECT gd_insert('r', unique_key => '')",
      "SELECT gd_insert('r', partition_key => repeat('k', 2049))",
      "SELECT gd_insert('r', fsm_version => 0)",
      "SELECT gd_insert('r', max_attempts => -1)",
      "SELECT gd_insert('r', schedule_in_ms => -1)",
      "SELECT gd_insert('r', " + big_state + ")",
      "SELECT gd_signal(NULL, 'lim', repeat('n', 256))",
      "SELECT gd_signal(NULL, 'lim', E'n\\x7f')",
      fmt::format("SELECT gd_signal({}, NULL, 'n', dedup => repeat('d', 2049))", id),
      fmt::format("SELECT gd_signal({}, NULL, 'n', dedup => '')", id),
      "SELECT gd_signal(NULL, repeat('k', 2049), 'n')",
      "SELECT gd_signal(NULL, 'lim', 'n', " + big_state + ")",
  };
  for (const auto& sql : calls) {
    std::string what;
    EXPECT_EQ(StateOf(*sql_, sql, &what), "22023") << sql << ": " << what;
  }
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_instances"), 1);
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_signals"), 0);
  // The limits themselves pass.
  std::string what;
  EXPECT_EQ(StateOf(*sql_,
                    "SELECT gd_insert(repeat('f', 255), queue => repeat('q', 63), "
                    "step => repeat('s', 255), unique_key => repeat('k', 2048), "
                    "partition_key => repeat('p', 2048), max_attempts => 0)",
                    &what),
            "")
      << what;
  EXPECT_EQ(StateOf(*sql_,
                    fmt::format("SELECT gd_signal({}, NULL, repeat('n', 255), '{{}}', "
                                "repeat('d', 2048))",
                                id),
                    &what),
            "")
      << what;
}

TEST_F(RolesTest, ABadSchemaNameIsRefusedWithAClearError) {
  for (const std::string& bad :
       std::vector<std::string>{"Tenant", "tenant a", "tenant-a", "1tenant", "t\"; DROP", "é",
                                std::string(64, 's'), std::string("a\0b", 3)}) {
    ClientOptions co;
    co.database = db_;
    co.schema = bad;
    try {
      (void)Client::Connect(co);
      ADD_FAILURE() << "schema '" << bad << "' accepted by Client::Connect";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("[a-z_][a-z0-9_]"), std::string::npos) << e.what();
    }
    EngineOptions o = Options({});
    o.schema = bad;
    o.queues = {{"default", QueueConfig{1}}};
    try {
      (void)Engine::Start(o);
      ADD_FAILURE() << "schema '" << bad << "' accepted by Engine::Start";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("[a-z_][a-z0-9_]"), std::string::npos) << e.what();
    }
  }
  for (const std::string& good :
       std::vector<std::string>{"public", "_t", "tenant_7", std::string(63, 's')}) {
    ClientOptions co;
    co.database = db_;
    co.schema = good;
    EXPECT_NO_THROW((void)Client::Connect(co)) << good;
  }
  // The command line says so and touches nothing.
  auto run = RunChild(CliCommand({"migrate", "--database", db_, "--schema", "Tenant"}));
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_NE(run.err.find("[a-z_][a-z0-9_]"), std::string::npos) << run.err;
  EXPECT_EQ(Sql64("SELECT count(*) FROM pg_namespace WHERE nspname ILIKE 'tenant'"), 0);
}

TEST_F(RolesTest, TheGrantCommandAppliesTheGuide) {
  const std::string producer = NewRole("cli_producer");
  auto run =
      RunChild(CliCommand({"grant", "--database", db_, "--role", producer, "--as", "producer"}));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto conn = ConnectAs(producer);
  std::string what;
  EXPECT_EQ(StateOf(*conn, "SELECT gd_insert('r.cli')", &what), "") << what;
  EXPECT_EQ(StateOf(*conn, "SELECT count(*) FROM gd_instances"), "42501");
  auto bad =
      RunChild(CliCommand({"grant", "--database", db_, "--role", producer, "--as", "owner"}));
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  auto missing = RunChild(
      CliCommand({"grant", "--database", db_, "--role", "gd_no_such_role", "--as", "viewer"}));
  EXPECT_NE(missing.exit_code, 0) << missing.err;
}

}  // namespace
}  // namespace gen_durable::testing
