// The control reader: see control.hpp.
#include "gen_durable/runtime/control.hpp"

#include <spdlog/spdlog.h>

#include <utility>
#include <variant>

#include "gen_durable/pg/pool.hpp"

namespace gen_durable::detail {

ControlReader::ControlReader(QueueSet& queues, const OpsStore& ops, std::string node_id,
                             std::string engine, Millis interval, ConnectionFactory connect)
    : queues_(queues),
      ops_(ops),
      node_id_(std::move(node_id)),
      engine_(std::move(engine)),
      interval_(interval),
      connect_(std::move(connect)) {}

std::vector<ControlReader::DueScale> ControlReader::DueScales(pg::Connection& c) {
  std::vector<ScaleRequest> valid;
  for (const auto& row : ops_.ControlScales(c, node_id_, engine_)) {
    auto decoded = DecodeScaleRequest(row, node_id_);
    if (const auto* why = std::get_if<std::string>(&decoded)) {
      const std::string key = row.queue.value_or("") + '\n' + row.seq.value_or("");
      if (refused_.insert(key).second) {
        spdlog::warn("control: scale request for queue '{}' (seq {}) refused: {}",
                     row.queue.value_or(""), row.seq.value_or(""), *why);
      }
      continue;
    }
    valid.push_back(std::get<ScaleRequest>(std::move(decoded)));
  }
  const auto declared_queues = queues_.Declared();
  std::vector<DueScale> due;
  for (auto& [q, request] : LatestPerQueue(valid)) {
    auto cfg = declared_queues.find(q);
    if (cfg == declared_queues.end()) continue;  // a queue this node does not run
    auto& handled = handled_seq_[q];
    std::string declared = DeclaredConfig(cfg->second);
    const auto verdict = JudgeScale(request, handled, declared);
    if (verdict == ScaleVerdict::kAlreadyApplied) continue;
    handled = request.seq;
    if (verdict == ScaleVerdict::kConfigurationNewer) {
      spdlog::info(
          "queue {}: scale request to {} (seq {}) not applied: this node's "
          "configuration ({}) is newer than that request",
          q, request.concurrency, request.seq, declared);
      continue;
    }
    due.push_back({std::move(request), std::move(declared)});
  }
  return due;
}

void ControlReader::ApplyStandingScales(pg::Connection& c) {
  for (const auto& [request, declared] : DueScales(c)) {
    queues_.SetConfigured(request.queue, request.concurrency);
    spdlog::info("queue {}: concurrency {} ({} declared; standing request)", request.queue,
                 request.concurrency, declared);
    ops_.ControlSeen(c, request, engine_, declared);
  }
}

void ControlReader::Sync(pg::Connection& c) {
  queues_.SyncPaused(ops_.PausedQueues(c));
  for (const auto& [request, declared] : DueScales(c)) {
    if (!queues_.Runner(request.queue)) continue;
    queues_.Scale(request.queue, request.concurrency, "requested", true);
    ops_.ControlSeen(c, request, engine_, declared);
  }
  const std::vector<std::int64_t> held = queues_.HeldIds();
  if (held.empty()) return;
  for (auto id : ops_.CancelRequested(c, node_id_, held)) queues_.Cancel(id);
}

void ControlReader::Start() {
  thread_ = std::thread([this] {
    pg::ReconnectingConnection conn([this] { return connect_("control-reader"); });
    while (wake_.WaitFor(interval_)) {
      try {
        Sync(conn.Get());
      } catch (const std::exception& e) {
        spdlog::warn("control: reading operator requests failed: {}", e.what());
        conn.DropIfBroken();
      }
    }
  });
}

void ControlReader::Stop() {
  wake_.Stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace gen_durable::detail
