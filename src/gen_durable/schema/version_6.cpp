// Schema version 6: least privilege and the control plane.
#include "gen_durable/schema/versions.hpp"

namespace gen_durable::detail::ddl {

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
const char* const kV6 = R"SQL(
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

}  // namespace gen_durable::detail::ddl
