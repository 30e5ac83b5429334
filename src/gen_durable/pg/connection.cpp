// The thin RAII layer over libpq: the only file that includes <libpq-fe.h>.
#include "gen_durable/pg/connection.hpp"

#include <fmt/format.h>
#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstring>
#include <system_error>

#include "gen_durable/pg/conninfo.hpp"

namespace gen_durable::detail::pg {
namespace {

// The protocol carries at most this many parameters; libpq refuses more.
constexpr std::size_t kMaxParams = 65535;

// libpq messages end in newlines and continue on tab-indented lines ("server closed the
// connection unexpectedly\n\tThis probably means..."); one line reads better in an exception.
std::string OneLine(std::string_view text) {
  std::string out;
  bool pending_space = false;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      pending_space = true;
      continue;
    }
    if (pending_space && !out.empty()) out += ' ';
    pending_space = false;
    out += c;
  }
  return out;
}

// Names ad-hoc SQL in an error message, which has no statement name to show.
std::string AdHocLabel(std::string_view sql) {
  constexpr std::size_t kMaxLabel = 60;
  std::string label = OneLine(sql);
  if (label.size() > kMaxLabel) label = label.substr(0, kMaxLabel - 3) + "...";
  return label;
}

bool Succeeded(const PGresult* res) {
  if (res == nullptr) return false;
  switch (PQresultStatus(res)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_EMPTY_QUERY:
      return true;
    default:
      return false;
  }
}

std::string_view SqlState(const PGresult* res) {
  const char* state = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  return state != nullptr ? state : "";
}

// 26000 invalid_sql_statement_name: the server no longer has a statement we prepared.
bool IsStale(const PGresult* res) {
  return res != nullptr && PQresultStatus(res) == PGRES_FATAL_ERROR && SqlState(res) == "26000";
}

struct ErrorText {
  std::string sqlstate;
  std::string message;
};

// The SQLSTATE and primary message of a failed result, or the connection's error when libpq
// produced no result (out of memory, nothing could be sent).
ErrorText Describe(const PGresult* res, const PGconn* conn) {
  ErrorText out;
  if (res != nullptr) {
    const ExecStatusType status = PQresultStatus(res);
    if (status == PGRES_FATAL_ERROR || status == PGRES_NONFATAL_ERROR ||
        status == PGRES_BAD_RESPONSE) {
      out.sqlstate = std::string(SqlState(res));
      // Errors made up by libpq itself (a lost connection) carry no primary message field.
      const char* primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
      out.message = OneLine(primary != nullptr ? primary : PQresultErrorMessage(res));
      // The detail names the conflicting key of a unique violation: worth keeping.
      const char* detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
      if (primary != nullptr && detail != nullptr && *detail != '\0') {
        out.message += " (" + OneLine(detail) + ")";
      }
    } else {
      out.message = fmt::format("unexpected result status {}", PQresStatus(status));
    }
  }
  if (out.message.empty()) out.message = OneLine(PQerrorMessage(conn));
  if (out.message.empty()) out.message = "unknown error";
  return out;
}

// Text-format parameter pointers for libpq; they point into `params` and die with it.
std::vector<const char*> ParamValues(const Params& params) {
  if (params.size() > kMaxParams) {
    throw InvalidArgument(fmt::format("{} statement parameters exceed the protocol limit of {}",
                                      params.size(), kMaxParams));
  }
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const std::optional<std::string>& v : params.values()) {
    values.push_back(v ? v->c_str() : nullptr);
  }
  return values;
}

