// The SQL layer: every statement of the engine, named, with the index that serves it.
#include "gen_durable/store/store.hpp"

#include <algorithm>
#include <cstdint>
#include <map>
#include <span>
#include <stdexcept>
#include <type_traits>

#include <fmt/format.h>

#include "gen_durable/util/crash_point.hpp"
#include "gen_durable/schema/migrations.hpp"

namespace gen_durable::detail {

namespace {

// Decodes a JSON array of new rows ($1) into `src`, with each row's position (ord) and its
// eligibility time (at). Shared by inserts and by children.
constexpr const char* kInsertSource = R"SQL(
WITH r AS (
  SELECT * FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (
    fsm text, fsm_version integer, queue text, step text, state jsonb, priority integer,
    eligible_at timestamptz, delay_ms bigint, max_attempts integer, partition_key text,
    unique_key text, unique_scope text[], rate_limit text, rate_key text, rate_weight integer))
  WITH ORDINALITY AS r(fsm, fsm_version, queue, step, state, priority, eligible_at, delay_ms,
                       max_attempts, partition_key, unique_key, unique_scope, rate_limit,
                       rate_key, rate_weight, ord)),
src AS (
  SELECT r.*, COALESCE(r.eligible_at, now()) + COALESCE(r.delay_ms, 0) * interval '1 millisecond'
              AS at
  FROM r),)SQL";

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

// Columns of InstanceInfo, in the order ReadInfo expects.
constexpr const char* kInfoColumns =
    "id, fsm, fsm_version, status, step, state, attempt, max_attempts, queue, priority, "
    "partition_key, unique_key, result, last_error, parent_id, locked_by, inserted_at, "
    "updated_at, eligible_at, lease_expires_at, completed_at";

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

// Parses stored JSON. jsonb accepts values nlohmann cannot represent (e.g. 1e1000); such a
// value must not take a node down, so the failure is returned instead of thrown.
std::optional<Json> ParseStored(std::string_view text, std::string* error) {
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {
    if (error) *error = e.what();
    return std::nullopt;
  }
}

// For reads: an unrepresentable value is shown as its stored text.
Json ParseForDisplay(std::string_view text) {
  auto j = ParseStored(text, nullptr);
  return j ? std::move(*j) : Json(std::string(text));
}

InstanceInfo ReadInfo(const pg::Result& r, int row) {
  InstanceInfo info;
  info.id = r.Int64(row, 0);
  info.fsm = r.String(row, 1);
  info.fsm_version = r.Int(row, 2);
  info.status = r.String(row, 3);
  info.step = r.String(row, 4);
  info.state = ParseForDisplay(r.Text(row, 5));
  info.attempt = r.Int(row, 6);
  if (!r.IsNull(row, 7)) info.max_attempts = r.Int(row, 7);
  info.queue = r.String(row, 8);
  info.priority = r.Int(row, 9);
  info.partition_key = r.OptString(row, 10);
  info.unique_key = r.OptString(row, 11);
  info.result = r.IsNull(row, 12) ? Json(nullptr) : ParseForDisplay(r.Text(row, 12));
  info.last_error = r.OptString(row, 13);
  info.parent_id = r.OptInt64(row, 14);
  info.locked_by = r.OptString(row, 15);
  info.inserted_at = r.String(row, 16);
  info.updated_at = r.String(row, 17);
  info.eligible_at = r.String(row, 18);
  info.lease_expires_at = r.OptString(row, 19);
  info.completed_at = r.OptString(row, 20);
  return info;
}

std::string JsonText(const std::string& v) {
  return Json(v).dump(-1, ' ', false, Json::error_handler_t::replace);
}

template <typename T>
std::string JsonOpt(const std::optional<T>& v) {
  if (!v) return "null";
  if constexpr (std::is_same_v<T, std::string>) {
    return JsonText(*v);
  } else {
    return std::to_string(*v);
  }
}

