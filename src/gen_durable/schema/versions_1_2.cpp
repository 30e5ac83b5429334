// Schema versions 1 and 2: the tables, indexes and SQL functions of the first release.
#include "gen_durable/schema/versions.hpp"

namespace gen_durable::detail::ddl {

// Version 1: instances, nodes.
const char* const kV1 = R"SQL(
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
const char* const kV2 = R"SQL(
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

}  // namespace gen_durable::detail::ddl
