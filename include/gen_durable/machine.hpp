// Defining machines and jobs, and registering them so the engine finds them by name + version.
//
// A machine has named steps over a typed state (any struct with a nlohmann JSON mapping; use
// NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT so missing fields take the struct's
// defaults). A job is the one-step form: a `perform` function over typed args.
//
//   struct Order { int order = 0; int n = 0; };
//   NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Order, order, n)
//
//   const auto checkout = gen_durable::Machine<Order>("Checkout")
//       .Queue("checkout")
//       .Step("start", [](auto& ctx) { return gen_durable::Next("ship", ctx.state()); })
//       .Step("ship", [](auto&) { return gen_durable::Done(); })
//       .Register();
//
//   struct CleanupArgs { std::string path; };
//   NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(CleanupArgs, path)
//   const auto cleanup = gen_durable::Job<CleanupArgs>("Cleanup")
//       .Perform([](const CleanupArgs& a, gen_durable::JobContext&) {
//         std::filesystem::remove_all(a.path);
//         return gen_durable::JobResult::Ok();
//       })
//       .Register();
//
// `Machine` has no `Perform` and `Job` has no `Step`, so a definition is one or the other by
// construction. `Register()` adds the definition to the process-wide registry (call it at
// namespace scope for a static registrar, or from main); it throws ConfigError on an
// incomplete definition or a name + version registered twice. Registration is thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gen_durable/context.hpp"
#include "gen_durable/error.hpp"
#include "gen_durable/outcome.hpp"

namespace gen_durable {

// An exception from a step (or a state that failed to decode), as seen by an error handler.
struct StepError {
  std::string message;
  // The state could not be decoded into the machine's State type.
  bool decode_error = false;
};

// Retry delay after the `attempt`-th failure (0-based). The default is capped exponential
// with jitter: min(1 s * 2^attempt, 300 s), scaled by a random factor in [0.75, 1.25).
using BackoffFn = std::function<Millis(int attempt)>;
Millis DefaultBackoff(int attempt);

namespace detail {

// The type-erased form of a machine, as the runtime sees it.
struct MachineDef {
  std::string name;
  int version = 1;
  std::string queue = "default";
  std::string initial_step = "start";
  bool is_job = false;
  // Runs of one step before the instance fails (errors, crash recoveries). 0: no limit.
  int max_attempts = 0;
  BackoffFn backoff;
  std::vector<std::string> steps;
  // Runs the step named by the context: decodes the state, dispatches, routes exceptions.
  // Never throws.
  std::function<Outcome(ContextData*)> run;
  // Throws when a state does not decode into the machine's State (checked at insert).
  std::function<void(const Json&)> check_state;
};

std::string DecodeErrorMessage(const std::exception& e);
Outcome UnknownStep(ContextData* data, const std::vector<std::string>& known);
Outcome RouteJobResult(ContextData* data, const MachineDef& def, int kind, Json value,
                       std::string reason);
Outcome StepErrorToStop(const StepError& error);
const Json& StateOf(ContextData* data);
const std::string& StepOf(ContextData* data);
void Validate(const MachineDef& def);

}  // namespace detail

// A built machine or job of any state type: what the registry and the engine hold.
class AnyMachine {
 public:
  AnyMachine() = default;
  explicit AnyMachine(std::shared_ptr<const detail::MachineDef> def) : def_(std::move(def)) {}
  const std::string& name() const { return def_->name; }
  int version() const { return def_->version; }
  const detail::MachineDef& def() const { return *def_; }
  std::shared_ptr<const detail::MachineDef> shared() const { return def_; }
  explicit operator bool() const { return def_ != nullptr; }

 private:
  std::shared_ptr<const detail::MachineDef> def_;
};

// A typed handle to a built machine, for typed inserts (`client.Insert(ref, state)`).
template <typename State>
class MachineRef : public AnyMachine {
 public:
  using StateType = State;
  MachineRef() = default;
  explicit MachineRef(AnyMachine m) : AnyMachine(std::move(m)) {}
};

// Adds `machine` to the process-wide registry. Throws ConfigError on a duplicate name+version.
void Register(const AnyMachine& machine);
// Looks up a registered machine; nullopt when unknown.
std::optional<AnyMachine> FindRegistered(const std::string& name, int version);
// The newest registered version of `name`; nullopt when unknown.
std::optional<AnyMachine> FindRegisteredLatest(const std::string& name);
// All registered machines.
std::vector<AnyMachine> AllRegistered();

// Builder of a step machine over `State` (use gen_durable::Json for an untyped JSON object).
template <typename State>
class Machine {
 public:
  using StepFn = std::function<Outcome(StepContext<State>&)>;
  using ErrorFn = std::function<Outcome(const StepError&, StepContext<State>&)>;

  explicit Machine(std::string name) { def_.name = std::move(name); }
  Machine& Version(int v) {
    def_.version = v;
    return *this;
  }
  Machine& Queue(std::string q) {
    def_.queue = std::move(q);
    return *this;
  }
  Machine& Initial(std::string step) {
    def_.initial_step = std::move(step);
    return *this;
  }
  // Crash-loop guard: the instance fails when one step has run this many times without a
  // `next` (replays and crash recoveries both count). 0: no limit.
  Machine& MaxAttempts(int n) {
    def_.max_attempts = n;
    return *this;
  }
  Machine& Step(std::string name, StepFn fn) {
    def_.steps.push_back(name);
    steps_[std::move(name)] = std::move(fn);
    return *this;
  }
  // Receives exceptions thrown by steps (and undecodable states); returns any outcome.
  // Default: Stop(error message).
  Machine& OnError(ErrorFn fn) {
    on_error_ = std::move(fn);
    return *this;
  }

