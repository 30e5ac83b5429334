// The databases of the embedded cluster: CreateDatabase for administration and tests, and
// CreateAppDatabase, which gives applications a database owned by the login role kAppRole and
// hands a database left by an older version (owned by the superuser) over to that role.
#include <libpq-fe.h>

#include <initializer_list>
#include <memory>
#include <string>

#include "gen_durable/embedded/embedded.hpp"
#include "gen_durable/embedded/process.hpp"
#include "gen_durable/error.hpp"

namespace gen_durable::detail {
namespace {

using embedded::TrimRight;
using ConnPtr = std::unique_ptr<PGconn, decltype(&PQfinish)>;
using ResultPtr = std::unique_ptr<PGresult, decltype(&PQclear)>;

// Connects as the superuser. `statement` names a failure; `purpose` (by default the same) says
// in its message what the connection was for.
ConnPtr AdminConnect(const std::string& conninfo, const std::string& statement,
                     std::string purpose = "") {
  if (purpose.empty()) purpose = statement;
  ConnPtr conn(PQconnectdb(conninfo.c_str()), &PQfinish);
  if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
    std::string reason = conn ? TrimRight(PQerrorMessage(conn.get())) : "out of memory";
    throw DatabaseError("embedded postgres: cannot connect to " + purpose + ": " + reason,
                        Retry::kRetryable, "", statement);
  }
  return conn;
}

// Runs an admin statement; returns its SQLSTATE ("" on success) unless it is not one of the
// `tolerated` ones, then throws. `statement` names it; `what` (by default the same) says in the
// message what failed.
std::string AdminExec(PGconn* conn, const std::string& sql, const std::string& statement,
                      std::initializer_list<const char*> tolerated = {}, std::string what = "") {
  if (what.empty()) what = statement;
  ResultPtr res(PQexec(conn, sql.c_str()), &PQclear);
  const ExecStatusType status = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return "";
  const char* state = res ? PQresultErrorField(res.get(), PG_DIAG_SQLSTATE) : nullptr;
  const std::string sqlstate = state != nullptr ? state : "";
  for (const char* t : tolerated) {
    if (sqlstate == t) return sqlstate;
  }
  throw DatabaseError("embedded postgres: " + what + " failed: " + TrimRight(PQerrorMessage(conn)),
                      Retry::kFatal, sqlstate, statement);
}

// The database name `name` quoted as an SQL identifier.
std::string QuoteDatabaseName(PGconn* conn, const std::string& name) {
  char* quoted = PQescapeIdentifier(conn, name.c_str(), name.size());
  if (quoted == nullptr) {
    throw InvalidArgument("embedded postgres: bad database name '" + name +
                          "': " + TrimRight(PQerrorMessage(conn)));
  }
  std::string out(quoted);
  PQfreemem(quoted);
  return out;
}

// Admin statements of the embedded cluster (catalog lookups; no table of ours is involved).
// The application role: may log in, nothing more. Owning its database is what lets it create
// and migrate its schemas.
constexpr char kCreateAppRole[] =
    "CREATE ROLE gen_durable_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
    "NOBYPASSRLS";
// A role of that name made by hand with more rights is brought back to these.
constexpr char kAppRoleTooStrong[] =
    "SELECT 1 FROM pg_roles WHERE rolname = 'gen_durable_app' AND (rolsuper OR rolcreatedb OR "
    "rolcreaterole OR rolreplication OR rolbypassrls OR NOT rolcanlogin)";
constexpr char kRestrictAppRole[] =
    "ALTER ROLE gen_durable_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
    "NOBYPASSRLS";
// Whether database $1 belongs to the application role (pg_database is tiny).
constexpr char kDatabaseOwner[] =
    "SELECT r.rolname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = $1";
// Run inside a database left by an older version (owned by the superuser, like its schemas and
// tables): hands the database and every schema, table, view, sequence (not those a column
// owns, which follow their table), routine and type a superuser owns to the application role,
// outside the system schemas and extension members. `objects` lists one row per object of the
// four catalogs, each branch naming its catalog; the filters common to all apply once below
// it. A partition is handed over itself: its automatic dependency on its parent does not make
// it follow (ALTER TABLE ... OWNER does not recurse), and only a dependency of the object
// itself counts (a partitioned table's key column depends internally on its table: objsubid
// 1). Serialized by a transaction lock, so two processes upgrading at once do not both alter
// the same rows.
constexpr char kHandOver[] = R"SQL(
DO $gd$
DECLARE
  r record;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('gen_durable embedded hand-over'));
  EXECUTE format('ALTER DATABASE %I OWNER TO gen_durable_app', current_database());
  FOR r IN
    WITH objects (step, catalog, oid, owner, namespace, kind, name, members) AS (
      SELECT 1, 'pg_namespace'::regclass, n.oid, n.nspowner, n.oid, 'SCHEMA',
             quote_ident(n.nspname), '{e}'::"char"[]
      FROM pg_namespace n
      UNION ALL
      SELECT 2, 'pg_class'::regclass, c.oid, c.relowner, c.relnamespace,
             CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                            WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
                            ELSE 'TABLE' END,
             c.oid::regclass::text,
             CASE c.relkind WHEN 'S' THEN '{e,a,i}' ELSE '{e,i}' END::"char"[]
      FROM pg_class c WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      UNION ALL
      SELECT 3, 'pg_proc'::regclass, p.oid, p.proowner, p.pronamespace, 'ROUTINE',
             p.oid::regprocedure::text, '{e}'
      FROM pg_proc p
      UNION ALL
      SELECT 4, 'pg_type'::regclass, t.oid, t.typowner, t.typnamespace,
             CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.oid::regtype::text, '{e}'
      FROM pg_type t WHERE t.typtype IN ('e', 'd', 'r')
    )
    SELECT o.kind, o.name FROM objects o JOIN pg_namespace n ON n.oid = o.namespace
    WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
      AND o.owner IN (SELECT oid FROM pg_roles WHERE rolsuper)
      AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = o.catalog
                      AND e.objid = o.oid AND e.objsubid = 0 AND e.deptype = ANY (o.members))
    ORDER BY o.step
  LOOP
    EXECUTE format('ALTER %s %s OWNER TO gen_durable_app', r.kind, r.name);
  END LOOP;
