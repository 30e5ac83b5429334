// The statements of waiting for an instance to end (see wait_store.hpp).
#include "gen_durable/store/wait_store.hpp"

#include <utility>
#include <vector>

#include "gen_durable/schema/migrations.hpp"

namespace gen_durable::detail {

namespace {

// The mark's transaction commits without waiting for the WAL flush (see Watch).
constexpr const char* kAsyncCommitSql = "SELECT set_config('synchronous_commit', 'off', true)";

// Primary-key update. Only a row not yet marked is written, so many waiters of one instance
// write it once; the row lock orders the mark against a commit ending the row (which waits for
// it, then sees the mark and notifies).
constexpr const char* kMarkSql = R"SQL(
UPDATE {s}.gd_instances SET awaited = true WHERE id = $1 AND NOT awaited RETURNING status)SQL";

// Primary-key read, in a statement (and so a snapshot) of its own after the mark: a row that
// was marked already is either ended in this snapshot or notifies when it ends.
constexpr const char* kStatusSql = "SELECT status FROM {s}.gd_instances WHERE id = $1";

}  // namespace

WaitStore::WaitStore(const std::string& schema)
    : channel_(WaitChannelFor(schema)),
      async_{"gd_wait_async_commit", kAsyncCommitSql},
      mark_{"gd_wait_mark", WithSchema(kMarkSql, schema)},
      status_{"gd_wait_status", WithSchema(kStatusSql, schema)} {}

std::optional<std::string> WaitStore::Watch(pg::Connection& c, std::int64_t id) const {
  std::vector<std::pair<const pg::Statement*, pg::Params>> batch;
  batch.emplace_back(&async_, pg::Params());
  batch.emplace_back(&mark_, pg::Params().Add(id));
  batch.emplace_back(&status_, pg::Params().Add(id));
  const auto results = c.Pipeline(batch, /*transaction=*/true);
  const pg::Result& status = results.back();
  if (status.rows() == 0) return std::nullopt;
  return std::string(status.Text(0, 0));
}

void WaitStore::WatchInTransaction(pg::Connection& c, std::int64_t id) const {
  c.Execute(mark_, pg::Params().Add(id));
}

}  // namespace gen_durable::detail
