// Guide example: a worker that also serves Prometheus metrics and the web dashboard. The
// snippets of docs/guides/metrics.md and docs/guides/dashboard.md come from this file.
//
//   example_guide_dashboard DATABASE_URL [SECONDS]   serves until SIGINT/SIGTERM or SECONDS
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <gen_durable/dashboard.hpp>
#include <gen_durable/gen_durable.hpp>
#include <gen_durable/metrics.hpp>
#include <iostream>
#include <string>
#include <thread>

namespace gd = gen_durable;

const auto kResize = gd::Job<gd::Json>("images.resize")
                         .Perform([](const gd::Json&, gd::JobContext&) {
                           return gd::JobResult::Ok({{"resized", true}});
                         })
                         .Register();

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: " << argv[0] << " DATABASE_URL [SECONDS]\n";
    return 2;
  }
  const int seconds = argc > 2 ? std::atoi(argv[2]) : 0;
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);  // before any thread starts

  gd::EngineOptions opts;
  opts.database = argv[1];
  opts.history = true;  // the dashboard's instance page shows each step
  auto engine = gd::Engine::Start(opts);

  // Prometheus metrics of this engine at http://127.0.0.1:9464/metrics.
  gd::Metrics metrics(*engine);
  gd::MetricsServerOptions metrics_options;
  metrics_options.port = 9464;
  auto metrics_server = gd::MetricsServer::Start(metrics, metrics_options);

  // The dashboard at http://127.0.0.1:8080/, with this node's own view of its queues.
  gd::DashboardOptions dashboard_options;
  dashboard_options.port = 8080;
  auto dashboard = gd::Dashboard::Start(*engine, dashboard_options);

  std::cout << "metrics on port " << metrics_server->port() << ", dashboard on port "
            << dashboard->port() << std::endl;
  if (seconds > 0) {
    const timespec wait{seconds, 0};
    sigtimedwait(&stop, nullptr, &wait);
  } else {
    int sig = 0;
    sigwait(&stop, &sig);
  }
  dashboard->Stop();  // stop serving before the engine goes
  metrics_server->Stop();
  engine->Stop();
  return 0;
}
