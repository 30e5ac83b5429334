// Failures of the pg layer: reading the server's diagnostic fields, classifying a SQLSTATE or a
// failed connection attempt into a Retry class, and building the DatabaseError that is thrown.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "gen_durable/error.hpp"
#include "gen_durable/util/text.hpp"

struct pg_conn;
struct pg_result;

namespace gen_durable::detail::pg {

// Names ad-hoc SQL in an error message, which has no statement name to show: its first 60
// characters on one line.
std::string AdHocLabel(std::string_view sql);

// A server error's fields as libpq hands them out; nullptr for a field that is absent.
struct RawDiagnostics {
  const char* sqlstate = nullptr;
  const char* primary = nullptr;       // PG_DIAG_MESSAGE_PRIMARY
  const char* detail = nullptr;        // PG_DIAG_MESSAGE_DETAIL
  const char* hint = nullptr;          // PG_DIAG_MESSAGE_HINT
  const char* constraint = nullptr;    // PG_DIAG_CONSTRAINT_NAME
  const char* schema = nullptr;        // PG_DIAG_SCHEMA_NAME
  const char* table = nullptr;         // PG_DIAG_TABLE_NAME
  const char* column = nullptr;        // PG_DIAG_COLUMN_NAME
  const char* full_message = nullptr;  // PQresultErrorMessage: libpq's own errors have no primary
};

// A failed call, before it is classified.
struct CallFailure {
  std::string sqlstate;
  std::string message;
  DatabaseDiagnostics diagnostics;
  std::string statement;         // the statement's name; "" for ad-hoc SQL and BEGIN/COMMIT
  std::string label;             // what the exception message names: a statement or its SQL
  bool in_commit = false;        // a lost connection leaves a COMMIT's outcome unknown
  bool connection_lost = false;  // lost even if libpq has not noticed (PQstatus still OK)
};

// The SQLSTATE, message and diagnostics of a server error. The message is the primary message
// on one line, followed by the detail in parentheses (it names the conflicting key of a unique
// violation: worth keeping); without a primary message (an error libpq made up itself, such as
// a lost connection) it is the full message.
CallFailure FromDiagnostics(const RawDiagnostics& raw);

// The same for a failed result, or the connection's error when libpq produced no result (out
// of memory, nothing could be sent) or the result did not report an error.
CallFailure Describe(const pg_result* res, const pg_conn* conn);

// A failure of the connection itself (no server error): `message` from libpq, "connection
// lost" when it is empty, labelled `label`.
CallFailure ConnectionFailure(std::string_view message, std::string_view label, bool in_commit);

// How `failure` may be retried: a lost connection (`connection_bad`, or the failure says so) is
// retryable unless a COMMIT may have completed unseen (in doubt); otherwise `retry_if_alive`,
// or the SQLSTATE's class.
Retry RetryOf(const CallFailure& failure, bool connection_bad,
              std::optional<Retry> retry_if_alive = {});

// The exception for `failure`: "label: message" (or the message alone without a label).
DatabaseError ToDatabaseError(const CallFailure& failure, Retry retry);

// Classifies a SQLSTATE: class 08 (connection), 57P01-57P03 (shutdown), class 53 (resources),
// 40001 (serialization), 40P01 (deadlock), 55P03 (lock not available), 57014 (cancelled: the
// session's statement_timeout, or an operator's pg_cancel_backend) and "" (no answer from the
// server) are retryable; everything else is fatal.
Retry ClassifySqlState(std::string_view sqlstate);

// How a failed connection attempt (libpq's message) can be retried: a server that is down,
// starting up or out of connection slots may be back soon (kRetryable); an unknown database or
// role, a refused password or an invalid connection string will not be (kFatal). libpq gives no
// SQLSTATE for a failed connection, so this reads the server's (English) message.
Retry ClassifyConnectFailure(std::string_view message);

}  // namespace gen_durable::detail::pg
