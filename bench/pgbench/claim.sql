-- One pgbench transaction pair of the bare-sql baseline: claim a batch of :batch ready jobs with
-- FOR UPDATE SKIP LOCKED and mark them running (one statement, its own transaction), then mark
-- the same jobs done (a second transaction). Run with -M prepared and -D batch=N.
WITH picked AS (
  SELECT id FROM bench_jobs
  WHERE status = 'ready' AND queue = 'default' AND run_at <= now()
  ORDER BY priority, run_at, id
  LIMIT :batch
  FOR UPDATE SKIP LOCKED
), claimed AS (
  UPDATE bench_jobs j SET status = 'running', locked_by = 'pgbench-' || CAST(:client_id AS text)
  FROM picked WHERE j.id = picked.id
  RETURNING j.id
)
SELECT coalesce(array_agg(id), '{}') AS ids FROM claimed
\gset
UPDATE bench_jobs SET status = 'done'
WHERE id = ANY (CAST(:ids AS bigint[])) AND status = 'running';
