// gd_chaos: a fault-injection run of gen_durable (see tests/chaos/README.md).
//
// Starts a private, durable Postgres cluster and three supervised `gen_durable worker` processes,
// feeds them a mixed workload of the demo machines while a fault schedule SIGKILLs workers,
// restarts Postgres (fast and immediate), terminates backends and once freezes a worker past its
// lease, then waits for every instance to end and checks the invariants: each instance terminal
// with its expected result, each chain's committed transitions counted in its history, no two
// steps of one partition overlapping, each deduplicated signal stored once, every join correct,
// nothing left executing, no rate limit exceeded, and reaps, stale outcomes and dedup hits seen.
// Exits 0 when every check passed, 1 when one failed, 2 on bad arguments, 3 when the run itself
// could not be carried out.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "gen_durable/embedded/embedded.hpp"
#include "gen_durable/gen_durable.hpp"
#include "gen_durable/pg/connection.hpp"

extern char** environ;

namespace gen_durable::chaos {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::duration;
using std::chrono::milliseconds;

constexpr int kExitPass = 0;
constexpr int kExitFail = 1;
constexpr int kExitUsage = 2;
constexpr int kExitBroken = 3;

// The worker's rate limit for demo.limited: kAllowed starts per kPeriodMs per key, burst kAllowed.
constexpr int kAllowed = 4;
constexpr int kPeriodMs = 1000;
// How much later than its token a limited step may start (see the rate check).
constexpr int kStartSlackMs = 500;
// demo.flaky's attempt limit (tools/gen_durable/demo_machines.cpp).
constexpr int kFlakyMaxAttempts = 5;
// The workers' lease; the freeze fault stops a worker for longer than this.
constexpr int kLeaseTtlMs = 8000;
constexpr int kFreezeMs = kLeaseTtlMs + 4000;
// After the freeze, the worker is not SIGKILLed for this long, so its late outcomes arrive.
// The spare ends earlier once the worker has had an outcome dropped as stale: a Postgres
// restart right after the thaw (one was down 8.9 s) kept its late outcomes from the database
// until an 8 s spare had run out, and a kill then took them away unexercised.
constexpr int kThawGraceMs = 30000;

std::int64_t WallMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Config {
  std::string cli;
  std::string work_dir;      // empty: a fresh temp dir, removed at the end unless --keep
  double load_seconds = 40;  // inserts and faults are spread over this long
  int min_faults = 20;
  int scale = 1;  // multiplies every instance count
  int workers = 3;
  double drain_seconds = 240;  // after the load phase, how long instances may take to finish
  std::uint64_t seed = 0;      // 0: from the clock
  bool keep = false;
};

void Log(const std::string& line) {
  static std::mutex mu;
  std::lock_guard lock(mu);
  std::fprintf(stdout, "gd_chaos: %s\n", line.c_str());
  std::fflush(stdout);
}

std::string Fmt(const char* format, auto... args) {
  char buf[1024];
  std::snprintf(buf, sizeof(buf), format, args...);
  return buf;
}

// ---- plain SQL for faults and checks: a fresh connection each time (Postgres restarts under
// the run, and a kept connection would only be one more thing to repair) ----

std::unique_ptr<detail::pg::Connection> Connect(const std::string& conninfo) {
  return detail::pg::Connection::Open(conninfo, "gd_chaos");
}

// The first column of the first row `query` returns, as an integer.
std::int64_t QueryInt(detail::pg::Connection& conn, std::string_view query) {
  return conn.Exec(query).Int64(0, 0);
}

// ---- worker processes ----

pid_t Spawn(const std::vector<std::string>& argv, const std::string& log_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("posix_spawn " + argv[0] + ": " + std::strerror(rc));
  return pid;
}

// Keeps one worker process running in its slot until Stop(): a process supervisor in miniature.
// A worker killed by a fault is started again after a short pause, either under the same engine
// name (it then releases its dead predecessor's claims at start) or under a new one (then the
// reaper takes them back when their leases expire).
class Supervisor {
 public:
  Supervisor(int slot, std::function<std::vector<std::string>(const std::string&)> command,
             std::string log_path)
      : slot_(slot), command_(std::move(command)), log_path_(std::move(log_path)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Supervisor() { Stop(); }

  // SIGKILLs the current process, if any; true when one was killed. The next one takes a new
  // engine name when `rename`. A frozen worker is left alone: its stale outcomes are the point.
  bool Kill(bool rename) {
    std::lock_guard lock(mu_);
    if (pid_ <= 0 || frozen_ || std::chrono::steady_clock::now() < spared_until_) return false;
    if (rename) generation_ += 1;
    return ::kill(pid_, SIGKILL) == 0;
  }

  // The current process, or 0 between lives.
  pid_t pid() const {
    std::lock_guard lock(mu_);
    return pid_;
  }

  // SIGSTOPs the current process if it is still `pid`; true when it was stopped.
  bool Freeze(pid_t pid) {
    std::lock_guard lock(mu_);
    if (pid_ <= 0 || pid_ != pid || frozen_) return false;
    frozen_ = ::kill(pid_, SIGSTOP) == 0;
    return frozen_;
  }

  // SIGCONTs a frozen process, and spares it from kills for `grace`: time for the steps it
  // holds to finish and for their late outcomes to reach the database and be dropped as stale
  // (a kill right after the thaw would take them away, and with them the guard's exercise).
  void Thaw(std::chrono::milliseconds grace) {
    std::lock_guard lock(mu_);
    if (frozen_ && pid_ > 0) ::kill(pid_, SIGCONT);
    frozen_ = false;
    spared_until_ = std::chrono::steady_clock::now() + grace;
  }

  // Ends a spare given by Thaw.
  void EndSpare() {
    std::lock_guard lock(mu_);
    spared_until_ = {};
  }

  // SIGTERMs the worker (it drains and exits) and stops restarting it.
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      if (pid_ > 0 && frozen_) ::kill(pid_, SIGCONT);
      frozen_ = false;
      if (pid_ > 0) ::kill(pid_, SIGTERM);
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  int starts() const {
    std::lock_guard lock(mu_);
    return starts_;
  }

  // Exits not caused by a fault's SIGKILL (a worker must never die by itself).
  int unexpected_exits() const {
    std::lock_guard lock(mu_);
    return unexpected_exits_;
  }

 private:
  void Run() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      const std::string name = Fmt("chaos-w%d-g%d", slot_, generation_);
      try {
        pid_ = Spawn(command_(name), log_path_);
      } catch (const std::exception& e) {
        Log(std::string("cannot start a worker: ") + e.what());
        stopping_ = true;
        break;
      }
      starts_ += 1;
      const pid_t pid = pid_;
      lock.unlock();
      int status = 0;
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      lock.lock();
      pid_ = 0;
      if (!stopping_) {
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
          Log(Fmt("worker slot %d exited unexpectedly (status %d); starting it again", slot_,
                  status));
          unexpected_exits_ += 1;
        }
        cv_.wait_for(lock, milliseconds(200), [this] { return stopping_; });
      }
    }
  }

  const int slot_;
  const std::function<std::vector<std::string>(const std::string&)> command_;
  const std::string log_path_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  pid_t pid_ = 0;             // GUARDED_BY(mu_)
  int generation_ = 0;        // GUARDED_BY(mu_)
  int starts_ = 0;            // GUARDED_BY(mu_)
  int unexpected_exits_ = 0;  // GUARDED_BY(mu_)
  bool stopping_ = false;     // GUARDED_BY(mu_)
  bool frozen_ = false;       // GUARDED_BY(mu_): SIGSTOPped by the freeze fault
  std::chrono::steady_clock::time_point spared_until_{};  // GUARDED_BY(mu_): no kill before
  std::thread thread_;
};