// True for COMMIT/END (with any trailing words), whose loss makes a transaction's fate unknown.
bool IsCommit(std::string_view sql) {
  std::size_t begin = 0;
  while (begin < sql.size() && std::isspace(static_cast<unsigned char>(sql[begin]))) ++begin;
  std::size_t end = begin;
  while (end < sql.size() && std::isalpha(static_cast<unsigned char>(sql[end]))) ++end;
  std::string word;
  for (char c : sql.substr(begin, end - begin)) {
    word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return word == "commit" || word == "end";
}

struct NotifyDeleter {
  void operator()(PGnotify* n) const { PQfreemem(n); }
};

std::vector<Notification> TakeNotifications(PGconn* conn) {
  std::vector<Notification> out;
  while (std::unique_ptr<PGnotify, NotifyDeleter> n{PQnotifies(conn)}) {
    out.push_back(Notification{n->relname, n->extra != nullptr ? n->extra : ""});
  }
  return out;
}

// Our connections never surface notices; client_min_messages=warning keeps most of them from
// being sent at all, and this drops the rest instead of letting libpq print them to stderr.
void IgnoreNotice(void* /*arg*/, const char* /*message*/) {}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Params

Params& Params::Add(std::string_view v) {
  // libpq takes parameters as C strings, so everything after a NUL would vanish silently.
  if (v.find('\0') != std::string_view::npos) {
    throw InvalidArgument(fmt::format("statement parameter ${} contains a NUL byte", size() + 1));
  }
  values_.emplace_back(std::in_place, v);
  return *this;
}

Params& Params::Add(std::int64_t v) {
  values_.emplace_back(fmt::format("{}", v));
  return *this;
}

Params& Params::Add(bool v) {
  values_.emplace_back(v ? "true" : "false");
  return *this;
}

Params& Params::Add(double v) {
  // fmt would write "nan"/"-nan"/"inf"; these are the spellings float8in accepts for sure.
  if (std::isnan(v)) {
    values_.emplace_back("NaN");
  } else if (std::isinf(v)) {
    values_.emplace_back(v > 0 ? "Infinity" : "-Infinity");
  } else {
    values_.emplace_back(fmt::format("{}", v));  // shortest text that round-trips
  }
  return *this;
}

Params& Params::AddNull() {
  values_.emplace_back(std::nullopt);
  return *this;
}

// ---------------------------------------------------------------------------------------------
// Result

Result::Result(pg_result* res) : res_(res) {}

Result::Result(Result&& other) noexcept : res_(std::exchange(other.res_, nullptr)) {}

Result& Result::operator=(Result&& other) noexcept {
  if (this != &other) {
    PQclear(res_);
    res_ = std::exchange(other.res_, nullptr);
  }
  return *this;
}

Result::~Result() { PQclear(res_); }

int Result::rows() const { return res_ != nullptr ? PQntuples(res_) : 0; }

int Result::columns() const { return res_ != nullptr ? PQnfields(res_) : 0; }

std::int64_t Result::affected() const {
  if (res_ == nullptr) return 0;
  // "" for commands that report no row count (DDL, LISTEN), which count as 0.
  std::string_view text = PQcmdTuples(res_);
  std::int64_t n = 0;
  std::from_chars(text.data(), text.data() + text.size(), n);
  return n;
}

namespace {

// libpq answers out-of-range cells with NULL pointers and a notice; fail loudly instead.
void CheckCell(const PGresult* res, int row, int col) {
  const int rows = res != nullptr ? PQntuples(res) : 0;
  const int cols = res != nullptr ? PQnfields(res) : 0;
  if (row < 0 || row >= rows || col < 0 || col >= cols) {
    throw InvalidArgument(
        fmt::format("result cell ({}, {}) is outside a {}x{} result", row, col, rows, cols));
  }
}

std::string ColumnName(const PGresult* res, int col) {
  const char* name = PQfname(res, col);
  return name != nullptr ? name : fmt::format("#{}", col);
}

}  // namespace

bool Result::IsNull(int row, int col) const {
  CheckCell(res_, row, col);
  return PQgetisnull(res_, row, col) == 1;
}

std::string_view Result::Text(int row, int col) const {
  if (IsNull(row, col)) return {};
  return std::string_view(PQgetvalue(res_, row, col),
                          static_cast<std::size_t>(PQgetlength(res_, row, col)));
}

std::int64_t Result::Int64(int row, int col) const {
  if (IsNull(row, col)) {
    throw InvalidArgument(
        fmt::format("column {} is NULL, expected an integer", ColumnName(res_, col)));
  }
  std::string_view text = Text(row, col);
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) {
    throw InvalidArgument(
        fmt::format("column {}: '{}' is not a 64-bit integer", ColumnName(res_, col), text));
  }
  return v;
}

