// The SQL of rate limits: token buckets and the admission of claimed rows, each statement named.
#include "gen_durable/store/rate_limit_store.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <utility>

#include "gen_durable/schema/migrations.hpp"

namespace gen_durable::detail {

RateLimitStore::RateLimitStore(std::string schema) : schema_(std::move(schema)) {
  // Creates the buckets of a batch that do not exist yet (full) and locks those that do, in one
  // fixed order so that two nodes admitting the same buckets cannot deadlock. Served by the
  // primary key (name, key). DO UPDATE ... WHERE false writes nothing but still locks the row
  // (and waits for a concurrent admission to finish), which is the point: from here to the end
  // of the batch's transaction no one else can change or prune these buckets, so each take
  // below reads their newest state with a plain snapshot.
  lock_ = Make("gd_rate_lock", R"SQL(
INSERT INTO {s}.gd_rate_buckets AS b (name, key, tokens, updated_at)
SELECT r.name, r.key, r.burst, clock_timestamp()
FROM jsonb_to_recordset($1::jsonb) AS r(name text, key text, burst double precision)
ORDER BY r.name COLLATE "C", r.key COLLATE "C"
ON CONFLICT (name, key) DO UPDATE SET tokens = b.tokens WHERE false)SQL");

  // Takes $3 tokens from bucket ($1, $2) for the claimed row $7 (guarded by node $8 and claim
  // $9), or hands the row back as `scheduled` for when they will be there. The bucket is
  // already locked by gd_rate_lock in the same transaction; its primary key serves the read and
  // the update, and the primary key of gd_instances serves the guard and the hand-back.
  // Refill is continuous: tokens + elapsed * allowed ($4) / period ($5 ms), capped at burst
  // ($6), on the database's clock. The 1e-9 absorbs floating-point residue (0.9999999999 tokens
  // after refills must still pay for one). A stale row takes and writes nothing.
  take_ = Make("gd_rate_take", R"SQL(
WITH t AS MATERIALIZED (SELECT clock_timestamp() AS at),
inst AS MATERIALIZED (
  SELECT id FROM {s}.gd_instances
  WHERE id = $7::bigint AND status = 'executing' AND locked_by = $8::text
    AND lease_seq = $9::bigint
  FOR UPDATE),
b AS MATERIALIZED (
  SELECT LEAST($6::float8,
               r.tokens + GREATEST(0, extract(epoch FROM t.at - r.updated_at)::float8 * 1000)
                          * $4::float8 / $5::float8) AS refill
  FROM {s}.gd_rate_buckets r, t, inst
  WHERE r.name = $1::text AND r.key = $2::text),
take AS (
  UPDATE {s}.gd_rate_buckets r
  SET tokens = GREATEST(0, b.refill - $3::integer), updated_at = t.at
  FROM b, t
  WHERE r.name = $1::text AND r.key = $2::text AND b.refill + 1e-9::float8 >= $3::integer
  RETURNING 1),
back AS (
  UPDATE {s}.gd_instances i
  -- (a row cancelled while claimed ends here instead of waiting for its tokens)
  SET status = CASE WHEN i.cancel_requested IS NULL THEN 'scheduled' ELSE 'cancelled' END,
      completed_at = CASE WHEN i.cancel_requested IS NULL THEN NULL ELSE now() END,
      last_error = COALESCE(i.cancel_requested, i.last_error),
      eligible_at = t.at + w.wait_ms * interval '1 millisecond',
      locked_by = NULL, lease_expires_at = NULL, updated_at = now()
  FROM (SELECT GREATEST(1, ceil(($3::integer - b.refill) * $5::float8 / $4::float8))::bigint
               AS wait_ms
        FROM b WHERE b.refill + 1e-9::float8 < $3::integer) w, t
  WHERE i.id = $7::bigint AND i.status = 'executing' AND i.locked_by = $8::text
    AND i.lease_seq = $9::bigint
  RETURNING w.wait_ms)
SELECT EXISTS (SELECT FROM take) AS granted, (SELECT wait_ms FROM back) AS wait_ms)SQL");

  // Fails claimed rows that cannot be admitted (unknown limit, impossible weight). Served by the
  // primary key with the claim guard; returns the ids it failed.
  reject_ = Make("gd_rate_reject", R"SQL(
WITH f AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(id bigint, seq bigint, error text))
UPDATE {s}.gd_instances i
SET status = 'failed', last_error = f.error, completed_at = now(), locked_by = NULL,
    lease_expires_at = NULL, updated_at = now()
FROM f
WHERE i.id = f.id AND i.status = 'executing' AND i.locked_by = $2 AND i.lease_seq = f.seq
RETURNING i.id)SQL");

