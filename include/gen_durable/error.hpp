// Errors and results: expected domain outcomes are values, infrastructure failures are exceptions.
//
// Two channels, as in abseil and libpqxx:
//   * `Result<T>` carries an expected domain outcome — `kDuplicate`, `kNoTarget`, `kNotFound`,
//     `kTimeout` — that a caller handles as data. Functions that return one say so in their
//     comment.
//   * Exceptions rooted at `gen_durable::Error` report infrastructure failures. Each says whether
//     the caller may retry (`Retry::kRetryable`: the database was unreachable or a transaction was
//     rolled back by a conflict), must not (`kFatal`: bad input, bad configuration, a SQL error),
//     or cannot know (`kInDoubt`: the connection died during COMMIT; the write may or may not
//     have happened, so blindly retrying a non-idempotent write is wrong).
//
//   gen_durable::Result<std::int64_t> id = client.Insert(...);
//   if (!id) { if (id.code() == gen_durable::ErrorCode::kDuplicate) ...; }
//   else UseId(*id);
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace gen_durable {

// Whether an operation that threw may be retried by its caller.
enum class Retry {
  kRetryable,  // nothing was written; trying again later is safe
  kInDoubt,    // the outcome is unknown (connection lost during commit)
  kFatal,      // trying again will fail the same way
};

// Root of every exception the library throws.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, Retry retry = Retry::kFatal)
      : std::runtime_error(what), retry_(retry) {}
  Retry retry() const noexcept { return retry_; }
  bool retryable() const noexcept { return retry_ == Retry::kRetryable; }

 private:
  Retry retry_;
};

// What the server reported about a failure beyond its message: PostgreSQL's diagnostic fields
// (libpq's PG_DIAG_*). A field the server did not send is "".
struct DatabaseDiagnostics {
  std::string detail;      // the secondary message, e.g. the conflicting key of a unique violation
  std::string hint;        // a suggestion of what to do about it
  std::string constraint;  // the constraint that was violated
  std::string schema;      // the schema, table and column the error concerns
  std::string table;
  std::string column;
};

// A failure reported by PostgreSQL or by the connection to it.
class DatabaseError : public Error {
 public:
  DatabaseError(const std::string& what, Retry retry, std::string sqlstate, std::string statement,
                DatabaseDiagnostics diagnostics = {})
      : Error(what, retry),
        sqlstate_(std::move(sqlstate)),
        statement_(std::move(statement)),
        diagnostics_(std::move(diagnostics)) {}
  // The five-character SQLSTATE, or "" when the connection failed before the server answered.
  const std::string& sqlstate() const noexcept { return sqlstate_; }
  // The name of the statement that failed ("" for ad-hoc SQL).
  const std::string& statement() const noexcept { return statement_; }
  // The violated constraint's name, e.g. to tell two unique indexes apart ("" when none).
  const std::string& constraint() const noexcept { return diagnostics_.constraint; }
  // The server's detail message ("" when none); what() already ends with it in parentheses.
  const std::string& detail() const noexcept { return diagnostics_.detail; }
  // Every diagnostic field the server sent.
  const DatabaseDiagnostics& diagnostics() const noexcept { return diagnostics_; }

 private:
  std::string sqlstate_;
  std::string statement_;
  DatabaseDiagnostics diagnostics_;
};

// An invalid option value or an inconsistent configuration. Never retryable.
class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& what) : Error(what, Retry::kFatal) {}
};

// Starting an engine whose name is already taken by a running engine in this process.
class AlreadyStarted : public ConfigError {
 public:
  explicit AlreadyStarted(const std::string& name)
      : ConfigError("already_started: an engine named '" + name + "' is already running"),
        name_(name) {}
  const std::string& name() const noexcept { return name_; }

 private:
  std::string name_;
};

// Invalid input to an API call (malformed JSON, unknown machine, bad option value).
class InvalidArgument : public Error {
 public:
  explicit InvalidArgument(const std::string& what) : Error(what, Retry::kFatal) {}
};

// Expected domain outcomes, returned as values inside a `Result`.
enum class ErrorCode {
  kDuplicate,  // an instance with this unique key already exists in its scope
  kNoTarget,   // the addressed instance does not exist or is terminal
  kNotFound,   // no row matched
  kTimeout,    // a wait ended before what it waited for happened (Client::Wait)
};

// Returns the stable lower-case name of `code` ("duplicate", "no_target", "not_found",
// "timeout").
const char* ErrorCodeName(ErrorCode code) noexcept;

// A failed domain outcome: a code and a human-readable message.
struct DomainError {
  ErrorCode code;
  std::string message;
};

// Either a value or a `DomainError`. Check with `ok()` / `operator bool` before dereferencing.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}            // NOLINT(google-explicit-constructor)
  Result(DomainError error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const noexcept { return std::holds_alternative<T>(v_); }
  explicit operator bool() const noexcept { return ok(); }

  // Precondition: ok().
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // Precondition: !ok().
  const DomainError& error() const { return std::get<DomainError>(v_); }
  ErrorCode code() const { return error().code; }

 private:
  std::variant<T, DomainError> v_;
};

}  // namespace gen_durable
