// Guide example: waiting for a result from the caller (Client::Wait and InsertAndWait). The
// snippets of docs/guides/inserting.md's "Waiting for a result" come from this file.
//
//   example_guide_waiting                 builds and registers the job, then exits
//   example_guide_waiting DATABASE_URL    also runs it through an engine and waits for it
#include <chrono>
#include <cstdint>
#include <gen_durable/gen_durable.hpp>
#include <iostream>
#include <string>

namespace gd = gen_durable;
using namespace std::chrono_literals;

struct QuoteArgs {
  std::string sku;
  int quantity = 1;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(QuoteArgs, sku, quantity)

// Prices an order line; a quantity of 0 is refused for good.
const auto kQuote =
    gd::Job<QuoteArgs>("guide.quote")
        .Perform([](const QuoteArgs& args, gd::JobContext&) {
          if (args.quantity <= 0) return gd::JobResult::Cancel("no quantity");
          return gd::JobResult::Ok({{"sku", args.sku}, {"cents", 250 * args.quantity}});
        })
        .Register();

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cout << "usage: example_guide_waiting DATABASE_URL\njob: " << kQuote.name() << "\n";
    return 0;
  }
  gd::EngineOptions opts;
  opts.database = argv[1];
  auto engine = gd::Engine::Start(opts);
  gd::Client& client = engine->client();

  // --- run this and give me the answer ---
  gd::Result<gd::InstanceInfo> quote = client.InsertAndWait(kQuote, QuoteArgs{"tea", 3}, 10s);
  if (!quote) {
    std::cerr << quote.error().message << "\n";  // timeout: ... (or duplicate: ...)
    return 1;
  }
  if (quote->status == "done") {
    std::cout << "quote: " << quote->result.dump() << "\n";
  } else {  // failed or cancelled: the instance says why
    std::cout << "no quote: " << quote->last_error.value_or("?") << "\n";
  }

  // --- wait for an instance inserted earlier (by any process) ---
  gd::Result<std::int64_t> id = client.Insert(kQuote, QuoteArgs{"cake", 0});
  if (!id) return 1;
  gd::Result<gd::InstanceInfo> ended = client.Wait(*id, 10s);
  if (!ended && ended.code() == gd::ErrorCode::kTimeout) {
    std::cout << "still running; wait again later\n";
  } else if (ended) {
    std::cout << "#" << ended->id << " " << ended->status << ": " << ended->last_error.value_or("-")
              << "\n";
  }
  engine->Stop();
  return 0;
}
