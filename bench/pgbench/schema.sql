-- The bare job table of the bare-sql baseline (bench/pgbench/run): the columns a job queue needs
-- and nothing else. Filled untimed by run, with psql variable :rows.
DROP TABLE IF EXISTS bench_jobs;
CREATE TABLE bench_jobs (
  id        bigserial PRIMARY KEY,
  queue     text        NOT NULL DEFAULT 'default',
  priority  int         NOT NULL DEFAULT 0,
  run_at    timestamptz NOT NULL DEFAULT now(),
  status    text        NOT NULL DEFAULT 'ready',
  locked_by text,
  payload   jsonb       NOT NULL DEFAULT '{}'
);
INSERT INTO bench_jobs (run_at, payload)
  SELECT now() - interval '1 minute', jsonb_build_object('n', g)
  FROM generate_series(1, :rows) g;
-- The claim index covers ready rows only, so running and done rows leave it.
CREATE INDEX bench_jobs_ready ON bench_jobs (queue, priority, run_at, id) WHERE status = 'ready';
VACUUM ANALYZE bench_jobs;
CHECKPOINT;