// ---- the workload ----

enum class Kind { kChain, kFlaky, kFanout, kCheckout, kSleep, kLimited };

const char* KindName(Kind k) {
  switch (k) {
    case Kind::kChain:
      return "chain";
    case Kind::kFlaky:
      return "flaky";
    case Kind::kFanout:
      return "fanout";
    case Kind::kCheckout:
      return "checkout";
    case Kind::kSleep:
      return "sleep";
    case Kind::kLimited:
      return "limited";
  }
  return "?";
}

// One instance the harness inserts: how, and what it must end as.
struct Planned {
  Kind kind;
  int index = 0;  // within its kind
  std::string unique_key;
  std::string fsm;
  Json state;
  std::optional<std::string> partition_key;
  std::optional<std::string> rate_key;  // demo.limited's bucket key
  int burst = -1;                       // demo.limited: the burst it starts in
  bool duplicate_signal = false;        // checkout: its signal is sent a second time
  std::int64_t id = 0;                  // once inserted
};

constexpr int kChainSteps = 5;
constexpr int kFanoutChildren = 10;
constexpr int kFanoutFailEvery = 4;
constexpr int kSleepKeys = 10;
constexpr int kLimitedKeys = 3;
// demo.limited comes in bursts: kLimitedPerBurst rows of each key due at one moment, three
// times the bucket's burst, so the limit has work to hold back (a fault-free run without the
// limit starts them all within a fraction of a second, which the rate check refuses).
constexpr int kLimitedBursts = 3;
constexpr int kLimitedPerBurst = 12;

std::vector<Planned> PlanWorkload(int scale, std::mt19937_64& rng) {
  std::vector<Planned> plan;
  auto add = [&](Kind kind, int count, auto&& fill) {
    for (int i = 0; i < count; ++i) {
      Planned p;
      p.kind = kind;
      p.index = i;
      p.unique_key = Fmt("chaos-%s-%d", KindName(kind), i);
      fill(p, i);
      plan.push_back(std::move(p));
    }
  };
  add(Kind::kChain, 300 * scale, [](Planned& p, int) {
    p.fsm = "demo.chain";
    p.state = {{"steps", kChainSteps}};
  });
  add(Kind::kFlaky, 150 * scale, [](Planned& p, int) {
    p.fsm = "demo.flaky";
    p.state = {{"fail_times", 1}};
  });
  add(Kind::kFanout, 20 * scale, [](Planned& p, int) {
    p.fsm = "demo.fanout";
    p.state = {{"n", kFanoutChildren}, {"fail_every", kFanoutFailEvery}};
  });
  add(Kind::kCheckout, 150 * scale, [](Planned& p, int i) {
    p.fsm = "demo.checkout";
    p.state = {{"order", i}};
    p.duplicate_signal = i % 3 == 0;
  });
  // Sleeps of mixed length share a few partition keys, so steps of one key queue behind each
  // other and a long one is likely to be running when a fault strikes.
  // One in eight sleeps outlasts a Postgres restart.
  std::uniform_int_distribution<int> pick_ms(0, 7);
  constexpr int kSleepMs[] = {5, 5, 20, 20, 100, 100, 600, 4000};
  add(Kind::kSleep, 150 * scale, [&](Planned& p, int i) {
    p.fsm = "demo.sleep";
    p.state = {{"ms", kSleepMs[pick_ms(rng)]}};
    p.partition_key = Fmt("part-%d", i % kSleepKeys);
  });
  add(Kind::kLimited, kLimitedBursts * kLimitedKeys * kLimitedPerBurst * scale,
      [](Planned& p, int i) {
        p.fsm = "demo.limited";
        p.rate_key = Fmt("lim-%d", i % kLimitedKeys);
        p.state = {{"key", *p.rate_key}};
        p.burst = i / (kLimitedKeys * kLimitedPerBurst);
      });
  std::shuffle(plan.begin(), plan.end(), rng);
  return plan;
}

int ChildrenOf(const std::vector<Planned>& plan) {
  int n = 0;
  for (const auto& p : plan) n += p.kind == Kind::kFanout ? kFanoutChildren : 0;
  return n;
}

// Step runs a fault-free run needs, to compare with the runs the workers logged.
std::int64_t FaultFreeSteps(const std::vector<Planned>& plan) {
  std::int64_t n = 0;
  for (const auto& p : plan) {
    switch (p.kind) {
      case Kind::kChain:
        n += kChainSteps;
        break;
      case Kind::kFlaky:
        n += 2;
        break;  // one failure, then success
      case Kind::kFanout: {
        const int failing = kFanoutChildren / kFanoutFailEvery;
        n += 2 + (kFanoutChildren - failing) + failing * kFlakyMaxAttempts;
        break;
      }
      // start, await_pay, ship; await_pay runs twice when it parks before the payment arrives
      // (counted in FaultFreeExtraSteps).
      case Kind::kCheckout:
        n += 3;
        break;
      case Kind::kSleep:
        n += 1;
        break;
      case Kind::kLimited:
        n += 2;
        break;
    }
  }
  return n;
}

// Step runs a fault-free run may need beyond FaultFreeSteps: a checkout's await_pay runs again
// when its payment arrives after it parked.
std::int64_t FaultFreeExtraSteps(const std::vector<Planned>& plan) {
  return std::count_if(plan.begin(), plan.end(),
                       [](const Planned& p) { return p.kind == Kind::kCheckout; });
}

