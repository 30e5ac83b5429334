// An instance's status: the enum the C++ code compares, and the names the database and the
// public read models (InstanceInfo::status, the CLI, the dashboard) carry.
//
// The SQL text keeps its literals ('runnable', ...): the partial indexes are declared on them,
// and a statement must spell the predicate of the index it means to use.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string_view>

#include "gen_durable/info.hpp"

namespace gen_durable::detail {

enum class Status {
  kScheduled,         // waiting for eligible_at
  kRunnable,          // ready to be claimed
  kExecuting,         // claimed by a node
  kAwaitingSignal,    // parked until a signal (or its timeout)
  kAwaitingChildren,  // parked at a join barrier
  kDone,
  kFailed,
  kCancelled,
};

inline constexpr std::array<Status, 8> kAllStatuses = {
    Status::kScheduled,        Status::kRunnable, Status::kExecuting, Status::kAwaitingSignal,
    Status::kAwaitingChildren, Status::kDone,     Status::kFailed,    Status::kCancelled};

// The name stored in gd_instances.status (kInstanceStatuses lists them in the enum's order).
constexpr std::string_view StatusName(Status s) {
  return kInstanceStatuses[static_cast<std::size_t>(s)];
}

// The status named `name`; nullopt for any other text.
constexpr std::optional<Status> ParseStatus(std::string_view name) {
  for (const Status s : kAllStatuses) {
    if (StatusName(s) == name) return s;
  }
  return std::nullopt;
}

// done, failed and cancelled: the instance runs no more.
constexpr bool IsTerminal(Status s) { return IsTerminalStatus(StatusName(s)); }

static_assert(StatusName(Status::kAwaitingChildren) == "awaiting_children" &&
              StatusName(Status::kCancelled) == "cancelled");

}  // namespace gen_durable::detail