  // Deletes idle buckets: a bucket not touched for as long as its limit needs to refill from
  // empty is full, and a full bucket is exactly what a missing one stands for. $1 holds the idle
  // time of each configured limit; buckets of other names wait $2 ms. Scans the table (there is
  // no index on updated_at): it holds one row per bucket in use, and this runs once per GC
  // sweep. SKIP LOCKED leaves buckets being admitted alone, and the lock re-checks updated_at,
  // so a bucket used since the scan began is kept.
  prune_ = Make("gd_rate_prune", R"SQL(
WITH idle AS (
  SELECT r.name, r.key FROM {s}.gd_rate_buckets r
  LEFT JOIN jsonb_to_recordset($1::jsonb) AS c(name text, idle_ms bigint) ON c.name = r.name
  WHERE r.updated_at < now() - COALESCE(c.idle_ms, $2::bigint) * interval '1 millisecond'
  FOR UPDATE OF r SKIP LOCKED)
DELETE FROM {s}.gd_rate_buckets d USING idle WHERE d.name = idle.name AND d.key = idle.key)SQL");
}

pg::Statement RateLimitStore::Make(const char* name, const char* sql) const {
  return pg::Statement{name, WithSchema(sql, schema_)};
}

RateLimitStore::AdmitResult RateLimitStore::Admit(
    pg::Connection& c, const std::string& node, const std::vector<TokenRequest>& requests,
    const std::vector<RowRejection>& rejections) const {
  AdmitResult out;
  out.grants.resize(requests.size());
  if (requests.empty() && rejections.empty()) return out;

  std::vector<std::pair<const pg::Statement*, pg::Params>> batch;
  std::size_t reject_at = 0;
  if (!rejections.empty()) {
    Json arr = Json::array();
    for (const auto& r : rejections) {
      arr.push_back({{"id", r.id}, {"seq", r.lease_seq}, {"error", r.error}});
    }
    pg::Params p;
    p.Add(arr.dump(-1, ' ', false, Json::error_handler_t::replace)).Add(node);
    reject_at = batch.size();
    batch.emplace_back(&reject_, std::move(p));
  }

  // Takes in id order: the hand-backs then lock instance rows in the order the heartbeat and
  // the commit tend to, which keeps this node's own threads from deadlocking one another.
  std::vector<std::size_t> order(requests.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return requests[a].id < requests[b].id; });
  const std::size_t take_at = batch.size() + (requests.empty() ? 0 : 1);
  if (!requests.empty()) {
    std::set<std::pair<std::string, std::string>> seen;
    Json buckets = Json::array();
    for (const auto& r : requests) {
      if (seen.emplace(r.name, r.key).second) {
        buckets.push_back({{"name", r.name}, {"key", r.key}, {"burst", r.burst}});
      }
    }
    pg::Params p;
    p.Add(buckets.dump(-1, ' ', false, Json::error_handler_t::replace));
    batch.emplace_back(&lock_, std::move(p));
    for (std::size_t i : order) {
      const auto& r = requests[i];
      pg::Params t;
      t.Add(r.name).Add(r.key).Add(r.weight).Add(static_cast<double>(r.allowed));
      t.Add(static_cast<double>(r.period.count())).Add(static_cast<double>(r.burst));
      t.Add(r.id).Add(node).Add(r.lease_seq);
      batch.emplace_back(&take_, std::move(t));
    }
  }

  auto results = c.Pipeline(batch, /*transaction=*/false);

  if (!rejections.empty()) {
    const auto& r = results[reject_at];
    for (int i = 0; i < r.rows(); ++i) out.rejected.push_back(r.Int64(i, 0));
  }
  for (std::size_t n = 0; n < order.size(); ++n) {
    const auto& r = results[take_at + n];
    TokenGrant& g = out.grants[order[n]];
    if (r.Bool(0, 0)) {
      g.status = TokenGrant::Status::kGranted;
    } else if (!r.IsNull(0, 1)) {
      g.status = TokenGrant::Status::kThrottled;
      g.wait_ms = r.Int64(0, 1);
    } else {
      g.status = TokenGrant::Status::kStale;
    }
  }
  return out;
}

std::int64_t RateLimitStore::PruneIdle(pg::Connection& c,
                                       const std::map<std::string, RateLimit>& limits,
                                       Millis unknown_idle) const {
  Json arr = Json::array();
  for (const auto& [name, limit] : limits) {
    const double burst = limit.burst.value_or(limit.allowed);
    const double idle_ms =
        std::ceil(burst * static_cast<double>(limit.period.count()) / std::max(1, limit.allowed));
    arr.push_back({{"name", name}, {"idle_ms", static_cast<std::int64_t>(idle_ms)}});
  }
  pg::Params p;
  p.Add(arr.dump(-1, ' ', false, Json::error_handler_t::replace))
      .Add(static_cast<std::int64_t>(unknown_idle.count()));
  return c.Execute(prune_, p).affected();
}

}  // namespace gen_durable::detail
