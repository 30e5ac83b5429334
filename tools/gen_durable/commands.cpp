// The CLI's database commands (migrate, insert, show, list, stats) and the worker.
#include "gen_durable/commands.hpp"  // tools/

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <thread>
#include <vector>

#include "gen_durable/demo_machines.hpp"  // tools/
#include "gen_durable/dashboard.hpp"
#include "gen_durable/engine.hpp"
#include "gen_durable/error.hpp"
#include "gen_durable/metrics.hpp"
#include "gen_durable/embedded/embedded.hpp"

namespace gen_durable::tools {

namespace {

// In lifecycle order; also the column order of `stats`.
constexpr const char* kStatuses[] = {"scheduled",       "runnable",          "executing",
                                     "awaiting_signal", "awaiting_children", "done",
                                     "failed",          "cancelled"};

constexpr const char* kEmbeddedDatabase = "gen_durable";

bool IsKnownStatus(const std::string& s) {
  return std::any_of(std::begin(kStatuses), std::end(kStatuses),
                     [&](const char* k) { return s == k; });
}

std::string OrDash(const std::optional<std::string>& v) { return v ? *v : "-"; }

// Prints `rows` as left-aligned columns separated by two spaces; rows[0] is the header.
void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  if (rows.empty()) return;
  std::vector<std::size_t> widths(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      // No padding after the last column, so lines carry no trailing blanks.
      line += i + 1 == row.size() ? row[i] : fmt::format("{:<{}}  ", row[i], widths[i]);
    }
    // Nor after trailing empty cells (the `(all)` row of `stats`).
    line.erase(line.find_last_not_of(' ') + 1);
    fmt::print("{}\n", line);
  }
}

// Counts with a zero for every known status, so `jq .total.done` is a number, never null.
Json CountsToJson(const std::map<std::string, std::int64_t>& counts) {
  Json j = Json::object();
  for (const char* s : kStatuses) j[s] = 0;
  for (const auto& [status, n] : counts) j[status] = n;
  return j;
}

std::int64_t Sum(const std::map<std::string, std::int64_t>& counts) {
  std::int64_t n = 0;
  for (const auto& [_, c] : counts) n += c;
  return n;
}

// "code: message" for a refusal, without doubling a prefix the library already wrote.
std::string RefusalReason(const DomainError& error) {
  const std::string code = ErrorCodeName(error.code);
  const std::string message = OneLine(error.message);
  if (message.rfind(code + ":", 0) == 0) return message;
  return fmt::format("{}: {}", code, message);
}

// Parses JSON text given to `flag`; throws UsageError naming the flag when malformed.
Json ParseJsonFlag(const char* flag, const std::string& text) {
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    throw UsageError(fmt::format("{} is not valid JSON: {}", flag, e.what()));
  }
}

// Splits "a,b,,c" into {"a", "b", "c"}.
std::vector<std::string> SplitList(std::string_view text) {
  std::vector<std::string> items;
  while (!text.empty()) {
    const auto comma = text.find(',');
    if (const std::string_view item = text.substr(0, comma); !item.empty()) {
      items.emplace_back(item);
    }
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
  }
  return items;
}

// Parses all of `text` as a number, or returns nullopt.
template <typename T>
std::optional<T> ParseNumber(std::string_view text) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

