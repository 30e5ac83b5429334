// Tests of the libpq layer (pg/connection) against a real server: statements, errors and their
// classification, pipelines, LISTEN/NOTIFY and lost connections.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gen_durable/error.hpp"
#include "gen_durable/pg/connection.hpp"
#include "support/pg_fixture.hpp"

namespace gen_durable::detail::pg {
namespace {

using std::chrono::milliseconds;
using Batch = std::vector<std::pair<const Statement*, Params>>;

std::unique_ptr<Connection> Connect(const std::string& conninfo) {
  return Connection::Open(conninfo, "pg_connection_pgtest");
}

std::int64_t Count(Connection& conn, const std::string& table) {
  return conn.Exec("SELECT count(*) FROM " + QuoteIdent(table)).Int64(0, 0);
}

std::int64_t PreparedCount(Connection& conn, const std::string& name) {
  return conn
      .ExecParams("SELECT count(*) FROM pg_prepared_statements WHERE name = $1", Params().Add(name))
      .Int64(0, 0);
}

bool Contains(const char* haystack, const std::string& needle) {
  return std::string(haystack).find(needle) != std::string::npos;
}

// Blocks until backend `pid` sits in pg_sleep(), so a test can kill it at a known point.
void WaitUntilSleeping(Connection& observer, int pid) {
  for (int i = 0; i < 1000; ++i) {
    Result r = observer.ExecParams(
        "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'PgSleep'",
        Params().Add(pid));
    if (r.rows() == 1) return;
    std::this_thread::sleep_for(milliseconds(10));
  }
  FAIL() << "backend " << pid << " never reached pg_sleep";
}

// Terminates backend `pid` from another connection once it sleeps.
std::thread TerminateWhenSleeping(const std::string& conninfo, int pid) {
  return std::thread([conninfo, pid] {
    std::unique_ptr<Connection> observer = Connect(conninfo);
    WaitUntilSleeping(*observer, pid);
    observer->ExecParams("SELECT pg_terminate_backend($1)", Params().Add(pid));
  });
}

TEST(PgConnection, ExecutePreparesOnceAndRunsWithDifferentParams) {
  std::unique_ptr<Connection> conn = Connect(gen_durable::testing::FreshDatabase());
  const Statement add{"test_add", "SELECT $1::bigint + $2::bigint AS sum"};

  EXPECT_EQ(conn->Execute(add, Params().Add(1).Add(2)).Int64(0, 0), 3);
  EXPECT_EQ(conn->Execute(add, Params().Add(40).Add(2)).Int64(0, 0), 42);
  // A second PREPARE of the same name would have failed with 42P05, so one entry means one.
  EXPECT_EQ(PreparedCount(*conn, "test_add"), 1);
}

TEST(PgConnection, NullParamsAndColumns) {
  std::unique_ptr<Connection> conn = Connect(gen_durable::testing::FreshDatabase());
  Result r = conn->ExecParams("SELECT $1::text AS s, $2::bigint AS n, $3::text AS present",
                              Params()
                                  .AddNull()
                                  .Add(std::optional<std::int64_t>())
                                  .Add(std::optional<std::string>("here")));

  EXPECT_TRUE(r.IsNull(0, 0));
  EXPECT_TRUE(r.IsNull(0, 1));
  EXPECT_FALSE(r.IsNull(0, 2));
  EXPECT_EQ(r.Text(0, 0), "");
  EXPECT_EQ(r.OptString(0, 0), std::nullopt);
  EXPECT_EQ(r.OptInt64(0, 1), std::nullopt);
  EXPECT_EQ(r.OptString(0, 2), "here");
  EXPECT_THROW(r.Int64(0, 1), InvalidArgument);
  EXPECT_THROW(r.Bool(0, 0), InvalidArgument);
}

TEST(PgConnection, TypedAccessors) {
  std::unique_ptr<Connection> conn = Connect(gen_durable::testing::FreshDatabase());
  Result r = conn->Exec(
      "SELECT 9223372036854775807::bigint AS n, true AS yes, false AS no, 1.5::float8 AS d, "
      "'Infinity'::float8 AS inf, 'x1' AS garbage");

  EXPECT_EQ(r.rows(), 1);
  EXPECT_EQ(r.columns(), 6);
  EXPECT_EQ(r.Int64(0, 0), std::numeric_limits<std::int64_t>::max());
  EXPECT_TRUE(r.Bool(0, 1));
  EXPECT_FALSE(r.Bool(0, 2));
  EXPECT_DOUBLE_EQ(r.Double(0, 3), 1.5);
  EXPECT_TRUE(std::isinf(r.Double(0, 4)));
  EXPECT_THROW(r.Int64(0, 5), InvalidArgument);
  EXPECT_THROW(r.Double(0, 5), InvalidArgument);
  EXPECT_THROW(r.Bool(0, 5), InvalidArgument);
  EXPECT_EQ(r.ColumnIndex("yes"), 1);
  EXPECT_EQ(r.ColumnIndex("absent"), -1);
  EXPECT_THROW(r.Text(1, 0), InvalidArgument);
  EXPECT_THROW(r.Text(0, 6), InvalidArgument);

  conn->Exec("CREATE TABLE t (id int)");
  conn->Exec("INSERT INTO t SELECT generate_series(1, 3)");
  EXPECT_EQ(conn->Exec("UPDATE t SET id = id + 1 WHERE id > 1").affected(), 2);
  EXPECT_EQ(conn->Exec("CREATE TABLE u (id int)").affected(), 0);
}

TEST(PgConnection, ParamsRoundTripThroughTheServer) {
  std::unique_ptr<Connection> conn = Connect(gen_durable::testing::FreshDatabase());
  Params p;
  p.Add(0.1)
      .Add(true)
      .Add(std::numeric_limits<std::int64_t>::min())
      .Add(1e300)
      .Add(std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(p.values()[0], "0.1");
  EXPECT_EQ(p.values()[1], "true");
  EXPECT_EQ(p.values()[2], "-9223372036854775808");

  Result r = conn->ExecParams(
      "SELECT $1::float8 = 0.1, $2::bool, $3::bigint, $4::float8 = 1e300, $5::float8 = 'NaN'", p);
  EXPECT_TRUE(r.Bool(0, 0));
  EXPECT_TRUE(r.Bool(0, 1));
  EXPECT_EQ(r.Int64(0, 2), std::numeric_limits<std::int64_t>::min());
  EXPECT_TRUE(r.Bool(0, 3));
  EXPECT_TRUE(r.Bool(0, 4));

  EXPECT_THROW(Params().Add(std::string_view("a\0b", 3)), InvalidArgument);
}

TEST(PgConnection, MissingTableIsFatalWithSqlStateAndStatementName) {
  std::unique_ptr<Connection> conn = Connect(gen_durable::testing::FreshDatabase());
  const Statement select{"test_select_missing", "SELECT * FROM missing"};
  try {
    conn->Execute(select);
    FAIL() << "expected DatabaseError";
  } catch (const DatabaseError& e) {
    EXPECT_EQ(e.sqlstate(), "42P01");
    EXPECT_EQ(e.retry(), Retry::kFatal);
    EXPECT_EQ(e.statement(), "test_select_missing");
    EXPECT_TRUE(Contains(e.what(), "test_select_missing: ")) << e.what();
    EXPECT_TRUE(Contains(e.what(), "missing")) << e.what();
  }
  EXPECT_FALSE(conn->broken());
  EXPECT_EQ(conn->Exec("SELECT 1").Int64(0, 0), 1);
}

TEST(PgConnection, UniqueViolationIsFatal) {
  std::unique_ptr<Connection> conn = Connect(gen_durable::testing::FreshDatabase());
  conn->Exec("CREATE TABLE t (id int PRIMARY KEY)");
  const Statement insert{"test_insert", "INSERT INTO t VALUES ($1)"};
  conn->Execute(insert, Params().Add(1));
  try {
    conn->Execute(insert, Params().Add(1));
    FAIL() << "expected DatabaseError";
  } catch (const DatabaseError& e) {
    EXPECT_EQ(e.sqlstate(), "23505");
    EXPECT_EQ(e.retry(), Retry::kFatal);
    EXPECT_EQ(e.statement(), "test_insert");
  }
  EXPECT_FALSE(conn->broken());
}

TEST(PgConnection, AdHocErrorNamesTheSql) {
  std::unique_ptr<Connection> conn = Connect(gen_durable::testing::FreshDatabase());
  try {
    conn->Exec("SELEC 1");
    FAIL() << "expected DatabaseError";
  } catch (const DatabaseError& e) {
    EXPECT_EQ(e.sqlstate(), "42601");
    EXPECT_EQ(e.statement(), "");
    EXPECT_TRUE(Contains(e.what(), "SELEC 1: ")) << e.what();
  }
}

TEST(PgConnection, ExecutePreparesAgainAfterDiscardAll) {
  std::unique_ptr<Connection> conn = Connect(gen_durable::testing::FreshDatabase());
  const Statement one{"test_one", "SELECT 1"};
  const Statement two{"test_two", "SELECT 2"};
  conn->Execute(one);
  conn->Execute(two);
  conn->Exec("DISCARD ALL");

  EXPECT_EQ(conn->Execute(one).Int64(0, 0), 1);
  EXPECT_EQ(conn->Execute(two).Int64(0, 0), 2);
  EXPECT_EQ(PreparedCount(*conn, "test_two"), 1);
}

TEST(PgConnection, LostStatementInsideTransactionIsRetryable) {
  std::unique_ptr<Connection> conn = Connect(gen_durable::testing::FreshDatabase());
  const Statement one{"test_one", "SELECT 1"};
  conn->Execute(one);
  conn->Exec("DEALLOCATE ALL");
  conn->Exec("BEGIN");
  try {
    conn->Execute(one);
    FAIL() << "expected DatabaseError";
  } catch (const DatabaseError& e) {
    EXPECT_EQ(e.sqlstate(), "26000");
    EXPECT_EQ(e.retry(), Retry::kRetryable);
  }
  conn->Exec("ROLLBACK");
  // The retried transaction prepares afresh.
  conn->Exec("BEGIN");
  EXPECT_EQ(conn->Execute(one).Int64(0, 0), 1);
  conn->Exec("COMMIT");
}

TEST(PgConnection, PipelineWithTransactionCommitsAll) {
  const std::string db = gen_durable::testing::FreshDatabase();
  std::unique_ptr<Connection> conn = Connect(db);
  conn->Exec("CREATE TABLE t (id int PRIMARY KEY, note text)");
  const Statement insert{"test_insert", "INSERT INTO t VALUES ($1, $2) RETURNING id"};
  const Statement count{"test_count", "SELECT count(*) FROM t"};
  conn->Execute(count);  // one already prepared, one prepared by the pipeline

  std::vector<Result> results = conn->Pipeline({{&insert, Params().Add(1).Add("a")},
                                                {&insert, Params().Add(2).AddNull()},
                                                {&count, Params()}},
                                               /*transaction=*/true);

  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].Int64(0, 0), 1);
  EXPECT_EQ(results[1].Int64(0, 0), 2);
  EXPECT_EQ(results[2].Int64(0, 0), 2);  // sees the batch's own inserts
  std::unique_ptr<Connection> other = Connect(db);
  EXPECT_EQ(Count(*other, "t"), 2);
  EXPECT_EQ(PreparedCount(*conn, "test_insert"), 1);
  EXPECT_EQ(conn->Execute(insert, Params().Add(3).Add("c")).Int64(0, 0), 3);
}

TEST(PgConnection, PipelineFailureRollsBackEarlierStatements) {
  std::unique_ptr<Connection> conn = Connect(gen_durable::testing::FreshDatabase());
  conn->Exec("CREATE TABLE t (id int PRIMARY KEY)");
  const Statement insert{"test_insert", "INSERT INTO t VALUES ($1)"};

  for (bool transaction : {true, false}) {
    SCOPED_TRACE(transaction);
    try {
      conn->Pipeline({{&insert, Params().Add(1)}, {&insert, Params().Add(1)}}, transaction);
      FAIL() << "expected DatabaseError";
    } catch (const DatabaseError& e) {
      EXPECT_EQ(e.sqlstate(), "23505");
      EXPECT_EQ(e.retry(), Retry::kFatal);
      EXPECT_EQ(e.statement(), "test_insert");
    }
    EXPECT_FALSE(conn->broken());
    EXPECT_EQ(Count(*conn, "t"), 0);
    EXPECT_EQ(conn->Exec("SELECT 1").Int64(0, 0), 1);  // no transaction left open or aborted
  }
  // The failed pipeline prepared the statement; the next call must not prepare it again.
  conn->Execute(insert, Params().Add(5));
  std::vector<Result> results = conn->Pipeline({{&insert, Params().Add(6)}}, true);
  EXPECT_EQ(results.size(), 1u);
  EXPECT_EQ(Count(*conn, "t"), 2);
}

TEST(PgConnection, PipelineAbortedBeforePrepareLeavesStatementUnprepared) {
  std::unique_ptr<Connection> conn = Connect(gen_durable::testing::FreshDatabase());
  conn->Exec("CREATE TABLE t (id int)");
  const Statement bad{"test_bad", "SELEC 1"};
  const Statement insert{"test_insert", "INSERT INTO t VALUES ($1)"};

  try {
    conn->Pipeline({{&bad, Params()}, {&insert, Params().Add(1)}}, true);
    FAIL() << "expected DatabaseError";
  } catch (const DatabaseError& e) {
    EXPECT_EQ(e.sqlstate(), "42601");
    EXPECT_EQ(e.statement(), "test_bad");
  }
  EXPECT_EQ(PreparedCount(*conn, "test_insert"), 0);
  // Inside a transaction a wrong "already prepared" belief would surface as 26000.
  conn->Exec("BEGIN");
  conn->Execute(insert, Params().Add(1));
  conn->Exec("COMMIT");
  EXPECT_THROW(conn->Execute(bad), DatabaseError);
  EXPECT_EQ(Count(*conn, "t"), 1);
}

TEST(PgConnection, PipelinePreparesAgainAfterDiscardAll) {
  std::unique_ptr<Connection> conn = Connect(gen_durable::testing::FreshDatabase());
  conn->Exec("CREATE TABLE t (id int)");
  const Statement insert{"test_insert", "INSERT INTO t VALUES ($1)"};
  conn->Execute(insert, Params().Add(1));
  conn->Exec("DISCARD ALL");

  conn->Pipeline({{&insert, Params().Add(2)}, {&insert, Params().Add(3)}}, true);
  EXPECT_EQ(Count(*conn, "t"), 3);
}

TEST(PgConnection, PipelineJoinsTheCallersTransaction) {
  std::unique_ptr<Connection> conn = Connect(gen_durable::testing::FreshDatabase());
  conn->Exec("CREATE TABLE t (id int)");
  const Statement insert{"test_insert", "INSERT INTO t VALUES ($1)"};

  conn->Exec("BEGIN");
  conn->Pipeline({{&insert, Params().Add(1)}}, true);
  conn->Exec("ROLLBACK");
  EXPECT_EQ(Count(*conn, "t"), 0);
}

TEST(PgConnection, BorrowedConnectionIsNeitherClosedNorLeftWithStatements) {
  std::unique_ptr<Connection> owner = Connect(gen_durable::testing::FreshDatabase());
  owner->Exec("CREATE TABLE t (id int)");
  const Statement insert{"test_insert", "INSERT INTO t VALUES ($1)"};

  owner->Exec("BEGIN");
  for (int i = 0; i < 2; ++i) {
    std::unique_ptr<Connection> borrowed = Connection::Borrow(owner->raw());
    borrowed->Execute(insert, Params().Add(i));
    borrowed->Pipeline({{&insert, Params().Add(10 + i)}}, true);
  }
  owner->Exec("COMMIT");
  EXPECT_EQ(Count(*owner, "t"), 4);
  EXPECT_EQ(PreparedCount(*owner, "test_insert"), 0);
}

TEST(PgConnection, ListenReceivesNotifyPayload) {
  const std::string db = gen_durable::testing::FreshDatabase();
  std::unique_ptr<Connection> listener = Connect(db);
  std::unique_ptr<Connection> notifier = Connect(db);
  listener->Listen("jobs Ready");  // needs quoting

  notifier->ExecParams("SELECT pg_notify($1, $2)", Params().Add("jobs Ready").Add("42"));
  std::vector<Notification> got = listener->WaitForNotifications(milliseconds(5000));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].channel, "jobs Ready");
  EXPECT_EQ(got[0].payload, "42");

  // Wakes up for a notification that arrives while waiting.
  std::thread later([&] {
    std::this_thread::sleep_for(milliseconds(100));
    notifier->ExecParams("SELECT pg_notify($1, $2)", Params().Add("jobs Ready").Add("43"));
  });
  const auto start = std::chrono::steady_clock::now();
  got = listener->WaitForNotifications(milliseconds(10000));
  later.join();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "43");
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(5000));
}

