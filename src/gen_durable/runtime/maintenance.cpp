// Heartbeat, reaper, GC, NOTIFY listener, and the reclaim of a dead predecessor at start.
#include "gen_durable/runtime/maintenance.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "gen_durable/model/status.hpp"
#include "gen_durable/runtime/node.hpp"
#include "gen_durable/schema/migrations.hpp"

namespace gen_durable::detail {

namespace {

constexpr int kReapBatch = 1000;

void EmitReaped(Reporter& report, const std::vector<ReapedRow>& rows) {
  if (rows.empty()) return;
  report.counters.reaped.fetch_add(static_cast<std::int64_t>(rows.size()));
  report.Emit("reaper.reaped", [&](TelemetryEvent& e) {
    e.measurements["count"] = static_cast<double>(rows.size());
    Json ids = Json::array();
    for (const auto& r : rows) ids.push_back(r.id);
    e.metadata["ids"] = std::move(ids);
  });
}

}  // namespace

// --- heartbeat ---

Heartbeat::Heartbeat(const Store& store, const OpsStore& ops, std::string node_id, Millis interval,
                     Millis lease_ttl, ConnectionFactory connect, QueueSet& queues)
    : store_(store),
      ops_(ops),
      node_id_(std::move(node_id)),
      interval_(interval),
      lease_ttl_(lease_ttl),
      queues_(queues),
      conn_([connect = std::move(connect)] { return connect("heartbeat"); }) {}

void Heartbeat::Start() {
  thread_ = std::thread([this] {
    while (wake_.WaitFor(interval_)) Beat();
  });
}

void Heartbeat::Stop() {
  wake_.Stop();
  if (thread_.joinable()) thread_.join();
}

void Heartbeat::Beat() {
  try {
    auto& conn = conn_.Get();
    auto ids = queues_.HeldIds();
    store_.Heartbeat(conn, node_id_, ids, lease_ttl_);
    store_.NodeHeartbeat(conn, node_id_);
    // Cancels this node was not woken for (its listener was reconnecting).
    if (!ids.empty()) {
      for (auto id : ops_.CancelRequested(conn, node_id_, ids)) queues_.Cancel(id);
    }
  } catch (const std::exception& e) {
    spdlog::warn("heartbeat failed: {}", e.what());
    conn_.DropIfBroken();
  }
}

// --- reaper and GC ---

MaintenanceSettings MaintenanceSettings::Of(const EngineOptions& o, const std::string& node_id) {
  return {o.reaper,       o.reap_interval, o.lease_ttl,         o.gc ? o.gc_interval : std::nullopt,
          o.gc_retention, o.gc_batch,      o.history_retention, RateLimitSettings::Of(o, node_id)};
}

Maintenance::Maintenance(const Store& store, const OpsStore& ops, MaintenanceSettings settings,
                         ConnectionFactory connect, std::shared_ptr<Reporter> report,
                         QueueSet& queues)
    : store_(store),
      ops_(ops),
      settings_(std::move(settings)),
      report_(std::move(report)),
      queues_(queues),
      rate_limiter_(settings_.rate_limits, report_),
      conn_([connect = std::move(connect)] { return connect("maintenance"); }) {}

void Maintenance::Start() {
  const bool reaper = settings_.reaper;
  const bool gc = settings_.gc_interval.has_value();
  if (!reaper && !gc) return;
  thread_ = std::thread([this, reaper, gc] {
    using Clock = std::chrono::steady_clock;
    const auto& opts = settings_;
    auto next_reap = Clock::now() + opts.reap_interval;
    auto next_gc = gc ? Clock::now() + *opts.gc_interval : Clock::time_point::max();
    for (;;) {
      const auto next = std::min(reaper ? next_reap : Clock::time_point::max(), next_gc);
      if (!wake_.WaitFor(next - Clock::now())) return;
      const auto now = Clock::now();
      if (reaper && now >= next_reap) {
        Reap();
        next_reap = Clock::now() + opts.reap_interval;
      }
      if (gc && now >= next_gc) {
        Collect();
        next_gc = Clock::now() + *opts.gc_interval;
      }
    }
  });
}

void Maintenance::Stop() {
  wake_.Stop();
  if (thread_.joinable()) thread_.join();
}

std::int64_t Maintenance::Reap() {
  std::int64_t total = 0;
  try {
    auto& conn = conn_.Get();
    for (;;) {
      auto woken = store_.ReapParked(conn, kReapBatch);
      for (const auto& w : woken) {
        if (ParseStatus(w.was) == Status::kAwaitingSignal) {
          report_->Emit("await.timeout", [&](TelemetryEvent& e) {
            e.measurements["count"] = 1;
            e.metadata["id"] = w.id;
          });
        }
        queues_.Poke(w.queue);
      }
      if (static_cast<int>(woken.size()) < kReapBatch) break;
    }
    for (;;) {
      auto rows = store_.ReapExpired(conn, kReapBatch);
      EmitReaped(*report_, rows);
      total += static_cast<std::int64_t>(rows.size());
      if (static_cast<int>(rows.size()) < kReapBatch) break;
    }
    // A node silent for many leases is gone; its claims were reaped above.
    store_.NodesPrune(conn, std::max(settings_.lease_ttl * 10, Millis{600'000}));
    // Scale requests for nodes pruned above, or stopped: node ids are never reused.
    ops_.ControlPrune(conn);
  } catch (const std::exception& e) {
    spdlog::warn("reaper sweep failed: {}", e.what());
    conn_.DropIfBroken();
  }
  return total;
}

std::int64_t Maintenance::Collect() {
  std::int64_t total = 0;
  const auto& o = settings_;
  try {
    auto& conn = conn_.Get();
    for (;;) {
      const auto n = store_.GcSweep(conn, o.gc_retention, o.gc_batch);
      total += n;
      // Counted as each batch commits, so the count never lags the table.
      report_->counters.gc_deleted.fetch_add(n);
      if (n < o.gc_batch || wake_.stopped()) break;  // a full batch: sweep again at once
    }
    rate_limiter_.PruneIdle(conn);
    while (ops_.HistorySweep(conn, o.history_retention, o.gc_batch) >= o.gc_batch &&
           !wake_.stopped()) {
    }
  } catch (const std::exception& e) {
    spdlog::warn("gc sweep failed: {}", e.what());
    conn_.DropIfBroken();
  }
  report_->Emit("gc.swept",
                [&](TelemetryEvent& e) { e.measurements["count"] = static_cast<double>(total); });
  return total;
}

// --- listener ---

Listener::Listener(std::string channel, std::string control_channel, ConnectionFactory connect,
                   QueueSet& queues, ControlReader& control)
    : channel_(std::move(channel)),
      control_channel_(std::move(control_channel)),
      connect_(std::move(connect)),
      queues_(queues),
      control_(control) {}

void Listener::Start() {
  thread_ = std::thread([this, control_channel = control_channel_] {
    pg::ReconnectingConnection conn([this] { return connect_("listener"); });
    Millis retry{100};
    while (!wake_.stopped()) {
      try {
        if (!conn.usable()) {
          conn.Get().Listen(channel_);
          conn.Get().Listen(control_channel);
          retry = Millis{100};
          {
            MutexLock lock(ready_mu_);
            listening_ = true;
          }
          ready_cv_.NotifyAll();
          // Requests written while this node was not listening: read them now.
          control_.Wake();
        }
        // Short waits so Stop() is noticed promptly.
        for (const auto& n : conn.Get().WaitForNotifications(Millis{250})) {
          if (n.channel != control_channel) {
            queues_.Poke(n.payload);
          } else {
            control_.Wake();  // a wake-up: the payload is not read
          }
        }
      } catch (const std::exception& e) {
        spdlog::debug("listener: {}", e.what());
        conn.Reset();
        if (!wake_.WaitFor(retry)) return;
        retry = std::min(retry * 2, Millis{5000});
      }
    }
  });
  // Wait (briefly) until LISTEN took effect, so a notification sent after Start returns (a
  // scale or cancel request, new work) reaches this engine. A listener that cannot connect
  // keeps retrying in the background; polling covers the work meanwhile.
  MutexLock lock(ready_mu_);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!listening_) {
    if (!ready_cv_.WaitUntil(ready_mu_, until)) break;
  }
}

void Listener::Stop() {
  wake_.Stop();
  if (thread_.joinable()) thread_.join();
}

// --- reclaim at start ---

std::int64_t ReclaimDeadPredecessors(const Store& store, const std::string& node_id,
                                     Millis heartbeat_interval, Millis lease_ttl, Reporter& report,
                                     pg::Connection& conn) {
  const ProcessIdentity self = SelfIdentity();
  std::int64_t total = 0;
  for (const auto& node : store.NodesOnHost(conn, self.host, heartbeat_interval, lease_ttl)) {
    if (node.id == node_id) continue;
    // Evidence of death that no live node can produce. A node of our pid namespace is judged
    // by its pid alone: it names no process, or another one, or the node lives, however long
    // its row has been silent (a live node's row is silent while the database is restarting
    // or out of reach, and its steps still run). A node sharing only the host name (a
    // container on the host network, another machine of that name) has pids that say nothing
    // here, whatever /proc shows for them: it is judged by its row, silent for longer than its
    // leases last, so that every claim it renewed has expired.
    const bool same_ns = !self.pid_ns.empty() && node.pid_ns == self.pid_ns;
    if (same_ns && node.pid == self.pid && node.proc_start == self.proc_start) continue;  // us
    const bool dead = same_ns ? ProcessIsGone(node.pid, node.proc_start) : node.silent;
    if (!dead) continue;  // alive, or not known to be dead: its claims are its own
    auto rows = store.ReclaimNode(conn, node.id);
    EmitReaped(report, rows);
    total += static_cast<std::int64_t>(rows.size());
    store.NodeDelete(conn, node.id);
    if (!rows.empty()) {
      spdlog::info("reclaimed {} rows of dead node {} on this host", rows.size(), node.id);
    }
  }
  return total;
}

}  // namespace gen_durable::detail
