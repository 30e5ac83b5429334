// What a crash of the Postgres server may and may not take away (docs/architecture.md, "Claims
// commit asynchronously"). These tests run their own durable cluster, as they crash it.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "gen_durable/embedded/embedded.hpp"
#include "gen_durable/model/validate.hpp"
#include "gen_durable/pg/connection.hpp"
#include "gen_durable/runtime/core.hpp"
#include "gen_durable/schema/migrations.hpp"

namespace gen_durable::testing {
namespace {

using namespace std::chrono_literals;
using detail::EmbeddedCluster;

// A private, durable cluster in a temp dir, removed at the end.
class CrashedServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "gd_durability.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    chmod(pattern.c_str(), 0755);  // the server may run as `postgres` and must traverse it
    dir_ = pattern;
    detail::EmbeddedOptions options;
    options.data_dir = dir_ + "/pgdata";
    options.fast_unsafe = false;
    cluster_ = EmbeddedCluster::Start(options);
    cluster_->CreateDatabase("crash");
    EngineOptions o;
    o.database = cluster_->ConnInfo("crash");
    detail::ValidateEngineOptions(o);
    core_ = std::make_shared<detail::EngineCore>(o, "node-a");
    auto conn = core_->Connect("test");
    detail::Migrate(*conn, "public");
    // The WAL writer flushes asynchronous commits every wal_writer_delay (200 ms by default):
    // a crash sooner than that after one loses it. At 10 s, every crash of these tests lands
    // in that window, which the control below relies on.
    conn->Exec("ALTER SYSTEM SET wal_writer_delay = '10s'");
    conn->Exec("SELECT pg_reload_conf()");
  }

  void TearDown() override {
    core_.reset();
    cluster_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void Crash() {
    cluster_->Stop(EmbeddedCluster::StopMode::kImmediate);
    cluster_->Restart();
  }

  std::string dir_;
  std::unique_ptr<EmbeddedCluster> cluster_;
  std::shared_ptr<detail::EngineCore> core_;
};

// Claims commit without waiting for the WAL flush, and a claim lost with the server only re-runs
// a step. Not so for a row with a partition key: its claim is what keeps every other step of the
// key from starting, so a lost one would let a second step of the key start beside the first,
// still running. Such claims therefore wait for the flush: a crash right after one keeps it.
// The control: a claim of an unkeyed row, made after the keyed one and just before the crash,
// is lost every time, which shows the crash really drops what was not flushed.
TEST_F(CrashedServerTest, AClaimOfAKeyedRowSurvivesAnImmediateCrash) {
  for (int round = 1; round <= 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    auto conn = core_->Connect("test");
    auto inserted = conn->Exec(
        "INSERT INTO public.gd_instances (fsm, step, partition_key) VALUES ('t.keyed', 'start', "
        "'k') "
        "RETURNING id");
    const std::int64_t id = inserted.Int64(0, 0);
    auto claimed =
        core_->store
            .Claim(*conn, "default", 1, core_->node_id, 60s, {"t.keyed@1"}, false, 2 * round - 1)
            .rows;
    ASSERT_EQ(claimed.size(), 1u);
    ASSERT_EQ(claimed[0].id, id);
    // The control, committed (asynchronously) after the keyed claim's flush.
    const std::int64_t plain = conn->Exec(
                                       "INSERT INTO public.gd_instances (fsm, step) VALUES "
                                       "('t.keyed', 'start') RETURNING id")
                                   .Int64(0, 0);
    auto plain_claimed =
        core_->store
            .Claim(*conn, "default", 1, core_->node_id, 60s, {"t.keyed@1"}, false, 2 * round)
            .rows;
    ASSERT_EQ(plain_claimed.size(), 1u);
    ASSERT_EQ(plain_claimed[0].id, plain);
    conn.reset();
    Crash();

    auto after = core_->Connect("test");
    auto row = after->Exec(
        "SELECT status, lease_seq, coalesce(locked_by, '') FROM public.gd_instances "
        "WHERE id = " +
        std::to_string(id));
    ASSERT_EQ(row.rows(), 1);
    EXPECT_EQ(row.String(0, 0), "executing");
    EXPECT_EQ(row.Int64(0, 1), claimed[0].lease_seq);
    EXPECT_EQ(row.String(0, 2), core_->node_id);
    auto control = after->Exec(
        "SELECT status, lease_seq, coalesce(locked_by, '') "
        "FROM public.gd_instances WHERE id = " +
        std::to_string(plain));
    ASSERT_EQ(control.rows(), 1);  // its insert committed synchronously
    EXPECT_EQ(control.String(0, 0), "runnable") << "the crash did not lose an unflushed claim";
    EXPECT_EQ(control.String(0, 2), "");
    after->Exec("UPDATE public.gd_instances SET status = 'done' WHERE id = " +
                std::to_string(plain));
    after->Exec("UPDATE public.gd_instances SET status = 'done', locked_by = NULL WHERE id = " +
                std::to_string(id));
  }
}

}  // namespace
}  // namespace gen_durable::testing
