// The commands of the `gen_durable` command line that work on instances and queues, and the
// flags every command shares (docs/guides/cli.md).
#include <fmt/format.h>

#include <string>

#include "gen_durable/cli_flags.hpp"     // tools/
#include "gen_durable/command_args.hpp"  // tools/
#include "gen_durable/conninfo.hpp"

namespace gen_durable::tools {

void AddCommonFlags(CLI::App* app, GlobalOptions& global, int& verbosity) {
  app->add_option("--database", global.database,
                  "libpq connection string or URL (default: $GEN_DURABLE_DATABASE_URL, else the "
                  "embedded database); keep passwords out of it, in $GEN_DURABLE_DATABASE_URL, "
                  "a PGPASSFILE or a PGSERVICE");
  app->add_option("--schema", global.schema,
                  "Postgres schema holding the tables: [a-z_][a-z0-9_]{0,62}")
      ->capture_default_str()
      ->check(
          CLI::Validator([](std::string& value) { return SchemaNameProblem(value); }, "SCHEMA"));
  app->add_flag("-v,--verbose", verbosity, "Log engine activity (-v info, -vv debug)");
}

CLI::Validator Duration(DurationIn unit) {
  return CLI::Validator(
      [unit](std::string& value) -> std::string {
        try {
          const bool seconds = unit != DurationIn::kMilliseconds;
          const std::int64_t ms = ParseDurationMs(value, seconds ? 1'000 : 1);
          if (!seconds) {
            value = std::to_string(ms);
          } else if (ms % 1'000 == 0) {
            value = std::to_string(ms / 1'000);
          } else if (unit == DurationIn::kSeconds) {
            std::string fraction = fmt::format("{:03}", ms % 1'000);
            while (fraction.back() == '0') fraction.pop_back();
            value = fmt::format("{}.{}", ms / 1'000, fraction);
          } else {
            return fmt::format("'{}' is not a whole number of seconds", value);
          }
          return {};
        } catch (const UsageError& e) {
          return e.what();
        }
      },
      "DURATION");
}

void AddJsonFlag(CLI::App* app, GlobalOptions& global) {
  app->add_flag("--json", global.json, "Print JSON instead of text");
}

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
  app->add_option("--" + prefix + "tls-key", http.tls_key,
                  "PEM private key of --" + prefix + "tls-cert");
}

CLI::App* AddCommand(CLI::App& app, ParsedCommand& cmd, const std::string& name,
                     const std::string& description, bool json) {
  CLI::App* sub = app.add_subcommand(name, description);
  AddCommonFlags(sub, cmd.global, cmd.verbosity);
  if (json) AddJsonFlag(sub, cmd.global);
  return sub;
}

// `migrate`.
CLI::App* AddMigrate(CLI::App& app, ParsedCommand& cmd) {
  return AddCommand(app, cmd, "migrate",
                    "Apply missing schema migrations; print the schema version", true);
}

// `insert FSM`: the instance and every insert option.
CLI::App* AddInsert(CLI::App& app, ParsedCommand& cmd) {
  CLI::App* insert =
      AddCommand(app, cmd, "insert", "Insert an instance of machine FSM; print its id", false);
  insert->add_option("fsm", cmd.insert.fsm, "Machine name (e.g. demo.chain)")->required();
  insert->add_option("--state", cmd.insert.state, "Initial state (job args): a JSON object");
  insert->add_option("--queue", cmd.insert.queue, "Queue (default: the machine's)");
  insert->add_option("--priority", cmd.insert.priority, "Lower runs first")->capture_default_str();
  insert
      ->add_option("--schedule-in", cmd.insert.schedule_in_ms,
                   std::string("Run no earlier than this from now") + kDurationHelp)
      ->transform(Duration());
  insert
      ->add_flag("--wait", cmd.insert.wait,
                 "Wait for the instance to end, at most DURATION (--wait=DURATION; without "
                 "one: no limit), and print its result JSON; the id goes to stderr. Exit 0 "
                 "done, 1 failed or cancelled, 124 timed out")
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            if (value == kWaitWithoutLimit) return {};
            try {
              ParseDurationMs(value);
              return {};
            } catch (const UsageError& e) {
              return e.what();
            }
          },
          ""))
      ->option_text("[=DURATION]");
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
  return insert;
}

// `signal TARGET NAME`.
CLI::App* AddSignal(CLI::App& app, ParsedCommand& cmd) {
  CLI::App* signal_cmd = AddCommand(
      app, cmd, "signal", "Deliver a durable signal to an instance; print the signal id", true);
  signal_cmd->add_option("target", cmd.signal.target, "Instance id (digits), else a unique key")
      ->required();
  signal_cmd->add_option("name", cmd.signal.name, "Signal name (e.g. payment_confirmed)")
      ->required();
  signal_cmd->add_option("--payload", cmd.signal.payload, "Payload: JSON text (default null)");
  signal_cmd->add_option("--dedup-key", cmd.signal.dedup_key,
                         "Idempotency key: the same TARGET and key deliver one signal");
  signal_cmd->add_flag("--by-key", cmd.signal.by_key,
                       "Read TARGET as a unique key even when it is all digits");
  return signal_cmd;
}

// `show ID`.
CLI::App* AddShow(CLI::App& app, ParsedCommand& cmd) {
  CLI::App* show = AddCommand(app, cmd, "show", "Show one instance", true);
  show->add_option("id", cmd.show_id, "Instance id")->required();
  return show;
}

// `list` and its filters.
CLI::App* AddList(CLI::App& app, ParsedCommand& cmd) {
  CLI::App* list = AddCommand(app, cmd, "list", "List instances, newest first", true);
  list->add_option("--status", cmd.list.status, "Only this status");
  list->add_option("--queue", cmd.list.queue, "Only this queue");
  list->add_option("--fsm", cmd.list.fsm, "Only this machine");
  list->add_option("--limit", cmd.list.limit, "At most N rows")->capture_default_str();
  return list;
}

// `stats`.
CLI::App* AddStats(CLI::App& app, ParsedCommand& cmd) {
  return AddCommand(app, cmd, "stats", "Count instances by queue and status", true);
}

// `pause QUEUE`.
CLI::App* AddPause(CLI::App& app, ParsedCommand& cmd) {
  CLI::App* pause =
      AddCommand(app, cmd, "pause", "Pause a queue cluster-wide: no node claims it", true);
  pause->add_option("queue", cmd.queue, "Queue name")->required();
  return pause;
}

// `resume QUEUE`.
CLI::App* AddResume(CLI::App& app, ParsedCommand& cmd) {
  CLI::App* resume = AddCommand(app, cmd, "resume", "Resume a paused queue", true);
  resume->add_option("queue", cmd.queue, "Queue name")->required();
  return resume;
}

// `scale QUEUE N [--node ID]`, `scale QUEUE --global N|none`.
CLI::App* AddScale(CLI::App& app, ParsedCommand& cmd) {
  CLI::App* scale = AddCommand(
      app, cmd, "scale",
      "Ask the live nodes serving QUEUE to run it with N slots, or set its cluster-wide limit",
      true);
  scale->add_option("queue", cmd.scale.queue, "Queue name")->required();
  scale->add_option("n", cmd.scale.concurrency, "Slots per node (1..10000)");
  scale->add_option("--node", cmd.scale.node, "Only this node (an id from `nodes`)");
  scale->add_option("--global", cmd.scale.global,
                    "At most N steps of QUEUE executing across all nodes (N >= 1); `none` "
                    "clears the limit");
  return scale;
}

// The selection `cancel`, `retry` and `delete` share: ids, a filter, or --all.
void AddSelectFlags(CLI::App* sub, SelectArgs& select) {
  sub->add_option("ids", select.ids, "Instance ids");
  sub->add_option("--status", select.status, "Only instances in this status");
  sub->add_option("--queue", select.queue, "Only this queue");
  sub->add_option("--fsm", select.fsm, "Only this machine");
  sub->add_option("--older-than", select.older_than_ms,
                  std::string("Only those last updated this long ago or more") + kDurationHelp)
      ->transform(Duration());
  sub->add_flag("--all", select.all, "Every instance (when no id or filter is given)");
}

// `cancel`: a selection, and how.
CLI::App* AddCancel(CLI::App& app, ParsedCommand& cmd) {
  CLI::App* cancel = AddCommand(
      app, cmd, "cancel",
      "Cancel instances: queued and parked ones at once, running ones cooperatively", true);
  AddSelectFlags(cancel, cmd.cancel.select);
  cancel->add_flag("--cascade", cmd.cancel.cascade, "Also cancel their live descendants");
  cancel->add_option("--reason", cmd.cancel.reason, "Recorded as last_error")
      ->capture_default_str();
  return cancel;
}

// `retry`.
CLI::App* AddRetry(CLI::App& app, ParsedCommand& cmd) {
  CLI::App* retry =
      AddCommand(app, cmd, "retry", "Put failed or cancelled instances back to runnable", true);
  AddSelectFlags(retry, cmd.select);
  return retry;
}

// `delete`.
CLI::App* AddDelete(CLI::App& app, ParsedCommand& cmd) {
  CLI::App* delete_cmd =
      AddCommand(app, cmd, "delete",
                 "Delete instances (with their signals and history); never executing ones", true);
  AddSelectFlags(delete_cmd, cmd.select);
  return delete_cmd;
}

// `nodes`.
CLI::App* AddNodes(CLI::App& app, ParsedCommand& cmd) {
  return AddCommand(app, cmd, "nodes", "List the live nodes and what they run", true);
}

// `schedules [--json]` and `schedules trigger NAME`.
CLI::App* AddSchedules(CLI::App& app, ParsedCommand& cmd) {
  CLI::App* schedules = AddCommand(app, cmd, "schedules",
                                   "List the periodic schedules with their last and next fire "
                                   "times",
                                   true);
  CLI::App* trigger =
      schedules->add_subcommand("trigger", "Insert one run of schedule NAME now; prints the id");
  trigger->fallthrough();
  trigger->add_option("name", cmd.schedules.trigger, "The schedule's name")->required();
  return schedules;
}

// `grant --role R --as KIND`.
CLI::App* AddGrant(CLI::App& app, ParsedCommand& cmd) {
  CLI::App* grant = AddCommand(
      app, cmd, "grant",
      "Grant an existing database role what it needs on the schema (run as its owner)", false);
  grant->add_option("--role", cmd.grant.role, "The database role (it must exist)")->required();
  grant
      ->add_option("--as", cmd.grant.as,
                   "engine (runs workers), producer (EXECUTE on gd_insert and gd_signal only) "
                   "or viewer (SELECT, for a read-only dashboard)")
      ->required()
      ->check(CLI::IsMember({"engine", "producer", "viewer"}));
  return grant;
}

}  // namespace gen_durable::tools
