// Guide example: defining machines. The snippets of docs/guides/machines.md come from this file.
//
//   example_guide_machines                 builds and registers the machines, then exits
//   example_guide_machines DATABASE_URL    also runs one order of each version through an engine
#include <chrono>
#include <cstdint>
#include <gen_durable/gen_durable.hpp>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace gd = gen_durable;
using namespace std::chrono_literals;

// --- typed state ---

// The state of one order, stored as jsonb. With the _WITH_DEFAULT mapping a stored state that
// lacks a field (an older row, a hand-written insert) decodes with the default written here, and
// fields the struct does not know are ignored.
struct Order {
  int order = 0;
  int total_cents = 0;
  int gateway_busy = 0;  // how often the payment gateway asked us to come back
  std::string tracking;
  std::vector<std::string> notes;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Order, order, total_cents, gateway_busy, tracking,
                                                notes)

// --- stand-ins for the outside world ---

// The gateway is busy on the first attempt of every charge, to show Replay.
bool GatewayBusy(int attempt) { return attempt == 0; }
// A real charge would pass `idempotency_key` to the provider, so a re-run charges once.
void ChargeCard(int /*order*/, int /*cents*/, std::int64_t /*idempotency_key*/) {}
std::string BookCourier(int order) { return "TRACK-" + std::to_string(order); }

// --- steps ---

// Each step receives the context (id, attempt, decoded state, ...) and returns an outcome.
gd::Outcome ValidateOrder(gd::StepContext<Order>& ctx) {
  Order o = ctx.state();
  if (o.total_cents <= 0) return gd::Stop("order has no total");  // terminal `failed`
  o.notes.push_back("validated");
  return gd::Next("charge", o);  // committed before "charge" runs
}

gd::Outcome ChargeOrder(gd::StepContext<Order>& ctx) {
  Order o = ctx.state();
  if (GatewayBusy(ctx.attempt())) {
    o.gateway_busy += 1;
    return gd::Replay(o, 200ms);  // this step again in 200 ms, attempt + 1
  }
  ChargeCard(o.order, o.total_cents, /*idempotency_key=*/ctx.id());
  o.notes.push_back("charged");
  // Queue "ship" instead of running it at once on this claim.
  return gd::Next("ship", o).Inline(false);
}

gd::Outcome ShipOrder(gd::StepContext<Order>& ctx) {
  const std::string tracking = BookCourier(ctx.state().order);
  return gd::Done({{"order", ctx.state().order}, {"tracking", tracking}});
}

// --- error handler ---

// Receives every exception a step throws, and states that fail to decode. Returns any outcome.
gd::Outcome OnOrderError(const gd::StepError& error, gd::StepContext<Order>& ctx) {
  // After a decode error ctx.state() holds defaults, not the stored state: never save it.
  if (error.decode_error) return gd::Stop("unreadable order: " + error.message);
  if (ctx.attempt() < 3) return gd::Replay(ctx.state(), 1s);  // last_error records the message
  return gd::Stop(error.message);
}

// --- the machine, registered by a static registrar ---

const auto kOrder = gd::Machine<Order>("guide.order")
                        .Queue("orders")
                        .Step("start", ValidateOrder)
                        .Step("charge", ChargeOrder)
                        .Step("ship", ShipOrder)
                        .OnError(OnOrderError)
                        .Register();

// --- version 2 ---

gd::Outcome FraudCheck(gd::StepContext<Order>& ctx) {
  if (ctx.state().total_cents > 1'000'000) return gd::Stop("needs a manual review");
  return gd::Next("charge", ctx.state()).Inline();  // run "charge" at once on this claim
}

gd::Outcome ValidateOrderV2(gd::StepContext<Order>& ctx) {
  if (ctx.state().total_cents <= 0) return gd::Stop("order has no total");
  return gd::Next("fraud_check", ctx.state());
}

// Version 2 adds a fraud check. An instance finishes on the version it started on, so version 1
// stays registered until no version 1 row is left.
const auto kOrderV2 = gd::Machine<Order>("guide.order")
                          .Version(2)
                          .Queue("orders")
                          .Step("start", ValidateOrderV2)
                          .Step("fraud_check", FraudCheck)
                          .Step("charge", ChargeOrder)
                          .Step("ship", ShipOrder)
                          .OnError(OnOrderError)
                          .Register();

// --- untyped state, registered by an explicit call ---

// A step over untyped state: the state is whatever JSON object the row holds.
gd::Outcome Count(gd::StepContext<gd::Json>& ctx) {
  gd::Json s = ctx.state();
  const int n = s.value("n", 0) + 1;
  s["n"] = n;
  if (n < s.value("to", 3)) return gd::Next("count", s);
  return gd::Done({{"n", n}});
}

// Registers guide.counter once and returns its handle. The host calls this from main before it
// creates an engine, so nothing depends on the linker keeping a static registrar.
gd::MachineRef<gd::Json> RegisterCounterMachine() {
  static const auto counter = gd::Machine<gd::Json>("guide.counter")
                                  .Initial("count")
                                  .MaxAttempts(5)
                                  .Step("count", Count)
                                  .Register();
  return counter;
}

// --- built, not registered ---

// Served only by engines that list it in EngineOptions::machines.
const auto kAudit = gd::Machine<gd::Json>("guide.audit")
                        .Step("start",
                              [](gd::StepContext<gd::Json>& ctx) {
                                return gd::Done({{"audited", ctx.id()}});
                              })
                        .Build();

// Waits (at most a minute) until the instance has ended: Client::Wait is woken as the commit
// that ends it happens.
gd::InstanceInfo WaitTerminal(gd::Client& client, std::int64_t id) {
  gd::Result<gd::InstanceInfo> info = client.Wait(id, std::chrono::minutes(1));
  if (!info) throw std::runtime_error(info.error().message);
  return *info;
}

int main(int argc, char** argv) {
  const auto counter = RegisterCounterMachine();
  if (argc < 2) {
    std::cout << "usage: example_guide_machines DATABASE_URL\nregistered:";
    for (const gd::AnyMachine& m : gd::AllRegistered()) {
      std::cout << " " << m.name() << "@" << m.version();
    }
    std::cout << "\nunregistered: " << kAudit.name() << "@" << kAudit.version() << "\n";
    return 0;
  }

  gd::EngineOptions opts;
  opts.database = argv[1];
  opts.queues = {{"default", {2}}, {"orders", {4}}};
  opts.machines = {kAudit};  // every registered machine, plus this one
  auto engine = gd::Engine::Start(opts);
  gd::Client& client = engine->client();

  Order first;
  first.order = 1;
  first.total_cents = 2500;
  Order second = first;
  second.order = 2;
  auto v1 = client.Insert(kOrder, first);  // runs version 1 to the end
  auto v2 = client.Insert(kOrderV2, second);
  gd::InsertOptions count_to;
  count_to.state = {{"to", 5}};
  auto counted = client.Insert(counter, count_to);
  auto audited = client.Insert(kAudit);
  if (!v1 || !v2 || !counted || !audited) return 1;

  for (std::int64_t id : {*v1, *v2, *counted, *audited}) {
    const gd::InstanceInfo info = WaitTerminal(client, id);
    std::cout << info.fsm << "@" << info.fsm_version << " #" << id << ": " << info.status << " "
              << info.result.dump() << "\n";
  }
  engine->Stop();
  return 0;
}
