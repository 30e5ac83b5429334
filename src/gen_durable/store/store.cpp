// The engine's hot loop: claim, group commit of outcomes, heartbeat, release. The Store's other
// statements are in inserts.cpp, reads.cpp, node_store.cpp and maintenance.cpp, each beside the
// method that runs it; the JSON they carry is encoded and decoded in row_codec.cpp.
#include "gen_durable/store/store.hpp"

#include <algorithm>

#include "gen_durable/schema/migrations.hpp"
#include "gen_durable/store/insert_source.hpp"
#include "gen_durable/util/crash_point.hpp"

namespace gen_durable::detail {

namespace {

// Due scheduled rows promoted per statement at most.
constexpr int kPromoteBatch = 10'000;

// Columns returned by the claim, in this order.
// The inbox and the children of the last join come along with the row (one index probe each).
constexpr const char* kClaimReturning = R"SQL(
  i.id, i.fsm, i.fsm_version, i.step, i.state, i.attempt, COALESCE(i.max_attempts, 0),
  i.priority, i.lease_seq, i.queue, i.partition_key, i.unique_key, i.rate_limit, i.rate_key,
  i.rate_weight,
  -- (a row that awaits nothing is shown no signals: skip the probe)
  CASE WHEN i.awaiting IS NOT NULL THEN (
    SELECT jsonb_agg(jsonb_build_object('id', s.id, 'name', s.name, 'payload', s.payload)
                     ORDER BY s.id)
    FROM {s}.gd_signals s
    WHERE s.instance_id = i.id AND s.consumed_at IS NULL AND s.name = ANY (i.awaiting)) END,
  CASE WHEN i.join_seq > 0 THEN (
    SELECT jsonb_agg(jsonb_build_object('id', c.id, 'fsm', c.fsm, 'status', c.status,
                                        'state', c.state, 'result', c.result,
                                        'last_error', c.last_error) ORDER BY c.id)
    FROM {s}.gd_instances c WHERE c.parent_id = i.id AND c.parent_join = i.join_seq) END,
  -- (not read) a keyed row's claim, and the claim that spends a reserved token, wait for the
  -- WAL flush after all: see claim_async_
  CASE WHEN i.partition_key IS NOT NULL OR picked.rate_paid
       THEN set_config('synchronous_commit', 'on', true) END)SQL";

// Claim up to $2 ready rows of queue $1 for node $3. Served by gd_instances_claim: an
// ordered range scan of the queue's runnable rows; SKIP LOCKED makes concurrent pickers
// skip each other's rows instead of waiting. $5 restricts to machines this node knows.
std::string ClaimSql() {
  return std::string(R"SQL(
WITH lim AS (SELECT key AS prefix, value::integer AS k FROM jsonb_each_text($6::jsonb)),
cand AS (
  SELECT c.id, c.fsm, c.partition_key, c.priority, c.eligible_at, c.rate_paid, pk.k, pk.busy
  FROM {s}.gd_instances c
  -- slots of the row's key (1, or the longest matching prefix's limit) and how many are taken
  -- as this statement's snapshot sees them (probe served by gd_instances_partition): a key
  -- seen full is skipped here; the others are settled by gd_partition_free_slots below
  LEFT JOIN LATERAL (
    SELECT COALESCE((SELECT l.k FROM lim l WHERE left(c.partition_key, length(l.prefix)) = l.prefix
                     ORDER BY length(l.prefix) DESC LIMIT 1), 1) AS k,
           (SELECT count(*) FROM {s}.gd_instances e
            WHERE e.partition_key = c.partition_key AND e.status = 'executing') AS busy
  ) pk ON c.partition_key IS NOT NULL
  WHERE c.status = 'runnable' AND c.queue = $1 AND c.eligible_at <= now()
    AND (c.fsm || '@' || c.fsm_version) = ANY($5::text[])
    -- a queue paused cluster-wide is claimed by no one (one primary-key probe per claim)
    AND NOT EXISTS (SELECT 1 FROM {s}.gd_queues q WHERE q.name = $1 AND q.paused)
    -- a full partition is skipped, never waited on
    AND (c.partition_key IS NULL OR pk.busy < pk.k)
  ORDER BY c.priority, c.eligible_at, c.id
  -- $2, or less under the queue's cluster-wide limit: evaluated once, before the first row is
  -- read, under the queue's lock with a snapshot of its own (see gd_queue_room). A queue
  -- without a limit costs one primary-key probe, and no function call or lock.
  LIMIT COALESCE((SELECT {s}.gd_queue_room($1, $2) FROM {s}.gd_queues g
                  WHERE g.name = $1 AND g.global_limit IS NOT NULL), $2)
  FOR UPDATE OF c SKIP LOCKED),
-- the keyed candidates, numbered within their key in claim order
keyed AS MATERIALIZED (
  SELECT id, fsm, partition_key, eligible_at, rate_paid, k, busy,
         row_number() OVER (PARTITION BY partition_key ORDER BY priority, eligible_at, id) AS rn
  FROM cand WHERE partition_key IS NOT NULL),
-- each key's free slots, read under the key's lock with a fresh snapshot: a claim of the key
-- committed by another node after this statement began is seen here, and a claim of the key
-- still in flight leaves none (rows without a key never get here)
slots AS MATERIALIZED (
  SELECT partition_key,
         {s}.gd_partition_free_slots(partition_key, min(k)::integer,
                                     LEAST(count(*), min(k) - min(busy))::integer) AS free
  FROM keyed WHERE rn <= k - busy GROUP BY partition_key),
picked AS (
  SELECT id, NULL::integer AS slot, eligible_at, rate_paid FROM cand WHERE partition_key IS NULL
  UNION ALL
  SELECT kd.id, sl.free[kd.rn], kd.eligible_at, kd.rate_paid
  FROM keyed kd JOIN slots sl USING (partition_key) WHERE kd.rn <= cardinality(sl.free)),
claimed AS (
  UPDATE {s}.gd_instances i
  -- lease_seq grows by the number of this node's claim statement ($7, counting from 1), not by
  -- one: a claim lost with the server (it commits asynchronously) leaves the previous value,
  -- and any later claim of the row by this node then yields a larger one than the lost claim
  -- did, so a late outcome of the lost claim can never pass the guard.
  SET status = 'executing', locked_by = $3, lease_seq = i.lease_seq + $7::bigint,
      partition_slot = picked.slot, claim_step = 0,
      -- a reserved token is spent by this start (see gd_rate_take)
      rate_paid = false,
      lease_expires_at = now() + $4::bigint * interval '1 millisecond', updated_at = now()
  FROM picked WHERE i.id = picked.id
  -- (a reserved row: how long after its token's slot it is claimed, in ms; see RateLimiter)
  RETURNING )SQL") +
         kClaimReturning + R"SQL(,
    CASE WHEN picked.rate_paid
         THEN GREATEST(0, floor(extract(epoch FROM now() - picked.eligible_at) * 1000))::bigint
    END, false)
SELECT * FROM claimed
UNION ALL
-- keyed rows whose slot another claim took after this statement's snapshot was taken: left
-- runnable (their row locks end with this transaction) and reported, never a failed claim
SELECT kd.id, kd.fsm, NULL::integer, NULL::text, NULL::jsonb, NULL::integer, NULL::integer,
       NULL::integer, NULL::bigint, NULL::text, kd.partition_key, NULL::text, NULL::text,
       NULL::text, NULL::integer, NULL::jsonb, NULL::jsonb, NULL::text, NULL::bigint, true
FROM keyed kd JOIN slots sl USING (partition_key)
WHERE kd.rn <= kd.k - kd.busy AND kd.rn > cardinality(sl.free))SQL";
}

