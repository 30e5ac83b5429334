// Step outcomes: what a step returns to say what happens to its instance next.
//
//   return gen_durable::Next("ship", state);          // go to step "ship", attempt := 0
//   return gen_durable::Replay(state, Millis{500});    // same step again after 500 ms, attempt += 1
//   return gen_durable::Done({{"shipped", true}});     // terminal `done` with a result
//   return gen_durable::Stop("card declined");         // terminal `failed`
//
// The outcome is committed to the database before the instance proceeds (the one guarantee).
// Jobs return a `JobResult` instead (see machine.hpp).
#pragma once

#include <optional>
#include <string>
#include <utility>

#include "gen_durable/options.hpp"

namespace gen_durable {

enum class OutcomeKind { kNext, kReplay, kDone, kStop };

// Returns "next", "replay", "done" or "stop".
const char* OutcomeKindName(OutcomeKind kind) noexcept;

class Outcome {
 public:
  OutcomeKind kind() const { return kind_; }
  // Target step of `next`.
  const std::string& step() const { return step_; }
  // New state of `next` / `replay`.
  const Json& state() const { return state_; }
  // Delay of `replay`.
  Millis delay() const { return delay_; }
  // Result of `done`.
  const Json& result() const { return result_; }
  // Reason of `stop`; for other kinds, an error to record in last_error (set by error routing).
  const std::string& reason() const { return reason_; }
  // Per-transition inline request: true/false, or nullopt for the engine's default.
  std::optional<bool> inline_next() const { return inline_; }

  // Asks the engine to run the next step on the same claim (true) or to queue it (false).
  Outcome& Inline(bool on = true) & {
    inline_ = on;
    return *this;
  }
  Outcome&& Inline(bool on = true) && {
    inline_ = on;
    return std::move(*this);
  }
  // Records `error` as the instance's last_error alongside a non-terminal outcome.
  Outcome& WithError(std::string error) & {
    reason_ = std::move(error);
    return *this;
  }
  Outcome&& WithError(std::string error) && {
    reason_ = std::move(error);
    return std::move(*this);
  }

  friend Outcome NextJson(std::string step, Json state);
  friend Outcome ReplayJson(Json state, Millis delay);
  friend Outcome Done(Json result);
  friend Outcome Stop(std::string reason);

 private:
  explicit Outcome(OutcomeKind kind) : kind_(kind) {}
  OutcomeKind kind_;
  std::string step_;
  Json state_;
  Millis delay_{0};
  Json result_;
  std::string reason_;
  std::optional<bool> inline_;
};

// `next` with an already-encoded JSON state.
Outcome NextJson(std::string step, Json state);
// `replay` with an already-encoded JSON state.
Outcome ReplayJson(Json state, Millis delay);
// Terminal `done`; `result` is stored (null for none).
Outcome Done(Json result = nullptr);
// Terminal `failed` with `reason` as last_error.
Outcome Stop(std::string reason);

// Go to `step` with `state` (any type with a JSON mapping), status runnable, attempt := 0.
template <typename State>
Outcome Next(std::string step, const State& state) {
  return NextJson(std::move(step), Json(state));
}
// Run the same step again after `delay` with `state`; attempt += 1.
template <typename State>
Outcome Replay(const State& state, Millis delay = Millis{0}) {
  return ReplayJson(Json(state), delay);
}

}  // namespace gen_durable
