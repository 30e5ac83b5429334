// The parser of the `gen_durable` command line (docs/guides/cli.md): every command, flag and
// default.
#include "gen_durable/cli.hpp"  // tools/

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <sstream>

#include "gen_durable/model/validate.hpp"

namespace gen_durable::tools {
namespace {

// Flags every command accepts, before or after the subcommand name. They are declared on each
// subcommand (not only on the root) so that `gen_durable show --help` lists them.
void AddCommonFlags(CLI::App* app, GlobalOptions& global, int& verbosity) {
  app->add_option("--database", global.database,
                  "libpq connection string or URL (default: $GEN_DURABLE_DATABASE_URL, else the "
                  "embedded database); keep passwords out of it, in $GEN_DURABLE_DATABASE_URL, "
                  "a PGPASSFILE or a PGSERVICE");
  app->add_option("--schema", global.schema,
                  "Postgres schema holding the tables: [a-z_][a-z0-9_]{0,62}")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& value) { return detail::SchemaNameProblem(value); }, "SCHEMA"));
  app->add_flag("-v,--verbose", verbosity, "Log engine activity (-v info, -vv debug)");
}

void AddJsonFlag(CLI::App* app, GlobalOptions& global) {
  app->add_flag("--json", global.json, "Print JSON instead of text");
}

// The access flags of an HTTP surface; `prefix` distinguishes the worker's metrics flags.
void AddHttpFlags(CLI::App* app, HttpArgs& http, const std::string& prefix, const char* env) {
  app->add_option("--" + prefix + "token-file", http.token_file,
                  fmt::format("File (mode 0600) holding the access token, sent as \"Authorization: "
                              "Bearer TOKEN\" or as the basic-auth password (default: ${})",
                              env));
  app->add_flag("--" + prefix + "allow-unauthenticated", http.allow_unauthenticated,
                "Allow a non-loopback bind without a token (a proxy in front authenticates)");
  app->add_option("--" + prefix + "allow-host", http.allow_hosts,
                  "Host name accepted in requests besides localhost and the bind address "
                  "(repeatable; '*': any)");
  app->add_option("--" + prefix + "tls-cert", http.tls_cert,
                  "PEM certificate chain: serve HTTPS (with --" + prefix + "tls-key)");
  app->add_option("--" + prefix + "tls-key", http.tls_key, "PEM private key of --" + prefix +
                                                               "tls-cert");
}

}  // namespace