// Opens every claim transaction: its commit does not wait for the WAL flush. A claim lost
// with the server (it committed, the flush had not happened) leaves its rows as they were
// before it: runnable, with the previous lease_seq. The claimant's outcome then fails the
// ownership guard (a later claim by the same node yields a larger lease_seq, see gd_claim),
// and the step runs again, as after any crash. Nothing else is lost: every outcome commit is
// synchronous, and flushing it flushes the WAL of the claim before it.
// Except for a claim of a row with a partition key: that claim is what keeps the key's other
// steps from starting, and losing it would let one start beside the claimant's step, still
// running. The claim statement switches such a transaction back to a synchronous commit
// (kClaimReturning); a rate-limited row's claim is flushed by the admission's own commit. The
// claim of rows of a queue with a cluster-wide limit likewise (gd_queue_room switches it).
// And except for the claim of a row holding a reserved token (rate_paid, see gd_rate_take):
// it starts without an admission, and a claim lost with the server would leave the token
// unspent after the step had started, so a second start would take it again.
constexpr const char* kClaimAsyncCommitSql = "SELECT set_config('synchronous_commit', 'off', true)";

// Moves due rows of queue $1 from scheduled to runnable. Served by gd_instances_scheduled.
constexpr const char* kPromoteDueSql = R"SQL(
WITH due AS (
  SELECT id FROM {s}.gd_instances
  WHERE status = 'scheduled' AND queue = $1 AND eligible_at <= now()
  ORDER BY eligible_at LIMIT $2
  FOR UPDATE SKIP LOCKED)
