/**
 * How long the agent's main thread (in the desktop agent, the UI thread) is blocked while the event
 * outbox journals a burst of events — the current `main/core/event-outbox.ts` against a baseline
 * version of the same file taken from git, in the same process and in interleaved rounds.
 *
 * Each round opens a fresh journal and emits `--events` `policy-decision` events (the agent's most
 * common event, ~550 bytes of JSON) with `--concurrency` emits awaiting at once, as callers of
 * `authorize()` do; every `--ack-every` journaled events it acknowledges them, as the backend's
 * `events-ack` would. Meanwhile two probes watch the main thread: a 1 ms `setInterval` recording
 * every gap between its ticks, and `perf_hooks.monitorEventLoopDelay` (1 ms resolution). "Stall" is
 * a gap minus the 1 ms period: how long a click, a timer or an IPC message would have waited. The
 * main thread's time inside synchronous `writeSync`/`fsyncSync` calls is counted too, by wrapping
 * them (`syncBuiltinESMExports`); a worker thread's calls are not seen, by design.
 *
 * The baseline (`--baseline`, a git revision) is read with `git show` into a temporary directory
 * (lib/baseline-outbox.ts) and imported beside the current file.
 *
 *   node --import tsx bench/outbox-main-thread-stall.ts [--events 10000] [--concurrency 1,256,10000]
 *        [--rounds 3] [--ack-every 480] [--baseline 06345fa]
 */
import { execFileSync } from 'node:child_process';
import fs, { mkdtempSync, rmSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { EventOutbox } from '../main/core/event-outbox.js';
import type { AssuranceEvent, EventDraft } from '../shared/events.js';
import { LEVEL_PROFILES } from '../shared/levels.js';
import { DEFAULT_OUTBOX_BASELINE, shortRev, writeBaselineOutbox } from './lib/baseline-outbox.js';
import { fmt, fmtInt, heading, percentile, printJsonLine, printTable } from './lib/report.js';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '10000' },
    concurrency: { type: 'string', default: '1,256,10000' },
    rounds: { type: 'string', default: '3' },
    'ack-every': { type: 'string', default: '480' },
    baseline: { type: 'string', default: DEFAULT_OUTBOX_BASELINE },
  },
});
const EVENTS = Number(args.events);
const CONCURRENCIES = args.concurrency.split(',').map(Number);
const ROUNDS = Number(args.rounds);
const ACK_EVERY = Number(args['ack-every']);
const BASELINE = args.baseline;
const ROOT = fileURLToPath(new URL('..', import.meta.url));

type OutboxClass = Pick<typeof EventOutbox, 'open'>;

function draft(): EventDraft {
  const profile = LEVEL_PROFILES.verified;
  return {
    type: 'policy-decision',
    subject: { operator: 'op_bench', console: 'con_bench', session: 'ses_bench' },
    assurance: { level: 'verified', aal: profile.aal, acr: profile.acr, amr: [...profile.amr], authTime: Date.now() },
    outcome: 'allow',
    reasons: ['action-allowed'],
    detail: { action: 'customer.view', policyVersion: 1 },
  };
}

/** Main-thread time inside the synchronous write and fsync calls (the worker's calls are not seen). */
const syncIo = { calls: 0, ms: 0 };
function countSyncIo(): void {
  for (const name of ['writeSync', 'fsyncSync', 'fdatasyncSync'] as const) {
    const original = fs[name] as (...a: unknown[]) => unknown;
    (fs as unknown as Record<string, unknown>)[name] = (...a: unknown[]) => {
      const t0 = performance.now();
      try {
        return original(...a);
      } finally {
        syncIo.calls++;
        syncIo.ms += performance.now() - t0;
      }
    };
  }
  syncBuiltinESMExports();
}

interface Round {
  impl: string;
  concurrency: number;
  seconds: number;
  rate: number;
  stallMax: number;
  stallP99: number;
  eldMax: number;
  eldP99: number;
  syncIoCalls: number;
  syncIoMs: number;
}

