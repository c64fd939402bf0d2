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
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import type WebSocket from 'ws';
import { DATABASE_FILE } from '../backend/store/sqlite-store.js';
import type { EventDraft } from '../shared/events.js';
import { MAX_EVENTS_PER_BATCH, MAX_MESSAGE_BYTES, type BackendMessage } from '../shared/protocol.js';
import { TestConsole } from '../test/helpers/backend-harness.js';
import { BackendProcess } from './lib/backend-process.js';
import { fmt, fmtInt, heading, printTable, summarize, verdict, wallMs } from './lib/report.js';
import { connectConsole, mapLimit } from './lib/ws-console.js';

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

interface InFlight {
  lastSeq: number;
  count: number;
  sentAt: number;
}

interface ConsoleState {
  console: TestConsole;
  ws: WebSocket | undefined;
  inFlight: InFlight[];
  sent: number;
  acked: number;
  findings: number;
  errors: string[];
}

/**
 * A realistic mix of what an agent reports: decisions, locks, resumes, heartbeats. No session or
 * operator is named: the bench signs nobody in, and the backend marks a subject a console could not
 * have witnessed (`subject-not-witnessed`), which the bench would report as a finding.
 */
function draftFor(i: number, consoleId: string): Partial<EventDraft> {
  switch (i % 4) {
    case 0:
      return {
        type: 'policy-decision',
        subject: { console: consoleId },
        outcome: 'allow',
        reasons: ['level-sufficient', 'within-max-age'],
        detail: { action: 'customer.view', policyVersion: 1 },
      };
    case 1:
      return {
        type: 'session-locked',
        subject: { console: consoleId },
        outcome: 'info',
        reasons: ['idle'],
      };
    case 2:
      return {
        type: 'session-switched',
        subject: { console: consoleId },
        assurance: {
          level: 'verified',
          aal: 2,
          acr: 'urn:baton:acr:verified',
          amr: ['hwk', 'user'],
          authTime: Date.now(),
        },
        outcome: 'success',
        reasons: ['operator-tapped-in'],
      };
    default:
      return { type: 'agent-online', subject: { console: consoleId }, outcome: 'info', reasons: ['heartbeat'] };
  }
}