UPDATE {s}.gd_instances i SET status = 'runnable' FROM due WHERE i.id = due.id)SQL";

// Group commit of outcomes. The guard (executing, locked_by, lease_seq, claim_step) drops a
// stale outcome; a retried in-doubt commit applies nothing twice: an outcome that ended its
// claim no longer passes the guard, and one of a kept claim is recognized by claim_step.
std::string CommitOutcomesSql() {
  return R"SQL(
WITH o AS (
  -- (run_at: a timer's wall-clock time, from run_at_ms)
  SELECT *, 'epoch'::timestamptz + r.run_at_ms * interval '1 millisecond' AS run_at
  FROM jsonb_to_recordset($1::jsonb) AS r(
    id bigint, seq bigint, status text, step text, state jsonb, attempt integer,
    delay_ms bigint, run_at_ms bigint, result jsonb, last_error text, keep boolean,
    set_partition boolean,
    partition_key text, rate_limit text, rate_key text, rate_weight integer, consume bigint[],
    clear_inbox boolean, awaiting text[], await_next_step text, park_ms bigint,
    join_next_step text, keep_awaiting boolean, ran_step text, ran_attempt integer,
    duration_ms float8, claim_step integer)),
-- The parents of rows this commit may end, locked in id order before any row changes: the
-- join trigger would otherwise lock them one by one in the order the rows are updated (id
-- order of the children), which differs between commits whose children of the same parents
-- interleave (children are inserted in unique-key order), and two such commits deadlocked.
-- Parents first also matches a cascading cancel. Primary-key probes of $4, then of parents.
parents AS (
  SELECT p.id FROM {s}.gd_instances p
  WHERE p.status = 'awaiting_children' AND p.id IN (
    SELECT c.parent_id FROM {s}.gd_instances c JOIN o ON o.id = c.id
    WHERE c.id = ANY ($4::bigint[]) AND c.parent_id IS NOT NULL
      AND (o.status IN ('done', 'failed', 'cancelled') OR c.cancel_requested IS NOT NULL))
  ORDER BY p.id FOR UPDATE OF p),
upd AS (
UPDATE {s}.gd_instances i SET
  -- an instance cancelled while its step ran ends `cancelled`, whatever the step returned
  status = CASE WHEN i.cancel_requested IS NOT NULL THEN 'cancelled'
                WHEN o.status = 'runnable' AND (COALESCE(o.delay_ms, 0) > 0 OR
                     o.run_at > now())
                     THEN 'scheduled'
                ELSE o.status END,
  step = COALESCE(o.step, i.step),
  state = COALESCE(o.state, i.state),
  attempt = o.attempt,
  -- (a durable timer: a time in the past runs now, never ahead of rows already waiting)
  eligible_at = CASE WHEN o.status <> 'runnable' THEN i.eligible_at
                     WHEN o.run_at IS NOT NULL THEN GREATEST(now(), o.run_at)
                     ELSE now() + COALESCE(o.delay_ms, 0) * interval '1 millisecond' END,
  result = CASE WHEN i.cancel_requested IS NULL THEN o.result END,
  last_error = COALESCE(i.cancel_requested, o.last_error, i.last_error),
  locked_by = CASE WHEN o.keep AND i.cancel_requested IS NULL THEN i.locked_by END,
  lease_expires_at = CASE WHEN o.keep AND i.cancel_requested IS NULL
                          THEN now() + $3::bigint * interval '1 millisecond' END,
  completed_at = CASE WHEN o.status IN ('done', 'failed', 'cancelled')
                        OR i.cancel_requested IS NOT NULL THEN now() END,
  partition_key = CASE WHEN o.set_partition THEN o.partition_key ELSE i.partition_key END,
  rate_limit = o.rate_limit, rate_key = o.rate_key, rate_weight = o.rate_weight,
  -- a replay keeps showing the step what it awaited; any other outcome ends the await
  awaiting = CASE WHEN o.keep_awaiting THEN i.awaiting ELSE o.awaiting END,
  await_next_step = o.await_next_step,
  park_deadline = CASE WHEN o.park_ms IS NOT NULL AND i.cancel_requested IS NULL
                       THEN now() + o.park_ms * interval '1 millisecond' END,
  -- a new barrier: children of older ones no longer count; join_pending is set by
  -- spawn_children in this same transaction
  join_seq = CASE WHEN o.status = 'awaiting_children' THEN i.join_seq + 1 ELSE i.join_seq END,
  join_next_step = CASE WHEN o.status = 'awaiting_children' THEN o.join_next_step
                        ELSE i.join_next_step END,
  join_pending = CASE WHEN o.status = 'awaiting_children' THEN NULL ELSE i.join_pending END,
  claim_step = i.claim_step + 1,
  updated_at = now()
FROM o
-- Primary-key lookups of the ids in $4, never a scan of gd_instances_executing: that index holds
-- an entry for every row claimed since the last vacuum, and a plan cached while the table was
-- small would favour it. $5 is always 'executing': as a parameter the status cannot match the
-- executing index's predicate, so the generic plan cannot pick that index.
WHERE i.id = ANY ($4::bigint[]) AND i.id = o.id AND i.status = $5::text
  AND i.locked_by = $2 AND i.lease_seq = o.seq AND i.claim_step = COALESCE(o.claim_step, 0)
  AND (SELECT count(*) FROM parents) >= 0  -- (an init plan: runs before the first row)
RETURNING i.id, i.lease_seq AS seq, i.status, i.cancel_requested IS NOT NULL AS cancelled),
-- Outcomes of a kept claim that an earlier try of this commit applied (its result was lost
-- with the connection): the row is still executing under the same claim, one step further.
-- They are answered as committed and change nothing (this statement's snapshot shows no row
-- that upd changes with its new claim_step).
applied AS (
  SELECT i.id, i.lease_seq AS seq
  FROM {s}.gd_instances i JOIN o ON o.id = i.id
  WHERE i.id = ANY ($4::bigint[]) AND o.keep AND i.status = $5::text AND i.locked_by = $2
    AND i.lease_seq = o.seq AND i.claim_step = COALESCE(o.claim_step, 0) + 1),
-- (o joins upd by claim, not by id: a batch may hold a stale outcome of a row beside the
-- outcome of the row's current claim, and only the latter's effects may apply)
-- What leaves the inbox: a progressing outcome consumes exactly the signals its step was
-- shown (one probe per shown id), a terminal one clears the inbox (served by gd_signals_inbox,
-- which reads only the instance's unconsumed entries).
taken AS (
  SELECT s.id, s.dedup_key IS NULL AS plain
  FROM o JOIN upd ON upd.id = o.id AND upd.seq = o.seq CROSS JOIN LATERAL unnest(o.consume) AS shown(id)
  JOIN {s}.gd_signals s ON s.id = shown.id AND s.instance_id = o.id AND s.consumed_at IS NULL
  UNION ALL
  SELECT s.id, s.dedup_key IS NULL
  FROM o JOIN upd ON upd.id = o.id AND upd.seq = o.seq
  JOIN {s}.gd_signals s ON s.instance_id = o.id AND s.consumed_at IS NULL
  WHERE o.clear_inbox OR upd.cancelled),
-- A signal without a dedup key goes. One with a key is kept, marked consumed, until the
-- instance is deleted: gd_signal answers a repeat of the key with its id, also after the end.
consumed AS (
  UPDATE {s}.gd_signals s SET consumed_at = now() FROM taken t WHERE s.id = t.id AND NOT t.plain),
dropped AS (DELETE FROM {s}.gd_signals s USING taken t WHERE s.id = t.id AND t.plain),
-- the history entry of each step (when the engine keeps history: $6)
hist AS (
  INSERT INTO {s}.gd_history (instance_id, event, step, status, attempt, duration_ms, error, node)
  SELECT o.id, 'step', o.ran_step, upd.status, o.ran_attempt, o.duration_ms,
         CASE WHEN upd.status IN ('runnable', 'scheduled', 'failed', 'cancelled')
              THEN o.last_error END, $2
  FROM o JOIN upd ON upd.id = o.id AND upd.seq = o.seq
  WHERE $6::boolean AND o.ran_step IS NOT NULL)
SELECT id, cancelled, seq FROM upd
UNION ALL
SELECT id, false, seq FROM applied)SQL";
}

// After parking (same transaction, so the rows are locked by now and this statement's
// snapshot includes every signal committed before the lock was taken): a parked row with a
// matching signal its step has not seen wakes at once. Signals arriving later block on the
// row lock and wake the row themselves in gd_signal. Served by gd_signals_inbox.
// Only rows this transaction parked: the outcome's claim (lease_seq) and this transaction's
// timestamp. A stale outcome parked nothing; the row it names may be parked by its current
// claim, which saw other signals (and waking it for those would re-run its step).
constexpr const char* kWakeParkedSql = R"SQL(
WITH w AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(id bigint, seq bigint,
                                                            shown bigint[]))
