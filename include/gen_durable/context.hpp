// The step context: what a running step knows about its instance.
//
//   gen_durable::Outcome Ship(gen_durable::StepContext<Order>& ctx) {
//     if (ctx.cancelled()) return gen_durable::Stop("cancelled");
//     Courier::Send(ctx.state().order, /*idempotency_key=*/ctx.id());
//     return gen_durable::Done();
//   }
//
// A context is valid only during the step call it was passed to. Not thread-safe except
// `cancelled()`, which may be polled from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gen_durable/options.hpp"

namespace gen_durable {

namespace detail {
struct ContextData;
}

// A signal delivered to an instance and not yet consumed.
struct Signal {
  std::int64_t id = 0;
  std::string name;
  Json payload;
};

// A child of the last `schedule_children`, as the step after the join sees it.
struct ChildResult {
  std::int64_t id = 0;
  std::string fsm;
  std::string status;  // done, failed, cancelled (or a live status after a deadline / k-of-n)
  Json state;
  Json result;
  std::optional<std::string> last_error;
};

class Context {
 public:
  explicit Context(detail::ContextData* data) : d_(data) {}

  // The instance id (stable across retries; use it as an idempotency key).
  std::int64_t id() const;
  // Machine name (`fsm` column) and version.
  const std::string& fsm() const;
  int fsm_version() const;
  // The step being run.
  const std::string& step() const;
  // 0-based count of runs of this step: incremented by `replay`, errors and crash recovery,
  // reset by `next`.
  int attempt() const;
  // The attempt limit in force for this instance (0: no limit).
  int max_attempts() const;
  const std::string& queue() const;
  int priority() const;
  // The state as stored (undecoded JSON).
  const Json& raw_state() const;
  // True once the instance was cancelled while this step runs: return soon.
  bool cancelled() const;
  std::optional<std::string> partition_key() const;
  std::optional<std::string> unique_key() const;
  // The unconsumed signals of the names this step awaited, oldest first: empty for a step
  // that did not await (other signals wait in the inbox for the step that awaits them).
  const std::vector<Signal>& signals() const;
  // The first unconsumed signal named `name`, or nullptr.
  const Signal* FindSignal(const std::string& name) const;
  // Children of the last `schedule_children`, in insertion order.
  const std::vector<ChildResult>& children() const;

 protected:
  detail::ContextData* d_;
};

// A context with the machine's decoded state. Changes to `state()` are not saved by themselves:
// pass the state to the outcome (`Next("x", ctx.state())`).
template <typename State>
class StepContext : public Context {
 public:
  StepContext(detail::ContextData* data, State state) : Context(data), state_(std::move(state)) {}
  State& state() { return state_; }
  const State& state() const { return state_; }

 private:
  State state_;
};

// Jobs get their args as a separate argument and this untyped context.
using JobContext = Context;

}  // namespace gen_durable
