// Rate limits (docs/guides/rate-limits.md): token buckets in Postgres admitting claimed rows, on a
// real database.
//
// The admission tests drive RateLimiter directly: rows are made `executing` under a node with
// SQL, as a claim would leave them, and handed to Admit() as the feeder does.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <latch>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gen_durable/model/validate.hpp"
#include "gen_durable/runtime/core.hpp"
#include "gen_durable/runtime/rate_limiter.hpp"
#include "support/engine_harness.hpp"
#include "support/event_log.hpp"

namespace gen_durable::testing {
namespace {

using detail::ClaimedRow;
using detail::EngineCore;
using detail::RateLimiter;

RateLimitRef Ref(std::string name, std::string key = "", int weight = 1) {
  return RateLimitRef{std::move(name), std::move(key), weight};
}

class RateLimitTest : public EngineTest {
 protected:
  // The shared state of an engine on node `node` defining `limits`.
  std::shared_ptr<EngineCore> Core(std::map<std::string, RateLimit> limits,
                                   const std::string& node = "node-a") {
    EngineOptions o = Options({});
    o.rate_limits = std::move(limits);
    detail::ValidateEngineOptions(o);
    return std::make_shared<EngineCore>(o, node);
  }

  // The limiter an engine with `core` builds.
  static RateLimiter LimiterOf(const std::shared_ptr<EngineCore>& core) {
    return RateLimiter(detail::RateLimitSettings::Of(core->options, core->node_id), core->report);
  }

  // Inserts `n` rows claimed by `node` (executing, lease_seq 1) whose start is subject to
  // `ref`, and returns them as the claim would.
  std::vector<ClaimedRow> Claimed(int n, const std::optional<RateLimitRef>& ref,
                                  const std::string& node = "node-a") {
    detail::pg::Params p;
    p.Add(node).Add(n);
    if (ref) {
      p.Add(ref->name).Add(ref->key).Add(ref->weight);
    } else {
      p.AddNull().AddNull().AddNull();
    }
    auto r = sql_->ExecParams(R"SQL(
INSERT INTO gd_instances (fsm, step, status, locked_by, lease_seq, lease_expires_at,
                          rate_limit, rate_key, rate_weight)
SELECT 't.rl', 'call', 'executing', $1, 1, now() + interval '1 minute', $3, $4, $5::integer
FROM generate_series(1, $2::integer) RETURNING id)SQL",
                              p);
    std::vector<ClaimedRow> rows;
    for (int i = 0; i < r.rows(); ++i) {
      ClaimedRow row;
      row.id = r.Int64(i, 0);
      row.fsm = "t.rl";
      row.step = "call";
      row.queue = "default";
      row.lease_seq = 1;
      row.rate_limit = ref;
      rows.push_back(std::move(row));
    }
    return rows;
  }

  static std::vector<ClaimedRow> Concat(std::vector<std::vector<ClaimedRow>> parts) {
    std::vector<ClaimedRow> out;
    for (auto& part : parts) {
      for (auto& row : part) out.push_back(std::move(row));
    }
    return out;
  }

  static std::vector<std::int64_t> Ids(const std::vector<ClaimedRow>& rows) {
    std::vector<std::int64_t> ids;
    for (const auto& r : rows) ids.push_back(r.id);
    return ids;
  }

  std::int64_t Count(const std::string& where) {
    return Sql64("SELECT count(*) FROM gd_instances WHERE " + where);
  }

