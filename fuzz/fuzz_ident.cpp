// Fuzz target: schema names and identifier quoting, everywhere a name reaches SQL text.
//
// The input is a mode byte, then NUL-separated strings (a schema name, a role name, table and
// function names). Properties:
//   - SchemaNameProblem accepts exactly [a-z_][a-z0-9_]{0,62} (checked against std::regex), and
//     its message is one bounded line without control characters;
//   - an accepted name is placed by WithSchema (tables, function bodies, channel literals) as
//     itself in double quotes: the statement keeps its shape (the same quoted tokens and the
//     same number of statements), and its channel literal holds the channel name; a refused
//     name makes WithSchema throw ConfigError, so it never reaches SQL;
//   - QuoteIdent of any string without NUL is one quoted identifier that unquotes to the
//     string; with a NUL it throws InvalidArgument;
//   - GrantStatements, whatever the role name, builds statements that each are one statement:
//     no `;`, comment or dollar quote outside a quoted token, every quote closed, and the
//     grantee is the role name quoted.
#include <cstddef>
#include <cstdint>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "gen_durable/error.hpp"
#include "gen_durable/model/validate.hpp"
#include "gen_durable/pg/connection.hpp"
#include "gen_durable/schema/migrations.hpp"
#include "input.hpp"

namespace gen_durable::fuzz {
namespace {

// SQL text cut into what matters here: the quoted tokens ("..." and '...', quotes doubled
// inside), the statement separators outside them, and whether anything outside them could
// change how the rest is read (a comment, a dollar quote, an unclosed quote).
struct Lexed {
  std::vector<std::string> identifiers;  // contents, unescaped
  std::vector<std::string> literals;     // contents, unescaped
  int semicolons = 0;
  bool suspicious = false;
};

Lexed Lex(std::string_view sql) {
  Lexed out;
  std::size_t i = 0;
  while (i < sql.size()) {
    const char ch = sql[i];
    if (ch == '"' || ch == '\'') {
      std::string content;
      std::size_t j = i + 1;
      bool closed = false;
      while (j < sql.size()) {
        if (sql[j] == ch) {
          if (j + 1 < sql.size() && sql[j + 1] == ch) {
            content += ch;
            j += 2;
            continue;
          }
          closed = true;
          break;
        }
        content += sql[j++];
      }
      if (!closed) {
        out.suspicious = true;
        return out;
      }
      (ch == '"' ? out.identifiers : out.literals).push_back(content);
      i = j + 1;
      continue;
    }
    if (ch == ';') ++out.semicolons;
    if (ch == '$' || ch == '\\' || ch == '\0') out.suspicious = true;
    if (i + 1 < sql.size() &&
        ((ch == '-' && sql[i + 1] == '-') || (ch == '/' && sql[i + 1] == '*'))) {
      out.suspicious = true;
    }
    ++i;
  }
  return out;
}

void CheckSchemaName(const std::string& schema) {
  static const std::regex kValid("[a-z_][a-z0-9_]{0,62}");
  const bool valid = std::regex_match(schema, kValid);
  const std::string problem = detail::SchemaNameProblem(schema);
  Check(problem.empty() == valid, "SchemaNameProblem accepts exactly [a-z_][a-z0-9_]{0,62}");
  Check(problem.size() < 400, "the problem is a short message");
  for (unsigned char ch : problem) {
    Check(ch >= 0x20 && ch != 0x7f, "the problem has no control characters");
  }
  // Two statements, a table, a function body's call and both channel literals.
  const std::string tmpl =
      "SELECT 1 FROM {s}.gd_instances; CREATE FUNCTION {s}.f() RETURNS void LANGUAGE sql "
      "AS 'SELECT pg_notify(''{c}'', ''{k}'')'; SELECT pg_notify('{c}', '{k}')";
  std::string sql;
  try {
    sql = detail::WithSchema(tmpl, schema);
  } catch (const ConfigError&) {
    Check(!valid, "WithSchema refuses only invalid names");
    return;
  }
  Check(valid, "WithSchema refuses every invalid name");
  Check(detail::pg::QuoteIdent(schema) == "\"" + schema + "\"", "a valid name quotes as itself");
  const Lexed lexed = Lex(sql);
  Check(!lexed.suspicious, "WithSchema's output has no comment, dollar quote or open quote");
  Check(lexed.semicolons == 2, "WithSchema keeps the number of statements");
  Check(lexed.identifiers.size() == 2, "the schema is two quoted identifiers");
  for (const auto& ident : lexed.identifiers) Check(ident == schema, "each is the schema");
  Check(lexed.literals.size() == 3, "the body and the two channels are three literals");
  Check(lexed.literals[1] == detail::ChannelFor(schema), "the literal is the channel");
  Check(lexed.literals[2] == detail::ControlChannelFor(schema), "the literal is the channel");
  Check(lexed.literals[0] == "SELECT pg_notify('" + detail::ChannelFor(schema) + "', '" +
                                 detail::ControlChannelFor(schema) + "')",
        "the function body holds the channels");
  Check(detail::ChannelFor(schema).size() <= 63, "a channel is at most 63 bytes");
}

void CheckQuoteIdent(const std::string& ident) {
  std::string quoted;
  try {
    quoted = detail::pg::QuoteIdent(ident);
  } catch (const InvalidArgument&) {
    Check(ident.find('\0') != std::string::npos, "QuoteIdent refuses only a NUL byte");
    return;
  }
  Check(ident.find('\0') == std::string::npos, "QuoteIdent refuses a NUL byte");
  const Lexed lexed = Lex(quoted);
  Check(!lexed.suspicious && lexed.semicolons == 0, "a quoted identifier is one token");
  Check(lexed.identifiers.size() == 1 && lexed.literals.empty(), "one quoted identifier");
  Check(lexed.identifiers[0] == ident, "it unquotes to the identifier");
}

void CheckGrant(FuzzInput& in, const std::string& role) {
  static const char* const kSchemas[] = {"public", "tenant_a", "_x"};
  const std::string schema = in.Pick(kSchemas, 70);
  if (!detail::SchemaNameProblem(schema).empty()) return;  // refused before any grant
  if (role.find('\0') != std::string::npos) {
    try {
      (void)detail::GrantStatements(schema, role, DatabaseRole::kEngine, {}, {});
      Check(false, "a role name with a NUL byte is refused");
    } catch (const InvalidArgument&) {
    }
    return;
  }
  // Names as GrantRole passes them: tables quoted by QuoteIdent, functions as the catalog
  // formats them (quote_ident(name) + identity arguments), here built the same way.
  std::vector<std::string> tables;
  std::vector<std::string> functions;
  const std::size_t n = in.Below(4);
  for (std::size_t i = 0; i < n; ++i) {
    std::string t = in.String(20);
    if (t.find('\0') != std::string::npos) continue;
    tables.push_back(detail::pg::QuoteIdent(t));
    functions.push_back(detail::pg::QuoteIdent(t) + "(text, integer)");
  }
  const DatabaseRole kinds[] = {DatabaseRole::kEngine, DatabaseRole::kProducer,
                                DatabaseRole::kViewer};
  const auto statements =
      detail::GrantStatements(schema, role, kinds[in.Below(3)], tables, functions);
  Check(!statements.empty(), "a grant has statements");
  const std::string grantee = " TO " + detail::pg::QuoteIdent(role);
  for (const auto& statement : statements) {
    const Lexed lexed = Lex(statement);
    Check(!lexed.suspicious, "a grant statement has no comment, dollar quote or open quote");
    Check(lexed.semicolons == 0, "a grant statement is one statement");
    Check(statement.size() >= grantee.size() &&
              statement.compare(statement.size() - grantee.size(), grantee.size(), grantee) == 0,
          "a grant statement ends with the quoted role");
    Check(lexed.identifiers.back() == role, "the last identifier is the role");
  }
}

}  // namespace
}  // namespace gen_durable::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace gen_durable::fuzz;
  FuzzInput in(data, size);
  const std::size_t mode = in.Below(3);
  const std::string text = in.String(80);
  switch (mode) {
    case 0:
      CheckSchemaName(text);
      break;
    case 1:
      CheckQuoteIdent(text);
      CheckSchemaName(text);
      break;
    default:
      CheckGrant(in, text);
      break;
  }
  return 0;
}