std::vector<std::string> AllStatuses() {
  return {"scheduled",         "runnable", "executing", "awaiting_signal",
          "awaiting_children", "done",     "failed",    "cancelled"};
}

// ---- the run ----

struct Counters {
  std::atomic<int> kills{0};
  std::atomic<int> terminations{0};  // faults that terminated at least one backend
  std::atomic<int> backends_terminated{0};
  std::atomic<int> restarts_fast{0};
  std::atomic<int> restarts_immediate{0};
  std::atomic<int> insert_retries{0};
  std::atomic<int> signal_retries{0};
  std::atomic<int> signals_sent{0};
  std::atomic<int> duplicate_signals_sent{0};
  std::atomic<int> duplicates_deduplicated{0};  // repeated sends answered with the first id
  std::atomic<int> freezes{0};
  int faults() const { return kills + terminations + restarts_fast + restarts_immediate + freezes; }
};

class Run {
 public:
  explicit Run(Config config) : config_(std::move(config)), rng_(config_.seed) {}

  int Execute();

 private:
  void StartCluster();
  std::vector<std::string> WorkerCommand(const std::string& name) const;
  void InsertLoad(Clock::time_point until);
  std::int64_t InsertOne(Planned& p, std::optional<TimePoint> eligible_at = std::nullopt);
  void SendSignals(Clock::time_point stop_at);
  void InjectFaults(Clock::time_point until);
  void FreezeOne(Clock::time_point load_until, Clock::time_point until);
  bool WaitAllTerminal();
  int Check();

  Config config_;
  std::mt19937_64 rng_;
  std::unique_ptr<detail::EmbeddedCluster> cluster_;
  std::string conninfo_;
  std::string step_log_;
  std::vector<Planned> plan_;
  std::vector<std::unique_ptr<Supervisor>> workers_;
  std::unique_ptr<Client> client_;
  Counters counters_;
  std::mutex cluster_mu_;  // held while Postgres is being restarted
  // The freeze fault's victim and when it was stopped and continued (wall-clock micros, as in
  // the step log); written by its thread, read by Check after it joined.
  pid_t frozen_pid_ = 0;
  std::int64_t frozen_from_us_ = 0;
  std::int64_t frozen_to_us_ = 0;
  std::int64_t frozen_held_ = 0;

  // Signals due: (when, plan index, is the duplicate send).
  struct DueSignal {
    Clock::time_point at;
    std::size_t index;
    bool duplicate;
    bool operator>(const DueSignal& o) const { return at > o.at; }
  };
  std::mutex signal_mu_;
  std::condition_variable signal_cv_;
  std::priority_queue<DueSignal, std::vector<DueSignal>, std::greater<>> due_;  // GUARDED_BY
  int signals_outstanding_ = 0;  // GUARDED_BY(signal_mu_): scheduled and not yet delivered
  bool inserts_done_ = false;    // GUARDED_BY(signal_mu_)
  std::map<std::size_t, std::int64_t> signal_ids_;  // GUARDED_BY(signal_mu_): first send's id
  std::vector<std::string> problems_;               // GUARDED_BY(signal_mu_): found while sending
};

void Run::StartCluster() {
  detail::EmbeddedOptions options;
  options.data_dir = (fs::path(config_.work_dir) / "pgdata").string();
  options.port = 5433;
  options.fast_unsafe = false;  // durable, as in production: an immediate stop is a real crash
  options.stop_on_exit = true;
  cluster_ = detail::EmbeddedCluster::Start(options);
  cluster_->CreateDatabase("chaos");
  conninfo_ = cluster_->ConnInfo("chaos");
}

std::vector<std::string> Run::WorkerCommand(const std::string& name) const {
  return {config_.cli, "--database", conninfo_, "worker", "--name", name, "--queues", "default:16",
          // Longer than a Postgres restart takes, so only dead or frozen workers' leases expire.
          "--lease-ttl", std::to_string(kLeaseTtlMs), "--heartbeat-interval", "1000",
          "--poll-interval", "100", "--reap-interval", "500", "--gc-interval", "0",
          "--drain-timeout", "2000", "--rate-limit", Fmt("demo:%d:%d", kAllowed, kPeriodMs),
          // Every committed step writes its history entry in the same statement, which is how
          // Check counts the transitions each instance made.
          "--history", "--step-log", step_log_};
}

// Inserts one planned instance, retrying through faults. The unique key (held in every
// status) makes a retry after an in-doubt failure safe: a duplicate means the first try
// committed, and the row is looked up by its key.
std::int64_t Run::InsertOne(Planned& p, std::optional<TimePoint> eligible_at) {
  InsertOptions options;
  options.state = p.state;
  options.eligible_at = eligible_at;
  options.unique_key = p.unique_key;
  options.unique_scope = AllStatuses();
  options.partition_key = p.partition_key;
  for (int attempt = 0;; ++attempt) {
    try {
      Result<std::int64_t> id = client_->Insert(p.fsm, options);
      if (id) return *id;
      if (id.code() != ErrorCode::kDuplicate) {
        throw std::runtime_error("insert " + p.unique_key + ": " + id.error().message);
      }
      // A lookup that fails because Postgres is restarting throws a retryable error too.
      return Connect(conninfo_)
          ->ExecParams("SELECT id FROM gd_instances WHERE unique_key = $1",
                       detail::pg::Params().Add(p.unique_key))
          .Int64(0, 0);
    } catch (const Error& e) {
      if (!e.retryable() && e.retry() != Retry::kInDoubt) throw;
      counters_.insert_retries += 1;
    }
    std::this_thread::sleep_for(milliseconds(std::min(50 * (attempt + 1), 500)));
  }
}

