// Turns a step's Outcome into the OutcomeRow the flusher commits: the outcome checked against
// the machine and the engine's options, in absolute terms (so a retried commit is idempotent).
// Pure: reads nothing but its arguments, so it is tested alone (tests/outcome_encoder_test.cpp).
#pragma once

#include <string>

#include "gen_durable/machine.hpp"
#include "gen_durable/model/resolve.hpp"
#include "gen_durable/model/rows.hpp"
#include "gen_durable/options.hpp"
#include "gen_durable/outcome.hpp"

namespace gen_durable::detail {

// Turns the outcome of the step `data` ran into the row to commit: checks it against `def` and
// `options` (steps, rate limits, payload size; children resolved with `find`) and makes
// anything invalid a failed row naming the error. `keep` asks to hold the claim (inline
// run-ahead). Reads nothing but its arguments (and the machine registry, for children `find`
// does not know); never throws (but std::bad_alloc).
OutcomeRow EncodeOutcome(const MachineDef& def, const ClaimedRow& data, const Outcome& out,
                         bool keep, const EngineOptions& options, const MachineLookup& find);

// Makes `row` a failed outcome at `attempt` with `error`: the instance ends and its inbox goes
// (a terminal outcome clears it), and nothing else the row carried applies (no step, state,
// signals to consume, await, children, partition or rate limit change). Kept: the claim it
// commits for (id, lease_seq, claim_step) and what the history records of the step that ran.
OutcomeRow& FailOutcome(OutcomeRow& row, int attempt, std::string error);

}  // namespace gen_durable::detail
