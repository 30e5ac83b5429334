// The connection settings a program takes from its users (ConnectionOptions' `database` and
// `schema`), checked and shown before any connection: a libpq connection string without its
// password, for logs and messages, and whether a schema name is valid.
//
//   if (gen_durable::ConninfoHasPassword(url)) warn();
//   spdlog::info("database: {}", gen_durable::RedactConninfo(url));
//   if (auto problem = gen_durable::SchemaNameProblem(name); !problem.empty()) refuse(problem);
#pragma once

#include <string>
#include <string_view>

namespace gen_durable {

// Whether `conninfo` (a "key=value" string or a URI) carries a secret: a `password` or
// `sslpassword` keyword (key=value form or URI query parameter) or a password in a URI's user
// info (`user:secret@`). Works on strings libpq cannot parse too, as far as their shape allows.
bool ConninfoHasPassword(const std::string& conninfo);

// `conninfo` with each such secret replaced by "********", in the same form (a URI stays a
// URI). A string libpq accepts still parses to the same keywords after redaction, the secrets
// aside.
std::string RedactConninfo(const std::string& conninfo);

// `text` (a message about `conninfo`, e.g. libpq's error, which may quote all or part of it)
// with every secret of `conninfo` masked: the whole string where it appears, each secret, and
// each double-quoted fragment of the text that is part of a secret.
std::string RedactSecrets(const std::string& text, const std::string& conninfo);

// What is wrong with `schema` as ConnectionOptions::schema, or "" when it is valid
// ([a-z_][a-z0-9_]{0,62}). Connecting with an invalid one throws ConfigError with this text; a
// program can check a name earlier, e.g. while parsing its command line.
std::string SchemaNameProblem(std::string_view schema);

}  // namespace gen_durable
