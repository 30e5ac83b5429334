// The SQL of rate limits: token buckets and the admission of claimed rows, each statement named.
#include "gen_durable/store/rate_limit_store.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <utility>

#include "gen_durable/schema/migrations.hpp"

namespace gen_durable::detail {

namespace {

// How many runnable rows behind a throttled one gd_rate_take reserves tokens for at once: a
// backlog of N rows is handed back in about N / kReserveAhead admissions, each one statement.
constexpr int kReserveAhead = 1000;

}  // namespace

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
  // $9), or, when they are not there, reserves them: the row goes back as `scheduled` for the
  // moment its tokens will have refilled, with the token already taken (rate_paid), and so do
  // up to $10 runnable rows of its queue ($11) and bucket that come after it in claim order,
  // each one token-time after the one before. The bucket then runs into debt (tokens < 0),
  // which later requests queue behind. So a throttled backlog is examined once, comes due one
  // row per token in claim order, and never stands between the queue and unrelated work.
  // The bucket is already locked by gd_rate_lock in the same transaction; its primary key serves
  // the read and the update, the primary key of gd_instances the guard and the hand-back, and
  // gd_instances_rate_backlog the rows behind. Refill is continuous: tokens + elapsed * allowed
  // ($4) / period ($5 ms), capped at burst ($6), on the database's clock. The 1e-9 absorbs
  // floating-point residue (0.9999999999 tokens after refills must still pay for one). A stale
  // row takes and writes nothing.
  take_ = Make("gd_rate_take", R"SQL(
WITH t AS MATERIALIZED (SELECT clock_timestamp() AS at),
inst AS MATERIALIZED (
  SELECT id FROM {s}.gd_instances
  WHERE id = $7::bigint AND status = 'executing' AND locked_by = $8::text
    AND lease_seq = $9::bigint
  FOR UPDATE),
b AS MATERIALIZED (
  SELECT x.refill, x.refill + 1e-9::float8 >= $3::integer AS granted
  FROM (SELECT LEAST($6::float8,
                     r.tokens + GREATEST(0, extract(epoch FROM t.at - r.updated_at)::float8 * 1000)
                                * $4::float8 / $5::float8) AS refill
        FROM {s}.gd_rate_buckets r, t, inst
        WHERE r.name = $1::text AND r.key = $2::text) x),
behind AS MATERIALIZED (
  SELECT c.id, COALESCE(c.rate_weight, 1) AS w, c.priority, c.eligible_at
  FROM {s}.gd_instances c
  WHERE EXISTS (SELECT 1 FROM b WHERE NOT b.granted)
    AND c.status = 'runnable' AND c.queue = $11::text AND c.rate_limit = $1::text
    AND COALESCE(c.rate_key, '') = $2::text AND NOT c.rate_paid
    AND COALESCE(c.rate_weight, 1) BETWEEN 1 AND $6::integer
  ORDER BY c.priority, c.eligible_at, c.id
  LIMIT $10::integer
  FOR UPDATE OF c SKIP LOCKED),
-- the reservations in order (the claimed row first), each due when the tokens of every
-- reservation up to and including it will have refilled
resv AS MATERIALIZED (
  SELECT q.id,
         GREATEST(1, ceil((sum(q.w) OVER (ORDER BY q.ord) - b.refill) * $5::float8
                          / $4::float8))::bigint AS wait_ms,
         sum(q.w) OVER () AS total
  FROM (SELECT inst.id, $3::integer AS w, 0::bigint AS ord FROM inst
        UNION ALL
        SELECT id, w, row_number() OVER (ORDER BY priority, eligible_at, id) FROM behind) q, b
  WHERE NOT b.granted),
bucket AS (
  UPDATE {s}.gd_rate_buckets r
  SET tokens = CASE WHEN b.granted THEN GREATEST(0, b.refill - $3::integer)
                    ELSE b.refill - (SELECT max(total) FROM resv) END,
      updated_at = t.at
  FROM b, t
  WHERE r.name = $1::text AND r.key = $2::text
  RETURNING b.granted),
back AS (
  UPDATE {s}.gd_instances i
  -- (a claimed row cancelled meanwhile ends here instead of waiting for its tokens)
  SET status = CASE WHEN i.cancel_requested IS NULL THEN 'scheduled' ELSE 'cancelled' END,
      completed_at = CASE WHEN i.cancel_requested IS NULL THEN NULL ELSE now() END,
      last_error = COALESCE(i.cancel_requested, i.last_error),
      eligible_at = t.at + resv.wait_ms * interval '1 millisecond', rate_paid = true,
      locked_by = NULL, lease_expires_at = NULL, updated_at = now()
  FROM resv, t
  WHERE i.id = resv.id
  RETURNING i.id, resv.wait_ms)
SELECT COALESCE((SELECT granted FROM bucket), false) AS granted,
       (SELECT wait_ms FROM back WHERE id = $7::bigint) AS wait_ms,
       (SELECT count(*) FROM back WHERE id <> $7::bigint) AS reserved)SQL");

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

