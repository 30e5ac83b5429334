// How the CLI's commands print (see output.hpp).
#include "gen_durable/output.hpp"  // tools/

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <optional>
#include <string_view>

namespace gen_durable::tools {

namespace {

std::string OrDash(const std::optional<std::string>& v) { return v ? *v : "-"; }

}  // namespace

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

Json CountsToJson(const std::map<std::string, std::int64_t>& counts) {
  Json j = Json::object();
  for (const std::string_view s : kInstanceStatuses) j[std::string(s)] = 0;
  for (const auto& [status, n] : counts) j[status] = n;
  return j;
}

std::int64_t Sum(const std::map<std::string, std::int64_t>& counts) {
  std::int64_t n = 0;
  for (const auto& [_, c] : counts) n += c;
  return n;
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
  std::string text =
      fmt::format("{} {} {} -> {} (attempt {}", h.at, h.event, h.step, h.status, h.attempt);
  if (h.duration_ms) text += fmt::format(", {:.1f} ms", *h.duration_ms);
  text += fmt::format(", {})", h.node);
  if (h.error) text += ": " + *h.error;
  return text;
}

}  // namespace gen_durable::tools