END
$gd$)SQL";

}  // namespace

std::string EmbeddedCluster::CreateAppDatabase(const std::string& name) {
  if (name.empty()) throw InvalidArgument("embedded postgres: empty database name");
  ConnPtr conn = AdminConnect(ConnInfo("postgres"), "create_app_database");
  // 42710: it exists; 23505: a concurrent CREATE ROLE won the catalog insert.
  AdminExec(conn.get(), kCreateAppRole, "create_app_role", {"42710", "23505"});
  {
    ResultPtr res(PQexec(conn.get(), kAppRoleTooStrong), &PQclear);
    if (res && PQresultStatus(res.get()) == PGRES_TUPLES_OK && PQntuples(res.get()) > 0) {
      AdminExec(conn.get(), kRestrictAppRole, "restrict_app_role");
    }
  }
  const std::string sql = "CREATE DATABASE " + QuoteDatabaseName(conn.get(), name) +
                          " OWNER gen_durable_app TEMPLATE template0";
  // 42P04: it exists. 23505: a concurrent CREATE of the same name won the catalog insert.
  const std::string created = AdminExec(conn.get(), sql, "create_app_database", {"42P04", "23505"});
  if (!created.empty()) {
    const char* params[] = {name.c_str()};
    ResultPtr res(PQexecParams(conn.get(), kDatabaseOwner, 1, nullptr, params, nullptr, nullptr, 0),
                  &PQclear);
    const bool ours = res && PQresultStatus(res.get()) == PGRES_TUPLES_OK &&
                      PQntuples(res.get()) == 1 &&
                      std::string(PQgetvalue(res.get(), 0, 0)) == kAppRole;
    if (!ours) {
      ConnPtr db = AdminConnect(ConnInfo(name), "hand_over_database");
      AdminExec(db.get(), kHandOver, "hand_over_database");
    }
  }
  return AppConnInfo(name);
}

void EmbeddedCluster::CreateDatabase(const std::string& name) {
  if (name.empty()) throw InvalidArgument("embedded postgres: empty database name");
  ConnPtr conn =
      AdminConnect(ConnInfo("postgres"), "create_database", "create database '" + name + "'");
  // template0 is never connected to, so concurrent creations cannot fail with 55006 (source
  // database in use) as they can with template1.
  const std::string sql =
      "CREATE DATABASE " + QuoteDatabaseName(conn.get(), name) + " TEMPLATE template0";
  // 42P04: it exists. 23505: a concurrent CREATE of the same name won the catalog insert.
  AdminExec(conn.get(), sql, "create_database", {"42P04", "23505"}, "CREATE DATABASE " + name);
}

}  // namespace gen_durable::detail
