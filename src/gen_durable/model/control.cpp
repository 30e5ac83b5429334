// Decoding and judging gd_control rows; see control.hpp.
#include "gen_durable/model/control.hpp"

#include <fmt/format.h>

#include <charconv>

#include "gen_durable/model/validate.hpp"

namespace gen_durable::detail {

namespace {

// A decimal integer exactly as Postgres prints one: an optional '-', digits, nothing else.
template <typename T>
std::optional<T> Integer(const std::string& text) {
  T value{};
  const char* end = text.data() + text.size();
  if (text.empty() || text.front() == '+') return std::nullopt;
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

}  // namespace

std::variant<ScaleRequest, std::string> DecodeScaleRequest(const ControlRow& row,
                                                           const std::string& node_id) {
  if (!row.queue || !row.node || !row.concurrency || !row.seq) {
    return std::string("a column is NULL");
  }
  if (auto problem = NameProblem("queue", *row.queue, kMaxNameBytes); !problem.empty()) {
    return problem;
  }
  if (!row.node->empty() && *row.node != node_id) return std::string("for another node");
  const auto n = Integer<int>(*row.concurrency);
  if (!n || *n < 1 || *n > kMaxConcurrency) {
    return fmt::format("concurrency must be in 1..{}", kMaxConcurrency);
  }
  const auto seq = Integer<std::int64_t>(*row.seq);
  if (!seq || *seq < 1) return std::string("seq must be a positive integer");
  ScaleRequest r;
  r.queue = *row.queue;
  r.node = *row.node;
  r.concurrency = *n;
  r.seq = *seq;
  r.seen = row.seen;
  return r;
}

std::map<std::string, ScaleRequest> LatestPerQueue(const std::vector<ScaleRequest>& requests) {
  std::map<std::string, ScaleRequest> out;
  for (const auto& r : requests) {
    auto it = out.find(r.queue);
    if (it == out.end()) {
      out.emplace(r.queue, r);
    } else if (r.seq > it->second.seq) {
      it->second = r;
    }
  }
  return out;
}

std::string DeclaredConfig(const QueueConfig& cfg) {
  return cfg.autoscaled() ? fmt::format("{}..{}", cfg.concurrency, cfg.max)
                          : fmt::format("{}", cfg.concurrency);
}

ScaleVerdict JudgeScale(const ScaleRequest& request, std::int64_t handled_seq,
                        const std::string& declared) {
  if (request.seq <= handled_seq) return ScaleVerdict::kAlreadyApplied;
  if (request.seen && *request.seen != declared) return ScaleVerdict::kConfigurationNewer;
  return ScaleVerdict::kApply;
}

}  // namespace gen_durable::detail
