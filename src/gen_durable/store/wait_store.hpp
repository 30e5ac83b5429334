// The SQL of waiting for an instance to end (Client::Wait): marking the row a caller waits on,
// so that the statement ending it notifies the wait channel (schema version 9).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "gen_durable/pg/connection.hpp"

namespace gen_durable::detail {

class WaitStore {
 public:
  explicit WaitStore(const std::string& schema);

  // The wait channel of the schema (payload: the id of an awaited instance that ended).
  const std::string& channel() const { return channel_; }

  // Marks instance `id` as awaited and returns its status as of after the mark, or nullopt when
  // there is no such instance. Once this returns, a commit that ends the row either came
  // before (the status returned is terminal) or notifies the wait channel. The mark's commit
  // does not wait for the WAL flush (a mark lost with the server only leaves the waiter to its
  // polling), so the row lock is held only for the update itself: claims skip locked rows.
  std::optional<std::string> Watch(pg::Connection& c, std::int64_t id) const;
  // The same inside the caller's open transaction on `c` (synchronous like that transaction):
  // for the row that transaction inserted, marked before any engine can see it.
  void WatchInTransaction(pg::Connection& c, std::int64_t id) const;

 private:
  std::string channel_;
  pg::Statement async_, mark_, status_;
};

}  // namespace gen_durable::detail
