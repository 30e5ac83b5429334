// The schema, as an ordered list of migrations. Each index says which statement it serves.
#include "gen_durable/schema/migrations.hpp"

#include <fmt/format.h>

namespace gen_durable::detail {

namespace {

// Version 1: instances, nodes.
constexpr const char* kV1 = R"SQL(
CREATE TABLE {s}.gd_instances (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  fsm              text NOT NULL,
  fsm_version      integer NOT NULL DEFAULT 1,
  queue            text NOT NULL DEFAULT 'default',
  step             text NOT NULL,
  status           text NOT NULL DEFAULT 'runnable'
                   CHECK (status IN ('scheduled', 'runnable', 'executing', 'awaiting_signal',
                                     'awaiting_children', 'done', 'failed', 'cancelled')),
  state            jsonb NOT NULL DEFAULT '{}',
  result           jsonb,
  last_error       text,
  attempt          integer NOT NULL DEFAULT 0,
  max_attempts     integer,
  priority         integer NOT NULL DEFAULT 0,
  eligible_at      timestamptz NOT NULL DEFAULT now(),
  -- Ownership of a claim: the node id and a per-row claim counter. Every outcome commit is
  -- guarded by (status = 'executing', locked_by, lease_seq), so a late outcome from a lost
  -- lease, even on the same node, commits nothing.
  locked_by        text,
  lease_seq        bigint NOT NULL DEFAULT 0,
  lease_expires_at timestamptz,
  parent_id        bigint,
  partition_key    text,
  unique_key       text,
  inserted_at      timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  completed_at     timestamptz
) WITH (fillfactor = 85);

-- claim: the picker's ordered scan of one queue's ready rows. Only runnable rows are in it,
-- so the index stays small however many rows are terminal or executing.
CREATE INDEX gd_instances_claim ON {s}.gd_instances (queue, priority, eligible_at, id)
  WHERE status = 'runnable';

-- promote_due: rows waiting for a future eligible_at. Keeping them out of the claim index means
-- a deep backlog of future work costs the picker nothing.
CREATE INDEX gd_instances_scheduled ON {s}.gd_instances (queue, eligible_at)
  WHERE status = 'scheduled';

-- reap_expired: executing rows by lease expiry.
CREATE INDEX gd_instances_lease ON {s}.gd_instances (lease_expires_at)
  WHERE status = 'executing';

-- heartbeat / release_claims / reclaim_node: executing rows by owner.
CREATE INDEX gd_instances_owner ON {s}.gd_instances (locked_by)
  WHERE status = 'executing';

-- gc_sweep: terminal rows by completion time.
CREATE INDEX gd_instances_terminal ON {s}.gd_instances (completed_at)
  WHERE status IN ('done', 'failed', 'cancelled');

-- children_of / show: a parent's children.
CREATE INDEX gd_instances_parent ON {s}.gd_instances (parent_id)
  WHERE parent_id IS NOT NULL;

-- list_recent with a status filter.
CREATE INDEX gd_instances_status ON {s}.gd_instances (status, id);

-- Live engines: each heartbeats its row; a restarted node finds its dead predecessor here.
CREATE TABLE {s}.gd_nodes (
  id            text PRIMARY KEY,
  engine        text NOT NULL,
  host          text NOT NULL,
  pid           integer NOT NULL,
  proc_start    text NOT NULL DEFAULT '',
  queues        jsonb NOT NULL DEFAULT '{}',
  started_at    timestamptz NOT NULL DEFAULT now(),
  heartbeat_at  timestamptz NOT NULL DEFAULT now()
);
)SQL";

}  // namespace

const std::vector<Migration>& Migrations() {
  static const std::vector<Migration> kAll = {
      {1, "instances and nodes", kV1},
  };
  return kAll;
}

int LatestSchemaVersion() { return Migrations().back().version; }

std::string WithSchema(const std::string& sql, const std::string& schema) {
  const std::string quoted = pg::QuoteIdent(schema);
  std::string out;
  out.reserve(sql.size() + 64);
  for (std::size_t i = 0; i < sql.size(); ++i) {
    if (sql.compare(i, 3, "{s}") == 0) {
      out += quoted;
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
  auto r = conn.Exec(WithSchema("SELECT COALESCE(max(version), 0) FROM {s}.gd_schema_migrations",
                                schema));
  return r.Int(0, 0);
}

int Migrate(pg::Connection& conn, const std::string& schema) {
  // Up to date: touch nothing, so roles without CREATE privilege can run engines and clients.
  if (CurrentSchemaVersion(conn, schema) >= LatestSchemaVersion()) return 0;
  pg::Params lock;
  lock.Add("gen_durable.migrate." + schema);
  conn.Exec("BEGIN");
  try {
    // Serializes concurrent migrators: the second waits here, then sees the versions applied.
    conn.ExecParams("SELECT pg_advisory_xact_lock(hashtext($1))", lock);
    conn.Exec(WithSchema(
        "CREATE SCHEMA IF NOT EXISTS {s};"
        "CREATE TABLE IF NOT EXISTS {s}.gd_schema_migrations ("
        "  version integer PRIMARY KEY, description text NOT NULL,"
        "  applied_at timestamptz NOT NULL DEFAULT now())",
        schema));
    auto r = conn.Exec(WithSchema(
        "SELECT COALESCE(max(version), 0) FROM {s}.gd_schema_migrations", schema));
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

}  // namespace gen_durable::detail
