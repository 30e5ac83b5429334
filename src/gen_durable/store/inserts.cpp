// Inserting instances: one statement per batch (or per chunk of a large one), and the
// announcement of ready work after the inserting transaction committed.
#include <algorithm>

#include "gen_durable/store/insert_source.hpp"
#include "gen_durable/store/store.hpp"

namespace gen_durable::detail {

namespace {

// Single insert; announces ready work on the channel (delivered at commit, so a caller's
// rolled-back transaction announces nothing).
// Batch insert from one JSON array: one statement, one round trip, one notify per queue.
// Rows are inserted in unique-key order, so two concurrent batches sharing new keys take
// the keys' index entries in the same order and never deadlock; a held key drops the row.
std::string InsertBatchSql() {
  return std::string(kInsertSource) + R"SQL(
ins AS (
  INSERT INTO {s}.gd_instances
    (fsm, fsm_version, queue, step, state, priority, eligible_at, max_attempts, status,
     partition_key, unique_key, unique_scope, rate_limit, rate_key, rate_weight)
  SELECT fsm, fsm_version, queue, step, state, priority, at, max_attempts,
         CASE WHEN at > now() THEN 'scheduled' ELSE 'runnable' END,
         partition_key, unique_key, unique_scope,  -- NULL: every live status
         rate_limit, rate_key, rate_weight
  FROM src ORDER BY unique_key NULLS LAST, ord
  ON CONFLICT (unique_hold) WHERE unique_hold IS NOT NULL DO NOTHING
  RETURNING id, queue, eligible_at, unique_key),
-- $3: announce in this transaction (else the caller announces the ready queues after commit)
n AS (SELECT pg_notify($2, queue) FROM ins WHERE $3::boolean AND eligible_at <= now()
      GROUP BY queue)
SELECT ins.id, ins.unique_key, ins.queue, ins.eligible_at <= now() FROM ins
WHERE (SELECT count(*) FROM n) >= 0 ORDER BY ins.id)SQL";
}

// After an insert committed: wake the engines of the queues that got ready rows. Touches no
// table. The notification is all this transaction writes, and losing it to a crash costs a
// poll interval, so its commit does not wait for the WAL flush (the lock every notifying
// commit holds is then released at once).
constexpr const char* kAnnounceReadySql = R"SQL(
SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, q)
FROM unnest($2::text[]) AS q)SQL";

// The positions of `rows` in the order gd_insert_batch inserts them: unique key (NULLS LAST),
// then position.
std::vector<std::size_t> InsertionOrder(const std::vector<NewInstance>& rows) {
  std::vector<std::size_t> order(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const auto& ka = rows[a].unique_key;
    const auto& kb = rows[b].unique_key;
    if (ka.has_value() != kb.has_value()) return ka.has_value();  // keys first, NULLS LAST
    return ka && *ka < *kb;
  });
  return order;
}

// Maps the rows an insert returned (in insertion order: unique key, then position) back to
// request order; a request whose row is missing was a duplicate.
std::vector<std::optional<std::int64_t>> MatchInserted(const std::vector<NewInstance>& rows,
                                                       const pg::Result& r) {
  const std::vector<std::size_t> order = InsertionOrder(rows);
  std::vector<std::optional<std::int64_t>> ids(rows.size());
  int next = 0;
  for (std::size_t idx : order) {
    if (next >= r.rows()) break;
    const pg::Row row = r.row(next);
    if (row.Get<std::optional<std::string>>("unique_key") == rows[idx].unique_key) {
      ids[idx] = row.Get<std::int64_t>("id");
      ++next;
    }
  }
  return ids;
}

}  // namespace

void Store::MakeInsertStatements() {
  insert_batch_ = Make("gd_insert_batch", InsertBatchSql());
  announce_ = Make("gd_announce_ready", kAnnounceReadySql);
}

std::optional<std::int64_t> Store::InsertOne(pg::Connection& c, const NewInstance& row, bool ad_hoc,
                                             std::vector<std::string>* ready_queues) const {
  return InsertBatch(c, {row}, ad_hoc, ready_queues).front();
}

std::vector<std::optional<std::int64_t>> Store::InsertBatch(
    pg::Connection& c, const std::vector<NewInstance>& rows, bool ad_hoc,
    std::vector<std::string>* ready_queues) const {
  if (rows.empty()) return {};
  // Chunks of at most kMaxStatementJsonBytes (a larger row alone), cut from the rows in
  // insertion order: the chunks together take the unique keys in the same order as one
  // statement would, so concurrent batches still cannot deadlock on them.
  const std::vector<std::size_t> order = InsertionOrder(rows);
  std::vector<std::vector<NewInstance>> chunks(1);
  std::vector<std::vector<std::size_t>> positions(1);
  std::size_t bytes = 0;
  for (std::size_t i : order) {
    const std::size_t size = rows[i].state.size() + 512;  // the row's other fields, at most
    if (!chunks.back().empty() && bytes + size > kMaxStatementJsonBytes) {
      chunks.emplace_back();
      positions.emplace_back();
      bytes = 0;
    }
    chunks.back().push_back(rows[i]);
    positions.back().push_back(i);
    bytes += size;
  }
  const bool notify_now = ready_queues == nullptr;
  // The queues with rows ready now, for the caller to announce after its commit.
  auto note_ready = [ready_queues](const pg::Result& res) {
    if (ready_queues == nullptr) return;
    for (int i = 0; i < res.rows(); ++i) {
      pg::Row row = res.row(i);
      row.Skip(2);  // id, unique_key
      std::string queue = row.Next<std::string>();
      if (!row.Next<bool>()) continue;  // (unnamed) ready now
      if (std::find(ready_queues->begin(), ready_queues->end(), queue) == ready_queues->end()) {
        ready_queues->push_back(std::move(queue));
      }
    }
  };
  if (chunks.size() == 1 || ad_hoc) {
    pg::Params p;
    p.Add(NewInstancesJson(rows)).Add(channel_).Add(notify_now);
    auto res = ad_hoc ? c.ExecParams(insert_batch_.sql, p) : c.Execute(insert_batch_, p);
    note_ready(res);
    return MatchInserted(rows, res);
  }
  std::vector<std::pair<const pg::Statement*, pg::Params>> batch;
  for (const auto& chunk : chunks) {
    batch.emplace_back(&insert_batch_,
                       pg::Params().Add(NewInstancesJson(chunk)).Add(channel_).Add(notify_now));
  }
  // One transaction: the batch stays all or nothing, and a later chunk's duplicates of an
  // earlier one's keys are dropped as within one statement.
  auto results = c.Pipeline(batch, /*transaction=*/true);
  std::vector<std::optional<std::int64_t>> ids(rows.size());
  for (std::size_t k = 0; k < chunks.size(); ++k) {
    note_ready(results[k]);
    const auto got = MatchInserted(chunks[k], results[k]);
    for (std::size_t j = 0; j < got.size(); ++j) ids[positions[k][j]] = got[j];
  }
  return ids;
}

void Store::AnnounceReady(pg::Connection& c, const std::vector<std::string>& queues) const {
  if (queues.empty()) return;
  c.Execute(announce_, pg::Params().Add(channel_).Add(TextArray(queues)));
}

}  // namespace gen_durable::detail
