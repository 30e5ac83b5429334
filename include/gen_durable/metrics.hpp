// Prometheus metrics of an engine (docs/guides/metrics.md), and a small HTTP server for them.
//
//   gen_durable::Metrics metrics(*engine);                 // attaches to its telemetry
//   auto server = gen_durable::MetricsServer::Start(metrics, {.port = 9464});
//   // GET http://127.0.0.1:9464/metrics
//
// Counters and histograms are built from the engine's telemetry events as they happen (a map
// lookup and an add per event); gauges (queue depth by status, paused queues, oldest ready age,
// this node's slots) are read when the metrics are rendered. Link gen_durable::http.
// The metric names are listed in docs/guides/metrics.md.
#pragma once

#include <memory>
#include <string>

#include "gen_durable/http_options.hpp"

namespace gen_durable {

class Engine;

namespace detail {
class MetricsImpl;
class HttpServerImpl;
}  // namespace detail

class Metrics {
 public:
  // Attaches to `engine`'s telemetry. The engine must outlive this object.
  explicit Metrics(Engine& engine);
  ~Metrics();  // detaches
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Every metric now, in the Prometheus text exposition format (version 0.0.4). Reads the
  // database for the cluster gauges; if that fails, they are left out and
  // gen_durable_scrape_errors_total counts it. Thread-safe.
  std::string Render();

 private:
  std::unique_ptr<detail::MetricsImpl> impl_;
};

struct MetricsServerOptions {
  std::string bind = "127.0.0.1";  // address to listen on ("0.0.0.0": every interface)
  int port = 0;                    // 0: any free port (see port())
  // Token (Prometheus: `authorization: {credentials_file: ...}`), Host allow-list, limits,
  // TLS. A non-loopback bind needs a token or allow_unauthenticated.
  HttpSecurityOptions security;
};

// Serves GET /metrics (Content-Type text/plain; version=0.0.4) on a thread of its own; any
// other path is 404. Requests pass the same checks as the dashboard's (docs/security.md).
class MetricsServer {
 public:
  // Throws gen_durable::Error when the address cannot be bound. `metrics` must outlive it.
  static std::unique_ptr<MetricsServer> Start(Metrics& metrics,
                                              const MetricsServerOptions& options = {});
  ~MetricsServer();  // Stop()
  // The port it listens on.
  int port() const;
  // Stops listening and joins the thread. Idempotent.
  void Stop();

 private:
  explicit MetricsServer(std::unique_ptr<detail::HttpServerImpl> impl);
  std::unique_ptr<detail::HttpServerImpl> impl_;
};

}  // namespace gen_durable
