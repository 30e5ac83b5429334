// Schema version 7: a cluster-wide concurrency limit per queue.
#include "gen_durable/schema/versions.hpp"

namespace gen_durable::detail::ddl {

// Version 7: at most `global_limit` steps of a queue executing at once across every node. The
// value lives in the queue's row of gd_queues (NULL: no limit), written by an engine configured
// with one when it starts and by Client::SetQueueGlobalLimit (`gen_durable scale QUEUE
// --global N`); the claim asks gd_queue_room how many rows it may take.
const char* const kV7 = R"SQL(
-- Nullable without a default: adding it rewrites nothing.
ALTER TABLE {s}.gd_queues ADD COLUMN global_limit integer
  CHECK (global_limit IS NULL OR global_limit >= 1);

-- The executing rows, now by queue: gd_queue_room counts one queue's (a range of this index).
-- It replaces gd_instances_lease (lease_expires_at), whose readers scan every executing row
-- anyway (the reaper's expired leases, a dead node's rows, the rows per node), so a claim still
-- costs one insertion into an index of executing rows, not two.
CREATE INDEX gd_instances_executing ON {s}.gd_instances (queue, lease_expires_at)
  WHERE status = 'executing';
DROP INDEX {s}.gd_instances_lease;

-- gd_claim's LIMIT: how many of `wanted` rows of queue `queue_name` the claim may take now.
-- Without a limit: `wanted`, after one primary-key probe and no lock. With one: the room left
-- under it, counted under a transaction-scoped lock of the queue that every claim of the queue
-- takes, waiting for it (claims of a limited queue take turns). VOLATILE, so the count takes a
-- snapshot of its own after the lock: it sees every claim of the queue committed before the
-- lock was granted (which the claim statement's own, older snapshot may not), and no other is
-- in flight. Rows claimed and not yet started (a node's prefetch) are executing, so they count.
-- A claim that takes rows of a limited queue commits synchronously: one lost with the server
-- would leave its rows runnable while their steps run, and others could start beside them.
-- SECURITY INVOKER and EXECUTE for PUBLIC like gd_partition_free_slots: it reads tables the
-- caller must be allowed to read, and takes a lock any role could take by itself.
CREATE FUNCTION {s}.gd_queue_room(queue_name text, wanted integer)
RETURNS integer LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  cap integer;
  busy bigint;
  room integer;
BEGIN
  SELECT q.global_limit INTO cap FROM {s}.gd_queues q WHERE q.name = queue_name;
  IF cap IS NULL THEN
    RETURN wanted;
  END IF;
  -- (seed 1: never the lock of a partition key spelled like the queue, see
  -- gd_partition_free_slots)
  PERFORM pg_advisory_xact_lock(hashtextextended('{c}/' || queue_name, 1));
  -- served by gd_instances_executing
  SELECT count(*) INTO busy FROM {s}.gd_instances i
  WHERE i.queue = queue_name AND i.status = 'executing';
  room := GREATEST(0, LEAST(wanted::bigint, cap - busy))::integer;
  IF room > 0 THEN
    PERFORM set_config('synchronous_commit', 'on', true);
  END IF;
  RETURN room;
END
$fn$;
)SQL";

}  // namespace gen_durable::detail::ddl
