// Guide example: rate limits, cluster-wide token buckets. The snippets of
// docs/guides/rate-limits.md come from this file.
//
//   example_guide_rate_limits                       validates the limits, then exits
//   example_guide_rate_limits DATABASE_URL [SECONDS] runs a few orders through an engine
#include <chrono>
#include <cstdlib>
#include <gen_durable/gen_durable.hpp>
#include <iostream>
#include <string>
#include <thread>

namespace gd = gen_durable;
using namespace std::chrono_literals;

// --- stand-ins for the outside world ---

std::string ChargeCard(const std::string& customer, int cents) {
  return "ch_" + customer + "_" + std::to_string(cents);
}
void SendReceipt(const std::string& customer, const std::string& charge) {
  std::cout << "receipt for " << customer << ": " << charge << "\n";
}

// --- the limits ---

// Every limit a step or an insert may name, defined on every engine that runs those steps.
void AddRateLimits(gd::EngineOptions& opts) {
  opts.rate_limits = {
      // 100 starts per minute, at most 100 at once (burst defaults to allowed).
      {"stripe", gd::RateLimit{100, std::chrono::minutes(1), std::nullopt}},
      // 5 per minute sustained, but up to 10 in a burst after a quiet spell.
      {"emails", gd::RateLimit{5, 60s, 10}},
      // 20 per second; steps name it with a key, so each customer has a bucket of its own.
      {"partner_api", gd::RateLimit{20, 1s, std::nullopt}},
  };
}

// --- a machine whose steps are rate limited ---

struct Order {
  std::string customer;
  int cents = 0;
  int lines = 1;
  std::string charge;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Order, customer, cents, lines, charge)

const auto kOrder =
    gd::Machine<Order>("guide.order")
        .Step("start",
              [](gd::StepContext<Order>& ctx) {
                // The limit applies to the start of the *next* step, `charge`.
                return gd::Next("charge", ctx.state()).RateLimit("stripe");
              })
        .Step("charge",
              [](gd::StepContext<Order>& ctx) {
                Order o = ctx.state();
                o.charge = ChargeCard(o.customer, o.cents);
                // One bucket per customer; a large order costs one token per line.
                return gd::Next("sync", o).RateLimit("partner_api", o.customer, o.lines);
              })
        .Step("sync",
              [](gd::StepContext<Order>& ctx) {
                return gd::Next("receipt", ctx.state()).RateLimit("emails");
              })
        .Step("receipt",
              [](gd::StepContext<Order>& ctx) {
                SendReceipt(ctx.state().customer, ctx.state().charge);
                return gd::Done({{"charge", ctx.state().charge}});
              })
        .Register();

// --- reporting ---

void ReportRateLimits(const gd::TelemetryEvent& e) {
  if (e.name == "rate_limit.throttled") {
    std::cout << "throttled #" << e.metadata["id"] << " on " << e.metadata["limit"] << " for "
              << e.measurements.at("wait_ms") << " ms\n";
  } else {
    std::cerr << e.name << ": " << e.metadata.dump() << "\n";  // unknown or rejected: a bug
  }
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cout << "usage: example_guide_rate_limits DATABASE_URL [SECONDS]\n";
    gd::EngineOptions opts;
    opts.database = "postgresql:///app";
    AddRateLimits(opts);
    opts.rate_limits["broken"] = gd::RateLimit{0, 1s, std::nullopt};
    try {
      gd::Engine::Create(opts);
    } catch (const gd::ConfigError& e) {
      std::cout << "refused as expected: " << e.what() << "\n";
    }
    return 0;
  }
  const int seconds = argc > 2 ? std::atoi(argv[2]) : 5;

  gd::EngineOptions opts;
  opts.database = argv[1];
  AddRateLimits(opts);
  auto engine = gd::Engine::Create(opts);
  engine->telemetry().Attach("rate_limit.", ReportRateLimits);
  engine->Start();

  auto& client = engine->client();
  for (int i = 0; i < 3; ++i) {
    Order order;
    order.customer = "cus_" + std::to_string(i);
    order.cents = 1200;
    auto id = client.Insert(kOrder, order);
    std::cout << "order #" << (id ? *id : 0) << "\n";
  }

  // An insert can subject the first step's start to a limit too.
  Order big;
  big.customer = "cus_7";
  big.cents = 900;
  big.lines = 3;
  gd::InsertOptions first;
  first.rate_limit = gd::RateLimitRef{"partner_api", big.customer, big.lines};
  auto id = client.Insert(kOrder, big, first);
  std::cout << "order #" << (id ? *id : 0) << "\n";

  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  engine->Stop();
  return 0;
}