void PrintHuman(const InstanceInfo& info) {
  auto line = [](std::string_view key, const std::string& value) {
    fmt::print("{:<16}{}\n", key.empty() ? std::string() : fmt::format("{}:", key), value);
  };
  line("id", std::to_string(info.id));
  line("fsm", fmt::format("{} (version {})", info.fsm, info.fsm_version));
  line("status", info.status);
  line("step", info.step);
  line("attempt", info.max_attempts && *info.max_attempts > 0
                      ? fmt::format("{} (max {})", info.attempt, *info.max_attempts)
                      : std::to_string(info.attempt));
  line("queue", fmt::format("{} (priority {})", info.queue, info.priority));
  line("partition_key", OrDash(info.partition_key));
  line("unique_key", OrDash(info.unique_key));
  line("state", info.state.dump());
  line("result", info.result.is_null() ? "-" : info.result.dump());
  line("last_error", OrDash(info.last_error));
  line("parent_id", info.parent_id ? std::to_string(*info.parent_id) : "-");
  line("children", info.children.empty() ? "-"
                                         : fmt::format("{} ({})", fmt::join(info.children, " "),
                                                       info.children.size()));
  // One signal per line, oldest first: id, name, payload and whether a step consumed it.
  if (info.signals.empty()) line("signals", "-");
  for (std::size_t i = 0; i < info.signals.size(); ++i) {
    const SignalInfo& sg = info.signals[i];
    std::string text = fmt::format("#{} {} {} {}", sg.id, sg.name, sg.payload.dump(),
                                   sg.consumed ? "consumed" : "pending");
    if (sg.dedup_key) text += fmt::format(" (dedup_key {})", *sg.dedup_key);
    line(i == 0 ? "signals" : "", text);
  }
  line("locked_by", OrDash(info.locked_by));
  line("lease_expires", OrDash(info.lease_expires_at));
  line("eligible_at", info.eligible_at);
  line("inserted_at", info.inserted_at);
  line("updated_at", info.updated_at);
  line("completed_at", OrDash(info.completed_at));
}

std::string HistoryLine(const HistoryEntry& h) {
  std::string text = fmt::format("{} {} {} -> {} (attempt {}", h.at, h.event, h.step, h.status,
                                 h.attempt);
  if (h.duration_ms) text += fmt::format(", {:.1f} ms", *h.duration_ms);
  text += fmt::format(", {})", h.node);
  if (h.error) text += ": " + *h.error;
  return text;
}

InstanceFilter FilterOf(const SelectArgs& a, const char* command) {
  const bool filtered = a.status || a.queue || a.fsm || a.older_than_ms;
  if (a.ids.empty() && !filtered && !a.all) {
    throw UsageError(fmt::format(
        "{}: name instance ids, or a filter (--status, --queue, --fsm, --older-than), or --all",
        command));
  }
  if (a.all && (filtered || !a.ids.empty())) {
    throw UsageError(fmt::format("{}: --all takes no ids and no filter", command));
  }
  if (a.status && !IsKnownStatus(*a.status)) {
    throw UsageError(
        fmt::format("--status '{}' is not one of: {}", *a.status, fmt::join(kStatuses, ", ")));
  }
  if (a.older_than_ms && *a.older_than_ms < 0) throw UsageError("--older-than must be >= 0");
  InstanceFilter f;
  f.ids = a.ids;
  f.status = a.status;
  f.queue = a.queue;
  f.fsm = a.fsm;
  if (a.older_than_ms) f.older_than = Millis{*a.older_than_ms};
  return f;
}

}  // namespace

int ExitStatusOf(const std::exception& e) {
  if (dynamic_cast<const UsageError*>(&e) != nullptr) return kExitUsage;
  // Both name an input the user gave: a bad flag value or a bad insert option.
  if (dynamic_cast<const ConfigError*>(&e) != nullptr) return kExitUsage;
  if (dynamic_cast<const InvalidArgument*>(&e) != nullptr) return kExitUsage;
  if (dynamic_cast<const RefusedError*>(&e) != nullptr) return kExitRefused;
  return kExitFailure;
}

std::string OneLine(const std::string& text) {
  std::string out;
  bool blank = false;
  for (char c : text) {
    const bool space = c == '\n' || c == '\r' || c == '\t' || c == ' ';
    if (space) {
      blank = !out.empty();
      continue;
    }
    if (blank) out += ' ';
    blank = false;
    out += c;
  }
  return out;
}

Session::Session(const GlobalOptions& global) : schema_(global.schema) {
  conninfo_ = global.database;
  if (conninfo_.empty()) {
    if (const char* env = std::getenv("GEN_DURABLE_DATABASE_URL"); env != nullptr) conninfo_ = env;
  }
  if (conninfo_.empty()) {
    const std::string dir = detail::DefaultDataDir();
    fmt::print(stderr, "gen_durable: starting embedded database at {}\n", dir);
    cluster_ = detail::EmbeddedCluster::Start({.data_dir = dir});
    // The application's role, not the cluster's superuser: it owns this database and so the
    // schema it migrates, and can do nothing to the cluster.
    conninfo_ = cluster_->CreateAppDatabase(kEmbeddedDatabase);
  }
}

Session::~Session() = default;

