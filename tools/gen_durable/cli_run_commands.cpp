// The commands of the `gen_durable` command line that run until stopped or until done: the
// worker, the dashboard, the demo and the benchmark (docs/guides/cli.md).
#include <string>

#include "gen_durable/cli_flags.hpp"  // tools/

namespace gen_durable::tools {

// `dashboard` and who may use it.
CLI::App* AddDashboard(CLI::App& app, ParsedCommand& cmd) {
  CLI::App* dashboard =
      AddCommand(app, cmd, "dashboard",
                 "Serve the web dashboard until SIGINT/SIGTERM (its URL goes to stderr)", false);
  dashboard->add_option("--port", cmd.dashboard.port, "Port (0: any free port)")
      ->capture_default_str();
  dashboard->add_option("--bind", cmd.dashboard.bind, "Address to listen on")
      ->capture_default_str();
  dashboard
      ->add_option("--refresh-ms", cmd.dashboard.refresh_ms,
                   std::string("Page refresh period") + kDurationHelp)
      ->capture_default_str()
      ->transform(Duration());
  AddHttpFlags(dashboard, cmd.dashboard.http, "", kDashboardTokenEnv);
  dashboard->add_flag("--read-only", cmd.dashboard.http.read_only,
                      "Show only: no buttons, every action answers 403");
  return dashboard;
}

// `worker`: the engine's options, its metrics server and step log.
CLI::App* AddWorker(CLI::App& app, ParsedCommand& cmd) {
  CLI::App* worker = AddCommand(
      app, cmd, "worker", "Run the demo machines until SIGINT/SIGTERM, then drain and exit", false);
  worker
      ->add_option(
          "--queues", cmd.worker.queues,
          "Queues to serve: NAME:CONCURRENCY or NAME:MIN-MAX (autoscaled), comma-separated")
      ->capture_default_str();
  worker->add_option("--name", cmd.worker.name, "Engine name")->capture_default_str();
  worker
      ->add_option("--lease-ttl", cmd.worker.lease_ttl_ms,
                   std::string("Lease of a claimed row") + kDurationHelp)
      ->capture_default_str()
      ->transform(Duration());
  worker
      ->add_option("--heartbeat-interval", cmd.worker.heartbeat_interval_ms,
                   std::string("Lease extension period, < --lease-ttl (default: min(20s, "
                               "lease-ttl / 3))") +
                       kDurationHelp)
      ->transform(Duration());
  worker
      ->add_option("--poll-interval", cmd.worker.poll_interval_ms,
                   std::string("Base idle poll") + kDurationHelp)
      ->capture_default_str()
      ->transform(Duration());
  worker
      ->add_option("--reap-interval", cmd.worker.reap_interval_ms,
                   std::string("Reaper sweep period") + kDurationHelp)
      ->capture_default_str()
      ->transform(Duration());
  worker
      ->add_option("--gc-interval", cmd.worker.gc_interval_ms,
                   std::string("GC sweep period; 0 disables GC on this node") + kDurationHelp)
      ->capture_default_str()
      ->transform(Duration());
  worker
      ->add_option("--gc-retention", cmd.worker.gc_retention_ms,
                   std::string("Keep terminal rows this long before GC") + kDurationHelp)
      ->capture_default_str()
      ->transform(Duration());
  worker
      ->add_option("--prefetch", cmd.worker.prefetch,
                   "Rows each queue claims beyond its free slots")
      ->capture_default_str();
  worker
      ->add_option("--drain-timeout", cmd.worker.drain_timeout_ms,
                   std::string("On stop, wait this long for running steps") + kDurationHelp)
      ->capture_default_str()
      ->transform(Duration());
  worker
      ->add_option("--autoscale-interval", cmd.worker.autoscale_interval_ms,
                   std::string("How often autoscaled queues (--queues NAME:MIN-MAX) re-evaluate") +
                       kDurationHelp)
      ->capture_default_str()
      ->transform(Duration());
  worker
      ->add_option(
          "--autoscale-cooldown", cmd.worker.autoscale_cooldown_ms,
          std::string("An autoscaled queue shrinks only after this long without a change") +
              kDurationHelp)
      ->capture_default_str()
      ->transform(Duration());
  worker->add_option("--metrics-port", cmd.worker.metrics_port,
                     "Serve Prometheus metrics at /metrics on this port (0: any free port)");
  worker->add_option("--metrics-bind", cmd.worker.metrics_bind, "Address of the metrics server")
      ->capture_default_str();
  AddHttpFlags(worker, cmd.worker.metrics_http, "metrics-", kMetricsTokenEnv);
  worker->add_flag("--history", cmd.worker.history,
                   "Record each step's outcome in the instance's history (shown by `show`)");
  worker
      ->add_option("--history-retention", cmd.worker.history_retention_ms,
                   std::string("GC deletes history entries older than this") + kDurationHelp)
      ->capture_default_str()
      ->transform(Duration());
  worker
      ->add_option("--rate-limit", cmd.worker.rate_limits,
                   "Define a token bucket: NAME:ALLOWED:PERIOD[:BURST] (repeatable; PERIOD a "
                   "duration: 250ms, 30s, 5m, 1h, 1d, bare: ms; BURST defaults to ALLOWED)")
      ->expected(1)
      ->take_all();
  worker
      ->add_option("--global-limit", cmd.worker.global_limits,
                   "At most N steps of QUEUE executing across all nodes: QUEUE:N (repeatable; "
                   "stored for the cluster, the last worker to start wins)")
      ->expected(1)
      ->take_all();
  worker
      ->add_option("--schedule", cmd.worker.schedules,
                   "Carry a periodic schedule: 'NAME;CRON;FSM[;STATE_JSON]' (repeatable; CRON has "
                   "5 fields, 6 with seconds first, or is '@every 30s', '@hourly'...; every node "
                   "carrying NAME shares it, one insert per slot)")
      ->expected(1)
      ->take_all();
  worker->add_option("--step-log", cmd.worker.step_log,
                     "Append one JSON line per finished step, stale outcome and reaped row to "
                     "FILE (an audit trail)");
  return worker;
}

// `demo`.
CLI::App* AddDemo(CLI::App& app, ParsedCommand& cmd) {
  CLI::App* demo =
      AddCommand(app, cmd, "demo", "Run a mix of demo machines and show the progress", true);
  demo->add_option("--count", cmd.demo.count, "Instances to insert")->capture_default_str();
  demo->add_option("--timeout", cmd.demo.timeout_s,
                   std::string("Give up after this") + kSecondsHelp)
      ->capture_default_str()
      ->transform(Duration(DurationIn::kWholeSeconds));
  return demo;
}

// `bench SCENARIO` and the knobs of a run (docs/performance.md).
CLI::App* AddBench(CLI::App& app, ParsedCommand& cmd) {
  CLI::App* bench = AddCommand(
      app, cmd, "bench", "Run a benchmark scenario; print its figures as one JSON object", false);
  bench
      ->add_option("scenario", cmd.bench.scenario,
                   "jobs, chain, insert, latency, signal, fanout, large or soak")
      ->required();
  bench->add_option("--count", cmd.bench.count,
                    "Instances (children for fanout); default: 100000 for jobs, insert and "
                    "large, 10000 for chain and fanout, 1000 for signal");
  bench->add_option("--steps", cmd.bench.steps, "chain: steps per instance")->capture_default_str();
  bench->add_option("--concurrency", cmd.bench.concurrency, "Worker slots per node")
      ->capture_default_str();
  bench->add_option("--prefetch", cmd.bench.prefetch, "Rows claimed beyond the free slots")
      ->capture_default_str();
  bench->add_option("--nodes", cmd.bench.nodes, "Worker processes")->capture_default_str();
  bench
      ->add_option("--rate", cmd.bench.rate,
                   "latency: inserts/s; signal: signals/s; soak: instances/s")
      ->capture_default_str();
  bench
      ->add_option("--duration-s", cmd.bench.duration_s,
                   std::string("latency, soak: how long the load runs") + kSecondsHelp)
      ->capture_default_str()
      ->transform(Duration(DurationIn::kSeconds));
  bench
      ->add_option("--sample-s", cmd.bench.sample_s,
                   std::string("soak: time between samples") + kSecondsHelp)
      ->capture_default_str()
      ->transform(Duration(DurationIn::kSeconds));
  bench
      ->add_option("--gc-retention-ms", cmd.bench.gc_retention_ms,
                   std::string("soak: keep finished rows this long before GC") + kDurationHelp)
      ->capture_default_str()
      ->transform(Duration());
  bench
      ->add_option("--gc-interval-ms", cmd.bench.gc_interval_ms,
                   std::string("soak: GC sweep period; 0 disables GC") + kDurationHelp)
      ->capture_default_str()
      ->transform(Duration());
  bench
      ->add_option("--large-rows", cmd.bench.large_rows,
                   "large: done rows, and as many future rows, present in the table")
      ->capture_default_str();
  bench->add_option("--batch", cmd.bench.batch, "Rows per insert statement")->capture_default_str();
  bench
      ->add_option("--inline-next", cmd.bench.inline_next,
                   "Run a chain's next step on the same claim (true/false)")
      ->capture_default_str();
  bench
      ->add_option("--history", cmd.bench.history,
                   "Record every step in the instances' history (true/false)")
      ->capture_default_str();
  bench->add_option("--synchronous-commit", cmd.bench.synchronous_commit,
                    "synchronous_commit for every session (on, off, local, ...; default: the "
                    "server's)");
  return bench;
}

}  // namespace gen_durable::tools
