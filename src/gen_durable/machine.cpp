// Machine registry, context accessors, outcome constructors and job result routing.
#include "gen_durable/machine.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>
#include <random>

#include "gen_durable/error.hpp"
#include "gen_durable/model/context_data.hpp"
#include "gen_durable/model/validate.hpp"
#include "gen_durable/util/thread_annotations.hpp"

namespace gen_durable {

// --- outcomes ---

const char* OutcomeKindName(OutcomeKind kind) noexcept {
  switch (kind) {
    case OutcomeKind::kNext:
      return "next";
    case OutcomeKind::kReplay:
      return "replay";
    case OutcomeKind::kDone:
      return "done";
    case OutcomeKind::kStop:
      return "stop";
    case OutcomeKind::kAwait:
      return "await";
    case OutcomeKind::kScheduleChildren:
      return "schedule_children";
  }
  return "unknown";
}

Outcome NextJson(std::string step, Json state) {
  Outcome o(OutcomeKind::kNext);
  o.step_ = std::move(step);
  o.state_ = std::move(state);
  return o;
}

Outcome ReplayJson(Json state, Millis delay) {
  Outcome o(OutcomeKind::kReplay);
  o.state_ = std::move(state);
  o.delay_ = delay < Millis{0} ? Millis{0} : delay;
  return o;
}

Outcome Done(Json result) {
  Outcome o(OutcomeKind::kDone);
  o.result_ = std::move(result);
  return o;
}

Outcome Stop(std::string reason) {
  Outcome o(OutcomeKind::kStop);
  o.reason_ = std::move(reason);
  return o;
}

Outcome AwaitJson(std::vector<std::string> names, Json state, AwaitOptions options) {
  Outcome o(OutcomeKind::kAwait);
  o.await_names_ = std::move(names);
  o.state_ = std::move(state);
  o.await_options_ = std::move(options);
  return o;
}

Outcome ScheduleChildrenJson(std::string next_step, std::vector<InsertRequest> children, Json state,
                             JoinOptions options) {
  Outcome o(OutcomeKind::kScheduleChildren);
  o.step_ = std::move(next_step);
  o.children_ = std::move(children);
  o.state_ = std::move(state);
  o.join_options_ = std::move(options);
  return o;
}

// --- context ---

std::int64_t Context::id() const { return d_->row.id; }
const std::string& Context::fsm() const { return d_->row.fsm; }
int Context::fsm_version() const { return d_->row.fsm_version; }
const std::string& Context::step() const { return d_->row.step; }
int Context::attempt() const { return d_->row.attempt; }
int Context::max_attempts() const { return d_->row.max_attempts; }
const std::string& Context::queue() const { return d_->row.queue; }
int Context::priority() const { return d_->row.priority; }
const Json& Context::raw_state() const { return d_->row.state; }
bool Context::cancelled() const { return d_->cancelled.load(std::memory_order_relaxed); }
std::optional<std::string> Context::partition_key() const { return d_->row.partition_key; }
std::optional<std::string> Context::unique_key() const { return d_->row.unique_key; }
const std::vector<Signal>& Context::signals() const { return d_->row.signals; }
const Signal* Context::FindSignal(const std::string& name) const {
  for (const auto& s : d_->row.signals) {
    if (s.name == name) return &s;
  }
  return nullptr;
}
const std::vector<ChildResult>& Context::children() const { return d_->row.children; }

// --- backoff ---

Millis DefaultBackoff(int attempt) {
  constexpr double kCapMs = 300'000.0;
  const int exp = std::clamp(attempt, 0, 30);
  const double base = std::min(1000.0 * static_cast<double>(1LL << exp), kCapMs);
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> jitter(0.75, 1.25);
  return Millis{static_cast<std::int64_t>(std::min(base * jitter(rng), kCapMs))};
}

// --- registry ---

namespace {

struct Registry {
  detail::Mutex mu;
  std::vector<AnyMachine> machines GD_GUARDED_BY(mu);
};

Registry& GlobalRegistry() {
  static Registry* r = new Registry();  // never destroyed: static registrars may run late
  return *r;
}

}  // namespace

void Register(const AnyMachine& machine) {
  if (!machine) throw ConfigError("cannot register an empty machine");
  auto& r = GlobalRegistry();
  detail::MutexLock lock(r.mu);
  for (const auto& m : r.machines) {
    if (m.name() == machine.name() && m.version() == machine.version()) {
      throw ConfigError(fmt::format("machine '{}' version {} is already registered", machine.name(),
                                    machine.version()));
    }
  }
  r.machines.push_back(machine);
}

std::optional<AnyMachine> FindRegistered(const std::string& name, int version) {
  auto& r = GlobalRegistry();
  detail::MutexLock lock(r.mu);
  for (const auto& m : r.machines) {
    if (m.name() == name && m.version() == version) return m;
  }
  return std::nullopt;
}

std::optional<AnyMachine> FindRegisteredLatest(const std::string& name) {
  auto& r = GlobalRegistry();
  detail::MutexLock lock(r.mu);
  std::optional<AnyMachine> best;
  for (const auto& m : r.machines) {
    if (m.name() == name && (!best || m.version() > best->version())) best = m;
  }
  return best;
}

std::vector<AnyMachine> AllRegistered() {
  auto& r = GlobalRegistry();
  detail::MutexLock lock(r.mu);
  return r.machines;
}

namespace detail {

std::string DecodeErrorMessage(const std::exception& e) {
  return std::string("state decode failed: ") + e.what();
}

const Json& StateOf(ContextData* data) { return data->row.state; }
const std::string& StepOf(ContextData* data) { return data->row.step; }

Outcome UnknownStep(ContextData* data, const std::vector<std::string>& known) {
  std::string list;
  for (const auto& s : known) list += (list.empty() ? "" : ", ") + s;
  return Stop(fmt::format("unknown step '{}' for machine '{}' version {} (known steps: {})",
                          data->row.step, data->row.fsm, data->row.fsm_version, list));
}

Outcome StepErrorToStop(const StepError& error) { return Stop(error.message); }

Outcome RouteJobResult(ContextData* data, const MachineDef& def, int kind, Json value,
                       std::string reason) {
  switch (static_cast<JobResult::Kind>(kind)) {
    case JobResult::Kind::kOk:
      return Done(std::move(value));
    case JobResult::Kind::kCancel:
      return Stop(std::move(reason));
    case JobResult::Kind::kError:
      break;
  }
  const int limit = data->row.max_attempts > 0 ? data->row.max_attempts : def.max_attempts;
  if (limit > 0 && data->row.attempt + 1 >= limit) {
    return Stop(fmt::format("{} (attempt {} of {})", reason, data->row.attempt + 1, limit));
  }
  const Millis delay =
      def.backoff ? def.backoff(data->row.attempt) : DefaultBackoff(data->row.attempt);
  return ReplayJson(data->row.state, delay).WithError(std::move(reason));
}

void Validate(const MachineDef& def) {
  if (def.name.empty()) throw ConfigError("a machine needs a non-empty name");
  // The limits every insert checks: a machine nobody can insert is refused when defined.
  if (auto problem = NameProblem("machine name", def.name, kMaxNameBytes); !problem.empty()) {
    throw ConfigError(problem);
  }
  if (auto problem =
          NameProblem(fmt::format("machine '{}': queue", def.name), def.queue, kMaxIdentifierBytes);
      !problem.empty()) {
    throw ConfigError(problem);
  }
  for (const auto& step : def.steps) {
    if (auto problem =
            NameProblem(fmt::format("machine '{}': step name", def.name), step, kMaxNameBytes);
        !problem.empty()) {
      throw ConfigError(problem);
    }
  }
  if (def.version < 1) {
    throw ConfigError(fmt::format("machine '{}': version must be >= 1", def.name));
  }
  if (def.queue.empty()) {
    throw ConfigError(fmt::format("machine '{}': queue must not be empty", def.name));
  }
  if (def.max_attempts < 0) {
    throw ConfigError(fmt::format("machine '{}': max_attempts must be >= 0", def.name));
  }
  if (def.steps.empty()) throw ConfigError(fmt::format("machine '{}' has no steps", def.name));
  if (std::find(def.steps.begin(), def.steps.end(), def.initial_step) == def.steps.end()) {
    throw ConfigError(
        fmt::format("machine '{}': initial step '{}' is not defined", def.name, def.initial_step));
  }
}

}  // namespace detail
}  // namespace gen_durable