Client& Session::client() {
  if (!client_) {
    ClientOptions options;
    options.database = conninfo_;
    options.schema = schema_;
    client_ = Client::Connect(options);
    client_->Migrate();
  }
  return *client_;
}

void Session::Close() {
  client_.reset();
  // Not cluster_->Stop(): that stops a server we merely attached to; the destructor stops it
  // only when this process started it.
  cluster_.reset();
}

int RunMigrate(const GlobalOptions& global) {
  Session session(global);
  const int version = session.client().SchemaVersion();
  if (global.json) {
    fmt::print("{}\n", Json{{"schema_version", version}, {"schema", global.schema}}.dump());
  } else {
    fmt::print("{}\n", version);
  }
  return kExitOk;
}

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

  // The demo machines' defaults (queue, initial step, max attempts) apply to their inserts.
  RegisterDemoMachines();
  Session session(global);
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
  if (args.status && !IsKnownStatus(*args.status)) {
    throw UsageError(
        fmt::format("--status '{}' is not one of: {}", *args.status, fmt::join(kStatuses, ", ")));
  }
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
          {"concurrency", q.concurrency}};
    }
    fmt::print("{}\n", Json{{"total", CountsToJson(counts.total)},
                            {"queues", queues},
                            {"queue_info", queue_info}}
                           .dump());
    return kExitOk;
  }
  std::vector<std::string> header = {"QUEUE"};
  for (const char* s : kStatuses) header.push_back(s);
  header.insert(header.end(), {"total", "paused", "oldest_ready", "done_1m", "slots"});
  std::vector<std::vector<std::string>> table = {header};
  auto row = [](const std::string& name, const std::map<std::string, std::int64_t>& by_status) {
    std::vector<std::string> r = {name};
    for (const char* s : kStatuses) {
      auto it = by_status.find(s);
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
      r.insert(r.end(), {"no", "-", "0", "0"});
    } else {
      const QueueInfo& q = it->second;
      r.push_back(q.paused ? "yes" : "no");
      r.push_back(q.oldest_ready_ms ? fmt::format("{:.0f} ms", *q.oldest_ready_ms) : "-");
      r.push_back(std::to_string(q.completed_last_minute));
      r.push_back(std::to_string(slots(q)));
    }
    table.push_back(std::move(r));
  }
  auto all = row("(all)", counts.total);
  all.insert(all.end(), {"", "", "", ""});
  table.push_back(std::move(all));
  PrintTable(table);
  return kExitOk;
}

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
    fmt::print("{}\n", Json{{"role", args.role}, {"as", args.as}, {"schema", global.schema}}.dump());
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

int RunCancel(const GlobalOptions& global, const CancelArgs& args) {
  const InstanceFilter filter = FilterOf(args.select, "cancel");
  if (args.reason.empty()) throw UsageError("--reason must not be empty");
  Session session(global);
  CancelOptions options;
  options.cascade = args.cascade;
  options.reason = args.reason;
  const CancelReport report = session.client().CancelWhere(filter, options);
  if (!args.select.ids.empty() && report.cancelled.empty() && report.requested.empty()) {
    throw RefusedError(fmt::format("no_target: no live instance among {}",
                                   fmt::join(args.select.ids, " ")));
  }
  if (global.json) {
    fmt::print("{}\n",
               Json{{"cancelled", report.cancelled}, {"requested", report.requested}}.dump());
  } else {
    fmt::print("cancelled: {}\n",
               report.cancelled.empty() ? "-" : fmt::format("{}", fmt::join(report.cancelled, " ")));
    fmt::print("asked to stop (running): {}\n",
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
    fmt::print("retried: {}\n",
               retried.empty() ? "-" : fmt::format("{}", fmt::join(retried, " ")));
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
    table.push_back({n.id, n.engine, std::to_string(n.pid), fmt::format("{}", fmt::join(queues, ",")),
                     std::to_string(n.running), n.started_at, n.heartbeat_at});
  }
  PrintTable(table);
  return kExitOk;
}

std::map<std::string, QueueConfig> ParseQueues(const std::string& spec) {
  std::map<std::string, QueueConfig> queues;
  std::string_view rest = spec;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (item.empty()) continue;
    QueueConfig cfg;
    std::string_view name = item;
    if (const auto colon = item.rfind(':'); colon != std::string_view::npos) {
      name = item.substr(0, colon);
      const std::string_view number = item.substr(colon + 1);
      // NAME:N (fixed) or NAME:MIN-MAX (autoscaled)
      auto parse = [&](std::string_view digits, int& out) {
        const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
        if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) {
          throw UsageError(
              fmt::format("--queues: '{}' is not NAME:CONCURRENCY or NAME:MIN-MAX", item));
        }
      };
      if (const auto dash = number.find('-'); dash != std::string_view::npos && dash > 0) {
        parse(number.substr(0, dash), cfg.concurrency);
        parse(number.substr(dash + 1), cfg.max);
        if (cfg.max <= cfg.concurrency) {
          throw UsageError(fmt::format("--queues: '{}': MAX must be above MIN", item));
        }
      } else {
        parse(number, cfg.concurrency);
      }
    }
    if (name.empty()) throw UsageError(fmt::format("--queues: '{}' has no queue name", item));
    if (!queues.emplace(std::string(name), cfg).second) {
      throw UsageError(fmt::format("--queues: queue '{}' is named twice", name));
    }
  }
  if (queues.empty()) throw UsageError("--queues must name at least one queue");
  return queues;
}

