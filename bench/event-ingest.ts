/**
 * Event ingest: assurance events per second from many consoles over real WebSockets, each batch
 * acknowledged (`events-ack`) only after the backend's group commit returned with SQLite
 * `synchronous=FULL`. The backend runs in a child process, the consoles in this one, so both cores
 * work. Only acknowledged events count. At the end the backend is killed with SIGKILL right after
 * the last acknowledgement and the database is opened directly: every acknowledged event must be
 * there exactly once, chained, with the head hash each console computed.
 *
 *   node --import tsx bench/event-ingest.ts [--consoles 100] [--batch 250] [--pipeline 2] [--seconds 15]
 */
import { parseArgs } from 'node:util';
import { MAX_EVENTS_PER_BATCH } from '../shared/protocol.js';
import { BackendProcess } from './lib/backend-process.js';
import { ingestLoad } from './lib/ingest-load.js';
import { fmt, fmtInt, heading, printTable, verdict, wallMs } from './lib/report.js';

const { values: args } = parseArgs({
  options: {
    consoles: { type: 'string', default: '100' },
    batch: { type: 'string', default: '250' },
    pipeline: { type: 'string', default: '2' },
    seconds: { type: 'string', default: '15' },
    warmup: { type: 'string', default: '3' },
    /** `kill` (SIGKILL after the last ack, the durability check) or `graceful` (lets a --cpu-prof finish). */
    stop: { type: 'string', default: 'kill' },
  },
});
const CONSOLES = Number(args.consoles);
const BATCH = Number(args.batch);
const PIPELINE = Number(args.pipeline);
const SECONDS = Number(args.seconds);
const WARMUP = Number(args.warmup);
const GOAL_EVENTS_PER_SECOND = 50_000;

if (BATCH < 1 || BATCH > MAX_EVENTS_PER_BATCH) throw new Error(`--batch must be 1..${MAX_EVENTS_PER_BATCH}`);

async function main(): Promise<void> {
  heading('event ingest (durable, acknowledged)');
  const backend = await BackendProcess.start();
  console.log(
    `backend pid ${backend.child.pid} at ${backend.url}, durability "${backend.durability}"; clients in pid ${process.pid}; ` +
      `${CONSOLES} consoles, ${BATCH} events per message, up to ${PIPELINE} unacknowledged messages per console, ` +
      `${WARMUP}s warm-up + ${SECONDS}s measured`,
  );
  // The load (bench/lib/ingest-load.ts, shared with cluster-ingest.ts): consoles enrolled over the API,
  // PIPELINE batches in flight each; then the backend is SIGKILLed right after the last
  // acknowledgement and the store read back: what was acknowledged must be on disk.
  let cpuChild0 = { cpu: process.cpuUsage() };
  let cpuChild1 = cpuChild0;
  let cpuSelf0 = process.cpuUsage();
  let cpuSelf = cpuSelf0;
  let loop = { maxMs: Number.NaN, p99Ms: Number.NaN, meanMs: Number.NaN };
  let lastAckAt = 0;
  const result = await ingestLoad(backend, {
    consoles: CONSOLES,
    batch: BATCH,
    pipeline: PIPELINE,
    warmupSeconds: WARMUP,
    seconds: SECONDS,
    onWindow: async (edge) => {
      if (edge === 'start') {
        cpuChild0 = await backend.request<{ cpu: NodeJS.CpuUsage }>('cpu');
        await backend.request('loop-delay', { reset: true });
        cpuSelf0 = process.cpuUsage();
      } else {
        cpuSelf = process.cpuUsage(cpuSelf0);
        cpuChild1 = await backend.request<{ cpu: NodeJS.CpuUsage }>('cpu');
        loop = await backend.request<{ maxMs: number; p99Ms: number; meanMs: number }>('loop-delay');
      }
    },
    afterDrain: async () => {
      lastAckAt = wallMs();
      if (args.stop === 'graceful') await backend.stop(true);
      else await backend.kill();
    },
  });
  backend.removeData();
  const verifySeconds = (wallMs() - lastAckAt) / 1000;
  console.log(`${CONSOLES} consoles enrolled over the API and connected in ${fmt(result.setupMs / 1000, 1)}s`);
  const { problems, stored, windowMs, ackedInWindow, largestMessage } = result;

  const totalAcked = result.acked;
  const rate = result.eventsPerSecond;
  const latency = result.ackLatency;
  const cpu = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000 / windowMs;
  const childCpu = cpu({
    user: cpuChild1.cpu.user - cpuChild0.cpu.user,
    system: cpuChild1.cpu.system - cpuChild0.cpu.system,
  });

  printTable(
    'ingest (measured window)',
    [
      'consoles',
      'events/msg',
      'pipeline',
      'window s',
      'acked events',
      'events/s',
      'ack p50 ms',
      'ack p99 ms',
      'loop stall p99/max ms',
      'backend CPU',
      'client CPU',
    ],
    [
      [
        fmtInt(CONSOLES),
        fmtInt(BATCH),
        fmtInt(PIPELINE),
        fmt(windowMs / 1000, 1),
        fmtInt(ackedInWindow),
        fmtInt(rate),
        fmt(latency.p50, 1),
        fmt(latency.p99, 1),
        `${fmt(loop.p99Ms, 0)} / ${fmt(loop.maxMs, 0)}`,
        `${fmt(childCpu)} cores`,
        `${fmt(cpu(cpuSelf))} cores`,
      ],
    ],
  );
  printTable(
    'durability check (backend SIGKILLed right after the last ack, database reopened)',
    ['acknowledged (all phases)', 'stored', 'lost', 'duplicates/gaps/flags', 'largest message', 'check'],
    [
      [
        fmtInt(totalAcked),
        fmtInt(stored),
        fmtInt(Math.max(0, totalAcked - stored)),
        fmtInt(problems.length),
        `${fmtInt(largestMessage / 1024)} KiB`,
        problems.length === 0 ? 'PASS' : 'FAIL',
      ],
    ],
  );
  for (const p of problems.slice(0, 10)) console.log(`  problem: ${p}`);
  console.log(`(verification took ${fmt(verifySeconds, 1)}s)`);
  printTable(
    'goals',
    ['goal', 'measured', 'verdict'],
    [
      [
        `≥ ${fmtInt(GOAL_EVENTS_PER_SECOND)} acknowledged events/s`,
        fmtInt(rate),
        verdict(rate >= GOAL_EVENTS_PER_SECOND),
      ],
      [
        'no loss, no duplicates after SIGKILL',
        problems.length === 0 ? 'none' : `${problems.length} problems`,
        verdict(problems.length === 0),
      ],
    ],
  );
  if (problems.length > 0) process.exitCode = 1;
}

await main();
