// Operator requests as an engine reads them from gd_control (docs/security.md, "Control
// plane"). The control channel's notifications carry no payload an engine reads: a notification
// only makes the engine read the table, so what it applies is what a role with privilege on the
// table wrote. This is the pure part: decoding and range-checking a row, and deciding whether a
// request applies to this node.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "gen_durable/options.hpp"

namespace gen_durable::detail {

// One gd_control row as libpq hands it over: every column as text, NULL as nullopt.
struct ControlRow {
  std::optional<std::string> queue, node, concurrency, seq, seen;
};

// A scale request fit to apply.
struct ScaleRequest {
  std::string queue;
  std::string node;      // "" when it is for every node
  int concurrency = 0;   // 1..kMaxConcurrency
  std::int64_t seq = 0;  // > 0; a later request has a greater one
  // The declared configuration (DeclaredConfig) this engine's name had when it applied the
  // request before a restart; nullopt when it never did.
  std::optional<std::string> seen;
};

// The request of `row` as node `node_id` may apply it, or why it is refused. The table's
// constraints hold the same bounds; they are checked here again because this is where the
// value takes effect (a constraint can be dropped by whoever owns the schema).
std::variant<ScaleRequest, std::string> DecodeScaleRequest(const ControlRow& row,
                                                           const std::string& node_id);

// The latest request (greatest seq) of each queue among `requests`.
std::map<std::string, ScaleRequest> LatestPerQueue(const std::vector<ScaleRequest>& requests);

// How a queue's declared configuration is recorded in a request's `seen`: "4", or "2..8" when
// autoscaled.
std::string DeclaredConfig(const QueueConfig& cfg);

enum class ScaleVerdict {
  kApply,
  kAlreadyApplied,      // this node applied it, or a newer configuration, already
  kConfigurationNewer,  // applied before a restart under another declared configuration
};

// Whether `request` applies to a queue whose last request handled on this node has
// `handled_seq` (0: none since start) and whose declared configuration is `declared`. A request
// this engine (by name) applied under the same configuration before it restarted applies again;
// one applied under another configuration does not: the node was redeployed since, and its
// configuration is the newer word.
ScaleVerdict JudgeScale(const ScaleRequest& request, std::int64_t handled_seq,
                        const std::string& declared);

}  // namespace gen_durable::detail
