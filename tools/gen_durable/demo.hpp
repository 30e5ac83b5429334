// `gen_durable demo`: runs a mix of the demo machines through an in-process engine and shows
// the progress live, so a fresh machine sees the engine work with no configuration.
#pragma once

#include "gen_durable/commands.hpp"  // tools/

namespace gen_durable::tools {

struct DemoArgs {
  // Instances inserted, split 20:5:2:2 over demo.noop, demo.chain, demo.sleep, demo.flaky.
  int count = 290;
  // Seconds to wait for every instance to be terminal before giving up (exit 1).
  int timeout_s = 120;
};

// Inserts the mix on a queue of its own ("demo-<unix ms>"), and beside it, on queue
// "<that>-flows", a demo.checkout (which the demo signals `payment_confirmed` by its unique key
// once it awaits it) and a demo.fanout of 10 demo.flaky children, 2 of them failing. Runs an
// engine serving only those two queues until every instance is terminal, then prints a summary
// on stdout (one JSON object with --json: the mix's counts, plus `checkout` and `fanout`).
// Progress goes to stderr. SIGINT/SIGTERM stop it early (exit 1).
int RunDemo(const GlobalOptions& global, const DemoArgs& args);

}  // namespace gen_durable::tools
