// Pipelines: a batch of statements in one round trip (libpq pipeline mode), optionally wrapped
// in BEGIN/COMMIT, with the bookkeeping of which of its statements are prepared.
#include <fmt/format.h>
#include <libpq-fe.h>

#include <algorithm>

#include "gen_durable/pg/calls.hpp"
#include "gen_durable/pg/connection.hpp"

namespace gen_durable::detail::pg {

namespace {

// The failure of the pipeline as a whole, in libpq's words (which may be none).
CallFailure PipelineFailure(const PGconn* conn, bool in_commit, bool connection_lost) {
  CallFailure out;
  out.message = OneLine(PQerrorMessage(conn));
  out.label = "pipeline";
  out.in_commit = in_commit;
  out.connection_lost = connection_lost;
  return out;
}

}  // namespace

struct Connection::PipelineAttempt {
  std::vector<Result> results;
  std::optional<CallFailure> failure;
  bool stale_statement = false;  // the first error was 26000 on a statement we had prepared
};

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
    out.failure = PipelineFailure(conn_, /*in_commit=*/false, /*connection_lost=*/true);
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
    out.failure = PipelineFailure(conn_, commit_sent, /*connection_lost=*/true);
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
      CallFailure failure = Describe(raw, conn_);
      if (entry.kind != Kind::kCommit && !failure.sqlstate.empty()) {
        server_error_before_commit = true;
      }
      if (!out.failure) {
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
        if (entry.kind == Kind::kStatement && entry.assumed_prepared &&
            failure.sqlstate == "26000") {
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
    out.failure = PipelineFailure(conn_, /*in_commit=*/false, /*connection_lost=*/false);
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

}  // namespace gen_durable::detail::pg