// One element of the insert source array, assembled as text: the state is already encoded.
void AppendNewInstance(std::string& out, const NewInstance& n) {
  out += fmt::format(R"({{"fsm":{},"fsm_version":{},"queue":{},"step":{},"state":{},)"
                     R"("priority":{},"eligible_at":{},"delay_ms":{},"max_attempts":{},)"
                     R"("partition_key":{},"unique_key":{},"unique_scope":)",
                     JsonText(n.fsm), n.fsm_version, JsonText(n.queue), JsonText(n.step),
                     n.state, n.priority, JsonOpt(n.eligible_at), JsonOpt(n.delay_ms),
                     JsonOpt(n.max_attempts), JsonOpt(n.partition_key), JsonOpt(n.unique_key));
  if (n.unique_scope.empty()) {
    out += "null";
  } else {
    out += Json(n.unique_scope).dump();
  }
  if (n.rate_limit) {
    out += fmt::format(R"(,"rate_limit":{},"rate_key":{},"rate_weight":{}}})",
                       JsonText(n.rate_limit->name),
                       n.rate_limit->key.empty() ? "null" : JsonText(n.rate_limit->key),
                       n.rate_limit->weight);
  } else {
    out += R"(,"rate_limit":null,"rate_key":null,"rate_weight":null})";
  }
}

std::string NewInstancesJson(const std::vector<NewInstance>& rows) {
  std::string out = "[";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (i) out += ',';
    AppendNewInstance(out, rows[i]);
  }
  out += ']';
  return out;
}

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
    const auto key = r.OptString(next, 1);
    if (key == rows[idx].unique_key) ids[idx] = r.Int64(next++, 0);
  }
  return ids;
}


// A Postgres text[] literal with every element quoted.
std::string TextArray(const std::vector<std::string>& items) {
  std::string s = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) s += ',';
    s += '"';
    for (char ch : items[i]) {
      if (ch == '"' || ch == '\\') s += '\\';
      s += ch;
    }
    s += '"';
  }
  s += '}';
  return s;
}

std::vector<ReapedRow> ReadReaped(const pg::Result& r) {
  std::vector<ReapedRow> out;
  out.reserve(r.rows());
  for (int i = 0; i < r.rows(); ++i) out.push_back({r.Int64(i, 0), r.String(i, 1)});
  return out;
}

}  // namespace

std::string IdArray(const std::vector<std::int64_t>& ids) {
  std::string s = "{";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(ids[i]);
  }
  s += '}';
  return s;
}

namespace {

// A bigint written by Postgres; anything else (say 1.5, or 1e300, which a plain get<> would
// convert with undefined behaviour) is refused.
std::int64_t BigintOf(const Json& j) {
  if (!j.is_number_integer() ||
      (j.is_number_unsigned() &&
       j.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))) {
    throw std::out_of_range("not a bigint: " + j.dump(-1, ' ', false,
                                                      Json::error_handler_t::replace));
  }
  return j.get<std::int64_t>();
}

}  // namespace

void DecodeClaimJson(std::string_view state, std::optional<std::string_view> signals,
                     std::optional<std::string_view> children, ClaimedRow& row) {
  // The first column that fails names the error: the instance fails either way.
  auto fail = [&row](const char* what, const std::string& error) {
    if (row.state_error.empty()) row.state_error = std::string(what) + error;
  };
  std::string error;
  if (auto j = ParseStored(state, &error)) {
    row.state = std::move(*j);
  } else {
    fail("stored state cannot be decoded: ", error);
  }
  // The inbox and the children are built by gd_claim (jsonb_agg of jsonb_build_object), so
  // their shape is known; a value of the wrong type still fails the row, not the whole claim.
  if (signals) {
    if (auto sigs = ParseStored(*signals, &error)) {
      try {
        for (const auto& s : *sigs) {
          row.signals.push_back(gen_durable::Signal{BigintOf(s.at("id")),
                                                    s.at("name").get<std::string>(),
                                                    s.at("payload")});
        }
      } catch (const std::exception& e) {
        row.signals.clear();
        fail("stored signals have an unexpected shape: ", e.what());
      }
    } else {
      fail("stored signal payload cannot be decoded: ", error);
    }
  }
  if (children) {
    if (auto kids = ParseStored(*children, &error)) {
      try {
        for (const auto& k : *kids) {
          ChildResult c;
          c.id = BigintOf(k.at("id"));
          c.fsm = k.at("fsm").get<std::string>();
          c.status = k.at("status").get<std::string>();
          c.state = k.at("state");
          c.result = k.at("result");
          if (k.at("last_error").is_string()) c.last_error = k.at("last_error").get<std::string>();
          row.children.push_back(std::move(c));
        }
      } catch (const std::exception& e) {
        row.children.clear();
        fail("stored children have an unexpected shape: ", e.what());
      }
    } else {
      fail("stored child state cannot be decoded: ", error);
    }
  }
}

