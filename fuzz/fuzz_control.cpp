// Fuzz target: what an engine takes from the control plane (docs/security.md, "Control plane").
//
// The input is split on NUL bytes into the five text columns of a gd_control row as the engine
// reads it (queue, node, concurrency, seq, seen; a missing part is a NULL column), then a sixth
// part, the node id of the engine reading it, and a seventh, the seq it last handled and its
// declared configuration ("SEQ DECLARED"). DecodeScaleRequest decodes the row, JudgeScale
// decides whether it applies. The row may hold anything: its constraints can be dropped by the
// schema's owner, so the bounds are checked where the value is applied.
// Properties: nothing throws; an accepted request has a valid queue name, is for every node or
// this one, asks for 1..kMaxConcurrency slots exactly as written, has a positive seq; a request
// not newer than the one handled never applies, and one applied under another declared
// configuration never applies; LatestPerQueue keeps the greatest seq.
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "gen_durable/model/control.hpp"
#include "gen_durable/model/validate.hpp"
#include "input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace gen_durable;
  using namespace gen_durable::detail;
  using gen_durable::fuzz::Check;
  std::vector<std::optional<std::string>> parts(7);
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  for (std::size_t i = 0; i < parts.size() && data != nullptr; ++i) {
    if (rest.empty() && i > 0) break;
    const auto nul = rest.find('\0');
    parts[i] = std::string(rest.substr(0, nul));
    if (nul == std::string_view::npos) break;
    rest = rest.substr(nul + 1);
  }
  ControlRow row{parts[0], parts[1], parts[2], parts[3], parts[4]};
  const std::string node_id = parts[5].value_or("node-a");
  std::int64_t handled = 0;
  std::string declared = "4";
  if (parts[6]) {
    const auto& s = *parts[6];
    const auto space = s.find(' ');
    const std::string num = s.substr(0, space);
    (void)std::from_chars(num.data(), num.data() + num.size(), handled);
    if (space != std::string::npos) declared = s.substr(space + 1);
  }

  const auto decoded = DecodeScaleRequest(row, node_id);
  if (const auto* why = std::get_if<std::string>(&decoded)) {
    Check(!why->empty(), "a refusal says why");
    return 0;
  }
  const auto& r = std::get<ScaleRequest>(decoded);
  Check(row.queue && row.node && row.concurrency && row.seq, "no NULL column is accepted");
  Check(NameProblem("queue", r.queue, kMaxNameBytes).empty(), "the queue name is valid");
  Check(r.node.empty() || r.node == node_id, "the request is for every node or this one");
  Check(r.concurrency >= 1 && r.concurrency <= kMaxConcurrency, "concurrency is in range");
  Check(std::to_string(r.concurrency) == *row.concurrency, "concurrency is read exactly");
  Check(r.seq >= 1 && std::to_string(r.seq) == *row.seq, "seq is positive and read exactly");
  Check(r.seen == row.seen, "seen is carried unchanged");

  const auto verdict = JudgeScale(r, handled, declared);
  if (r.seq <= handled) {
    Check(verdict == ScaleVerdict::kAlreadyApplied, "an old request is not applied again");
  } else if (r.seen && *r.seen != declared) {
    Check(verdict == ScaleVerdict::kConfigurationNewer, "a newer configuration wins");
  } else {
    Check(verdict == ScaleVerdict::kApply, "a new request applies");
  }

  ScaleRequest older = r;
  older.seq = r.seq - 1;
  ScaleRequest other = r;
  other.queue = r.queue + "x";
  for (const auto& latest : {LatestPerQueue({older, r, other}), LatestPerQueue({r, older})}) {
    Check(latest.at(r.queue).seq == r.seq, "the latest request of a queue wins");
  }
  return 0;
}
