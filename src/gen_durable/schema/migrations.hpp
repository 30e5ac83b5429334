// Versioned schema migrations: the DDL of every table and index, applied in order.
#pragma once

#include <string>
#include <vector>

#include "gen_durable/options.hpp"
#include "gen_durable/pg/connection.hpp"

namespace gen_durable::detail {

struct Migration {
  int version;
  const char* description;
  // DDL with "{s}" standing for the quoted schema name.
  const char* sql;
};

// All migrations, ascending by version.
const std::vector<Migration>& Migrations();
int LatestSchemaVersion();

// Applies the missing migrations in one transaction under an advisory lock (concurrent callers
// wait, then find nothing to do). Returns how many were applied. Throws DatabaseError.
int Migrate(pg::Connection& conn, const std::string& schema);
// The highest applied version (0 when the schema has none).
int CurrentSchemaVersion(pg::Connection& conn, const std::string& schema);

// The LISTEN/NOTIFY channel of a schema: "gen_durable.<schema>", hashed when too long.
std::string ChannelFor(const std::string& schema);
// The control channel of `schema`: a payload-free wake-up after an operator request (pause,
// resume, scale, cancel) was written to the tables; engines read the tables, never the payload
// (anyone who can connect can notify; docs/security.md, "Control plane").
std::string ControlChannelFor(const std::string& schema);
// The wait channel of `schema`: the id of an instance that ended while a caller waited for it
// (Client::Wait). A hint only: the waiter reads the row again.
std::string WaitChannelFor(const std::string& schema);

// The statements that grant `role` what `as` needs on `schema` (docs/security.md): `tables`
// are the schema's table names and `functions` its non-trigger functions as
// name(identity arguments), both already quoted where needed. Every name is quoted; nothing of
// `role` or `schema` can end a statement.
std::vector<std::string> GrantStatements(const std::string& schema, const std::string& role,
                                         DatabaseRole as, const std::vector<std::string>& tables,
                                         const std::vector<std::string>& functions,
                                         const std::vector<std::string>& sequences = {});
// Grants `role` (which must exist) what `as` needs on `schema`, in one transaction. Run as the
// owner of the schema's objects. Throws InvalidArgument for a bad or unknown role name.
void GrantRole(pg::Connection& conn, const std::string& schema, const std::string& role,
               DatabaseRole as);

// Replaces every "{s}" in `sql` with the quoted `schema`, every "{c}" with its channel and
// every "{k}" with its control channel and every "{w}" with its wait channel (each escaped for a
// string literal).
std::string WithSchema(const std::string& sql, const std::string& schema);

}  // namespace gen_durable::detail