std::map<std::string, RateLimit> ParseRateLimits(const std::vector<std::string>& specs) {
  std::map<std::string, RateLimit> limits;
  for (const std::string& spec : specs) {
    std::vector<std::string_view> parts;
    std::string_view rest = spec;
    for (;;) {
      const auto colon = rest.find(':');
      parts.push_back(rest.substr(0, colon));
      if (colon == std::string_view::npos) break;
      rest = rest.substr(colon + 1);
    }
    auto bad = [&] {
      return UsageError(
          fmt::format("--rate-limit: '{}' is not NAME:ALLOWED:PERIOD_MS[:BURST]", spec));
    };
    if (parts.size() < 3 || parts.size() > 4 || parts[0].empty()) throw bad();
    RateLimit limit;
    const auto allowed = ParseNumber<int>(parts[1]);
    const auto period = ParseNumber<std::int64_t>(parts[2]);
    if (!allowed || !period) throw bad();
    limit.allowed = *allowed;
    limit.period = Millis{*period};
    if (parts.size() == 4) {
      const auto burst = ParseNumber<int>(parts[3]);
      if (!burst) throw bad();
      limit.burst = *burst;
    }
    if (!limits.emplace(std::string(parts[0]), limit).second) {
      throw UsageError(fmt::format("--rate-limit: limit '{}' is named twice", parts[0]));
    }
  }
  return limits;
}

RateLimitRef ParseRateLimitRef(const std::string& spec) {
  RateLimitRef ref;
  const auto colon = spec.find(':');
  ref.name = spec.substr(0, colon);
  if (colon != std::string::npos) {
    ref.key = spec.substr(colon + 1);
    if (ref.key.empty()) throw UsageError(fmt::format("--rate-limit: '{}' has an empty KEY", spec));
  }
  if (ref.name.empty()) throw UsageError(fmt::format("--rate-limit: '{}' has no NAME", spec));
  return ref;
}

sigset_t BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

namespace {

// --step-log: appends one JSON line per event to `path`. Each line goes out in one write(2) on
// an O_APPEND descriptor, so lines from several workers sharing the file never interleave and a
// line written before a SIGKILL is kept (it is in the kernel, not in a user-space buffer).
// Lines: {"ev":"step",id,fsm,step,attempt,kind,start_us,end_us,pid} when a step returns (before
// its outcome commits), {"ev":"stale",id,pid} when an outcome was dropped as stale, and
// {"ev":"reaped",ids,pid} when this node's reaper took expired leases back.
void AttachStepLog(Engine& engine, const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw ConfigError(fmt::format("--step-log {}: {}", path, std::strerror(errno)));
  }
  const int pid = static_cast<int>(getpid());
  auto write_line = [fd](Json line) {
    std::string text = line.dump();
    text += '\n';
    // A short write to a local file only happens when the disk is full; the log is best effort.
    [[maybe_unused]] const ssize_t n = ::write(fd, text.data(), text.size());
  };
  engine.telemetry().Attach("step.stop", [write_line, pid](const TelemetryEvent& e) {
    const std::int64_t end_us = NowMicros();
    const auto duration_us =
        static_cast<std::int64_t>(e.measurements.at("duration") * 1e6);
    write_line({{"ev", "step"},
                {"id", e.metadata.at("id")},
                {"fsm", e.metadata.at("fsm")},
                {"step", e.metadata.at("step")},
                {"attempt", e.metadata.at("attempt")},
                {"kind", e.metadata.at("kind")},
                {"start_us", end_us - duration_us},
                {"end_us", end_us},
                {"pid", pid}});
  });
  engine.telemetry().Attach("outcome.stale", [write_line, pid](const TelemetryEvent& e) {
    write_line({{"ev", "stale"}, {"id", e.metadata.at("id")}, {"pid", pid}});
  });
  engine.telemetry().Attach("reaper.reaped", [write_line, pid](const TelemetryEvent& e) {
    write_line({{"ev", "reaped"}, {"ids", e.metadata.at("ids")}, {"pid", pid}});
  });
}

}  // namespace