double Result::Double(int row, int col) const {
  if (IsNull(row, col)) {
    throw InvalidArgument(
        fmt::format("column {} is NULL, expected a number", ColumnName(res_, col)));
  }
  std::string_view text = Text(row, col);
  double v = 0;
  // from_chars accepts Postgres's "NaN", "Infinity" and "-Infinity" (case-insensitively).
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) {
    throw InvalidArgument(
        fmt::format("column {}: '{}' is not a number", ColumnName(res_, col), text));
  }
  return v;
}

bool Result::Bool(int row, int col) const {
  if (IsNull(row, col)) {
    throw InvalidArgument(
        fmt::format("column {} is NULL, expected a boolean", ColumnName(res_, col)));
  }
  std::string_view text = Text(row, col);
  if (text == "t" || text == "true") return true;
  if (text == "f" || text == "false") return false;
  throw InvalidArgument(
      fmt::format("column {}: '{}' is not a boolean", ColumnName(res_, col), text));
}

std::optional<std::string> Result::OptString(int row, int col) const {
  if (IsNull(row, col)) return std::nullopt;
  return String(row, col);
}

std::optional<std::int64_t> Result::OptInt64(int row, int col) const {
  if (IsNull(row, col)) return std::nullopt;
  return Int64(row, col);
}

int Result::ColumnIndex(const char* name) const {
  return res_ != nullptr ? PQfnumber(res_, name) : -1;
}

// ---------------------------------------------------------------------------------------------
// Connection

struct Connection::Failure {
  std::string sqlstate;
  std::string message;
  std::string statement;         // the statement's name; "" for ad-hoc SQL and BEGIN/COMMIT
  std::string label;             // what the exception message names: a statement or its SQL
  bool in_commit = false;        // a lost connection leaves a COMMIT's outcome unknown
  bool connection_lost = false;  // lost even if libpq has not noticed (PQstatus still OK)
};

struct Connection::PipelineAttempt {
  std::vector<Result> results;
  std::optional<Failure> failure;
  bool stale_statement = false;  // the first error was 26000 on a statement we had prepared
};

Connection::Connection(pg_conn* conn, bool owned) : conn_(conn), owned_(owned) {}

Connection::~Connection() {
  if (owned_ && conn_ != nullptr) PQfinish(conn_);
}

