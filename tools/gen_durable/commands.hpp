// The subcommands of the `gen_durable` CLI and their output contract (docs/guides/cli.md).
//
// Each Run* function executes one command and returns the process exit status. Failures are
// thrown; main maps them to exit statuses with ExitStatusOf and prints one line on stderr:
//   0 success, 2 usage error, 3 domain refusal (duplicate, no_target), 1 anything else.
// stdout carries only the command's result (an id, a JSON object per line, a table), so
// scripts can parse it; notes and progress go to stderr.
#pragma once

#include <signal.h>

#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "gen_durable/client.hpp"
#include "gen_durable/http_options.hpp"
#include "gen_durable/options.hpp"
#include "gen_durable/util/text.hpp"

namespace gen_durable::detail {
class EmbeddedCluster;
}

namespace gen_durable::tools {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitRefused = 3;
inline constexpr int kExitTimeout = 124;  // insert --wait: the wait ran out (as timeout(1))

// Bad command-line input found after parsing (malformed JSON, a bad --queues list).
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The database refused on domain grounds (duplicate, no_target).
class RefusedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The exit status for an exception escaping a command.
int ExitStatusOf(const std::exception& e);

// Options every command accepts.
struct GlobalOptions {
  // libpq connection string; empty: GEN_DURABLE_DATABASE_URL, else the embedded default.
  std::string database;
  std::string schema = "public";
  bool json = false;
};

// The database one command works on. When no URL is given it starts (or attaches to) the
// embedded default cluster, which lives as long as this object.
class Session {
 public:
  explicit Session(const GlobalOptions& global);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const std::string& conninfo() const { return conninfo_; }
  const std::string& schema() const { return schema_; }
  // A client whose schema is migrated (so every command works on a fresh database).
  Client& client();
  // Stops the embedded server now if this process started it (a no-op otherwise). For callers
  // that leave with std::_Exit, which skips destructors.
  void Close();

