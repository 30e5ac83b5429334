// The child processes of a benchmark run and the pacing of their loads (see
// bench_processes.hpp).
#include "bench_processes.hpp"  // bench/driver/

#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "bench_machines.hpp"  // bench/driver/
#include "gen_durable/gen_durable.hpp"

namespace gen_durable::benchmark {

std::unique_ptr<Client> ConnectClient(const std::string& conninfo, const std::string& schema,
                                      int pool_size) {
  ClientOptions co;
  co.database = conninfo;
  co.schema = schema;
  co.pool_size = pool_size;
  return Client::Connect(co);
}

void Paced(std::int64_t total, int rate, const std::function<void(std::int64_t)>& send,
           int threads_n) {
  std::atomic<std::int64_t> next{0};
  std::exception_ptr error;
  std::mutex error_mu;
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < threads_n; ++t) {
    threads.emplace_back([&] {
      try {
        for (std::int64_t i; (i = next.fetch_add(1)) < total;) {
          std::this_thread::sleep_until(start + std::chrono::microseconds(i * 1'000'000 / rate));
          send(i);
        }
      } catch (...) {
        std::lock_guard lock(error_mu);
        if (!error) error = std::current_exception();
        next.store(total);  // the others stop too
      }
    });
  }
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
}

[[noreturn]] void NodeMain(int index, const BenchArgs& args, const std::string& conninfo,
                           const std::string& schema) {
  if (!WaitFlag(shared().go_nodes)) std::_Exit(0);
  try {
    EngineOptions o;
    o.database = conninfo;
    o.schema = schema;
    o.name = "bench";
    o.queues = {{kQueue, QueueConfig{args.concurrency}}};
    o.prefetch = args.prefetch;
    o.inline_next = args.inline_next;
    o.history = args.history;
    if (args.scenario == "soak") {
      // A short retention, swept often, so that the table reaches a steady size.
      o.gc = args.gc_interval_ms > 0;
      if (o.gc) o.gc_interval = Millis{args.gc_interval_ms};
      o.gc_retention = Millis{args.gc_retention_ms};
      o.reap_interval = kSoakReapInterval;
    } else {
      o.gc = false;  // the retained rows are part of what `large` measures
    }
    auto engine = Engine::Start(o);
    shared().started.fetch_add(1);
    while (shared().stop.load() == 0) {
      shared().rss_kb[index].store(RssKb());
      const EngineStats st = engine->stats();
      shared().steps[index].store(st.steps);
      shared().gc_deleted[index].store(st.gc_deleted);
      shared().stale[index].store(st.stale);
      shared().reaped[index].store(st.reaped);
      std::this_thread::sleep_for(kChildPoll);
    }
    engine->Stop();
  } catch (const std::exception& e) {
    ChildFailed(fmt::format("node {}", index), e);
  }
  std::_Exit(0);
}

[[noreturn]] void LoadMain(const BenchArgs& args, const std::string& conninfo,
                           const std::string& schema) {
  if (!WaitFlag(shared().go_load)) std::_Exit(0);
  try {
    auto client = ConnectClient(conninfo, schema, kPacedThreads);
    shared().load_start_us.store(NowMicros());
    Paced(static_cast<std::int64_t>(args.rate * args.duration_s), args.rate, [&](std::int64_t) {
      InsertOptions io;
      const std::int64_t t = NowMicros();
      io.state = {{"t", t}};
      client->Insert("bench.latency", std::move(io)).value();
      shared().inserts.Record(t);
    });
    shared().load_end_us.store(NowMicros());
    shared().load_done.store(1);
  } catch (const std::exception& e) {
    ChildFailed("load", e);
  }
  std::_Exit(0);
}

[[noreturn]] void SoakLoadMain(const BenchArgs& args, const std::string& conninfo,
                               const std::string& schema) {
  if (!WaitFlag(shared().go_load)) std::_Exit(0);
  try {
    auto client = ConnectClient(conninfo, schema, kSoakThreads);
    shared().load_rss_kb.store(RssKb());
    shared().load_start_us.store(NowMicros());
    const auto ticks = static_cast<std::int64_t>(args.duration_s * kSoakTicksPerS);
    // Instances [first(k), first(k + 1)) are due in tick k.
    const auto first = [&](std::int64_t k) { return k * args.rate / kSoakTicksPerS; };
    Paced(
        ticks, kSoakTicksPerS,
        [&](std::int64_t k) {
          std::vector<InsertRequest> batch;
          const std::int64_t t = NowMicros();
          for (std::int64_t i = first(k); i < first(k + 1); ++i) {
            InsertRequest r{"bench.soak_job", {}, {}};
            switch (i % kSoakMix) {
              case 5:
                r.fsm = "bench.chain";
                r.options.state = tools::ChainState{kSoakChainSteps, 0};
                break;
              case 10:
                r.fsm = "bench.soak_wait";
                break;
              case 15:
                r.fsm = "bench.fanout";
                r.options.state = FanoutState{kSoakFanoutChildren};
                break;
              default:
                r.options.state = {{"t", t}};
            }
            batch.push_back(std::move(r));
          }
          if (batch.empty()) return;
          const std::vector<std::int64_t> ids = client->InsertAll(batch);
          if (ids.size() != batch.size()) throw std::runtime_error("an insert was dropped");
          for (std::size_t j = 0; j < batch.size(); ++j) {
            if (batch[j].fsm == "bench.soak_wait") client->Signal(ids[j], "go", Json{}).value();
          }
          shared().sent.fetch_add(static_cast<std::int64_t>(batch.size()));
          if (k % kSoakTicksPerS == 0) shared().load_rss_kb.store(RssKb());
        },
        kSoakThreads);
    shared().load_end_us.store(NowMicros());
    shared().load_done.store(1);
    // The sessions stay open until the end, so that the last samples count them as before.
    while (shared().stop.load() == 0) std::this_thread::sleep_for(Millis{10});
  } catch (const std::exception& e) {
    ChildFailed("load", e);
  }
  std::_Exit(0);
}

void Children::StopAll() {
  shared().stop.store(1);
  for (pid_t pid : nodes) Reap(pid, true);
  if (load > 0) Reap(load, false);
  nodes.clear();
  load = -1;
}

void Children::Reap(pid_t pid, bool node) {
  int status = 0;
  rusage ru{};
  while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
  }
  if (!node) return;
  node_cpu_s += static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  max_rss_kb = std::max(max_rss_kb, ru.ru_maxrss);
}

}  // namespace gen_durable::benchmark
