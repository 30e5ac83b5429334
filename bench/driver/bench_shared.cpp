// What the processes of a benchmark run share (see bench_shared.hpp).
#include "bench_shared.hpp"  // bench/driver/

#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <new>
#include <stdexcept>
#include <thread>

#include "gen_durable/util/text.hpp"

namespace gen_durable::benchmark {

namespace {

Shared* g_shared = nullptr;

}  // namespace

Shared& shared() { return *g_shared; }

void MapShared() {
  void* mem = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) throw std::runtime_error("mmap failed");
  g_shared = new (mem) Shared;  // the mapping is zeroed: no need to touch every page
}

// The p-quantile (0..1) of bucket counts, in milliseconds; 0 when empty.
double HistogramPercentile(const std::vector<std::int64_t>& counts, double p) {
  std::int64_t total = 0;
  for (auto c : counts) total += c;
  if (total == 0) return 0;
  const auto rank = std::max<std::int64_t>(
      1, static_cast<std::int64_t>(std::ceil(p * static_cast<double>(total))));
  std::int64_t seen = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    seen += counts[i];
    if (seen >= rank) return Histogram::Ms(static_cast<int>(i));
  }
  return Histogram::Ms(Histogram::kBuckets - 1);
}

std::int64_t RssKb() {
  std::ifstream statm("/proc/self/statm");
  std::int64_t size = 0;
  std::int64_t resident = 0;
  statm >> size >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

// Ends a child process that failed: its reason on stderr, the parent told.
[[noreturn]] void ChildFailed(const std::string& who, const std::exception& e) {
  fmt::print(stderr, "gen_durable bench: {}: {}\n", who, detail::OneLine(e.what()));
  shared().failed.store(1);
  std::fflush(stderr);
  std::_Exit(1);
}

bool WaitFlag(const std::atomic<int>& flag) {
  while (flag.load() == 0) {
    if (shared().stop.load() != 0) return false;
    std::this_thread::sleep_for(kChildPoll);
  }
  return true;
}

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(rank, sorted.size() - 1)];
}

void AddLatency(Json& out, const std::vector<double>& sorted) {
  out["samples"] = sorted.size();
  out["p50_ms"] = Percentile(sorted, 0.50);
  out["p90_ms"] = Percentile(sorted, 0.90);
  out["p99_ms"] = Percentile(sorted, 0.99);
  out["max_ms"] = sorted.empty() ? 0.0 : sorted.back();
}

double Round(double v, int digits) {
  const double scale = std::pow(10.0, digits);
  return std::round(v * scale) / scale;
}

}  // namespace gen_durable::benchmark
