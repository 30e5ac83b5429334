// Black-box tests of the CLI on its embedded default database: who runs the server, who owns the
// database, and an earlier version's database handed over.
#include <gtest/gtest.h>

#include "support/cli_fixture.hpp"

namespace gen_durable::cli_test {
namespace {

// With no --database the CLI creates and runs its own cluster. A process that only attached to
// a server another process started must leave it running when it exits.
TEST(CliEmbedded, RunsOnTheEmbeddedDefaultAndLeavesAnotherProcesssServerRunning) {
  EmbeddedHome home;
  auto run = [&](const std::vector<std::string>& args) {
    CliResult r = testing::RunChild(CliCommand(args), OnEmbeddedDefault(home.path()), seconds(120));
    if (!r.exited) ADD_FAILURE() << "gen_durable did not exit within 120 s";
    return r;
  };
  const CliResult stats = run({"stats", "--json"});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_NE(stats.err.find("starting embedded database at " + home.path() + "/pgdata"),
            std::string::npos)
      << stats.err;
  EXPECT_EQ(Json::parse(stats.out)["total"]["done"], 0);
  EXPECT_FALSE(home.ServerRunning()) << "the one-shot command started the server: it stops it";

  ChildProcess a(CliCommand({"worker", "--poll-interval", "100"}), OnEmbeddedDefault(home.path()));
  ASSERT_TRUE(WaitForStderr(a, "started node", seconds(60))) << a.err();
  ASSERT_TRUE(home.ServerRunning());
  {
    ChildProcess b(CliCommand({"worker", "--poll-interval", "100"}),
                   OnEmbeddedDefault(home.path()));
    ASSERT_TRUE(WaitForStderr(b, "started node", seconds(60))) << b.err();
    b.Signal(SIGTERM);
    ASSERT_TRUE(b.Wait(seconds(15))) << b.err();
    EXPECT_EQ(b.exit_code(), 0) << b.err();
  }
  EXPECT_TRUE(home.ServerRunning()) << "worker B stopped the server worker A started";

  const CliResult insert = run({"insert", "demo.chain", "--state", R"({"steps": 2})"});
  ASSERT_EQ(insert.exit_code, 0) << insert.err;
  const std::string id = insert.out.substr(0, insert.out.find('\n'));
  const auto deadline = Clock::now() + seconds(30);
  Json info;
  for (;;) {
    const CliResult show = run({"show", id, "--json"});
    ASSERT_EQ(show.exit_code, 0) << show.err;
    info = Json::parse(show.out);
    if (info["status"] == "done" || Clock::now() >= deadline) break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_EQ(info["status"], "done") << info.dump();
  EXPECT_EQ(info["result"], Json({{"steps", 2}}));

  a.Signal(SIGTERM);
  ASSERT_TRUE(a.Wait(seconds(15))) << a.err();
  EXPECT_EQ(a.exit_code(), 0) << a.err();
  EXPECT_FALSE(home.ServerRunning()) << "worker A started the server: it stops it on exit";
}

// The embedded default hands the CLI a connection as the application role, which owns the
// database and the tables it migrates (in the default schema, public) but is no superuser.
TEST(CliEmbedded, ConnectsAsANonSuperuserThatOwnsTheTables) {
  EmbeddedHome home;
  const CliResult migrate =
      testing::RunChild(CliCommand({"migrate"}), OnEmbeddedDefault(home.path()), seconds(120));
  ASSERT_EQ(migrate.exit_code, 0) << migrate.err;

  detail::EmbeddedOptions o;
  o.data_dir = home.path() + "/pgdata";
  auto cluster = detail::EmbeddedCluster::Start(o);
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(
      PQconnectdb(cluster->ConnInfo("gen_durable").c_str()), &PQfinish);
  ASSERT_EQ(PQstatus(conn.get()), CONNECTION_OK) << PQerrorMessage(conn.get());
  std::unique_ptr<PGresult, decltype(&PQclear)> res(
      PQexec(conn.get(),
             "SELECT r.rolname, r.rolsuper FROM pg_database d JOIN pg_roles r "
             "ON r.oid = d.datdba WHERE d.datname = 'gen_durable' "
             "UNION ALL SELECT r.rolname, r.rolsuper FROM pg_class c JOIN pg_roles r "
             "ON r.oid = c.relowner WHERE c.oid = 'public.gd_instances'::regclass"),
      &PQclear);
  ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQerrorMessage(conn.get());
  ASSERT_EQ(PQntuples(res.get()), 2);
  for (int row = 0; row < 2; ++row) {
    EXPECT_STREQ(PQgetvalue(res.get(), row, 1), "f")
        << "owned by " << PQgetvalue(res.get(), row, 0) << ", a superuser";
  }
  // The connection the CLI uses: `current_user` is no superuser.
  std::unique_ptr<PGconn, decltype(&PQfinish)> app(
      PQconnectdb(cluster->AppConnInfo("gen_durable").c_str()), &PQfinish);
  ASSERT_EQ(PQstatus(app.get()), CONNECTION_OK) << PQerrorMessage(app.get());
  res.reset(PQexec(app.get(), "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"));
  ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQerrorMessage(app.get());
  EXPECT_STREQ(PQgetvalue(res.get(), 0, 0), "f");
  app.reset();
  conn.reset();
  cluster->Stop();
}

// A `gen_durable` database made by an earlier version belongs to the superuser, like its tables:
// the next start hands it over to the application role, and the commands keep working.
TEST(CliEmbedded, HandsADatabaseOfAnEarlierVersionOverToTheApplicationRole) {
  EmbeddedHome home;
  detail::EmbeddedOptions o;
  o.data_dir = home.path() + "/pgdata";
  {
    auto cluster = detail::EmbeddedCluster::Start(o);
    cluster->CreateDatabase("gen_durable");  // as `postgres`, as earlier versions did
    const CliResult old = testing::RunChild(
        CliCommand({"insert", "demo.chain", "--database", cluster->ConnInfo("gen_durable")}), {},
        seconds(120));
    ASSERT_EQ(old.exit_code, 0) << old.err;
    cluster->Stop();
  }
  const CliResult stats = testing::RunChild(CliCommand({"stats", "--json"}),
                                            OnEmbeddedDefault(home.path()), seconds(120));
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_EQ(Json::parse(stats.out)["total"]["runnable"], 1) << stats.out;

  auto cluster = detail::EmbeddedCluster::Start(o);
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(
      PQconnectdb(cluster->ConnInfo("gen_durable").c_str()), &PQfinish);
  ASSERT_EQ(PQstatus(conn.get()), CONNECTION_OK) << PQerrorMessage(conn.get());
  std::unique_ptr<PGresult, decltype(&PQclear)> res(
      PQexec(conn.get(),
             "SELECT c.relname || ' ' || r.rolname FROM pg_class c "
             "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_roles r ON r.oid = c.relowner "
             "WHERE n.nspname = 'public' AND r.rolsuper "
             "UNION ALL SELECT p.proname || ' ' || r.rolname FROM pg_proc p "
             "JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_roles r ON r.oid = p.proowner "
             "WHERE n.nspname = 'public' AND r.rolsuper "
             "UNION ALL SELECT 'database ' || r.rolname FROM pg_database d "
             "JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = 'gen_durable' AND r.rolsuper"),
      &PQclear);
  ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQerrorMessage(conn.get());
  for (int row = 0; row < PQntuples(res.get()); ++row) {
    ADD_FAILURE() << "still owned by a superuser: " << PQgetvalue(res.get(), row, 0);
  }
  conn.reset();
  cluster->Stop();
}

}  // namespace
}  // namespace gen_durable::cli_test