UPDATE {s}.gd_instances i SET
  status = 'runnable', step = COALESCE(i.await_next_step, i.step),
  attempt = CASE WHEN i.await_next_step IS NOT NULL THEN 0 ELSE i.attempt END,
  await_next_step = NULL, park_deadline = NULL, eligible_at = now(), updated_at = now()
FROM w
WHERE i.id = w.id AND i.status = 'awaiting_signal' AND i.lease_seq = w.seq
  AND i.updated_at = now()
  AND EXISTS (SELECT 1 FROM {s}.gd_signals s
              WHERE s.instance_id = i.id AND s.consumed_at IS NULL
                AND s.name = ANY (i.awaiting) AND s.id <> ALL (COALESCE(w.shown, '{}')))
RETURNING i.id)SQL";

// The children of parents parked on a new barrier in this transaction (join_pending still
// NULL marks them; a stale parent was not parked, so gets none). Duplicates by unique key
// are dropped and do not count; k-of-n waits for min(k, inserted). A barrier with nothing to
// wait for releases its parent at once.
std::string SpawnChildrenSql() {
  return std::string(kInsertSource) + R"SQL(
j AS (SELECT * FROM jsonb_to_recordset($3::jsonb) AS x(id bigint, wait_for integer)),
p AS (
  SELECT i.id, i.join_seq FROM {s}.gd_instances i JOIN j ON j.id = i.id
  WHERE i.status = 'awaiting_children' AND i.join_pending IS NULL),
parents AS (
  SELECT ord, (elem->>'parent')::bigint AS parent
  FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(elem, ord)),
ins AS (
  INSERT INTO {s}.gd_instances
    (fsm, fsm_version, queue, step, state, priority, eligible_at, max_attempts, status,
     partition_key, unique_key, unique_scope, rate_limit, rate_key, rate_weight, parent_id,
     parent_join)
  SELECT src.fsm, src.fsm_version, src.queue, src.step, src.state, src.priority, src.at,
         src.max_attempts, CASE WHEN src.at > now() THEN 'scheduled' ELSE 'runnable' END,
         src.partition_key, src.unique_key, src.unique_scope, src.rate_limit, src.rate_key,
         src.rate_weight, p.id, p.join_seq
  FROM src JOIN parents USING (ord) JOIN p ON p.id = parents.parent
  ORDER BY src.unique_key NULLS LAST, src.ord
  ON CONFLICT (unique_hold) WHERE unique_hold IS NOT NULL DO NOTHING
  RETURNING id, parent_id, queue, eligible_at),
cnt AS (
  SELECT p.id, LEAST(COALESCE(j.wait_for, count(ins.id)), count(ins.id)) AS pending
  FROM p JOIN j ON j.id = p.id LEFT JOIN ins ON ins.parent_id = p.id
  GROUP BY p.id, j.wait_for),
upd AS (
  UPDATE {s}.gd_instances i SET
    join_pending = cnt.pending,
    status = CASE WHEN cnt.pending <= 0 THEN 'runnable' ELSE i.status END,
    step = CASE WHEN cnt.pending <= 0 THEN i.join_next_step ELSE i.step END,
    attempt = CASE WHEN cnt.pending <= 0 THEN 0 ELSE i.attempt END,
    park_deadline = CASE WHEN cnt.pending <= 0 THEN NULL ELSE i.park_deadline END,
    eligible_at = now()
  FROM cnt WHERE i.id = cnt.id
  RETURNING i.id),
n AS (SELECT pg_notify($2, queue) FROM ins WHERE eligible_at <= now() GROUP BY queue)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM upd), (SELECT count(*) FROM n))SQL";
}