  // Returns the definition without registering it (pass it in EngineOptions::machines).
  MachineRef<State> Build() const {
    auto def = std::make_shared<detail::MachineDef>(def_);
    def->is_job = false;
    def->run = [steps = steps_, on_error = on_error_,
                names = def_.steps](detail::ContextData* data) -> Outcome {
      State state{};
      try {
        state = detail::StateOf(data).template get<State>();
      } catch (const std::exception& e) {
        StepContext<State> ctx(data, State{});
        return HandleError(on_error, StepError{detail::DecodeErrorMessage(e), true}, ctx);
      }
      StepContext<State> ctx(data, std::move(state));
      auto it = steps.find(detail::StepOf(data));
      if (it == steps.end()) return detail::UnknownStep(data, names);
      try {
        return it->second(ctx);
      } catch (const std::exception& e) {
        return HandleError(on_error, StepError{e.what(), false}, ctx);
      } catch (...) {
        return HandleError(on_error, StepError{"unknown exception", false}, ctx);
      }
    };
    def->check_state = [](const Json& j) { (void)j.template get<State>(); };
    detail::Validate(*def);
    return MachineRef<State>(AnyMachine(std::move(def)));
  }
  // Builds and registers; returns the typed handle.
  MachineRef<State> Register() const {
    auto ref = Build();
    gen_durable::Register(ref);
    return ref;
  }

 private:
  static Outcome HandleError(const ErrorFn& on_error, const StepError& error,
                             StepContext<State>& ctx) {
    if (!on_error) return detail::StepErrorToStop(error);
    try {
      Outcome out = on_error(error, ctx);
      if (out.kind() != OutcomeKind::kStop && out.reason().empty()) {
        out.WithError(error.message);
      }
      return out;
    } catch (const std::exception& e) {
      return detail::StepErrorToStop(StepError{std::string("error handler threw: ") + e.what()});
    } catch (...) {
      return detail::StepErrorToStop(StepError{"error handler threw"});
    }
  }

  detail::MachineDef def_;
  std::map<std::string, StepFn> steps_;
  ErrorFn on_error_;
};

// What a job's perform returns.
class JobResult {
 public:
  enum class Kind { kOk = 0, kError = 1, kCancel = 2 };
  // Success; `result` (optional) is stored. The instance becomes `done`.
  static JobResult Ok(Json result = nullptr) { return JobResult(Kind::kOk, std::move(result), {}); }
  // Failure: retried after backoff(attempt) until max_attempts, then `failed`.
  static JobResult Error(std::string reason) {
    return JobResult(Kind::kError, {}, std::move(reason));
  }
  // Failure without retry: `failed` at once.
  static JobResult Cancel(std::string reason) {
    return JobResult(Kind::kCancel, {}, std::move(reason));
  }
  Kind kind() const { return kind_; }
  const Json& result() const { return result_; }
  const std::string& reason() const { return reason_; }

 private:
  JobResult(Kind k, Json r, std::string reason)
      : kind_(k), result_(std::move(r)), reason_(std::move(reason)) {}
  Kind kind_;
  Json result_;
  std::string reason_;
};

// Builder of a job over `Args`. Default max_attempts 20, default backoff DefaultBackoff.
template <typename Args>
class Job {
 public:
  using PerformFn = std::function<JobResult(const Args&, JobContext&)>;

  explicit Job(std::string name) {
    def_.name = std::move(name);
    def_.initial_step = "perform";
    def_.max_attempts = 20;
  }
  Job& Version(int v) {
    def_.version = v;
    return *this;
  }
  Job& Queue(std::string q) {
    def_.queue = std::move(q);
    return *this;
  }
  Job& MaxAttempts(int n) {
    def_.max_attempts = n;
    return *this;
  }
  Job& Backoff(BackoffFn fn) {
    def_.backoff = std::move(fn);
    return *this;
  }
  Job& Perform(PerformFn fn) {
    perform_ = std::move(fn);
    return *this;
  }

  MachineRef<Args> Build() const {
    auto def = std::make_shared<detail::MachineDef>(def_);
    def->is_job = true;
    def->steps = {def_.initial_step};
    const detail::MachineDef* raw = def.get();
    def->run = [perform = perform_, raw](detail::ContextData* data) -> Outcome {
      Args args{};
      try {
        args = detail::StateOf(data).template get<Args>();
      } catch (const std::exception& e) {
        // Bad args never decode on a retry: fail at once instead of burning attempts.
        return detail::RouteJobResult(data, *raw, static_cast<int>(JobResult::Kind::kCancel), {},
                                      detail::DecodeErrorMessage(e));
      }
      JobContext ctx(data);
      try {
        JobResult r = perform(args, ctx);
        return detail::RouteJobResult(data, *raw, static_cast<int>(r.kind()), r.result(),
                                      r.reason());
      } catch (const std::exception& e) {
        return detail::RouteJobResult(data, *raw, static_cast<int>(JobResult::Kind::kError), {},
                                      e.what());
      } catch (...) {
        return detail::RouteJobResult(data, *raw, static_cast<int>(JobResult::Kind::kError), {},
                                      "unknown exception");
      }
    };
    def->check_state = [](const Json& j) { (void)j.template get<Args>(); };
    if (!perform_) throw ConfigError("job '" + def_.name + "' has no Perform function");
    detail::Validate(*def);
    return MachineRef<Args>(AnyMachine(std::move(def)));
  }
  MachineRef<Args> Register() const {
    auto ref = Build();
    gen_durable::Register(ref);
    return ref;
  }

 private:
  detail::MachineDef def_;
  PerformFn perform_;
};

}  // namespace gen_durable