void Run::InsertLoad(Clock::time_point until) {
  const auto start = Clock::now();
  const auto span = until - start;
  std::uniform_int_distribution<int> signal_delay_ms(0, 2000);
  std::mt19937_64 rng(config_.seed ^ 0x9e3779b97f4a7c15ULL);
  // The rate-limited bursts first: each burst's rows all become due at one moment, spread
  // over the load phase (in the database, whatever the pace of the inserts).
  int bursts = 0;
  for (const Planned& p : plan_) bursts = std::max(bursts, p.burst + 1);
  const auto wall_start = std::chrono::system_clock::now();
  for (Planned& p : plan_) {
    if (p.burst < 0) continue;
    const auto due =
        wall_start + std::chrono::duration_cast<std::chrono::system_clock::duration>(
                         span * static_cast<double>(p.burst + 1) / static_cast<double>(bursts + 1));
    p.id = InsertOne(p, due);
  }
  std::size_t paced = 0;
  const auto to_pace = static_cast<std::size_t>(
      std::count_if(plan_.begin(), plan_.end(), [](const Planned& p) { return p.burst < 0; }));
  for (std::size_t i = 0; i < plan_.size(); ++i) {
    if (plan_[i].burst >= 0) continue;
    // Evenly paced over the load phase.
    std::this_thread::sleep_until(start + span * static_cast<double>(paced++) /
                                              static_cast<double>(to_pace));
    plan_[i].id = InsertOne(plan_[i]);
    if (plan_[i].kind == Kind::kCheckout) {
      std::lock_guard lock(signal_mu_);
      due_.push({Clock::now() + milliseconds(signal_delay_ms(rng)), i, false});
      signals_outstanding_ += 1;
      signal_cv_.notify_all();
    }
  }
}

// Sends each checkout's payment signal (with a dedup key), and for some a second copy with the
// same key and another payload, which must change nothing. Retries through faults.
void Run::SendSignals(Clock::time_point stop_at) {
  std::mt19937_64 rng(config_.seed ^ 0x5851f42d4c957f2dULL);
  // Soon after the first, so the checkout usually still holds the first signal in its inbox
  // (a finished one clears its inbox and refuses signals).
  std::uniform_int_distribution<int> dup_delay_ms(0, 20);
  std::unique_lock lock(signal_mu_);
  for (;;) {
    if (Clock::now() > stop_at) {
      problems_.push_back(Fmt("%d signals still unsent at the deadline", signals_outstanding_));
      return;
    }
    if (due_.empty()) {
      if (signals_outstanding_ == 0 && inserts_done_) return;
      signal_cv_.wait_for(lock, milliseconds(100));
      continue;
    }
    const DueSignal next = due_.top();
    if (next.at > Clock::now()) {
      signal_cv_.wait_until(lock, next.at);
      continue;
    }
    due_.pop();
    const Planned& p = plan_[next.index];
    lock.unlock();
    const Json payload =
        next.duplicate ? Json{{"duplicate", true}} : Json{{"order", p.index}, {"paid", true}};
    SignalOptions options;
    options.dedup_key = "pay-" + std::to_string(p.index);
    std::optional<std::int64_t> id;
    bool in_doubt = false;  // an earlier try of this send may have been stored
    std::string problem;
    for (int attempt = 0; !id; ++attempt) {
      try {
        Result<std::int64_t> r = client_->Signal(p.id, "payment_confirmed", payload, options);
        if (r) {
          id = *r;
        } else if (r.code() == ErrorCode::kNoTarget && (in_doubt || next.duplicate)) {
          break;  // it was delivered and the checkout has finished since
        } else {
          problem = Fmt("signal to checkout %d (id %lld) refused: %s", p.index,
                        static_cast<long long>(p.id), r.error().message.c_str());
          break;
        }
      } catch (const Error& e) {
        if (!e.retryable() && e.retry() != Retry::kInDoubt) {
          problem = std::string("signal failed: ") + e.what();
          break;
        }
        in_doubt = true;
        counters_.signal_retries += 1;
        std::this_thread::sleep_for(milliseconds(std::min(50 * (attempt + 1), 500)));
      }
    }
    lock.lock();
    if (!problem.empty()) problems_.push_back(problem);
    if (next.duplicate) {
      counters_.duplicate_signals_sent += 1;
      auto first = signal_ids_.find(next.index);
      if (id && first == signal_ids_.end()) {
        problems_.push_back(
            Fmt("checkout %d: the repeated send stored signal %lld, the first "
                "send none",
                p.index, static_cast<long long>(*id)));
      } else if (id && first->second != *id) {
        problems_.push_back(Fmt("checkout %d: the repeated dedup key made signal %lld besides %lld",
                                p.index, static_cast<long long>(*id),
                                static_cast<long long>(first->second)));
      } else if (id) {
        counters_.duplicates_deduplicated += 1;
      }
      signals_outstanding_ -= 1;
    } else {
      counters_.signals_sent += 1;
      if (id) signal_ids_[next.index] = *id;
      if (p.duplicate_signal) {
        due_.push({Clock::now() + milliseconds(dup_delay_ms(rng)), next.index, true});
      } else {
        signals_outstanding_ -= 1;
      }
    }
  }
}

// The fault schedule: at least min_faults faults spread over the load phase, in random order,
// among them at least two fast and two immediate Postgres restarts.
void Run::InjectFaults(Clock::time_point until) {
  enum class Fault { kKill, kKillRename, kTerminate, kRestartFast, kRestartImmediate };
  std::vector<Fault> schedule = {Fault::kRestartFast, Fault::kRestartFast, Fault::kRestartImmediate,
                                 Fault::kRestartImmediate};
  // A few more than asked for: a fault may find nothing to strike (every worker restarting).
  const int planned = config_.min_faults + std::max(2, config_.min_faults / 20);
  const int rest = std::max(planned - static_cast<int>(schedule.size()), 0);
  for (int i = 0; i < rest; ++i) {
    switch (i % 9) {
      case 0:
      case 3:
      case 6:
        schedule.push_back(Fault::kKill);
        break;
      case 1:
      case 5:
        schedule.push_back(Fault::kKillRename);
        break;
      case 8:
        schedule.push_back(i % 2 == 0 ? Fault::kRestartFast : Fault::kRestartImmediate);
        break;
      default:
        schedule.push_back(Fault::kTerminate);
        break;
    }
  }
  std::shuffle(schedule.begin(), schedule.end(), rng_);
  const auto start = Clock::now();
  const auto gap = (until - start) / static_cast<double>(schedule.size() + 1);
  std::uniform_int_distribution<int> slot(0, config_.workers - 1);
  std::uniform_int_distribution<int> down_ms(0, 800);
  for (std::size_t i = 0; i < schedule.size(); ++i) {
    std::this_thread::sleep_until(start + gap * static_cast<double>(i + 1));
    switch (schedule[i]) {
      case Fault::kKill:
      case Fault::kKillRename: {
        // A random worker; the next one when that one is between lives.
        const int first = slot(rng_);
        for (int k = 0; k < config_.workers; ++k) {
          const int s = (first + k) % config_.workers;
          if (workers_[static_cast<std::size_t>(s)]->Kill(schedule[i] == Fault::kKillRename)) {
            counters_.kills += 1;
            Log(Fmt("fault %zu: SIGKILL worker %d", i + 1, s));
            break;
          }
        }
        break;
      }
      case Fault::kTerminate: {
        // About half the database's sessions; tried again shortly when none was open.
        for (int tries = 0; tries < 10; ++tries) {
          std::int64_t n = 0;
          try {
            n = QueryInt(*Connect(conninfo_),
                         "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                         "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                         "AND backend_type = 'client backend' AND random() < 0.5");
          } catch (const std::exception& e) {
            Log(std::string("fault: terminating backends failed: ") + e.what());
          }
          if (n > 0) {
            counters_.terminations += 1;
            counters_.backends_terminated += static_cast<int>(n);
            Log(Fmt("fault %zu: terminated %lld backends", i + 1, static_cast<long long>(n)));
            break;
          }
          std::this_thread::sleep_for(milliseconds(50));
        }
        break;
      }
      case Fault::kRestartFast:
      case Fault::kRestartImmediate: {
        const bool immediate = schedule[i] == Fault::kRestartImmediate;
        std::lock_guard lock(cluster_mu_);
        const auto t0 = Clock::now();
        cluster_->Stop(immediate ? detail::EmbeddedCluster::StopMode::kImmediate
                                 : detail::EmbeddedCluster::StopMode::kFast);
        std::this_thread::sleep_for(milliseconds(down_ms(rng_)));
        cluster_->Restart();
        (immediate ? counters_.restarts_immediate : counters_.restarts_fast) += 1;
        Log(Fmt("fault %zu: Postgres restarted (%s), down %.2f s", i + 1,
                immediate ? "immediate" : "fast", duration<double>(Clock::now() - t0).count()));
        break;
      }
    }
  }
}

