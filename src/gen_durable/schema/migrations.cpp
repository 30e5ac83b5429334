// The migration runner: the ordered list of schema versions (their DDL is in versions_*.cpp and
// version_6.cpp; each index says which statement it serves), applying the missing ones, the
// schema's channels, and the grants of the database roles.
#include "gen_durable/schema/migrations.hpp"

#include <fmt/format.h>

#include "gen_durable/error.hpp"
#include "gen_durable/model/validate.hpp"
#include "gen_durable/schema/versions.hpp"

namespace gen_durable::detail {

const std::vector<Migration>& Migrations() {
  using namespace ddl;
  static const std::vector<Migration> kAll = {
      {1, "instances and nodes", kV1},
      {2, "signals, children, unique and partition keys, rate limits, SQL functions", kV2},
      {3, "hot-path indexes and autovacuum of the instances table", kV3},
      {4, "queue state, cancellation of running instances, history", kV4},
      {5,
       "contention: rate-limit reservations, partition slots under a key lock, reclaim "
       "only of nodes proven dead, dedup records kept until GC, consumed signals off the "
       "wake's path",
       kV5},
      {6,
       "security: pinned search_path in every function, gd_insert and gd_signal SECURITY "
       "DEFINER with the client's limits and no EXECUTE for PUBLIC, scale requests in "
       "gd_control behind a payload-free control channel; nodes record their lease ttl, "
       "claims count their committed steps",
       kV6},
      {7,
       "cluster-wide concurrency limit per queue: gd_queues.global_limit, gd_queue_room, "
       "executing rows indexed by queue",
       kV7},
      {8, "periodic schedules: gd_schedules", kV8},
      {9, "waiting for a result: rows a caller waits on notify the wait channel when they end",
       kV9},
  };
  return kAll;
}

int LatestSchemaVersion() { return Migrations().back().version; }

namespace {
// A NOTIFY channel name (an identifier, at most 63 bytes): `prefix` + schema, or + a hash of a
// long schema name.
std::string ChannelName(const std::string& prefix, const std::string& schema) {
  std::string channel = prefix + schema;
  if (channel.size() > 63) {
    // FNV-1a: stable across processes and builds (std::hash is not).
    std::uint64_t h = 1469598103934665603ULL;
    for (unsigned char ch : schema) h = (h ^ ch) * 1099511628211ULL;
    channel = fmt::format("{}{:016x}", prefix, h);
  }
  return channel;
}

// `channel` for use inside an SQL string literal: any quote doubled.
std::string InLiteral(const std::string& channel) {
  std::string out;
  for (char ch : channel) {
    out += ch;
    if (ch == '\'') out += '\'';
  }
  return out;
}
}  // namespace

std::string ChannelFor(const std::string& schema) { return ChannelName("gen_durable.", schema); }

std::string ControlChannelFor(const std::string& schema) {
  return ChannelName("gen_durable_ctl.", schema);
}

std::string WaitChannelFor(const std::string& schema) {
  return ChannelName("gen_durable_wait.", schema);
}

std::string WithSchema(const std::string& sql, const std::string& schema) {
  // Options are checked when a client or engine is made; this keeps every other path (and any
  // future one) from placing an unchecked name in a statement or a function body.
  if (auto problem = SchemaNameProblem(schema); !problem.empty()) throw ConfigError(problem);
  const std::string quoted = pg::QuoteIdent(schema);
  const std::string channel = InLiteral(ChannelFor(schema));
  const std::string control = InLiteral(ControlChannelFor(schema));
  const std::string wait = InLiteral(WaitChannelFor(schema));
  std::string out;
  out.reserve(sql.size() + 64);
  for (std::size_t i = 0; i < sql.size(); ++i) {
    if (sql.compare(i, 3, "{s}") == 0) {
      out += quoted;
      i += 2;
    } else if (sql.compare(i, 3, "{c}") == 0) {
      out += channel;
      i += 2;
    } else if (sql.compare(i, 3, "{k}") == 0) {
      out += control;
      i += 2;
    } else if (sql.compare(i, 3, "{w}") == 0) {
      out += wait;
      i += 2;
    } else {
      out += sql[i];
    }
  }
  return out;
}

int CurrentSchemaVersion(pg::Connection& conn, const std::string& schema) {
  pg::Params p;
  p.Add(schema);
  auto exists = conn.ExecParams(
      "SELECT 1 FROM information_schema.tables WHERE table_schema = $1 "
      "AND table_name = 'gd_schema_migrations'",
      p);
  if (exists.rows() == 0) return 0;
  auto r = conn.Exec(
      WithSchema("SELECT COALESCE(max(version), 0) FROM {s}.gd_schema_migrations", schema));
  return r.Int(0, 0);
}

int Migrate(pg::Connection& conn, const std::string& schema) {
  // Up to date: touch nothing, so roles without CREATE privilege can run engines and clients.
  if (CurrentSchemaVersion(conn, schema) >= LatestSchemaVersion()) return 0;
  pg::Params lock;
  lock.Add("gen_durable.migrate." + schema);
  conn.Exec("BEGIN");
  try {
    // DDL on a large table, or waiting for another node's migration, may rightly outlast the
    // session's statement timeout.
    conn.Exec("SET LOCAL statement_timeout = 0");
    // Serializes concurrent migrators: the second waits here, then sees the versions applied.
    conn.ExecParams("SELECT pg_advisory_xact_lock(hashtext($1))", lock);
    conn.Exec(
        WithSchema("CREATE SCHEMA IF NOT EXISTS {s};"
                   "CREATE TABLE IF NOT EXISTS {s}.gd_schema_migrations ("
                   "  version integer PRIMARY KEY, description text NOT NULL,"
                   "  applied_at timestamptz NOT NULL DEFAULT now())",
                   schema));
    auto r = conn.Exec(
        WithSchema("SELECT COALESCE(max(version), 0) FROM {s}.gd_schema_migrations", schema));
    const int current = r.Int(0, 0);
    int applied = 0;
    for (const auto& m : Migrations()) {
      if (m.version <= current) continue;
      conn.Exec(WithSchema(m.sql, schema));
      pg::Params p;
      p.Add(m.version).Add(m.description);
      conn.ExecParams(
          WithSchema("INSERT INTO {s}.gd_schema_migrations (version, description) VALUES ($1, $2)",
                     schema),
          p);
      ++applied;
    }
    conn.Exec("COMMIT");
    return applied;
  } catch (...) {
    if (!conn.broken()) {
      try {
        conn.Exec("ROLLBACK");
      } catch (...) {
      }
    }
    throw;
  }
}

std::vector<std::string> GrantStatements(const std::string& schema, const std::string& role,
                                         DatabaseRole as, const std::vector<std::string>& tables,
                                         const std::vector<std::string>& functions,
                                         const std::vector<std::string>& sequences) {
  const std::string who = pg::QuoteIdent(role);
  const std::string s = pg::QuoteIdent(schema);
  auto list = [&](const std::vector<std::string>& names) {
    std::string out;
    for (const auto& name : names) {
      if (!out.empty()) out += ", ";
      out += s + "." + name;
    }
    return out;
  };
  std::vector<std::string> out = {fmt::format("GRANT USAGE ON SCHEMA {} TO {}", s, who)};
  switch (as) {
    case DatabaseRole::kProducer:
      out.push_back(fmt::format(
          "GRANT EXECUTE ON FUNCTION {0}.gd_insert(text, jsonb, text, text, integer, bigint, "
          "text, text, integer, integer), {0}.gd_signal(bigint, text, text, jsonb, text) TO {1}",
          s, who));
      break;
    case DatabaseRole::kViewer:
      if (!tables.empty()) {
        out.push_back(fmt::format("GRANT SELECT ON TABLE {} TO {}", list(tables), who));
      }
      break;
    case DatabaseRole::kEngine:
      if (!tables.empty()) {
        out.push_back(fmt::format("GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {} TO {}",
                                  list(tables), who));
      }
      if (!functions.empty()) {
        out.push_back(fmt::format("GRANT EXECUTE ON FUNCTION {} TO {}", list(functions), who));
      }
      // (gd_control_seq: a scale request takes its place in the order of requests)
      if (!sequences.empty()) {
        out.push_back(
            fmt::format("GRANT USAGE, SELECT ON SEQUENCE {} TO {}", list(sequences), who));
      }
      break;
  }
  return out;
}

void GrantRole(pg::Connection& conn, const std::string& schema, const std::string& role,
               DatabaseRole as) {
  if (auto problem = NameProblem("grant: role", role, kMaxIdentifierBytes); !problem.empty()) {
    throw InvalidArgument(problem);
  }
  pg::Params p;
  p.Add(role);
  if (conn.ExecParams("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1", p).rows() == 0) {
    throw InvalidArgument(fmt::format("grant: there is no role '{}' (create it first)", role));
  }
  pg::Params ns;
  ns.Add(schema);
  // The schema's tables and functions as they are now, so that tables added by later versions
  // are covered by running the grant again after a migration. Only objects of gd_instances'
  // owner: in a schema others may create in (public), a look-alike of theirs is not granted.
  // tables: pg_class_relname_nsp_index; functions: pg_proc_proname_args_nsp_index.
  auto tables = conn.ExecParams(
      "SELECT c.relname FROM pg_catalog.pg_class c "
      "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
      "JOIN pg_catalog.pg_class o ON o.relnamespace = n.oid AND o.relname = 'gd_instances' "
      "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname LIKE 'gd\\_%' "
      "AND c.relowner = o.relowner ORDER BY 1",
      ns);
  auto functions = conn.ExecParams(
      "SELECT pg_catalog.quote_ident(p.proname) || '(' || "
      "pg_catalog.pg_get_function_identity_arguments(p.oid) || ')' "
      "FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
      "JOIN pg_catalog.pg_class o ON o.relnamespace = n.oid AND o.relname = 'gd_instances' "
      "WHERE n.nspname = $1 AND p.proname LIKE 'gd\\_%' "
      "AND p.prorettype <> 'pg_catalog.trigger'::pg_catalog.regtype "
      "AND p.proowner = o.relowner ORDER BY 1",
      ns);
  std::vector<std::string> table_names;
  for (int i = 0; i < tables.rows(); ++i)
    table_names.push_back(pg::QuoteIdent(std::string(tables.Text(i, 0))));
  std::vector<std::string> function_names;
  for (int i = 0; i < functions.rows(); ++i) function_names.emplace_back(functions.Text(i, 0));
  // sequences the engine's statements call nextval on (an identity column's needs no grant)
  auto sequences = conn.ExecParams(
      "SELECT c.relname FROM pg_catalog.pg_class c "
      "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
      "JOIN pg_catalog.pg_class o ON o.relnamespace = n.oid AND o.relname = 'gd_instances' "
      "WHERE n.nspname = $1 AND c.relkind = 'S' AND c.relname LIKE 'gd\\_%' "
      "AND c.relowner = o.relowner ORDER BY 1",
      ns);
  std::vector<std::string> sequence_names;
  for (int i = 0; i < sequences.rows(); ++i) {
    sequence_names.push_back(pg::QuoteIdent(std::string(sequences.Text(i, 0))));
  }
  conn.Exec("BEGIN");
  try {
    for (const auto& statement :
         GrantStatements(schema, role, as, table_names, function_names, sequence_names)) {
      conn.Exec(statement);
    }
    conn.Exec("COMMIT");
  } catch (...) {
    if (!conn.broken()) {
      try {
        conn.Exec("ROLLBACK");
      } catch (...) {
      }
    }
    throw;
  }
}

}  // namespace gen_durable::detail
