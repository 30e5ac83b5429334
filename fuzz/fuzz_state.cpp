// Fuzz target: a claimed row's stored state, from the bytes Postgres returns to the step.
//
// The input is the text of the `state` column. It takes the runtime's own path: DecodeClaimJson
// (what Store::Claim does with each row), then the run function of a typed Machine, of a
// Machine<Json> and of a typed Job, as a worker calls them, then EncodeOutcome and
// EncodeCommit (what the commit sends back). Properties:
//   - nothing throws: undecodable text fails the row (state_error); a state of the wrong shape
//     fails the instance with a decode error (a Stop), never an escaping exception;
//   - a state that decodes round-trips through the type's JSON mapping and the commit encoding;
//   - Machine<Json> hands the step exactly the stored value.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gen_durable/gen_durable.hpp"
#include "gen_durable/model/context_data.hpp"
#include "gen_durable/runtime/outcome_encoder.hpp"
#include "gen_durable/store/store.hpp"
#include "input.hpp"

namespace gen_durable::fuzz {
namespace {

// A state as an application would write one: numbers, strings, an optional, containers and a
// nested object, mapped with the macro the engine's docs recommend (missing fields: defaults).
struct Address {
  std::string city;
  int zip = 0;
  bool operator==(const Address&) const = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Address, city, zip)

struct Order {
  std::int64_t id = 0;
  int quantity = 0;
  double amount = 0;
  bool paid = false;
  std::string customer;
  std::optional<std::string> coupon;  // absent or null: none
  std::vector<int> items;
  std::vector<Address> addresses;
  Address ship_to;
  std::map<std::string, std::int64_t> totals;
  Json extra;  // whatever the caller attached
  bool operator==(const Order&) const = default;
};

void to_json(Json& j, const Order& o) {
  j = Json{{"id", o.id},
           {"quantity", o.quantity},
           {"amount", o.amount},
           {"paid", o.paid},
           {"customer", o.customer},
           {"items", o.items},
           {"addresses", o.addresses},
           {"ship_to", o.ship_to},
           {"totals", o.totals},
           {"extra", o.extra}};
  if (o.coupon) j["coupon"] = *o.coupon;
}

void from_json(const Json& j, Order& o) {
  const Order d;
  o.id = j.value("id", d.id);
  o.quantity = j.value("quantity", d.quantity);
  o.amount = j.value("amount", d.amount);
  o.paid = j.value("paid", d.paid);
  o.customer = j.value("customer", d.customer);
  const auto coupon = j.find("coupon");
  if (coupon == j.end() || coupon->is_null()) {
    o.coupon.reset();
  } else {
    o.coupon = coupon->get<std::string>();
  }
  o.items = j.value("items", d.items);
  o.addresses = j.value("addresses", d.addresses);
  o.ship_to = j.value("ship_to", d.ship_to);
  o.totals = j.value("totals", d.totals);
  o.extra = j.value("extra", d.extra);
}

constexpr std::string_view kDecodeError = "state decode failed: ";

bool StartsWith(const std::string& s, std::string_view prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// The machines, built (not registered) once.
struct Machines {
  MachineRef<Order> typed =
      Machine<Order>("fuzz.order")
          .Step("start", [](StepContext<Order>& ctx) { return Next("start", ctx.state()); })
          .Build();
  MachineRef<Json> json =
      Machine<Json>("fuzz.json")
          .Step("start", [](StepContext<Json>& ctx) { return NextJson("start", ctx.state()); })
          .Build();
  MachineRef<Order> job =
      Job<Order>("fuzz.order_job")
          .Perform([](const Order& o, JobContext&) { return JobResult::Ok(Json(o)); })
          .Build();
  EngineOptions options;
};

const Machines& TheMachines() {
  static const Machines* m = new Machines();
  return *m;
}

std::unique_ptr<detail::ContextData> ContextOf(const detail::ClaimedRow& row,
                                               const std::string& step) {
  detail::ClaimedRow claimed;
  claimed.id = 1;
  claimed.lease_seq = 7;
  claimed.fsm = "fuzz";
  claimed.step = step;
  claimed.queue = "default";
  claimed.state = row.state;
  return std::make_unique<detail::ContextData>(std::move(claimed));
}

// The row the commit would carry for `out`, checked to be the one `want_state` encodes.
void CheckCommitted(const detail::MachineDef& def, const detail::ContextData& data,
                    const Outcome& out, const Json& want_state) {
  const detail::OutcomeRow row =
      detail::EncodeOutcome(def, data.row, out, false, TheMachines().options, {});
  Check(row.status == "runnable", "a next outcome of a known step becomes a runnable row");
  Check(row.state.has_value(), "a next outcome carries its state");
  Check(Json::parse(*row.state) == want_state, "the committed state is the step's state");
  const detail::CommitPayload payload = detail::EncodeCommit({row});
  const Json sent = Json::parse(payload.outcomes);
  Check(sent.size() == 1 && sent[0]["state"] == want_state, "the commit sends that state");
}

}  // namespace
}  // namespace gen_durable::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace gen_durable;
  using namespace gen_durable::fuzz;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const Machines& m = TheMachines();

  detail::ClaimedRow row;
  detail::DecodeClaimJson(text, std::nullopt, std::nullopt, row);
  if (!row.state_error.empty()) {
    Check(StartsWith(row.state_error, "stored state cannot be decoded: "),
          "an undecodable state is reported as such");
    return 0;
  }

  // Machine<Json>: the step sees the stored value itself.
  {
    auto ctx = ContextOf(row, "start");
    const Outcome out = m.json.def().run(ctx.get());
    Check(out.kind() == OutcomeKind::kNext, "a Json machine always runs its step");
    Check(out.state() == row.state, "a Json machine sees the stored state unchanged");
    CheckCommitted(m.json.def(), *ctx, out, row.state);
  }

  // The typed machine: the state decodes (and survives a round trip), or the instance stops
  // with a decode error.
  std::optional<Order> decoded;
  {
    auto ctx = ContextOf(row, "start");
    const Outcome out = m.typed.def().run(ctx.get());
    if (out.kind() == OutcomeKind::kStop) {
      Check(StartsWith(out.reason(), kDecodeError), "a typed machine stops only on bad state");
    } else {
      Check(out.kind() == OutcomeKind::kNext, "a typed machine runs its step");
      decoded = out.state().get<Order>();
      Check(Json(*decoded).get<Order>() == *decoded, "a decoded state round-trips");
      CheckCommitted(m.typed.def(), *ctx, out, out.state());
    }
  }

  // The typed job: the same decode, and a bad state fails it at once.
  {
    auto ctx = ContextOf(row, "perform");
    const Outcome out = m.job.def().run(ctx.get());
    if (decoded) {
      Check(out.kind() == OutcomeKind::kDone, "a job with good args completes");
      Check(out.result().get<Order>() == *decoded, "a job decodes as the machine does");
    } else {
      Check(out.kind() == OutcomeKind::kStop && StartsWith(out.reason(), kDecodeError),
            "a job with bad args fails with the decode error");
    }
  }
  return 0;
}