// The freeze: from a quarter into the load on (into the drain if need be), a worker that
// holds claims is SIGSTOPped for longer than its lease, then SIGCONTed. Meanwhile the others
// reap its rows and run them again; once it goes on, its steps finish and their outcomes must
// be dropped as stale.
void Run::FreezeOne(Clock::time_point load_until, Clock::time_point until) {
  const auto start = Clock::now();
  std::this_thread::sleep_until(start + (load_until - start) / 4);
  while (Clock::now() < until) {
    if (Clock::now() > load_until) {  // in the drain: stop once nothing is left to freeze
      std::int64_t live = -1;
      try {
        live = QueryInt(*Connect(conninfo_),
                        "SELECT count(*) FROM gd_instances "
                        "WHERE status NOT IN ('done', 'failed', 'cancelled')");
      } catch (const std::exception&) {
      }
      if (live == 0) break;
    }
    for (int s = 0; s < config_.workers; ++s) {
      Supervisor& w = *workers_[static_cast<std::size_t>(s)];
      const pid_t pid = w.pid();
      if (pid <= 0) continue;
      std::int64_t held = 0;
      try {
        // Node ids are host:pid:token.
        held = Connect(conninfo_)
                   ->ExecParams(
                       "SELECT count(*) FROM gd_instances WHERE status = 'executing' "
                       "AND locked_by LIKE '%:' || $1 || ':%'",
                       detail::pg::Params().Add(std::to_string(pid)))
                   .Int64(0, 0);
      } catch (const std::exception&) {
        continue;  // Postgres is restarting: try again shortly
      }
      if (held == 0 || !w.Freeze(pid)) continue;
      frozen_from_us_ = WallMicros();
      frozen_pid_ = pid;
      frozen_held_ = held;
      counters_.freezes += 1;
      Log(Fmt("fault: SIGSTOP worker %d (pid %d, holding %lld claims) for %.1f s", s, pid,
              static_cast<long long>(held), kFreezeMs / 1000.0));
      std::this_thread::sleep_for(milliseconds(kFreezeMs));
      w.Thaw(milliseconds(kThawGraceMs));
      frozen_to_us_ = WallMicros();
      Log(Fmt("fault: SIGCONT worker %d (pid %d)", s, pid));
      // The spare lasts until the worker reports a stale outcome (or runs out).
      const auto spare_end = Clock::now() + milliseconds(kThawGraceMs);
      const std::string stale_of_pid = Fmt("\"pid\":%d}", static_cast<int>(pid));
      while (Clock::now() < spare_end) {
        std::ifstream in(step_log_);
        std::string line;
        bool seen = false;
        while (!seen && std::getline(in, line)) {
          seen = line.find("\"ev\":\"stale\"") != std::string::npos &&
                 line.find(stale_of_pid) != std::string::npos;
        }
        if (seen) break;
        std::this_thread::sleep_for(milliseconds(250));
      }
      w.EndSpare();
      return;
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  Log("the freeze found no worker holding claims");
}

bool Run::WaitAllTerminal() {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           duration<double>(config_.drain_seconds));
  const std::int64_t expected = static_cast<std::int64_t>(plan_.size()) + ChildrenOf(plan_);
  auto last_report = Clock::now();
  for (;;) {
    std::int64_t live = -1;
    std::int64_t total = -1;
    try {
      auto conn = Connect(conninfo_);
      live = QueryInt(*conn,
                      "SELECT count(*) FROM gd_instances "
                      "WHERE status NOT IN ('done', 'failed', 'cancelled')");
      total = QueryInt(*conn, "SELECT count(*) FROM gd_instances");
    } catch (const std::exception&) {
    }
    if (live == 0 && total == expected) return true;
    if (Clock::now() > deadline) {
      Log(Fmt("still %lld live instances (%lld of %lld rows) at the deadline",
              static_cast<long long>(live), static_cast<long long>(total),
              static_cast<long long>(expected)));
      return false;
    }
    if (Clock::now() - last_report > std::chrono::seconds(5)) {
      Log(Fmt("waiting: %lld instances still live", static_cast<long long>(live)));
      last_report = Clock::now();
    }
    std::this_thread::sleep_for(milliseconds(250));
  }
}

struct StepRun {
  std::int64_t id;
  std::string fsm;
  std::string step;
  int attempt;
  std::int64_t start_us;
  std::int64_t end_us;
  int pid;
};

int Run::Check() {
  std::vector<std::string> failures;
  {
    std::lock_guard lock(signal_mu_);
    failures = problems_;
  }
  auto fail = [&](std::string what) {
    if (failures.size() < 200) failures.push_back(std::move(what));
  };
  auto conn = Connect(conninfo_);

  // Final rows, by unique key (roots) and by parent (children).
  struct Row {
    std::int64_t id;
    std::string status;
    Json result;
    int attempt;
  };
  std::map<std::string, Row> by_key;
  const detail::pg::Result roots = conn->Exec(
      "SELECT unique_key, id, status, coalesce(result, 'null'), attempt "
      "FROM gd_instances WHERE parent_id IS NULL");
  for (int r = 0; r < roots.rows(); ++r) {
    by_key[roots.String(r, 0)] =
        Row{roots.Int64(r, 1), roots.String(r, 2), Json::parse(roots.Text(r, 3)), roots.Int(r, 4)};
  }
  const std::int64_t executing =
      QueryInt(*conn, "SELECT count(*) FROM gd_instances WHERE status = 'executing'");
  if (executing != 0) fail(Fmt("%lld rows left executing", static_cast<long long>(executing)));
  const std::int64_t total = QueryInt(*conn, "SELECT count(*) FROM gd_instances");
  const std::int64_t expected = static_cast<std::int64_t>(plan_.size()) + ChildrenOf(plan_);
  if (total != expected) {
    fail(Fmt("%lld rows, expected %lld", static_cast<long long>(total),
             static_cast<long long>(expected)));
  }

  // Children per fanout parent: count, done, failed, and failed ones being the failing kind.
  std::map<std::int64_t, std::array<std::int64_t, 3>> children;
  const detail::pg::Result joined = conn->Exec(
      "SELECT parent_id, count(*), count(*) FILTER (WHERE status = 'done'), "
      "count(*) FILTER (WHERE status = 'failed' AND (state->>'fail_times')::int = 5) "
      "FROM gd_instances WHERE parent_id IS NOT NULL GROUP BY parent_id");
  for (int r = 0; r < joined.rows(); ++r) {
    children[joined.Int64(r, 0)] = {joined.Int64(r, 1), joined.Int64(r, 2), joined.Int64(r, 3)};
  }
  const int failing = kFanoutChildren / kFanoutFailEvery;
  for (const Planned& p : plan_) {
    auto it = by_key.find(p.unique_key);
    if (it == by_key.end()) {
      fail("missing instance " + p.unique_key);
      continue;
    }
    const Row& row = it->second;
    if (row.id != p.id)
      fail(Fmt("%s: id %lld, inserted as %lld", p.unique_key.c_str(),
               static_cast<long long>(row.id), static_cast<long long>(p.id)));
    if (row.status != "done") {
      fail(p.unique_key + ": status " + row.status + ", result " + row.result.dump());
      continue;
    }
    const Json& res = row.result;
    auto expect = [&](bool ok, const std::string& want) {
      if (!ok) fail(p.unique_key + ": result " + res.dump() + ", want " + want);
    };
    switch (p.kind) {
      case Kind::kChain:
        expect(res.value("steps", -1) == kChainSteps, "steps 5");
        break;
      case Kind::kFlaky: {
        const int attempts = res.value("attempts", -1);
        expect(attempts >= 2 && attempts <= kFlakyMaxAttempts, "attempts in [2, 5]");
        break;
      }
      case Kind::kFanout: {
        expect(res == Json{{"done", kFanoutChildren - failing}, {"failed", failing}},
               Fmt("{done: %d, failed: %d}", kFanoutChildren - failing, failing));
        const auto c = children[row.id];
        if (c[0] != kFanoutChildren || c[1] != kFanoutChildren - failing || c[2] != failing) {
          fail(Fmt("%s: %lld children (%lld done, %lld failed as planned), want %d (%d, %d)",
                   p.unique_key.c_str(), static_cast<long long>(c[0]), static_cast<long long>(c[1]),
                   static_cast<long long>(c[2]), kFanoutChildren, kFanoutChildren - failing,
                   failing));
        }
        break;
      }
      case Kind::kCheckout:
        expect(res.value("order", Json()) == p.index &&
                   res.value("payment", Json()) == Json{{"order", p.index}, {"paid", true}},
               "the first payment's payload");
        break;
      case Kind::kSleep:
        expect(res.contains("start_us") && res.contains("end_us"), "start_us and end_us");
        break;
      case Kind::kLimited:
        expect(res.contains("start_us"), "start_us");
        break;
    }
  }

  // The workers' step log: every step run that returned, committed or not.
  std::vector<StepRun> runs;
  std::int64_t stale = 0;
  std::set<std::int64_t> reaped;
  {
    std::ifstream in(step_log_);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      Json j;
      try {
        j = Json::parse(line);
      } catch (const std::exception&) {
        fail("unparsable step log line: " + line);
        continue;
      }
      const std::string ev = j.value("ev", "");
      if (ev == "step") {
        runs.push_back({j["id"].get<std::int64_t>(), j["fsm"], j["step"], j["attempt"],
                        j["start_us"], j["end_us"], j["pid"]});
      } else if (ev == "stale") {
        stale += 1;
      } else if (ev == "reaped") {
        for (const auto& id : j["ids"]) reaped.insert(id.get<std::int64_t>());
      }
    }
  }

  // Partitions: no two runs of steps sharing a key overlapped in time, stale ones included.
  std::map<std::int64_t, std::string> key_of;
  std::map<std::int64_t, std::string> bucket_of;
  for (const Planned& p : plan_) {
    if (p.partition_key) key_of[p.id] = *p.partition_key;
    if (p.rate_key) bucket_of[p.id] = *p.rate_key;
  }
  std::map<std::string, std::vector<const StepRun*>> by_partition;
  std::map<std::string, std::vector<std::int64_t>> starts_by_bucket;
  // A step the freeze stopped mid-run went on after its lease had expired and its row had been
  // run again elsewhere: a stall past the lease is exactly what a partition cannot survive (its
  // exclusivity lasts as long as the lease), so such runs are left out of the overlap check.
  int frozen_runs = 0;
  for (const StepRun& r : runs) {
    const bool spans_freeze = frozen_pid_ != 0 && r.pid == frozen_pid_ &&
                              r.start_us < frozen_to_us_ && r.end_us > frozen_from_us_;
    frozen_runs += spans_freeze ? 1 : 0;
    if (auto k = key_of.find(r.id); !spans_freeze && k != key_of.end()) {
      by_partition[k->second].push_back(&r);
    }
    if (auto b = bucket_of.find(r.id); b != bucket_of.end() && r.step == "call") {
      starts_by_bucket[b->second].push_back(r.start_us);
    }
  }
  int overlaps = 0;
  for (auto& [key, list] : by_partition) {
    std::sort(list.begin(), list.end(),
              [](const StepRun* a, const StepRun* b) { return a->start_us < b->start_us; });
    const StepRun* latest = nullptr;  // the run ending last so far
    for (const StepRun* r : list) {
      if (latest != nullptr && r->start_us < latest->end_us) {
        overlaps += 1;
        fail(
            Fmt("partition %s: instance %lld (pid %d) started %lld us before instance %lld "
                "(pid %d) ended",
                key.c_str(), static_cast<long long>(r->id), r->pid,
                static_cast<long long>(latest->end_us - r->start_us),
                static_cast<long long>(latest->id), latest->pid));
      }
      if (latest == nullptr || r->end_us > latest->end_us) latest = r;
    }
  }
  // Rate limits: a token bucket of `burst` tokens refilled at kAllowed per kPeriodMs issues at
  // most burst + kAllowed * W / period tokens in any window of length W (+1 for clock rounding).
  // These are start times, not token times: a start comes up to kStartSlackMs after its token
  // (a reserved row waits for the next promotion, an admitted one for a worker), so starts whose
  // tokens were issued apart can bunch. The window is widened by that slack; a limiter that
  // admits a whole burst of 12 rows per key at once still fails it.
  int over_limit = 0;
  for (auto& [bucket, starts] : starts_by_bucket) {
    std::sort(starts.begin(), starts.end());
    for (std::size_t i = 0; i < starts.size(); ++i) {
      for (std::size_t j = i + 1; j < starts.size(); ++j) {
        const double window_ms = static_cast<double>(starts[j] - starts[i]) / 1000.0;
        const double allowed = kAllowed + kAllowed * (window_ms + kStartSlackMs) / kPeriodMs + 1;
        if (static_cast<double>(j - i + 1) > allowed) {
          over_limit += 1;
          fail(Fmt("rate limit demo/%s: %zu starts within %.1f ms (at most %.1f allowed)",
                   bucket.c_str(), j - i + 1, window_ms, allowed));
          break;
        }
      }
    }
  }

  int unexpected_exits = 0;
  int starts = 0;
  for (const auto& w : workers_) {
    unexpected_exits += w->unexpected_exits();
    starts += w->starts();
  }
  if (unexpected_exits > 0) fail(Fmt("%d worker exits not caused by a fault", unexpected_exits));

  Log(Fmt("instances: %lld (%zu inserted, %d children)", static_cast<long long>(total),
          plan_.size(), ChildrenOf(plan_)));
  Log(
      Fmt("faults injected: %d (%d SIGKILLs, %d backend terminations killing %d backends, "
          "%d fast and %d immediate Postgres restarts, %d freezes past the lease)",
          counters_.faults(), counters_.kills.load(), counters_.terminations.load(),
          counters_.backends_terminated.load(), counters_.restarts_fast.load(),
          counters_.restarts_immediate.load(), counters_.freezes.load()));
  const std::int64_t fault_free_min = FaultFreeSteps(plan_);
  const std::int64_t fault_free_max = fault_free_min + FaultFreeExtraSteps(plan_);
  const auto logged = static_cast<std::int64_t>(runs.size());
  Log(
      Fmt("step runs logged: %lld (a fault-free run needs %lld to %lld, so at least %lld re-run;"
          " steps cut short by a SIGKILL are not logged); rows reaped: %zu; stale outcomes "
          "dropped: %lld; worker starts: %d",
          static_cast<long long>(logged), static_cast<long long>(fault_free_min),
          static_cast<long long>(fault_free_max),
          static_cast<long long>(std::max<std::int64_t>(logged - fault_free_max, 0)), reaped.size(),
          static_cast<long long>(stale), starts));
  Log(
      Fmt("signals: %d sent, %d repeated with the same dedup key (%d answered with the first "
          "signal's id, the others refused as the checkout had finished); retries through "
          "faults: %d inserts, %d signals",
          counters_.signals_sent.load(), counters_.duplicate_signals_sent.load(),
          counters_.duplicates_deduplicated.load(), counters_.insert_retries.load(),
          counters_.signal_retries.load()));
  Log(Fmt("partition overlaps: %d; rate-limit excesses: %d", overlaps, over_limit));
  // Committed transitions: every committed step wrote one history entry in its own statement,
  // so a chain of 5 steps has exactly 5, however often a fault made it run a step again. A
  // lost transition shows as fewer, one applied twice (a stale outcome let through) as more,
  // which the chain's result (recomputed from the committed state) cannot show.
  std::map<std::int64_t, std::int64_t> transitions;
  const detail::pg::Result hist = conn->Exec(
      "SELECT instance_id, count(*) FROM gd_history WHERE event = 'step' GROUP BY instance_id");
  for (int r = 0; r < hist.rows(); ++r) transitions[hist.Int64(r, 0)] = hist.Int64(r, 1);
  int chains_off = 0;
  for (const Planned& p : plan_) {
    if (p.kind != Kind::kChain) continue;
    const std::int64_t n = transitions[p.id];
    if (n != kChainSteps) {
      chains_off += 1;
      fail(Fmt("%s: %lld step transitions committed, want %d", p.unique_key.c_str(),
               static_cast<long long>(n), kChainSteps));
    }
  }
  Log(Fmt("chains whose committed transitions differ from their steps: %d", chains_off));
  Log(Fmt("freeze: %s; %d step runs spanned it",
          frozen_pid_ == 0 ? "none"
                           : Fmt("pid %d stopped for %.1f s holding %lld claims", frozen_pid_,
                                 static_cast<double>(frozen_to_us_ - frozen_from_us_) / 1e6,
                                 static_cast<long long>(frozen_held_))
                                 .c_str(),
          frozen_runs));
  // The guards must have been exercised, or the run proved nothing about them.
  if (counters_.freezes == 0) fail("the freeze fault found no worker holding claims");
  if (reaped.empty()) fail("no expired lease was reaped: the reaper was never exercised");
  // A stale outcome is certain only when the freeze caught a step mid-run and its row was
  // reaped meanwhile; when it caught only claims in a buffer or on their way to a commit, or the
  // reapers missed the window (the database down for most of the freeze), there may be none,
  // so then it is reported, not required.
  if (stale == 0 && frozen_runs > 0) {
    fail(
        "no outcome was dropped as stale although a step ran across the freeze: the ownership "
        "guard was never exercised");
  } else if (stale == 0) {
    Log("note: no outcome was dropped as stale in this run (the freeze caught no step mid-run)");
  }
  if (counters_.duplicates_deduplicated == 0) {
    fail(
        "no repeated dedup key was answered with the first signal's id: dedup was never "
        "exercised");
  }
  if (counters_.faults() < config_.min_faults) {
    fail(Fmt("only %d faults injected, want at least %d", counters_.faults(), config_.min_faults));
  }
  if (counters_.restarts_fast + counters_.restarts_immediate == 0) {
    fail("no Postgres restart was injected");
  }
  for (const auto& f : failures) Log("FAIL: " + f);
  Log(failures.empty() ? "PASS: every invariant held" : Fmt("FAIL: %zu problems", failures.size()));
  return failures.empty() ? kExitPass : kExitFail;
}