Store::Store(std::string schema) : schema_(std::move(schema)) {
  channel_ = ChannelFor(schema_);
  partition_limits_ = "{}";

  // Single insert; announces ready work on the channel (delivered at commit, so a caller's
  // rolled-back transaction announces nothing).
  // Batch insert from one JSON array: one statement, one round trip, one notify per queue.
  // Rows are inserted in unique-key order, so two concurrent batches sharing new keys take
  // the keys' index entries in the same order and never deadlock; a held key drops the row.
  insert_batch_ = Make("gd_insert_batch", (std::string(kInsertSource) + R"SQL(
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
WHERE (SELECT count(*) FROM n) >= 0 ORDER BY ins.id)SQL")
                                            .c_str());

  // After an insert committed: wake the engines of the queues that got ready rows. Touches no
  // table. The notification is all this transaction writes, and losing it to a crash costs a
  // poll interval, so its commit does not wait for the WAL flush (the lock every notifying
  // commit holds is then released at once).
  announce_ = Make("gd_announce_ready", R"SQL(
SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, q)
FROM unnest($2::text[]) AS q)SQL");

  // Claim up to $2 ready rows of queue $1 for node $3. Served by gd_instances_claim: an
  // ordered range scan of the queue's runnable rows; SKIP LOCKED makes concurrent pickers
  // skip each other's rows instead of waiting. $5 restricts to machines this node knows.
  claim_ = Make("gd_claim", (std::string(R"SQL(
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
  LIMIT $2
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
  RETURNING )SQL") + kClaimReturning + R"SQL(,
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
WHERE kd.rn <= kd.k - kd.busy AND kd.rn > cardinality(sl.free))SQL")
                                    .c_str());

  // Opens every claim transaction: its commit does not wait for the WAL flush. A claim lost
  // with the server (it committed, the flush had not happened) leaves its rows as they were
  // before it: runnable, with the previous lease_seq. The claimant's outcome then fails the
  // ownership guard (a later claim by the same node yields a larger lease_seq, see gd_claim),
  // and the step runs again, as after any crash. Nothing else is lost: every outcome commit is
  // synchronous, and flushing it flushes the WAL of the claim before it.
  // Except for a claim of a row with a partition key: that claim is what keeps the key's other
  // steps from starting, and losing it would let one start beside the claimant's step, still
  // running. The claim statement switches such a transaction back to a synchronous commit
  // (kClaimReturning); a rate-limited row's claim is flushed by the admission's own commit.
  // And except for the claim of a row holding a reserved token (rate_paid, see gd_rate_take):
  // it starts without an admission, and a claim lost with the server would leave the token
  // unspent after the step had started, so a second start would take it again.
  claim_async_ = Make("gd_claim_async_commit",
                      "SELECT set_config('synchronous_commit', 'off', true)");

  // Moves due rows of queue $1 from scheduled to runnable. Served by gd_instances_scheduled.
  promote_ = Make("gd_promote_due", R"SQL(
WITH due AS (
  SELECT id FROM {s}.gd_instances
  WHERE status = 'scheduled' AND queue = $1 AND eligible_at <= now()
  ORDER BY eligible_at LIMIT $2
  FOR UPDATE SKIP LOCKED)
UPDATE {s}.gd_instances i SET status = 'runnable' FROM due WHERE i.id = due.id)SQL");

  // Group commit of outcomes. The guard (executing, locked_by, lease_seq, claim_step) drops a
  // stale outcome; a retried in-doubt commit applies nothing twice: an outcome that ended its
  // claim no longer passes the guard, and one of a kept claim is recognized by claim_step.
  commit_ = Make("gd_commit_outcomes", R"SQL(
WITH o AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(
    id bigint, seq bigint, status text, step text, state jsonb, attempt integer,
    delay_ms bigint, result jsonb, last_error text, keep boolean, set_partition boolean,
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
                WHEN o.status = 'runnable' AND COALESCE(o.delay_ms, 0) > 0 THEN 'scheduled'
                ELSE o.status END,
  step = COALESCE(o.step, i.step),
  state = COALESCE(o.state, i.state),
  attempt = o.attempt,
  eligible_at = CASE WHEN o.status = 'runnable'
                     THEN now() + COALESCE(o.delay_ms, 0) * interval '1 millisecond'
                     ELSE i.eligible_at END,
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
-- Primary-key lookups of the ids in $4, never a scan of gd_instances_lease: that index holds
-- an entry for every row claimed since the last vacuum, and a plan cached while the table was
-- small would favour it. $5 is always 'executing': as a parameter the status cannot match the
-- lease index's predicate, so the generic plan cannot pick that index.
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
SELECT id, false, seq FROM applied)SQL");

  // After parking (same transaction, so the rows are locked by now and this statement's
  // snapshot includes every signal committed before the lock was taken): a parked row with a
  // matching signal its step has not seen wakes at once. Signals arriving later block on the
  // row lock and wake the row themselves in gd_signal. Served by gd_signals_inbox.
  // Only rows this transaction parked: the outcome's claim (lease_seq) and this transaction's
  // timestamp. A stale outcome parked nothing; the row it names may be parked by its current
  // claim, which saw other signals (and waking it for those would re-run its step).
  wake_parked_ = Make("gd_wake_parked", R"SQL(
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
RETURNING i.id)SQL");

  // The children of parents parked on a new barrier in this transaction (join_pending still
  // NULL marks them; a stale parent was not parked, so gets none). Duplicates by unique key
  // are dropped and do not count; k-of-n waits for min(k, inserted). A barrier with nothing to
  // wait for releases its parent at once.
  spawn_children_ = Make("gd_spawn_children", (std::string(kInsertSource) + R"SQL(
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
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM upd), (SELECT count(*) FROM n))SQL")
                                               .c_str());

  // Served by the primary key (ids) with the owner guard. SKIP LOCKED: the flusher's commit
  // locks many of these rows too, in an order of its plan's choosing, and the two waiting on
  // each other deadlocked (seen in the soak: a second's stall of every commit). A row skipped
  // is being committed (which ends or renews its lease) or briefly locked by a signal or a
  // cancel; the next beat extends it, well within the lease when it spans 3 beats (the
  // engine warns when it does not).
  heartbeat_ = Make("gd_heartbeat", R"SQL(
WITH held AS (
  SELECT id FROM {s}.gd_instances
  WHERE id = ANY($2::bigint[]) AND status = 'executing' AND locked_by = $1
  FOR UPDATE SKIP LOCKED)
UPDATE {s}.gd_instances i
SET lease_expires_at = now() + $3::bigint * interval '1 millisecond'
FROM held WHERE i.id = held.id)SQL");

  // Served by the primary key (ids $2), with the owner guard: this node's claim ($3, the
  // lease_seq of each id's claim), so a row claimed again since is never released.
  release_ = Make("gd_release_claims", R"SQL(
UPDATE {s}.gd_instances i
SET status = CASE WHEN i.cancel_requested IS NULL THEN 'runnable' ELSE 'cancelled' END,
    completed_at = CASE WHEN i.cancel_requested IS NULL THEN NULL ELSE now() END,
    last_error = COALESCE(i.cancel_requested, i.last_error),
    locked_by = NULL, lease_expires_at = NULL, updated_at = now()
FROM unnest($2::bigint[], $3::bigint[]) AS c(id, seq)
WHERE i.id = ANY ($2::bigint[]) AND i.id = c.id AND i.lease_seq = c.seq
  AND i.status = 'executing' AND i.locked_by = $1)SQL");

  // Served by gd_instances_lease. SKIP LOCKED: two reapers never fight over a row.
  reap_ = Make("gd_reap_expired", (std::string(R"SQL(
WITH expired AS (
  SELECT id FROM {s}.gd_instances
  WHERE status = 'executing' AND lease_expires_at < now()
  ORDER BY lease_expires_at LIMIT $1
  FOR UPDATE SKIP LOCKED)
UPDATE {s}.gd_instances i SET )SQL") + kReleaseLostLease +
                                   " FROM expired WHERE i.id = expired.id RETURNING i.id, i.status")
                                      .c_str());

  // Await timeouts and join deadlines that passed: the row runs again (the awaiting step, or
  // the step after the join). A wake, not a failure: attempt is kept for a plain await.
  // Served by gd_instances_park.
  reap_parked_ = Make("gd_reap_parked", R"SQL(
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
RETURNING i.id, due.was, i.queue)SQL");

  // Served by gd_instances_lease (executing rows), filtered by owner.
  reclaim_node_ = Make("gd_reclaim_node", (std::string("UPDATE {s}.gd_instances i SET ") +
                                           kReleaseLostLease +
                                           " WHERE i.status = 'executing' AND i.locked_by = $1 "
                                           "RETURNING i.id, i.status")
                                              .c_str());

  // Served by gd_instances_terminal: deletes at most $2 of the oldest terminal rows past
  // retention; never a full scan.
  gc_ = Make("gd_gc_sweep", R"SQL(
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
DELETE FROM {s}.gd_instances i USING old WHERE i.id = old.id)SQL");

  node_upsert_ = Make("gd_node_upsert", R"SQL(
INSERT INTO {s}.gd_nodes (id, engine, host, pid, proc_start, queues, pid_ns, heartbeat_ms,
                          lease_ms)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, NULLIF($7, ''), $8::bigint, $9::bigint)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), queues = EXCLUDED.queues)SQL");
  node_heartbeat_ =
      Make("gd_node_heartbeat", "UPDATE {s}.gd_nodes SET heartbeat_at = now() WHERE id = $1");
  node_delete_ = Make("gd_node_delete", "DELETE FROM {s}.gd_nodes WHERE id = $1");
  // A scan: one row per running engine. `silent`: the row lags kSilentBeats of the node's own
  // heartbeat interval and its lease ttl ($2 and $3 for a node that did not record them).
  nodes_on_host_ = Make("gd_nodes_on_host", (R"SQL(
SELECT id, host, pid, proc_start, COALESCE(pid_ns, ''),
       heartbeat_at < now() - GREATEST()SQL" + std::to_string(kSilentBeats) +
                                             R"SQL( * COALESCE(heartbeat_ms, $2::bigint),
                                                COALESCE(lease_ms, $3::bigint))
                                      * interval '1 millisecond'
FROM {s}.gd_nodes WHERE host = $1)SQL")
                                                .c_str());
  nodes_prune_ = Make("gd_nodes_prune", R"SQL(
DELETE FROM {s}.gd_nodes
WHERE heartbeat_at < now() - $1::bigint * interval '1 millisecond' RETURNING id)SQL");

  get_ = Make("gd_get",
              (std::string("SELECT ") + kInfoColumns + " FROM {s}.gd_instances WHERE id = $1")
                  .c_str());
  // Served by gd_instances_parent.
  // Served by gd_instances_parent: the children ids of a set of instances.
  children_ = Make("gd_children",
                   "SELECT parent_id, id FROM {s}.gd_instances "
                   "WHERE parent_id = ANY($1::bigint[]) ORDER BY parent_id, id");
  list_ = Make("gd_list", (std::string("SELECT ") + kInfoColumns + R"SQL( FROM {s}.gd_instances
WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR queue = $2)
  AND ($3::text IS NULL OR fsm = $3)
  AND ($5::text IS NULL OR unique_key = $5 OR partition_key = $5)
  AND ($6::bigint IS NULL OR id < $6)
ORDER BY id DESC LIMIT $4)SQL")
                              .c_str());
  // The function holds the race-free delivery logic (migration 2, replaced by 5), so SQL
  // callers share it.
  signal_ = Make("gd_deliver_signal",
                 "SELECT {s}.gd_signal($1::bigint, $2::text, $3::text, $4::jsonb, $5::text)");
  // Served by gd_signals_inbox (its instance_id prefix; sorted by id here).
  signals_of_ = Make("gd_signals_of", R"SQL(
SELECT id, name, payload, dedup_key, consumed_at IS NOT NULL, inserted_at
FROM {s}.gd_signals WHERE instance_id = $1 ORDER BY id)SQL");
  counts_ = Make("gd_counts",
                 "SELECT queue, status, count(*) FROM {s}.gd_instances GROUP BY queue, status");
}

