// Entry point of the peer benchmark harness.
//
//   node bench/peers/run.mjs --system SYSTEM --scenario SCENARIO --database URL
//        [--count N] [--steps S] [--concurrency C] [--rate R] [--duration-s D]
//        [--batch-size B] [--inflight K] [--timeout-s T]
//
// Prints progress on stderr and exactly one JSON line on stdout. Exit status:
// 0 on success, 2 for an unsupported system/scenario pair, 1 on any failure.
import { SYSTEMS, assertEmptyDatabase, log, parseCli, rounded } from './common.mjs';

// Libraries may print to stdout; keep stdout for the result line alone.
const writeResult = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);

function fail(message, code = 1) {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

let opts;
try {
  opts = parseCli(process.argv.slice(2));
} catch (e) {
  fail(`usage error: ${e.message}`, 2);
}

const modulePath = SYSTEMS[opts.system];
const mod = modulePath ? await import(modulePath) : null;
const scenario = mod?.scenarios[opts.scenario];
if (!scenario) fail(`unsupported: ${opts.system} ${opts.scenario}`, 2);

const timeout = setTimeout(
  () => fail(`error: ${opts.system} ${opts.scenario} did not complete within ${opts.timeoutS} s`),
  opts.timeoutS * 1000,
);

try {
  log(`${opts.system} ${mod.adapter.version}: scenario ${opts.scenario}`);
  await assertEmptyDatabase(opts.database);
  const result = await scenario(opts);
  clearTimeout(timeout);
  const line = JSON.stringify(rounded({
    system: opts.system, version: mod.adapter.version, scenario: opts.scenario, ...result,
  }));
  writeResult(`${line}\n`, () => process.exit(0));
} catch (e) {
  fail(`error: ${opts.system} ${opts.scenario}: ${e?.message ?? e}`.replace(/\s*\n\s*/g, ' '));
}
