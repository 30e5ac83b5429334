// The outcome encoder: see outcome_encoder.hpp.
#include "gen_durable/runtime/outcome_encoder.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "gen_durable/model/status.hpp"
#include "gen_durable/model/validate.hpp"

namespace gen_durable::detail {

namespace {

std::string EncodeJson(const Json& j) {
  // Invalid UTF-8 in user strings is replaced rather than failing the whole outcome.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

bool HasStep(const MachineDef& def, const std::string& step) {
  return std::find(def.steps.begin(), def.steps.end(), step) != def.steps.end();
}

std::vector<std::int64_t> SignalIds(const ClaimedRow& data) {
  std::vector<std::int64_t> ids;
  for (const auto& s : data.signals) ids.push_back(s.id);
  return ids;
}

// The durable timer of a `next` or `replay`: when its next step may start.
void SetTimer(OutcomeRow& row, const Outcome& out) {
  if (out.at()) {
    row.delay_ms.reset();
    row.run_at_ms = std::chrono::duration_cast<Millis>(out.at()->time_since_epoch()).count();
  } else if (out.after()) {
    row.delay_ms = out.after()->count();
  }
}

}  // namespace

OutcomeRow& FailOutcome(OutcomeRow& row, int attempt, std::string error) {
  OutcomeRow failed;
  failed.id = row.id;
  failed.lease_seq = row.lease_seq;
  failed.claim_step = row.claim_step;
  failed.ran_step = std::move(row.ran_step);
  failed.ran_attempt = row.ran_attempt;
  failed.duration_ms = row.duration_ms;
  failed.status = StatusName(Status::kFailed);
  failed.attempt = attempt;
  failed.clear_inbox = true;
  failed.last_error = std::move(error);
  row = std::move(failed);
  return row;
}

OutcomeRow EncodeOutcome(const MachineDef& def, const ClaimedRow& data, const Outcome& out,
                         bool keep, const EngineOptions& options, const MachineLookup& find) {
  OutcomeRow row;
  row.id = data.id;
  row.lease_seq = data.lease_seq;
  if (!out.reason().empty() && out.kind() != OutcomeKind::kStop) row.last_error = out.reason();
  if (out.rate_limit()) {
    const auto& rl = *out.rate_limit();
    if (!options.rate_limits.count(rl.name)) {
      // The next step does not run under a limit nobody defined: fail (reported by the caller).
      return FailOutcome(row, data.attempt,
                         fmt::format("step '{}' named rate limit '{}', which this engine does not "
                                     "define (EngineOptions::rate_limits)",
                                     data.step, rl.name));
    }
    if (rl.weight < 1) return FailOutcome(row, data.attempt, "rate limit weight must be >= 1");
    row.rate_limit = rl;
  }
  if (out.partition_key()) {
    if (*out.partition_key() && (*out.partition_key())->empty()) {
      return FailOutcome(row, data.attempt,
                         "partition key must not be empty (use ReleasePartition)");
    }
    row.partition = *out.partition_key();
  }
  const bool timer = out.after() || out.at();
  if (timer && out.kind() != OutcomeKind::kNext && out.kind() != OutcomeKind::kReplay) {
    // Silently dropping the timer would run (or end) the instance at once instead of waiting.
    return FailOutcome(row, data.attempt,
                       fmt::format("step '{}' returned {} with a timer (After/At), which only "
                                   "next and replay take",
                                   data.step, OutcomeKindName(out.kind())));
  }
  switch (out.kind()) {
    case OutcomeKind::kNext:
      if (!HasStep(def, out.step())) {
        return FailOutcome(
            row, data.attempt,
            fmt::format("step '{}' returned next('{}'), which is not a step of machine "
                        "'{}' version {}",
                        data.step, out.step(), def.name, def.version));
      }
      // (a timer never runs ahead on the same claim: the row waits, holding nothing)
      row.keep = keep && !timer;
      row.status = StatusName(row.keep ? Status::kExecuting : Status::kRunnable);
      row.step = out.step();
      row.state = EncodeJson(out.state());
      row.attempt = 0;
      row.consume = SignalIds(data);
      SetTimer(row, out);
      break;
    case OutcomeKind::kReplay:
      if (data.max_attempts > 0 && data.attempt + 1 >= data.max_attempts) {
        // The crash-loop guard covers replays too: a handler that replays forever stops here.
        return FailOutcome(row, data.attempt,
                           fmt::format("{}{}max attempts ({}) reached in step '{}'{}", out.reason(),
                                       out.reason().empty() ? "" : " (", data.max_attempts,
                                       data.step, out.reason().empty() ? "" : ")"));
      }
      row.status = StatusName(Status::kRunnable);
      row.state = EncodeJson(out.state());
      row.attempt = data.attempt + 1;
      row.delay_ms = out.delay().count();
      SetTimer(row, out);
      row.keep_awaiting = true;
      break;
    case OutcomeKind::kAwait: {
      const auto& opts = out.await_options();
      if (out.await_names().empty()) {
        return FailOutcome(row, data.attempt,
                           fmt::format("step '{}' awaited no signal name", data.step));
      }
      for (const auto& n : out.await_names()) {
        // A name no signal can carry would park the instance for good.
        auto problem = NameProblem("await: signal name", n, kMaxNameBytes);
        if (!problem.empty()) return FailOutcome(row, data.attempt, std::move(problem));
      }
      if (opts.next_step && !HasStep(def, *opts.next_step)) {
        return FailOutcome(row, data.attempt,
                           fmt::format("await next_step '{}' is not a step of machine '{}'",
                                       *opts.next_step, def.name));
      }
      row.status = StatusName(Status::kAwaitingSignal);
      row.state = EncodeJson(out.state());
      row.attempt = data.attempt;
      row.awaiting = out.await_names();
      row.await_next_step = opts.next_step;
      row.shown = SignalIds(data);
      if (opts.timeout) row.park_ms = std::max<std::int64_t>(0, opts.timeout->count());
      break;
    }
    case OutcomeKind::kScheduleChildren: {
      const auto& opts = out.join_options();
      if (!HasStep(def, out.step())) {
        return FailOutcome(
            row, data.attempt,
            fmt::format("schedule_children next step '{}' is not a step of machine '{}'",
                        out.step(), def.name));
      }
      if (opts.wait_for && *opts.wait_for < 1) {
        return FailOutcome(row, data.attempt, "schedule_children: wait_for must be >= 1");
      }
      try {
        for (const auto& child : out.children()) {
          row.children.push_back(ResolveRegistered(child, options.max_payload_bytes, find));
        }
      } catch (const std::exception& e) {
        return FailOutcome(
            row, data.attempt,
            fmt::format("step '{}' scheduled an invalid child: {}", data.step, e.what()));
      }
      // The children are inserted by one statement, which takes at most this much.
      std::size_t bytes = 0;
      for (const auto& child : row.children) bytes += child.state.size();
      if (bytes > kMaxStatementJsonBytes) {
        return FailOutcome(
            row, data.attempt,
            fmt::format("step '{}' called schedule_children with {} children carrying "
                        "{} bytes of state, over the {} bytes one join can insert; "
                        "schedule fewer or smaller children (or nest the joins)",
                        data.step, row.children.size(), bytes, kMaxStatementJsonBytes));
      }
      row.status = StatusName(Status::kAwaitingChildren);
      row.state = EncodeJson(out.state());
      row.attempt = data.attempt;
      row.join_next_step = out.step();
      row.wait_for = opts.wait_for;
      row.consume = SignalIds(data);
      if (opts.deadline) row.park_ms = std::max<std::int64_t>(0, opts.deadline->count());
      break;
    }
    case OutcomeKind::kDone:
      row.status = StatusName(Status::kDone);
      row.attempt = data.attempt;
      row.clear_inbox = true;
      if (!out.result().is_null()) row.result = EncodeJson(out.result());
      break;
    case OutcomeKind::kStop:
      row.status = StatusName(Status::kFailed);
      row.attempt = data.attempt;
      row.clear_inbox = true;
      row.last_error = out.reason().empty() ? std::string("stopped") : out.reason();
      break;
  }
  const std::size_t limit = options.max_payload_bytes;
  const std::size_t size =
      std::max(row.state ? row.state->size() : 0, row.result ? row.result->size() : 0);
  if (size > limit) {
    return FailOutcome(row, data.attempt,
                       fmt::format("step '{}' produced {} bytes of state/result, over "
                                   "max_payload_bytes ({})",
                                   data.step, size, limit));
  }
  return row;
}

}  // namespace gen_durable::detail
