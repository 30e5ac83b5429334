// The thin RAII layer over libpq: connections, prepared statements, pipelines, LISTEN.
// Results and their row reader are in result.hpp, failures and their classes in errors.hpp.
//
// Nothing above this layer includes <libpq-fe.h>. A `Connection` is used by one thread at a time.
// Statements are described by a `Statement` (a stable name and its SQL) and prepared lazily,
// once per connection, the first time they run. Every failure throws `DatabaseError`, classified
// by SQLSTATE into retryable / in doubt / fatal (see error.hpp); after a connection-level failure
// `broken()` is true and the owner reconnects (see `Reconnect`).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gen_durable/error.hpp"
#include "gen_durable/pg/errors.hpp"
#include "gen_durable/pg/result.hpp"

struct pg_conn;
struct pg_result;

namespace gen_durable::detail::pg {

// A named SQL statement. `name` must be unique per connection and stable for the SQL text.
struct Statement {
  std::string name;
  std::string sql;
};

// Positional text-format parameters ($1, $2, ...). std::nullopt is SQL NULL. Add(string_view)
// throws InvalidArgument for text containing a NUL byte, which libpq would silently truncate.
class Params {
 public:
  Params() = default;
  Params& Add(std::string_view v);
  Params& Add(const std::string& v) { return Add(std::string_view(v)); }
  Params& Add(const char* v) { return Add(std::string_view(v)); }
  Params& Add(std::int64_t v);
  Params& Add(int v) { return Add(static_cast<std::int64_t>(v)); }
  Params& Add(bool v);
  Params& Add(double v);
  Params& AddNull();
  template <typename T>
  Params& Add(const std::optional<T>& v) {
    return v ? Add(*v) : AddNull();
  }
  std::size_t size() const { return values_.size(); }
  const std::vector<std::optional<std::string>>& values() const { return values_; }

 private:
  std::vector<std::optional<std::string>> values_;
};

// A NOTIFY received on a LISTENing connection.
struct Notification {
  std::string channel;
  std::string payload;
};

class Connection {
 public:
  // Opens a connection (blocking). `conninfo` is a libpq connection string or URI. Sets
  // application_name to `application_name` when not empty (overriding one in `conninfo`), then
  // each libpq keyword of `params` (overriding the same keyword in `conninfo`).
  // Throws DatabaseError (kRetryable, with an empty SQLSTATE, on any connection failure).
  static std::unique_ptr<Connection> Open(
      const std::string& conninfo, const std::string& application_name = "",
      const std::vector<std::pair<std::string, std::string>>& params = {});
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs SQL text with no parameters through the simple query protocol (several statements
  // allowed); returns the last result. Throws DatabaseError; a lost connection is kRetryable,
  // except during a lone COMMIT/END inside a transaction, where it is kInDoubt.
  Result Exec(std::string_view sql);

  // Runs ad-hoc SQL with parameters (unnamed statement, not cached).
  Result ExecParams(std::string_view sql, const Params& params);

  // Runs a named statement, preparing it on this connection first if needed. When the server
  // lost the prepared statement (SQLSTATE 26000, e.g. after DISCARD ALL) it is prepared again
  // and retried once outside a transaction; inside one the transaction is already aborted, so
  // this throws kRetryable and the next attempt prepares afresh.
  Result Execute(const Statement& stmt, const Params& params = {});

  // Runs the statements in one round trip using libpq pipeline mode, in order, and returns one
  // Result per statement. When `transaction` is true the batch is wrapped in BEGIN/COMMIT and
  // applies atomically: on any error everything is rolled back and the first error is thrown
  // (a connection lost after COMMIT was sent throws with Retry::kInDoubt). When the connection
  // is already inside a transaction (e.g. a borrowed one), the batch joins it instead: no
  // BEGIN/COMMIT is sent and an error leaves that transaction aborted for its owner to roll back.
  // Without `transaction` the server still runs the batch as one implicit transaction that
  // commits at the pipeline's sync, so an error rolls back the statements before it as well.
  std::vector<Result> Pipeline(const std::vector<std::pair<const Statement*, Params>>& batch,
                               bool transaction);

  // Issues LISTEN for `channel` (an identifier; quoted by this function).
  void Listen(const std::string& channel);
  // Waits up to `timeout` for notifications (returns early on the first one) and returns all
  // that are queued. Returns an empty vector on timeout. Throws DatabaseError when the
  // connection breaks.
  std::vector<Notification> WaitForNotifications(std::chrono::milliseconds timeout);
  // The same, also returning (empty) as soon as `interrupt_fd` is readable; the caller drains
  // it. For a thread that must stop promptly while it waits.
  std::vector<Notification> WaitForNotifications(std::chrono::milliseconds timeout,
                                                 int interrupt_fd);

  // True once a connection-level failure was seen; the connection must be replaced.
  bool broken() const { return broken_; }
  // The server's backend pid (for tests that terminate a backend).
  int backend_pid() const;
  // The raw libpq handle, for transactional enqueue on a caller's connection.
  pg_conn* raw() const { return conn_; }

  // Wraps a caller-owned PGconn without taking ownership (used to run our statements inside
  // the caller's own transaction). The returned object never closes `conn` and leaves no state
  // on it: statements run unnamed instead of being prepared, since another wrapper of the same
  // PGconn would otherwise collide with our names (42P05) and abort the caller's transaction.
  static std::unique_ptr<Connection> Borrow(pg_conn* conn);

 private:
  struct PipelineAttempt;  // the outcome of one pipeline round trip (pipeline.cpp)

  explicit Connection(pg_conn* conn, bool owned);
  // Throws the DatabaseError that `res` describes (the connection's error when null) and frees
  // `res`. `sql` labels the message when `statement` is "" (ad-hoc SQL); `in_commit` makes a
  // lost connection kInDoubt; `retry_if_alive` overrides the SQLSTATE's classification.
  [[noreturn]] void ThrowError(pg_result* res, const std::string& statement,
                               std::string_view sql = {}, bool in_commit = false,
                               std::optional<Retry> retry_if_alive = {});
  // Classifies and throws `failure`; a lost connection marks this one broken.
  [[noreturn]] void Raise(const CallFailure& failure, std::optional<Retry> retry_if_alive = {});
  // Throws kRetryable (and marks the connection broken) if the server already hung up.
  void CheckAlive(std::string_view what);
  void EnsurePrepared(const Statement& stmt);
  bool IsPrepared(std::string_view name) const;
  void ForgetPrepared(std::string_view name);
  // Replaces `prepared_` with the server's view, after it lost statements behind our back.
  void ResyncPrepared();
  PipelineAttempt RunPipeline(const std::vector<std::pair<const Statement*, Params>>& batch,
                              bool wrap);

  pg_conn* conn_;
  bool owned_;
  bool broken_ = false;
  std::vector<std::string> prepared_;  // names prepared on this connection (small, linear scan)
};

// Quotes an identifier for SQL ("my schema" -> "\"my schema\""). Throws InvalidArgument on NUL.
std::string QuoteIdent(std::string_view ident);

}  // namespace gen_durable::detail::pg
