// The SQL that decodes new rows for an insert, shared by the inserts of instances and of
// children (gd_insert_batch, gd_spawn_children).
#pragma once

namespace gen_durable::detail {

// Decodes a JSON array of new rows ($1) into `src`, with each row's position (ord) and its
// eligibility time (at). Shared by inserts and by children.
inline constexpr const char* kInsertSource = R"SQL(
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

}  // namespace gen_durable::detail