void Store::SetPartitionLimits(const std::map<std::string, int>& limits) {
  partition_limits_ = Json(limits).dump();
}

pg::Statement Store::Make(const char* name, const char* sql) const {
  return pg::Statement{name, WithSchema(sql, schema_)};
}

std::optional<std::int64_t> Store::InsertOne(pg::Connection& c, const NewInstance& row,
                                             bool ad_hoc,
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
      if (!res.Bool(i, 3)) continue;
      std::string queue = res.String(i, 2);
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
  for (int i = 0; i < r.rows(); ++i) {
    if (r.Bool(i, 19)) {  // contended: only id, fsm and key are set
      out.contended.push_back({r.Int64(i, 0), r.String(i, 1), r.String(i, 10)});
      continue;
    }
    ClaimedRow row;
    row.id = r.Int64(i, 0);
    row.fsm = r.String(i, 1);
    row.fsm_version = r.Int(i, 2);
    row.step = r.String(i, 3);
    row.attempt = r.Int(i, 5);
    row.max_attempts = r.Int(i, 6);
    row.priority = r.Int(i, 7);
    row.lease_seq = r.Int64(i, 8);
    row.queue = r.String(i, 9);
    row.partition_key = r.OptString(i, 10);
    row.unique_key = r.OptString(i, 11);
    if (!r.IsNull(i, 12)) {
      row.rate_limit = RateLimitRef{r.String(i, 12), r.String(i, 13),
                                    r.IsNull(i, 14) ? 1 : r.Int(i, 14)};
    }
    if (!r.IsNull(i, 18)) row.rate_paid_late = Millis{r.Int64(i, 18)};
    auto opt_text = [&](int col) {
      return r.IsNull(i, col) ? std::nullopt : std::optional<std::string_view>(r.Text(i, col));
    };
    DecodeClaimJson(r.Text(i, 4), opt_text(15), opt_text(16), row);
    rows.push_back(std::move(row));
  }
  // UPDATE ... RETURNING does not keep the picker's order; restore it.
  std::sort(rows.begin(), rows.end(), [](const ClaimedRow& a, const ClaimedRow& b) {
    return a.priority != b.priority ? a.priority < b.priority : a.id < b.id;
  });
  return out;
}

