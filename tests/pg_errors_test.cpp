// The pg layer's failures without a server: SQLSTATE classes, the message and diagnostic fields
// of a server error, and the DatabaseError built from a failed call
// (src/gen_durable/pg/errors.hpp).
#include <gtest/gtest.h>

#include "gen_durable/pg/errors.hpp"

namespace gen_durable::detail::pg {
namespace {

TEST(PgErrors, ClassifiesSqlStates) {
  for (const char* retryable : {"", "08006", "08003", "53300", "53100", "57P01", "57P02", "57P03",
                                "40001", "40P01", "55P03", "57014"}) {
    EXPECT_EQ(ClassifySqlState(retryable), Retry::kRetryable) << retryable;
  }
  for (const char* fatal :
       {"23505", "23503", "42P01", "42601", "22P02", "26000", "57P04", "40002", "XX000", "GD404"}) {
    EXPECT_EQ(ClassifySqlState(fatal), Retry::kFatal) << fatal;
  }
}

TEST(PgErrors, ClassifiesFailedConnections) {
  EXPECT_EQ(ClassifyConnectFailure("FATAL:  database \"x\" does not exist"), Retry::kFatal);
  EXPECT_EQ(ClassifyConnectFailure("invalid connection option \"bogus\""), Retry::kFatal);
  EXPECT_EQ(ClassifyConnectFailure("Connection refused"), Retry::kRetryable);
  EXPECT_EQ(ClassifyConnectFailure("FATAL:  the database system is starting up"),
            Retry::kRetryable);
}

TEST(PgErrors, OneLineCollapsesWhitespace) {
  EXPECT_EQ(OneLine("server closed the connection unexpectedly\n\tThis probably means\n"),
            "server closed the connection unexpectedly This probably means");
  EXPECT_EQ(OneLine("  a \n\n b  "), "a b");
  EXPECT_EQ(OneLine(""), "");
}

TEST(PgErrors, AdHocLabelIsShortAndOnOneLine) {
  EXPECT_EQ(AdHocLabel("SELECT\n  1"), "SELECT 1");
  const std::string label = AdHocLabel(std::string(100, 'x'));
  EXPECT_EQ(label.size(), 60u);
  EXPECT_EQ(label.substr(57), "...");
}

RawDiagnostics UniqueViolation() {
  RawDiagnostics raw;
  raw.sqlstate = "23505";
  raw.primary = "duplicate key value violates unique constraint \"gd_instances_unique\"";
  raw.detail = "Key (unique_hold)=(k1) already exists.";
  raw.constraint = "gd_instances_unique";
  raw.schema = "gd";
  raw.table = "gd_instances";
  raw.full_message = "ERROR:  duplicate key value ...\nDETAIL:  Key ...\n";
  return raw;
}

TEST(PgErrors, DiagnosticsKeepEveryField) {
  const CallFailure f = FromDiagnostics(UniqueViolation());
  EXPECT_EQ(f.sqlstate, "23505");
  EXPECT_EQ(f.message,
            "duplicate key value violates unique constraint \"gd_instances_unique\" "
            "(Key (unique_hold)=(k1) already exists.)");
  EXPECT_EQ(f.diagnostics.detail, "Key (unique_hold)=(k1) already exists.");
  EXPECT_EQ(f.diagnostics.constraint, "gd_instances_unique");
  EXPECT_EQ(f.diagnostics.schema, "gd");
  EXPECT_EQ(f.diagnostics.table, "gd_instances");
  EXPECT_EQ(f.diagnostics.column, "");
  EXPECT_EQ(f.diagnostics.hint, "");
}

TEST(PgErrors, WithoutAPrimaryMessageTheFullMessageIsUsed) {
  RawDiagnostics raw;
  raw.full_message = "server closed the connection unexpectedly\n\tThis probably means\n";
  raw.detail = "ignored without a primary message";
  const CallFailure f = FromDiagnostics(raw);
  EXPECT_EQ(f.sqlstate, "");
  EXPECT_EQ(f.message, "server closed the connection unexpectedly This probably means");
}

TEST(PgErrors, DatabaseErrorCarriesTheDiagnostics) {
  CallFailure f = FromDiagnostics(UniqueViolation());
  f.statement = "gd_insert_batch";
  f.label = "gd_insert_batch";
  const DatabaseError e = ToDatabaseError(f, RetryOf(f, /*connection_bad=*/false));
  EXPECT_EQ(e.retry(), Retry::kFatal);
  EXPECT_EQ(e.sqlstate(), "23505");
  EXPECT_EQ(e.statement(), "gd_insert_batch");
  EXPECT_EQ(e.constraint(), "gd_instances_unique");
  EXPECT_EQ(e.detail(), "Key (unique_hold)=(k1) already exists.");
  EXPECT_EQ(e.diagnostics().table, "gd_instances");
  EXPECT_EQ(std::string(e.what()), "gd_insert_batch: " + f.message);
}

TEST(PgErrors, RetryOfALostConnection) {
  CallFailure f;
  f.sqlstate = "23505";  // whatever the server said last
  EXPECT_EQ(RetryOf(f, /*connection_bad=*/true), Retry::kRetryable);
  f.in_commit = true;
  EXPECT_EQ(RetryOf(f, /*connection_bad=*/true), Retry::kInDoubt);
  EXPECT_EQ(RetryOf(f, /*connection_bad=*/false), Retry::kFatal);
  EXPECT_EQ(RetryOf(f, /*connection_bad=*/false, Retry::kRetryable), Retry::kRetryable);
  const CallFailure lost = ConnectionFailure("", "COMMIT", /*in_commit=*/true);
  EXPECT_EQ(lost.message, "connection lost");
  EXPECT_EQ(RetryOf(lost, /*connection_bad=*/false), Retry::kInDoubt);
  EXPECT_EQ(std::string(ToDatabaseError(lost, Retry::kInDoubt).what()), "COMMIT: connection lost");
}

}  // namespace
}  // namespace gen_durable::detail::pg