TEST(PgConnection, AReadableInterruptFdEndsAWaitForNotificationsAtOnce) {
  std::unique_ptr<Connection> listener = Connect(gen_durable::testing::FreshDatabase());
  listener->Listen("quiet");
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(listener->WaitForNotifications(milliseconds(100), fds[0]).empty());
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(100));  // not readable yet
  const char byte = 0;
  ASSERT_EQ(write(fds[1], &byte, 1), 1);
  const auto woken = std::chrono::steady_clock::now();
  EXPECT_TRUE(listener->WaitForNotifications(milliseconds(20000), fds[0]).empty());
  EXPECT_LT(std::chrono::steady_clock::now() - woken, milliseconds(5000));
  EXPECT_FALSE(listener->broken());
  close(fds[0]);
  close(fds[1]);
}

TEST(PgConnection, WaitForNotificationsTimesOutWithNothing) {
  std::unique_ptr<Connection> listener = Connect(gen_durable::testing::FreshDatabase());
  listener->Listen("quiet");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(listener->WaitForNotifications(milliseconds(150)).empty());
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(150));
  EXPECT_FALSE(listener->broken());
}

TEST(PgConnection, TerminatedBackendBreaksConnectionRetryably) {
  const std::string db = gen_durable::testing::FreshDatabase();
  std::unique_ptr<Connection> victim = Connect(db);
  std::unique_ptr<Connection> killer = Connect(db);
  // With a timeout, pg_terminate_backend waits until the backend has exited.
  killer->ExecParams("SELECT pg_terminate_backend($1, 5000)", Params().Add(victim->backend_pid()));

  try {
    victim->Exec("SELECT 1");
    FAIL() << "expected DatabaseError";
  } catch (const DatabaseError& e) {
    EXPECT_EQ(e.retry(), Retry::kRetryable) << e.what();
  }
  EXPECT_TRUE(victim->broken());
  try {
    victim->Execute(Statement{"test_one", "SELECT 1"});
    FAIL() << "expected DatabaseError";
  } catch (const DatabaseError& e) {
    EXPECT_EQ(e.retry(), Retry::kRetryable) << e.what();
  }
}