async function main(): Promise<void> {
  heading('event ingest (durable, acknowledged)');
  const backend = await BackendProcess.start();
  console.log(
    `backend pid ${backend.child.pid} at ${backend.url}, durability "${backend.durability}"; clients in pid ${process.pid}; ` +
      `${CONSOLES} consoles, ${BATCH} events per message, up to ${PIPELINE} unacknowledged messages per console, ` +
      `${WARMUP}s warm-up + ${SECONDS}s measured`,
  );

  const t0 = performance.now();
  const consoles = await mapLimit(
    Array.from({ length: CONSOLES }, (_, i) => i),
    8,
    () => TestConsole.enrol(backend.url, backend.admin),
  );
  const states: ConsoleState[] = consoles.map((c) => ({
    console: c,
    ws: undefined,
    inFlight: [],
    sent: 0,
    acked: 0,
    findings: 0,
    errors: [],
  }));
  let phase: 'warmup' | 'measure' | 'drain' = 'warmup';
  let ackedInWindow = 0;
  const latencies: number[] = [];
  let largestMessage = 0;
  let onDrained: (() => void) | undefined;
  const totalInFlight = () => states.reduce((a, s) => a + s.inFlight.length, 0);

  const sendBatch = (state: ConsoleState) => {
    const events = Array.from({ length: BATCH }, () =>
      state.console.nextEvent(draftFor(state.console.seq + 1, state.console.id)),
    );
    const data = JSON.stringify({ type: 'events', events });
    largestMessage = Math.max(largestMessage, Buffer.byteLength(data));
    if (Buffer.byteLength(data) > MAX_MESSAGE_BYTES) throw new Error('batch exceeds the protocol frame limit');
    state.inFlight.push({ lastSeq: state.console.seq, count: BATCH, sentAt: performance.now() });
    state.sent += BATCH;
    state.ws?.send(data);
  };

  const onMessage = (state: ConsoleState) => (message: BackendMessage) => {
    if (message.type === 'error') {
      state.errors.push(`${message.code}: ${message.message}`);
      return;
    }
    if (message.type !== 'events-ack') return;
    state.findings += message.findings.length;
    const now = performance.now();
    while (state.inFlight.length > 0 && (state.inFlight[0] as InFlight).lastSeq <= message.upToSeq) {
      const batch = state.inFlight.shift() as InFlight;
      state.acked += batch.count;
      if (phase === 'measure') {
        ackedInWindow += batch.count;
        latencies.push(now - batch.sentAt);
      }
    }
    if (phase !== 'drain') while (state.inFlight.length < PIPELINE) sendBatch(state);
    else if (onDrained !== undefined && totalInFlight() === 0) onDrained();
  };

  await mapLimit(states, 50, async (state) => {
    const { ws } = await connectConsole(backend.url, state.console, onMessage(state), {
      policyVersion: 1,
      revocationEpoch: 0,
    });
    state.ws = ws;
  });
  console.log(
    `${CONSOLES} consoles enrolled over the API and connected in ${fmt((performance.now() - t0) / 1000, 1)}s`,
  );

  // Warm up, then measure a fixed window while every console keeps PIPELINE batches in flight.
  for (const state of states) for (let i = 0; i < PIPELINE; i++) sendBatch(state);
  await new Promise((resolve) => setTimeout(resolve, WARMUP * 1000));
  const cpuChild0 = await backend.request<{ cpu: NodeJS.CpuUsage }>('cpu');
  await backend.request('loop-delay', { reset: true });
  const cpuSelf0 = process.cpuUsage();
  phase = 'measure';
  const windowStart = performance.now();
  await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000));
  phase = 'drain';
  const windowMs = performance.now() - windowStart;
  const cpuSelf = process.cpuUsage(cpuSelf0);
  const cpuChild1 = await backend.request<{ cpu: NodeJS.CpuUsage }>('cpu');
  const loop = await backend.request<{ maxMs: number; p99Ms: number; meanMs: number }>('loop-delay');
  await new Promise<void>((resolve) => {
    onDrained = resolve;
    if (totalInFlight() === 0) resolve();
  });
  const lastAckAt = wallMs();

  // Crash the backend right after the last acknowledgement: what was acknowledged must be on disk.
  if (args.stop === 'graceful') await backend.stop(true);
  else await backend.kill();
  for (const s of states) s.ws?.terminate();
  const db = new Database(join(backend.dataDir, DATABASE_FILE));
  const perOrigin = new Map(
    (
      db
        .prepare(
          `SELECT origin, COUNT(*) AS n, COUNT(DISTINCT seq) AS distinctSeq, MIN(seq) AS lo, MAX(seq) AS hi,
                  SUM(integrity IS NOT NULL) AS flagged
           FROM events WHERE origin <> 'backend' GROUP BY origin`,
        )
        .all() as { origin: string; n: number; distinctSeq: number; lo: number; hi: number; flagged: number }[]
    ).map((r) => [r.origin, r]),
  );
  const heads = new Map(
    (
      db.prepare(`SELECT origin, last_seq, last_hash FROM event_streams`).all() as {
        origin: string;
        last_hash: string;
      }[]
    ).map((r) => [r.origin, r.last_hash]),
  );
  db.close();
  backend.removeData();
  const verifySeconds = (wallMs() - lastAckAt) / 1000;

  const problems: string[] = [];
  let stored = 0;
  for (const s of states) {
    const row = perOrigin.get(s.console.id);
    stored += row?.n ?? 0;
    if (s.errors.length > 0) problems.push(`${s.console.id}: ${s.errors[0] ?? ''}`);
    if (s.acked !== s.sent) problems.push(`${s.console.id}: ${s.sent - s.acked} sent but not acknowledged`);
    if (row === undefined) {
      problems.push(`${s.console.id}: no events stored`);
      continue;
    }
    if (row.n !== s.acked) problems.push(`${s.console.id}: stored ${row.n}, acknowledged ${s.acked}`);
    if (row.distinctSeq !== row.n || row.lo !== 1 || row.hi !== row.n)
      problems.push(`${s.console.id}: duplicate or missing sequence numbers`);
    if (row.flagged !== 0) problems.push(`${s.console.id}: ${row.flagged} events flagged (gap/chain/late)`);
    if (heads.get(s.console.id) !== s.console.lastHash)
      problems.push(`${s.console.id}: stored chain head differs from the console's`);
    if (s.findings !== 0) problems.push(`${s.console.id}: ${s.findings} findings in acknowledgements`);
  }
  const totalAcked = states.reduce((a, s) => a + s.acked, 0);
  const rate = (ackedInWindow / windowMs) * 1000;
  const latency = summarize(latencies);
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
