// Options of the engine, the client and one insert. All durations are milliseconds.
//
//   gen_durable::EngineOptions opts;
//   opts.database = "postgresql:///app";
//   opts.queues = {{"default", {10}}, {"checkout", {5}}};
//   opts.lease_ttl = std::chrono::seconds(30);
//   auto engine = gen_durable::Engine::Start(opts);
//
// Every option is validated by `Engine::Create` (and so by `Engine::Start`), which throws
// `ConfigError` naming the option.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace gen_durable {

using Json = nlohmann::json;
using Millis = std::chrono::milliseconds;
using TimePoint = std::chrono::system_clock::time_point;

class AnyMachine;

// A named token bucket (docs/guides/rate-limits.md): `allowed` starts per `period` sustained, up
// to `burst` at once (default `allowed`). Shared by every node on the database.
struct RateLimit {
  int allowed = 1;
  Millis period{1000};
  std::optional<int> burst;
};

// A reference to a rate limit from an outcome or an insert: the bucket `name`, optionally one
// bucket per `key`, taking `weight` tokens per start.
struct RateLimitRef {
  std::string name;
  std::string key;
  int weight = 1;
};

// Concurrency of one queue on this node: `{10}` is a fixed 10 slots; `{2, 20}` autoscales
// between 2 and 20 slots from the queue's backlog and in-flight count (docs/operations.md).
// The most slots a queue may have on one node: what configuration, Engine::Scale and scale
// requests (Client::ScaleQueue, `gen_durable scale`, the gd_control table) accept.
inline constexpr int kMaxConcurrency = 10'000;

struct QueueConfig {
  int concurrency = 10;  // fixed slots; when autoscaled, the least (and starting) count
  int max = 0;           // > concurrency: autoscale up to this many slots
  // Cluster-wide: at most this many steps of the queue executing at once across every node
  // (>= 1; nullopt: no limit beyond each node's slots). The value lives in the database (the
  // queue's row of gd_queues), shared by every node: an engine configured with one writes it
  // when it starts (and Engine::Reconfigure when given one), so when nodes disagree the last
  // to start wins, with a warning in its log; Client::SetQueueGlobalLimit (`gen_durable scale
  // QUEUE --global N`) changes or clears it at run time. nullopt here leaves the stored value
  // alone. Every executing row of the queue counts, also one claimed ahead of a free slot
  // (`prefetch`), one whose outcome is being committed, and one held by a node that died (until
  // its lease expires). See docs/guides/engine.md, "Cluster-wide limit".
  std::optional<int> global_limit = std::nullopt;
  bool autoscaled() const { return max > concurrency; }
};

// What a database role may do in one schema, as granted by Client::GrantRole (the guide:
// docs/security.md, "Database roles"). The owner, who migrates, is the role that created the
// schema's tables and functions; it is not granted.
enum class DatabaseRole {
  kEngine,    // runs workers and every client call: reads and writes the tables
  kProducer,  // EXECUTE on gd_insert and gd_signal only (SECURITY DEFINER): no table access
  kViewer,    // SELECT on the tables (a read-only dashboard, list, show, stats)
};

// Where to find the database. `schema` places every table in that Postgres schema.
struct ConnectionOptions {
  // libpq connection string or URI ("postgresql://user@host/db", "host=/run/pg dbname=app").
  std::string database;
  // A plain lower-case name, [a-z_][a-z0-9_]{0,62}; anything else is refused (ConfigError).
  std::string schema = "public";
  // Longest a statement may run before the server cancels it; the engine then retries it, as
  // after any retryable failure, so a statement stuck behind a lock held by another session
  // cannot stall a heartbeat, a commit or a claim indefinitely. Default: the engine's lease_ttl
  // (at least 5 s); no limit for a client (a caller's delete of many rows may rightly run long).
  // 0: no limit. Schema migrations run without one.
  std::optional<Millis> statement_timeout;
  // A connection whose server stops answering (a vanished host, a dead network path) is given
  // up after about this long, and the thread opens a new one, instead of waiting for the
  // operating system's own timeout (some 15 minutes). Sets TCP keepalives (idle 1/3 of it,
  // interval 1/9, 3 probes) and tcp_user_timeout on both ends of a TCP connection; a Unix
  // socket has no such failure. Default: half of the engine's lease_ttl (at least 2 s); 30 s
  // for a client. 0 leaves the system defaults. Keepalive keywords given in `database` win.
  std::optional<Millis> network_timeout;
};

// A periodic schedule (docs/guides/schedules.md): an instance of `fsm` inserted at each slot of
// `cron` in `time_zone`. Every node carrying a schedule of the same `name` shares it, with no
// leader: each slot is inserted once cluster-wide, with the unique key
// "schedule:NAME:SLOT" (SLOT in UTC, e.g. "schedule:report:2026-12-06T10:00:00Z").
struct Schedule {
  // Identifies the schedule across nodes; not empty, unique among an engine's schedules.
  std::string name;
  // Five fields `minute hour day-of-month month day-of-week`, six with seconds first,
  // `@every 30s` (units ms, s, m, h, d) or @yearly @annually @monthly @weekly @daily @midnight
  // @hourly; names (jan, mon), ranges, steps and lists as in cron(8).
  std::string cron;
  // IANA zone the fields are read in; daylight saving handled as cron does (the guide).
  std::string time_zone = "UTC";
  // The machine to insert (registered with this engine), its initial state, queue (default:
  // the machine's) and priority.
  std::string fsm;
  Json state = Json::object();
  std::optional<std::string> queue;
  int priority = 0;
  // Slots that passed while no node carrying the schedule ran: kSkip inserts none of them (and
  // reports them with `schedule.missed`); kCatchUp inserts the newest `catch_up_max` of them.
  enum class Missed { kSkip, kCatchUp };
  Missed missed = Missed::kSkip;
  int catch_up_max = 1;
};

