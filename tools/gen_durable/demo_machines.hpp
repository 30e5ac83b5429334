// The built-in demo machines of the CLI (SPEC §12), also the first examples users read.
#pragma once

namespace gen_durable::tools {

// Registers demo.noop, demo.sleep, demo.chain, demo.flaky, demo.checkout, demo.fanout,
// demo.limited and demo.crash (idempotent).
void RegisterDemoMachines();

}  // namespace gen_durable::tools
