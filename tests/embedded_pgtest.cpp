// The embedded cluster's file-system hygiene: as root it writes into a directory the `postgres`
// account owns, so a link planted there must not redirect a write, and a data directory with
// the wrong owner or mode is refused before anything is written into it.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "gen_durable/embedded/embedded.hpp"
#include "gen_durable/error.hpp"
#include "support/pg_fixture.hpp"

namespace gen_durable {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The account a cluster's files belong to: `postgres` when the test runs as root, else us.
struct Account {
  uid_t uid;
  gid_t gid;
};
Account ServerAccount() {
  if (geteuid() == 0) {
    passwd* pw = getpwnam("postgres");
    if (pw == nullptr) throw std::runtime_error("no postgres OS user");
    return {pw->pw_uid, pw->pw_gid};
  }
  return {geteuid(), getegid()};
}

// A short temp directory (the socket lives below it) the server account can traverse, holding
// a root-owned (when root) file that no write may reach, removed at the end.
class Sandbox {
 public:
  Sandbox() {
    char dir[] = "/tmp/gd_emb_XXXXXX";
    if (mkdtemp(dir) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = dir;
    chmod(dir, 0755);
    victim_ = path_ / "victim";
    std::ofstream(victim_) << "precious\n";
    chmod(victim_.c_str(), 0644);
  }
  ~Sandbox() {
    cluster_.reset();
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  fs::path path() const { return path_; }
  fs::path data_dir() const { return path_ / "pgdata"; }
  const fs::path& victim() const { return victim_; }
  std::unique_ptr<detail::EmbeddedCluster>& cluster() { return cluster_; }

  detail::EmbeddedCluster& Start() {
    detail::EmbeddedOptions o;
    o.data_dir = data_dir().string();
    o.fast_unsafe = true;
    cluster_ = detail::EmbeddedCluster::Start(o);
    return *cluster_;
  }

  // A symbolic link named `name` in the data directory pointing at the victim, owned by the
  // server account as if that account had planted it.
  void PlantLink(const std::string& name) {
    const fs::path link = data_dir() / name;
    std::error_code ec;
    fs::remove(link, ec);
    fs::create_symlink(victim_, link);
    const Account a = ServerAccount();
    ASSERT_EQ(lchown(link.c_str(), a.uid, a.gid), 0);
  }

 private:
  fs::path path_;
  fs::path victim_;
  std::unique_ptr<detail::EmbeddedCluster> cluster_;
};

void ExpectVictimUntouched(const Sandbox& box) {
  EXPECT_EQ(Slurp(box.victim()), "precious\n") << "a write through a planted link reached it";
  struct stat st {};
  ASSERT_EQ(stat(box.victim().c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, geteuid()) << "a chown through a planted link reached it";
  EXPECT_EQ(st.st_mode & 07777, 0644u) << "a chmod through a planted link reached it";
}

// The settings file is rewritten at every start: a link planted at the name of its temporary
// file (or at its own name) must be replaced, never written through.
TEST(EmbeddedSecurity, LinkPlantedInTheDataDirectoryIsNotFollowedByAStart) {
  Sandbox box;
  box.Start().Stop();
  box.PlantLink("gen_durable.conf.tmp");
  box.cluster()->Restart();
  ExpectVictimUntouched(box);

  box.cluster()->Stop();
  box.PlantLink("gen_durable.conf");
  box.cluster()->Restart();
  ExpectVictimUntouched(box);
  EXPECT_FALSE(fs::is_symlink(box.data_dir() / "gen_durable.conf"));
  EXPECT_NE(Slurp(box.data_dir() / "gen_durable.conf").find("listen_addresses = ''"),
            std::string::npos);
  box.cluster()->Stop();
}

// The helpers every write and read in the data directory goes through.
TEST(EmbeddedSecurity, FileHelpersRefuseLinks) {
  Sandbox box;
  const fs::path dir = box.path() / "d";
  ASSERT_TRUE(fs::create_directory(dir));
  chmod(dir.c_str(), 0700);
  fs::create_symlink(box.victim(), dir / "append.conf");
  EXPECT_THROW(detail::AppendToDataFile(dir.string(), "append.conf", "x = 1\n", geteuid()), Error);
  fs::create_symlink(box.victim(), dir / "server.log");
  EXPECT_EQ(detail::ReadDataFileTail(dir.string(), "server.log", 4096), "")
      << "a read through a link would show the target's content in an error message";
  fs::create_symlink(box.victim(), dir / "settings.conf");
  detail::ReplaceDataFile(dir.string(), "settings.conf", "y = 2\n", std::nullopt);
  EXPECT_FALSE(fs::is_symlink(dir / "settings.conf"));
  EXPECT_EQ(Slurp(dir / "settings.conf"), "y = 2\n");
  EXPECT_EQ(Slurp(box.victim()), "precious\n");
  // A hard link to a file of another owner is refused for appending too.
  std::ofstream(dir / "own.conf") << "a = 1\n";
  detail::AppendToDataFile(dir.string(), "own.conf", "b = 2\n", geteuid());
  EXPECT_EQ(Slurp(dir / "own.conf"), "a = 1\nb = 2\n");
  fs::create_hard_link(dir / "own.conf", dir / "twin.conf");
  EXPECT_THROW(detail::AppendToDataFile(dir.string(), "own.conf", "c = 3\n", geteuid()), Error);
  EXPECT_EQ(detail::ReadDataFileTail(dir.string(), "own.conf", 6), "b = 2\n");
}

TEST(EmbeddedSecurity, RefusesAnEmptyDataDirectoryOfMode0755) {
  Sandbox box;
  ASSERT_EQ(mkdir(box.data_dir().c_str(), 0755), 0);
  chmod(box.data_dir().c_str(), 0755);
  const Account a = ServerAccount();
  ASSERT_EQ(chown(box.data_dir().c_str(), a.uid, a.gid), 0);
  try {
    box.Start();
    ADD_FAILURE() << "a data directory of mode 0755 was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("0700"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(box.data_dir() / "PG_VERSION")) << "initdb ran in it";
}

TEST(EmbeddedSecurity, RefusesAnExistingClusterWhoseModeWasWidened) {
  Sandbox box;
  box.Start().Stop();
  const std::string before = Slurp(box.data_dir() / "gen_durable.conf");
  ASSERT_EQ(chmod(box.data_dir().c_str(), 0755), 0);
  box.PlantLink("gen_durable.conf.tmp");
  try {
    box.cluster()->Restart();
    ADD_FAILURE() << "a data directory of mode 0755 was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("mode 0755"), std::string::npos) << e.what();
  }
  ExpectVictimUntouched(box);
  box.cluster().reset();
}

TEST(EmbeddedSecurity, RefusesADataDirectoryOwnedByAnotherUser) {
  if (geteuid() != 0) GTEST_SKIP() << "only root can make a directory owned by another user";
  Sandbox box;
  // Owned by root, not by `postgres` which the server runs as.
  ASSERT_EQ(mkdir(box.data_dir().c_str(), 0700), 0);
  try {
    box.Start();
    ADD_FAILURE() << "a data directory owned by root was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("owned by"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(box.data_dir() / "PG_VERSION")) << "initdb ran in it";
  struct stat st {};
  ASSERT_EQ(stat(box.data_dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u) << "the directory was taken over";
}

// The application's connection string names a login role that is no superuser and owns the
// database (so it can create and migrate its schema); the superuser is for cluster admin only.
TEST(EmbeddedSecurity, ApplicationConnectsAsANonSuperuser) {
  detail::EmbeddedCluster& cluster = testing::Cluster();
  const std::string name = "emb_app_" + std::to_string(getpid());
  const std::string conninfo = cluster.CreateAppDatabase(name);
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(conninfo.c_str()), &PQfinish);
  ASSERT_EQ(PQstatus(conn.get()), CONNECTION_OK) << PQerrorMessage(conn.get());
  std::unique_ptr<PGresult, decltype(&PQclear)> res(
      PQexec(conn.get(),
             "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, "
             "current_user FROM pg_roles WHERE rolname = current_user"),
      &PQclear);
  ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQerrorMessage(conn.get());
  ASSERT_EQ(PQntuples(res.get()), 1);
  for (int column = 0; column < 5; ++column) {
    EXPECT_STREQ(PQgetvalue(res.get(), 0, column), "f") << PQfname(res.get(), column);
  }
  EXPECT_STRNE(PQgetvalue(res.get(), 0, 5), "postgres");
  // It can create its schema, and cannot act as the superuser.
  res.reset(
      PQexec(conn.get(), "CREATE SCHEMA gd_app_schema; CREATE TABLE gd_app_schema.t (x int)"));
  EXPECT_EQ(PQresultStatus(res.get()), PGRES_COMMAND_OK) << PQerrorMessage(conn.get());
  res.reset(PQexec(conn.get(), "ALTER SYSTEM SET work_mem = '1GB'"));
  EXPECT_EQ(PQresultStatus(res.get()), PGRES_FATAL_ERROR);
  res.reset(PQexec(conn.get(), "SET ROLE postgres"));
  EXPECT_EQ(PQresultStatus(res.get()), PGRES_FATAL_ERROR);
  // Asking again hands out the same thing (the role and database exist by then).
  EXPECT_EQ(cluster.CreateAppDatabase(name), conninfo);
}

// A database left by an older version belongs to the superuser, and so does everything in it:
// asking for it as an application's database hands each kind of object over to the application
// role (an owned sequence, like the index, follows its table).
TEST(EmbeddedSecurity, HandsEveryKindOfObjectOfAnOlderDatabaseOver) {
  detail::EmbeddedCluster& cluster = testing::Cluster();
  const std::string name = "emb_old_" + std::to_string(getpid());
  cluster.CreateDatabase(name);  // as `postgres`, as earlier versions did
  std::unique_ptr<PGconn, decltype(&PQfinish)> admin(PQconnectdb(cluster.ConnInfo(name).c_str()),
                                                     &PQfinish);
  ASSERT_EQ(PQstatus(admin.get()), CONNECTION_OK) << PQerrorMessage(admin.get());
  std::unique_ptr<PGresult, decltype(&PQclear)> res(
      PQexec(admin.get(),
             "CREATE SCHEMA old_s; "
             "CREATE TABLE old_s.t (id serial PRIMARY KEY, v int); "
             "CREATE VIEW old_s.v AS SELECT v FROM old_s.t; "
             "CREATE MATERIALIZED VIEW old_s.m AS SELECT v FROM old_s.t; "
             "CREATE SEQUENCE old_s.q; "
             "CREATE FUNCTION old_s.f(int) RETURNS int LANGUAGE sql AS 'SELECT $1'; "
             "CREATE PROCEDURE old_s.pr() LANGUAGE sql AS 'SELECT 1'; "
             "CREATE TYPE old_s.e AS ENUM ('a'); "
             "CREATE DOMAIN old_s.d AS int CHECK (VALUE > 0); "
             "CREATE TYPE old_s.r AS RANGE (subtype = float8); "
             "CREATE TABLE old_s.p (k int, v int) PARTITION BY RANGE (k); "
             "CREATE TABLE old_s.p1 PARTITION OF old_s.p FOR VALUES FROM (0) TO (10)"),
      &PQclear);
  ASSERT_EQ(PQresultStatus(res.get()), PGRES_COMMAND_OK) << PQerrorMessage(admin.get());

  cluster.CreateAppDatabase(name);
  res.reset(
      PQexec(admin.get(),
             "SELECT o.name, r.rolname FROM ("
             "  SELECT 'database' AS name, datdba AS owner FROM pg_database"
             "  WHERE datname = current_database()"
             "  UNION ALL SELECT 'schema old_s', nspowner FROM pg_namespace WHERE nspname = 'old_s'"
             "  UNION ALL SELECT oid::regclass::text, relowner FROM pg_class"
             "  WHERE relnamespace = 'old_s'::regnamespace"
             "  AND relkind IN ('r', 'p', 'v', 'm', 'S')"
             "  UNION ALL SELECT oid::regprocedure::text, proowner FROM pg_proc"
             "  WHERE pronamespace = 'old_s'::regnamespace"
             "  UNION ALL SELECT oid::regtype::text, typowner FROM pg_type"
             "  WHERE typnamespace = 'old_s'::regnamespace AND typtype IN ('e', 'd', 'r')"
             ") o JOIN pg_roles r ON r.oid = o.owner"));
  ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQerrorMessage(admin.get());
  // The database, the schema, 7 relations (t, its sequence t_id_seq, v, m, q, the partitioned
  // table p and its partition p1), 7 routines (f, pr and the range's 5 constructors) and 3 types.
  EXPECT_EQ(PQntuples(res.get()), 19);
  for (int row = 0; row < PQntuples(res.get()); ++row) {
    EXPECT_STREQ(PQgetvalue(res.get(), row, 1), detail::EmbeddedCluster::kAppRole)
        << PQgetvalue(res.get(), row, 0) << " was not handed over";
  }
}

}  // namespace
}  // namespace gen_durable