ParsedCommand ParseCommandLine(int argc, const char* const* argv) {
  ParsedCommand cmd;
  CLI::App app("gen_durable: a durable state-machine and job engine on PostgreSQL", "gen_durable");
  app.require_subcommand(1);
  AddCommonFlags(&app, cmd.global, cmd.verbosity);
  AddJsonFlag(&app, cmd.global);

  CLI::App* migrate = app.add_subcommand("migrate",
                                         "Apply missing schema migrations; print the "
                                         "schema version");
  AddCommonFlags(migrate, cmd.global, cmd.verbosity);
  AddJsonFlag(migrate, cmd.global);

  CLI::App* insert =
      app.add_subcommand("insert", "Insert an instance of machine FSM; print its id");
  AddCommonFlags(insert, cmd.global, cmd.verbosity);
  insert->add_option("fsm", cmd.insert.fsm, "Machine name (e.g. demo.chain)")->required();
  insert->add_option("--state", cmd.insert.state, "Initial state (job args): a JSON object");
  insert->add_option("--queue", cmd.insert.queue, "Queue (default: the machine's)");
  insert->add_option("--priority", cmd.insert.priority, "Lower runs first")->capture_default_str();
  insert->add_option("--schedule-in", cmd.insert.schedule_in_ms,
                     "Run no earlier than MS from now");
  insert->add_option("--step", cmd.insert.step, "First step (default: the machine's)");
  insert->add_option("--max-attempts", cmd.insert.max_attempts,
                     "Attempt limit (default: the machine's; 0: none)");
  insert->add_option("--partition-key", cmd.insert.partition_key,
                     "At most one step of the instances sharing this key runs at a time");
  insert->add_option("--unique-key", cmd.insert.unique_key,
                     "At most one instance holds this key (in --unique-scope); a duplicate "
                     "exits 3; also a signal TARGET");
  insert->add_option("--unique-scope", cmd.insert.unique_scope,
                     "Statuses holding the unique key: STATUS,... (default: the live ones)");
  insert->add_option("--rate-limit", cmd.insert.rate_limit,
                     "The first step starts under rate limit NAME (one bucket per KEY): "
                     "NAME[:KEY]");

  CLI::App* signal_cmd =
      app.add_subcommand("signal", "Deliver a durable signal to an instance; print the signal id");
  AddCommonFlags(signal_cmd, cmd.global, cmd.verbosity);
  AddJsonFlag(signal_cmd, cmd.global);
  signal_cmd->add_option("target", cmd.signal.target, "Instance id (digits), else a unique key")
      ->required();
  signal_cmd->add_option("name", cmd.signal.name, "Signal name (e.g. payment_confirmed)")
      ->required();
  signal_cmd->add_option("--payload", cmd.signal.payload, "Payload: JSON text (default null)");
  signal_cmd->add_option("--dedup-key", cmd.signal.dedup_key,
                         "Idempotency key: the same TARGET and key deliver one signal");
  signal_cmd->add_flag("--by-key", cmd.signal.by_key,
                       "Read TARGET as a unique key even when it is all digits");

  CLI::App* show = app.add_subcommand("show", "Show one instance");
  AddCommonFlags(show, cmd.global, cmd.verbosity);
  AddJsonFlag(show, cmd.global);
  show->add_option("id", cmd.show_id, "Instance id")->required();

  CLI::App* list = app.add_subcommand("list", "List instances, newest first");
  AddCommonFlags(list, cmd.global, cmd.verbosity);
  AddJsonFlag(list, cmd.global);
  list->add_option("--status", cmd.list.status, "Only this status");
  list->add_option("--queue", cmd.list.queue, "Only this queue");
  list->add_option("--fsm", cmd.list.fsm, "Only this machine");
  list->add_option("--limit", cmd.list.limit, "At most N rows")->capture_default_str();

  CLI::App* stats = app.add_subcommand("stats", "Count instances by queue and status");
  AddCommonFlags(stats, cmd.global, cmd.verbosity);
  AddJsonFlag(stats, cmd.global);

  CLI::App* pause = app.add_subcommand("pause", "Pause a queue cluster-wide: no node claims it");
  AddCommonFlags(pause, cmd.global, cmd.verbosity);
  AddJsonFlag(pause, cmd.global);
  pause->add_option("queue", cmd.queue, "Queue name")->required();
  CLI::App* resume = app.add_subcommand("resume", "Resume a paused queue");
  AddCommonFlags(resume, cmd.global, cmd.verbosity);
  AddJsonFlag(resume, cmd.global);
  resume->add_option("queue", cmd.queue, "Queue name")->required();

  CLI::App* scale = app.add_subcommand(
      "scale", "Ask the live nodes serving QUEUE to run it with N slots (not persisted)");
  AddCommonFlags(scale, cmd.global, cmd.verbosity);
  AddJsonFlag(scale, cmd.global);
  scale->add_option("queue", cmd.scale.queue, "Queue name")->required();
  scale->add_option("n", cmd.scale.concurrency, "Slots (1..10000)")->required();
  scale->add_option("--node", cmd.scale.node, "Only this node (an id from `nodes`)");

  // cancel / retry / delete select instances by ids, a filter, or --all.
  auto add_select = [&](CLI::App* sub, SelectArgs& select) {
    AddCommonFlags(sub, cmd.global, cmd.verbosity);
    AddJsonFlag(sub, cmd.global);
    sub->add_option("ids", select.ids, "Instance ids");
    sub->add_option("--status", select.status, "Only instances in this status");
    sub->add_option("--queue", select.queue, "Only this queue");
    sub->add_option("--fsm", select.fsm, "Only this machine");
    sub->add_option("--older-than", select.older_than_ms, "Only those last updated MS ago or more");
    sub->add_flag("--all", select.all, "Every instance (when no id or filter is given)");
  };
  CLI::App* cancel = app.add_subcommand(
      "cancel", "Cancel instances: queued and parked ones at once, running ones cooperatively");
  add_select(cancel, cmd.cancel.select);
  cancel->add_flag("--cascade", cmd.cancel.cascade, "Also cancel their live descendants");
  cancel->add_option("--reason", cmd.cancel.reason, "Recorded as last_error")
      ->capture_default_str();
  CLI::App* retry =
      app.add_subcommand("retry", "Put failed or cancelled instances back to runnable");
  add_select(retry, cmd.select);
  CLI::App* delete_cmd = app.add_subcommand(
      "delete", "Delete instances (with their signals and history); never executing ones");
  add_select(delete_cmd, cmd.select);

  CLI::App* nodes = app.add_subcommand("nodes", "List the live nodes and what they run");
  AddCommonFlags(nodes, cmd.global, cmd.verbosity);
  AddJsonFlag(nodes, cmd.global);

  CLI::App* dashboard = app.add_subcommand(
      "dashboard", "Serve the web dashboard until SIGINT/SIGTERM (its URL goes to stderr)");
  AddCommonFlags(dashboard, cmd.global, cmd.verbosity);
  dashboard->add_option("--port", cmd.dashboard.port, "Port (0: any free port)")
      ->capture_default_str();
  dashboard->add_option("--bind", cmd.dashboard.bind, "Address to listen on")
      ->capture_default_str();
  dashboard->add_option("--refresh-ms", cmd.dashboard.refresh_ms, "Page refresh period (ms)")
      ->capture_default_str();
  AddHttpFlags(dashboard, cmd.dashboard.http, "", kDashboardTokenEnv);
  dashboard->add_flag("--read-only", cmd.dashboard.http.read_only,
                      "Show only: no buttons, every action answers 403");

  CLI::App* grant = app.add_subcommand(
      "grant", "Grant an existing database role what it needs on the schema (run as its owner)");
  AddCommonFlags(grant, cmd.global, cmd.verbosity);
  grant->add_option("--role", cmd.grant.role, "The database role (it must exist)")->required();
  grant->add_option("--as", cmd.grant.as,
                    "engine (runs workers), producer (EXECUTE on gd_insert and gd_signal only) "
                    "or viewer (SELECT, for a read-only dashboard)")
      ->required()
      ->check(CLI::IsMember({"engine", "producer", "viewer"}));

  CLI::App* worker = app.add_subcommand(
      "worker", "Run the demo machines until SIGINT/SIGTERM, then drain and exit");
  AddCommonFlags(worker, cmd.global, cmd.verbosity);
  worker->add_option("--queues", cmd.worker.queues, "Queues to serve: NAME:CONCURRENCY or NAME:MIN-MAX (autoscaled), comma-separated")
      ->capture_default_str();
  worker->add_option("--name", cmd.worker.name, "Engine name")->capture_default_str();
  worker->add_option("--lease-ttl", cmd.worker.lease_ttl_ms, "Lease of a claimed row (ms)")
      ->capture_default_str();
  worker->add_option("--heartbeat-interval", cmd.worker.heartbeat_interval_ms,
                     "Lease extension period (ms), < --lease-ttl (default: min(20000, "
                     "lease-ttl / 3))");
  worker->add_option("--poll-interval", cmd.worker.poll_interval_ms, "Base idle poll (ms)")
      ->capture_default_str();
  worker->add_option("--reap-interval", cmd.worker.reap_interval_ms, "Reaper sweep period (ms)")
      ->capture_default_str();
  worker
      ->add_option("--gc-interval", cmd.worker.gc_interval_ms,
                   "GC sweep period (ms); 0 disables GC on this node")
      ->capture_default_str();
  worker
      ->add_option("--gc-retention", cmd.worker.gc_retention_ms,
                   "Keep terminal rows this long before GC (ms)")
      ->capture_default_str();
  worker
      ->add_option("--prefetch", cmd.worker.prefetch,
                   "Rows each queue claims beyond its free slots")
      ->capture_default_str();
  worker
      ->add_option("--drain-timeout", cmd.worker.drain_timeout_ms,
                   "On stop, wait this long for running steps (ms)")
      ->capture_default_str();
  worker
      ->add_option("--autoscale-interval", cmd.worker.autoscale_interval_ms,
                   "How often autoscaled queues (--queues NAME:MIN-MAX) re-evaluate (ms)")
      ->capture_default_str();
  worker
      ->add_option("--autoscale-cooldown", cmd.worker.autoscale_cooldown_ms,
                   "An autoscaled queue shrinks only after this long without a change (ms)")
      ->capture_default_str();
  worker->add_option("--metrics-port", cmd.worker.metrics_port,
                     "Serve Prometheus metrics at /metrics on this port (0: any free port)");
  worker->add_option("--metrics-bind", cmd.worker.metrics_bind, "Address of the metrics server")
      ->capture_default_str();
  AddHttpFlags(worker, cmd.worker.metrics_http, "metrics-", kMetricsTokenEnv);
  worker->add_flag("--history", cmd.worker.history,
                   "Record each step's outcome in the instance's history (shown by `show`)");
  worker
      ->add_option("--history-retention", cmd.worker.history_retention_ms,
                   "GC deletes history entries older than this (ms)")
      ->capture_default_str();
  worker
      ->add_option("--rate-limit", cmd.worker.rate_limits,
                   "Define a token bucket: NAME:ALLOWED:PERIOD_MS[:BURST] (repeatable; BURST "
                   "defaults to ALLOWED)")
      ->expected(1)
      ->take_all();
  worker->add_option("--step-log", cmd.worker.step_log,
                     "Append one JSON line per finished step, stale outcome and reaped row to "
                     "FILE (an audit trail)");

  CLI::App* demo = app.add_subcommand("demo", "Run a mix of demo machines and show the progress");
  AddCommonFlags(demo, cmd.global, cmd.verbosity);
  AddJsonFlag(demo, cmd.global);
  demo->add_option("--count", cmd.demo.count, "Instances to insert")->capture_default_str();
  demo->add_option("--timeout", cmd.demo.timeout_s, "Give up after S seconds")
      ->capture_default_str();

  CLI::App* bench = app.add_subcommand(
      "bench", "Run a benchmark scenario; print its figures as one JSON object");
  AddCommonFlags(bench, cmd.global, cmd.verbosity);
  bench
      ->add_option("scenario", cmd.bench.scenario,
                   "jobs, chain, insert, latency, signal, fanout, large or soak")
      ->required();
  bench->add_option("--count", cmd.bench.count,
                    "Instances (children for fanout); default: 100000 for jobs, insert and "
                    "large, 10000 for chain and fanout, 1000 for signal");
  bench->add_option("--steps", cmd.bench.steps, "chain: steps per instance")
      ->capture_default_str();
  bench->add_option("--concurrency", cmd.bench.concurrency, "Worker slots per node")
      ->capture_default_str();
  bench->add_option("--prefetch", cmd.bench.prefetch, "Rows claimed beyond the free slots")
      ->capture_default_str();
  bench->add_option("--nodes", cmd.bench.nodes, "Worker processes")->capture_default_str();
  bench
      ->add_option("--rate", cmd.bench.rate,
                   "latency: inserts/s; signal: signals/s; soak: instances/s")
      ->capture_default_str();
  bench->add_option("--duration-s", cmd.bench.duration_s, "latency, soak: seconds of load")
      ->capture_default_str();
  bench->add_option("--sample-s", cmd.bench.sample_s, "soak: seconds between samples")
      ->capture_default_str();
  bench
      ->add_option("--gc-retention-ms", cmd.bench.gc_retention_ms,
                   "soak: keep finished rows this long before GC")
      ->capture_default_str();
  bench
      ->add_option("--gc-interval-ms", cmd.bench.gc_interval_ms,
                   "soak: GC sweep period; 0 disables GC")
      ->capture_default_str();
  bench->add_option("--large-rows", cmd.bench.large_rows,
                    "large: done rows, and as many future rows, present in the table")
      ->capture_default_str();
  bench->add_option("--batch", cmd.bench.batch, "Rows per insert statement")
      ->capture_default_str();
  bench->add_option("--inline-next", cmd.bench.inline_next,
                    "Run a chain's next step on the same claim (true/false)")
      ->capture_default_str();
  bench->add_option("--history", cmd.bench.history,
                    "Record every step in the instances' history (true/false)")
      ->capture_default_str();
  bench->add_option("--synchronous-commit", cmd.bench.synchronous_commit,
                    "synchronous_commit for every session (on, off, local, ...; default: the "
                    "server's)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help is an "error" with exit code 0: CLI11 writes the help text.
    if (e.get_exit_code() == 0) {
      std::ostringstream out;
      std::ostringstream err;
      cmd.exit_status = app.exit(e, out, err);
      cmd.output = out.str();
      cmd.error = err.str();
      return cmd;
    }
    cmd.exit_status = kExitUsage;
    cmd.error = fmt::format("gen_durable: {} (see --help)", OneLine(e.what()));
    return cmd;
  }
  const std::pair<CLI::App*, Command> commands[] = {
      {migrate, Command::kMigrate}, {insert, Command::kInsert}, {signal_cmd, Command::kSignal},
      {show, Command::kShow},       {list, Command::kList},     {stats, Command::kStats},
      {worker, Command::kWorker},   {demo, Command::kDemo},     {bench, Command::kBench},
      {pause, Command::kPause},     {resume, Command::kResume}, {scale, Command::kScale},
      {cancel, Command::kCancel},   {retry, Command::kRetry},   {delete_cmd, Command::kDelete},
      {nodes, Command::kNodes},     {dashboard, Command::kDashboard}, {grant, Command::kGrant}};
  for (const auto& [sub, command] : commands) {
    if (*sub) {
      cmd.command = command;
      return cmd;
    }
  }
  // require_subcommand(1) makes this unreachable; keep the contract anyway.
  cmd.exit_status = kExitUsage;
  cmd.error = "gen_durable: no command given (see --help)";
  return cmd;
}

}  // namespace gen_durable::tools
