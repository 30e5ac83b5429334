// Schema versions 3 to 5: hot-path indexes, operating it, correctness under contention.
#include "gen_durable/schema/versions.hpp"

namespace gen_durable::detail::ddl {

// Version 3: less index churn on the hot path. Every transition changes `status`, which every
// partial index's predicate names, so no update is HOT and each index that takes the new row
// version costs an insertion. Two indexes took one on every claim for little use.
const char* const kV3 = R"SQL(
-- gd_list's filters are optional parameters, so its plan never used this index.
DROP INDEX {s}.gd_instances_status;
-- gd_reclaim_node (once per start) now scans gd_instances_lease: executing rows are few.
DROP INDEX {s}.gd_instances_owner;
-- The default scope was stored in every row (109 of a row's 244 bytes, written again by every
-- transition): NULL now stands for it. The generated column and its index are rebuilt around
-- the new expression.
DROP INDEX {s}.gd_instances_unique;
ALTER TABLE {s}.gd_instances DROP COLUMN unique_hold;
ALTER TABLE {s}.gd_instances ALTER COLUMN unique_scope DROP NOT NULL,
                             ALTER COLUMN unique_scope DROP DEFAULT;
UPDATE {s}.gd_instances SET unique_scope = NULL
WHERE unique_scope = '{scheduled,runnable,executing,awaiting_signal,awaiting_children}';
ALTER TABLE {s}.gd_instances ADD COLUMN unique_hold text GENERATED ALWAYS AS (
  CASE WHEN unique_key IS NOT NULL AND status = ANY (COALESCE(
         unique_scope, '{scheduled,runnable,executing,awaiting_signal,awaiting_children}'))
       THEN unique_key END) STORED;
-- insert / insert_batch / children: at most one row per key among the statuses in its scope.
CREATE UNIQUE INDEX gd_instances_unique ON {s}.gd_instances (unique_hold)
  WHERE unique_hold IS NOT NULL;
-- A queue table turns over its rows: vacuum it after 1% of them changed, not the default 20%,
-- so the dead index entries at the head of the claim index are cleaned while they are few.
ALTER TABLE {s}.gd_instances SET (autovacuum_vacuum_scale_factor = 0.01,
                                  autovacuum_vacuum_insert_scale_factor = 0.01,
                                  autovacuum_analyze_scale_factor = 0.02);
)SQL";