  double Tokens(const std::string& name, const std::string& key = "") {
    detail::pg::Params p;
    p.Add(name).Add(key);
    auto r = sql_->ExecParams("SELECT tokens FROM gd_rate_buckets WHERE name = $1 AND key = $2", p);
    return r.rows() == 0 ? -1 : r.Double(0, 0);
  }
};

// --- admission ---

TEST_F(RateLimitTest, BurstIsAdmittedThenRowsAreHandedBackUntilTheRefill) {
  auto core = Core({{"demo", RateLimit{5, 1000ms, 5}}});
  EventLog events("rate_limit.", core->report->telemetry);
  RateLimiter limiter = LimiterOf(core);
  auto conn = core->Connect("test");

  auto rows = Claimed(8, Ref("demo"));
  const auto ids = Ids(rows);
  auto admitted = limiter.Admit(*conn, rows);

  // The first five in claim order start; the other three reserve the next three tokens, one
  // every 200 ms, and wait for them in that order.
  EXPECT_EQ(Ids(admitted), std::vector<std::int64_t>(ids.begin(), ids.begin() + 5));
  EXPECT_EQ(Count("status = 'executing' AND locked_by = 'node-a'"), 5);
  EXPECT_EQ(Count("status = 'scheduled' AND locked_by IS NULL AND lease_expires_at IS NULL "
                  "AND attempt = 0 AND lease_seq = 1 AND rate_paid"),
            3);
  EXPECT_NEAR(Tokens("demo"), -3.0, 0.1);  // three tokens owed

  auto throttled = events.Named("rate_limit.throttled");
  ASSERT_EQ(throttled.size(), 3u);
  for (std::size_t k = 0; k < throttled.size(); ++k) {
    const auto& e = throttled[k];
    EXPECT_EQ(e.measurements.at("count"), 1);
    EXPECT_GT(e.measurements.at("wait_ms"), 200.0 * static_cast<double>(k + 1) - 50);
    EXPECT_LE(e.measurements.at("wait_ms"), 200.0 * static_cast<double>(k + 1));
    EXPECT_EQ(e.measurements.at("reserved"), 0);  // nothing runnable behind them
    EXPECT_EQ(e.metadata["id"], ids[5 + k]);
    EXPECT_EQ(e.metadata["limit"], "demo");
    EXPECT_EQ(e.metadata["key"], "");
    EXPECT_EQ(e.metadata["fsm"], "t.rl");
  }

  // When they come due, their next claim starts them without taking a token again: the bucket
  // still owes what it owed, less the refill.
  sql_->Exec(
      "UPDATE gd_instances SET status = 'runnable', eligible_at = now() WHERE status = "
      "'scheduled'");
  auto due = core->store.Claim(*conn, "default", 10, core->node_id, 60s, {"t.rl@1"}, false, 7);
  ASSERT_EQ(due.rows.size(), 3u);
  for (const auto& r : due.rows) EXPECT_TRUE(r.rate_paid_late.has_value()) << r.id;
  const double owed = Tokens("demo");
  EXPECT_EQ(Ids(limiter.Admit(*conn, due.rows)), Ids(due.rows));
  EXPECT_NEAR(Tokens("demo"), owed, 0.01);
  EXPECT_EQ(Count("rate_paid"), 0);  // the claim spent the reservations
}

// A throttled row reserves the tokens of the runnable rows of its bucket queued behind it, in
// claim order, one token-time apart, and hands them back with it: the backlog leaves the claim
// path at once and is never examined again before its tokens are there. Rows of other buckets
// and rows without a limit stay where they are.
TEST_F(RateLimitTest, AThrottledRowReservesTheBacklogBehindItInClaimOrder) {
  auto core = Core({{"slow", RateLimit{10, 1000ms, 1}}});  // one token every 100 ms
  EventLog events("rate_limit.", core->report->telemetry);
  RateLimiter limiter = LimiterOf(core);
  auto conn = core->Connect("test");
  ASSERT_EQ(limiter.Admit(*conn, Claimed(1, Ref("slow"))).size(), 1u);  // the bucket is empty

  auto head = Claimed(1, Ref("slow"));
  sql_->Exec(R"SQL(
INSERT INTO gd_instances (fsm, step, status, rate_limit, rate_key, priority)
SELECT 't.rl', 'call', 'runnable', 'slow', NULL, CASE WHEN g % 10 = 0 THEN -1 ELSE 0 END
FROM generate_series(1, 50) g;
INSERT INTO gd_instances (fsm, step, status, rate_limit, rate_key)
SELECT 't.rl', 'call', 'runnable', 'slow', 'other-key' FROM generate_series(1, 5);
INSERT INTO gd_instances (fsm, step, status) SELECT 't.rl', 'call', 'runnable'
FROM generate_series(1, 5);
INSERT INTO gd_instances (fsm, step, status, queue, rate_limit)
SELECT 't.rl', 'call', 'runnable', 'elsewhere', 'slow' FROM generate_series(1, 5))SQL");

  EXPECT_TRUE(limiter.Admit(*conn, head).empty());
  auto throttled = events.Named("rate_limit.throttled");
  ASSERT_EQ(throttled.size(), 1u);
  EXPECT_EQ(throttled[0].measurements.at("reserved"), 50);

  // The head and the 50 behind it wait outside the claim index, each holding a token.
  EXPECT_EQ(Count("status = 'scheduled' AND rate_paid AND locked_by IS NULL"), 51);
  EXPECT_EQ(Count("status = 'runnable' AND rate_paid"), 0);
  EXPECT_EQ(Count("status = 'runnable'"), 15);  // other key, no limit, other queue
  // (owed: 51 tokens, less what refilled while the test ran)
  EXPECT_GT(Tokens("slow"), -51.01);
  EXPECT_LT(Tokens("slow"), -45.0);
  // In claim order (priority, then age): the head first, then the five rows of priority -1,
  // then the rest by id; consecutive reservations are one token-time (100 ms) apart.
  auto r = sql_->Exec(
      "SELECT id, priority, extract(epoch FROM eligible_at - min(eligible_at) OVER ()) * 1000 "
      "FROM gd_instances WHERE status = 'scheduled' ORDER BY eligible_at");
  ASSERT_EQ(r.rows(), 51);
  EXPECT_EQ(r.Int64(0, 0), head[0].id);
  for (int i = 1; i <= 5; ++i) EXPECT_EQ(r.Int(i, 1), -1) << "position " << i;
  for (int i = 6; i < r.rows(); ++i) {
    EXPECT_EQ(r.Int(i, 1), 0) << "position " << i;
    if (i > 6) {
      EXPECT_GT(r.Int64(i, 0), r.Int64(i - 1, 0)) << "position " << i;
    }
  }
  for (int i = 1; i < r.rows(); ++i) {
    EXPECT_NEAR(r.Double(i, 2) - r.Double(i - 1, 2), 100.0, 1.5) << "position " << i;
  }
}

TEST_F(RateLimitTest, RowsWithoutALimitPassUntouchedAndInOrder) {
  auto core = Core({{"demo", RateLimit{1, 1h, std::nullopt}}});
  RateLimiter limiter = LimiterOf(core);
  auto conn = core->Connect("test");
  auto rows = Concat({Claimed(2, std::nullopt), Claimed(2, Ref("demo")), Claimed(2, std::nullopt)});
  const auto ids = Ids(rows);
  auto admitted = limiter.Admit(*conn, rows);
  EXPECT_EQ(Ids(admitted), (std::vector<std::int64_t>{ids[0], ids[1], ids[2], ids[4], ids[5]}));
  EXPECT_EQ(Count("status = 'scheduled'"), 1);
  EXPECT_EQ(Count("status = 'executing'"), 5);

  // With no row naming a limit, nothing touches the database at all.
  auto plain = Claimed(3, std::nullopt);
  EXPECT_EQ(Ids(limiter.Admit(*conn, plain)), Ids(plain));
}

TEST_F(RateLimitTest, BurstDefaultsToAllowed) {
  auto core = Core({{"demo", RateLimit{3, 1h, std::nullopt}}});
  RateLimiter limiter = LimiterOf(core);
  auto conn = core->Connect("test");
  EXPECT_EQ(limiter.Admit(*conn, Claimed(5, Ref("demo"))).size(), 3u);
}

TEST_F(RateLimitTest, PerKeyBucketsAreIndependent) {
  auto core = Core({{"api", RateLimit{2, 1h, std::nullopt}}});
  RateLimiter limiter = LimiterOf(core);
  auto conn = core->Connect("test");
  auto rows = Concat({Claimed(3, Ref("api", "customer-a")), Claimed(3, Ref("api", "customer-b")),
                      Claimed(3, Ref("api"))});
  auto admitted = limiter.Admit(*conn, rows);
  std::map<std::string, int> per_key;
  for (const auto& r : admitted) ++per_key[r.rate_limit->key];
  EXPECT_EQ(per_key, (std::map<std::string, int>{{"", 2}, {"customer-a", 2}, {"customer-b", 2}}));
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_rate_buckets WHERE name = 'api'"), 3);

  // An exhausted key does not hold back a fresh one.
  EXPECT_EQ(limiter.Admit(*conn, Claimed(1, Ref("api", "customer-c"))).size(), 1u);
  EXPECT_EQ(limiter.Admit(*conn, Claimed(1, Ref("api", "customer-a"))).size(), 0u);
}

TEST_F(RateLimitTest, WeightTakesThatManyTokensAndSetsTheWait) {
  auto core = Core({{"bulk", RateLimit{10, 1h, std::nullopt}}});
  EventLog events("rate_limit.", core->report->telemetry);
  RateLimiter limiter = LimiterOf(core);
  auto conn = core->Connect("test");
  auto admitted = limiter.Admit(*conn, Claimed(3, Ref("bulk", "", 4)));
  EXPECT_EQ(admitted.size(), 2u);
  EXPECT_NEAR(Tokens("bulk"), -2.0, 0.01);  // 2 left, and 4 reserved for the third
  // 2 more tokens are missing at 10 per hour: 12 minutes.
  auto throttled = events.Named("rate_limit.throttled");
  ASSERT_EQ(throttled.size(), 1u);
  EXPECT_NEAR(throttled[0].measurements.at("wait_ms"), 720'000, 1'000);
  EXPECT_EQ(Count("status = 'scheduled' AND eligible_at > now() + interval '11 min' "
                  "AND eligible_at < now() + interval '13 min'"),
            1);
  // The two tokens left went to the reservation: a lighter start queues behind it, 12 more
  // minutes for its 2 tokens, instead of overtaking it.
  EXPECT_EQ(limiter.Admit(*conn, Claimed(1, Ref("bulk", "", 2))).size(), 0u);
  EXPECT_EQ(Count("status = 'scheduled' AND eligible_at > now() + interval '23 min' "
                  "AND eligible_at < now() + interval '25 min'"),
            1);
}

TEST_F(RateLimitTest, WeightAboveBurstOrBelowOneFailsTheRow) {
  auto core = Core({{"bulk", RateLimit{10, 1h, 10}}});
  EventLog events("rate_limit.", core->report->telemetry);
  RateLimiter limiter = LimiterOf(core);
  auto conn = core->Connect("test");
  auto heavy = Claimed(1, Ref("bulk", "", 11));
  auto zero = Claimed(1, Ref("bulk", "", 0));
  EXPECT_TRUE(limiter.Admit(*conn, Concat({heavy, zero})).empty());

  auto h = client_->Get(heavy[0].id);
  EXPECT_EQ(h->status, "failed");
  EXPECT_EQ(h->last_error,
            "rate limit 'bulk': weight 11 exceeds its burst of 10, so it can never be granted");
  EXPECT_TRUE(h->completed_at.has_value());
  EXPECT_FALSE(h->locked_by.has_value());
  auto z = client_->Get(zero[0].id);
  EXPECT_EQ(z->status, "failed");
  EXPECT_EQ(z->last_error, "rate limit 'bulk': weight must be >= 1 (got 0)");
  EXPECT_EQ(events.Named("rate_limit.rejected").size(), 2u);
  // Nothing was taken for them.
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_rate_buckets"), 0);
}

TEST_F(RateLimitTest, UnknownLimitFailsTheRowAndIsReported) {
  auto core = Core({{"demo", RateLimit{1, 1h, std::nullopt}}});
  EventLog events("rate_limit.", core->report->telemetry);
  RateLimiter limiter = LimiterOf(core);
  auto conn = core->Connect("test");
  auto unknown = Claimed(1, Ref("nope", "k"));
  auto known = Claimed(1, Ref("demo"));
  auto admitted = limiter.Admit(*conn, Concat({unknown, known}));
  EXPECT_EQ(Ids(admitted), Ids(known));

  auto info = client_->Get(unknown[0].id);
  EXPECT_EQ(info->status, "failed");
  EXPECT_EQ(info->last_error, "unknown rate limit 'nope'");
  EXPECT_TRUE(info->completed_at.has_value());
  EXPECT_FALSE(info->locked_by.has_value());
  EXPECT_FALSE(info->lease_expires_at.has_value());

  auto reported = events.Named("rate_limit.unknown");
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0].measurements.at("count"), 1);
  EXPECT_EQ(reported[0].metadata["id"], unknown[0].id);
  EXPECT_EQ(reported[0].metadata["fsm"], "t.rl");
  EXPECT_EQ(reported[0].metadata["limit"], "nope");
  EXPECT_TRUE(events.Named("rate_limit.throttled").empty());
}