TEST(PgConnection, TerminatedListenerThrowsRetryable) {
  const std::string db = gen_durable::testing::FreshDatabase();
  std::unique_ptr<Connection> listener = Connect(db);
  std::unique_ptr<Connection> killer = Connect(db);
  listener->Listen("c");
  std::thread kill([&] {
    std::this_thread::sleep_for(milliseconds(100));
    killer->ExecParams("SELECT pg_terminate_backend($1)", Params().Add(listener->backend_pid()));
  });
  try {
    listener->WaitForNotifications(milliseconds(10000));
    ADD_FAILURE() << "expected DatabaseError";
  } catch (const DatabaseError& e) {
    EXPECT_EQ(e.retry(), Retry::kRetryable) << e.what();
  }
  kill.join();
  EXPECT_TRUE(listener->broken());
}

TEST(PgConnection, ConnectionLostBeforeCommitIsRetryable) {
  const std::string db = gen_durable::testing::FreshDatabase();
  std::unique_ptr<Connection> conn = Connect(db);
  conn->Exec("CREATE TABLE t (id int)");
  const Statement insert{"test_insert", "INSERT INTO t VALUES ($1)"};
  const Statement sleep{"test_sleep", "SELECT pg_sleep(30)"};

  std::thread kill = TerminateWhenSleeping(db, conn->backend_pid());
  try {
    conn->Pipeline({{&insert, Params().Add(1)}, {&sleep, Params()}}, true);
    ADD_FAILURE() << "expected DatabaseError";
  } catch (const DatabaseError& e) {
    EXPECT_EQ(e.retry(), Retry::kRetryable) << e.what();
  }
  kill.join();
  EXPECT_TRUE(conn->broken());
  EXPECT_EQ(Count(*Connect(db), "t"), 0);
}

