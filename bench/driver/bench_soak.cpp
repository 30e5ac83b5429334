// The soak scenario: a steady mixed load sampled as it runs, and the verdict on whether each
// series levels off (see bench_driver.hpp).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <thread>

#include "bench_driver.hpp"  // bench/driver/
#include "bench_run.hpp"     // bench/driver/

namespace gen_durable::benchmark {

Run::SoakReading Run::ReadCounters() const {
  SoakReading r;
  r.at = Clock::now();
  r.sent = shared().sent.load();
  r.finished = shared().finished.load();
  for (int i = 0; i < args_.nodes; ++i) {
    r.steps += shared().steps[i].load();
    r.gc_deleted += shared().gc_deleted[i].load();
  }
  r.latency = shared().soak_latency.Snapshot();
  return r;
}

std::optional<double> Run::BackendAnonMb() {
  if (!server_local_) return std::nullopt;
  std::int64_t kb = 0;
  for (const std::int64_t pid : store_.BackendPids(*conn_)) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("RssAnon:", 0) == 0) {
        kb += std::stoll(line.substr(8));
        break;
      }
    }
  }
  return static_cast<double>(kb) / 1024.0;
}

Json Run::SoakSample(const SoakReading& prev, const SoakReading& now, double elapsed_s) {
  const double dt = std::chrono::duration<double>(now.at - prev.at).count();
  Json j = {{"type", "sample"}, {"elapsed_s", Round(elapsed_s, 1)}};
  const auto sent = now.sent - prev.sent;
  const auto completed = now.finished - prev.finished;
  j["sent"] = sent;
  j["offered_per_s"] = Round(static_cast<double>(sent) / dt, 1);
  j["completed"] = completed;
  j["completed_per_s"] = Round(static_cast<double>(completed) / dt, 1);
  j["steps_per_s"] = Round(static_cast<double>(now.steps - prev.steps) / dt, 1);
  const BenchStore::Backlog backlog = store_.ReadBacklog(*conn_);
  j["backlog"] = backlog.ready;
  j["parked"] = backlog.parked;
  std::vector<std::int64_t> latency(now.latency.size());
  for (std::size_t i = 0; i < latency.size(); ++i) latency[i] = now.latency[i] - prev.latency[i];
  j["p50_ms"] = Round(HistogramPercentile(latency, 0.50), 2);
  j["p99_ms"] = Round(HistogramPercentile(latency, 0.99), 2);
  Json nodes = Json::array();
  for (int i = 0; i < args_.nodes; ++i) {
    nodes.push_back(Round(static_cast<double>(shared().rss_kb[i].load()) / 1024.0, 1));
  }
  j["rss_mb"] = Round(static_cast<double>(RssSumKb()) / 1024.0, 1);
  j["node_rss_mb"] = std::move(nodes);
  j["load_rss_mb"] = Round(static_cast<double>(shared().load_rss_kb.load()) / 1024.0, 1);
  if (const auto pg_mb = BackendAnonMb()) j["pg_backend_mb"] = Round(*pg_mb, 1);
  const BenchStore::TableStats db = store_.ReadTableStats(*conn_);
  j["connections"] = db.connections;
  j["live_tuples"] = db.live_tuples;
  j["dead_tuples"] = db.dead_tuples;
  j["autovacuum_count"] = db.autovacuum_count;
  j["table_mb"] = Round(static_cast<double>(db.table_bytes) / 1048576.0, 2);
  j["indexes_mb"] = Round(static_cast<double>(db.indexes_bytes) / 1048576.0, 2);  // of table_mb
  j["signals_dead_tuples"] = db.signals_dead_tuples;
  j["signals_mb"] = Round(static_cast<double>(db.signals_bytes) / 1048576.0, 2);
  j["gc_deleted"] = now.gc_deleted - prev.gc_deleted;
  fmt::print("{}\n", j.dump());
  std::fflush(stdout);
  return j;
}