TEST_F(RateLimitTest, StaleRowsAreNotTouched) {
  auto core = Core({{"demo", RateLimit{5, 1h, std::nullopt}}});
  EventLog events("rate_limit.", core->report->telemetry);
  RateLimiter limiter = LimiterOf(core);
  auto conn = core->Connect("test");
  auto other_node = Claimed(1, Ref("demo"), "node-b");
  auto reclaimed = Claimed(1, Ref("demo"));
  sql_->Exec("UPDATE gd_instances SET lease_seq = 2 WHERE id = " +
             std::to_string(reclaimed[0].id));  // claimed again since: our seq 1 is stale
  auto released = Claimed(1, Ref("demo"));
  sql_->Exec("UPDATE gd_instances SET status = 'runnable', locked_by = NULL WHERE id = " +
             std::to_string(released[0].id));
  auto unknown_elsewhere = Claimed(1, Ref("nope"), "node-b");
  auto mine = Claimed(1, Ref("demo"));

  auto admitted =
      limiter.Admit(*conn, Concat({other_node, reclaimed, released, unknown_elsewhere, mine}));
  EXPECT_EQ(Ids(admitted), Ids(mine));
  // Only our own row paid a token; the others kept their status, owner and claim.
  EXPECT_NEAR(Tokens("demo"), 4.0, 0.01);
  EXPECT_EQ(Count("status = 'executing' AND locked_by = 'node-b'"), 2);
  EXPECT_EQ(Count("status = 'executing' AND locked_by = 'node-a' AND lease_seq = 2"), 1);
  EXPECT_EQ(Count("status = 'runnable'"), 1);
  EXPECT_EQ(Count("status IN ('failed', 'scheduled')"), 0);
  EXPECT_TRUE(events.Named("rate_limit.unknown").empty());
  EXPECT_TRUE(events.Named("rate_limit.throttled").empty());
}