// Version 4: operating it. Queue state shared by the cluster, cooperative cancellation of
// running instances, and the per-instance history.
const char* const kV4 = R"SQL(
-- Cluster-wide queue state: a paused queue is claimed by no node (gd_claim reads it).
CREATE TABLE {s}.gd_queues (
  name        text PRIMARY KEY,
  paused      boolean NOT NULL DEFAULT false,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- A running instance asked to stop (the reason): every transition out of its claim (outcome
-- commit, release, reap) makes it `cancelled` instead. NULL on every other row.
ALTER TABLE {s}.gd_instances ADD COLUMN cancel_requested text;

-- Transitions of instances: step outcomes (when the engine's history option is on) and
-- operator actions. Deleted with the instance by delete-by-filter; otherwise by age (GC).
CREATE TABLE {s}.gd_history (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  instance_id  bigint NOT NULL,
  event        text NOT NULL,
  step         text NOT NULL,
  status       text NOT NULL,
  attempt      integer NOT NULL DEFAULT 0,
  duration_ms  double precision,
  error        text,
  node         text NOT NULL,
  at           timestamptz NOT NULL DEFAULT now()
);
-- show / dashboard: one instance's entries, newest first.
CREATE INDEX gd_history_instance ON {s}.gd_history (instance_id, id);
-- gd_history_sweep: entries past retention, oldest first.
CREATE INDEX gd_history_at ON {s}.gd_history (at);
)SQL";

// Version 5: correct under contention. Rate-limit reservations (a throttled backlog waits in
// token order instead of coming due all at once); partition slots taken under a lock seen by
// every claimant (a contended keyed row is skipped, not a reason to refuse a whole claim);
// start-up reclaim only of nodes proven dead; signals: a dedup record outlives the end of its
// instance (until GC deletes the instance), so a sender's retry after the end is still
// recognised, and consumed signals without a dedup key are deleted, the ones kept out of the
// path of the wake.
const char* const kV5 = R"SQL(
-- A throttled row holds a reserved token for its next start (taken from its bucket when it was
-- handed back): the claim that picks it up clears the flag and the row starts without taking
-- another. Set only by gd_rate_take.
ALTER TABLE {s}.gd_instances ADD COLUMN rate_paid boolean NOT NULL DEFAULT false;

-- gd_rate_take: the next runnable rows of one queue and bucket, in claim order, so that one
-- throttled row reserves the tokens of the rows behind it without reading the rest of the
-- queue. Only runnable rows that name a limit are in it.
CREATE INDEX gd_instances_rate_backlog ON {s}.gd_instances
  (queue, rate_limit, (COALESCE(rate_key, '')), priority, eligible_at, id)
  WHERE status = 'runnable' AND rate_limit IS NOT NULL;

-- gd_claim: the free slots of partition `key` (at most `wanted` of its `k`), read under a
-- transaction-scoped lock of the key that every claimant takes. VOLATILE, so the read takes a
-- snapshot of its own after the lock: it sees every claim of the key committed before the lock
-- was granted, which the claim statement's own (older) snapshot may not. A key whose lock is
-- held by another claim in flight has no free slot for this one: the row is skipped, never
-- waited on. Served by gd_instances_partition.
CREATE FUNCTION {s}.gd_partition_free_slots(key text, k integer, wanted integer)
RETURNS integer[] LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF NOT pg_try_advisory_xact_lock(hashtextextended('{c}/' || key, 0)) THEN
    RETURN '{}';
  END IF;
  RETURN ARRAY(
    SELECT s FROM generate_series(0, k - 1) s
    WHERE NOT EXISTS (SELECT 1 FROM {s}.gd_instances e
                      WHERE e.partition_key = key AND e.status = 'executing'
                        AND e.partition_slot = s)
    ORDER BY s LIMIT wanted);
END
$fn$;

-- A node records the pid namespace its pid belongs to and its heartbeat interval; NULL (a node
-- of an older version) means unknown. Nullable columns without a default: adding them rewrites
-- nothing, safe on a live table.
ALTER TABLE {s}.gd_nodes ADD COLUMN pid_ns text, ADD COLUMN heartbeat_ms bigint;

-- claim (signals shown to a step), park re-check, consume, clear: an instance's unconsumed
-- signals, a range at the end of its entries (consumed_at IS NULL is an index condition), so
-- the kept dedup records cost a wake nothing however many there are. The instance_id prefix
-- serves the cascade of an instance's deletion and gd_signals_of (show).
DROP INDEX {s}.gd_signals_inbox;
CREATE INDEX gd_signals_inbox ON {s}.gd_signals (instance_id, consumed_at, id);
-- A consumed signal without a dedup key is now deleted when consumed; drop those kept so far.
DELETE FROM {s}.gd_signals WHERE consumed_at IS NOT NULL AND dedup_key IS NULL;
-- Every progressing outcome deletes or marks signals: vacuum after 1% of the rows changed, so
-- the dead entries in the unconsumed ranges of the inbox index are cleaned while they are few.
ALTER TABLE {s}.gd_signals SET (autovacuum_vacuum_scale_factor = 0.01,
                                autovacuum_analyze_scale_factor = 0.02);

-- Delivers a signal by instance id or by unique key; see docs/guides/signals.md.
-- Each statement of a plpgsql function takes a new snapshot, so after the row lock below the
-- function sees the newest committed status: a park that committed first is woken here, and a
-- park that commits later finds this signal in its own re-check. No wakeup is lost.
-- A repeated dedup key returns the first signal's id, also once the target has finished (its
-- dedup records stay until GC deletes it): by id, the key is the target's; by unique key, it is
-- looked up among every instance that held the key, so a retry after the key passed to a newer
-- instance does not reach the newer one. Any other signal to a finished target is refused.
CREATE OR REPLACE FUNCTION {s}.gd_signal(target_id bigint, target_key text, signal_name text,
                                         signal_payload jsonb DEFAULT 'null',
                                         dedup text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
  inst record;
  live boolean;
  sid bigint;
BEGIN
  IF signal_name IS NULL OR signal_name = '' THEN
    RAISE EXCEPTION 'gd_signal: signal name must not be empty' USING ERRCODE = '22023';
  END IF;
  IF target_id IS NOT NULL THEN
    SELECT id, status, queue INTO inst FROM {s}.gd_instances
    WHERE id = target_id FOR UPDATE;
  ELSE
    -- served by gd_instances_unique_key
    SELECT id, status, queue INTO inst FROM {s}.gd_instances
    WHERE unique_key = target_key AND status NOT IN ('done', 'failed', 'cancelled')
    ORDER BY id DESC LIMIT 1 FOR UPDATE;
  END IF;
  live := FOUND AND inst.status NOT IN ('done', 'failed', 'cancelled');
  -- After the lock: a concurrent delivery of the same key to this row has committed by now.
  IF dedup IS NOT NULL THEN
    IF target_id IS NOT NULL THEN
      -- served by gd_signals_dedup
      SELECT id INTO sid FROM {s}.gd_signals WHERE instance_id = target_id AND dedup_key = dedup;
    ELSE
      -- served by gd_instances_unique_key, then gd_signals_dedup per instance
      SELECT s.id INTO sid FROM {s}.gd_instances i JOIN {s}.gd_signals s ON s.instance_id = i.id
      WHERE i.unique_key = target_key AND s.dedup_key = dedup
      ORDER BY s.id LIMIT 1;
    END IF;
    IF sid IS NOT NULL THEN
      RETURN sid;  -- already delivered: a no-op success
    END IF;
  END IF;
  IF NOT live THEN
    RAISE EXCEPTION 'no_target: no live instance %', COALESCE(target_id::text, target_key)
      USING ERRCODE = 'GD404';
  END IF;
  INSERT INTO {s}.gd_signals (instance_id, name, payload, dedup_key)
  VALUES (inst.id, signal_name, COALESCE(signal_payload, 'null'), dedup)
  ON CONFLICT (instance_id, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
  RETURNING id INTO sid;
  IF sid IS NULL THEN
    -- (the row lock serializes deliveries to a target, so only a guard: the key was taken)
    SELECT id INTO sid FROM {s}.gd_signals WHERE instance_id = inst.id AND dedup_key = dedup;
    RETURN sid;
  END IF;
  UPDATE {s}.gd_instances SET
    status = 'runnable',
    step = COALESCE(await_next_step, step),
    attempt = CASE WHEN await_next_step IS NOT NULL THEN 0 ELSE attempt END,
    await_next_step = NULL, park_deadline = NULL,
    eligible_at = now(), updated_at = now()
  WHERE id = inst.id AND status = 'awaiting_signal' AND signal_name = ANY (awaiting);
  IF FOUND THEN
    PERFORM pg_notify('{c}', inst.queue);
  END IF;
  RETURN sid;
END
$fn$;
)SQL";

}  // namespace gen_durable::detail::ddl