// Served by the primary key (ids) with the owner guard. SKIP LOCKED: the flusher's commit
// locks many of these rows too, in an order of its plan's choosing, and the two waiting on
// each other deadlocked (seen in the soak: a second's stall of every commit). A row skipped
// is being committed (which ends or renews its lease) or briefly locked by a signal or a
// cancel; the next beat extends it, well within the lease when it spans 3 beats (the
// engine warns when it does not).
std::string HeartbeatSql() {
  return R"SQL(
WITH held AS (
  SELECT id FROM {s}.gd_instances
  WHERE id = ANY($2::bigint[]) AND status = 'executing' AND locked_by = $1
  FOR UPDATE SKIP LOCKED)
UPDATE {s}.gd_instances i
SET lease_expires_at = now() + $3::bigint * interval '1 millisecond'
FROM held WHERE i.id = held.id)SQL";
}

// Served by the primary key (ids $2), with the owner guard: this node's claim ($3, the
// lease_seq of each id's claim), so a row claimed again since is never released.
constexpr const char* kReleaseClaimsSql = R"SQL(
UPDATE {s}.gd_instances i
SET status = CASE WHEN i.cancel_requested IS NULL THEN 'runnable' ELSE 'cancelled' END,
    completed_at = CASE WHEN i.cancel_requested IS NULL THEN NULL ELSE now() END,
    last_error = COALESCE(i.cancel_requested, i.last_error),
    locked_by = NULL, lease_expires_at = NULL, updated_at = now()
