// Shared helpers for the peer benchmark harness: argument parsing, timing,
// percentiles, output, and the scenario drivers shared by the job-queue peers
// (graphile-worker and pg-boss). Everything that is printed for humans goes
// to stderr; stdout carries only the final JSON line (see run.mjs).

import { readFileSync } from 'node:fs';
import { fork } from 'node:child_process';
import { parseArgs } from 'node:util';
import pg from 'pg';

export const SYSTEMS = {
  'graphile-worker': './graphile.mjs',
  'pg-boss': './pgboss.mjs',
  dbos: './dbos.mjs',
};

const DEFAULT_COUNT = { jobs: 20000, chain: 2000, insert: 100000, latency: 0, signal: 1000 };

export function parseCli(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      system: { type: 'string' },
      scenario: { type: 'string' },
      database: { type: 'string' },
      count: { type: 'string' },
      steps: { type: 'string', default: '5' },
      concurrency: { type: 'string' },
      rate: { type: 'string', default: '1000' },
      'duration-s': { type: 'string', default: '10' },
      'batch-size': { type: 'string', default: '1000' },
      inflight: { type: 'string', default: '1' },
      'timeout-s': { type: 'string', default: '300' },
    },
  });
  for (const k of ['system', 'scenario', 'database']) {
    if (!values[k]) throw new Error(`missing --${k}`);
  }
  const int = (k) => {
    const v = values[k];
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${k} must be a positive number, got ${v}`);
    return n;
  };
  return {
    system: values.system,
    scenario: values.scenario,
    database: values.database,
    count: int('count') ?? DEFAULT_COUNT[values.scenario] ?? 1000,
    steps: int('steps'),
    concurrency: int('concurrency'), // undefined: each peer uses its documented default
    rate: int('rate'),
    durationS: int('duration-s'),
    batchSize: int('batch-size'),
    inflight: int('inflight'), // latency/signal producer: calls outstanding at once
    timeoutS: int('timeout-s'),
  };
}

export const log = (...args) => console.error(`[${new Date().toISOString()}]`, ...args);
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Wall-clock time in microseconds, comparable across processes on this machine. */
export const nowMicros = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

export function packageVersion(name) {
  const url = new URL(`./node_modules/${name}/package.json`, import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8')).version;
}

/** Wait until `cond()` (may be async) is truthy, checking every `intervalMs`. */
export async function waitFor(cond, what, { intervalMs = 5, timeoutMs = 300_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/**
 * Starts the timed phase: wall clock, CPU (user+sys of this process, plus any
 * extra CPU readings added by the caller) and peak RSS sampled every 50 ms.
 */
export function startTimed() {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage.rss()); }, 50);
  timer.unref();
  return {
    stop() {
      const elapsedS = (performance.now() - t0) / 1000;
      clearInterval(timer);
      peak = Math.max(peak, process.memoryUsage.rss());
      const cpu = process.cpuUsage(cpu0);
      return { elapsed_s: elapsedS, cpu_s: (cpu.user + cpu.system) / 1e6, rss_mb: peak / 1048576 };
    },
  };
}

/** Nearest-rank percentile of an ascending-sorted array. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export function latencySummary(latenciesMs) {
  const s = [...latenciesMs].sort((a, b) => a - b);
  return {
    p50_ms: percentile(s, 50),
    p90_ms: percentile(s, 90),
    p99_ms: percentile(s, 99),
    max_ms: s.length ? s[s.length - 1] : null,
  };
}

/** Rounds every number in a (nested) result to 3 decimals for printing. */
export function rounded(value) {
  if (typeof value === 'number') return Number.isInteger(value) ? value : Math.round(value * 1000) / 1000;
  if (Array.isArray(value)) return value.map(rounded);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, rounded(v)]));
  }
  return value;
}

export function chunks(items, size) {
  const out = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export const range = (n, f) => Array.from({ length: n }, (_, i) => f(i));

/** The harness installs each peer's schema itself, so it insists on an empty database. */
export async function assertEmptyDatabase(url) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(
      "select count(*)::int as n from pg_class c join pg_namespace s on s.oid = c.relnamespace where s.nspname not in ('pg_catalog', 'information_schema') and s.nspname not like 'pg_toast%'",
    );
    if (rows[0].n !== 0) throw new Error(`database is not empty (${rows[0].n} relations); give a fresh one`);
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------
// Drivers for the job-queue peers. An adapter provides:
//   name, version
//   settings(scenario, opts)        -> every knob used (printed in the result)
//   open(url, settings)             -> installs its schema (untimed)
//   addJobs(payloads)               -> one bulk insert
//   work(handler, settings)         -> starts workers; handler(payloads) returns
//                                      the payloads to enqueue before completing
//   pendingSql                      -> SQL counting jobs not yet completed
//   close()                         -> stops workers, releases connections
//   openProducer(url, inflight)     -> {add(payload), close()} for latency
// ---------------------------------------------------------------------------

async function withCounter(adapter, o, settings, body) {
  const counter = new pg.Pool({ connectionString: o.database, max: 1 });
  await adapter.open(o.database, settings);
  try {
    return await body(async () => (await counter.query(adapter.pendingSql)).rows[0].n);
  } finally {
    await adapter.close();
    await counter.end();
  }
}

async function insertAll(adapter, payloads, batchSize) {
  for (const batch of chunks(payloads, batchSize)) await adapter.addJobs(batch);
}

export async function jobsScenario(adapter, o) {
  const settings = adapter.settings('jobs', o);
  return withCounter(adapter, o, settings, async (pending) => {
    log(`inserting ${o.count} jobs (untimed)`);
    await insertAll(adapter, range(o.count, (i) => ({ i })), settings.insertBatchSize);
    let done = 0;
    const timed = startTimed();
    await adapter.work(async (payloads) => { done += payloads.length; return []; }, settings);
    await waitFor(() => done >= o.count, 'all jobs to run');
    await waitFor(async () => (await pending()) === 0, 'all jobs to be marked complete');
    const m = timed.stop();
    return { count: o.count, concurrency: settings.concurrency, ...m, jobs_per_s: o.count / m.elapsed_s, settings };
  });
}

export async function chainScenario(adapter, o) {
  const settings = adapter.settings('chain', o);
  const steps = o.steps;
  return withCounter(adapter, o, settings, async (pending) => {
    log(`inserting the first step of ${o.count} chains (untimed)`);
    await insertAll(adapter, range(o.count, (i) => ({ i, step: 1 })), settings.insertBatchSize);
    let finished = 0;
    const timed = startTimed();
    await adapter.work(async (payloads) => {
      const next = [];
      for (const p of payloads) {
        if (p.step < steps) next.push({ i: p.i, step: p.step + 1 });
        else finished += 1;
      }
      return next;
    }, settings);
    await waitFor(() => finished >= o.count, 'all chains to finish');
    await waitFor(async () => (await pending()) === 0, 'all steps to be marked complete');
    const m = timed.stop();
    return {
      count: o.count, steps, concurrency: settings.concurrency, ...m,
      jobs_per_s: o.count / m.elapsed_s, steps_per_s: (o.count * steps) / m.elapsed_s, settings,
    };
  });
}

export async function insertScenario(adapter, o) {
  const settings = adapter.settings('insert', o);
  return withCounter(adapter, o, settings, async (pending) => {
    const payloads = range(o.count, (i) => ({ i }));
    const timed = startTimed();
    await insertAll(adapter, payloads, settings.insertBatchSize);
    const m = timed.stop();
    const stored = await pending();
    if (stored !== o.count) throw new Error(`expected ${o.count} stored jobs, found ${stored}`);
    return { count: o.count, concurrency: 1, ...m, inserts_per_s: o.count / m.elapsed_s, settings };
  });
}

/**
 * Workers run here; a forked producer (producer.mjs) adds single jobs at the
 * offered rate (see `pace`), each payload carrying its insert time in
 * microseconds. The handler records its start time minus the insert time.
 * Jobs inserted in the first second are warm-up and are not counted.
 */
export async function latencyScenario(adapter, o, systemName) {
  const settings = adapter.settings('latency', o);
  return withCounter(adapter, o, settings, async (pending) => {
    const latencies = [];
    let seen = 0;
    await adapter.work(async (payloads) => {
      const now = nowMicros();
      for (const p of payloads) {
        seen += 1;
        if (!p.warmup) latencies.push((now - p.t) / 1000);
      }
      return [];
    }, settings);
    const timed = startTimed();
    const child = fork(new URL('./producer.mjs', import.meta.url), [
      JSON.stringify({ system: systemName, database: o.database, rate: o.rate, durationS: o.durationS, inflight: o.inflight }),
    ], { stdio: ['ignore', 2, 2, 'ipc'] }); // the child's stdout goes to our stderr
    const report = await new Promise((resolve, reject) => {
      let result = null;
      child.on('message', (msg) => { result = msg; });
      child.on('error', reject);
      child.on('exit', (code) => (code === 0 && result ? resolve(result) : reject(new Error(`producer exited with ${code}`))));
    });
    await waitFor(() => seen >= report.sent, 'all latency jobs to run');
    await waitFor(async () => (await pending()) === 0, 'all latency jobs to be marked complete');
    const m = timed.stop();
    return {
      count: latencies.length, concurrency: settings.concurrency,
      rate: o.rate, achieved_rate: report.measuredSent / report.measuredS, duration_s: o.durationS,
      ...latencySummary(latencies), elapsed_s: m.elapsed_s, cpu_s: m.cpu_s, rss_mb: m.rss_mb,
      settings: { ...settings, producerInflight: o.inflight },
    };
  });
}

/**
 * Producer: calls `add` (one job or message per call) once per slot at `rate`
 * per second, for `durationS` seconds or `count` calls, whichever ends first.
 * At most `inflight` calls are outstanding; with the default of 1 the calls
 * run strictly one at a time, and when a call takes longer than a slot the
 * producer falls behind (the achieved rate shows it). A larger `inflight`
 * makes it closer to open loop. Calls in the first `warmupS` seconds are
 * marked warm-up and not counted in `measured*`.
 */
export async function pace(add, rate, { durationS = Infinity, count = Infinity, warmupS = 0, inflight = 1 }) {
  const t0 = performance.now();
  const end = t0 + durationS * 1000;
  const pending = new Set();
  let failure = null;
  let sent = 0;
  let measuredSent = 0;
  let measuredStart = null;
  while (failure === null) {
    const now = performance.now();
    if (now >= end || sent >= count) break;
    const due = Math.floor(((now - t0) * rate) / 1000) + 1;
    if (sent >= due) { await sleep(0.5); continue; }
    if (pending.size >= inflight) { await Promise.race(pending); continue; }
    const warmup = now - t0 < warmupS * 1000;
    if (!warmup && measuredStart === null) measuredStart = now;
    const call = add({ t: nowMicros(), warmup }, sent)
      .catch((e) => { failure ??= e; })
      .finally(() => pending.delete(call));
    pending.add(call);
    sent += 1;
    if (!warmup) measuredSent += 1;
  }
  const measuredS = (performance.now() - (measuredStart ?? t0)) / 1000;
  await Promise.all(pending);
  if (failure) throw failure;
  return { sent, measuredSent, measuredS };
}