TEST(PgConnection, ConnectionLostDuringCommitIsInDoubt) {
  const std::string db = gen_durable::testing::FreshDatabase();
  std::unique_ptr<Connection> conn = Connect(db);
  // A deferred trigger runs inside COMMIT, which gives the test a window to kill the backend.
  conn->Exec(R"sql(
    CREATE TABLE t (id int);
    CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$;
    CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON t DEFERRABLE INITIALLY DEFERRED
      FOR EACH ROW EXECUTE FUNCTION slow_commit();
  )sql");
  const Statement insert{"test_insert", "INSERT INTO t VALUES ($1)"};

  std::thread kill = TerminateWhenSleeping(db, conn->backend_pid());
  try {
    conn->Pipeline({{&insert, Params().Add(1)}}, true);
    ADD_FAILURE() << "expected DatabaseError";
  } catch (const DatabaseError& e) {
    EXPECT_EQ(e.retry(), Retry::kInDoubt) << e.what();
  }
  kill.join();
  EXPECT_TRUE(conn->broken());
}

TEST(PgConnection, LoneCommitLostIsInDoubt) {
  const std::string db = gen_durable::testing::FreshDatabase();
  std::unique_ptr<Connection> conn = Connect(db);
  conn->Exec(R"sql(
    CREATE TABLE t (id int);
    CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$;
    CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON t DEFERRABLE INITIALLY DEFERRED
      FOR EACH ROW EXECUTE FUNCTION slow_commit();
  )sql");
  conn->Exec("BEGIN");
  conn->Exec("INSERT INTO t VALUES (1)");
  std::thread kill = TerminateWhenSleeping(db, conn->backend_pid());
  try {
    conn->Exec("COMMIT");
    ADD_FAILURE() << "expected DatabaseError";
  } catch (const DatabaseError& e) {
    EXPECT_EQ(e.retry(), Retry::kInDoubt) << e.what();
  }
  kill.join();
  EXPECT_TRUE(conn->broken());
}