int Run::Execute() {
  plan_ = PlanWorkload(config_.scale, rng_);
  Log(Fmt("seed %llu; work dir %s", static_cast<unsigned long long>(config_.seed),
          config_.work_dir.c_str()));
  StartCluster();
  step_log_ = (fs::path(config_.work_dir) / "steps.jsonl").string();
  {
    ClientOptions options;
    options.database = conninfo_;
    client_ = Client::Connect(options);
    client_->Migrate();
  }
  for (int s = 0; s < config_.workers; ++s) {
    workers_.push_back(std::make_unique<Supervisor>(
        s, [this](const std::string& name) { return WorkerCommand(name); },
        (fs::path(config_.work_dir) / Fmt("worker-%d.log", s)).string()));
  }
  Log(Fmt("%zu instances to insert over %.0f s by %d workers, at least %d faults", plan_.size(),
          config_.load_seconds, config_.workers, config_.min_faults));

  const auto load_until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             duration<double>(config_.load_seconds));
  const auto signals_until = load_until + std::chrono::duration_cast<Clock::duration>(
                                              duration<double>(config_.drain_seconds));
  std::thread faults([&] { InjectFaults(load_until); });
  // The freeze may go on looking into the drain: a run whose load phase Postgres spent mostly
  // down (restarts of 11, 8 and 6 s in a 40 s load) found no worker holding claims in it.
  std::thread freeze([&] { FreezeOne(load_until, load_until + std::chrono::seconds(60)); });
  std::thread signals([&] { SendSignals(signals_until); });
  std::exception_ptr load_error;
  try {
    InsertLoad(load_until);
  } catch (...) {
    load_error = std::current_exception();
  }
  {
    std::lock_guard lock(signal_mu_);
    inserts_done_ = true;
    signal_cv_.notify_all();
  }
  faults.join();
  freeze.join();
  signals.join();
  if (load_error) std::rethrow_exception(load_error);
  Log("load phase over; waiting for every instance to end");
  const bool drained = WaitAllTerminal();
  for (auto& w : workers_) w->Stop();
  const int rc = Check();
  if (!drained && rc == kExitPass) return kExitFail;
  return rc;
}

}  // namespace
}  // namespace gen_durable::chaos

