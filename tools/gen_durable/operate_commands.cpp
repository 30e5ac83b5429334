// The CLI's operating commands: grant, pause and resume, scale, nodes.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <optional>
#include <string>
#include <vector>

#include "gen_durable/command_args.hpp"  // tools/
#include "gen_durable/commands.hpp"      // tools/
#include "gen_durable/error.hpp"
#include "gen_durable/output.hpp"  // tools/

namespace gen_durable::tools {

int RunGrant(const GlobalOptions& global, const GrantArgs& args) {
  DatabaseRole as = DatabaseRole::kViewer;
  if (args.as == "engine") {
    as = DatabaseRole::kEngine;
  } else if (args.as == "producer") {
    as = DatabaseRole::kProducer;
  } else if (args.as != "viewer") {
    throw UsageError("--as must be engine, producer or viewer");
  }
  Session session(global);
  session.client().GrantRole(args.role, as);
  if (global.json) {
    fmt::print("{}\n",
               Json{{"role", args.role}, {"as", args.as}, {"schema", global.schema}}.dump());
  } else {
    fmt::print("granted {} the {} privileges on schema {}\n", args.role, args.as, global.schema);
  }
  return kExitOk;
}

int RunPause(const GlobalOptions& global, const std::string& queue, bool paused) {
  Session session(global);
  if (paused) {
    session.client().PauseQueue(queue);
  } else {
    session.client().ResumeQueue(queue);
  }
  if (global.json) {
    fmt::print("{}\n", Json{{"queue", queue}, {"paused", paused}}.dump());
  } else {
    fmt::print("{} {} (cluster-wide)\n", paused ? "paused" : "resumed", queue);
  }
  return kExitOk;
}

namespace {

// The value of `scale --global`: N >= 1, or `none` (nullopt) to clear the limit.
std::optional<int> GlobalLimitOf(const std::string& text) {
  if (text == "none") return std::nullopt;
  const auto n = ParseNumber<int>(text);
  if (!n) throw UsageError(fmt::format("scale: --global must be N or none (got '{}')", text));
  if (*n < 1) {
    throw UsageError(fmt::format(
        "scale: --global must be >= 1 (got {}); `--global none` clears the limit, `pause` "
        "stops all claims",
        *n));
  }
  return n;
}

std::string LimitText(const std::optional<int>& limit) {
  return limit ? std::to_string(*limit) : "none";
}

}  // namespace

int RunScale(const GlobalOptions& global, const ScaleArgs& args) {
  if (!args.concurrency && !args.global) {
    throw UsageError("scale: give N (slots per node) or --global N (cluster-wide limit)");
  }
  if (args.concurrency && (*args.concurrency < 1 || *args.concurrency > kMaxConcurrency)) {
    throw UsageError(
        fmt::format("scale: N must be in 1..{} (got {})", kMaxConcurrency, *args.concurrency));
  }
  if (args.node && !args.concurrency) {
    throw UsageError(
        "scale: --node applies to N (slots per node); the --global limit is cluster-wide");
  }
  std::optional<int> limit;
  if (args.global) limit = GlobalLimitOf(*args.global);
  Session session(global);
  Json out = {{"queue", args.queue}};
  if (args.global) {
    const std::optional<int> before = session.client().SetQueueGlobalLimit(args.queue, limit);
    out["global_limit"] = limit ? Json(*limit) : Json(nullptr);
    out["previous_global_limit"] = before ? Json(*before) : Json(nullptr);
    if (!global.json) {
      fmt::print("{} {}: at most {} executing across all nodes (was {})\n",
                 limit ? "limited" : "unlimited", args.queue, LimitText(limit), LimitText(before));
    }
  }
  if (args.concurrency) {
    const int concurrency = *args.concurrency;
    session.client().ScaleQueue(args.queue, concurrency, args.node);
    // Who serves the queue now: those nodes apply the request at once (it is stored in
    // gd_control, so nodes started later apply it too).
    std::vector<std::string> nodes;
    for (const auto& n : session.client().Nodes()) {
      if (n.queues.count(args.queue) && (!args.node || *args.node == n.id)) nodes.push_back(n.id);
    }
    out["concurrency"] = concurrency;
    out["node"] = args.node ? Json(*args.node) : Json(nullptr);
    out["nodes"] = nodes;
    if (global.json) {
      // printed below
    } else if (nodes.empty()) {
      fmt::print(stderr,
                 "gen_durable: note: no live node serves queue {}{} (the request stands for "
                 "nodes that start later)\n",
                 args.queue, args.node ? " on node " + *args.node : "");
    } else {
      fmt::print("asked {} node(s) to run {} with {} slots: {}\n", nodes.size(), args.queue,
                 concurrency, fmt::join(nodes, " "));
    }
  }
  if (global.json) fmt::print("{}\n", out.dump());
  return kExitOk;
}

int RunNodes(const GlobalOptions& global) {
  Session session(global);
  const std::vector<NodeInfo> nodes = session.client().Nodes();
  if (global.json) {
    for (const auto& n : nodes) fmt::print("{}\n", n.ToJson().dump());
    return kExitOk;
  }
  std::vector<std::vector<std::string>> table = {
      {"NODE", "ENGINE", "PID", "QUEUES", "RUNNING", "STARTED", "HEARTBEAT"}};
  for (const auto& n : nodes) {
    std::vector<std::string> queues;
    for (const auto& [q, c] : n.queues) queues.push_back(fmt::format("{}:{}", q, c));
    table.push_back({n.id, n.engine, std::to_string(n.pid),
                     fmt::format("{}", fmt::join(queues, ",")), std::to_string(n.running),
                     n.started_at, n.heartbeat_at});
  }
  PrintTable(table);
  return kExitOk;
}

int RunSchedules(const GlobalOptions& global, const SchedulesArgs& args) {
  Session session(global);
  if (args.trigger) {
    Result<std::int64_t> id = session.client().TriggerSchedule(*args.trigger);
    if (!id) throw RefusedError(RefusalReason(id.error()));
    fmt::print("{}\n", *id);
    return kExitOk;
  }
  const std::vector<ScheduleInfo> schedules = session.client().Schedules();
  if (global.json) {
    for (const auto& s : schedules) fmt::print("{}\n", s.ToJson().dump());
    return kExitOk;
  }
  std::vector<std::vector<std::string>> table = {
      {"NAME", "CRON", "ZONE", "FSM", "LAST FIRED", "NEXT FIRE"}};
  for (const auto& s : schedules) {
    table.push_back({s.name, s.cron, s.time_zone, s.fsm, s.last_fired.value_or("-"),
                     s.next_fire.value_or("-")});
  }
  PrintTable(table);
  return kExitOk;
}

}  // namespace gen_durable::tools
