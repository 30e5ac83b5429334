// `gen_durable demo`: a self-contained tour of the engine on the demo machines.
#include "gen_durable/demo.hpp"  // tools/

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "gen_durable/demo_machines.hpp"  // tools/
#include "gen_durable/engine.hpp"
#include "gen_durable/error.hpp"

namespace gen_durable::tools {

namespace {

using Clock = std::chrono::steady_clock;

// Redraw period on a terminal, and line period otherwise (a log is not an animation).
constexpr Millis kTtyTick{200};
constexpr Millis kPlainPeriod{1'000};

// The mix, in proportion 20:5:2:2 (200 / 50 / 20 / 20 for the default count). Some demo.flaky
// instances fail more often than their max_attempts (5) allows, so the demo shows failures too.
std::vector<InsertRequest> DemoMix(int count, const std::string& queue) {
  const int chains = count * 5 / 29;
  const int sleeps = count * 2 / 29;
  const int flakies = count * 2 / 29;
  const int noops = count - chains - sleeps - flakies;
  std::vector<InsertRequest> mix;
  mix.reserve(static_cast<std::size_t>(count));
  auto add = [&](const char* fsm, Json state) {
    InsertRequest r;
    r.fsm = fsm;
    r.options.state = std::move(state);
    r.options.queue = queue;
    mix.push_back(std::move(r));
  };
  for (int i = 0; i < noops; ++i) add("demo.noop", Json::object());
  for (int i = 0; i < chains; ++i) add("demo.chain", {{"steps", 5}});
  for (int i = 0; i < sleeps; ++i) add("demo.sleep", {{"ms", 50 + (i * 37) % 151}});
  for (int i = 0; i < flakies; ++i) add("demo.flaky", {{"fail_times", i % 7}});
  // Interleaved (with a fixed seed, so runs compare), so every kind shows up from the start.
  std::shuffle(mix.begin(), mix.end(), std::mt19937(29));
  return mix;
}

// Columns of the terminal on stderr; a redrawn line that wraps would scroll instead.
std::size_t TerminalWidth() {
  winsize ws{};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

std::int64_t CountOf(const std::map<std::string, std::int64_t>& counts, const char* status) {
  auto it = counts.find(status);
  return it == counts.end() ? 0 : it->second;
}

struct Progress {
  std::int64_t total = 0;
  std::int64_t runnable = 0;
  std::int64_t executing = 0;
  std::int64_t done = 0;
  std::int64_t failed = 0;
  std::int64_t cancelled = 0;
  std::int64_t terminal() const { return done + failed + cancelled; }
};

// The most telling numbers first: a narrow terminal cuts the line's tail.
std::string ProgressLine(const Progress& p, double elapsed_s, std::int64_t steps, bool bar) {
  const double fraction =
      p.total == 0 ? 1.0 : static_cast<double>(p.terminal()) / static_cast<double>(p.total);
  std::string line = "demo:";
  if (bar) {
    constexpr int kWidth = 20;
    const int filled = static_cast<int>(fraction * kWidth);
    line += fmt::format(" [{}{}]", std::string(filled, '#'), std::string(kWidth - filled, '.'));
  }
  line += fmt::format(
      " {:3.0f}% {}/{}  runnable {}  executing {}  done {}  failed {}  {:.1f} s  {:.0f} steps/s",
      fraction * 100, p.terminal(), p.total, p.runnable, p.executing, p.done, p.failed, elapsed_s,
      elapsed_s > 0 ? static_cast<double>(steps) / elapsed_s : 0.0);
  return line;
}

// The two flows the demo runs beside the mix: a checkout that parks until the demo sends it a
// signal, and a fan-out that joins its children.
class Flows {
 public:
  static constexpr int kFanoutChildren = 10;
  static constexpr int kFanoutFailEvery = 4;  // children 4 and 8 fail: {done: 8, failed: 2}

  // Inserts both on `queue`; the checkout holds a unique key derived from it (signal address).
  Flows(Client& client, const std::string& queue) : client_(client), key_("checkout:" + queue) {
    InsertOptions checkout;
    checkout.queue = queue;
    checkout.state = {{"order", kOrder}};
    checkout.unique_key = key_;
    checkout_id_ = Inserted(client_.Insert("demo.checkout", std::move(checkout)));
    InsertOptions fanout;
    fanout.queue = queue;
    fanout.state = {{"n", kFanoutChildren}, {"fail_every", kFanoutFailEvery}};
    fanout_id_ = Inserted(client_.Insert("demo.fanout", std::move(fanout)));
  }

  // Reads both flows; sends the payment once the checkout awaits it. `say` prints a note.
  template <typename Say>
  void Poll(const Say& say) {
    checkout_ = Read(checkout_id_);
    fanout_ = Read(fanout_id_);
    if (!signal_id_ && checkout_.status == "awaiting_signal") {
      say(
          fmt::format("checkout #{} (order {}) is awaiting_signal at step {}; sending "
                      "payment_confirmed to unique key {}",
                      checkout_id_, kOrder, checkout_.step, key_));
      SignalOptions options;
      options.dedup_key = "demo-payment";  // a re-send would be a no-op
      Result<std::int64_t> id = client_.SignalByKey(key_, "payment_confirmed", Payment(), options);
      if (!id) throw Error(fmt::format("demo: signalling the checkout: {}", id.error().message));
      signal_id_ = *id;
    }
    if (!checkout_done_ && IsTerminalStatus(checkout_.status)) {
      checkout_done_ = true;
      say(fmt::format("checkout #{} {}: {}", checkout_id_, checkout_.status, Ending(checkout_)));
    }
    if (!fanout_done_ && IsTerminalStatus(fanout_.status)) {
      fanout_done_ = true;
      say(fmt::format("fan-out #{} {} after joining {} children: {}", fanout_id_, fanout_.status,
                      fanout_.children.size(), Ending(fanout_)));
    }
  }

  bool finished() const { return checkout_done_ && fanout_done_; }

  std::string Pending() const {
    std::vector<std::string> pending;
    if (!checkout_done_) pending.push_back(fmt::format("checkout {}", checkout_.status));
    if (!fanout_done_) pending.push_back(fmt::format("fan-out {}", fanout_.status));
    return pending.empty() ? "none" : fmt::format("{}", fmt::join(pending, ", "));
  }

  Json ToJson() const {
    return {{"checkout",
             {{"id", checkout_id_},
              {"status", checkout_.status},
              {"unique_key", key_},
              {"signal_id", signal_id_ ? Json(*signal_id_) : Json(nullptr)},
              {"result", checkout_.result}}},
            {"fanout",
             {{"id", fanout_id_},
              {"status", fanout_.status},
              {"children", fanout_.children.size()},
              {"result", fanout_.result}}}};
  }

  void PrintSummary() const {
    fmt::print("  checkout   #{} {}{}: {}\n", checkout_id_, checkout_.status,
               signal_id_ ? fmt::format(" after signal #{}", *signal_id_) : std::string(),
               Ending(checkout_));
    fmt::print("  fan-out    #{} {}, {} children joined: {}\n", fanout_id_, fanout_.status,
               fanout_.children.size(), Ending(fanout_));
  }

 private:
  static constexpr const char* kOrder = "A-1001";

  static Json Payment() { return {{"amount_cents", 4200}, {"method", "card"}}; }

  static std::int64_t Inserted(const Result<std::int64_t>& id) {
    if (!id) throw Error(fmt::format("demo: insert refused: {}", id.error().message));
    return *id;
  }

  static std::string Ending(const InstanceInfo& info) {
    if (!info.result.is_null()) return info.result.dump();
    return info.last_error.value_or("-");
  }

  InstanceInfo Read(std::int64_t id) {
    std::optional<InstanceInfo> info = client_.Get(id);
    if (!info) throw Error(fmt::format("demo: instance {} disappeared", id));
    return std::move(*info);
  }

  Client& client_;
  const std::string key_;
  std::int64_t checkout_id_ = 0;
  std::int64_t fanout_id_ = 0;
  std::optional<std::int64_t> signal_id_;
  InstanceInfo checkout_;
  InstanceInfo fanout_;
  bool checkout_done_ = false;
  bool fanout_done_ = false;
};

}  // namespace

int RunDemo(const GlobalOptions& global, const DemoArgs& args) {
  if (args.count < 1) throw UsageError("--count must be >= 1");
  if (args.timeout_s < 1) throw UsageError("--timeout must be >= 1");

  RegisterDemoMachines();
  Session session(global);
  Client& client = session.client();

  // A queue of its own makes this run's counts one lookup, and leaves other work alone.
  const std::string queue = fmt::format(
      "demo-{}",
      std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  EngineOptions options;
  options.name = "gen_durable-demo";
  options.database = session.conninfo();
  options.schema = session.schema();
  // The checkout and the fan-out (with its children) run on a queue of their own, so the mix's
  // counts stay the mix's.
  const std::string flows_queue = queue + "-flows";
  options.queues = {{queue, QueueConfig{8}}, {flows_queue, QueueConfig{4}}};
  options.poll_interval = Millis{100};
  options.max_poll_interval = Millis{1'000};
  options.reap_interval = Millis{1'000};
  options.lease_ttl = Millis{5'000};
  options.heartbeat_interval = Millis{1'000};
  options.drain_timeout = Millis{2'000};

  // Taken by sigtimedwait below, so Ctrl-C stops the engine cleanly instead of killing it.
  const sigset_t signals = BlockTerminationSignals();
  std::unique_ptr<Engine> engine = Engine::Start(options);

  const std::vector<InsertRequest> mix = DemoMix(args.count, queue);
  const auto start = Clock::now();
  const std::vector<std::int64_t> ids = client.InsertAll(mix);
  Flows flows(client, flows_queue);
  fmt::print(stderr,
             "gen_durable demo: inserted {} instances on queue {}, a demo.checkout and a "
             "demo.fanout ({} children) on queue {} (node {})\n",
             ids.size(), queue, Flows::kFanoutChildren, flows_queue, engine->node_id());

  const bool tty = isatty(STDERR_FILENO) != 0;
  // A note on its own line; on a terminal it first clears the progress line it replaces.
  auto say = [tty](const std::string& note) {
    fmt::print(stderr, "{}gen_durable demo: {}\n", tty ? "\r\x1b[K" : "", note);
  };
  const auto deadline = start + std::chrono::seconds(args.timeout_s);
  auto last_line = start - kPlainPeriod;
  Progress p;
  p.total = static_cast<std::int64_t>(ids.size());
  int signal_received = 0;
  double elapsed_s = 0;
  for (;;) {
    const StatusCounts counts = client.Counts();
    const auto it = counts.queues.find(queue);
    const std::map<std::string, std::int64_t> none;
    const auto& mine = it == counts.queues.end() ? none : it->second;
    p.runnable = CountOf(mine, "runnable");
    p.executing = CountOf(mine, "executing");
    p.done = CountOf(mine, "done");
    p.failed = CountOf(mine, "failed");
    p.cancelled = CountOf(mine, "cancelled");
    flows.Poll(say);
    const auto now = Clock::now();
    elapsed_s = std::chrono::duration<double>(now - start).count();
    const bool finished = p.terminal() >= p.total && flows.finished();
    if (tty) {
      std::string line = ProgressLine(p, elapsed_s, engine->stats().steps, true);
      line.resize(std::min(line.size(), TerminalWidth() - 1));
      fmt::print(stderr, "\r\x1b[K{}", line);
      if (finished) fmt::print(stderr, "\n");
    } else if (finished || now - last_line >= kPlainPeriod) {
      fmt::print(stderr, "{}\n", ProgressLine(p, elapsed_s, engine->stats().steps, false));
      last_line = now;
    }
    if (finished) break;
    if (now >= deadline) {
      if (tty) fmt::print(stderr, "\n");
      engine->Stop();
      throw Error(fmt::format(
          "demo timed out after {} s: {} of {} instances not terminal; flows pending: {}",
          args.timeout_s, p.total - p.terminal(), p.total, flows.Pending()));
    }
    timespec tick{0, std::chrono::duration_cast<std::chrono::nanoseconds>(kTtyTick).count()};
    const int sig = sigtimedwait(&signals, nullptr, &tick);
    if (sig > 0) {
      signal_received = sig;
      break;
    }
  }
  engine->Stop();
  if (signal_received != 0) {
    if (tty) fmt::print(stderr, "\n");
    throw Error(fmt::format("demo interrupted by {} with {} of {} instances not terminal",
                            signal_received == SIGINT ? "SIGINT" : "SIGTERM",
                            p.total - p.terminal(), p.total));
  }

  const std::int64_t steps = engine->stats().steps;
  const double rate = elapsed_s > 0 ? static_cast<double>(steps) / elapsed_s : 0.0;
  std::optional<InstanceInfo> failed_sample;
  if (p.failed > 0) {
    ListFilter filter;
    filter.status = "failed";
    filter.queue = queue;
    filter.limit = 1;
    auto rows = client.List(filter);
    if (!rows.empty()) failed_sample = std::move(rows.front());
  }
  if (global.json) {
    Json sample = nullptr;
    if (failed_sample) {
      sample = {{"id", failed_sample->id},
                {"fsm", failed_sample->fsm},
                {"last_error", failed_sample->last_error.value_or("")}};
    }
    Json summary = {{"queue", queue},           {"total", p.total},
                    {"done", p.done},           {"failed", p.failed},
                    {"cancelled", p.cancelled}, {"failed_sample", sample},
                    {"elapsed_s", elapsed_s},   {"steps", steps},
                    {"steps_per_s", rate},      {"flows_queue", flows_queue}};
    summary.update(flows.ToJson());
    fmt::print("{}\n", summary.dump());
    return kExitOk;
  }
  fmt::print("demo: {} instances on queue {} finished in {:.2f} s\n", p.total, queue, elapsed_s);
  fmt::print("  done       {}\n", p.done);
  if (failed_sample) {
    fmt::print("  failed     {}  (e.g. #{} {}: {})\n", p.failed, failed_sample->id,
               failed_sample->fsm, failed_sample->last_error.value_or("no error recorded"));
  } else {
    fmt::print("  failed     {}\n", p.failed);
  }
  if (p.cancelled > 0) fmt::print("  cancelled  {}\n", p.cancelled);
  fmt::print("  steps      {}  ({:.0f} steps/s)\n", steps, rate);
  flows.PrintSummary();
  return kExitOk;
}

}  // namespace gen_durable::tools