CommitPayload EncodeCommit(const std::vector<OutcomeRow>& rows) {
  // The arrays are assembled as text: states and results are already encoded JSON, and
  // re-parsing them only to print them again would cost more than the commit.
  auto str = [](const std::optional<std::string>& s) { return JsonOpt(s); };
  auto ids_json = [](const std::vector<std::int64_t>& ids) {
    return ids.empty() ? std::string("null") : Json(ids).dump();
  };
  CommitPayload out;
  std::string& arr = out.outcomes;
  std::string& wake = out.wakes;
  std::string& kids = out.children;
  std::string& joins = out.joins;
  arr = wake = kids = joins = "[";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& o = rows[i];
    if (i) arr += ',';
    arr += fmt::format(
        R"({{"id":{},"seq":{},"status":"{}","attempt":{},"keep":{},"step":{},"state":{},)"
        R"("delay_ms":{},"result":{},"last_error":{},"set_partition":{},"partition_key":{},)"
        R"("rate_limit":{},"rate_key":{},"rate_weight":{},"consume":{},"clear_inbox":{},)"
        R"("awaiting":{},"await_next_step":{},"park_ms":{},"join_next_step":{},)"
        R"("keep_awaiting":{},"ran_step":{},"ran_attempt":{},"duration_ms":{},)"
        R"("claim_step":{}}})",
        o.id, o.lease_seq, o.status, o.attempt, o.keep ? "true" : "false", str(o.step),
        o.state ? *o.state : "null", JsonOpt(o.delay_ms), o.result ? *o.result : "null",
        str(o.last_error), o.partition ? "true" : "false",
        o.partition ? JsonOpt(*o.partition) : "null",
        o.rate_limit ? JsonText(o.rate_limit->name) : "null",
        o.rate_limit && !o.rate_limit->key.empty() ? JsonText(o.rate_limit->key) : "null",
        o.rate_limit ? std::to_string(o.rate_limit->weight) : "null", ids_json(o.consume),
        o.clear_inbox ? "true" : "false",
        // (repaired like every other string: a throw here would fail the whole group commit)
        o.awaiting.empty() ? std::string("null")
                           : Json(o.awaiting).dump(-1, ' ', false, Json::error_handler_t::replace),
        str(o.await_next_step), JsonOpt(o.park_ms), str(o.join_next_step),
        o.keep_awaiting ? "true" : "false", o.ran_step.empty() ? "null" : JsonText(o.ran_step),
        o.ran_attempt, o.duration_ms ? fmt::format("{:.3f}", *o.duration_ms) : "null",
        o.claim_step);
    if (o.status == "awaiting_signal") {
      if (wake.size() > 1) wake += ',';
      wake += fmt::format(R"({{"id":{},"seq":{},"shown":{}}})", o.id, o.lease_seq,
                          ids_json(o.shown));
    }
    if (o.status == "awaiting_children") {
      if (joins.size() > 1) joins += ',';
      joins += fmt::format(R"({{"id":{},"wait_for":{}}})", o.id, JsonOpt(o.wait_for));
      for (const auto& child : o.children) {
        if (kids.size() > 1) kids += ',';
        AppendNewInstance(kids, child);
        kids.back() = ',';  // reopen the object to add its parent
        kids += fmt::format(R"("parent":{}}})", o.id);
      }
    }
  }
  arr += ']';
  wake += ']';
  kids += ']';
  joins += ']';
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
    done.push_back({r.Int64(i, 0), r.Int64(i, 2), r.Bool(i, 1)});
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