TEST(PgConnection, OpenSetsApplicationNameAndFailsRetryably) {
  const std::string db = gen_durable::testing::FreshDatabase();
  std::unique_ptr<Connection> conn = Connection::Open(db, "gd app");
  EXPECT_EQ(conn->Exec("SELECT current_setting('application_name')").String(0, 0), "gd app");
  EXPECT_EQ(conn->Exec("SHOW client_min_messages").String(0, 0), "warning");
  EXPECT_GT(conn->backend_pid(), 0);

  try {
    Connection::Open("host=/nonexistent-gen-durable port=1 dbname=x");
    FAIL() << "expected DatabaseError";
  } catch (const DatabaseError& e) {
    EXPECT_EQ(e.retry(), Retry::kRetryable);
    EXPECT_EQ(e.sqlstate(), "");
    EXPECT_TRUE(Contains(e.what(), "connect: ")) << e.what();
  }
}

// A database that does not exist, or a malformed connection string, will not come back by
// waiting: callers that wait out a down server (the CLI worker at start) must not wait on these.
TEST(PgConnection, ConnectFailuresThatWaitingCannotCureAreFatal) {
  const std::string db = gen_durable::testing::FreshDatabase();
  const std::string missing = db.substr(0, db.find("dbname=")) + "dbname=gd_no_such_database";
  ASSERT_NE(db.find("dbname="), std::string::npos) << db;
  for (const std::string& conninfo :
       {missing, std::string("host=/tmp nonsense_option=1"), std::string("postgresql://[bad")}) {
    try {
      Connection::Open(conninfo);
      ADD_FAILURE() << "expected DatabaseError for " << conninfo;
    } catch (const DatabaseError& e) {
      EXPECT_EQ(e.retry(), Retry::kFatal) << conninfo << ": " << e.what();
    }
  }
  EXPECT_EQ(ClassifyConnectFailure("connection to server on socket \"/x/.s.PGSQL.5432\" failed: "
                                   "No such file or directory"),
            Retry::kRetryable);
  EXPECT_EQ(ClassifyConnectFailure("connection to server failed: FATAL:  the database system is "
                                   "starting up"),
            Retry::kRetryable);
  EXPECT_EQ(ClassifyConnectFailure("FATAL:  sorry, too many clients already"), Retry::kRetryable);
  EXPECT_EQ(ClassifyConnectFailure("FATAL:  password authentication failed for user \"x\""),
            Retry::kFatal);
}

TEST(PgConnection, ClassifySqlState) {
  for (const char* retryable : {"", "08000", "08006", "57P01", "57P02", "57P03", "53100", "53300",
                                "40001", "40P01", "55P03", "57014"}) {
    EXPECT_EQ(ClassifySqlState(retryable), Retry::kRetryable) << retryable;
  }
  for (const char* fatal : {"23505", "42P01", "42601", "22P02", "57P04", "26000"}) {
    EXPECT_EQ(ClassifySqlState(fatal), Retry::kFatal) << fatal;
  }
}

TEST(PgConnection, QuoteIdent) {
  EXPECT_EQ(QuoteIdent("jobs"), "\"jobs\"");
  EXPECT_EQ(QuoteIdent("my schema"), "\"my schema\"");
  EXPECT_EQ(QuoteIdent("a\"b"), "\"a\"\"b\"");
  EXPECT_THROW(QuoteIdent(std::string_view("a\0b", 3)), InvalidArgument);
}

}  // namespace
}  // namespace gen_durable::detail::pg
