// pg-boss adapter. Settings use the throughput and latency features of its
// docs (pgboss.io, api/workers.md and api/queues.md): LISTEN/NOTIFY dispatch
// (`useListenNotify` on the instance, `notify` on the queue), a dedicated
// partition for the queue, batched fetches (`batchSize`) with
// `burstWhenBatchFull` and several workers per process (`localConcurrency`).
// The latency run fetches one job at a time.
import { PgBoss } from 'pg-boss';
import {
  chainScenario, insertScenario, jobsScenario, latencyScenario, log, packageVersion,
} from './common.mjs';

const QUEUE = 'bench';
let boss = null;

async function startBoss(url, options) {
  const instance = new PgBoss({ connectionString: url, ...options });
  instance.on('error', (e) => log(`pg-boss error: ${e.message}`));
  await instance.start();
  return instance;
}

export const adapter = {
  name: 'pg-boss',
  version: packageVersion('pg-boss'),
  pendingSql: `select count(*)::int as n from pgboss.job where name = '${QUEUE}' and state < 'completed'`,

  settings(scenario, o) {
    const localConcurrency = o.concurrency ?? (scenario === 'latency' ? 10 : 4);
    const batchSize = scenario === 'latency' ? 1 : 100;
    const common = {
      processes: 1,
      boss: { max: localConcurrency + 3, useListenNotify: true },
      queue: { partition: true, notify: true },
    };
    const bulk = { insertBatchSize: o.batchSize, insertApi: 'insert()' };
    if (scenario === 'insert') return { ...common, ...bulk };
    return {
      ...common,
      concurrency: localConcurrency,
      work: {
        localConcurrency,
        batchSize,
        burstWhenBatchFull: batchSize > 1,
        pollingIntervalSeconds: 2, // library default; a safety net behind NOTIFY
      },
      ...(scenario === 'latency' ? { producerApi: 'send()' } : bulk),
    };
  },

  async open(url, settings) {
    boss = await startBoss(url, settings.boss);
    await boss.createQueue(QUEUE, settings.queue);
  },

  async addJobs(payloads) {
    await boss.insert(QUEUE, payloads.map((data) => ({ data })));
  },

  async work(handler, settings) {
    await boss.work(QUEUE, settings.work, async (jobs) => {
      const next = await handler(jobs.map((j) => j.data));
      if (next.length) await boss.insert(QUEUE, next.map((data) => ({ data })));
    });
  },

  async close() {
    if (boss) await boss.stop({ graceful: true, timeout: 10000 });
    boss = null;
  },

  async openProducer(url, inflight) {
    const producer = await startBoss(url, { max: inflight + 1, supervise: false, schedule: false, migrate: false });
    return {
      add: (data) => producer.send(QUEUE, data),
      close: () => producer.stop({ graceful: false }),
    };
  },
};

export const scenarios = {
  jobs: (o) => jobsScenario(adapter, o),
  chain: (o) => chainScenario(adapter, o),
  insert: (o) => insertScenario(adapter, o),
  latency: (o) => latencyScenario(adapter, o, adapter.name),
};
