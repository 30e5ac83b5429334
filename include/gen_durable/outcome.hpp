// Step outcomes: what a step returns to say what happens to its instance next.
//
//   return gen_durable::Next("ship", state);          // go to step "ship", attempt := 0
//   return gen_durable::Replay(state, Millis{500});    // same step again after 500 ms, attempt +=
//   1 return gen_durable::Done({{"shipped", true}});     // terminal `done` with a result return
//   gen_durable::Stop("card declined");         // terminal `failed` return
//   gen_durable::Await({"payment_confirmed"}, state);    // park until a signal return
//   gen_durable::ScheduleChildren("join", children, state);  // fan out, join
//
// Per-transition options chain on any of them:
//   gen_durable::Next("charge", s).RateLimit("stripe", customer).PartitionKey("order:7");
//   gen_durable::Next("remind", s).After(std::chrono::hours(24));  // a durable timer
//
// The outcome is committed to the database before the instance proceeds (the one guarantee).
// Jobs return a `JobResult` instead (see machine.hpp).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gen_durable/options.hpp"

namespace gen_durable {

enum class OutcomeKind { kNext, kReplay, kDone, kStop, kAwait, kScheduleChildren };

// Returns "next", "replay", "done", "stop", "await" or "schedule_children".
const char* OutcomeKindName(OutcomeKind kind) noexcept;

// Options of `Await`.
struct AwaitOptions {
  // Resume at this step instead of re-running the awaiting step.
  std::optional<std::string> next_step;
  // Wake without a signal after this long (resolution: the reaper interval). A wake, not a
  // failure: the step runs again and finds no new signal; attempt is untouched.
  std::optional<Millis> timeout;
};

// Options of `ScheduleChildren`.
struct JoinOptions {
  // Resume once this many children are terminal (k-of-n); default all of them.
  std::optional<int> wait_for;
  // Resume at this deadline even if children are still running.
  std::optional<Millis> deadline;
};

class Outcome {
 public:
  OutcomeKind kind() const { return kind_; }
  // Target step of `next`.
  const std::string& step() const { return step_; }
  // New state of `next` / `replay`.
  const Json& state() const { return state_; }
  // Delay of `replay` (After() sets it too).
  Millis delay() const { return delay_; }
  // The durable timer set by After() (on `next`: the delay; nullopt when none) and At().
  std::optional<Millis> after() const { return after_; }
  std::optional<std::chrono::system_clock::time_point> at() const { return at_; }
  // Result of `done`.
  const Json& result() const { return result_; }
  // Reason of `stop`; for other kinds, an error to record in last_error (set by error routing).
  const std::string& reason() const { return reason_; }
  // Per-transition inline request: true/false, or nullopt for the engine's default.
  std::optional<bool> inline_next() const { return inline_; }
  // Signal names of `await`, and its options.
  const std::vector<std::string>& await_names() const { return await_names_; }
  const AwaitOptions& await_options() const { return await_options_; }
  // Children of `schedule_children` (the next step is `step()`), and the join options.
  const std::vector<InsertRequest>& children() const { return children_; }
  const JoinOptions& join_options() const { return join_options_; }
  // The rate limit the next step's start is subject to.
  const std::optional<RateLimitRef>& rate_limit() const { return rate_limit_; }
  // Partition key change: unset = keep; a value = change to it; nullopt value = release.
  const std::optional<std::optional<std::string>>& partition_key() const { return partition_; }

  // Subjects the next step's start to token bucket `name` (one bucket per `key` if given).
  Outcome& RateLimit(std::string name, std::string key = "", int weight = 1) & {
    rate_limit_ = RateLimitRef{std::move(name), std::move(key), weight};
    return *this;
  }
  Outcome&& RateLimit(std::string name, std::string key = "", int weight = 1) && {
    return std::move(RateLimit(std::move(name), std::move(key), weight));
  }
  // Moves the instance to partition `key` from the next step on.
  Outcome& PartitionKey(std::string key) & {
    partition_ = std::optional<std::string>(std::move(key));
    return *this;
  }
  Outcome&& PartitionKey(std::string key) && { return std::move(PartitionKey(std::move(key))); }
  // Leaves its partition: the next steps run without serialization.
  Outcome& ReleasePartition() & {
    partition_ = std::optional<std::string>();
    return *this;
  }
  Outcome&& ReleasePartition() && { return std::move(ReleasePartition()); }

