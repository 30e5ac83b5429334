// The web dashboard (docs/guides/dashboard.md): queues with counts, throughput and pause / resume;
// nodes; instance search; an instance page with state, history, signals and the children tree;
// cancel, retry and signal. Served by this process from files embedded in the library: nothing to
// build or install.
//
//   auto dashboard = gen_durable::Dashboard::Start(*engine, {.port = 8080});
//   // open http://127.0.0.1:8080/
//
// `gen_durable dashboard --port P` runs one on its own. It listens on 127.0.0.1 by default;
// options.security adds a token (bearer or basic auth), an authorize hook, read-only access,
// the Host allow-list, limits and TLS, and a non-loopback bind is refused without credentials
// (docs/security.md). Link gen_durable::http.
#pragma once

#include <memory>
#include <string>

#include "gen_durable/http_options.hpp"

namespace gen_durable {

class Client;
class Engine;

namespace detail {
class HttpServerImpl;
}

struct DashboardOptions {
  std::string bind = "127.0.0.1";  // address to listen on
  int port = 0;                    // 0: any free port (see port())
  int refresh_ms = 3000;           // how often open pages refresh themselves
  HttpSecurityOptions security;    // who may read and act, accepted Hosts, limits, TLS
};

class Dashboard {
 public:
  // Serves the dashboard over `client` (its database and schema). `client` must outlive it.
  // Throws gen_durable::Error when the address cannot be bound.
  static std::unique_ptr<Dashboard> Start(Client& client, const DashboardOptions& options = {});
  // The same over `engine`'s client; the queue page also shows this node's own view of its
  // queues (slots, running, buffered). `engine` must outlive it.
  static std::unique_ptr<Dashboard> Start(Engine& engine, const DashboardOptions& options = {});
  ~Dashboard();  // Stop()
  int port() const;
  bool tls() const;  // serves HTTPS
  // Stops listening and joins the server thread. Idempotent.
  void Stop();

 private:
  explicit Dashboard(std::unique_ptr<detail::HttpServerImpl> impl);
  std::unique_ptr<detail::HttpServerImpl> impl_;
};

}  // namespace gen_durable