FROM unnest($2::bigint[], $3::bigint[]) AS c(id, seq)
WHERE i.id = ANY ($2::bigint[]) AND i.id = c.id AND i.lease_seq = c.seq
  AND i.status = 'executing' AND i.locked_by = $1)SQL";

}  // namespace

Store::Store(std::string schema) : schema_(std::move(schema)) {
  channel_ = ChannelFor(schema_);
  partition_limits_ = "{}";
  MakeInsertStatements();
  MakeHotLoopStatements();
  MakeMaintenanceStatements();
  MakeNodeStatements();
  MakeReadStatements();
}

void Store::MakeHotLoopStatements() {
  claim_ = Make("gd_claim", ClaimSql());
  claim_async_ = Make("gd_claim_async_commit", kClaimAsyncCommitSql);
  promote_ = Make("gd_promote_due", kPromoteDueSql);
  commit_ = Make("gd_commit_outcomes", CommitOutcomesSql());
  wake_parked_ = Make("gd_wake_parked", kWakeParkedSql);
  spawn_children_ = Make("gd_spawn_children", SpawnChildrenSql());
  heartbeat_ = Make("gd_heartbeat", HeartbeatSql());
  release_ = Make("gd_release_claims", kReleaseClaimsSql);
}

void Store::SetPartitionLimits(const std::map<std::string, int>& limits) {
  partition_limits_ = Json(limits).dump();
}

