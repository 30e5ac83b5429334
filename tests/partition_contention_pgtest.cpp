// Partition keys under contention: a keyed row whose key another claim holds is skipped and
// reported, and never costs the rest of the claim.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

#include "support/engine_harness.hpp"
#include "support/event_log.hpp"

namespace gen_durable::testing {
namespace {

class PartitionContentionTest : public EngineTest {
 protected:
  std::int64_t Count(const std::string& where) {
    return Sql64("SELECT count(*) FROM gd_instances WHERE " + where);
  }
};

// Another node is in the middle of claiming a row of key `acct-1` (its claim has taken the
// key's slot and has not committed yet) while this node claims a batch that holds another row
// of that key ahead of twenty rows without a key. The keyed row is left runnable and reported;
// the twenty run at once instead of waiting for the other claim (the unique partition index
// made the whole claim wait for it, then refused it).
TEST_F(PartitionContentionTest, AKeyBeingClaimedElsewhereCostsOnlyItsOwnRow) {
  auto job = Job<Json>("t.contend")
                 .Perform([](const Json&, JobContext&) { return JobResult::Ok(); })
                 .Build();
  InsertOptions keyed;
  keyed.partition_key = "acct-1";
  const auto rival_row = *client_->Insert(job, keyed);

  // The rival claim, in flight: it holds the key (as every claim of a key does) and has
  // moved its row to executing in slot 0, uncommitted.
  auto rival = detail::pg::Connection::Open(db_, "rival-claim");
  rival->Exec("BEGIN");
  rival->Exec("SELECT gd_partition_free_slots('acct-1', 1, 1)");
  rival->Exec(
      "UPDATE gd_instances SET status = 'executing', locked_by = 'rival', partition_slot = 0, "
      "lease_seq = lease_seq + 1, lease_expires_at = now() + interval '1 hour' WHERE id = " +
      std::to_string(rival_row));

  auto o = Options({job}, 4);
  o.prefetch = 20;  // one claim asks for the keyed row and every plain row at once
  EventLog contended("partition.contended");  // (outlives the engine)
  auto engine = Engine::Start(o);
  contended.AttachTo(engine->telemetry());
  engine->Pause("default");
  const auto key_row = *client_->Insert(job, keyed);
  std::vector<InsertRequest> plain(20, InsertRequest{"t.contend", 1, {}});
  ASSERT_EQ(client_->InsertAll(plain).size(), 20u);
  engine->Resume("default");

  // All twenty finish while the rival claim is still open.
  const bool ran =
      WaitUntil([&] { return Count("status = 'done' AND partition_key IS NULL") == 20; }, 30s);
  EXPECT_TRUE(ran) << Count("status = 'done' AND partition_key IS NULL")
                   << " of 20 plain rows done while another node was claiming acct-1";
  EXPECT_EQ(client_->Get(key_row)->status, "runnable");
  const auto events = contended.Named("partition.contended");
  ASSERT_FALSE(events.empty());
  for (const auto& e : events) {
    EXPECT_EQ(e.measurements.at("count"), 1);
    EXPECT_EQ(e.metadata["id"], key_row);
    EXPECT_EQ(e.metadata["fsm"], "t.contend");
    EXPECT_EQ(e.metadata["partition_key"], "acct-1");
  }

  // The rival's claim commits and its step ends; then the key's other row runs.
  rival->Exec("COMMIT");
  rival->Exec(
      "UPDATE gd_instances SET status = 'done', locked_by = NULL, "
      "completed_at = now() WHERE id = " +
      std::to_string(rival_row));
  EXPECT_EQ(WaitTerminal(key_row).status, "done");
}

// Two nodes race over one key with many rows beside a stream of rows without a key: every row
// finishes, and no two steps of the key ever overlap.
TEST_F(PartitionContentionTest, TwoNodesRacingOnOneKeyNeverOverlapAndLoseNothing) {
  std::atomic<int> in_key{0};
  std::atomic<int> overlaps{0};
  auto job = Job<Json>("t.race")
                 .Perform([&](const Json& args, JobContext&) {
                   if (args.value("keyed", false)) {
                     if (in_key.fetch_add(1) != 0) overlaps.fetch_add(1);
                     std::this_thread::sleep_for(2ms);
                     in_key.fetch_sub(1);
                   }
                   return JobResult::Ok();
                 })
                 .Build();
  auto a = Engine::Start(Options({job}, 4));
  auto b = Engine::Start(Options({job}, 4));
  std::vector<InsertRequest> reqs;
  for (int i = 0; i < 240; ++i) {
    InsertRequest r{"t.race", 1, {}};
    if (i % 4 == 0) {
      r.options.state = Json{{"keyed", true}};
      r.options.partition_key = "hot";
    }
    reqs.push_back(r);
  }
  const auto ids = client_->InsertAll(reqs);
  ASSERT_EQ(ids.size(), reqs.size());
  ASSERT_TRUE(WaitUntil([&] { return Count("status = 'done'") == 240; }, 120s))
      << Count("status = 'done'") << " of 240 done";
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(Count("status <> 'done'"), 0);
}

}  // namespace
}  // namespace gen_durable::testing
