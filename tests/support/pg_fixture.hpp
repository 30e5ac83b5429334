// Postgres for tests: one shared cluster per test process, one fresh database per test.
//
// The cluster is the one scripts/test started (GEN_DURABLE_TEST_PGDATA names its data directory),
// or else a throwaway cluster with durability off, created in a temp dir on first use and removed
// when the process exits. Each test asks for its own database, so tests never see each other's
// rows and may run in parallel.
//
//   TEST(Store, InsertReturnsId) {
//     std::string conninfo = gen_durable::testing::FreshDatabase();
//     ...connect with conninfo...
//   }
#pragma once

#include <string>

#include "gen_durable/embedded/embedded.hpp"

namespace gen_durable::testing {

// A libpq connection string to a new, empty database unique to the calling test.
std::string FreshDatabase();

// The shared cluster used by this test process (started on first use). Thread-safe.
// Tests that stop or restart Postgres must start their own EmbeddedCluster instead: this one
// may be shared with other test processes running in parallel.
gen_durable::detail::EmbeddedCluster& Cluster();

// Path of the built gen_durable CLI binary (from the GEN_DURABLE_CLI env var or a compile
// definition); "gen_durable" (looked up on PATH) when neither is set.
std::string CliPath();

}  // namespace gen_durable::testing