async function burst(impl: string, Outbox: OutboxClass, concurrency: number): Promise<Round> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-stall-'));
  const { outbox } = Outbox.open(dir, { max: EVENTS + 1 });
  try {
    const gaps: number[] = [];
    let last = performance.now();
    const ticker = setInterval(() => {
      const now = performance.now();
      gaps.push(now - last);
      last = now;
    }, 1);
    const eld = monitorEventLoopDelay({ resolution: 1 });
    await new Promise((resolve) => setTimeout(resolve, 20)); // let the probes settle
    gaps.length = 0;
    eld.enable();
    syncIo.calls = 0;
    syncIo.ms = 0;
    const t0 = performance.now();
    let started = 0;
    let journaled = 0;
    const emitOne = async (): Promise<void> => {
      const event: AssuranceEvent = await outbox.emit(draft());
      journaled++;
      if (ACK_EVERY > 0 && journaled % ACK_EVERY === 0) outbox.acknowledge(event.seq);
    };
    await Promise.all(
      Array.from({ length: Math.min(concurrency, EVENTS) }, async () => {
        while (started < EVENTS) {
          started++;
          await emitOne();
        }
      }),
    );
    const ms = performance.now() - t0;
    const io = { ...syncIo };
    await new Promise((resolve) => setTimeout(resolve, 5)); // one more tick closes the last gap
    eld.disable();
    clearInterval(ticker);
    if (outbox.status.lastSeq !== EVENTS) throw new Error(`${impl}: journal holds ${outbox.status.lastSeq}`);
    const sorted = gaps.map((g) => Math.max(0, g - 1)).sort((a, b) => a - b);
    return {
      impl,
      concurrency,
      seconds: ms / 1000,
      rate: (EVENTS / ms) * 1000,
      stallMax: sorted.at(-1) ?? 0,
      stallP99: percentile(sorted, 99),
      eldMax: eld.max / 1e6,
      eldP99: eld.percentile(99) / 1e6,
      syncIoCalls: io.calls,
      syncIoMs: io.ms,
    };
  } finally {
    await outbox.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

heading('outbox main-thread stall');
const baselineRev = shortRev(BASELINE);
const currentRev = shortRev('HEAD');
const dirty = execFileSync(
  'git',
  ['status', '--porcelain', '--', 'main/core/event-outbox.ts', 'main/core/journal-writer.ts'],
  {
    cwd: ROOT,
    encoding: 'utf8',
  },
).trim();
const impls: [string, OutboxClass][] = [
  [
    `baseline ${baselineRev}`,
    ((await import(writeBaselineOutbox(BASELINE))) as { EventOutbox: OutboxClass }).EventOutbox,
  ],
  [
    `current ${currentRev}${dirty === '' ? '' : '+changes'}`,
    (await import('../main/core/event-outbox.js')).EventOutbox,
  ],
];
console.log(
  `${EVENTS} events per burst, concurrency ${CONCURRENCIES.join(' / ')}, ${ROUNDS} rounds each, ` +
    `acknowledged every ${ACK_EVERY}; load average ${(await import('node:os'))
      .loadavg()
      .map((l) => fmt(l))
      .join(' ')}`,
);
countSyncIo();

// Warm-up: one burst each, not counted, so neither side pays for compiling the code.
for (const [name, Outbox] of impls) await burst(name, Outbox, 256);

const rounds: Round[] = [];
for (const concurrency of CONCURRENCIES) {
  for (let r = 0; r < ROUNDS; r++) {
    // Alternate which goes first, so drift on the shared machine falls on both.
    const order = r % 2 === 0 ? impls : [...impls].reverse();
    for (const [name, Outbox] of order) rounds.push(await burst(name, Outbox, concurrency));
  }
}

printTable(
  `every round (${EVENTS} events each; stall = gap of a 1 ms interval minus 1 ms; ELD = monitorEventLoopDelay)`,
  [
    'implementation',
    'concurrency',
    'seconds',
    'events/s',
    'stall max ms',
    'stall p99 ms',
    'ELD max ms',
    'ELD p99 ms',
    'sync write+fsync on main',
    'ms in them',
  ],
  rounds.map((r) => [
    r.impl,
    fmtInt(r.concurrency),
    fmt(r.seconds),
    fmtInt(r.rate),
    fmt(r.stallMax),
    fmt(r.stallP99),
    fmt(r.eldMax),
    fmt(r.eldP99),
    fmtInt(r.syncIoCalls),
    fmt(r.syncIoMs, 1),
  ]),
);

const median = (values: number[]) =>
  percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
const summary = CONCURRENCIES.flatMap((concurrency) =>
  impls.map(([name]) => {
    const mine = rounds.filter((r) => r.impl === name && r.concurrency === concurrency);
    return {
      impl: name,
      concurrency,
      stallMax: Math.max(...mine.map((r) => r.stallMax)),
      stallP99: median(mine.map((r) => r.stallP99)),
      rate: median(mine.map((r) => r.rate)),
      syncIoMs: median(mine.map((r) => r.syncIoMs)),
    };
  }),
);
printTable(
  `summary over ${ROUNDS} rounds (worst max, median p99 and rate)`,
  ['implementation', 'concurrency', 'longest stall ms', 'stall p99 ms', 'events/s', 'ms in sync write+fsync'],
  summary.map((s) => [
    s.impl,
    fmtInt(s.concurrency),
    fmt(s.stallMax),
    fmt(s.stallP99),
    fmtInt(s.rate),
    fmt(s.syncIoMs, 1),
  ]),
);
printJsonLine('outbox-main-thread-stall', { events: EVENTS, rounds: ROUNDS, ackEvery: ACK_EVERY, summary });