 private:
  std::unique_ptr<detail::EmbeddedCluster> cluster_;
  std::string conninfo_;
  std::string schema_;
  std::unique_ptr<Client> client_;
};

// `migrate`: prints the schema version applied.
int RunMigrate(const GlobalOptions& global);

struct InsertArgs {
  std::string fsm;
  std::optional<std::string> state;  // JSON object text
  std::optional<std::string> queue;
  std::optional<std::string> step;
  int priority = 0;
  std::optional<std::int64_t> schedule_in_ms;
  std::optional<int> max_attempts;
  std::optional<std::string> partition_key;
  std::optional<std::string> unique_key;
  std::optional<std::string> unique_scope;  // "status,status,..."
  std::optional<std::string> rate_limit;    // "NAME" or "NAME:KEY"
  // --wait[=DURATION]: empty (no wait), kWaitWithoutLimit (the flag alone) or a duration.
  std::string wait;
};
// What the parser makes of a bare --wait (a flag's value when given none).
inline constexpr const char* kWaitWithoutLimit = "true";
// `insert`: prints the new id alone on stdout. A unique key held by a live instance (in its
// scope) is refused: exit 3, "duplicate: ...". With --wait: prints the id on stderr, waits for
// the instance to end and prints its result JSON on stdout; exit 0 when it is done, 1 when it
// failed or was cancelled (its last_error the one-line reason on stderr), 124 when the wait
// timed out.
int RunInsert(const GlobalOptions& global, const InsertArgs& args);

struct SignalArgs {
  // An instance id (all digits) or else a unique key; `by_key` forces the key reading.
  std::string target;
  bool by_key = false;
  std::string name;
  std::optional<std::string> payload;  // JSON text; default null
  std::optional<std::string> dedup_key;
};
// `signal`: delivers a durable signal; prints the signal id (the first one's again for a repeated
// dedup key). An unknown or terminal target is refused: exit 3, "no_target: ...".
int RunSignal(const GlobalOptions& global, const SignalArgs& args);

// `show ID`: a multi-line view, or one JSON object with --json. Unknown id: exit 1.
int RunShow(const GlobalOptions& global, std::int64_t id);

struct ListArgs {
  std::optional<std::string> status;
  std::optional<std::string> queue;
  std::optional<std::string> fsm;
  int limit = 100;
};
// `list`: a table, or one JSON object per line with --json.
int RunList(const GlobalOptions& global, const ListArgs& args);

// `stats`: counts by queue x status, and per queue whether it is paused, the age of its oldest
// ready row, how many ended in the last minute and its concurrency on the live nodes.
int RunStats(const GlobalOptions& global);

// `pause QUEUE` / `resume QUEUE`: cluster-wide, persisted.
int RunPause(const GlobalOptions& global, const std::string& queue, bool paused);

struct GrantArgs {
  std::string role;
  std::string as;  // engine, producer or viewer
};
// `grant --role R --as KIND`: grants role R what KIND needs on the schema (docs/security.md).
int RunGrant(const GlobalOptions& global, const GrantArgs& args);

struct ScaleArgs {
  std::string queue;
  std::optional<int> concurrency;
  std::optional<std::string> node;    // only this node (default: every node serving the queue)
  std::optional<std::string> global;  // --global N or none: the cluster-wide limit
};
// `scale QUEUE N [--node ID]`: asks the live nodes to run QUEUE with N slots.
// `scale QUEUE --global N|none`: sets or clears the queue's cluster-wide limit.
int RunScale(const GlobalOptions& global, const ScaleArgs& args);

// Which instances `cancel`, `retry` and `delete` act on: ids, or a filter, or --all.
struct SelectArgs {
  std::vector<std::int64_t> ids;
  std::optional<std::string> status;
  std::optional<std::string> queue;
  std::optional<std::string> fsm;
  std::optional<std::int64_t> older_than_ms;  // last updated longer ago than this
  bool all = false;  // required to act on every instance (no id, no filter)
};
struct CancelArgs {
  SelectArgs select;
  bool cascade = false;
  std::string reason = "cancelled";
};
// `cancel`: queued and parked instances end `cancelled` at once; running ones are asked to stop.
// Prints both lists. Ids given and none of them live: exit 3.
int RunCancel(const GlobalOptions& global, const CancelArgs& args);
// `retry`: failed / cancelled instances back to runnable; prints the ids retried. An id given
// that could not be retried (not failed or cancelled, unique key held, parent still joining):
// exit 3.
int RunRetry(const GlobalOptions& global, const SelectArgs& args);
// `delete`: deletes the matching instances (never executing ones); prints how many.
int RunDelete(const GlobalOptions& global, const SelectArgs& args);
// `nodes`: the live nodes, their queues and what they run.
int RunNodes(const GlobalOptions& global);

// Who may use an HTTP surface (dashboard, metrics) and how it is served.
struct HttpArgs {
  std::string token_file;              // the token's file (else the environment variable)
  bool read_only = false;              // dashboard: viewers only
  bool allow_unauthenticated = false;  // a non-loopback bind without a token
  std::vector<std::string> allow_hosts;
  std::string tls_cert;
  std::string tls_key;
};
// The security options of `args`: the token comes from args.token_file, else from the
// environment variable `token_env` when set and not empty. Throws ConfigError for an
// unreadable token file.
HttpSecurityOptions HttpSecurityOf(const HttpArgs& args, const char* token_env);
constexpr const char* kDashboardTokenEnv = "GEN_DURABLE_DASHBOARD_TOKEN";
constexpr const char* kMetricsTokenEnv = "GEN_DURABLE_METRICS_TOKEN";

struct DashboardArgs {
  int port = 8080;
  std::string bind = "127.0.0.1";
  int refresh_ms = 3000;
  HttpArgs http;
};
// `dashboard`: serves the web dashboard until SIGINT/SIGTERM; prints its URL on stderr.
int RunDashboard(const GlobalOptions& global, const DashboardArgs& args);

// Worker flags; the defaults are EngineOptions' defaults.
struct WorkerArgs {
  std::string queues = "default:10";
  std::string name = "gen_durable";
  std::int64_t lease_ttl_ms = 60'000;
  // Unset: min(20 000, lease / 3), so a short --lease-ttl alone is accepted.
  std::optional<std::int64_t> heartbeat_interval_ms;
  std::int64_t poll_interval_ms = 1'000;
  std::int64_t reap_interval_ms = 30'000;
  std::int64_t gc_interval_ms = 60'000;  // 0 disables GC on this node
  std::int64_t gc_retention_ms = 86'400'000;
  int prefetch = 0;
  std::int64_t drain_timeout_ms = 5'000;
  std::vector<std::string> rate_limits;    // each "NAME:ALLOWED:PERIOD[:BURST]"
  std::vector<std::string> global_limits;  // each "QUEUE:N"
  std::vector<std::string> schedules;      // each "NAME;CRON;FSM[;STATE_JSON]"
  std::int64_t autoscale_interval_ms = 1'000;
  std::int64_t autoscale_cooldown_ms = 5'000;
  bool history = false;
  std::int64_t history_retention_ms = 7 * 86'400'000LL;
  // Serve Prometheus metrics at http://metrics_bind:metrics_port/metrics (0: any free port).
  std::optional<int> metrics_port;
  std::string metrics_bind = "127.0.0.1";
  HttpArgs metrics_http;
  // When set, one JSON line per finished step, stale outcome and reaped row is appended here
  // (an audit trail for fault-injection runs; see tests/chaos/).
  std::string step_log;
};
// `worker`: runs an engine with the demo machines until SIGINT/SIGTERM, then drains and
// exits 0. Never returns normally: it leaves with std::_Exit so that step threads abandoned
// after the drain cannot hold the process open.
int RunWorker(const GlobalOptions& global, const WorkerArgs& args);

// Parses "name:concurrency,..." ("name" alone takes 10; "name:min-max" autoscales). Throws
// UsageError when malformed; out-of-range numbers are left for the engine's validation to refuse by
// option name.
std::map<std::string, QueueConfig> ParseQueues(const std::string& spec);

// Applies --global-limit values "QUEUE:N" to `queues` (QueueConfig::global_limit). Throws
// UsageError when malformed, when N < 1, when QUEUE is not in `queues` or is named twice.
void ApplyGlobalLimits(const std::vector<std::string>& specs,
                       std::map<std::string, QueueConfig>& queues);

// Parses --rate-limit values "NAME:ALLOWED:PERIOD[:BURST]" (PERIOD a duration, see
// ParseDurationMs). Throws UsageError when malformed
// or when a name repeats; out-of-range numbers are left for the engine's validation.
std::map<std::string, RateLimit> ParseRateLimits(const std::vector<std::string>& specs);

// Parses --schedule values "NAME;CRON;FSM[;STATE_JSON]" (the state may itself contain ';').
// Throws UsageError when malformed or a name repeats; the expression, zone and machine are
// left for the engine's validation (ConfigError).
std::vector<Schedule> ParseSchedules(const std::vector<std::string>& specs);

// `schedules [--json]` lists the schedules; `schedules trigger NAME` inserts one run of NAME
// now and prints its id (exit 3 when no schedule of that name is recorded).
struct SchedulesArgs {
  std::optional<std::string> trigger;
};
int RunSchedules(const GlobalOptions& global, const SchedulesArgs& args);

// Parses an insert's --rate-limit "NAME[:KEY]" (the key may itself contain ':').
RateLimitRef ParseRateLimitRef(const std::string& spec);

// Blocks SIGINT and SIGTERM in the calling thread and every thread it starts later, so that
// the caller can take them with sigwait instead of an async handler. Returns the set.
sigset_t BlockTerminationSignals();

}  // namespace gen_durable::tools
