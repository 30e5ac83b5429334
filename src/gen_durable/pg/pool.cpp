// The self-reopening connection: see pool.hpp.
#include "gen_durable/pg/pool.hpp"

#include <utility>

namespace gen_durable::detail::pg {

ReconnectingConnection::ReconnectingConnection(std::function<std::unique_ptr<Connection>()> open)
    : open_(std::move(open)) {}

Connection& ReconnectingConnection::Get() {
  if (!usable()) conn_ = open_();
  return *conn_;
}

void ReconnectingConnection::DropIfBroken() {
  if (conn_ && conn_->broken()) conn_.reset();
}

}  // namespace gen_durable::detail::pg
