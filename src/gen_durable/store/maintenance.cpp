// Maintenance: the reaper of expired leases and of parked rows past their deadline, the
// reclaim of a dead node's rows, and the garbage collection of terminal rows.
#include "gen_durable/store/store.hpp"

namespace gen_durable::detail {

namespace {

// The effect of losing a lease, shared by the reaper and the reclaim of a dead node: the step
// runs again (attempt + 1) unless the attempt limit is exhausted.
constexpr const char* kReleaseLostLease = R"SQL(
  status = CASE WHEN i.cancel_requested IS NOT NULL THEN 'cancelled'
                WHEN COALESCE(i.max_attempts, 0) > 0 AND i.attempt + 1 >= i.max_attempts
                THEN 'failed' ELSE 'runnable' END,
  attempt = i.attempt + 1,
  last_error = CASE WHEN i.cancel_requested IS NOT NULL THEN i.cancel_requested ELSE
               'lease lost: ' || COALESCE(i.locked_by, '?') || ' stopped heartbeating during step '
               || i.step || CASE WHEN COALESCE(i.max_attempts, 0) > 0
                                  AND i.attempt + 1 >= i.max_attempts
                             THEN ' (max attempts reached)' ELSE '' END END,
  completed_at = CASE WHEN i.cancel_requested IS NOT NULL
                        OR (COALESCE(i.max_attempts, 0) > 0 AND i.attempt + 1 >= i.max_attempts)
                      THEN now() END,
  locked_by = NULL, lease_expires_at = NULL, eligible_at = now(), updated_at = now()
)SQL";

// Served by gd_instances_executing (every executing row; the lease bound is checked on the
// index entries). SKIP LOCKED: two reapers never fight over a row.
std::string ReapExpiredSql() {
  return std::string(R"SQL(
WITH expired AS (
  SELECT id FROM {s}.gd_instances
  WHERE status = 'executing' AND lease_expires_at < now()
  ORDER BY lease_expires_at LIMIT $1
  FOR UPDATE SKIP LOCKED)
UPDATE {s}.gd_instances i SET )SQL") +
         kReleaseLostLease + " FROM expired WHERE i.id = expired.id RETURNING i.id, i.status";
}

// Await timeouts and join deadlines that passed: the row runs again (the awaiting step, or
// the step after the join). A wake, not a failure: attempt is kept for a plain await.
// Served by gd_instances_park.
constexpr const char* kReapParkedSql = R"SQL(
WITH due AS (
  SELECT id, status AS was FROM {s}.gd_instances
  WHERE status IN ('awaiting_signal', 'awaiting_children') AND park_deadline IS NOT NULL
    AND park_deadline < now()
  ORDER BY park_deadline LIMIT $1
  FOR UPDATE SKIP LOCKED)
UPDATE {s}.gd_instances i SET
  status = 'runnable',
  step = CASE WHEN due.was = 'awaiting_signal' THEN COALESCE(i.await_next_step, i.step)
              ELSE i.join_next_step END,
  attempt = CASE WHEN due.was = 'awaiting_signal' AND i.await_next_step IS NULL THEN i.attempt
                 ELSE 0 END,
  await_next_step = NULL, park_deadline = NULL, eligible_at = now(), updated_at = now()
FROM due WHERE i.id = due.id
RETURNING i.id, due.was, i.queue)SQL";

// Served by gd_instances_executing (executing rows), filtered by owner.
std::string ReclaimNodeSql() {
  return std::string("UPDATE {s}.gd_instances i SET ") + kReleaseLostLease +
         " WHERE i.status = 'executing' AND i.locked_by = $1 "
         "RETURNING i.id, i.status";
}

// Served by gd_instances_terminal: deletes at most $2 of the oldest terminal rows past
// retention; never a full scan.
constexpr const char* kGcSweepSql = R"SQL(
WITH old AS (
  SELECT id FROM {s}.gd_instances c
  WHERE status IN ('done', 'failed', 'cancelled')
    AND completed_at < now() - $1::bigint * interval '1 millisecond'
    -- a child stays while its parent lives: the parent's later steps read its result
    AND (c.parent_id IS NULL OR NOT EXISTS (
          SELECT 1 FROM {s}.gd_instances p
          WHERE p.id = c.parent_id AND p.status NOT IN ('done', 'failed', 'cancelled')))
  ORDER BY completed_at LIMIT $2
  FOR UPDATE SKIP LOCKED)
DELETE FROM {s}.gd_instances i USING old WHERE i.id = old.id)SQL";

std::vector<ReapedRow> ReadReaped(const pg::Result& r) {
  std::vector<ReapedRow> out;
  out.reserve(r.rows());
  for (int i = 0; i < r.rows(); ++i) {
    const pg::Row row = r.row(i);
    out.push_back({row.Get<std::int64_t>("id"), row.Get<std::string>("status")});
  }
  return out;
}

}  // namespace

void Store::MakeMaintenanceStatements() {
  reap_ = Make("gd_reap_expired", ReapExpiredSql());
  reap_parked_ = Make("gd_reap_parked", kReapParkedSql);
  reclaim_node_ = Make("gd_reclaim_node", ReclaimNodeSql());
  gc_ = Make("gd_gc_sweep", kGcSweepSql);
}

std::vector<ReapedRow> Store::ReapExpired(pg::Connection& c, int limit) const {
  pg::Params p;
  p.Add(limit);
  return ReadReaped(c.Execute(reap_, p));
}

std::vector<ParkedWake> Store::ReapParked(pg::Connection& c, int limit) const {
  auto r = c.Execute(reap_parked_, pg::Params().Add(limit));
  std::vector<ParkedWake> out;
  for (int i = 0; i < r.rows(); ++i) {
    const pg::Row row = r.row(i);
    out.push_back(
        {row.Get<std::int64_t>("id"), row.Get<std::string>("was"), row.Get<std::string>("queue")});
  }
  return out;
}

std::vector<ReapedRow> Store::ReclaimNode(pg::Connection& c, const std::string& node) const {
  pg::Params p;
  p.Add(node);
  return ReadReaped(c.Execute(reclaim_node_, p));
}

std::int64_t Store::GcSweep(pg::Connection& c, Millis retention, int limit) const {
  pg::Params p;
  p.Add(static_cast<std::int64_t>(retention.count())).Add(limit);
  return c.Execute(gc_, p).affected();
}

}  // namespace gen_durable::detail