void Run::SleepUntil(Clock::time_point t) const {
  while (Clock::now() < t) {
    Check();
    std::this_thread::sleep_for(std::min<Clock::duration>(Millis{50}, t - Clock::now()));
  }
}

std::vector<LevelRule> Run::SoakRules() const {
  const double rate = args_.rate;
  return {
      // Sums over the nodes: allocator arenas and caches fill early, then stay.
      {"rss_mb", LevelRule::kMustNotGrow, LevelRule::kMedian, 2.0 * args_.nodes},
      {"load_rss_mb", LevelRule::kMustNotGrow, LevelRule::kMedian, 2.0},
      {"pg_backend_mb", LevelRule::kMustNotGrow, LevelRule::kMedian, 4.0},
      {"connections", LevelRule::kMustNotGrow, LevelRule::kMedian, 1.0},
      // GC deletes in sweeps: the live rows saw-tooth with the GC interval.
      {"live_tuples", LevelRule::kMustNotGrow, LevelRule::kMedian, 1'000.0},
      // Dead tuples saw-tooth with autovacuum (a minute apart by default): the peaks.
      {"dead_tuples", LevelRule::kMustNotGrow, LevelRule::kMax, 1'000.0},
      {"table_mb", LevelRule::kMustNotGrow, LevelRule::kMax, 1.0},
      {"signals_mb", LevelRule::kMustNotGrow, LevelRule::kMax, 1.0},
      // Half a second of load: the backlog breathes with claim batches and commits.
      {"backlog", LevelRule::kMustNotGrow, LevelRule::kMedian, std::max(100.0, rate / 2)},
      {"completed_per_s", LevelRule::kMustNotDrop, LevelRule::kMedian, std::max(5.0, rate * 0.02)},
  };
}

Json Run::SoakVerdict(const std::vector<Json>& samples, double from_s) const {
  Json series = Json::object();
  bool all = true;
  bool judged = true;
  for (const LevelRule& rule : SoakRules()) {
    std::vector<double> values;
    for (const Json& s : samples) {
      if (s.at("elapsed_s").get<double>() > from_s && s.contains(rule.series)) {
        values.push_back(s.at(rule.series).get<double>());
      }
    }
    if (values.empty()) continue;  // not measured here (pg_backend_mb on a remote server)
    const LevelVerdict v = Judge(values, rule);
    Json j = {{"samples", values.size()},
              {"stat", rule.statistic == LevelRule::kMax ? "max" : "median"},
              {"earlier", Round(v.earlier, 2)},
              {"later", Round(v.later, 2)},
              {"change", Round(v.change, 2)},
              {"allowed", Round(v.allowed, 2)}};
    if (rule.direction == LevelRule::kMustNotDrop) j["must_not"] = "drop";
    j["levels_off"] = v.judged ? Json(v.levels_off) : Json(nullptr);
    series[rule.series] = std::move(j);
    judged = judged && v.judged;
    all = all && (!v.judged || v.levels_off);
  }
  Json out = {{"series", std::move(series)}};
  out["levels_off"] = !all ? Json(false) : judged ? Json(true) : Json(nullptr);
  return out;
}

Json Run::Soak() {
  {
    // Our own session's server process: is it a postgres process of this machine?
    const auto pid = store_.BackendPid(*conn_);
    std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline");
    std::string head;
    std::getline(cmdline, head, '\0');
    server_local_ = head.rfind("postgres", 0) == 0;
  }
  Go();
  WaitStarted();
  std::this_thread::sleep_for(Millis{200});  // the engines' first idle poll is behind them
  const SoakReading first = ReadCounters();
  const auto start = first.at;
  shared().go_load.store(1);
  const auto sample =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(args_.sample_s));
  const auto n_samples = static_cast<int>(std::floor(args_.duration_s / args_.sample_s + 1e-9));
  std::vector<Json> samples;
  SoakReading prev = first;
  for (int k = 1; k <= n_samples; ++k) {
    SleepUntil(start + k * sample);
    SoakReading now = ReadCounters();
    samples.push_back(SoakSample(prev, now, std::chrono::duration<double>(now.at - start).count()));
    prev = std::move(now);
  }
  while (shared().load_done.load() == 0) {
    Check();
    std::this_thread::sleep_for(Millis{10});
  }
  // Drain: every instance sent finished, nothing left waiting.
  const auto load_end = Clock::now();
  const std::int64_t sent = shared().sent.load();
  bool drained = false;
  while (Clock::now() < load_end + kSoakDrainLimit) {
    Check();
    if (shared().finished.load() >= sent) {
      const BenchStore::Backlog backlog = store_.ReadBacklog(*conn_);
      if (backlog.ready + backlog.parked + backlog.scheduled == 0) {
        drained = true;
        break;
      }
    }
    std::this_thread::sleep_for(Millis{20});
  }
  const SoakReading last = ReadCounters();
  const double load_s =
      static_cast<double>(shared().load_end_us.load() - shared().load_start_us.load()) / 1e6;
  // Judged once the warm-up (the first third) is over and GC has had time to delete: rows
  // finished at the start must have passed the retention and met a sweep.
  double from_s = args_.duration_s / 3;
  if (args_.gc_interval_ms > 0) {
    from_s =
        std::max(from_s, static_cast<double>(args_.gc_retention_ms + args_.gc_interval_ms) / 1e3);
  }
  Json out = Base();
  out["type"] = "summary";
  out["rate"] = args_.rate;
  out["duration_s"] = args_.duration_s;
  out["sample_s"] = args_.sample_s;
  out["settings"]["gc_retention_ms"] = args_.gc_retention_ms;
  out["settings"]["gc_interval_ms"] = args_.gc_interval_ms;
  out["settings"]["reap_interval_ms"] = kSoakReapInterval.count();
  out["mix"] = {{"job", kSoakMix - 3},
                {"chain", 1},
                {"signalled_wait", 1},
                {"fanout", 1},
                {"chain_steps", kSoakChainSteps},
                {"fanout_children", kSoakFanoutChildren}};
  out["samples"] = samples.size();
  out["sent"] = sent;
  out["offered_per_s"] = Round(static_cast<double>(sent) / load_s, 1);
  out["completed"] = last.finished - first.finished;
  out["steps"] = last.steps - first.steps;
  out["gc_deleted"] = last.gc_deleted - first.gc_deleted;
  std::int64_t stale = 0;
  std::int64_t reaped = 0;
  for (int i = 0; i < args_.nodes; ++i) {
    stale += shared().stale[i].load();
    reaped += shared().reaped[i].load();
  }
  out["stale"] = stale;
  out["reaped"] = reaped;
  out["drained"] = drained;
  out["drain_s"] = Round(std::chrono::duration<double>(last.at - load_end).count(), 2);
  out["p50_ms"] = Round(HistogramPercentile(last.latency, 0.50), 2);
  out["p99_ms"] = Round(HistogramPercentile(last.latency, 0.99), 2);
  out["judged_from_s"] = Round(from_s, 1);
  Json verdict = SoakVerdict(samples, from_s);
  out["series"] = std::move(verdict["series"]);
  out["levels_off"] = std::move(verdict["levels_off"]);
  return out;
}

std::string SoakFailure(const Json& summary) {
  std::string why;
  if (!summary.at("drained").get<bool>()) why = "the load did not drain; ";
  if (summary.at("levels_off").is_null()) {
    why += fmt::format("too few samples after {} s to judge the levelling",
                       summary.at("judged_from_s").dump());
  } else if (!summary.at("levels_off").get<bool>()) {
    std::string growing;
    for (const auto& [name, v] : summary.at("series").items()) {
      if (v.at("levels_off") == Json(false)) growing += (growing.empty() ? "" : ", ") + name;
    }
    why += "did not level off: " + growing;
  }
  if (why.size() >= 2 && why.compare(why.size() - 2, 2, "; ") == 0) why.resize(why.size() - 2);
  return why;
}

}  // namespace gen_durable::benchmark
