// DBOS Transact adapter. The fresh database given by --database is used as the
// DBOS system database (DBOS creates its `dbos` schema there on launch).
//
// jobs/chain: N workflows (chain: S `DBOS.runStep` steps each; jobs: no step)
// are enqueued untimed on a queue name that is not registered yet, so nothing
// runs. Registering the queue (docs: typescript/tutorials/queue-tutorial.md,
// `workerConcurrency`, `minPollingIntervalMs`) starts dispatch. Timed: from the
// first workflow body starting until no workflow is ENQUEUED or PENDING.
//
// signal: N workflows each wait in `DBOS.recv(topic)`. Once all wait, the
// sender calls `DBOS.send` at the offered rate (one at a time unless
// --inflight is raised; see `pace` in common.mjs), each message carrying its
// send time; the workflow records receive time minus send time.
import { DBOS } from '@dbos-inc/dbos-sdk';
import pg from 'pg';
import {
  latencySummary, log, nowMicros, packageVersion, pace, range, sleep, startTimed, waitFor,
} from './common.mjs';

const QUEUE = 'bench';
const TOPIC = 'bench';

const run = { firstStart: null, finished: 0, waiting: 0, latencies: [] };

const noopStep = async () => {};
const chainWorkflow = DBOS.registerWorkflow(async (steps) => {
  run.firstStart ??= performance.now();
  for (let k = 0; k < steps; k += 1) await DBOS.runStep(noopStep, { name: `step${k}` });
  run.finished += 1;
}, { name: 'chain' });

const waiterWorkflow = DBOS.registerWorkflow(async () => {
  run.waiting += 1;
  const msg = await DBOS.recv(TOPIC, 120);
  if (msg === null) throw new Error('recv timed out');
  run.latencies.push((nowMicros() - msg.t) / 1000);
  run.finished += 1;
}, { name: 'waiter' });

function settingsFor(scenario, o) {
  const launch = { systemDatabasePoolSize: 10, useListenNotify: true };
  if (scenario === 'signal') {
    return { launch, start: 'DBOS.startWorkflow (no queue)', sendRate: o.rate, sender: 'DBOS.send', senderInflight: o.inflight };
  }
  const workerConcurrency = o.concurrency ?? 100;
  return { launch, concurrency: workerConcurrency, queue: { workerConcurrency, minPollingIntervalMs: 50 } };
}

async function withDbos(url, settings, body) {
  DBOS.setConfig({ name: 'peer-bench', systemDatabaseUrl: url, logLevel: 'warn', ...settings.launch });
  await DBOS.launch();
  const counter = new pg.Pool({ connectionString: url, max: 1 });
  const unfinished = async () => Number((await counter.query(
    "select count(*) as n from dbos.workflow_status where status in ('ENQUEUED', 'PENDING')",
  )).rows[0].n);
  try {
    return await body(unfinished);
  } finally {
    await counter.end();
    await DBOS.shutdown();
  }
}

/** Starts `count` workflows at most `parallel` at a time (untimed setup). */
async function startAll(count, start, parallel = 20) {
  let next = 0;
  await Promise.all(range(parallel, async () => {
    while (next < count) await start(next++);
  }));
}

async function queuedWorkflows(o, steps) {
  const settings = settingsFor('chain', o);
  return withDbos(o.database, settings, async (unfinished) => {
    log(`enqueueing ${o.count} workflows of ${steps} steps (untimed)`);
    await startAll(o.count, (i) => DBOS.startWorkflow(chainWorkflow, { workflowID: `wf-${i}`, queueName: QUEUE })(steps));
    if (run.firstStart !== null) throw new Error('a workflow started before its queue was registered');
    const timed = startTimed();
    const registered = performance.now();
    await DBOS.registerQueue(QUEUE, settings.queue);
    await waitFor(() => run.finished >= o.count, 'all workflows to finish');
    await waitFor(async () => (await unfinished()) === 0, 'all workflows to be recorded as done');
    const m = timed.stop();
    const elapsedS = (performance.now() - run.firstStart) / 1000;
    return {
      count: o.count, steps, concurrency: settings.concurrency,
      elapsed_s: elapsedS, dispatch_wait_s: (run.firstStart - registered) / 1000, cpu_s: m.cpu_s, rss_mb: m.rss_mb,
      jobs_per_s: o.count / elapsedS, ...(steps ? { steps_per_s: (o.count * steps) / elapsedS } : {}), settings,
    };
  });
}

async function signal(o) {
  const settings = settingsFor('signal', o);
  return withDbos(o.database, settings, async (unfinished) => {
    log(`starting ${o.count} workflows that wait in recv (untimed)`);
    await startAll(o.count, (i) => DBOS.startWorkflow(waiterWorkflow, { workflowID: `wait-${i}` })());
    await waitFor(() => run.waiting >= o.count, 'all workflows to wait in recv');
    await sleep(500); // let the last ones reach their wait
    const timed = startTimed();
    const send = (msg, i) => DBOS.send(`wait-${i}`, { t: msg.t }, TOPIC);
    const report = await pace(send, o.rate, { count: o.count, inflight: o.inflight });
    await waitFor(() => run.finished >= o.count, 'all messages to be received');
    const m = timed.stop();
    await waitFor(async () => (await unfinished()) === 0, 'all workflows to be recorded as done');
    const { p50_ms, p90_ms, p99_ms, max_ms } = latencySummary(run.latencies);
    return {
      count: o.count, rate: o.rate, achieved_rate: report.measuredSent / report.measuredS,
      p50_ms, p90_ms, p99_ms, max_ms, ...m, settings,
    };
  });
}

export const adapter = { name: 'dbos', version: packageVersion('@dbos-inc/dbos-sdk') };

export const scenarios = {
  jobs: (o) => queuedWorkflows(o, 0),
  chain: (o) => queuedWorkflows(o, o.steps),
  signal,
};