int RunWorker(const GlobalOptions& global, const WorkerArgs& args) {
  EngineOptions options;
  options.name = args.name;
  options.schema = global.schema;
  options.queues = ParseQueues(args.queues);
  options.lease_ttl = Millis{args.lease_ttl_ms};
  options.heartbeat_interval = Millis{args.heartbeat_interval_ms.value_or(
      std::clamp<std::int64_t>(args.lease_ttl_ms / 3, 1, options.heartbeat_interval.count()))};
  options.poll_interval = Millis{args.poll_interval_ms};
  // There is no flag for the idle backoff ceiling: keep it from refusing a long poll interval.
  options.max_poll_interval = std::max(options.max_poll_interval, options.poll_interval);
  options.reap_interval = Millis{args.reap_interval_ms};
  if (args.gc_interval_ms == 0) {
    options.gc_interval.reset();
  } else {
    options.gc_interval = Millis{args.gc_interval_ms};
  }
  options.gc_retention = Millis{args.gc_retention_ms};
  options.prefetch = args.prefetch;
  options.drain_timeout = Millis{args.drain_timeout_ms};
  options.autoscale_interval = Millis{args.autoscale_interval_ms};
  options.autoscale_cooldown = Millis{args.autoscale_cooldown_ms};
  options.history = args.history;
  options.history_retention = Millis{args.history_retention_ms};
  options.rate_limits = ParseRateLimits(args.rate_limits);

  RegisterDemoMachines();
  Session session(global);
  options.database = session.conninfo();
  // Validates every option (ConfigError: exit 2) before anything runs.
  std::unique_ptr<Engine> engine = Engine::Create(options);

  if (!args.step_log.empty()) AttachStepLog(*engine, args.step_log);
  // The metrics endpoint binds before anything runs, so a taken port fails at once.
  std::unique_ptr<Metrics> metrics;
  std::unique_ptr<MetricsServer> metrics_server;
  if (args.metrics_port) {
    metrics = std::make_unique<Metrics>(*engine);
    MetricsServerOptions mo;
    mo.bind = args.metrics_bind;
    mo.port = *args.metrics_port;
    mo.security = HttpSecurityOf(args.metrics_http, kMetricsTokenEnv);
    metrics_server = MetricsServer::Start(*metrics, mo);
  }

  // Engine threads inherit the mask, so only the sigwait below ever sees these signals.
  const sigset_t signals = BlockTerminationSignals();
  // A worker started while the database is down (a restart, a failover) waits for it instead of
  // exiting, as the engine's own threads do once it runs. Only a retryable failure is waited
  // out; a wrong password or a missing database still exits at once.
  for (std::int64_t backoff_ms = 100;; backoff_ms = std::min<std::int64_t>(backoff_ms * 2, 5000)) {
    try {
      engine->Start();
      break;
    } catch (const Error& e) {
      if (e.retry() == Retry::kFatal) throw;
      fmt::print(stderr, "gen_durable worker: database unavailable ({}); retrying in {} ms\n",
                 e.what(), backoff_ms);
      const timespec wait{static_cast<time_t>(backoff_ms / 1000),
                          static_cast<long>(backoff_ms % 1000) * 1'000'000};
      if (sigtimedwait(&signals, nullptr, &wait) > 0) {
        fmt::print(stderr, "gen_durable worker: stopped before the database was reachable\n");
        std::fflush(nullptr);
        std::_Exit(kExitOk);
      }
    }
  }
  std::string queues;
  for (const auto& [name, cfg] : options.queues) {
    queues += fmt::format("{}{}:{}", queues.empty() ? "" : ",", name,
                          cfg.autoscaled() ? fmt::format("{}-{}", cfg.concurrency, cfg.max)
                                           : std::to_string(cfg.concurrency));
  }
  std::string limits;
  for (const auto& [name, limit] : options.rate_limits) {
    limits += fmt::format("{}{}:{}/{}ms", limits.empty() ? "" : ",", name, limit.allowed,
                          limit.period.count());
    if (limit.burst) limits += fmt::format(" burst {}", *limit.burst);
  }
  fmt::print(stderr, "gen_durable worker: started node {} (queues {}{})\n", engine->node_id(),
             queues, limits.empty() ? "" : fmt::format("; rate limits {}", limits));
  if (metrics_server) {
    fmt::print(stderr, "gen_durable worker: metrics at {}://{}:{}/metrics\n",
               args.metrics_http.tls_cert.empty() ? "http" : "https", args.metrics_bind,
               metrics_server->port());
  }

  int sig = 0;
  sigwait(&signals, &sig);
  fmt::print(stderr, "gen_durable worker: {} received, draining (up to {} ms)\n",
             sig == SIGINT ? "SIGINT" : "SIGTERM", args.drain_timeout_ms);
  // A second signal means "now": the rows still held go back through the reaper.
  std::thread([signals] {
    int again = 0;
    sigwait(&signals, &again);
    fmt::print(stderr, "gen_durable worker: second signal, exiting without draining\n");
    std::_Exit(kExitFailure);
  }).detach();

  if (metrics_server) metrics_server->Stop();
  engine->Stop();
  const EngineStats stats = engine->stats();
  fmt::print(stderr,
             "gen_durable worker: stopped node {} ({} steps run, {} buffered rows released)\n",
             engine->node_id(), stats.steps, stats.released);
  // The engine's connections close with it, so the embedded server (if this process started it)
  // sees no other client and stops.
  metrics_server.reset();
  metrics.reset();
  engine.reset();
  session.Close();
  spdlog::default_logger()->flush();
  std::fflush(nullptr);
  // Steps abandoned after drain_timeout may still be running; their rows are the reaper's now,
  // and running destructors under them would be unsafe.
  std::_Exit(kExitOk);
}

