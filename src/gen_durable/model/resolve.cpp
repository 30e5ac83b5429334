// Insert resolution: machine defaults and validation shared by the client and by children.
#include "gen_durable/model/resolve.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <ctime>

#include "gen_durable/error.hpp"
#include "gen_durable/model/status.hpp"
#include "gen_durable/model/validate.hpp"

namespace gen_durable::detail {

namespace {

std::string FormatTimestamp(TimePoint tp) {
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(tp.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1'000'000);
  long frac = static_cast<long>(us % 1'000'000);
  if (frac < 0) {
    frac += 1'000'000;
    secs -= 1;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

void Require(const std::string& problem) {
  if (!problem.empty()) throw InvalidArgument(problem);
}

}  // namespace

NewInstance ResolveInsert(const std::string& fsm, std::optional<int> version, const MachineDef* def,
                          const InsertOptions& o, std::size_t max_payload) {
  Require(NameProblem("insert: machine name", fsm, kMaxNameBytes));
  NewInstance n;
  n.fsm = fsm;
  n.fsm_version = def ? def->version : version.value_or(1);
  if (n.fsm_version < 1) throw InvalidArgument("insert: fsm_version must be >= 1");
  n.queue = o.queue.value_or(def ? def->queue : std::string("default"));
  Require(NameProblem("insert: queue", n.queue, kMaxIdentifierBytes));
  n.step = o.step.value_or(def ? def->initial_step : std::string("start"));
  Require(NameProblem("insert: step", n.step, kMaxNameBytes));
  if (def && std::find(def->steps.begin(), def->steps.end(), n.step) == def->steps.end()) {
    throw InvalidArgument(fmt::format("insert: '{}' is not a step of machine '{}' version {}",
                                      n.step, fsm, n.fsm_version));
  }
  try {
    n.state = o.state.is_null() ? std::string("{}")
                                : o.state.dump(-1, ' ', false, Json::error_handler_t::strict);
  } catch (const Json::exception& e) {
    throw InvalidArgument(std::string("insert: state is not valid JSON text: ") + e.what());
  }
  if (n.state.size() > max_payload) {
    throw InvalidArgument(fmt::format("insert: state is {} bytes, over max_payload_bytes ({})",
                                      n.state.size(), max_payload));
  }
  if (def && def->check_state) {
    // A state the machine cannot decode would only fail its first step: refuse it here.
    try {
      def->check_state(o.state.is_null() ? Json::object() : o.state);
    } catch (const std::exception& e) {
      throw InvalidArgument(fmt::format("insert: state does not fit machine '{}' version {}: {}",
                                        fsm, n.fsm_version, e.what()));
    }
  }
  n.priority = o.priority;
  const int schedules = (o.eligible_at ? 1 : 0) + (o.schedule_at ? 1 : 0) + (o.schedule_in ? 1 : 0);
  if (schedules > 1) {
    throw InvalidArgument("insert: give at most one of eligible_at, schedule_at, schedule_in");
  }
  if (o.eligible_at) n.eligible_at = FormatTimestamp(*o.eligible_at);
  if (o.schedule_at) n.eligible_at = FormatTimestamp(*o.schedule_at);
  if (o.schedule_in) {
    if (o.schedule_in->count() < 0) throw InvalidArgument("insert: schedule_in must be >= 0");
    n.delay_ms = o.schedule_in->count();
  }
  if (o.max_attempts) {
    if (*o.max_attempts < 0) throw InvalidArgument("insert: max_attempts must be >= 0");
    n.max_attempts = *o.max_attempts;
  } else if (def && def->max_attempts > 0) {
    n.max_attempts = def->max_attempts;
  }
  if (o.partition_key) {
    Require(KeyProblem("insert: partition_key", *o.partition_key));
    n.partition_key = o.partition_key;
  }
  if (o.unique_key) {
    Require(KeyProblem("insert: unique_key", *o.unique_key));
    n.unique_key = o.unique_key;
  }
  for (const auto& status : o.unique_scope) {
    if (!ParseStatus(status)) {
      throw InvalidArgument(fmt::format("insert: unique_scope: '{}' is not a status", status));
    }
  }
  if (!o.unique_scope.empty() && !o.unique_key) {
    throw InvalidArgument("insert: unique_scope needs a unique_key");
  }
  if (!o.unique_scope.empty()) {
    // A scope must hold the key through every live status: a scope that a live row could
    // move into while another row holds the key would make that move (a claim, a wake, a
    // park) fail for the whole batch it belongs to. Scopes may add terminal statuses, to keep
    // a key after completion.
    for (const Status s : kAllStatuses) {
      if (IsTerminal(s)) continue;
      const std::string_view live = StatusName(s);
      if (std::find(o.unique_scope.begin(), o.unique_scope.end(), live) == o.unique_scope.end()) {
        throw InvalidArgument(fmt::format(
            "insert: unique_scope must include every live status (missing '{}'); it may add "
            "done, failed or cancelled",
            live));
      }
    }
  }
  n.unique_scope = o.unique_scope;
  if (o.rate_limit) {
    if (o.rate_limit->name.empty()) throw InvalidArgument("insert: rate_limit needs a name");
    Require(NameProblem("insert: rate_limit name", o.rate_limit->name, kMaxNameBytes));
    if (!o.rate_limit->key.empty()) {
      Require(KeyProblem("insert: rate_limit key", o.rate_limit->key));
    }
    if (o.rate_limit->weight < 1) throw InvalidArgument("insert: rate_limit weight must be >= 1");
    n.rate_limit = o.rate_limit;
  }
  return n;
}

NewInstance ResolveRegistered(const InsertRequest& request, std::size_t max_payload,
                              const MachineLookup& find) {
  std::shared_ptr<const MachineDef> def;
  if (find) def = find(request.fsm, request.version);
  if (!def) {
    std::optional<AnyMachine> m = request.version ? FindRegistered(request.fsm, *request.version)
                                                  : FindRegisteredLatest(request.fsm);
    if (m) def = m->shared();
  }
  return ResolveInsert(request.fsm, request.version, def.get(), request.options, max_payload);
}

}  // namespace gen_durable::detail