std::vector<ReapedRow> Store::ReapExpired(pg::Connection& c, int limit) const {
  pg::Params p;
  p.Add(limit);
  return ReadReaped(c.Execute(reap_, p));
}

std::vector<ParkedWake> Store::ReapParked(pg::Connection& c, int limit) const {
  auto r = c.Execute(reap_parked_, pg::Params().Add(limit));
  std::vector<ParkedWake> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back({r.Int64(i, 0), r.String(i, 1), r.String(i, 2)});
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

void Store::NodeUpsert(pg::Connection& c, const std::string& id, const std::string& engine,
                       const std::string& host, int pid, const std::string& proc_start,
                       const std::string& pid_ns, Millis heartbeat_interval,
                       Millis lease_ttl, const std::string& queues_json) const {
  pg::Params p;
  p.Add(id).Add(engine).Add(host).Add(pid).Add(proc_start).Add(queues_json).Add(pid_ns);
  p.Add(static_cast<std::int64_t>(heartbeat_interval.count()))
      .Add(static_cast<std::int64_t>(lease_ttl.count()));
  c.Execute(node_upsert_, p);
}

void Store::NodeHeartbeat(pg::Connection& c, const std::string& id) const {
  pg::Params p;
  p.Add(id);
  c.Execute(node_heartbeat_, p);
}

void Store::NodeDelete(pg::Connection& c, const std::string& id) const {
  pg::Params p;
  p.Add(id);
  c.Execute(node_delete_, p);
}

std::vector<NodeRow> Store::NodesOnHost(pg::Connection& c, const std::string& host,
                                        Millis heartbeat_interval, Millis lease_ttl) const {
  pg::Params p;
  p.Add(host)
      .Add(static_cast<std::int64_t>(heartbeat_interval.count()))
      .Add(static_cast<std::int64_t>(lease_ttl.count()));
  auto r = c.Execute(nodes_on_host_, p);
  std::vector<NodeRow> out;
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back({r.String(i, 0), r.String(i, 1), r.Int(i, 2), r.String(i, 3), r.String(i, 4),
                   r.Bool(i, 5)});
  }
  return out;
}