Retry ClassifyConnectFailure(std::string_view message) {
  // Causes that waiting does not cure; everything else (no server on the socket, a refused or
  // reset connection, "the database system is starting up", "too many clients") may pass.
  constexpr std::string_view kFatal[] = {
      "does not exist",                // database or role (3D000, 28000)
      "authentication failed",         // 28P01
      "no pg_hba.conf entry",          // 28000
      "invalid connection option",     // a malformed connection string
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

std::unique_ptr<Connection> Connection::Open(
    const std::string& conninfo, const std::string& application_name,
    const std::vector<std::pair<std::string, std::string>>& params) {
  // expand_dbname makes libpq parse `conninfo` (a "key=value" string or a URI, or a bare
  // database name) as if its keywords were given here; keywords after it override its values.
  std::vector<const char*> keys = {"dbname"};
  std::vector<const char*> values = {conninfo.c_str()};
  if (!application_name.empty()) {
    keys.push_back("application_name");
    values.push_back(application_name.c_str());
  }
  for (const auto& [key, value] : params) {
    keys.push_back(key.c_str());
    values.push_back(value.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* raw = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  if (raw == nullptr) {
    throw DatabaseError("connect: out of memory", Retry::kRetryable, "", "");
  }
  if (PQstatus(raw) != CONNECTION_OK) {
    const std::string message = OneLine(PQerrorMessage(raw));
    PQfinish(raw);
    // libpq quotes a connection string it cannot parse, or the token it stopped at, which may
    // be (part of) the password: the message goes to logs and terminals, the password must not.
    throw DatabaseError("connect: " + RedactSecrets(message, conninfo),
                        ClassifyConnectFailure(message), "", "");
  }
  PQsetNoticeProcessor(raw, IgnoreNotice, nullptr);
  std::unique_ptr<Connection> conn(new Connection(raw, /*owned=*/true));
  conn->Exec("SET client_min_messages = warning");
  return conn;
}

std::unique_ptr<Connection> Connection::Borrow(pg_conn* conn) {
  if (conn == nullptr) throw InvalidArgument("Connection::Borrow: null PGconn");
  return std::unique_ptr<Connection>(new Connection(conn, /*owned=*/false));
}

int Connection::backend_pid() const { return PQbackendPID(conn_); }

void Connection::Raise(const Failure& failure, std::optional<Retry> retry_if_alive) {
  Retry retry;
  if (failure.connection_lost || PQstatus(conn_) == CONNECTION_BAD) {
    // Whatever the server said last, the session and any transaction in it are gone: the work
    // can be redone on a new connection, unless a COMMIT may have completed unseen.
    broken_ = true;
    retry = failure.in_commit ? Retry::kInDoubt : Retry::kRetryable;
  } else {
    retry = retry_if_alive.value_or(ClassifySqlState(failure.sqlstate));
  }
  std::string what = failure.label.empty() ? failure.message
                                           : fmt::format("{}: {}", failure.label, failure.message);
  throw DatabaseError(what, retry, failure.sqlstate, failure.statement);
}

void Connection::ThrowError(pg_result* res, const std::string& statement, std::string_view sql,
                            bool in_commit, std::optional<Retry> retry_if_alive) {
  Result owned(res);  // freed however we leave
  ErrorText text = Describe(res, conn_);
  if (res != nullptr) {
    const ExecStatusType status = PQresultStatus(res);
    if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) {
      // The protocol is now mid-COPY, which this layer does not drive; only a new connection
      // gets back to a known state.
      broken_ = true;
      retry_if_alive = Retry::kFatal;
    }
  }
  Failure failure;
  failure.sqlstate = std::move(text.sqlstate);
  failure.message = std::move(text.message);
  failure.statement = statement;
  failure.label = statement.empty() ? AdHocLabel(sql) : statement;
  failure.in_commit = in_commit;
  Raise(failure, retry_if_alive);
}

void Connection::CheckAlive(std::string_view what) {
  // A server that hung up while we were idle (pg_terminate_backend, a restart) is only noticed
  // when its socket is read. Noticing it before sending means nothing was sent, so a failure is
  // plainly retryable rather than, for a COMMIT, in doubt.
  if (PQconsumeInput(conn_) == 1 && PQstatus(conn_) == CONNECTION_OK) return;
  Failure failure;
  failure.message = OneLine(PQerrorMessage(conn_));
  if (failure.message.empty()) failure.message = "connection lost";
  failure.label = std::string(what);
  failure.connection_lost = true;
  Raise(failure);
}

bool Connection::IsPrepared(std::string_view name) const {
  return std::find(prepared_.begin(), prepared_.end(), name) != prepared_.end();
}

void Connection::ForgetPrepared(std::string_view name) {
  prepared_.erase(std::remove(prepared_.begin(), prepared_.end(), name), prepared_.end());
}

void Connection::ResyncPrepared() {
  Result names = Exec("SELECT name FROM pg_catalog.pg_prepared_statements");
  prepared_.clear();
  for (int i = 0; i < names.rows(); ++i) prepared_.push_back(names.String(i, 0));
}

void Connection::EnsurePrepared(const Statement& stmt) {
  if (IsPrepared(stmt.name)) return;
  PGresult* res = PQprepare(conn_, stmt.name.c_str(), stmt.sql.c_str(), 0, nullptr);
  if (!Succeeded(res)) ThrowError(res, stmt.name);
  PQclear(res);
  prepared_.push_back(stmt.name);
}

Result Connection::Exec(std::string_view sql) {
  const std::string text(sql);
  const bool in_commit = IsCommit(sql) && PQtransactionStatus(conn_) == PQTRANS_INTRANS;
  if (in_commit) CheckAlive("COMMIT");
  PGresult* res = PQexec(conn_, text.c_str());
  if (!Succeeded(res)) ThrowError(res, "", sql, in_commit);
  return Result(res);
}

Result Connection::ExecParams(std::string_view sql, const Params& params) {
  const std::string text(sql);
  const std::vector<const char*> values = ParamValues(params);
  PGresult* res = PQexecParams(conn_, text.c_str(), static_cast<int>(values.size()), nullptr,
                               values.data(), nullptr, nullptr, /*resultFormat=*/0);
  if (!Succeeded(res)) ThrowError(res, "", sql);
  return Result(res);
}

Result Connection::Execute(const Statement& stmt, const Params& params) {
  const std::vector<const char*> values = ParamValues(params);
  const int n = static_cast<int>(values.size());
  if (!owned_) {
    PGresult* res = PQexecParams(conn_, stmt.sql.c_str(), n, nullptr, values.data(), nullptr,
                                 nullptr, /*resultFormat=*/0);
    if (!Succeeded(res)) ThrowError(res, stmt.name);
    return Result(res);
  }
  // The empty name is libpq's unnamed statement, which every ad-hoc query overwrites.
  if (stmt.name.empty()) throw InvalidArgument("Execute: statement has no name: " + stmt.sql);
  for (int attempt = 0;; ++attempt) {
    EnsurePrepared(stmt);
    PGresult* res = PQexecPrepared(conn_, stmt.name.c_str(), n, values.data(), nullptr, nullptr,
                                   /*resultFormat=*/0);
    if (Succeeded(res)) return Result(res);
    if (!IsStale(res)) ThrowError(res, stmt.name);
    // Someone ran DISCARD ALL / DEALLOCATE (a pooler, an operator). Outside a transaction the
    // failed call changed nothing, so prepare again and retry; inside one, the transaction is
    // aborted, but retrying it will now prepare afresh.
    ForgetPrepared(stmt.name);
    if (attempt > 0 || PQtransactionStatus(conn_) != PQTRANS_IDLE) {
      ThrowError(res, stmt.name, {}, false, Retry::kRetryable);
    }
    PQclear(res);
    ResyncPrepared();  // others were most likely dropped too; avoid one failure per name
  }
}

std::vector<Result> Connection::Pipeline(
    const std::vector<std::pair<const Statement*, Params>>& batch, bool transaction) {
  for (const auto& [stmt, params] : batch) {
    if (stmt == nullptr) throw InvalidArgument("Pipeline: null statement");
    if (owned_ && stmt->name.empty()) {
      throw InvalidArgument("Pipeline: statement has no name: " + stmt->sql);
    }
    if (params.size() > kMaxParams) ParamValues(params);  // throws the same message as Execute
  }
  if (batch.empty()) return {};
  CheckAlive("pipeline");
  const bool was_idle = PQtransactionStatus(conn_) == PQTRANS_IDLE;
  // Inside the caller's transaction, BEGIN would only warn and COMMIT would commit their work.
  const bool wrap = transaction && was_idle;
  for (int attempt = 0;; ++attempt) {
    PipelineAttempt outcome = RunPipeline(batch, wrap);
    if (!outcome.failure) return std::move(outcome.results);
    if (outcome.stale_statement) {
      // As in Execute: everything was rolled back, so the whole batch can simply run again.
      if (attempt == 0 && was_idle && !broken_ && PQstatus(conn_) == CONNECTION_OK &&
          PQtransactionStatus(conn_) == PQTRANS_IDLE) {
        ResyncPrepared();
        continue;
      }
      Raise(*outcome.failure, Retry::kRetryable);
    }
    Raise(*outcome.failure);
  }
}

Connection::PipelineAttempt Connection::RunPipeline(
    const std::vector<std::pair<const Statement*, Params>>& batch, bool wrap) {
  enum class Kind { kBegin, kPrepare, kStatement, kCommit };
  struct Entry {
    Kind kind;
    const Statement* stmt = nullptr;
    std::size_t index = 0;          // into `batch`, for kStatement
    bool assumed_prepared = false;  // kStatement: prepared by an earlier call, not this batch
  };

  PipelineAttempt out;
  out.results.resize(batch.size());
  const bool was_idle = PQtransactionStatus(conn_) == PQTRANS_IDLE;

  if (PQenterPipelineMode(conn_) != 1) {
    if (PQstatus(conn_) != CONNECTION_BAD) {
      // A connection with a query still in flight; only a borrowed one can get here.
      throw DatabaseError("pipeline: cannot enter pipeline mode: " + OneLine(PQerrorMessage(conn_)),
                          Retry::kFatal, "", "");
    }
    out.failure = Failure{"", OneLine(PQerrorMessage(conn_)), "", "pipeline", false, true};
    return out;
  }

  // --- Send everything, then one sync. ---
  std::vector<Entry> entries;
  std::vector<std::string_view> preparing;  // names this batch prepares
  bool commit_sent = false;
  auto send_query = [this](const char* sql) {
    return PQsendQueryParams(conn_, sql, 0, nullptr, nullptr, nullptr, nullptr, 0) == 1;
  };
  bool sent = true;
  if (wrap) {
    sent = send_query("BEGIN");
    entries.push_back({Kind::kBegin});
  }
  for (std::size_t i = 0; sent && i < batch.size(); ++i) {
    const Statement& stmt = *batch[i].first;
    const std::vector<const char*> values = ParamValues(batch[i].second);
    const int n = static_cast<int>(values.size());
    if (!owned_) {
      sent = PQsendQueryParams(conn_, stmt.sql.c_str(), n, nullptr, values.data(), nullptr, nullptr,
                               0) == 1;
      entries.push_back({Kind::kStatement, &stmt, i, false});
      continue;
    }
    const bool known = IsPrepared(stmt.name);
    if (!known && std::find(preparing.begin(), preparing.end(), stmt.name) == preparing.end()) {
      sent = PQsendPrepare(conn_, stmt.name.c_str(), stmt.sql.c_str(), 0, nullptr) == 1;
      entries.push_back({Kind::kPrepare, &stmt});
      preparing.push_back(stmt.name);
      if (!sent) break;
    }
    sent =
        PQsendQueryPrepared(conn_, stmt.name.c_str(), n, values.data(), nullptr, nullptr, 0) == 1;
    entries.push_back({Kind::kStatement, &stmt, i, known});
  }
  if (sent && wrap) {
    sent = send_query("COMMIT");
    entries.push_back({Kind::kCommit});
    commit_sent = sent;
  }
  // In blocking mode PQpipelineSync flushes; PQflush makes sure nothing is left behind should
  // that ever change (libpq 17 added a sync that does not flush).
  if (sent) sent = PQpipelineSync(conn_) == 1 && PQflush(conn_) == 0;
  if (!sent) {
    // Our arguments are validated, so libpq can only refuse for a dead connection or lack of
    // memory; either way this connection's pipeline state is unknown and it must be replaced.
    // A queued COMMIT may have reached the server.
    broken_ = true;
    out.failure = Failure{"", OneLine(PQerrorMessage(conn_)), "", "pipeline", commit_sent, true};
    return out;
  }

  // --- Read one result per entry, then the sync. ---
  bool lost = false;
  bool commit_ok = false;
  // Any error the server reported for an entry before COMMIT proves that the COMMIT was not
  // executed (the server skips the rest of a pipeline after an error).
  bool server_error_before_commit = false;
  std::size_t read = 0;
  for (const Entry& entry : entries) {
    PGresult* raw = PQgetResult(conn_);
    if (raw == nullptr) {
      lost = true;
      break;
    }
    Result res(raw);
    // Each entry's results end with a NULL; consume it so the next call moves on.
    while (PGresult* extra = PQgetResult(conn_)) PQclear(extra);
    ++read;
    const ExecStatusType status = PQresultStatus(raw);
    if (status == PGRES_PIPELINE_ABORTED) {
      // Skipped because of an earlier error, which is the one reported.
    } else if (Succeeded(raw)) {
      switch (entry.kind) {
        case Kind::kPrepare:
          prepared_.push_back(entry.stmt->name);  // only now is it known to exist
          break;
        case Kind::kStatement:
          out.results[entry.index] = std::move(res);
          break;
        case Kind::kCommit:
          // A COMMIT of an aborted transaction succeeds as ROLLBACK; errors abort the pipeline
          // before the COMMIT runs, so reaching here means it committed.
          commit_ok = true;
          break;
        case Kind::kBegin:
          break;
      }
    } else {
      ErrorText text = Describe(raw, conn_);
      if (entry.kind != Kind::kCommit && !text.sqlstate.empty()) {
        server_error_before_commit = true;
      }
      if (!out.failure) {
        Failure failure;
        failure.sqlstate = text.sqlstate;
        failure.message = std::move(text.message);
        switch (entry.kind) {
          case Kind::kBegin:
            failure.label = "BEGIN";
            break;
          case Kind::kCommit:
            failure.label = "COMMIT";
            break;
          case Kind::kPrepare:
          case Kind::kStatement:
            failure.statement = entry.stmt->name;
            failure.label = entry.stmt->name;
            break;
        }
        if (entry.kind == Kind::kStatement && entry.assumed_prepared && text.sqlstate == "26000") {
          out.stale_statement = true;
          ForgetPrepared(entry.stmt->name);
        }
        out.failure = std::move(failure);
      }
    }
    if (PQstatus(conn_) == CONNECTION_BAD) {
      lost = true;
      break;
    }
  }
  bool synced = false;
  if (!lost) {
    PGresult* sync = PQgetResult(conn_);
    synced = sync != nullptr && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
    PQclear(sync);
    // Out of step with what we sent (or lost): the session's state is unknown from here on.
    if (!synced || PQexitPipelineMode(conn_) != 1) lost = true;
  }

  if (lost) broken_ = true;
  if (!out.failure) {
    // Complete: every result arrived and the work committed (explicitly, or implicitly at the
    // sync). The connection may be unusable now, but the batch itself succeeded.
    if (read == entries.size() && (synced || (wrap && commit_ok))) return out;
    out.failure = Failure{"", OneLine(PQerrorMessage(conn_)), "", "pipeline"};
    if (out.failure->message.empty()) out.failure->message = "connection lost";
  }
  if (lost) {
    out.failure->connection_lost = true;
    // Without a COMMIT (transaction=false) the implicit commit at the sync is just as unseen;
    // we report that as retryable, like a lone autocommit statement whose connection drops.
    out.failure->in_commit = wrap && commit_sent && !commit_ok && !server_error_before_commit;
    return out;
  }
  if (was_idle) {
    // An error inside BEGIN..COMMIT leaves the transaction open and aborted (the COMMIT was
    // skipped), so end it here; a transaction the caller had open is theirs to end.
    const PGTransactionStatusType tx = PQtransactionStatus(conn_);
    if (tx == PQTRANS_INTRANS || tx == PQTRANS_INERROR) {
      PGresult* rollback = PQexec(conn_, "ROLLBACK");
      if (!Succeeded(rollback)) broken_ = true;
      PQclear(rollback);
    }
  }
  return out;
}

void Connection::Listen(const std::string& channel) { Exec("LISTEN " + QuoteIdent(channel)); }

std::vector<Notification> Connection::WaitForNotifications(std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + std::max(timeout, std::chrono::milliseconds(0));
  constexpr std::string_view kWhat = "wait for notifications";
  CheckAlive(kWhat);  // also moves anything already received into libpq's queue
  for (;;) {
    std::vector<Notification> got = TakeNotifications(conn_);
    if (!got.empty()) return got;
    const auto remaining =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (remaining <= 0) return {};
    const int socket = PQsocket(conn_);
    if (socket < 0) CheckAlive(kWhat);
    pollfd pfd{socket, POLLIN, 0};
    const int rc = poll(&pfd, 1, static_cast<int>(std::min<std::int64_t>(remaining, INT_MAX)));
    if (rc < 0) {
      if (errno == EINTR) continue;
      Failure failure;
      failure.message = fmt::format("poll: {}", std::strerror(errno));
      failure.label = std::string(kWhat);
      failure.connection_lost = true;
      Raise(failure);
    }
    // Readable may mean a notification, some other message, or the server hanging up.
    if (rc > 0) CheckAlive(kWhat);
  }
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

std::string QuoteIdent(std::string_view ident) {
  if (ident.find('\0') != std::string_view::npos) {
    throw InvalidArgument("identifier contains a NUL byte");
  }
  std::string out = "\"";
  for (char c : ident) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace gen_durable::detail::pg
