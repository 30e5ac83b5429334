// `gen_durable`: the command-line interface (SPEC §12). Parses the command line, hands over to
// the commands in commands.cpp / demo.cpp, and turns whatever escapes into an exit status and
// one line on stderr.
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <exception>
#include <string>

#include "gen_durable/bench.hpp"     // tools/
#include "gen_durable/commands.hpp"  // tools/
#include "gen_durable/demo.hpp"      // tools/

namespace gen_durable::tools {
namespace {

// Flags every command accepts, before or after the subcommand name. They are declared on each
// subcommand (not only on the root) so that `gen_durable show --help` lists them.
void AddCommonFlags(CLI::App* app, GlobalOptions& global, int& verbosity) {
  app->add_option("--database", global.database,
                  "libpq connection string or URL (default: $GEN_DURABLE_DATABASE_URL, else the "
                  "embedded database)");
  app->add_option("--schema", global.schema, "Postgres schema holding the tables")
      ->capture_default_str();
  app->add_flag("-v,--verbose", verbosity, "Log engine activity (-v info, -vv debug)");
}

void AddJsonFlag(CLI::App* app, GlobalOptions& global) {
  app->add_flag("--json", global.json, "Print JSON instead of text");
}

int Main(int argc, char** argv) {
  // stdout is the output contract: library logs must never land there.
  spdlog::set_default_logger(spdlog::stderr_color_mt("gen_durable"));
  spdlog::set_level(spdlog::level::warn);

  CLI::App app("gen_durable: a durable state-machine and job engine on PostgreSQL", "gen_durable");
  app.require_subcommand(1);
  GlobalOptions global;
  int verbosity = 0;
  AddCommonFlags(&app, global, verbosity);
  AddJsonFlag(&app, global);

  CLI::App* migrate = app.add_subcommand("migrate",
                                         "Apply missing schema migrations; print the "
                                         "schema version");
  AddCommonFlags(migrate, global, verbosity);
  AddJsonFlag(migrate, global);

  InsertArgs insert_args;
  CLI::App* insert =
      app.add_subcommand("insert", "Insert an instance of machine FSM; print its id");
  AddCommonFlags(insert, global, verbosity);
  insert->add_option("fsm", insert_args.fsm, "Machine name (e.g. demo.chain)")->required();
  insert->add_option("--state", insert_args.state, "Initial state (job args): a JSON object");
  insert->add_option("--queue", insert_args.queue, "Queue (default: the machine's)");
  insert->add_option("--priority", insert_args.priority, "Lower runs first")->capture_default_str();
  insert->add_option("--schedule-in", insert_args.schedule_in_ms,
                     "Run no earlier than MS from now");
  insert->add_option("--step", insert_args.step, "First step (default: the machine's)");
  insert->add_option("--max-attempts", insert_args.max_attempts,
                     "Attempt limit (default: the machine's; 0: none)");
  insert->add_option("--partition-key", insert_args.partition_key,
                     "At most one step of the instances sharing this key runs at a time");
  insert->add_option("--unique-key", insert_args.unique_key,
                     "At most one instance holds this key (in --unique-scope); a duplicate "
                     "exits 3; also a signal TARGET");
  insert->add_option("--unique-scope", insert_args.unique_scope,
                     "Statuses holding the unique key: STATUS,... (default: the live ones)");
  insert->add_option("--rate-limit", insert_args.rate_limit,
                     "The first step starts under rate limit NAME (one bucket per KEY): "
                     "NAME[:KEY]");

  SignalArgs signal_args;
  CLI::App* signal_cmd =
      app.add_subcommand("signal", "Deliver a durable signal to an instance; print the signal id");
  AddCommonFlags(signal_cmd, global, verbosity);
  AddJsonFlag(signal_cmd, global);
  signal_cmd->add_option("target", signal_args.target, "Instance id (digits), else a unique key")
      ->required();
  signal_cmd->add_option("name", signal_args.name, "Signal name (e.g. payment_confirmed)")
      ->required();
  signal_cmd->add_option("--payload", signal_args.payload, "Payload: JSON text (default null)");
  signal_cmd->add_option("--dedup-key", signal_args.dedup_key,
                         "Idempotency key: the same TARGET and key deliver one signal");
  signal_cmd->add_flag("--by-key", signal_args.by_key,
                       "Read TARGET as a unique key even when it is all digits");

  std::int64_t show_id = 0;
  CLI::App* show = app.add_subcommand("show", "Show one instance");
  AddCommonFlags(show, global, verbosity);
  AddJsonFlag(show, global);
  show->add_option("id", show_id, "Instance id")->required();

  ListArgs list_args;
  CLI::App* list = app.add_subcommand("list", "List instances, newest first");
  AddCommonFlags(list, global, verbosity);
  AddJsonFlag(list, global);
  list->add_option("--status", list_args.status, "Only this status");
  list->add_option("--queue", list_args.queue, "Only this queue");
  list->add_option("--fsm", list_args.fsm, "Only this machine");
  list->add_option("--limit", list_args.limit, "At most N rows")->capture_default_str();

  CLI::App* stats = app.add_subcommand("stats", "Count instances by queue and status");
  AddCommonFlags(stats, global, verbosity);
  AddJsonFlag(stats, global);

  WorkerArgs worker_args;
  CLI::App* worker = app.add_subcommand(
      "worker", "Run the demo machines until SIGINT/SIGTERM, then drain and exit");
  AddCommonFlags(worker, global, verbosity);
  worker->add_option("--queues", worker_args.queues, "Queues to serve: NAME:CONCURRENCY,...")
      ->capture_default_str();
  worker->add_option("--name", worker_args.name, "Engine name")->capture_default_str();
  worker->add_option("--lease-ttl", worker_args.lease_ttl_ms, "Lease of a claimed row (ms)")
      ->capture_default_str();
  worker->add_option("--heartbeat-interval", worker_args.heartbeat_interval_ms,
                     "Lease extension period (ms), < --lease-ttl (default: min(20000, "
                     "lease-ttl / 3))");
  worker->add_option("--poll-interval", worker_args.poll_interval_ms, "Base idle poll (ms)")
      ->capture_default_str();
  worker->add_option("--reap-interval", worker_args.reap_interval_ms, "Reaper sweep period (ms)")
      ->capture_default_str();
  worker
      ->add_option("--gc-interval", worker_args.gc_interval_ms,
                   "GC sweep period (ms); 0 disables GC on this node")
      ->capture_default_str();
  worker
      ->add_option("--gc-retention", worker_args.gc_retention_ms,
                   "Keep terminal rows this long before GC (ms)")
      ->capture_default_str();
  worker
      ->add_option("--prefetch", worker_args.prefetch,
                   "Rows each queue claims beyond its free slots")
      ->capture_default_str();
  worker
      ->add_option("--drain-timeout", worker_args.drain_timeout_ms,
                   "On stop, wait this long for running steps (ms)")
      ->capture_default_str();
  worker
      ->add_option("--rate-limit", worker_args.rate_limits,
                   "Define a token bucket: NAME:ALLOWED:PERIOD_MS[:BURST] (repeatable; BURST "
                   "defaults to ALLOWED)")
      ->expected(1)
      ->take_all();
  worker->add_option("--step-log", worker_args.step_log,
                     "Append one JSON line per finished step, stale outcome and reaped row to "
                     "FILE (an audit trail)");

  DemoArgs demo_args;
  CLI::App* demo = app.add_subcommand("demo", "Run a mix of demo machines and show the progress");
  AddCommonFlags(demo, global, verbosity);
  AddJsonFlag(demo, global);
  demo->add_option("--count", demo_args.count, "Instances to insert")->capture_default_str();
  demo->add_option("--timeout", demo_args.timeout_s, "Give up after S seconds")
      ->capture_default_str();

  BenchArgs bench_args;
  CLI::App* bench = app.add_subcommand(
      "bench", "Run a benchmark scenario; print its figures as one JSON object");
  AddCommonFlags(bench, global, verbosity);
  bench
      ->add_option("scenario", bench_args.scenario,
                   "jobs, chain, insert, latency, signal, fanout, large or soak")
      ->required();
  bench->add_option("--count", bench_args.count,
                    "Instances (children for fanout); default: 100000 for jobs, insert and "
                    "large, 10000 for chain and fanout, 1000 for signal");
  bench->add_option("--steps", bench_args.steps, "chain: steps per instance")
      ->capture_default_str();
  bench->add_option("--concurrency", bench_args.concurrency, "Worker slots per node")
      ->capture_default_str();
  bench->add_option("--prefetch", bench_args.prefetch, "Rows claimed beyond the free slots")
      ->capture_default_str();
  bench->add_option("--nodes", bench_args.nodes, "Worker processes")->capture_default_str();
  bench
      ->add_option("--rate", bench_args.rate,
                   "latency: inserts/s; signal: signals/s; soak: instances/s")
      ->capture_default_str();
  bench->add_option("--duration-s", bench_args.duration_s, "latency, soak: seconds of load")
      ->capture_default_str();
  bench->add_option("--sample-s", bench_args.sample_s, "soak: seconds between samples")
      ->capture_default_str();
  bench
      ->add_option("--gc-retention-ms", bench_args.gc_retention_ms,
                   "soak: keep finished rows this long before GC")
      ->capture_default_str();
  bench
      ->add_option("--gc-interval-ms", bench_args.gc_interval_ms,
                   "soak: GC sweep period; 0 disables GC")
      ->capture_default_str();
  bench->add_option("--large-rows", bench_args.large_rows,
                    "large: done rows, and as many future rows, present in the table")
      ->capture_default_str();
  bench->add_option("--batch", bench_args.batch, "Rows per insert statement")
      ->capture_default_str();
  bench->add_option("--inline-next", bench_args.inline_next,
                    "Run a chain's next step on the same claim (true/false)")
      ->capture_default_str();
  bench->add_option("--synchronous-commit", bench_args.synchronous_commit,
                    "synchronous_commit for every session (on, off, local, ...; default: the "
                    "server's)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with exit code 0: let CLI11 print them.
    if (e.get_exit_code() == 0) return app.exit(e);
    fmt::print(stderr, "gen_durable: {} (see --help)\n", OneLine(e.what()));
    return kExitUsage;
  }
  if (verbosity >= 2) {
    spdlog::set_level(spdlog::level::debug);
  } else if (verbosity == 1) {
    spdlog::set_level(spdlog::level::info);
  }

  try {
    if (*migrate) return RunMigrate(global);
    if (*insert) return RunInsert(global, insert_args);
    if (*signal_cmd) return RunSignal(global, signal_args);
    if (*show) return RunShow(global, show_id);
    if (*list) return RunList(global, list_args);
    if (*stats) return RunStats(global);
    if (*worker) return RunWorker(global, worker_args);
    if (*demo) return RunDemo(global, demo_args);
    if (*bench) return RunBench(global, bench_args);
  } catch (const std::exception& e) {
    fmt::print(stderr, "gen_durable: {}\n", OneLine(e.what()));
    return ExitStatusOf(e);
  } catch (...) {
    fmt::print(stderr, "gen_durable: unknown error\n");
    return kExitFailure;
  }
  // require_subcommand(1) makes this unreachable; keep the contract anyway.
  fmt::print(stderr, "gen_durable: no command given (see --help)\n");
  return kExitUsage;
}

}  // namespace
}  // namespace gen_durable::tools

int main(int argc, char** argv) { return gen_durable::tools::Main(argc, argv); }