TEST_F(RateLimitTest, ConcurrentNodesNeverOverAdmit) {
  // Four nodes race for one bucket of 10; at 10 per hour nothing refills during the test.
  constexpr int kNodes = 4;
  constexpr int kRowsPerNode = 25;
  const std::map<std::string, RateLimit> limits = {{"shared", RateLimit{10, 1h, std::nullopt}}};
  std::vector<std::shared_ptr<EngineCore>> cores;
  std::vector<std::vector<ClaimedRow>> rows;
  for (int n = 0; n < kNodes; ++n) {
    const std::string node = "node-" + std::to_string(n);
    cores.push_back(Core(limits, node));
    rows.push_back(Claimed(kRowsPerNode, Ref("shared"), node));
  }
  std::atomic<int> admitted{0};
  std::latch start(kNodes);
  std::vector<std::thread> threads;
  for (int n = 0; n < kNodes; ++n) {
    threads.emplace_back([&, n] {
      RateLimiter limiter = LimiterOf(cores[n]);
      auto conn = cores[n]->Connect("race");
      start.arrive_and_wait();
      // Several small batches per node, so the nodes' admissions interleave.
      for (int from = 0; from < kRowsPerNode; from += 5) {
        std::vector<ClaimedRow> batch(rows[n].begin() + from, rows[n].begin() + from + 5);
        admitted += static_cast<int>(limiter.Admit(*conn, batch).size());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 10);
  EXPECT_EQ(Count("status = 'executing'"), 10);
  EXPECT_EQ(Count("status = 'scheduled' AND rate_paid"), kNodes * kRowsPerNode - 10);
  // Every other row holds a reservation: the bucket owes one token each, and no two rows were
  // given the same token (each waits one token-time, 6 minutes, after another).
  EXPECT_NEAR(Tokens("shared"), -(kNodes * kRowsPerNode - 10), 0.1);
  EXPECT_EQ(Sql64("SELECT count(DISTINCT date_trunc('minute', eligible_at)) FROM gd_instances "
                  "WHERE status = 'scheduled'"),
            kNodes * kRowsPerNode - 10);
}

TEST_F(RateLimitTest, ThrottledRowsLeaveTheQueueToUnrelatedWork) {
  auto core = Core({{"slow", RateLimit{1, 1h, std::nullopt}}});
  RateLimiter limiter = LimiterOf(core);
  auto conn = core->Connect("test");
  // A backlog of 20 limited rows ahead of one plain row in the same queue.
  auto limited = Claimed(20, Ref("slow"));
  auto plain = Claimed(1, std::nullopt);
  sql_->Exec(
      "UPDATE gd_instances SET status = 'runnable', locked_by = NULL, "
      "lease_expires_at = NULL");

  // The claim takes the oldest rows first: the limited ones fill it.
  auto claimed =
      core->store.Claim(*conn, "default", 20, core->node_id, 60s, {"t.rl@1"}, false, 1).rows;
  ASSERT_EQ(claimed.size(), 20u);
  for (auto& row : claimed) row.rate_limit = Ref("slow");
  EXPECT_EQ(limiter.Admit(*conn, claimed).size(), 1u);

  // The 19 throttled rows no longer stand in front of it: the next claim gets the plain row.
  auto next = core->store.Claim(*conn, "default", 20, core->node_id, 60s, {"t.rl@1"}, true, 2).rows;
  EXPECT_EQ(Ids(next), Ids(plain));
  EXPECT_EQ(Count("status = 'scheduled' AND eligible_at > now() + interval '50 min'"), 19);
}

// --- claims lost with the server ---

using ClaimTest = RateLimitTest;

// A claim commits without waiting for the WAL flush, so the server may lose it (simulated here
// by putting the row back as it was). The node's next claim of the row must carry a larger
// lease_seq than the lost one, so that the lost claim's late outcome is refused.
TEST_F(ClaimTest, ALostClaimsLeaseSeqIsNeverIssuedAgainToTheSameNode) {
  auto core = Core({});
  auto conn = core->Connect("test");
  Claimed(1, std::nullopt);
  const char* kAsBefore =
      "UPDATE gd_instances SET status = 'runnable', locked_by = NULL, lease_expires_at = NULL, "
      "lease_seq = 1";
  sql_->Exec(kAsBefore);
  auto lost = core->store.Claim(*conn, "default", 1, core->node_id, 60s, {"t.rl@1"}, false, 1).rows;
  ASSERT_EQ(lost.size(), 1u);
  sql_->Exec(kAsBefore);  // the server lost it
  auto again =
      core->store.Claim(*conn, "default", 1, core->node_id, 60s, {"t.rl@1"}, false, 2).rows;
  ASSERT_EQ(again.size(), 1u);
  EXPECT_GT(again[0].lease_seq, lost[0].lease_seq);

  detail::OutcomeRow late;
  late.id = lost[0].id;
  late.lease_seq = lost[0].lease_seq;
  late.status = "done";
  late.clear_inbox = true;
  EXPECT_TRUE(core->store.CommitOutcomes(*conn, {late}, core->node_id, 60s, false).empty());
  detail::OutcomeRow current = late;
  current.lease_seq = again[0].lease_seq;
  EXPECT_EQ(core->store.CommitOutcomes(*conn, {current}, core->node_id, 60s, false).size(), 1u);
  EXPECT_EQ(Count("status = 'done'"), 1);
}

// --- heartbeat ---

using HeartbeatTest = RateLimitTest;

// The flusher's commit locks many held rows at once; a heartbeat that waited for them while
// holding others deadlocked with it (seen under a steady load). It skips a locked row instead
// and extends the rest; the next beat takes the skipped one.
TEST_F(HeartbeatTest, SkipsARowLockedByACommitInsteadOfWaitingForIt) {
  auto core = Core({});
  auto conn = core->Connect("test");
  conn->Exec("SET statement_timeout = '5s'");  // a heartbeat that waited fails, not hangs
  const auto ids = Ids(Claimed(2, std::nullopt));
  sql_->Exec("UPDATE gd_instances SET lease_expires_at = now() + interval '1 second'");
  auto locker = detail::pg::Connection::Open(db_, "locker");
  locker->Exec("BEGIN");
  locker->Exec("SELECT 1 FROM gd_instances WHERE id = " + std::to_string(ids[0]) + " FOR UPDATE");

  EXPECT_EQ(core->store.Heartbeat(*conn, core->node_id, ids, 60s), 1);
  const std::string renewed = "lease_expires_at > now() + interval '30 seconds'";
  EXPECT_EQ(Count("id = " + std::to_string(ids[1]) + " AND " + renewed), 1);
  EXPECT_EQ(Count("id = " + std::to_string(ids[0]) + " AND " + renewed), 0);

  locker->Exec("ROLLBACK");
  EXPECT_EQ(core->store.Heartbeat(*conn, core->node_id, ids, 60s), 2);
  EXPECT_EQ(Count(renewed), 2);
}

// --- pruning ---

TEST_F(RateLimitTest, PruneIdleDeletesRefilledBucketsAndKeepsRecentOnes) {
  auto core = Core({{"fast", RateLimit{10, 1000ms, std::nullopt}},  // empty to full: 1 s
                    {"slow", RateLimit{1, 1h, std::nullopt}}});     // empty to full: 1 h
  RateLimiter limiter = LimiterOf(core);
  auto conn = core->Connect("test");
  sql_->Exec(R"SQL(
INSERT INTO gd_rate_buckets (name, key, tokens, updated_at) VALUES
  ('fast', 'idle', 0, now() - interval '2 s'),
  ('fast', 'recent', 0, now()),
  ('slow', 'idle-but-not-refilled', 0, now() - interval '10 min'),
  ('retired', 'old', 0, now() - interval '2 days'),
  ('retired', 'recent', 0, now() - interval '1 hour'))SQL");
  // A bucket in use just now is kept too.
  ASSERT_EQ(limiter.Admit(*conn, Claimed(1, Ref("fast", "used"))).size(), 1u);
  sql_->Exec(
      "UPDATE gd_rate_buckets SET updated_at = now() - interval '900 ms' "
      "WHERE key = 'used'");

  EXPECT_EQ(limiter.PruneIdle(*conn), 2);
  auto r = sql_->Exec("SELECT name || '/' || key FROM gd_rate_buckets ORDER BY 1");
  std::vector<std::string> left;
  for (int i = 0; i < r.rows(); ++i) left.push_back(r.String(i, 0));
  EXPECT_EQ(left, (std::vector<std::string>{"fast/recent", "fast/used", "retired/recent",
                                            "slow/idle-but-not-refilled"}));
  EXPECT_EQ(limiter.PruneIdle(*conn), 0);
}

// A bucket in debt (tokens reserved for throttled rows) is not full however long it has been
// idle: pruning it would forget the reservations, and new rows would start ahead of them.
TEST_F(RateLimitTest, PruneIdleKeepsABucketUntilItsReservationsArePaidBack) {
  auto core = Core({{"fast", RateLimit{10, 1000ms, std::nullopt}}});  // 10 tokens a second
  RateLimiter limiter = LimiterOf(core);
  auto conn = core->Connect("test");
  sql_->Exec(R"SQL(
INSERT INTO gd_rate_buckets (name, key, tokens, updated_at) VALUES
  ('fast', 'deep-debt', -50, now() - interval '2 s'),
  ('fast', 'paid-back', -5, now() - interval '2 s'))SQL");
  EXPECT_EQ(limiter.PruneIdle(*conn), 1);
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_rate_buckets WHERE key = 'deep-debt'"), 1);
}

TEST_F(RateLimitTest, APrunedBucketComesBackFull) {
  auto core = Core({{"fast", RateLimit{2, 1000ms, std::nullopt}}});
  RateLimiter limiter = LimiterOf(core);
  auto conn = core->Connect("test");
  ASSERT_EQ(limiter.Admit(*conn, Claimed(3, Ref("fast"))).size(), 2u);
  sql_->Exec("UPDATE gd_rate_buckets SET updated_at = now() - interval '5 s'");
  EXPECT_EQ(limiter.PruneIdle(*conn), 1);
  EXPECT_EQ(limiter.Admit(*conn, Claimed(3, Ref("fast"))).size(), 2u);
}

// --- end to end: a running engine ---

struct Calls {
  int n = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Calls, n)

// Start times of the steps that ran under a limit, in this process's steady clock.
class StartLog {
 public:
  void Record() {
    std::lock_guard lock(mu_);
    starts_.push_back(std::chrono::steady_clock::now());
  }
  std::vector<std::chrono::steady_clock::time_point> Sorted() {
    std::lock_guard lock(mu_);
    auto out = starts_;
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  std::mutex mu_;
  std::vector<std::chrono::steady_clock::time_point> starts_;  // GUARDED_BY(mu_)
};

class RateLimitEngineTest : public EngineTest {
 protected:
  // `start` hands over to `call` under limit `limit`; `call` records when it started.
  MachineRef<Calls> Limited(const std::string& name, const std::string& limit) {
    return Machine<Calls>(name)
        .Step("start",
              [limit](StepContext<Calls>& c) { return Next("call", c.state()).RateLimit(limit); })
        .Step("call",
              [this](StepContext<Calls>& c) {
                starts_.Record();
                return Done({{"n", c.state().n}});
              })
        .Build();
  }
  // A one-step machine that records its start and is done.
  MachineRef<Calls> Call(const std::string& name) {
    return Machine<Calls>(name)
        .Step("start",
              [this](StepContext<Calls>&) {
                starts_.Record();
                return Done();
              })
        .Build();
  }

  std::int64_t Count(const std::string& where) {
    return Sql64("SELECT count(*) FROM gd_instances WHERE " + where);
  }

  StartLog starts_;
};

TEST_F(RateLimitEngineTest, StepsUnderALimitStartAtItsRate) {
  auto m = Limited("t.rl.rate", "demo");
  auto o = Options({m}, 6);
  o.rate_limits = {{"demo", RateLimit{2, 1000ms, 2}}};
  EventLog events("rate_limit.");  // (outlives the engine)
  auto engine = Engine::Start(o);
  events.AttachTo(engine->telemetry());
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(*client_->Insert(m, Calls{i}));
  for (auto id : ids) EXPECT_EQ(WaitTerminal(id).status, "done");

  // Two at once (the burst), then one per 500 ms: in any window of t seconds at most
  // 2 + 2t start, so the k-th start (k >= 3) is at least (k - 2) * 500 ms after the first.
  // Only lower bounds: a slow machine may start them later, never earlier. The slack covers
  // the latency between an admission (database clock) and the step's start (ours).
  auto starts = starts_.Sorted();
  ASSERT_EQ(starts.size(), 6u);
  for (std::size_t k = 3; k <= starts.size(); ++k) {
    EXPECT_GE(starts[k - 1] - starts[0], (k - 2) * 500ms - 150ms) << "start " << k;
  }
  EXPECT_GE(starts.back() - starts.front(), 1500ms);
  EXPECT_FALSE(events.Named("rate_limit.throttled").empty());
}

TEST_F(RateLimitEngineTest, InsertWithARateLimitSubjectsTheFirstStep) {
  auto m = Call("t.rl.insert");
  auto o = Options({m});
  o.rate_limits = {{"hourly", RateLimit{1, 1h, std::nullopt}}};
  auto engine = Engine::Start(o);
  std::vector<std::int64_t> ids;
  for (const char* key : {"a", "a", "b", "b"}) {
    InsertOptions io;
    io.rate_limit = Ref("hourly", key);
    ids.push_back(*client_->Insert(m, Calls{}, io));
  }
  // One start per key; the second of each key waits for the next token, an hour away.
  ASSERT_TRUE(WaitUntil([&] { return Count("status = 'done'") == 2; }));
  ASSERT_TRUE(WaitUntil([&] {
    return Count("status = 'scheduled' AND eligible_at > now() + interval '50 min'") == 2;
  }));
  EXPECT_EQ(Sql64("SELECT count(DISTINCT rate_key) FROM gd_instances WHERE status = 'scheduled'"),
            2);
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_rate_buckets WHERE name = 'hourly'"), 2);
}

TEST_F(RateLimitEngineTest, AnInsertNamingAnUnknownLimitFailsWithoutRunning) {
  auto m = Call("t.rl.unknown");
  auto o = Options({m});
  o.rate_limits = {{"demo", RateLimit{5, 1000ms, std::nullopt}}};
  EventLog events("rate_limit.");  // (outlives the engine)
  auto engine = Engine::Start(o);
  events.AttachTo(engine->telemetry());
  InsertOptions io;
  io.rate_limit = Ref("nope");
  auto info = WaitTerminal(*client_->Insert(m, Calls{}, io));
  EXPECT_EQ(info.status, "failed");
  EXPECT_EQ(info.last_error, "unknown rate limit 'nope'");
  EXPECT_TRUE(starts_.Sorted().empty());
  EXPECT_EQ(events.Named("rate_limit.unknown").size(), 1u);
}

TEST_F(RateLimitEngineTest, AThrottledBacklogDoesNotStarveUnrelatedWork) {
  auto limited = Call("t.rl.backlog");
  auto plain = Call("t.rl.plain");
  auto o = Options({limited, plain}, 2);
  o.rate_limits = {{"hourly", RateLimit{1, 1h, std::nullopt}}};
  // 100 limited rows ahead of one plain row in the same queue; two slots. Only one limited
  // row may start this hour, so each claim of the backlog is handed back at once.
  std::vector<InsertRequest> backlog;
  for (int i = 0; i < 100; ++i) {
    InsertRequest r;
    r.fsm = "t.rl.backlog";
    r.options.rate_limit = Ref("hourly");
    backlog.push_back(std::move(r));
  }
  client_->InsertAll(backlog);
  const auto plain_id = *client_->Insert(plain, Calls{});

  const auto started = std::chrono::steady_clock::now();
  auto engine = Engine::Start(o);
  auto info = WaitTerminal(plain_id, 10s);
  EXPECT_EQ(info.status, "done");
  // Promptly: the feeder walks through the throttled backlog without idling between claims.
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
  EXPECT_TRUE(WaitUntil([&] { return Count("status = 'scheduled'") == 99; }));
  EXPECT_EQ(Count("status = 'done'"), 2);  // the plain row and the one limited start
}

// Each limited row of a backlog is handed back at most once before its token is there: the
// backlog does not come due all at once every refill period to be claimed and handed back again
// (which rewrote every row of it each period and kept the feeder paging through it).
TEST_F(RateLimitEngineTest, AThrottledBacklogIsExaminedOnceNotAtEveryRefill) {
  auto limited = Call("t.rl.examined");
  auto o = Options({limited}, 4);
  o.rate_limits = {{"tenth", RateLimit{10, 1000ms, 1}}};  // a token every 100 ms
  constexpr int kBacklog = 300;
  std::vector<InsertRequest> backlog;
  for (int i = 0; i < kBacklog; ++i) {
    InsertRequest r;
    r.fsm = "t.rl.examined";
    r.options.rate_limit = Ref("tenth");
    backlog.push_back(std::move(r));
  }
  EventLog events("rate_limit.");  // (outlives the engine)
  auto engine = Engine::Start(o);
  events.AttachTo(engine->telemetry());
  client_->InsertAll(backlog);
  // 15 starts take at least 1.4 s: 14 refill periods, each of which used to bring the whole
  // backlog due again.
  ASSERT_TRUE(WaitUntil([&] { return Count("status = 'done'") >= 15; }, 60s));
  std::int64_t examined = 0;
  for (const auto& e : events.Named("rate_limit.throttled")) {
    const auto reserved = e.measurements.find("reserved");
    examined +=
        1 + (reserved == e.measurements.end() ? 0 : static_cast<std::int64_t>(reserved->second));
  }
  EXPECT_LE(examined, kBacklog) << events.Named("rate_limit.throttled").size() << " hand-backs";
  // No token was handed out twice: the starts keep to the rate (see StepsUnderALimit...).
  auto starts = starts_.Sorted();
  ASSERT_GE(starts.size(), 15u);
  EXPECT_GE(starts[14] - starts[0], 14 * 100ms - 150ms);
}

// A reserved token holds a slot in time, not a right to start whenever: rows whose reserved
// slots passed long ago (their worker died holding them, the database was down, the queue was
// paused) would otherwise all start at once when they come back, far beyond the bucket's burst.
// A chaos run saw 24 such rows of three keys start within 106 ms under a limit of 4 per second.
// Reserved rows claimed later than their slot allows pay again, as unreserved rows do.
TEST_F(RateLimitEngineTest, ReservedRowsClaimedLongAfterTheirSlotsPayAgain) {
  auto limited = Call("t.rl.late");
  auto o = Options({limited}, 4);
  o.rate_limits = {{"hourly", RateLimit{2, std::chrono::hours(1), 2}}};
  constexpr int kRows = 10;
  std::vector<InsertRequest> rows;
  for (int i = 0; i < kRows; ++i) {
    InsertRequest r;
    r.fsm = "t.rl.late";
    r.options.rate_limit = Ref("hourly");
    rows.push_back(std::move(r));
  }
  client_->InsertAll(rows);
  // As gd_rate_take leaves a throttled backlog, with every slot an hour past.
  sql_->Exec("UPDATE gd_instances SET rate_paid = true, eligible_at = now() - interval '1 hour'");
  auto engine = Engine::Start(o);
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Count("status = 'done'") +
                   Count("status = 'scheduled' AND eligible_at > now() + interval '1 minute'") ==
               kRows;
      },
      60s))
      << Count("status = 'done'") << " done";
  EXPECT_EQ(Count("status = 'done'"), 2) << "late reservations started beyond the burst of 2";
  EXPECT_EQ(starts_.Sorted().size(), 2u);
  engine->Stop();
}

TEST_F(RateLimitEngineTest, GcPrunesIdleBuckets) {
  auto m = Call("t.rl.gc");
  auto o = Options({m});
  o.rate_limits = {{"fast", RateLimit{10, 1000ms, std::nullopt}}};
  o.gc_interval = 100ms;
  sql_->Exec(R"SQL(
INSERT INTO gd_rate_buckets (name, key, tokens, updated_at) VALUES
  ('fast', 'idle', 0, now() - interval '1 minute'),
  ('fast', 'busy', 0, now() + interval '1 hour'))SQL");
  auto engine = Engine::Start(o);
  EXPECT_TRUE(WaitUntil(
      [&] { return Sql64("SELECT count(*) FROM gd_rate_buckets WHERE key = 'idle'") == 0; }));
  EXPECT_EQ(Sql64("SELECT count(*) FROM gd_rate_buckets WHERE key = 'busy'"), 1);
}

// --- options ---

TEST(RateLimitOptions, InvalidLimitsAreRefusedNamingTheLimit) {
  auto expect_error = [](const std::string& name, RateLimit limit, const std::string& needle) {
    EngineOptions o;
    o.database = "postgresql:///unused";
    o.rate_limits = {{name, limit}};
    try {
      detail::ValidateEngineOptions(o);
      ADD_FAILURE() << "accepted: " << needle;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("stripe", RateLimit{0, 1000ms, std::nullopt}, "allowed of 'stripe' must be >= 1");
  expect_error("stripe", RateLimit{5, 0ms, std::nullopt}, "period of 'stripe' must be > 0 ms");
  expect_error("stripe", RateLimit{5, 1000ms, 0}, "burst of 'stripe' must be >= 1");
  expect_error("", RateLimit{5, 1000ms, std::nullopt}, "empty name");

  EngineOptions ok;
  ok.database = "postgresql:///unused";
  ok.rate_limits = {{"stripe", RateLimit{100, std::chrono::minutes(1), std::nullopt}},
                    {"emails", RateLimit{5, 60s, 10}}};
  EXPECT_NO_THROW(detail::ValidateEngineOptions(ok));
}

}  // namespace
}  // namespace gen_durable::testing
