// The HTTP transport: bind first (so errors reach the caller), then serve on a thread.
#include "gen_durable/http/http_server.hpp"

#include <fmt/format.h>

#include "gen_durable/error.hpp"

namespace gen_durable::detail {

HttpServerImpl::HttpServerImpl(std::unique_ptr<httplib::Server> server, const std::string& bind,
                               int port)
    : server_(std::move(server)) {
  if (port < 0 || port > 65535) {
    throw InvalidArgument(fmt::format("http: port must be in 0..65535 (got {})", port));
  }
  if (port == 0) {
    port_ = server_->bind_to_any_port(bind);
  } else {
    port_ = server_->bind_to_port(bind, port) ? port : -1;
  }
  if (port_ <= 0) {
    throw ConfigError(fmt::format("http: cannot listen on {}:{} (in use, or not an address of this "
                            "host)",
                            bind, port));
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
}

HttpServerImpl::~HttpServerImpl() { Stop(); }

void HttpServerImpl::Stop() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

}  // namespace gen_durable::detail
