// The CLI's instance commands: insert, signal, show, list, stats, cancel, retry and delete.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gen_durable/command_args.hpp"   // tools/
#include "gen_durable/commands.hpp"       // tools/
#include "gen_durable/demo_machines.hpp"  // tools/
#include "gen_durable/error.hpp"
#include "gen_durable/info.hpp"
#include "gen_durable/output.hpp"  // tools/

namespace gen_durable::tools {

namespace {

// insert --wait: the id on stderr once inserted, then the result on stdout when the instance
// is done; its last_error as the reason when it failed or was cancelled.
int InsertAndWait(Client& client, const std::string& fsm, InsertOptions options, Millis timeout) {
  Result<InstanceInfo> info =
      client.InsertAndWait(fsm, std::move(options), timeout, [](std::int64_t id) {
        fmt::print(stderr, "{}\n", id);
        std::fflush(stderr);
      });
  if (!info) {
    const std::string reason = RefusalReason(info.error());
    if (info.code() == ErrorCode::kTimeout) {
      fmt::print(stderr, "gen_durable: {}\n", reason);
      return kExitTimeout;
    }
    if (info.code() == ErrorCode::kNotFound) throw Error(reason);
    throw RefusedError(reason);
  }
  if (info->status != "done") {
    throw Error(fmt::format("instance {} {}: {}", info->id, info->status,
                            detail::OneLine(info->last_error.value_or("(no error recorded)"))));
  }
  fmt::print("{}\n", info->result.dump());
  return kExitOk;
}

}  // namespace

int RunInsert(const GlobalOptions& global, const InsertArgs& args) {
  InsertOptions options;
  if (args.state) {
    Json state = ParseJsonFlag("--state", *args.state);
    if (!state.is_object()) throw UsageError("--state must be a JSON object");
    options.state = std::move(state);
  }
  options.queue = args.queue;
  options.step = args.step;
  options.priority = args.priority;
  if (args.schedule_in_ms) options.schedule_in = Millis{*args.schedule_in_ms};
  options.max_attempts = args.max_attempts;
  // Empty values are passed on: the library refuses them by option name (exit 2).
  options.partition_key = args.partition_key;
  options.unique_key = args.unique_key;
  if (args.unique_scope) {
    options.unique_scope = SplitList(*args.unique_scope);
    if (options.unique_scope.empty()) throw UsageError("--unique-scope names no status");
  }
  if (args.rate_limit) options.rate_limit = ParseRateLimitRef(*args.rate_limit);

  std::optional<Millis> wait;
  if (!args.wait.empty()) {
    wait = args.wait == kWaitWithoutLimit ? kWaitForever : Millis{ParseDurationMs(args.wait)};
  }

  // The demo machines' defaults (queue, initial step, max attempts) apply to their inserts.
  RegisterDemoMachines();
  Session session(global);
  if (wait) return InsertAndWait(session.client(), args.fsm, std::move(options), *wait);
  Result<std::int64_t> id = session.client().Insert(args.fsm, std::move(options));
  if (!id) {
    const std::string reason = RefusalReason(id.error());
    if (id.code() == ErrorCode::kNotFound) throw Error(reason);
    throw RefusedError(reason);
  }
  fmt::print("{}\n", *id);
  return kExitOk;
}

int RunSignal(const GlobalOptions& global, const SignalArgs& args) {
  if (args.target.empty()) throw UsageError("TARGET must not be empty");
  if (args.name.empty()) throw UsageError("NAME must not be empty");
  const Json payload = args.payload ? ParseJsonFlag("--payload", *args.payload) : Json(nullptr);
  std::optional<std::int64_t> id;
  if (!args.by_key) {
    // All digits: an id (a key of digits alone needs --by-key).
    if (args.target.find_first_not_of("0123456789") == std::string::npos) {
      id = ParseNumber<std::int64_t>(args.target);
      if (!id) throw UsageError(fmt::format("TARGET '{}' is out of range for an id", args.target));
    }
  }
  SignalOptions options;
  options.dedup_key = args.dedup_key;

  Session session(global);
  Client& client = session.client();
  Result<std::int64_t> signal_id =
      id ? client.Signal(*id, args.name, payload, options)
         : client.SignalByKey(args.target, args.name, payload, options);
  if (!signal_id) {
    const std::string reason = RefusalReason(signal_id.error());
    if (signal_id.code() == ErrorCode::kNotFound) throw Error(reason);
    throw RefusedError(reason);
  }
  if (global.json) {
    Json out = {{"signal_id", *signal_id}, {"name", args.name}};
    if (id) {
      out["target_id"] = *id;
    } else {
      out["target_key"] = args.target;
    }
    fmt::print("{}\n", out.dump());
  } else {
    fmt::print("{}\n", *signal_id);
  }
  return kExitOk;
}

int RunShow(const GlobalOptions& global, std::int64_t id) {
  Session session(global);
  std::optional<InstanceInfo> info = session.client().Get(id);
  if (!info) throw Error(fmt::format("instance {} not found", id));
  const std::vector<HistoryEntry> history = session.client().History(id);
  if (global.json) {
    Json j = info->ToJson();
    j["history"] = Json::array();
    for (const auto& h : history) j["history"].push_back(h.ToJson());
    fmt::print("{}\n", j.dump());
  } else {
    PrintHuman(*info);
    if (history.empty()) fmt::print("{:<16}-\n", "history:");
    for (std::size_t i = 0; i < history.size(); ++i) {
      fmt::print("{:<16}{}\n", i == 0 ? "history:" : "", HistoryLine(history[i]));
    }
  }
  return kExitOk;
}

int RunList(const GlobalOptions& global, const ListArgs& args) {
  CheckStatusFlag(args.status);
  if (args.limit < 0) throw UsageError("--limit must be >= 0");
  ListFilter filter;
  filter.status = args.status;
  filter.queue = args.queue;
  filter.fsm = args.fsm;
  filter.limit = args.limit;
  Session session(global);
  const std::vector<InstanceInfo> rows = session.client().List(filter);
  if (global.json) {
    for (const auto& info : rows) fmt::print("{}\n", info.ToJson().dump());
    return kExitOk;
  }
  std::vector<std::vector<std::string>> table = {
      {"ID", "FSM", "STATUS", "STEP", "ATTEMPT", "QUEUE", "PRIORITY", "UPDATED"}};
  for (const auto& info : rows) {
    table.push_back({std::to_string(info.id), fmt::format("{}@{}", info.fsm, info.fsm_version),
                     info.status, info.step, std::to_string(info.attempt), info.queue,
                     std::to_string(info.priority), info.updated_at});
  }
  PrintTable(table);
  return kExitOk;
}

int RunStats(const GlobalOptions& global) {
  Session session(global);
  const StatusCounts counts = session.client().Counts();
  std::map<std::string, QueueInfo> info;
  for (auto& q : session.client().Queues()) info[q.name] = std::move(q);
  auto slots = [](const QueueInfo& q) {
    int n = 0;
    for (const auto& [_, c] : q.concurrency) n += c;
    return n;
  };
  if (global.json) {
    Json queues = Json::object();
    for (const auto& [queue, by_status] : counts.queues) queues[queue] = CountsToJson(by_status);
    // Added beside the original two keys, which scripts rely on.
    Json queue_info = Json::object();
    for (const auto& [name, q] : info) {
      queue_info[name] = {
          {"paused", q.paused},
          {"oldest_ready_ms", q.oldest_ready_ms ? Json(*q.oldest_ready_ms) : Json(nullptr)},
          {"completed_last_minute", q.completed_last_minute},
          {"concurrency", q.concurrency},
          {"global_limit", q.global_limit ? Json(*q.global_limit) : Json(nullptr)}};
    }
    fmt::print(
        "{}\n",
        Json{{"total", CountsToJson(counts.total)}, {"queues", queues}, {"queue_info", queue_info}}
            .dump());
    return kExitOk;
  }
  std::vector<std::string> header = {"QUEUE"};
  for (const std::string_view s : kInstanceStatuses) header.emplace_back(s);
  header.insert(header.end(),
                {"total", "paused", "oldest_ready", "done_1m", "slots", "global_limit"});
  std::vector<std::vector<std::string>> table = {header};
  auto row = [](const std::string& name, const std::map<std::string, std::int64_t>& by_status) {
    std::vector<std::string> r = {name};
    for (const std::string_view s : kInstanceStatuses) {
      auto it = by_status.find(std::string(s));
      r.push_back(std::to_string(it == by_status.end() ? 0 : it->second));
    }
    r.push_back(std::to_string(Sum(by_status)));
    return r;
  };
  std::map<std::string, std::map<std::string, std::int64_t>> by_queue = counts.queues;
  for (const auto& [name, _] : info) by_queue[name];  // paused or served queues without rows
  for (const auto& [queue, by_status] : by_queue) {
    auto r = row(queue, by_status);
    const auto it = info.find(queue);
    if (it == info.end()) {
      r.insert(r.end(), {"no", "-", "0", "0", "-"});
    } else {
      const QueueInfo& q = it->second;
      r.push_back(q.paused ? "yes" : "no");
      r.push_back(q.oldest_ready_ms ? fmt::format("{:.0f} ms", *q.oldest_ready_ms) : "-");
      r.push_back(std::to_string(q.completed_last_minute));
      r.push_back(std::to_string(slots(q)));
      r.push_back(q.global_limit ? std::to_string(*q.global_limit) : "-");
    }
    table.push_back(std::move(r));
  }
  auto all = row("(all)", counts.total);
  all.insert(all.end(), {"", "", "", "", ""});
  table.push_back(std::move(all));
  PrintTable(table);
  return kExitOk;
}

int RunCancel(const GlobalOptions& global, const CancelArgs& args) {
  const InstanceFilter filter = FilterOf(args.select, "cancel");
  if (args.reason.empty()) throw UsageError("--reason must not be empty");
  Session session(global);
  CancelOptions options;
  options.cascade = args.cascade;
  options.reason = args.reason;
  const CancelReport report = session.client().CancelWhere(filter, options);
  if (!args.select.ids.empty() && report.cancelled.empty() && report.requested.empty()) {
    throw RefusedError(
        fmt::format("no_target: no live instance among {}", fmt::join(args.select.ids, " ")));
  }
  if (global.json) {
    fmt::print("{}\n",
               Json{{"cancelled", report.cancelled}, {"requested", report.requested}}.dump());
  } else {
    fmt::print("cancelled: {}\n", report.cancelled.empty()
                                      ? "-"
                                      : fmt::format("{}", fmt::join(report.cancelled, " ")));
    fmt::print(
        "asked to stop (running): {}\n",
        report.requested.empty() ? "-" : fmt::format("{}", fmt::join(report.requested, " ")));
  }
  return kExitOk;
}

int RunRetry(const GlobalOptions& global, const SelectArgs& args) {
  const InstanceFilter filter = FilterOf(args, "retry");
  Session session(global);
  const std::vector<std::int64_t> retried = session.client().RetryWhere(filter);
  if (global.json) {
    fmt::print("{}\n", Json{{"retried", retried}}.dump());
  } else {
    fmt::print("retried: {}\n", retried.empty() ? "-" : fmt::format("{}", fmt::join(retried, " ")));
  }
  std::vector<std::int64_t> refused;
  for (auto id : args.ids) {
    if (std::find(retried.begin(), retried.end(), id) == retried.end()) refused.push_back(id);
  }
  if (!refused.empty()) {
    throw RefusedError(fmt::format(
        "not retried: {} (not failed or cancelled, unknown, its unique key is held, or its "
        "parent still waits on it)",
        fmt::join(refused, " ")));
  }
  return kExitOk;
}

int RunDelete(const GlobalOptions& global, const SelectArgs& args) {
  const InstanceFilter filter = FilterOf(args, "delete");
  Session session(global);
  const std::int64_t deleted = session.client().DeleteWhere(filter);
  if (global.json) {
    fmt::print("{}\n", Json{{"deleted", deleted}}.dump());
  } else {
    fmt::print("deleted {}\n", deleted);
  }
  return kExitOk;
}

}  // namespace gen_durable::tools