struct EngineOptions : ConnectionOptions {
  // Identity of this engine in the process: two running engines cannot share a name.
  std::string name = "gen_durable";
  // Serve every machine registered with `Register` (true), plus those in `machines`.
  bool all_registered_machines = true;
  // Extra machine definitions: custom names, old versions kept alive, unregistered machines.
  std::vector<AnyMachine> machines;
  // Queue name -> concurrency on this node.
  std::map<std::string, QueueConfig> queues = {{"default", QueueConfig{10}}};

  Millis lease_ttl{60'000};           // a claim stays leased this long unless heartbeated
  Millis heartbeat_interval{20'000};  // lease extension period
  Millis poll_interval{1'000};        // base idle poll
  Millis max_poll_interval{5'000};    // idle backoff ceiling
  Millis reap_interval{30'000};       // reaper sweep period
  std::optional<Millis> gc_interval{Millis{60'000}};  // nullopt disables GC on this node
  Millis gc_retention{86'400'000};  // terminal rows older than this may be deleted
  int gc_batch = 10'000;            // rows deleted per sweep at most
  int prefetch = 0;                 // rows claimed per queue beyond its free slots
  int min_demand = 1;               // pick only when at least this many slots are free
  Millis drain_timeout{5'000};      // on stop, wait this long for in-flight steps
  bool reaper = true;               // run the reaper on this node
  bool gc = true;                   // run GC on this node
  // Run the step after a `next` on the same claim by default (an outcome can override).
  bool inline_next = true;
  // Longest chain of inline steps on one claim before the row goes back to the queue.
  int max_inline_steps = 100;
  // Largest accepted encoded state / result / args, in bytes.
  std::size_t max_payload_bytes = 8 * 1024 * 1024;
  // Named token buckets that steps and inserts may name (docs/guides/rate-limits.md).
  std::map<std::string, RateLimit> rate_limits;
  // Partition keys starting with a prefix may run this many steps at once (default 1 per
  // key); the longest matching prefix wins. E.g. {{"stripe:", 100}}.
  std::map<std::string, int> partition_limits;
  // Periodic schedules this node carries (docs/guides/schedules.md); Start records each
  // definition in the database (the newest start's definition is the one every node fires).
  std::vector<Schedule> schedules;

  // Autoscaled queues ({min, max}) re-evaluate their concurrency this often...
  Millis autoscale_interval{1'000};
  // ...and lower it only when no change happened for this long (growth is immediate).
  Millis autoscale_cooldown{5'000};
  // Record every step's outcome in the instance's history (step, outcome, duration, error,
  // node), shown by `gen_durable show` and the dashboard. Operator actions (cancel, retry)
  // are always recorded.
  bool history = false;
  // History entries older than this are deleted by GC.
  Millis history_retention{7 * 86'400'000LL};
};

struct ClientOptions : ConnectionOptions {
  // Connections kept open for concurrent calls.
  int pool_size = 4;
  // Largest accepted encoded state at insert, in bytes (the engine's client uses the engine's
  // max_payload_bytes, so an inserted state is never too large for the steps that carry it on).
  std::size_t max_payload_bytes = 8 * 1024 * 1024;
  // Client::Wait reads the instance again at least this often, whatever the notifications
  // say: a lost notification (a listener reconnecting, a server restart) delays a waiter by at
  // most this long. Must be > 0.
  Millis wait_poll_interval{1'000};
};

// Options of one insert. Unset fields take the machine's defaults.
struct InsertOptions {
  Json state = Json::object();           // initial state (jobs: the args)
  std::optional<std::string> step;       // default: the machine's initial step
  std::optional<std::string> queue;      // default: the machine's queue
  int priority = 0;                      // lower runs first
  std::optional<TimePoint> eligible_at;  // run no earlier than this
  std::optional<TimePoint> schedule_at;  // sugar for eligible_at
  std::optional<Millis> schedule_in;     // sugar: eligible_at = database now() + schedule_in
  std::optional<int> max_attempts;       // default: the machine's
  // At most one step of all instances sharing this key executes at a time, cluster-wide.
  std::optional<std::string> partition_key;
  // At most one instance with this key among the statuses of `unique_scope`; also a signal
  // address. Inserting a duplicate returns ErrorCode::kDuplicate.
  std::optional<std::string> unique_key;
  // Statuses in which the key is held; default: every non-terminal status.
  std::vector<std::string> unique_scope;
  // Token bucket the first step's start is subject to.
  std::optional<RateLimitRef> rate_limit;
};

// One entry of a batch insert or a child: a machine by name (+ version; default the newest
// registered, else 1) and its options.
struct InsertRequest {
  std::string fsm;
  std::optional<int> version;
  InsertOptions options;
};

}  // namespace gen_durable
