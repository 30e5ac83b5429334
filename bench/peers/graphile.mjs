// graphile-worker adapter. Settings follow worker.graphile.org/docs/performance:
// throughput runs use its published perf configuration (concurrentJobs 24,
// maxPoolSize 25, localQueue size 500, complete/fail batch delay 0); the
// latency run disables the local queue, as that page advises when jobs must
// start as soon as possible, and keeps the batch delays at 0.
import { Logger, makeWorkerUtils, run } from 'graphile-worker';
import {
  chainScenario, insertScenario, jobsScenario, latencyScenario, packageVersion,
} from './common.mjs';

const TASK = 'bench';

// Library logs go to stderr; only warnings and errors are worth showing.
const logger = new Logger(() => (level, message) => {
  if (level === 'error' || level === 'warning') console.error(`[graphile-worker] ${level}: ${message}`);
});

let utils = null;
let runner = null;

export const adapter = {
  name: 'graphile-worker',
  version: packageVersion('graphile-worker'),
  pendingSql: 'select count(*)::int as n from graphile_worker._private_jobs',

  settings(scenario, o) {
    const concurrentJobs = o.concurrency ?? 24;
    const bulk = { insertBatchSize: o.batchSize, insertApi: 'WorkerUtils.addJobs' };
    if (scenario === 'insert') return { processes: 1, ...bulk };
    const worker = {
      concurrentJobs,
      maxPoolSize: concurrentJobs + 1,
      pollInterval: 2000, // library default; new jobs arrive through LISTEN/NOTIFY
      completeJobBatchDelay: 0,
      failJobBatchDelay: 0,
      localQueue: scenario === 'latency' ? { size: -1 } : { size: 500 },
    };
    const feed = scenario === 'latency' ? { producerApi: 'WorkerUtils.addJob' } : bulk;
    return { processes: 1, concurrency: concurrentJobs, worker, ...feed };
  },

  async open(url) {
    utils = await makeWorkerUtils({ connectionString: url, logger });
    await utils.migrate();
    this.url = url;
  },

  async addJobs(payloads) {
    await utils.addJobs(payloads.map((payload) => ({ identifier: TASK, payload })));
  },

  async work(handler, settings) {
    const taskList = {
      [TASK]: async (payload, helpers) => {
        const next = await handler([payload]);
        if (next.length) await helpers.addJobs(next.map((p) => ({ identifier: TASK, payload: p })));
      },
    };
    runner = await run({
      noHandleSignals: true,
      taskList,
      crontab: '',
      preset: { worker: { ...settings.worker, connectionString: this.url, logger } },
    });
  },

  async close() {
    if (runner) await runner.stop();
    if (runner) await runner.promise;
    if (utils) await utils.release();
    runner = null;
    utils = null;
  },

  async openProducer(url, inflight) {
    const producerUtils = await makeWorkerUtils({ connectionString: url, maxPoolSize: inflight, logger });
    return {
      add: (payload) => producerUtils.addJob(TASK, payload),
      close: () => producerUtils.release(),
    };
  },
};

export const scenarios = {
  jobs: (o) => jobsScenario(adapter, o),
  chain: (o) => chainScenario(adapter, o),
  insert: (o) => insertScenario(adapter, o),
  latency: (o) => latencyScenario(adapter, o, adapter.name),
};
