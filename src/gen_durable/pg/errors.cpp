// Failures of the pg layer: diagnostics, retry classes, DatabaseError.
#include "gen_durable/pg/errors.hpp"

#include <fmt/format.h>
#include <libpq-fe.h>

namespace gen_durable::detail::pg {

std::string AdHocLabel(std::string_view sql) {
  constexpr std::size_t kMaxLabel = 60;
  std::string label = OneLine(sql);
  if (label.size() > kMaxLabel) label = label.substr(0, kMaxLabel - 3) + "...";
  return label;
}

CallFailure FromDiagnostics(const RawDiagnostics& raw) {
  auto text = [](const char* field) { return std::string(field != nullptr ? field : ""); };
  CallFailure out;
  out.sqlstate = text(raw.sqlstate);
  out.message = OneLine(raw.primary != nullptr ? raw.primary : text(raw.full_message));
  if (raw.primary != nullptr && raw.detail != nullptr && *raw.detail != '\0') {
    out.message += " (" + OneLine(raw.detail) + ")";
  }
  out.diagnostics.detail = text(raw.detail);
  out.diagnostics.hint = text(raw.hint);
  out.diagnostics.constraint = text(raw.constraint);
  out.diagnostics.schema = text(raw.schema);
  out.diagnostics.table = text(raw.table);
  out.diagnostics.column = text(raw.column);
  return out;
}

CallFailure Describe(const PGresult* res, const PGconn* conn) {
  CallFailure out;
  if (res != nullptr) {
    const ExecStatusType status = PQresultStatus(res);
    if (status == PGRES_FATAL_ERROR || status == PGRES_NONFATAL_ERROR ||
        status == PGRES_BAD_RESPONSE) {
      auto field = [res](int code) { return PQresultErrorField(res, code); };
      RawDiagnostics raw;
      raw.sqlstate = field(PG_DIAG_SQLSTATE);
      raw.primary = field(PG_DIAG_MESSAGE_PRIMARY);
      raw.detail = field(PG_DIAG_MESSAGE_DETAIL);
      raw.hint = field(PG_DIAG_MESSAGE_HINT);
      raw.constraint = field(PG_DIAG_CONSTRAINT_NAME);
      raw.schema = field(PG_DIAG_SCHEMA_NAME);
      raw.table = field(PG_DIAG_TABLE_NAME);
      raw.column = field(PG_DIAG_COLUMN_NAME);
      raw.full_message = PQresultErrorMessage(res);
      out = FromDiagnostics(raw);
    } else {
      out.message = fmt::format("unexpected result status {}", PQresStatus(status));
    }
  }
  if (out.message.empty()) out.message = OneLine(PQerrorMessage(conn));
  if (out.message.empty()) out.message = "unknown error";
  return out;
}

CallFailure ConnectionFailure(std::string_view message, std::string_view label, bool in_commit) {
  CallFailure out;
  out.message = OneLine(message);
  if (out.message.empty()) out.message = "connection lost";
  out.label = std::string(label);
  out.in_commit = in_commit;
  out.connection_lost = true;
  return out;
}

Retry RetryOf(const CallFailure& failure, bool connection_bad,
              std::optional<Retry> retry_if_alive) {
  if (failure.connection_lost || connection_bad) {
    // Whatever the server said last, the session and any transaction in it are gone: the work
    // can be redone on a new connection, unless a COMMIT may have completed unseen.
    return failure.in_commit ? Retry::kInDoubt : Retry::kRetryable;
  }
  return retry_if_alive.value_or(ClassifySqlState(failure.sqlstate));
}

DatabaseError ToDatabaseError(const CallFailure& failure, Retry retry) {
  std::string what = failure.label.empty() ? failure.message
                                           : fmt::format("{}: {}", failure.label, failure.message);
  return DatabaseError(what, retry, failure.sqlstate, failure.statement, failure.diagnostics);
}

Retry ClassifySqlState(std::string_view sqlstate) {
  // No SQLSTATE means the server never answered: the connection failed underneath us.
  if (sqlstate.empty()) return Retry::kRetryable;
  if (sqlstate.starts_with("08") || sqlstate.starts_with("53")) return Retry::kRetryable;
  if (sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03" || sqlstate == "40001" ||
      sqlstate == "40P01" || sqlstate == "55P03" || sqlstate == "57014") {
    return Retry::kRetryable;
  }
  return Retry::kFatal;
}

Retry ClassifyConnectFailure(std::string_view message) {
  // Causes that waiting does not cure; everything else (no server on the socket, a refused or
  // reset connection, "the database system is starting up", "too many clients") may pass.
  constexpr std::string_view kFatal[] = {
      "does not exist",             // database or role (3D000, 28000)
      "authentication failed",      // 28P01
      "no pg_hba.conf entry",       // 28000
      "invalid connection option",  // a malformed connection string
      "missing \"=\" after",
      "invalid URI",
      "in URI:",
      "invalid percent-encoded token",
      "invalid integer value",
      "is not a valid",
      "permission denied for database",  // 42501: CONNECT privilege
  };
  for (std::string_view fatal : kFatal) {
    if (message.find(fatal) != std::string_view::npos) return Retry::kFatal;
  }
  return Retry::kRetryable;
}

}  // namespace gen_durable::detail::pg
