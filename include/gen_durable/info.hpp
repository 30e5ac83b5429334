// What the library reports: instances, their signals and history, queues, nodes and counts as
// the database holds them, and an engine's own view of its queues; with the filters that select
// instances for a read or a bulk operation. Plain values, used by Client and Engine calls
// (client.hpp, engine.hpp) and printed by `gen_durable ... --json`.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gen_durable/options.hpp"

namespace gen_durable {

// Every status an instance can have (InstanceInfo::status), in the order of its life:
// scheduled (waiting for its time), runnable, executing, awaiting_signal, awaiting_children,
// and the terminal done, failed and cancelled.
inline constexpr std::array<std::string_view, 8> kInstanceStatuses = {
    "scheduled",         "runnable", "executing", "awaiting_signal",
    "awaiting_children", "done",     "failed",    "cancelled"};

// done, failed or cancelled: the instance runs no more (a retry can start a failed or
// cancelled one again).
constexpr bool IsTerminalStatus(std::string_view status) {
  return status == "done" || status == "failed" || status == "cancelled";
}

// A signal as stored in an instance's inbox.
struct SignalInfo {
  std::int64_t id = 0;
  std::string name;
  Json payload;
  std::optional<std::string> dedup_key;
  bool consumed = false;
  std::string inserted_at;
};

// One instance as stored.
struct InstanceInfo {
  std::int64_t id = 0;
  std::string fsm;
  int fsm_version = 1;
  // scheduled (waiting for eligible_at), runnable, executing, awaiting_signal,
  // awaiting_children, done, failed, cancelled
  std::string status;
  std::string step;
  Json state;
  int attempt = 0;
  std::optional<int> max_attempts;
  std::string queue;
  int priority = 0;
  std::optional<std::string> partition_key;
  std::optional<std::string> unique_key;
  Json result;  // null when none
  std::optional<std::string> last_error;
  std::optional<std::int64_t> parent_id;
  std::vector<std::int64_t> children;
  std::vector<SignalInfo> signals;  // filled by Get
  std::optional<std::string> locked_by;
  std::string inserted_at;  // ISO-8601 timestamps from the database
  std::string updated_at;
  std::string eligible_at;
  std::optional<std::string> lease_expires_at;
  std::optional<std::string> completed_at;

  // The object printed by `gen_durable show --json`.
  Json ToJson() const;
};

struct ListFilter {
  std::optional<std::string> status;
  std::optional<std::string> queue;
  std::optional<std::string> fsm;
  // Instances whose unique_key or partition_key equals this.
  std::optional<std::string> key;
  // Only instances with an id below this (paging through a long list, newest first).
  std::optional<std::int64_t> before_id;
  int limit = 100;
};

// Which instances a bulk operation (cancel, retry, delete) acts on: every instance matching
// all the fields set. An empty filter matches every instance (each operation still only
// touches the statuses it applies to).
struct InstanceFilter {
  std::vector<std::int64_t> ids;
  std::optional<std::string> status;
  std::optional<std::string> queue;
  std::optional<std::string> fsm;
  // Only instances last updated longer ago than this.
  std::optional<Millis> older_than;
};

struct CancelOptions {
  // Also cancel every descendant (children, their children, ...) that is not terminal.
  bool cascade = false;
  // Recorded as the instances' last_error.
  std::string reason = "cancelled";
};

// What a cancel did. Queued and parked instances are cancelled at once; a running one is asked
// to stop (its step sees ctx.cancelled()) and its next outcome becomes `cancelled`.
struct CancelReport {
  std::vector<std::int64_t> cancelled;  // now terminal `cancelled`
  std::vector<std::int64_t> requested;  // running: cancelled when their step returns
};

// One entry of an instance's history.
struct HistoryEntry {
  std::int64_t id = 0;
  std::string step;    // the step that ran (or the step when an operator acted)
  std::string event;   // "step", "cancel", "retry", "reap"
  std::string status;  // the instance's status after it
  int attempt = 0;
  std::optional<double> duration_ms;  // of the step
  std::optional<std::string> error;
  std::string node;  // node id, or "client" for an operator action
  std::string at;    // ISO-8601

  // {"id", "event", "step", "status", "attempt", "duration_ms", "error", "node", "at"}, as in
  // `gen_durable show --json`.
  Json ToJson() const;
};

// A queue as the cluster sees it.
struct QueueInfo {
  std::string name;
  bool paused = false;
  std::map<std::string, std::int64_t> counts;  // status -> instances
  // Age of the oldest ready (runnable and due) instance, in ms; nullopt when none is ready.
  std::optional<double> oldest_ready_ms;
  // Concurrency of the queue on each live node that serves it (node id -> slots).
  std::map<std::string, int> concurrency;
  // Instances of the queue that ended (done, failed, cancelled) in the last minute.
  std::int64_t completed_last_minute = 0;
  // At most this many of the queue's steps execute at once across every node (nullopt: no
  // cluster-wide limit; see QueueConfig::global_limit).
  std::optional<int> global_limit;
};

// A live engine, from its heartbeated row.
struct NodeInfo {
  std::string id;      // host:pid:token
  std::string engine;  // the engine's name
  std::string host;
  int pid = 0;
  std::map<std::string, int> queues;  // queue -> concurrency now
  std::string started_at;
  std::string heartbeat_at;
  std::int64_t running = 0;  // instances it holds executing now

  // The object printed by `gen_durable nodes --json`.
  Json ToJson() const;
};

// A periodic schedule as the database records it (Client::Schedules): the definition the
// newest starting node wrote, and where its firing stands.
struct ScheduleInfo {
  std::string name;
  std::string cron;
  std::string time_zone;
  std::string fsm;
  std::string queue;
  int priority = 0;
  Json state;
  std::string missed;  // "skip" or "catch_up"
  int catch_up_max = 0;
  // UTC ISO-8601 ("2026-12-06T10:00:00Z"): the newest slot fired (or passed over as missed),
  // and the next slot as the nodes carrying it computed it; nullopt before the first.
  std::optional<std::string> last_fired;
  std::optional<std::string> next_fire;
  std::string updated_at;  // when a node last wrote the definition or fired it

  // The object printed by `gen_durable schedules --json`.
  Json ToJson() const;
};

// Counts by queue x status, and totals by status.
struct StatusCounts {
  std::map<std::string, std::int64_t> total;
  std::map<std::string, std::map<std::string, std::int64_t>> queues;
};

// Counters since start (also exported as telemetry).
struct EngineStats {
  std::int64_t claimed = 0;     // rows claimed
  std::int64_t steps = 0;       // steps run
  std::int64_t committed = 0;   // outcomes committed
  std::int64_t stale = 0;       // outcomes dropped by the ownership guard
  std::int64_t reaped = 0;      // expired leases reclaimed by this node's reaper
  std::int64_t gc_deleted = 0;  // terminal rows deleted by this node's GC
  std::int64_t flushes = 0;     // group commits
  std::int64_t released = 0;    // buffered rows released on stop
};

// One queue as this node runs it.
struct LocalQueueState {
  int concurrency = 0;    // slots now
  int min = 0, max = 0;   // autoscaling bounds (min == max: fixed)
  int in_flight = 0;      // steps running
  int buffered = 0;       // claimed rows waiting for a slot
  bool draining = false;  // removed by Reconfigure or stopping: claims nothing more
  bool paused = false;    // the queue is paused cluster-wide (as this node last read it)
};

}  // namespace gen_durable
