// A cpp-httplib server on a thread of its own: the transport of the metrics endpoint and the
// dashboard. Internal (httplib stays out of the public headers).
#pragma once

#include <httplib.h>

#include <memory>
#include <string>
#include <thread>

namespace gen_durable::detail {

class HttpServerImpl {
 public:
  // Binds `bind`:`port` (0: any free port) and serves `server`'s routes on a new thread. Throws
  // gen_durable::Error when the address cannot be bound.
  HttpServerImpl(std::unique_ptr<httplib::Server> server, const std::string& bind, int port);
  ~HttpServerImpl();
  HttpServerImpl(const HttpServerImpl&) = delete;
  HttpServerImpl& operator=(const HttpServerImpl&) = delete;

  int port() const { return port_; }
  void Stop();

 private:
  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace gen_durable::detail