pg::Statement Store::Make(const char* name, const std::string& sql) const {
  return pg::Statement{name, WithSchema(sql, schema_)};
}

ClaimBatch Store::Claim(pg::Connection& c, const std::string& queue, int limit,
                        const std::string& node, Millis lease_ttl,
                        const std::vector<std::string>& machines, bool promote,
                        std::int64_t claim_no) const {
  pg::Params p;
  p.Add(queue).Add(limit).Add(node).Add(static_cast<std::int64_t>(lease_ttl.count()));
  p.Add(TextArray(machines));
  p.Add(partition_limits_);
  p.Add(claim_no);
  // One round trip, one transaction: asynchronous commit, promote what is due (when asked),
  // then claim (each statement sees the one before).
  std::vector<std::pair<const pg::Statement*, pg::Params>> batch;
  batch.emplace_back(&claim_async_, pg::Params());
  if (promote) batch.emplace_back(&promote_, pg::Params().Add(queue).Add(kPromoteBatch));
  batch.emplace_back(&claim_, p);
  pg::Result r = std::move(c.Pipeline(batch, /*transaction=*/true).back());
  ClaimBatch out;
  std::vector<ClaimedRow>& rows = out.rows;
  rows.reserve(r.rows());
  // Several of gd_claim's columns are unnamed expressions, so its rows are read in column
  // order (kClaimReturning, then the reservation's lateness and the contended flag).
  for (int i = 0; i < r.rows(); ++i) {
    pg::Row in = r.row(i);
    ClaimedRow row;
    row.id = in.Next<std::int64_t>();
    row.fsm = in.Next<std::string>();
    if (in.At<bool>(r.columns() - 1)) {  // contended: only id, fsm and key are set
      out.contended.push_back({row.id, std::move(row.fsm), in.Get<std::string>("partition_key")});
      continue;
    }
    row.fsm_version = in.Next<int>();
    row.step = in.Next<std::string>();
    const auto state = in.Next<std::string_view>();
    row.attempt = in.Next<int>();
    row.max_attempts = in.Next<int>();
    row.priority = in.Next<int>();
    row.lease_seq = in.Next<std::int64_t>();
    row.queue = in.Next<std::string>();
    row.partition_key = in.Next<std::optional<std::string>>();
    row.unique_key = in.Next<std::optional<std::string>>();
    const auto rate_limit = in.Next<std::optional<std::string>>();
    const auto rate_key = in.Next<std::optional<std::string>>();
    const auto rate_weight = in.Next<std::optional<int>>();
    if (rate_limit) {
      row.rate_limit = RateLimitRef{*rate_limit, rate_key.value_or(""), rate_weight.value_or(1)};
    }
    const auto signals = in.Next<std::optional<std::string_view>>();
    const auto children = in.Next<std::optional<std::string_view>>();
    in.Skip();  // the synchronous_commit switch
    if (auto late = in.Next<std::optional<std::int64_t>>()) row.rate_paid_late = Millis{*late};
    DecodeClaimJson(state, signals, children, row);
    rows.push_back(std::move(row));
  }
  // UPDATE ... RETURNING does not keep the picker's order; restore it.
  std::sort(rows.begin(), rows.end(), [](const ClaimedRow& a, const ClaimedRow& b) {
    return a.priority != b.priority ? a.priority < b.priority : a.id < b.id;
  });
  return out;
}

