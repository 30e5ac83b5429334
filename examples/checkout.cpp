// The seed's `Checkout` machine in C++: a step that parks until a payment signal arrives.
//
//   example_checkout                  prints the usage
//   example_checkout DATABASE_URL     runs one checkout through an engine and prints its result
#include <chrono>
#include <gen_durable/gen_durable.hpp>
#include <iostream>
#include <stdexcept>

namespace gd = gen_durable;

// The state: the order number and a step counter.
struct CheckoutState {
  int order = 0;
  int n = 0;
  int paid = 0;  // the amount the payment signal confirmed
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(CheckoutState, order, n, paid)

// Records the payment a `payment_confirmed` signal carries.
CheckoutState ApplyPayment(CheckoutState s, const gd::Signal& sig) {
  s.paid = sig.payload.value("amount", 0);
  return s;
}

// start -> await_pay (parks until payment_confirmed) -> ship -> done.
const auto kCheckout =
    gd::Machine<CheckoutState>("Checkout")
        .Queue("checkout")
        .Step("start",
              [](gd::StepContext<CheckoutState>& ctx) {
                CheckoutState s = ctx.state();
                s.n += 1;
                return gd::Next("await_pay", s);
              })
        .Step("await_pay",
              [](gd::StepContext<CheckoutState>& ctx) {
                const gd::Signal* sig = ctx.FindSignal("payment_confirmed");
                if (sig == nullptr) return gd::Await({"payment_confirmed"}, ctx.state());
                return gd::Next("ship", ApplyPayment(ctx.state(), *sig));
              })
        .Step("ship",
              [](gd::StepContext<CheckoutState>&) {
                return gd::Done({{"shipped", true}});
              })
        .OnError([](const gd::StepError& error, gd::StepContext<CheckoutState>& ctx) {
          if (ctx.attempt() < 5) {
            return gd::Replay(ctx.state(), std::chrono::milliseconds(1000 * ctx.attempt()));
          }
          return gd::Stop(error.message);
        })
        .Register();

// Waits (at most a minute) until the instance has ended: Client::Wait is woken as the commit
// that ends it happens.
gd::InstanceInfo WaitTerminal(gd::Client& client, std::int64_t id) {
  gd::Result<gd::InstanceInfo> info = client.Wait(id, std::chrono::minutes(1));
  if (!info) throw std::runtime_error(info.error().message);
  return *info;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cout << "usage: example_checkout DATABASE_URL\nmachine: " << kCheckout.name() << "@"
              << kCheckout.version() << "\n";
    return 0;
  }
  gd::EngineOptions opts;
  opts.database = argv[1];
  opts.queues = {{"default", {10}}, {"checkout", {5}}};
  auto engine = gd::Engine::Start(opts);
  gd::Client& client = engine->client();

  gd::InsertOptions where;
  where.partition_key = "order:42";  // one step at a time for this order, cluster-wide
  gd::Result<std::int64_t> id = client.Insert(kCheckout, CheckoutState{42, 0, 0}, where);
  if (!id) return 1;

  // The payment may well arrive before the order reaches await_pay: it waits in the inbox.
  gd::SignalOptions once;
  once.dedup_key = "evt-7";  // the payment provider's event id: a redelivery is a no-op
  gd::Result<std::int64_t> sig = client.Signal(*id, "payment_confirmed", {{"amount", 100}}, once);
  if (!sig) {
    std::cerr << gd::ErrorCodeName(sig.code()) << ": " << sig.error().message << "\n";
    return 1;
  }

  const gd::InstanceInfo info = WaitTerminal(client, *id);
  std::cout << "checkout #" << info.id << " " << info.status << ": " << info.result.dump() << "\n";
  engine->Stop();
  return info.status == "done" ? 0 : 1;
}