std::vector<std::string> Store::NodesPrune(pg::Connection& c, Millis age) const {
  pg::Params p;
  p.Add(static_cast<std::int64_t>(age.count()));
  auto r = c.Execute(nodes_prune_, p);
  std::vector<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.String(i, 0));
  return out;
}

std::optional<InstanceInfo> Store::Get(pg::Connection& c, std::int64_t id) const {
  pg::Params p;
  p.Add(id);
  auto r = c.Execute(get_, p);
  if (r.rows() == 0) return std::nullopt;
  InstanceInfo info = ReadInfo(r, 0);
  FillChildren(c, std::span<InstanceInfo>(&info, 1));
  auto sg = c.Execute(signals_of_, p);
  for (int i = 0; i < sg.rows(); ++i) {
    SignalInfo s;
    s.id = sg.Int64(i, 0);
    s.name = sg.String(i, 1);
    s.payload = ParseForDisplay(sg.Text(i, 2));
    s.dedup_key = sg.OptString(i, 3);
    s.consumed = sg.Bool(i, 4);
    s.inserted_at = sg.String(i, 5);
    info.signals.push_back(std::move(s));
  }
  return info;
}

std::int64_t Store::Signal(pg::Connection& c, std::optional<std::int64_t> id,
                           const std::optional<std::string>& key, const std::string& name,
                           const std::string& payload,
                           const std::optional<std::string>& dedup) const {
  pg::Params p;
  p.Add(id).Add(key).Add(name).Add(payload).Add(dedup);
  const std::int64_t signal_id = c.Execute(signal_, p).Int64(0, 0);
  GD_CRASH_POINT("mid_signal_delivery");  // committed; the caller has not learnt the id
  return signal_id;
}

