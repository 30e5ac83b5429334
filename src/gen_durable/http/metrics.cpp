// Prometheus metrics from telemetry events, rendered in the text exposition format 0.0.4.
#include "gen_durable/metrics.hpp"

#include <fmt/format.h>

#include <array>
#include <map>
#include <utility>
#include <vector>

#include "gen_durable/engine.hpp"
#include "gen_durable/http/http_server.hpp"
#include "gen_durable/util/thread_annotations.hpp"

namespace gen_durable {

namespace detail {

namespace {

// Label values escaped as the format requires: backslash, double quote and newline.
std::string Escape(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// A label set, rendered: {a="x",b="y"} (empty for none).
std::string Labels(const std::vector<std::pair<std::string, std::string>>& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (i) out += ',';
    out += labels[i].first + "=\"" + Escape(labels[i].second) + "\"";
  }
  return out + "}";
}

std::string Number(double v) {
  if (v == static_cast<double>(static_cast<std::int64_t>(v)) && v < 9e15 && v > -9e15) {
    return std::to_string(static_cast<std::int64_t>(v));
  }
  return fmt::format("{}", v);
}

std::string Str(const Json& metadata, const char* key) {
  auto it = metadata.find(key);
  if (it == metadata.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

double Measure(const TelemetryEvent& e, const char* key) {
  auto it = e.measurements.find(key);
  return it == e.measurements.end() ? 0.0 : it->second;
}

struct Histogram {
  explicit Histogram(const std::vector<double>* bounds) : bounds(bounds), counts(bounds->size()) {}
  void Observe(double v) {
    for (std::size_t i = 0; i < bounds->size(); ++i) {
      if (v <= (*bounds)[i]) ++counts[i];  // cumulative: every bucket at or above v
    }
    sum += v;
    ++count;
  }
  const std::vector<double>* bounds;
  std::vector<std::uint64_t> counts;
  double sum = 0;
  std::uint64_t count = 0;
};

const std::vector<double> kDurationBuckets = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                              0.5,   1,     2.5,  5,     10,   30,  60};
const std::vector<double> kBatchBuckets = {0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};

using Key = std::vector<std::string>;  // label values, in the metric's label order

}  // namespace

class MetricsImpl {
 public:
  explicit MetricsImpl(Engine& engine) : engine_(engine) {
    auto& t = engine_.telemetry();
    handlers_.push_back(t.Attach("step.stop", [this](const TelemetryEvent& e) { OnStep(e); }));
    handlers_.push_back(t.Attach("pick.stop", [this](const TelemetryEvent& e) {
      MutexLock lock(mu_);
      Hist(claim_batch_, {Str(e.metadata, "queue")}, &kBatchBuckets).Observe(Measure(e, "count"));
    }));
    auto count = [this](const char* event, const char* metric, const char* measurement,
                        std::vector<const char*> labels) {
      handlers_.push_back(engine_.telemetry().Attach(
          event,
          [this, metric, measurement, labels, name = std::string(event)](const TelemetryEvent& e) {
            if (e.name != name) return;  // prefixes match longer names too
            Key key;
            for (const char* l : labels) key.push_back(Str(e.metadata, l));
            MutexLock lock(mu_);
            // (no measurement: each event counts one)
            counters_[metric][key] += measurement == nullptr ? 1.0 : Measure(e, measurement);
          }));
    };
    count("reaper.reaped", "gen_durable_lease_reaps_total", "count", {});
    count("outcome.stale", "gen_durable_stale_outcomes_total", "count", {});
    count("gc.swept", "gen_durable_gc_deleted_total", "count", {});
    count("await.timeout", "gen_durable_await_timeouts_total", "count", {});
    count("partition.contended", "gen_durable_partition_contended_total", "count", {"queue"});
    count("rate_limit.throttled", "gen_durable_rate_limit_throttled_total", "count", {"limit"});
    count("rate_limit.rejected", "gen_durable_rate_limit_rejected_total", "count", {"limit"});
    count("rate_limit.unknown", "gen_durable_rate_limit_unknown_total", "count", {"limit"});
    count("queue.scaled", "gen_durable_queue_scaled_total", "count", {"queue", "reason"});
    count("schedule.fired", "gen_durable_schedule_fired_total", nullptr, {"name"});
    count("schedule.missed", "gen_durable_schedule_missed_total", "count", {"name"});
  }

  ~MetricsImpl() {
    for (auto id : handlers_) engine_.telemetry().Detach(id);
  }

  std::string Render();

 private:
  void OnStep(const TelemetryEvent& e) {
    const std::string fsm = Str(e.metadata, "fsm");
    MutexLock lock(mu_);
    counters_["gen_durable_steps_total"][{fsm, Str(e.metadata, "kind")}] += 1;
    Hist(step_duration_, {fsm}, &kDurationBuckets).Observe(Measure(e, "duration"));
  }

