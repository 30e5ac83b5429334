// Connections: open, run statements (prepared once per connection), LISTEN/NOTIFY. Pipelines
// are in pipeline.cpp; the pg layer's .cpp files are the only ones that include <libpq-fe.h>.
#include "gen_durable/pg/connection.hpp"

#include <fmt/format.h>
#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>

#include "gen_durable/pg/calls.hpp"
#include "gen_durable/pg/conninfo.hpp"

namespace gen_durable::detail::pg {
namespace {

std::string_view SqlState(const PGresult* res) {
  const char* state = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  return state != nullptr ? state : "";
}

// 26000 invalid_sql_statement_name: the server no longer has a statement we prepared.
bool IsStale(const PGresult* res) {
  return res != nullptr && PQresultStatus(res) == PGRES_FATAL_ERROR && SqlState(res) == "26000";
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
// Connection

Connection::Connection(pg_conn* conn, bool owned) : conn_(conn), owned_(owned) {}

Connection::~Connection() {
  if (owned_ && conn_ != nullptr) PQfinish(conn_);
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

void Connection::Raise(const CallFailure& failure, std::optional<Retry> retry_if_alive) {
  const bool lost = failure.connection_lost || PQstatus(conn_) == CONNECTION_BAD;
  if (lost) broken_ = true;
  throw ToDatabaseError(failure, RetryOf(failure, lost, retry_if_alive));
}

void Connection::ThrowError(pg_result* res, const std::string& statement, std::string_view sql,
                            bool in_commit, std::optional<Retry> retry_if_alive) {
  Result owned(res);  // freed however we leave
  CallFailure failure = Describe(res, conn_);
  if (res != nullptr) {
    const ExecStatusType status = PQresultStatus(res);
    if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) {
      // The protocol is now mid-COPY, which this layer does not drive; only a new connection
      // gets back to a known state.
      broken_ = true;
      retry_if_alive = Retry::kFatal;
    }
  }
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
  Raise(ConnectionFailure(PQerrorMessage(conn_), what, /*in_commit=*/false));
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

void Connection::Listen(const std::string& channel) { Exec("LISTEN " + QuoteIdent(channel)); }

std::vector<Notification> Connection::WaitForNotifications(std::chrono::milliseconds timeout) {
  return WaitForNotifications(timeout, -1);
}

std::vector<Notification> Connection::WaitForNotifications(std::chrono::milliseconds timeout,
                                                           int interrupt_fd) {
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
    // (a negative fd is ignored by poll)
    pollfd pfd[2] = {{socket, POLLIN, 0}, {interrupt_fd, POLLIN, 0}};
    const int rc = poll(pfd, 2, static_cast<int>(std::min<std::int64_t>(remaining, INT_MAX)));
    if (rc < 0) {
      if (errno == EINTR) continue;
      Raise(ConnectionFailure(fmt::format("poll: {}", std::strerror(errno)), kWhat,
                              /*in_commit=*/false));
    }
    if (rc > 0 && pfd[1].revents != 0) return {};
    // Readable may mean a notification, some other message, or the server hanging up.
    if (rc > 0) CheckAlive(kWhat);
  }
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
