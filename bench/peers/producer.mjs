// Child process for the latency scenario: adds single jobs at the offered rate
// (one call at a time unless --inflight is raised) and reports over IPC how
// many it sent.
import { SYSTEMS, pace, log } from './common.mjs';

const { system, database, rate, durationS, inflight } = JSON.parse(process.argv[2]);
const { adapter } = await import(SYSTEMS[system]);
const producer = await adapter.openProducer(database, inflight);
log(`producer: offering ${rate} jobs/s for ${durationS} s`);
const report = await pace(producer.add, rate, { durationS, warmupS: durationS > 1 ? 1 : 0, inflight });
await producer.close();
process.send(report, () => process.disconnect());
