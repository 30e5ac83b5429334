// Fuzz target: what the runtime decodes from a claimed row besides the state, and what it
// encodes from a step's outcome for the commit.
//
// The first byte picks the half:
//   even ('D'): the rest is "STATE\0SIGNALS\0CHILDREN" (a missing part is a NULL column), the
//     JSON columns of a claimed row, decoded by DecodeClaimJson as Store::Claim does. Nothing
//     may throw; a well-formed inbox and join decode to exactly their signals and children.
//   odd ('E'): the rest builds an outcome of any kind with any options (states with invalid
//     UTF-8 and NaN, unknown steps and rate limits, bad children, negative delays ...), which
//     EncodeOutcome turns into an OutcomeRow and EncodeCommit into the commit's JSON text. That
//     text must parse, and decode back to the row (round trip); the row must obey the
//     outcome's contract (a failed row carries nothing, sizes within max_payload_bytes, ...).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gen_durable/gen_durable.hpp"
#include "gen_durable/model/rows.hpp"
#include "gen_durable/runtime/outcome_encoder.hpp"
#include "gen_durable/store/store.hpp"
#include "input.hpp"

namespace gen_durable::fuzz {
namespace {

using detail::OutcomeRow;

bool IsUtf8(const std::string& s) {
  try {
    (void)Json(s).dump();
    return true;
  } catch (const Json::type_error&) {
    return false;
  }
}

// Whether `sent` (as decoded from the commit) is what encoding `orig` must give: the same
// value, except that non-finite numbers become null and invalid UTF-8 is repaired (so only the
// kind of such a string, or of an object with such a key, can be checked).
bool Matches(const Json& sent, const Json& orig) {
  switch (orig.type()) {
    case Json::value_t::number_float:
      if (!std::isfinite(orig.get<double>())) return sent.is_null();
      return sent == orig;
    case Json::value_t::string:
      return IsUtf8(orig.get<std::string>()) ? sent == orig : sent.is_string();
    case Json::value_t::array:
      if (!sent.is_array() || sent.size() != orig.size()) return false;
      for (std::size_t i = 0; i < orig.size(); ++i) {
        if (!Matches(sent[i], orig[i])) return false;
      }
      return true;
    case Json::value_t::object: {
      if (!sent.is_object()) return false;
      for (const auto& [key, value] : orig.items()) {
        if (!IsUtf8(key)) return true;  // repaired keys may collide: one of them wins
      }
      if (sent.size() != orig.size()) return false;
      for (const auto& [key, value] : orig.items()) {
        if (!sent.contains(key) || !Matches(sent[key], value)) return false;
      }
      return true;
    }
    default:
      return sent == orig;
  }
}

bool MatchesString(const Json& sent, const std::string& orig) { return Matches(sent, Json(orig)); }

bool MatchesOpt(const Json& sent, const std::optional<std::string>& orig) {
  return orig ? MatchesString(sent, *orig) : sent.is_null();
}

template <typename T>
bool MatchesNumber(const Json& sent, const std::optional<T>& orig) {
  return orig ? sent.is_number_integer() && sent.get<T>() == *orig : sent.is_null();
}

bool MatchesIds(const Json& sent, const std::vector<std::int64_t>& ids) {
  return ids.empty() ? sent.is_null() : sent == Json(ids);
}

bool MatchesStrings(const Json& sent, const std::vector<std::string>& items) {
  if (items.empty()) return sent.is_null();
  if (!sent.is_array() || sent.size() != items.size()) return false;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (!MatchesString(sent[i], items[i])) return false;
  }
  return true;
}

// Any JSON value, nested up to `depth`, with invalid UTF-8, NUL and non-finite numbers.
Json AnyJson(FuzzInput& in, int depth) {
  switch (in.Below(depth > 0 ? 9 : 6)) {
    case 0:
      return nullptr;
    case 1:
      return in.Bool();
    case 2:
      return in.Int<std::int64_t>();
    case 3:
      return in.Int<std::uint64_t>();
    case 4:
      return in.Double();
    case 5:
      return in.String(12);
    case 6:
    case 7: {
      Json a = Json::array();
      for (std::size_t n = in.Below(4); n > 0; --n) a.push_back(AnyJson(in, depth - 1));
      return a;
    }
    default: {
      Json o = Json::object();
      for (std::size_t n = in.Below(4); n > 0; --n) o[in.String(6)] = AnyJson(in, depth - 1);
      return o;
    }
  }
}

const char* const kSteps[] = {"start", "charge", "ship", "join"};
const char* const kLimits[] = {"api", "stripe"};  // only "api" is defined
const char* const kChildren[] = {"fuzz.child", "fuzz.unknown"};
const char* const kStatuses[] = {"scheduled",         "runnable", "executing", "awaiting_signal",
                                 "awaiting_children", "done",     "failed",    "cancelled"};

std::shared_ptr<const detail::MachineDef> Def(const char* name, std::vector<std::string> steps) {
  auto def = std::make_shared<detail::MachineDef>();
  def->name = name;
  def->steps = std::move(steps);
  def->initial_step = def->steps.front();
  return def;
}

const detail::MachineDef& Flow() {
  static const auto* def = new std::shared_ptr<const detail::MachineDef>(
      Def("fuzz.flow", {"start", "charge", "ship", "join"}));
  return **def;
}

std::shared_ptr<const detail::MachineDef> FindChild(const std::string& name,
                                                    std::optional<int> version) {
  static const auto* child =
      new std::shared_ptr<const detail::MachineDef>(Def("fuzz.child", {"perform"}));
  if (name == "fuzz.child" && version.value_or(1) == 1) return *child;
  return nullptr;
}

InsertRequest AnyChild(FuzzInput& in) {
  InsertRequest r;
  r.fsm = in.Pick(kChildren, 12);
  if (in.Bool()) r.version = in.Int<std::int8_t>();
  InsertOptions& o = r.options;
  if (in.Bool()) o.state = AnyJson(in, 2);
  if (in.Bool()) o.step = in.Bool() ? std::string("perform") : in.String(8);
  if (in.Bool()) o.queue = in.String(8);
  o.priority = in.Int<std::int32_t>();
  switch (in.Below(4)) {
    case 1:
      o.eligible_at = TimePoint(TimePoint::duration(in.Int<std::int64_t>()));
      break;
    case 2:
      o.schedule_at = TimePoint(TimePoint::duration(in.Int<std::int64_t>()));
      break;
    case 3:
      o.schedule_in = Millis{in.Int<std::int64_t>()};
      break;
  }
  if (in.Bool()) o.max_attempts = in.Int<std::int32_t>();
  if (in.Bool()) o.partition_key = in.String(8);
  if (in.Bool()) o.unique_key = in.String(8);
  for (std::size_t n = in.Below(3); n > 0; --n) o.unique_scope.push_back(in.Pick(kStatuses, 8));
  if (in.Bool()) o.rate_limit = RateLimitRef{in.Pick(kLimits, 8), in.String(8), in.Int<int>()};
  return r;
}

Outcome AnyOutcome(FuzzInput& in) {
  Outcome out = Stop("");
  switch (in.Below(6)) {
    case 0:
      out = NextJson(in.Pick(kSteps, 8), AnyJson(in, 3));
      break;
    case 1:
      out = ReplayJson(AnyJson(in, 3), Millis{in.Int<std::int64_t>()});
      break;
    case 2:
      out = Done(in.Bool() ? Json(nullptr) : AnyJson(in, 3));
      break;
    case 3:
      out = Stop(in.String(16));
      break;
    case 4: {
      std::vector<std::string> names;
      for (std::size_t n = in.Below(4); n > 0; --n) names.push_back(in.String(8));
      AwaitOptions opts;
      if (in.Bool()) opts.next_step = in.Pick(kSteps, 8);
      if (in.Bool()) opts.timeout = Millis{in.Int<std::int64_t>()};
      out = AwaitJson(std::move(names), AnyJson(in, 3), opts);
      break;
    }
    default: {
      std::vector<InsertRequest> children;
      for (std::size_t n = in.Below(4); n > 0; --n) children.push_back(AnyChild(in));
      JoinOptions opts;
      if (in.Bool()) opts.wait_for = in.Int<std::int32_t>();
      if (in.Bool()) opts.deadline = Millis{in.Int<std::int64_t>()};
      out = ScheduleChildrenJson(in.Pick(kSteps, 8), std::move(children), AnyJson(in, 3), opts);
      break;
    }
  }
  if (in.Bool()) out.RateLimit(in.Pick(kLimits, 8), in.String(8), in.Int<int>() % 4);
  switch (in.Below(3)) {
    case 1:
      out.PartitionKey(in.String(8));
      break;
    case 2:
      out.ReleasePartition();
      break;
  }
  if (in.Bool()) out.Inline(in.Bool());
  if (in.Bool()) out.WithError(in.String(16));
  return out;
}

// The contract of the row EncodeOutcome made of `out`.
void CheckRow(const OutcomeRow& row, const Outcome& out, const detail::ClaimedRow& data,
              const EngineOptions& options, bool keep) {
  Check(row.id == data.id && row.lease_seq == 7, "the row names the claim");
  if (row.status == "failed") {
    Check(row.last_error && !row.last_error->empty(), "a failed row says why");
    Check(!row.step && !row.state && !row.result && !row.keep && row.children.empty(),
          "a failed row carries nothing else");
    Check(row.clear_inbox, "a failed row clears its inbox");
    return;
  }
  const std::size_t limit = options.max_payload_bytes;
  Check((!row.state || row.state->size() <= limit) && (!row.result || row.result->size() <= limit),
        "state and result fit max_payload_bytes");
  if (row.rate_limit) {
    Check(options.rate_limits.count(row.rate_limit->name) > 0, "only defined rate limits pass");
    Check(row.rate_limit->weight >= 1, "a rate limit weight is positive");
  }
  if (row.partition && *row.partition) Check(!(*row.partition)->empty(), "no empty partition");
  std::vector<std::int64_t> shown;
  for (const auto& s : data.signals) shown.push_back(s.id);
  switch (out.kind()) {
    case OutcomeKind::kNext:
      Check(row.status == (keep ? "executing" : "runnable"), "next: runnable, or kept");
      Check(row.step == out.step(), "next: the step");
      Check(row.state && Matches(Json::parse(*row.state), out.state()), "next: the state");
      Check(row.attempt == 0 && row.consume == shown, "next: attempt 0, signals consumed");
      break;
    case OutcomeKind::kReplay:
      Check(row.status == "runnable" && row.attempt == data.attempt + 1, "replay: attempt + 1");
      Check(row.delay_ms == out.delay().count() && *row.delay_ms >= 0, "replay: the delay");
      Check(row.state && Matches(Json::parse(*row.state), out.state()), "replay: the state");
      break;
    case OutcomeKind::kAwait:
      Check(row.status == "awaiting_signal" && row.awaiting == out.await_names(), "await");
      Check(row.shown == shown, "await: the signals shown");
      Check(row.park_ms.has_value() == out.await_options().timeout.has_value() &&
                (!row.park_ms || *row.park_ms >= 0),
            "await: the timeout");
      break;
    case OutcomeKind::kScheduleChildren:
      Check(row.status == "awaiting_children", "schedule_children: awaiting_children");
      Check(row.children.size() == out.children().size(), "schedule_children: every child");
      Check(row.join_next_step == out.step(), "schedule_children: the join step");
      Check(!row.wait_for || *row.wait_for >= 1, "schedule_children: wait_for >= 1");
      break;
    case OutcomeKind::kDone:
      Check(row.status == "done", "done");
      Check(out.result().is_null() ? !row.result
                                   : row.result && Matches(Json::parse(*row.result), out.result()),
            "done: the result");
      break;
    case OutcomeKind::kStop:
      Check(false, "stop: always a failed row");
  }
}

// EncodeCommit's text decoded back must be `row` (followed by `other`, a plain done row).
void CheckCommit(const OutcomeRow& row, const OutcomeRow& other) {
  const detail::CommitPayload payload = detail::EncodeCommit({row, other});
  Json outcomes, wakes, children, joins;
  try {
    outcomes = Json::parse(payload.outcomes);
    wakes = Json::parse(payload.wakes);
    children = Json::parse(payload.children);
    joins = Json::parse(payload.joins);
  } catch (const Json::parse_error& e) {
    std::fprintf(stderr, "%s\n%s\n", e.what(), payload.outcomes.c_str());
    Check(false, "the commit payload is valid JSON");
  }
  Check(outcomes.is_array() && outcomes.size() == 2, "one outcome per row");
  const Json& o = outcomes[0];
  Check(o["id"] == row.id && o["seq"] == row.lease_seq && o["status"] == row.status &&
            o["attempt"] == row.attempt && o["keep"] == row.keep,
        "commit: id, seq, status, attempt, keep");
  Check(MatchesOpt(o["step"], row.step), "commit: step");
  Check(row.state ? o["state"] == Json::parse(*row.state) : o["state"].is_null(), "commit: state");
  Check(row.result ? o["result"] == Json::parse(*row.result) : o["result"].is_null(),
        "commit: result");
  Check(MatchesNumber(o["delay_ms"], row.delay_ms), "commit: delay_ms");
  Check(MatchesOpt(o["last_error"], row.last_error), "commit: last_error");
  Check(o["set_partition"] == row.partition.has_value(), "commit: set_partition");
  Check(
      row.partition ? MatchesOpt(o["partition_key"], *row.partition) : o["partition_key"].is_null(),
      "commit: partition_key");
  if (row.rate_limit) {
    Check(MatchesString(o["rate_limit"], row.rate_limit->name) &&
              (row.rate_limit->key.empty() ? o["rate_key"].is_null()
                                           : MatchesString(o["rate_key"], row.rate_limit->key)) &&
              o["rate_weight"] == row.rate_limit->weight,
          "commit: rate limit");
  } else {
    Check(o["rate_limit"].is_null() && o["rate_key"].is_null() && o["rate_weight"].is_null(),
          "commit: no rate limit");
  }
  Check(MatchesIds(o["consume"], row.consume), "commit: consume");
  Check(o["clear_inbox"] == row.clear_inbox, "commit: clear_inbox");
  Check(MatchesStrings(o["awaiting"], row.awaiting), "commit: awaiting");
  Check(MatchesOpt(o["await_next_step"], row.await_next_step), "commit: await_next_step");
  Check(MatchesNumber(o["park_ms"], row.park_ms), "commit: park_ms");
  Check(MatchesOpt(o["join_next_step"], row.join_next_step), "commit: join_next_step");
  Check(o["keep_awaiting"] == row.keep_awaiting, "commit: keep_awaiting");
  Check(outcomes[1]["id"] == other.id && outcomes[1]["status"] == other.status,
        "commit: the second row follows");

  const bool parks = row.status == "awaiting_signal";
  Check(wakes.size() == (parks ? 1u : 0u), "commit: a parked row is checked for a wake");
  if (parks) {
    Check(wakes[0]["id"] == row.id && wakes[0]["seq"] == row.lease_seq &&
              MatchesIds(wakes[0]["shown"], row.shown),
          "wake: the parked row, under its claim");
  }
  const bool joins_now = row.status == "awaiting_children";
  Check(joins.size() == (joins_now ? 1u : 0u), "commit: a join opens a barrier");
  if (joins_now) {
    Check(joins[0]["id"] == row.id && MatchesNumber(joins[0]["wait_for"], row.wait_for), "join");
  }
  Check(children.size() == (joins_now ? row.children.size() : 0u), "commit: every child sent");
  for (std::size_t i = 0; i < children.size(); ++i) {
    const Json& c = children[i];
    const detail::NewInstance& n = row.children[i];
    Check(c["parent"] == row.id && MatchesString(c["fsm"], n.fsm) &&
              c["fsm_version"] == n.fsm_version && MatchesString(c["queue"], n.queue) &&
              MatchesString(c["step"], n.step) && c["state"] == Json::parse(n.state) &&
              c["priority"] == n.priority && MatchesOpt(c["eligible_at"], n.eligible_at) &&
              MatchesNumber(c["delay_ms"], n.delay_ms) &&
              MatchesNumber(c["max_attempts"], n.max_attempts) &&
              MatchesOpt(c["partition_key"], n.partition_key) &&
              MatchesOpt(c["unique_key"], n.unique_key) &&
              MatchesStrings(c["unique_scope"], n.unique_scope),
          "commit: a child");
    if (n.rate_limit) {
      Check(MatchesString(c["rate_limit"], n.rate_limit->name) &&
                c["rate_weight"] == n.rate_limit->weight,
            "commit: a child's rate limit");
    } else {
      Check(c["rate_limit"].is_null(), "commit: a child without rate limit");
    }
  }
}

void FuzzEncode(FuzzInput& in) {
  EngineOptions options;
  options.rate_limits["api"] = RateLimit{};
  if (in.Bool()) options.max_payload_bytes = in.Below(256);
  detail::ClaimedRow data;
  data.id = in.Int<std::int64_t>();
  data.lease_seq = 7;
  data.fsm = "fuzz.flow";
  data.step = in.Pick(kSteps, 8);
  data.attempt = in.Int<std::int16_t>();
  data.max_attempts = in.Int<std::int8_t>();
  for (std::size_t n = in.Below(3); n > 0; --n) {
    data.signals.push_back(Signal{in.Int<std::int64_t>(), in.String(8), AnyJson(in, 1)});
  }
  const bool keep = in.Bool();
  const Outcome out = AnyOutcome(in);
  const OutcomeRow row = detail::EncodeOutcome(Flow(), data, out, keep, options, FindChild);
  CheckRow(row, out, data, options, keep);
  OutcomeRow other;
  other.id = 2;
  other.status = "done";
  other.clear_inbox = true;
  CheckCommit(row, other);
}

// Whether `text` is a JSON array of well-formed inbox entries (as gd_claim builds them).
bool IsInbox(const Json& j) {
  if (!j.is_array()) return false;
  for (const auto& s : j) {
    if (!s.is_object() || !s.contains("id") || !s["id"].is_number_integer() ||
        (s["id"].is_number_unsigned() &&
         s["id"].get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) ||
        !s.contains("name") || !s["name"].is_string() || !s.contains("payload")) {
      return false;
    }
  }
  return true;
}

void FuzzDecode(std::string_view text) {
  std::optional<std::string_view> parts[3];
  for (auto& part : parts) {
    if (text.data() == nullptr) break;
    const auto nul = text.find('\0');
    part = text.substr(0, nul);
    text = nul == std::string_view::npos ? std::string_view() : text.substr(nul + 1);
  }
  detail::ClaimedRow row;
  detail::DecodeClaimJson(parts[0].value_or(""), parts[1], parts[2], row);
  if (!row.state_error.empty()) {
    Check(row.state_error.rfind("stored ", 0) == 0, "a decode error names what was stored");
    return;
  }
  if (parts[1]) {
    const Json sigs = Json::parse(*parts[1]);  // decoded, so it parses
    if (IsInbox(sigs)) {
      Check(row.signals.size() == sigs.size(), "every signal of the inbox");
      for (std::size_t i = 0; i < sigs.size(); ++i) {
        Check(row.signals[i].id == sigs[i]["id"].get<std::int64_t>() &&
                  row.signals[i].name == sigs[i]["name"] &&
                  row.signals[i].payload == sigs[i]["payload"],
              "a signal as stored");
      }
    }
  } else {
    Check(row.signals.empty(), "no inbox, no signals");
  }
  if (!parts[2]) Check(row.children.empty(), "no join, no children");
}

}  // namespace
}  // namespace gen_durable::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace gen_durable::fuzz;
  if (size == 0) return 0;
  if (data[0] % 2 == 0) {
    FuzzDecode(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  } else {
    FuzzInput in(data + 1, size - 1);
    FuzzEncode(in);
  }
  return 0;
}