std::vector<InstanceInfo> Store::List(pg::Connection& c, const ListFilter& f) const {
  pg::Params p;
  p.Add(f.status).Add(f.queue).Add(f.fsm).Add(f.limit).Add(f.key).Add(f.before_id);
  auto r = c.Execute(list_, p);
  std::vector<InstanceInfo> out;
  out.reserve(r.rows());
  for (int i = 0; i < r.rows(); ++i) out.push_back(ReadInfo(r, i));
  FillChildren(c, out);
  return out;
}

void Store::FillChildren(pg::Connection& c, std::span<InstanceInfo> infos) const {
  if (infos.empty()) return;
  std::vector<std::int64_t> ids;
  for (const auto& info : infos) ids.push_back(info.id);
  std::map<std::int64_t, std::vector<std::int64_t>> kids;
  auto ch = c.Execute(children_, pg::Params().Add(IdArray(ids)));
  for (int i = 0; i < ch.rows(); ++i) kids[ch.Int64(i, 0)].push_back(ch.Int64(i, 1));
  for (auto& info : infos) {
    if (auto it = kids.find(info.id); it != kids.end()) info.children = std::move(it->second);
  }
}

StatusCounts Store::Counts(pg::Connection& c) const {
  auto r = c.Execute(counts_);
  StatusCounts out;
  for (int i = 0; i < r.rows(); ++i) {
    const std::string queue = r.String(i, 0);
    const std::string status = r.String(i, 1);
    const std::int64_t n = r.Int64(i, 2);
    out.queues[queue][status] += n;
    out.total[status] += n;
  }
  return out;
}

}  // namespace gen_durable::detail