std::vector<CommittedOutcome> Store::CommitOutcomes(pg::Connection& c,
                                                    const std::vector<OutcomeRow>& rows,
                                                    const std::string& node, Millis lease_ttl,
                                                    bool history) const {
  const CommitPayload payload = EncodeCommit(rows);
  pg::Params p;
  std::vector<std::int64_t> row_ids;
  row_ids.reserve(rows.size());
  for (const auto& o : rows) row_ids.push_back(o.id);
  p.Add(payload.outcomes).Add(node).Add(static_cast<std::int64_t>(lease_ttl.count()));
  p.Add(IdArray(row_ids)).Add("executing");  // $4, $5: see gd_commit_outcomes
  p.Add(history);
  const bool parks = payload.wakes.size() > 2;
  const bool spawns = payload.joins.size() > 2;
  pg::Result r;
  if (!parks && !spawns) {
    r = c.Execute(commit_, p);  // one statement: atomic by itself
  } else {
    std::vector<std::pair<const pg::Statement*, pg::Params>> batch;
    batch.emplace_back(&commit_, p);
    if (parks) batch.emplace_back(&wake_parked_, pg::Params().Add(payload.wakes));
    if (spawns) {
      batch.emplace_back(&spawn_children_,
                         pg::Params().Add(payload.children).Add(channel_).Add(payload.joins));
    }
    if (spawns && GD_CRASH_POINT_DUE("mid_child_insert")) {
      // The statements run in a transaction left open, so the process ends with the children
      // inserted and uncommitted (the server rolls them back).
      c.Exec("BEGIN");
      c.Pipeline(batch, /*transaction=*/false);
      GD_CRASH_NOW("mid_child_insert");
    }
    auto results = c.Pipeline(batch, /*transaction=*/true);
    r = std::move(results.front());
  }
  std::vector<CommittedOutcome> done;
  done.reserve(r.rows());
  for (int i = 0; i < r.rows(); ++i) {
    const pg::Row row = r.row(i);
    done.push_back(
        {row.Get<std::int64_t>("id"), row.Get<std::int64_t>("seq"), row.Get<bool>("cancelled")});
  }
  return done;
}

std::int64_t Store::Heartbeat(pg::Connection& c, const std::string& node,
                              const std::vector<std::int64_t>& ids, Millis lease_ttl) const {
  if (ids.empty()) return 0;
  pg::Params p;
  p.Add(node).Add(IdArray(ids)).Add(static_cast<std::int64_t>(lease_ttl.count()));
  return c.Execute(heartbeat_, p).affected();
}

std::int64_t Store::ReleaseClaims(pg::Connection& c, const std::string& node,
                                  const std::vector<ClaimRef>& claims) const {
  if (claims.empty()) return 0;
  std::vector<std::int64_t> ids, seqs;
  ids.reserve(claims.size());
  seqs.reserve(claims.size());
  for (const auto& claim : claims) {
    ids.push_back(claim.id);
    seqs.push_back(claim.lease_seq);
  }
  pg::Params p;
  p.Add(node).Add(IdArray(ids)).Add(IdArray(seqs));
  return c.Execute(release_, p).affected();
}

}  // namespace gen_durable::detail