namespace {

void Usage() {
  std::fprintf(stderr,
               "usage: gd_chaos [--cli PATH] [--load-seconds S] [--min-faults N] [--scale K]\n"
               "                [--workers N] [--drain-seconds S] [--seed N] [--work-dir DIR]\n"
               "                [--keep] [--long]\n"
               "  --long is --load-seconds 600 --min-faults 300 --scale 10\n");
}

}  // namespace

int main(int argc, char** argv) {
  using gen_durable::chaos::Config;
  Config config;
#ifdef GEN_DURABLE_CLI_PATH
  config.cli = GEN_DURABLE_CLI_PATH;
#endif
  if (const char* cli = std::getenv("GEN_DURABLE_CLI"); cli != nullptr && *cli != '\0') {
    config.cli = cli;
  }
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
        return argv[++i];
      };
      if (arg == "--cli") {
        config.cli = value();
      } else if (arg == "--load-seconds") {
        config.load_seconds = std::stod(value());
      } else if (arg == "--min-faults") {
        config.min_faults = std::stoi(value());
      } else if (arg == "--scale") {
        config.scale = std::stoi(value());
      } else if (arg == "--workers") {
        config.workers = std::stoi(value());
      } else if (arg == "--drain-seconds") {
        config.drain_seconds = std::stod(value());
      } else if (arg == "--seed") {
        config.seed = std::stoull(value());
      } else if (arg == "--work-dir") {
        config.work_dir = value();
      } else if (arg == "--keep") {
        config.keep = true;
      } else if (arg == "--long") {
        config.load_seconds = 600;
        config.min_faults = 300;
        config.scale = 10;
      } else if (arg == "-h" || arg == "--help") {
        Usage();
        return 0;
      } else {
        throw std::invalid_argument("unknown argument " + arg);
      }
    }
    if (config.load_seconds <= 0 || config.min_faults < 0 || config.scale < 1 ||
        config.workers < 1 || config.drain_seconds <= 0) {
      throw std::invalid_argument("every count and duration must be positive");
    }
    if (config.cli.empty()) throw std::invalid_argument("--cli is required");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gd_chaos: %s\n", e.what());
    Usage();
    return gen_durable::chaos::kExitUsage;
  }
  if (config.seed == 0) {
    config.seed =
        static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  }
  bool made_dir = false;
  if (config.work_dir.empty()) {
    std::string pattern = (std::filesystem::temp_directory_path() / "gd_chaos.XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      std::fprintf(stderr, "gd_chaos: mkdtemp failed: %s\n", std::strerror(errno));
      return gen_durable::chaos::kExitBroken;
    }
    chmod(pattern.c_str(), 0755);  // the server may run as `postgres` and must traverse it
    config.work_dir = pattern;
    made_dir = true;
  } else {
    std::filesystem::create_directories(config.work_dir);
    chmod(config.work_dir.c_str(), 0755);
  }
  // Workers are stopped with SIGTERM; a write to a closed pipe must not kill the harness.
  signal(SIGPIPE, SIG_IGN);
  int rc = gen_durable::chaos::kExitBroken;
  try {
    gen_durable::chaos::Run run(config);
    rc = run.Execute();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gd_chaos: the run could not be carried out: %s\n", e.what());
    rc = gen_durable::chaos::kExitBroken;
  }
  if (rc != 0 || config.keep) {
    std::fprintf(stdout, "gd_chaos: logs kept in %s\n", config.work_dir.c_str());
  } else if (made_dir) {
    std::error_code ec;
    std::filesystem::remove_all(config.work_dir, ec);
  }
  return rc;
}
