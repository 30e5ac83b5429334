// The JSON the store's statements carry: the columns gd_claim returns, the new rows of an
// insert, the outcomes of a group commit, and the array literals of statement parameters.
// Pure functions (no database), tested in tests/row_codec_test.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gen_durable/model/rows.hpp"

namespace gen_durable::detail {

// A Postgres array literal of ids ("{1,2,3}") for a bigint[] parameter.
std::string IdArray(const std::vector<std::int64_t>& ids);
// A Postgres text[] literal with every element quoted.
std::string TextArray(const std::vector<std::string>& items);

// Decodes the JSON columns of a claimed row as gd_claim returns them: the state, and (unless
// NULL) the unconsumed inbox and the children of the last join. A column that cannot be decoded
// (jsonb stores numbers nlohmann cannot represent, e.g. 1e1000) sets row.state_error, and the
// instance fails without running its step. Never throws (but std::bad_alloc).
void DecodeClaimJson(std::string_view state, std::optional<std::string_view> signals,
                     std::optional<std::string_view> children, ClaimedRow& row);

// Stored JSON for reads: an unrepresentable value is shown as its stored text.
Json ParseForDisplay(std::string_view text);

// The JSON array of new rows that kInsertSource decodes ($1 of gd_insert_batch).
std::string NewInstancesJson(const std::vector<NewInstance>& rows);

// The parameters of one group commit, each a JSON array as text: the outcomes
// (gd_commit_outcomes $1), the parked rows to wake at once (gd_wake_parked $1), the children
// with their parent (gd_spawn_children $1) and the new join barriers (gd_spawn_children $3).
struct CommitPayload {
  std::string outcomes;
  std::string wakes;
  std::string children;
  std::string joins;
};
// Encodes `rows` for CommitOutcomes. Strings that are not valid UTF-8 are repaired (U+FFFD);
// states and results are written as they are (already encoded JSON).
CommitPayload EncodeCommit(const std::vector<OutcomeRow>& rows);

}  // namespace gen_durable::detail
