// The CLI's operating commands: grant, pause and resume, scale, nodes.
#include <fmt/format.h>
#include <fmt/ranges.h>

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

int RunScale(const GlobalOptions& global, const ScaleArgs& args) {
  if (args.concurrency < 1 || args.concurrency > kMaxConcurrency) {
    throw UsageError(
        fmt::format("scale: N must be in 1..{} (got {})", kMaxConcurrency, args.concurrency));
  }
  Session session(global);
  session.client().ScaleQueue(args.queue, args.concurrency, args.node);
  // Who serves the queue now: those nodes apply the request at once (it is stored in
  // gd_control, so nodes started later apply it too).
  std::vector<std::string> nodes;
  for (const auto& n : session.client().Nodes()) {
    if (n.queues.count(args.queue) && (!args.node || *args.node == n.id)) nodes.push_back(n.id);
  }
  if (global.json) {
    fmt::print("{}\n", Json{{"queue", args.queue},
                            {"concurrency", args.concurrency},
                            {"node", args.node ? Json(*args.node) : Json(nullptr)},
                            {"nodes", nodes}}
                           .dump());
  } else if (nodes.empty()) {
    fmt::print(stderr,
               "gen_durable: note: no live node serves queue {}{} (the request stands for "
               "nodes that start later)\n",
               args.queue, args.node ? " on node " + *args.node : "");
  } else {
    fmt::print("asked {} node(s) to run {} with {} slots: {}\n", nodes.size(), args.queue,
               args.concurrency, fmt::join(nodes, " "));
  }
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
