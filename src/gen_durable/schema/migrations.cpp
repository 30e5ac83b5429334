// The schema, as an ordered list of migrations. Each index says which statement it serves.
#include "gen_durable/schema/migrations.hpp"

#include <fmt/format.h>

#include "gen_durable/error.hpp"
#include "gen_durable/model/validate.hpp"

namespace gen_durable::detail {

namespace {

// Version 1: instances, nodes.
constexpr const char* kV1 = R"SQL(
CREATE TABLE {s}.gd_instances (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  fsm              text NOT NULL,
  fsm_version      integer NOT NULL DEFAULT 1,
  queue            text NOT NULL DEFAULT 'default',
  step             text NOT NULL,
  status           text NOT NULL DEFAULT 'runnable'
                   CHECK (status IN ('scheduled', 'runnable', 'executing', 'awaiting_signal',
                                     'awaiting_children', 'done', 'failed', 'cancelled')),
  state            jsonb NOT NULL DEFAULT '{}',
  result           jsonb,
  last_error       text,
  attempt          integer NOT NULL DEFAULT 0,
  max_attempts     integer,
  priority         integer NOT NULL DEFAULT 0,
  eligible_at      timestamptz NOT NULL DEFAULT now(),
  -- Ownership of a claim: the node id and a per-row claim counter. Every outcome commit is
  -- guarded by (status = 'executing', locked_by, lease_seq), so a late outcome from a lost
  -- lease, even on the same node, commits nothing.
  locked_by        text,
  lease_seq        bigint NOT NULL DEFAULT 0,
  lease_expires_at timestamptz,
  parent_id        bigint,
  partition_key    text,
  unique_key       text,
  inserted_at      timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  completed_at     timestamptz
) WITH (fillfactor = 85);

-- claim: the picker's ordered scan of one queue's ready rows. Only runnable rows are in it,
-- so the index stays small however many rows are terminal or executing.
CREATE INDEX gd_instances_claim ON {s}.gd_instances (queue, priority, eligible_at, id)
  WHERE status = 'runnable';

-- promote_due: rows waiting for a future eligible_at. Keeping them out of the claim index means
-- a deep backlog of future work costs the picker nothing.
CREATE INDEX gd_instances_scheduled ON {s}.gd_instances (queue, eligible_at)
  WHERE status = 'scheduled';

-- reap_expired: executing rows by lease expiry.
CREATE INDEX gd_instances_lease ON {s}.gd_instances (lease_expires_at)
  WHERE status = 'executing';

-- heartbeat / release_claims / reclaim_node: executing rows by owner.
CREATE INDEX gd_instances_owner ON {s}.gd_instances (locked_by)
  WHERE status = 'executing';

-- gc_sweep: terminal rows by completion time.
CREATE INDEX gd_instances_terminal ON {s}.gd_instances (completed_at)
  WHERE status IN ('done', 'failed', 'cancelled');

-- children_of / show: a parent's children.
CREATE INDEX gd_instances_parent ON {s}.gd_instances (parent_id)
  WHERE parent_id IS NOT NULL;

-- list_recent with a status filter.
CREATE INDEX gd_instances_status ON {s}.gd_instances (status, id);

-- Live engines: each heartbeats its row; a restarted node finds its dead predecessor here.
CREATE TABLE {s}.gd_nodes (
  id            text PRIMARY KEY,
  engine        text NOT NULL,
  host          text NOT NULL,
  pid           integer NOT NULL,
  proc_start    text NOT NULL DEFAULT '',
  queues        jsonb NOT NULL DEFAULT '{}',
  started_at    timestamptz NOT NULL DEFAULT now(),
  heartbeat_at  timestamptz NOT NULL DEFAULT now()
);
)SQL";

// Version 2: signals and await, children and the join barrier, unique and partition keys,
// rate limits, and the SQL functions for other languages.
constexpr const char* kV2 = R"SQL(
ALTER TABLE {s}.gd_instances
  -- Statuses in which unique_key is held; unique_hold is the key while the row is in scope.
  ADD COLUMN unique_scope text[] NOT NULL
    DEFAULT '{scheduled,runnable,executing,awaiting_signal,awaiting_children}',
  ADD COLUMN unique_hold text
    GENERATED ALWAYS AS (CASE WHEN status = ANY (unique_scope) THEN unique_key END) STORED,
  -- await: the signal names that wake the row (kept after the wake: the woken step is shown
  -- the signals of these names), where it resumes, and when it wakes anyway.
  ADD COLUMN awaiting text[],
  ADD COLUMN await_next_step text,
  ADD COLUMN park_deadline timestamptz,
  -- join barrier of the last schedule_children: its number, the step after it, and how many
  -- more children must terminate. Children carry the number of the barrier they belong to.
  ADD COLUMN join_seq integer NOT NULL DEFAULT 0,
  ADD COLUMN join_next_step text,
  ADD COLUMN join_pending integer,
  ADD COLUMN parent_join integer,
  -- which of its partition's slots an executing row holds (partition_limits allow K > 1)
  ADD COLUMN partition_slot integer,
  -- the token bucket the next start of this row is subject to
  ADD COLUMN rate_limit text,
  ADD COLUMN rate_key text,
  ADD COLUMN rate_weight integer;

-- insert / insert_batch / children: at most one row per key among the statuses in its scope.
-- A constraint, so two racing inserts cannot both succeed.
CREATE UNIQUE INDEX gd_instances_unique ON {s}.gd_instances (unique_hold)
  WHERE unique_hold IS NOT NULL;

-- gd_signal by key: the live row holding a key.
CREATE INDEX gd_instances_unique_key ON {s}.gd_instances (unique_key)
  WHERE unique_key IS NOT NULL;

-- At most one executing step per partition key and slot, cluster-wide (one slot unless a
-- partition limit grants K): a claim of a taken slot cannot commit. Also serves the picker's
-- "how busy is this key" probe.
CREATE UNIQUE INDEX gd_instances_partition ON {s}.gd_instances (partition_key, partition_slot)
  WHERE status = 'executing' AND partition_key IS NOT NULL;

-- reap_parked: await timeouts and join deadlines.
CREATE INDEX gd_instances_park ON {s}.gd_instances (park_deadline)
  WHERE status IN ('awaiting_signal', 'awaiting_children') AND park_deadline IS NOT NULL;

-- The inbox. Consumed signals are kept (marked) so a dedup key stays effective; terminal
-- instances' signals are deleted, and all of them go with the instance (cascade).
CREATE TABLE {s}.gd_signals (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  instance_id  bigint NOT NULL REFERENCES {s}.gd_instances (id) ON DELETE CASCADE,
  name         text NOT NULL,
  payload      jsonb NOT NULL DEFAULT 'null',
  dedup_key    text,
  consumed_at  timestamptz,
  inserted_at  timestamptz NOT NULL DEFAULT now()
);
-- claim (signals shown to a step), park re-check, consume, cascade: an instance's signals.
CREATE INDEX gd_signals_inbox ON {s}.gd_signals (instance_id, id);
-- gd_signal: one signal per (instance, dedup_key).
CREATE UNIQUE INDEX gd_signals_dedup ON {s}.gd_signals (instance_id, dedup_key)
  WHERE dedup_key IS NOT NULL;

-- Token buckets, created on first use and pruned by GC when idle.
CREATE TABLE {s}.gd_rate_buckets (
  name        text NOT NULL,
  key         text NOT NULL DEFAULT '',
  tokens      double precision NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (name, key)
);

-- The join barrier: when a child becomes terminal, in that child's own transaction, its
-- parent's counter drops; the last one makes the parent runnable at the step after the join.
-- A child of an older barrier (parent_join <> join_seq) no longer counts.
CREATE FUNCTION {s}.gd_child_terminated() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  q text;
BEGIN
  UPDATE {s}.gd_instances p SET
    join_pending = p.join_pending - 1,
    status = CASE WHEN p.join_pending <= 1 THEN 'runnable' ELSE p.status END,
    step = CASE WHEN p.join_pending <= 1 THEN p.join_next_step ELSE p.step END,
    attempt = CASE WHEN p.join_pending <= 1 THEN 0 ELSE p.attempt END,
    eligible_at = CASE WHEN p.join_pending <= 1 THEN now() ELSE p.eligible_at END,
    park_deadline = CASE WHEN p.join_pending <= 1 THEN NULL ELSE p.park_deadline END,
    updated_at = now()
  WHERE p.id = NEW.parent_id AND p.status = 'awaiting_children' AND p.join_seq = NEW.parent_join
  RETURNING CASE WHEN p.status = 'runnable' THEN p.queue END INTO q;
  IF q IS NOT NULL THEN
    PERFORM pg_notify(TG_ARGV[0], q);
  END IF;
  RETURN NULL;
END
$fn$;

CREATE TRIGGER gd_child_terminated AFTER UPDATE OF status ON {s}.gd_instances
  FOR EACH ROW
  WHEN (NEW.parent_id IS NOT NULL AND NEW.status IN ('done', 'failed', 'cancelled')
        AND OLD.status NOT IN ('done', 'failed', 'cancelled'))
  EXECUTE FUNCTION {s}.gd_child_terminated('{c}');

-- Delivers a signal by instance id or by unique key (docs/guides/signals.md). Each statement of a
-- plpgsql function takes a new snapshot, so after the row lock below the function sees the newest
-- committed status: a park that committed first is woken here, and a park that commits later finds
-- this signal in its own re-check. No wakeup is lost.
CREATE FUNCTION {s}.gd_signal(target_id bigint, target_key text, signal_name text,
                              signal_payload jsonb DEFAULT 'null', dedup text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
  inst record;
  sid bigint;
BEGIN
  IF signal_name IS NULL OR signal_name = '' THEN
    RAISE EXCEPTION 'gd_signal: signal name must not be empty' USING ERRCODE = '22023';
  END IF;
  IF target_id IS NOT NULL THEN
    SELECT id, status, queue INTO inst FROM {s}.gd_instances
    WHERE id = target_id FOR UPDATE;
  ELSE
    SELECT id, status, queue INTO inst FROM {s}.gd_instances
    WHERE unique_key = target_key AND status NOT IN ('done', 'failed', 'cancelled')
    ORDER BY id DESC LIMIT 1 FOR UPDATE;
  END IF;
  IF NOT FOUND OR inst.status IN ('done', 'failed', 'cancelled') THEN
    RAISE EXCEPTION 'no_target: no live instance %', COALESCE(target_id::text, target_key)
      USING ERRCODE = 'GD404';
  END IF;
  INSERT INTO {s}.gd_signals (instance_id, name, payload, dedup_key)
  VALUES (inst.id, signal_name, COALESCE(signal_payload, 'null'), dedup)
  ON CONFLICT (instance_id, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
  RETURNING id INTO sid;
  IF sid IS NULL THEN
    SELECT id INTO sid FROM {s}.gd_signals WHERE instance_id = inst.id AND dedup_key = dedup;
    RETURN sid;  -- already delivered: a no-op success
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

-- Inserts an instance from plain SQL (any language, a trigger). Returns the id, or NULL when
-- unique_key is held by another instance in its scope. Runs at `step` (default 'start'; jobs
-- defined with gen_durable::Job start at 'perform').
CREATE FUNCTION {s}.gd_insert(fsm text, state jsonb DEFAULT '{}', queue text DEFAULT 'default',
                              step text DEFAULT 'start', priority integer DEFAULT 0,
                              schedule_in_ms bigint DEFAULT 0, unique_key text DEFAULT NULL,
                              partition_key text DEFAULT NULL, fsm_version integer DEFAULT 1,
                              max_attempts integer DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
  at timestamptz := now() + COALESCE(schedule_in_ms, 0) * interval '1 millisecond';
  new_id bigint;
BEGIN
  INSERT INTO {s}.gd_instances AS i (fsm, fsm_version, queue, step, state, priority, eligible_at,
                                     status, unique_key, partition_key, max_attempts)
  VALUES (fsm, fsm_version, queue, step, COALESCE(state, '{}'), priority, at,
          CASE WHEN at > now() THEN 'scheduled' ELSE 'runnable' END, unique_key, partition_key,
          max_attempts)
  ON CONFLICT (unique_hold) WHERE unique_hold IS NOT NULL DO NOTHING
  RETURNING i.id INTO new_id;
  IF new_id IS NOT NULL AND at <= now() THEN
    PERFORM pg_notify('{c}', queue);
  END IF;
  RETURN new_id;
END
$fn$;
)SQL";

// Version 3: less index churn on the hot path. Every transition changes `status`, which every
// partial index's predicate names, so no update is HOT and each index that takes the new row
// version costs an insertion. Two indexes took one on every claim for little use.
constexpr const char* kV3 = R"SQL(
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
constexpr const char* kV4 = R"SQL(
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
constexpr const char* kV5 = R"SQL(
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

// Version 6: least privilege. Every function pins its search_path to pg_catalog, pg_temp, and
// names the schema's own objects in full, so no object another role creates (in public or in
// any schema a caller puts first) can stand in for an operator, a cast or a function they use:
// the functions do the same whoever calls them and whatever the caller's search_path is.
// gd_insert and gd_signal run as their owner (SECURITY DEFINER), so a producer role needs
// EXECUTE on them and no privilege on any table; EXECUTE is no longer granted to PUBLIC, and
// they enforce the client's limits on names, keys and sizes themselves.
// Also: each node records how long its leases last, so a silent row is taken as proof of
// death only once the leases it was renewing have expired (a live node's row is silent whenever
// the database is unreachable). Nullable without a default: adding it rewrites nothing.
constexpr const char* kV6 = R"SQL(
ALTER TABLE {s}.gd_nodes ADD COLUMN lease_ms bigint;
-- The number of outcomes committed under the row's current claim (the claim sets 0): a kept
-- claim stays executing under one lease_seq, and a retried commit must not apply a step twice.
-- A constant default: adding it rewrites nothing.
ALTER TABLE {s}.gd_instances ADD COLUMN claim_step integer NOT NULL DEFAULT 0;

-- The client's limits (src/gen_durable/model/validate.hpp): a name is not empty, at most
-- `max_bytes` bytes and has no control character (C0 or DEL); a key is not empty and at most
-- 2048 bytes (a text value holds no NUL byte). NULL passes: callers decide what NULL means.
CREATE FUNCTION {s}.gd_require_name(what text, value text, max_bytes integer)
RETURNS void LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF value = '' THEN
    RAISE EXCEPTION '%: must not be empty', what USING ERRCODE = '22023';
  ELSIF octet_length(value) > max_bytes THEN
    RAISE EXCEPTION '%: % bytes, over the limit of % bytes', what, octet_length(value), max_bytes
      USING ERRCODE = '22023';
  ELSIF value ~ '[\x01-\x1f\x7f]' THEN
    RAISE EXCEPTION '%: contains a control character', what USING ERRCODE = '22023';
  END IF;
END
$fn$;

CREATE FUNCTION {s}.gd_require_key(what text, value text)
RETURNS void LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF value = '' THEN
    RAISE EXCEPTION '%: must not be empty', what USING ERRCODE = '22023';
  ELSIF octet_length(value) > 2048 THEN
    RAISE EXCEPTION '%: % bytes, over the limit of 2048 bytes', what, octet_length(value)
      USING ERRCODE = '22023';
  END IF;
END
$fn$;

-- A JSON value of at most 8 MiB as text (the client's default max_payload_bytes).
CREATE FUNCTION {s}.gd_require_payload(what text, value jsonb)
RETURNS void LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF octet_length(value::text) > 8388608 THEN
    RAISE EXCEPTION '%: % bytes, over the limit of 8388608 bytes', what,
      octet_length(value::text) USING ERRCODE = '22023';
  END IF;
END
$fn$;

ALTER FUNCTION {s}.gd_child_terminated() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION {s}.gd_partition_free_slots(text, integer, integer)
  SET search_path = pg_catalog, pg_temp;

-- As in version 5, plus the limits, the pinned search_path and SECURITY DEFINER.
CREATE OR REPLACE FUNCTION {s}.gd_signal(target_id bigint, target_key text, signal_name text,
                                         signal_payload jsonb DEFAULT 'null',
                                         dedup text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  inst record;
  live boolean;
  sid bigint;
BEGIN
  IF signal_name IS NULL OR signal_name = '' THEN
    RAISE EXCEPTION 'gd_signal: signal name must not be empty' USING ERRCODE = '22023';
  END IF;
  PERFORM {s}.gd_require_name('gd_signal: signal_name', signal_name, 255);
  IF target_id IS NULL THEN
    PERFORM {s}.gd_require_key('gd_signal: target_key', target_key);
  END IF;
  PERFORM {s}.gd_require_key('gd_signal: dedup', dedup);
  PERFORM {s}.gd_require_payload('gd_signal: signal_payload', signal_payload);
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

-- As in version 2, plus the limits, the pinned search_path and SECURITY DEFINER. The delay is
-- multiplied as float8 * interval (pg_catalog's operator, named in full).
CREATE OR REPLACE FUNCTION {s}.gd_insert(fsm text, state jsonb DEFAULT '{}',
                                         queue text DEFAULT 'default', step text DEFAULT 'start',
                                         priority integer DEFAULT 0,
                                         schedule_in_ms bigint DEFAULT 0,
                                         unique_key text DEFAULT NULL,
                                         partition_key text DEFAULT NULL,
                                         fsm_version integer DEFAULT 1,
                                         max_attempts integer DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  at timestamptz;
  new_id bigint;
BEGIN
  IF fsm IS NULL OR queue IS NULL OR step IS NULL OR fsm_version IS NULL THEN
    RAISE EXCEPTION 'gd_insert: fsm, queue, step and fsm_version must not be NULL'
      USING ERRCODE = '22023';
  END IF;
  PERFORM {s}.gd_require_name('gd_insert: fsm', fsm, 255);
  PERFORM {s}.gd_require_name('gd_insert: queue', queue, 63);
  PERFORM {s}.gd_require_name('gd_insert: step', step, 255);
  PERFORM {s}.gd_require_key('gd_insert: unique_key', unique_key);
  PERFORM {s}.gd_require_key('gd_insert: partition_key', partition_key);
  PERFORM {s}.gd_require_payload('gd_insert: state', state);
  IF fsm_version < 1 THEN
    RAISE EXCEPTION 'gd_insert: fsm_version must be >= 1 (got %)', fsm_version
      USING ERRCODE = '22023';
  END IF;
  IF max_attempts < 0 THEN
    RAISE EXCEPTION 'gd_insert: max_attempts must be >= 0 (got %)', max_attempts
      USING ERRCODE = '22023';
  END IF;
  IF schedule_in_ms < 0 THEN
    RAISE EXCEPTION 'gd_insert: schedule_in_ms must be >= 0 (got %)', schedule_in_ms
      USING ERRCODE = '22023';
  END IF;
  at := now() OPERATOR(pg_catalog.+)
        (COALESCE(schedule_in_ms, 0)::float8 OPERATOR(pg_catalog.*) interval '1 millisecond');
  INSERT INTO {s}.gd_instances AS i (fsm, fsm_version, queue, step, state, priority, eligible_at,
                                     status, unique_key, partition_key, max_attempts)
  VALUES (fsm, fsm_version, queue, step, COALESCE(state, '{}'), COALESCE(priority, 0), at,
          CASE WHEN at > now() THEN 'scheduled' ELSE 'runnable' END, unique_key, partition_key,
          max_attempts)
  ON CONFLICT (unique_hold) WHERE unique_hold IS NOT NULL DO NOTHING
  RETURNING i.id INTO new_id;
  IF new_id IS NOT NULL AND at <= now() THEN
    PERFORM pg_notify('{c}', queue);
  END IF;
  RETURN new_id;
END
$fn$;

-- Definer functions are called by the roles granted EXECUTE (docs/security.md), not by any
-- role that can connect.
REVOKE EXECUTE ON FUNCTION {s}.gd_insert(text, jsonb, text, text, integer, bigint, text, text,
                                         integer, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {s}.gd_signal(bigint, text, text, jsonb, text) FROM PUBLIC;

-- Operator requests as rows (docs/security.md, "Control plane"). Postgres checks no privilege
-- on NOTIFY or LISTEN, and channels are per database: whoever can connect can notify. So the
-- control channel only wakes engines, which then read this table; writing a request takes the
-- privilege to write the table (pause and cancel already lived in gd_queues.paused and
-- gd_instances.cancel_requested). One row per queue and target node ('' = every node), so a
-- request replaces the one before it and outlives the nodes it was sent to.
CREATE SEQUENCE {s}.gd_control_seq;
CREATE TABLE {s}.gd_control (
  queue        text NOT NULL CHECK (octet_length(queue) BETWEEN 1 AND 255),
  node         text NOT NULL DEFAULT '' CHECK (octet_length(node) <= 255),
  -- the bound of kMaxConcurrency (include/gen_durable/options.hpp)
  concurrency  integer NOT NULL CHECK (concurrency BETWEEN 1 AND 10000),
  -- a request's place in the order of all requests: the latest one of a queue wins
  seq          bigint NOT NULL CHECK (seq > 0),
  requested_at timestamptz NOT NULL DEFAULT now(),
  -- engine name -> its declared configuration of the queue when it applied this request; a
  -- restarted engine whose configuration differs keeps its own (the newer word)
  seen         jsonb NOT NULL DEFAULT '{}',
  PRIMARY KEY (queue, node));
ALTER SEQUENCE {s}.gd_control_seq OWNED BY {s}.gd_control.seq;
)SQL";

}  // namespace

const std::vector<Migration>& Migrations() {
  static const std::vector<Migration> kAll = {
      {1, "instances and nodes", kV1},
      {2, "signals, children, unique and partition keys, rate limits, SQL functions", kV2},
      {3, "hot-path indexes and autovacuum of the instances table", kV3},
      {4, "queue state, cancellation of running instances, history", kV4},
      {5, "contention: rate-limit reservations, partition slots under a key lock, reclaim "
          "only of nodes proven dead, dedup records kept until GC, consumed signals off the "
          "wake's path",
       kV5},
      {6, "security: pinned search_path in every function, gd_insert and gd_signal SECURITY "
          "DEFINER with the client's limits and no EXECUTE for PUBLIC, scale requests in "
          "gd_control behind a payload-free control channel; nodes record their lease ttl, "
          "claims count their committed steps",
       kV6},
  };
  return kAll;
}

int LatestSchemaVersion() { return Migrations().back().version; }

namespace {
// A NOTIFY channel name (an identifier, at most 63 bytes): `prefix` + schema, or + a hash of a
// long schema name.
std::string ChannelName(const std::string& prefix, const std::string& schema) {
  std::string channel = prefix + schema;
  if (channel.size() > 63) {
    // FNV-1a: stable across processes and builds (std::hash is not).
    std::uint64_t h = 1469598103934665603ULL;
    for (unsigned char ch : schema) h = (h ^ ch) * 1099511628211ULL;
    channel = fmt::format("{}{:016x}", prefix, h);
  }
  return channel;
}

// `channel` for use inside an SQL string literal: any quote doubled.
std::string InLiteral(const std::string& channel) {
  std::string out;
  for (char ch : channel) {
    out += ch;
    if (ch == '\'') out += '\'';
  }
  return out;
}
}  // namespace

std::string ChannelFor(const std::string& schema) { return ChannelName("gen_durable.", schema); }

std::string ControlChannelFor(const std::string& schema) {
  return ChannelName("gen_durable_ctl.", schema);
}

std::string WithSchema(const std::string& sql, const std::string& schema) {
  // Options are checked when a client or engine is made; this keeps every other path (and any
  // future one) from placing an unchecked name in a statement or a function body.
  if (auto problem = SchemaNameProblem(schema); !problem.empty()) throw ConfigError(problem);
  const std::string quoted = pg::QuoteIdent(schema);
  const std::string channel = InLiteral(ChannelFor(schema));
  const std::string control = InLiteral(ControlChannelFor(schema));
  std::string out;
  out.reserve(sql.size() + 64);
  for (std::size_t i = 0; i < sql.size(); ++i) {
    if (sql.compare(i, 3, "{s}") == 0) {
      out += quoted;
      i += 2;
    } else if (sql.compare(i, 3, "{c}") == 0) {
      out += channel;
      i += 2;
    } else if (sql.compare(i, 3, "{k}") == 0) {
      out += control;
      i += 2;
    } else {
      out += sql[i];
    }
  }
  return out;
}

int CurrentSchemaVersion(pg::Connection& conn, const std::string& schema) {
  pg::Params p;
  p.Add(schema);
  auto exists = conn.ExecParams(
      "SELECT 1 FROM information_schema.tables WHERE table_schema = $1 "
      "AND table_name = 'gd_schema_migrations'",
      p);
  if (exists.rows() == 0) return 0;
  auto r = conn.Exec(WithSchema("SELECT COALESCE(max(version), 0) FROM {s}.gd_schema_migrations",
                                schema));
  return r.Int(0, 0);
}

int Migrate(pg::Connection& conn, const std::string& schema) {
  // Up to date: touch nothing, so roles without CREATE privilege can run engines and clients.
  if (CurrentSchemaVersion(conn, schema) >= LatestSchemaVersion()) return 0;
  pg::Params lock;
  lock.Add("gen_durable.migrate." + schema);
  conn.Exec("BEGIN");
  try {
    // DDL on a large table, or waiting for another node's migration, may rightly outlast the
    // session's statement timeout.
    conn.Exec("SET LOCAL statement_timeout = 0");
    // Serializes concurrent migrators: the second waits here, then sees the versions applied.
    conn.ExecParams("SELECT pg_advisory_xact_lock(hashtext($1))", lock);
    conn.Exec(WithSchema(
        "CREATE SCHEMA IF NOT EXISTS {s};"
        "CREATE TABLE IF NOT EXISTS {s}.gd_schema_migrations ("
        "  version integer PRIMARY KEY, description text NOT NULL,"
        "  applied_at timestamptz NOT NULL DEFAULT now())",
        schema));
    auto r = conn.Exec(WithSchema(
        "SELECT COALESCE(max(version), 0) FROM {s}.gd_schema_migrations", schema));
    const int current = r.Int(0, 0);
    int applied = 0;
    for (const auto& m : Migrations()) {
      if (m.version <= current) continue;
      conn.Exec(WithSchema(m.sql, schema));
      pg::Params p;
      p.Add(m.version).Add(m.description);
      conn.ExecParams(
          WithSchema("INSERT INTO {s}.gd_schema_migrations (version, description) VALUES ($1, $2)",
                     schema),
          p);
      ++applied;
    }
    conn.Exec("COMMIT");
    return applied;
  } catch (...) {
    if (!conn.broken()) {
      try {
        conn.Exec("ROLLBACK");
      } catch (...) {
      }
    }
    throw;
  }
}

std::vector<std::string> GrantStatements(const std::string& schema, const std::string& role,
                                         DatabaseRole as, const std::vector<std::string>& tables,
                                         const std::vector<std::string>& functions,
                                         const std::vector<std::string>& sequences) {
  const std::string who = pg::QuoteIdent(role);
  const std::string s = pg::QuoteIdent(schema);
  auto list = [&](const std::vector<std::string>& names) {
    std::string out;
    for (const auto& name : names) {
      if (!out.empty()) out += ", ";
      out += s + "." + name;
    }
    return out;
  };
  std::vector<std::string> out = {fmt::format("GRANT USAGE ON SCHEMA {} TO {}", s, who)};
  switch (as) {
    case DatabaseRole::kProducer:
      out.push_back(fmt::format(
          "GRANT EXECUTE ON FUNCTION {0}.gd_insert(text, jsonb, text, text, integer, bigint, "
          "text, text, integer, integer), {0}.gd_signal(bigint, text, text, jsonb, text) TO {1}",
          s, who));
      break;
    case DatabaseRole::kViewer:
      if (!tables.empty()) {
        out.push_back(fmt::format("GRANT SELECT ON TABLE {} TO {}", list(tables), who));
      }
      break;
    case DatabaseRole::kEngine:
      if (!tables.empty()) {
        out.push_back(fmt::format("GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {} TO {}",
                                  list(tables), who));
      }
      if (!functions.empty()) {
        out.push_back(fmt::format("GRANT EXECUTE ON FUNCTION {} TO {}", list(functions), who));
      }
      // (gd_control_seq: a scale request takes its place in the order of requests)
      if (!sequences.empty()) {
        out.push_back(
            fmt::format("GRANT USAGE, SELECT ON SEQUENCE {} TO {}", list(sequences), who));
      }
      break;
  }
  return out;
}

void GrantRole(pg::Connection& conn, const std::string& schema, const std::string& role,
               DatabaseRole as) {
  if (auto problem = NameProblem("grant: role", role, kMaxIdentifierBytes); !problem.empty()) {
    throw InvalidArgument(problem);
  }
  pg::Params p;
  p.Add(role);
  if (conn.ExecParams("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1", p).rows() == 0) {
    throw InvalidArgument(fmt::format("grant: there is no role '{}' (create it first)", role));
  }
  pg::Params ns;
  ns.Add(schema);
  // The schema's tables and functions as they are now, so that tables added by later versions
  // are covered by running the grant again after a migration. Only objects of gd_instances'
  // owner: in a schema others may create in (public), a look-alike of theirs is not granted.
  // tables: pg_class_relname_nsp_index; functions: pg_proc_proname_args_nsp_index.
  auto tables = conn.ExecParams(
      "SELECT c.relname FROM pg_catalog.pg_class c "
      "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
      "JOIN pg_catalog.pg_class o ON o.relnamespace = n.oid AND o.relname = 'gd_instances' "
      "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname LIKE 'gd\\_%' "
      "AND c.relowner = o.relowner ORDER BY 1",
      ns);
  auto functions = conn.ExecParams(
      "SELECT pg_catalog.quote_ident(p.proname) || '(' || "
      "pg_catalog.pg_get_function_identity_arguments(p.oid) || ')' "
      "FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
      "JOIN pg_catalog.pg_class o ON o.relnamespace = n.oid AND o.relname = 'gd_instances' "
      "WHERE n.nspname = $1 AND p.proname LIKE 'gd\\_%' "
      "AND p.prorettype <> 'pg_catalog.trigger'::pg_catalog.regtype "
      "AND p.proowner = o.relowner ORDER BY 1",
      ns);
  std::vector<std::string> table_names;
  for (int i = 0; i < tables.rows(); ++i) table_names.push_back(pg::QuoteIdent(std::string(tables.Text(i, 0))));
  std::vector<std::string> function_names;
  for (int i = 0; i < functions.rows(); ++i) function_names.emplace_back(functions.Text(i, 0));
  // sequences the engine's statements call nextval on (an identity column's needs no grant)
  auto sequences = conn.ExecParams(
      "SELECT c.relname FROM pg_catalog.pg_class c "
      "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
      "JOIN pg_catalog.pg_class o ON o.relnamespace = n.oid AND o.relname = 'gd_instances' "
      "WHERE n.nspname = $1 AND c.relkind = 'S' AND c.relname LIKE 'gd\\_%' "
      "AND c.relowner = o.relowner ORDER BY 1",
      ns);
  std::vector<std::string> sequence_names;
  for (int i = 0; i < sequences.rows(); ++i) {
    sequence_names.push_back(pg::QuoteIdent(std::string(sequences.Text(i, 0))));
  }
  conn.Exec("BEGIN");
  try {
    for (const auto& statement :
         GrantStatements(schema, role, as, table_names, function_names, sequence_names)) {
      conn.Exec(statement);
    }
    conn.Exec("COMMIT");
  } catch (...) {
    if (!conn.broken()) {
      try {
        conn.Exec("ROLLBACK");
      } catch (...) {
      }
    }
    throw;
  }
}

}  // namespace gen_durable::detail