  // Durable timers, for `next` and `replay`: the next step runs once `delay` has passed after
  // the outcome commits (After) or once the database's clock reaches `when` (At; a time in the
  // past runs it at once). Meanwhile the instance is `scheduled`: it holds no worker and no
  // lease, survives restarts, and any node serving its queue runs it when it is due. The
  // attempt counter is not touched (`next` starts its step at attempt 0, as always), so
  // max_attempts does not apply to the wait. A later call replaces an earlier one. On any
  // other outcome a timer fails the instance with a clear last_error (Await has its own
  // timeout, JoinOptions its deadline).
  Outcome& After(Millis delay) & {
    after_ = delay < Millis{0} ? Millis{0} : delay;
    at_.reset();
    return *this;
  }
  Outcome&& After(Millis delay) && { return std::move(After(delay)); }
  Outcome& At(std::chrono::system_clock::time_point when) & {
    at_ = when;
    after_.reset();
    return *this;
  }
  Outcome&& At(std::chrono::system_clock::time_point when) && { return std::move(At(when)); }

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
  friend Outcome AwaitJson(std::vector<std::string> names, Json state, AwaitOptions options);
  friend Outcome ScheduleChildrenJson(std::string next_step, std::vector<InsertRequest> children,
                                      Json state, JoinOptions options);

 private:
  explicit Outcome(OutcomeKind kind) : kind_(kind) {}
  OutcomeKind kind_;
  std::string step_;
  Json state_;
  Millis delay_{0};
  std::optional<Millis> after_;
  std::optional<std::chrono::system_clock::time_point> at_;
  Json result_;
  std::string reason_;
  std::optional<bool> inline_;
  std::vector<std::string> await_names_;
  AwaitOptions await_options_;
  std::vector<InsertRequest> children_;
  JoinOptions join_options_;
  std::optional<RateLimitRef> rate_limit_;
  std::optional<std::optional<std::string>> partition_;
};

// `next` with an already-encoded JSON state.
Outcome NextJson(std::string step, Json state);
// `replay` with an already-encoded JSON state.
Outcome ReplayJson(Json state, Millis delay);
// Terminal `done`; `result` is stored (null for none).
Outcome Done(Json result = nullptr);
// Terminal `failed` with `reason` as last_error.
Outcome Stop(std::string reason);

// `await` with an already-encoded JSON state.
Outcome AwaitJson(std::vector<std::string> names, Json state, AwaitOptions options = {});
// `schedule_children` with an already-encoded JSON state.
Outcome ScheduleChildrenJson(std::string next_step, std::vector<InsertRequest> children, Json state,
                             JoinOptions options = {});

// Parks the instance (awaiting_signal) until a signal named one of `names` arrives; then the
// same step (or options.next_step) runs again and sees it in ctx.signals().
template <typename State>
Outcome Await(std::vector<std::string> names, const State& state, AwaitOptions options = {}) {
  return AwaitJson(std::move(names), Json(state), std::move(options));
}
// Inserts `children` (each with parent_id = this instance) and parks on the join barrier
// (awaiting_children) in one transaction; `next_step` runs once they are all terminal (or
// options.wait_for of them, or at options.deadline) and sees them in ctx.children().
template <typename State>
Outcome ScheduleChildren(std::string next_step, std::vector<InsertRequest> children,
                         const State& state, JoinOptions options = {}) {
  return ScheduleChildrenJson(std::move(next_step), std::move(children), Json(state),
                              std::move(options));
}

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
