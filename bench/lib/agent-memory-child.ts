/**
 * The measured process of bench/agent-memory.ts, forked with --expose-gc and an IPC channel. It
 * imports only the agent core and what drives it (bench-agent.ts), never the backend.
 *
 * - BENCH_MODE=idle: the same imports, nothing started: reports its memory and exits (the baseline).
 * - BENCH_MODE=agent: enrols a `BatonAgent` through BENCH_BACKEND_URL (the parent's TcpProxy), signs
 *   in BENCH_SESSIONS operators, asks the parent to cut the connection, then journals BENCH_EVENTS
 *   `policy-decision` events through `authorize()` while offline, so they stay queued. It reports
 *   its memory (after full GCs) at each stage.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  enrolOperators,
  leanAdmin,
  memoryAfterGc,
  runConcurrently,
  startBenchAgent,
  untilStatus,
  type BenchAgent,
} from './bench-agent.js';

export type MemoryChildMessage =
  | { type: 'stage'; stage: string; memory: NodeJS.MemoryUsage; sessions: number; queued: number }
  | { type: 'cut-please' }
  | { type: 'done'; journalBytes: number; queueSeconds: number };

function send(message: MemoryChildMessage): void {
  process.send?.(message);
}

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined) throw new Error(`agent-memory-child needs ${name}`);
  return value;
}

function dirBytes(dir: string): number {
  return readdirSync(dir, { withFileTypes: true }).reduce(
    (n, entry) => n + (entry.isDirectory() ? dirBytes(join(dir, entry.name)) : statSync(join(dir, entry.name)).size),
    0,
  );
}

function stage(name: string, bench?: BenchAgent): void {
  const memory = memoryAfterGc();
  const status = bench?.agent.status;
  send({
    type: 'stage',
    stage: name,
    memory,
    sessions: status?.sessions.length ?? 0,
    queued: status?.outbox?.pending ?? 0,
  });
}

const cut = new Promise<void>((resolve) =>
  process.on('message', (message: { type?: string }) => {
    if (message.type === 'cut') resolve();
  }),
);

async function runAgent(): Promise<void> {
  const admin = leanAdmin(env('BENCH_ADMIN_URL'), env('BENCH_ADMIN_TOKEN'));
  const sessions = Number(env('BENCH_SESSIONS'));
  const events = Number(env('BENCH_EVENTS'));
  const concurrency = Number(env('BENCH_CONCURRENCY'));
  const bench = await startBenchAgent({ backendUrl: env('BENCH_BACKEND_URL'), admin, channel: env('BENCH_CHANNEL') });
  try {
    const { agent, port } = bench;
    stage('agent enrolled and online, no session', bench);
    const operators = await enrolOperators(bench, admin, sessions);
    for (const op of operators) {
      port.tap(op.authenticator);
      await agent.tapIn();
    }
    await untilStatus(agent, (s) => s.outbox?.pending === 0, 'the sign-in events to be acknowledged');
    if (agent.status.sessions.length !== sessions)
      throw new Error(`${agent.status.sessions.length} sessions on the console, expected ${sessions}`);
    stage(`${sessions} sessions, nothing queued`, bench);

    send({ type: 'cut-please' });
    await cut;
    await untilStatus(agent, (s) => s.connection === 'offline', 'the agent to notice the cut');
    const t0 = performance.now();
    let refused = 0;
    await runConcurrently(events, concurrency, async () => {
      if ((await agent.authorize('customer.view')).outcome !== 'allow') refused++;
    });
    const queueSeconds = (performance.now() - t0) / 1000;
    if (refused > 0) throw new Error(`${refused} authorize calls were not allowed`);
    const status = agent.status;
    if (status.connection !== 'offline' || (status.outbox?.pending ?? 0) < events)
      throw new Error(
        `expected ${events} queued offline, found ${JSON.stringify(status.outbox)} (${status.connection})`,
      );
    stage(`${sessions} sessions, ${events.toLocaleString('en-GB')} queued, offline`, bench);
    send({ type: 'done', journalBytes: dirBytes(join(bench.dataDir, 'outbox')), queueSeconds });
  } finally {
    await bench.close();
  }
}

if (process.send === undefined) throw new Error('agent-memory-child runs under bench/agent-memory.ts');
// If the parent dies, do not linger.
const orphaned = () => process.exit(1);
process.on('disconnect', orphaned);
stage(env('BENCH_MODE') === 'idle' ? 'idle node, same imports' : 'imports loaded');
if (env('BENCH_MODE') === 'agent') await runAgent();
process.off('disconnect', orphaned);
process.disconnect();
