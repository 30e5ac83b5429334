// Quick start: a two-step machine and a job, run by an engine, awaited by a client.
//
//   example_quickstart "postgresql:///app"      (or set GEN_DURABLE_DATABASE_URL)
#include <chrono>
#include <cstdlib>
#include <gen_durable/gen_durable.hpp>
#include <iostream>

namespace gd = gen_durable;

// The machine's state: a struct with a JSON mapping. Missing fields take these defaults.
struct Order {
  int order = 0;
  int total_cents = 0;
  bool charged = false;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Order, order, total_cents, charged)

// Each step returns an outcome; the engine commits it before the instance moves on.
const auto kCheckout =
    gd::Machine<Order>("quickstart.checkout")
        .Step("start",
              [](gd::StepContext<Order>& ctx) {
                Order o = ctx.state();
                o.charged = true;  // charge the card (idempotently: ctx.id())
                return gd::Next("ship", o);
              })
        .Step("ship",
              [](gd::StepContext<Order>& ctx) {
                return gd::Done({{"order", ctx.state().order}, {"shipped", true}});
              })
        .Register();

struct Greeting {
  std::string name;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Greeting, name)

// A job: one function, retried with backoff when it throws or returns an error.
const auto kGreet = gd::Job<Greeting>("quickstart.greet")
                        .MaxAttempts(3)
                        .Perform([](const Greeting& g, gd::JobContext&) {
                          return gd::JobResult::Ok({{"greeting", "hello, " + g.name}});
                        })
                        .Register();

int main(int argc, char** argv) {
  const char* env = std::getenv("GEN_DURABLE_DATABASE_URL");
  gd::EngineOptions opts;
  opts.database = argc > 1 ? argv[1] : (env ? env : "");
  if (opts.database.empty()) {
    std::cerr << "usage: example_quickstart DATABASE_URL\n";
    return 2;
  }
  opts.queues = {{"default", {4}}};
  auto engine = gd::Engine::Start(opts);  // migrates the schema, starts the workers

  auto order = engine->client().Insert(kCheckout, Order{42, 1999});
  auto greet = engine->client().Insert(kGreet, Greeting{"world"});
  if (!order || !greet) return 1;

  // Wait returns each instance once it has ended (woken as its last step commits).
  auto checkout = engine->client().Wait(*order, std::chrono::minutes(1));
  auto greeting = engine->client().Wait(*greet, std::chrono::minutes(1));
  if (!checkout || !greeting) return 1;
  std::cout << "checkout: " << checkout->result.dump() << "\n";
  std::cout << "greet: " << greeting->result.dump() << "\n";
  engine->Stop();
  return 0;
}
