// A connection that reopens itself after it broke: the one way the engine's background threads
// hold their database connection (a lost connection is replaced on the next use, not retried
// in place).
#pragma once

#include <functional>
#include <memory>

#include "gen_durable/pg/connection.hpp"

namespace gen_durable::detail::pg {

class ReconnectingConnection {
 public:
  // `open` opens a fresh connection (and throws DatabaseError when it cannot).
  explicit ReconnectingConnection(std::function<std::unique_ptr<Connection>()> open);

  // The connection, opened first when there is none or the last one broke. Throws what `open`
  // throws.
  Connection& Get();
  // True when Get would return the current connection without opening a new one.
  bool usable() const { return conn_ && !conn_->broken(); }
  // After a failure: forgets the connection when it broke (the next Get opens another).
  void DropIfBroken();
  // Closes the connection now, broken or not.
  void Reset() { conn_.reset(); }

 private:
  std::function<std::unique_ptr<Connection>()> open_;
  std::unique_ptr<Connection> conn_;
};

}  // namespace gen_durable::detail::pg
