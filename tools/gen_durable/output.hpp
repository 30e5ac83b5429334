// How the CLI's commands print: aligned tables, status counts, one instance and its history.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "gen_durable/info.hpp"
#include "gen_durable/options.hpp"

namespace gen_durable::tools {

// Prints `rows` as left-aligned columns separated by two spaces; rows[0] is the header.
void PrintTable(const std::vector<std::vector<std::string>>& rows);
// Counts with a zero for every known status, so `jq .total.done` is a number, never null.
Json CountsToJson(const std::map<std::string, std::int64_t>& counts);
// The sum of the counts.
std::int64_t Sum(const std::map<std::string, std::int64_t>& counts);
// `show`'s text view of an instance: one "key: value" line per field, signals one per line.
void PrintHuman(const InstanceInfo& info);
// One history entry on one line: when, what, which step, the status after, attempt, node.
std::string HistoryLine(const HistoryEntry& h);

}  // namespace gen_durable::tools