  // Deletes idle buckets: a bucket that has refilled to its burst is exactly what a missing one
  // stands for. $1 holds each configured limit's rate and burst and the time it takes to refill
  // from empty: a bucket untouched that long is deleted once it is full, so a bucket in debt
  // (reservations, see gd_rate_take) is kept until they are paid back and it has refilled. Buckets
  // of other names (a limit another node configures) are kept $2 ms after their last use. Scans
  // the table (there is no index on updated_at): it holds one row per bucket in use, and this
  // runs once per GC sweep. SKIP LOCKED leaves buckets being admitted alone, and the lock
  // re-checks the row, so a bucket used since the scan began is kept.
  prune_ = Make("gd_rate_prune", R"SQL(
WITH idle AS (
  SELECT r.name, r.key FROM {s}.gd_rate_buckets r
  LEFT JOIN jsonb_to_recordset($1::jsonb) AS c(name text, allowed float8, period_ms float8,
                                                burst float8, idle_ms bigint) ON c.name = r.name
  WHERE r.updated_at < now() - COALESCE(c.idle_ms, $2::bigint) * interval '1 millisecond'
    AND (c.name IS NULL
         OR r.tokens + GREATEST(0, extract(epoch FROM now() - r.updated_at)::float8 * 1000)
                       * c.allowed / c.period_ms >= c.burst)
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
      t.Add(r.id).Add(node).Add(r.lease_seq).Add(kReserveAhead).Add(r.queue);
      batch.emplace_back(&take_, std::move(t));
    }
  }

  auto results = c.Pipeline(batch, /*transaction=*/false);

  if (!rejections.empty()) {
    const auto& r = results[reject_at];
    for (int i = 0; i < r.rows(); ++i) out.rejected.push_back(r.row(i).Get<std::int64_t>("id"));
  }
  for (std::size_t n = 0; n < order.size(); ++n) {
    const auto& r = results[take_at + n];
    TokenGrant& g = out.grants[order[n]];
    const pg::Row row = r.row(0);
    if (row.Get<bool>("granted")) {
      g.status = TokenGrant::Status::kGranted;
    } else if (auto wait_ms = row.Get<std::optional<std::int64_t>>("wait_ms")) {
      g.status = TokenGrant::Status::kThrottled;
      g.wait_ms = *wait_ms;
      g.reserved_behind = row.Get<std::int64_t>("reserved");
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
    const int allowed = std::max(1, limit.allowed);
    const int burst = limit.burst.value_or(limit.allowed);
    const auto period_ms = std::max<std::int64_t>(1, limit.period.count());
    const double idle_ms =
        std::ceil(static_cast<double>(burst) * static_cast<double>(period_ms) / allowed);
    arr.push_back({{"name", name},
                   {"allowed", allowed},
                   {"period_ms", period_ms},
                   {"burst", burst},
                   {"idle_ms", static_cast<std::int64_t>(idle_ms)}});
  }
  pg::Params p;
  p.Add(arr.dump(-1, ' ', false, Json::error_handler_t::replace))
      .Add(static_cast<std::int64_t>(unknown_idle.count()));
  return c.Execute(prune_, p).affected();
}

}  // namespace gen_durable::detail
