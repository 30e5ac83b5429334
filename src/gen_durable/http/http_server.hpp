// A cpp-httplib server on a thread of its own: the transport of the metrics endpoint and the
// dashboard. Internal (httplib stays out of the public headers).
//
// Every request passes HttpGuard (http_guard.hpp) before its handler; every response carries
// the security headers. The connection handling is our own (GuardedServer) rather than the
// library's, because the library this project builds against reads unbounded header lists and
// chunked bodies: here each request has a byte budget and a deadline, connections are capped,
// and the worker queue is bounded.
#pragma once

#include <httplib.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "gen_durable/http/http_guard.hpp"
#include "gen_durable/http_options.hpp"

namespace gen_durable::detail {

class GuardedServer;

// The access the guard granted to the request this thread is serving (handlers read it).
HttpAccess CurrentAccess();

class HttpServerImpl {
 public:
  using Routes = std::function<void(httplib::Server&, const HttpGuard&)>;
  // Checks `security` (throws ConfigError / InvalidArgument), binds `bind`:`port` (0: any free
  // port), installs `routes` and serves them on a new thread. Throws gen_durable::Error when the
  // address cannot be bound.
  HttpServerImpl(const HttpSecurityOptions& security, const std::string& bind, int port,
                 const Routes& routes);
  ~HttpServerImpl();
  HttpServerImpl(const HttpServerImpl&) = delete;
  HttpServerImpl& operator=(const HttpServerImpl&) = delete;

  int port() const { return port_; }
  bool tls() const;
  void Stop();

 private:
  std::unique_ptr<HttpGuard> guard_;
  std::unique_ptr<GuardedServer> server_;
  int port_ = 0;
  std::thread thread_;
};

// Replies `status` with {"error": message} (JSON, not cached).
void ReplyError(httplib::Response& res, int status, const std::string& message);

}  // namespace gen_durable::detail