HttpSecurityOptions HttpSecurityOf(const HttpArgs& args, const char* token_env) {
  HttpSecurityOptions o;
  if (!args.token_file.empty()) {
    o.token = ReadSecretFile(args.token_file);
  } else if (const char* env = std::getenv(token_env); env && *env) {
    o.token = env;
  }
  o.read_only = args.read_only;
  o.allow_unauthenticated = args.allow_unauthenticated;
  o.allowed_hosts = args.allow_hosts;
  o.tls_cert_file = args.tls_cert;
  o.tls_key_file = args.tls_key;
  return o;
}

int RunDashboard(const GlobalOptions& global, const DashboardArgs& args) {
  // Credentials and address are checked before the database is reached.
  DashboardOptions options;
  options.bind = args.bind;
  options.port = args.port;
  options.refresh_ms = args.refresh_ms;
  options.security = HttpSecurityOf(args.http, kDashboardTokenEnv);
  Session session(global);
  // Waits for SIGINT / SIGTERM only: block them before the server's thread exists.
  const sigset_t signals = BlockTerminationSignals();
  auto dashboard = Dashboard::Start(session.client(), options);
  fmt::print(stderr, "gen_durable dashboard: {}://{}:{}/ (schema {}{}{}); Ctrl-C stops it\n",
             dashboard->tls() ? "https" : "http", args.bind, dashboard->port(), session.schema(),
             options.security.token.empty() ? ", no credentials" : ", token required",
             options.security.read_only ? ", read-only" : "");
  int sig = 0;
  sigwait(&signals, &sig);
  dashboard->Stop();
  fmt::print(stderr, "gen_durable dashboard: stopped\n");
  return kExitOk;
}

}  // namespace gen_durable::tools
