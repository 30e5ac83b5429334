// The HTTP transport: bind first (so errors reach the caller), then serve on a thread.
#include "gen_durable/http/http_server.hpp"

#include <fmt/format.h>

#include <chrono>

#include "gen_durable/error.hpp"

namespace gen_durable::detail {

HttpServerImpl::HttpServerImpl(std::unique_ptr<httplib::Server> server, const std::string& bind,
                               int port)
    : server_(std::move(server)) {
  if (port < 0 || port > 65535) {
    throw InvalidArgument(fmt::format("http: port must be in 0..65535 (got {})", port));
  }
  // cpp-httplib's default also sets SO_REUSEPORT, which lets a second server bind the same
  // port and silently share its connections: a port in use must be an error instead.
  server_->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<const void*>(&yes), sizeof(yes));
  });
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
  // stop() is a no-op until the loop runs (it would then serve forever): wait for it.
  for (int i = 0; i < 5000 && !server_->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

HttpServerImpl::~HttpServerImpl() { Stop(); }

void HttpServerImpl::Stop() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

}  // namespace gen_durable::detail