  static Histogram& Hist(std::map<Key, Histogram>& family, Key key,
                         const std::vector<double>* bounds) {
    auto it = family.find(key);
    if (it == family.end()) it = family.emplace(std::move(key), Histogram(bounds)).first;
    return it->second;
  }

  Engine& engine_;
  std::vector<Telemetry::HandlerId> handlers_;
  Mutex mu_;
  // metric name -> label values -> value.
  std::map<std::string, std::map<Key, double>> counters_ GD_GUARDED_BY(mu_);
  std::map<Key, Histogram> step_duration_ GD_GUARDED_BY(mu_);  // by fsm
  std::map<Key, Histogram> claim_batch_ GD_GUARDED_BY(mu_);    // by queue
  std::uint64_t scrape_errors_ GD_GUARDED_BY(mu_) = 0;
};

namespace {

// What each counter family means and which labels it has (besides `engine`).
struct CounterSpec {
  const char* name;
  const char* help;
  std::vector<const char*> labels;
};
const std::vector<CounterSpec> kCounters = {
    {"gen_durable_steps_total", "Steps run, by machine and outcome kind.", {"fsm", "kind"}},
    {"gen_durable_lease_reaps_total", "Rows whose lease expired, reclaimed by this node.", {}},
    {"gen_durable_stale_outcomes_total",
     "Outcomes refused by the ownership guard (the lease was lost).",
     {}},
    {"gen_durable_gc_deleted_total", "Terminal rows deleted by this node's GC.", {}},
    {"gen_durable_await_timeouts_total", "Awaits woken by their timeout.", {}},
    {"gen_durable_partition_contended_total",
     "Keyed rows a claim skipped because another claim held their partition key.",
     {"queue"}},
    {"gen_durable_rate_limit_throttled_total",
     "Claimed rows handed back because their token bucket was short.",
     {"limit"}},
    {"gen_durable_rate_limit_rejected_total",
     "Rows failed because their weight exceeds the limit's burst.",
     {"limit"}},
    {"gen_durable_rate_limit_unknown_total",
     "Rows failed because they name an unknown limit.",
     {"limit"}},
    {"gen_durable_queue_scaled_total",
     "Changes of a queue's concurrency on this node.",
     {"queue", "reason"}},
    {"gen_durable_schedule_fired_total",
     "Slots of periodic schedules this node inserted.",
     {"name"}},
    {"gen_durable_schedule_missed_total",
     "Slots of periodic schedules passed over while no node ran them (skip policy, or past "
     "the catch-up limit).",
     {"name"}},
};

void Header(std::string& out, const char* name, const char* type, const char* help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

}  // namespace

std::string MetricsImpl::Render() {
  const std::string engine = engine_.name();
  auto with_engine = [&](const std::vector<const char*>& names, const Key& values) {
    std::vector<std::pair<std::string, std::string>> labels = {{"engine", engine}};
    for (std::size_t i = 0; i < names.size() && i < values.size(); ++i) {
      labels.emplace_back(names[i], values[i]);
    }
    return labels;
  };
  std::string out;
  // Cluster gauges first, outside the lock (they read the database).
  std::vector<QueueInfo> queues;
  bool cluster_ok = true;
  try {
    queues = engine_.client().Queues();
  } catch (const std::exception&) {
    cluster_ok = false;
  }
  const auto local = engine_.Queues();
  const EngineStats stats = engine_.stats();

  Header(out, "gen_durable_up", "gauge", "1 while the engine runs.");
  out +=
      fmt::format("gen_durable_up{} {}\n", Labels({{"engine", engine}}), engine_.running() ? 1 : 0);
  Header(out, "gen_durable_node_info", "gauge", "This node's identity (always 1).");
  out += fmt::format("gen_durable_node_info{} 1\n",
                     Labels({{"engine", engine}, {"node", engine_.node_id()}}));

  if (cluster_ok) {
    Header(out, "gen_durable_queue_depth", "gauge",
           "Instances by queue and status, cluster-wide (read at scrape time).");
    for (const auto& q : queues) {
      for (const auto& [status, n] : q.counts) {
        out += fmt::format("gen_durable_queue_depth{} {}\n",
                           Labels({{"engine", engine}, {"queue", q.name}, {"status", status}}), n);
      }
    }
    Header(out, "gen_durable_queue_paused", "gauge", "1 when the queue is paused cluster-wide.");
    for (const auto& q : queues) {
      out += fmt::format("gen_durable_queue_paused{} {}\n",
                         Labels({{"engine", engine}, {"queue", q.name}}), q.paused ? 1 : 0);
    }
    Header(out, "gen_durable_queue_global_limit", "gauge",
           "The queue's cluster-wide limit of steps executing at once (only queues with one).");
    for (const auto& q : queues) {
      if (!q.global_limit) continue;
      out += fmt::format("gen_durable_queue_global_limit{} {}\n",
                         Labels({{"engine", engine}, {"queue", q.name}}), *q.global_limit);
    }
    Header(out, "gen_durable_queue_oldest_ready_seconds", "gauge",
           "Age of the queue's oldest ready instance (0 when none is ready).");
    for (const auto& q : queues) {
      out += fmt::format("gen_durable_queue_oldest_ready_seconds{} {}\n",
                         Labels({{"engine", engine}, {"queue", q.name}}),
                         Number(q.oldest_ready_ms.value_or(0) / 1000.0));
    }
  }
  Header(out, "gen_durable_queue_concurrency", "gauge", "Slots of the queue on this node.");
  for (const auto& [q, s] : local) {
    out += fmt::format("gen_durable_queue_concurrency{} {}\n",
                       Labels({{"engine", engine}, {"queue", q}}), s.concurrency);
  }
  Header(out, "gen_durable_queue_in_flight", "gauge", "Steps of the queue running on this node.");
  for (const auto& [q, s] : local) {
    out += fmt::format("gen_durable_queue_in_flight{} {}\n",
                       Labels({{"engine", engine}, {"queue", q}}), s.in_flight);
  }

  const std::pair<const char*, std::int64_t> totals[] = {
      {"gen_durable_claimed_total", stats.claimed},
      {"gen_durable_outcomes_committed_total", stats.committed},
      {"gen_durable_group_commits_total", stats.flushes},
  };
  const char* totals_help[] = {"Rows claimed by this node.", "Outcomes committed by this node.",
                               "Group commits (one transaction each) by this node."};
  for (std::size_t i = 0; i < std::size(totals); ++i) {
    Header(out, totals[i].first, "counter", totals_help[i]);
    out +=
        fmt::format("{}{} {}\n", totals[i].first, Labels({{"engine", engine}}), totals[i].second);
  }

  MutexLock lock(mu_);
  if (!cluster_ok) ++scrape_errors_;
  for (const auto& spec : kCounters) {
    Header(out, spec.name, "counter", spec.help);
    const auto family = counters_.find(spec.name);
    if (family == counters_.end() || family->second.empty()) {
      if (spec.labels.empty()) {
        out += fmt::format("{}{} 0\n", spec.name, Labels({{"engine", engine}}));
      }
      continue;
    }
    for (const auto& [key, v] : family->second) {
      out += fmt::format("{}{} {}\n", spec.name, Labels(with_engine(spec.labels, key)), Number(v));
    }
  }
  auto histogram = [&](const char* name, const char* help, const char* label,
                       const std::map<Key, Histogram>& family) {
    Header(out, name, "histogram", help);
    for (const auto& [key, h] : family) {
      auto labels = with_engine({label}, key);
      for (std::size_t i = 0; i < h.bounds->size(); ++i) {
        auto with_le = labels;
        with_le.emplace_back("le", Number((*h.bounds)[i]));
        out += fmt::format("{}_bucket{} {}\n", name, Labels(with_le), h.counts[i]);
      }
      auto inf = labels;
      inf.emplace_back("le", "+Inf");
      out += fmt::format("{}_bucket{} {}\n", name, Labels(inf), h.count);
      out += fmt::format("{}_sum{} {}\n", name, Labels(labels), Number(h.sum));
      out += fmt::format("{}_count{} {}\n", name, Labels(labels), h.count);
    }
  };
  histogram("gen_durable_step_duration_seconds", "How long steps ran, by machine.", "fsm",
            step_duration_);
  histogram("gen_durable_claim_batch_size", "Rows per claim statement, by queue.", "queue",
            claim_batch_);
  Header(out, "gen_durable_scrape_errors_total", "counter",
         "Renders whose cluster gauges could not be read from the database.");
  out += fmt::format("gen_durable_scrape_errors_total{} {}\n", Labels({{"engine", engine}}),
                     scrape_errors_);
  return out;
}

}  // namespace detail

Metrics::Metrics(Engine& engine) : impl_(std::make_unique<detail::MetricsImpl>(engine)) {}
Metrics::~Metrics() = default;
std::string Metrics::Render() { return impl_->Render(); }

MetricsServer::MetricsServer(std::unique_ptr<detail::HttpServerImpl> impl)
    : impl_(std::move(impl)) {}
MetricsServer::~MetricsServer() { Stop(); }

std::unique_ptr<MetricsServer> MetricsServer::Start(Metrics& metrics,
                                                    const MetricsServerOptions& options) {
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::make_unique<detail::HttpServerImpl>(
      options.security, options.bind, options.port,
      [&metrics](httplib::Server& server, const detail::HttpGuard&) {
        server.Get("/metrics", [&metrics](const httplib::Request&, httplib::Response& res) {
          res.set_content(metrics.Render(), "text/plain; version=0.0.4; charset=utf-8");
        });
      })));
}

int MetricsServer::port() const { return impl_->port(); }
void MetricsServer::Stop() {
  if (impl_) impl_->Stop();
}

}  // namespace gen_durable
