/**
 * The agent's durable event outbox: events per second journaled (written and fsync'd before they
 * count as emitted) and acknowledged end to end by the real backend over the real WebSocket, from
 * one console.
 *
 * (a) journal alone: `EventOutbox.emit` in a fresh directory, no network, with `--concurrency`
 *     emits awaiting at once (so that many share one write and one fsync) and one at a time (one
 *     fsync per event).
 * (b) end to end: an enrolled `BatonAgent` with an operator in front calls
 *     `authorize('customer.view')` — allowed by the default policy, so each call journals one
 *     `policy-decision` event and resolves once it is durable — with `--concurrency` calls in flight.
 *     The agent sends batches (up to 500 events and one 256 KiB frame), at most 4 unacknowledged;
 *     the backend (a child process, SQLite `synchronous=FULL`) acknowledges each batch after its
 *     commit. Timed from the first call to the acknowledgement that leaves the journal empty. Then
 *     the backend is killed with SIGKILL and its database opened: it must hold every event once, in
 *     order, chained to the head the agent's journal ends with. A drop of the connection during the
 *     run is a failure (e.g. a batch over the frame limit, which the backend closes with 1009).
 *
 * Where the agent's time goes is measured in the same run by the probes in lib/agent-probes.ts
 * (emit, fsyncs, acknowledgements, sends) and by event-loop utilisation in both processes.
 *
 *   node --import tsx bench/agent-outbox-throughput.ts [--events 50000] [--concurrency 256]
 *        [--journal-events 50000] [--serial-events 2000] [--stop kill|graceful]
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { DATABASE_FILE } from '../backend/store/sqlite-store.js';
import { EventOutbox, hashEvent } from '../main/core/event-outbox.js';
import type { AssuranceEvent } from '../shared/events.js';
import { MAX_EVENTS_PER_BATCH, MAX_MESSAGE_BYTES } from '../shared/protocol.js';
import { installProbes, probe, resetProbe, type OutboxProbe } from './lib/agent-probes.js';
import { BackendProcess } from './lib/backend-process.js';
import { decisionDraft, enrolOperators, runConcurrently, startBenchAgent, untilStatus } from './lib/bench-agent.js';
import { fmt, fmtInt, heading, printJsonLine, printTable, verdict } from './lib/report.js';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '50000' },
    concurrency: { type: 'string', default: '256' },
    'journal-events': { type: 'string', default: '50000' },
    'serial-events': { type: 'string', default: '2000' },
    /** `kill` (SIGKILL after the last ack, the durability check) or `graceful` (lets a --cpu-prof finish). */
    stop: { type: 'string', default: 'kill' },
  },
});
const EVENTS = Number(args.events);
const CONCURRENCY = Number(args.concurrency);
const JOURNAL_EVENTS = Number(args['journal-events']);
const SERIAL_EVENTS = Number(args['serial-events']);
const GOAL_EVENTS_PER_SECOND = 10_000;

interface JournalRun {
  label: string;
  events: number;
  seconds: number;
  rate: number;
  cpuCores: number;
  fsyncs: number;
  fsyncMeanMs: number;
  bytesPerEvent: number;
}

interface EndToEndRun {
  /** The connection dropped during the run: how many events were acknowledged until then. */
  stalledAt: number | undefined;
  events: number;
  journaledSeconds: number;
  ackedSeconds: number;
  rate: number;
  agentCores: number;
  agentLoopBusy: number;
  backendCores: number;
  backendLoopBusy: number;
  backendStallP99Ms: number;
  backendStallMaxMs: number;
  probe: OutboxProbe;
  consoleId: string;
  lastSeq: number;
  /** The newest event in the agent's journal, read before the agent stopped. */
  head: AssuranceEvent | undefined;
}

/** (a) The journal alone: emits into a fresh outbox, `concurrency` awaiting at once. */
async function journalAlone(label: string, events: number, concurrency: number): Promise<JournalRun> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-outbox-'));
  try {
    const { outbox } = EventOutbox.open(dir, { max: events + 1 });
    const draft = decisionDraft('con_bench', 'op_bench', 'ses_bench');
    resetProbe();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await runConcurrently(events, concurrency, async () => {
      await outbox.emit(draft);
    });
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const { journalFsyncs, journalFsyncMs } = probe;
    await outbox.close();
    const bytes = readdirSync(dir)
      .filter((f) => f.endsWith('.jsonl'))
      .reduce((n, f) => n + statSync(join(dir, f)).size, 0);
    if (outbox.status.lastSeq !== events) throw new Error(`journal holds ${outbox.status.lastSeq}, not ${events}`);
    return {
      label,
      events,
      seconds: ms / 1000,
      rate: (events / ms) * 1000,
      cpuCores: (cpu.user + cpu.system) / 1000 / ms,
      fsyncs: journalFsyncs,
      fsyncMeanMs: journalFsyncMs / journalFsyncs,
      bytesPerEvent: bytes / events,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The newest event in the agent's journal (the head of its chain). */
function journalHead(outboxDir: string): AssuranceEvent | undefined {
  const segments = readdirSync(outboxDir)
    .filter((f) => /^segment-\d{16}\.jsonl$/.test(f))
    .sort();
  const last = segments.at(-1);
  if (last === undefined) return undefined;
  const lines = readFileSync(join(outboxDir, last), 'utf8').trimEnd().split('\n');
  return JSON.parse(lines.at(-1) ?? 'null') as AssuranceEvent | undefined;
}

const busy = (a: EventLoopUtilization, b: EventLoopUtilization) => performance.eventLoopUtilization(b, a).utilization;

/** (b) One console, `EVENTS` authorize calls, until every event is acknowledged (or the connection drops). */
async function endToEnd(backend: BackendProcess): Promise<EndToEndRun> {
  const bench = await startBenchAgent({ backendUrl: backend.url, admin: backend.admin, channel: 'branch-kiosk' });
  try {
    const { agent, port, consoleId } = bench;
    const [operator] = await enrolOperators(bench, backend.admin, 1);
    if (operator === undefined) throw new Error('no operator');
    port.tap(operator.authenticator);
    await agent.tapIn();
    const before = (await untilStatus(agent, (s) => s.outbox?.pending === 0, 'the start-up events to be acked')).outbox;
    if (before === undefined) throw new Error('the agent has no outbox');

    let dropped = false;
    let journaledAt = 0;
    let refused = 0;
    const cpuBackend0 = await backend.request<{ cpu: NodeJS.CpuUsage }>('cpu');
    const eluBackend0 = await backend.request<{ elu: EventLoopUtilization }>('elu');
    await backend.request('loop-delay', { reset: true });
    resetProbe();
    const elu0 = performance.eventLoopUtilization();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const done = untilStatus(
      agent,
      (s) => {
        if (s.connection !== 'online') dropped = true;
        return dropped || (journaledAt > 0 && s.outbox?.pending === 0 && s.outbox.ackedSeq === s.outbox.lastSeq);
      },
      'every event to be acknowledged',
      120_000,
      5,
    );
    done.catch(() => undefined); // awaited below; a timeout during the calls must not crash the run
    await runConcurrently(EVENTS, CONCURRENCY, async () => {
      if (dropped) return;
      if ((await agent.authorize('customer.view')).outcome !== 'allow') refused++;
    });
    journaledAt = performance.now();
    const after = (await done).outbox;
    const ackedAt = performance.now();
    const cpu = process.cpuUsage(cpu0);
    const elu1 = performance.eventLoopUtilization();
    const observed = { ...probe };
    const cpuBackend1 = await backend.request<{ cpu: NodeJS.CpuUsage }>('cpu');
    const eluBackend1 = await backend.request<{ elu: EventLoopUtilization }>('elu');
    const loop = await backend.request<{ maxMs: number; p99Ms: number }>('loop-delay');
    if (after === undefined) throw new Error('the agent has no outbox');
    if (refused > 0) throw new Error(`${refused} authorize calls were not allowed`);
    const events = after.lastSeq - before.lastSeq;
    const ms = ackedAt - t0;
    return {
      stalledAt: dropped ? after.ackedSeq - before.lastSeq : undefined,
      events,
      journaledSeconds: (journaledAt - t0) / 1000,
      ackedSeconds: ms / 1000,
      rate: dropped ? Number.NaN : (events / ms) * 1000,
      agentCores: (cpu.user + cpu.system) / 1000 / ms,
      agentLoopBusy: busy(elu0, elu1),
      backendCores:
        (cpuBackend1.cpu.user - cpuBackend0.cpu.user + cpuBackend1.cpu.system - cpuBackend0.cpu.system) / 1000 / ms,
      backendLoopBusy: busy(eluBackend0.elu, eluBackend1.elu),
      backendStallP99Ms: loop.p99Ms,
      backendStallMaxMs: loop.maxMs,
      probe: observed,
      consoleId,
      lastSeq: after.lastSeq,
      head: journalHead(join(bench.dataDir, 'outbox', consoleId)),
    };
  } finally {
    await bench.close();
  }
}

/** Opens the killed backend's database: the console's events must all be there once, chained to the journal's head. */
function checkStored(backend: BackendProcess, run: EndToEndRun): string[] {
  if (run.stalledAt !== undefined) {
    return [
      `the connection dropped during the run with ${fmtInt(run.stalledAt)} of ${fmtInt(run.events)} events ` +
        `acknowledged; largest frame sent ${fmtInt(run.probe.largestFrame)} bytes (limit ${fmtInt(MAX_MESSAGE_BYTES)})`,
    ];
  }
  const db = new Database(join(backend.dataDir, DATABASE_FILE), { readonly: true });
  try {
    const stored = db
      .prepare(
        `SELECT COUNT(*) AS n, COUNT(DISTINCT seq) AS distinctSeq, MIN(seq) AS lo, MAX(seq) AS hi,
                SUM(integrity IS NOT NULL) AS flagged
         FROM events WHERE origin = ?`,
      )
      .get(run.consoleId) as { n: number; distinctSeq: number; lo: number; hi: number; flagged: number };
    const stream = db.prepare(`SELECT last_hash AS lastHash FROM event_streams WHERE origin = ?`).get(run.consoleId) as
      | { lastHash: string }
      | undefined;
    const problems: string[] = [];
    if (run.events !== EVENTS) problems.push(`${run.events} events journaled during the run, expected ${EVENTS}`);
    if (stored.n !== run.lastSeq) problems.push(`backend stored ${stored.n}, the agent journaled ${run.lastSeq}`);
    if (stored.distinctSeq !== stored.n || stored.lo !== 1 || stored.hi !== run.lastSeq)
      problems.push('duplicate or missing sequence numbers');
    if (stored.flagged !== 0) problems.push(`${stored.flagged} events flagged (gap/chain/late)`);
    if (run.head === undefined || run.head.seq !== run.lastSeq || stream?.lastHash !== hashEvent(run.head))
      problems.push("the backend's chain head differs from the agent's journal");
    return problems;
  } finally {
    db.close();
  }
}

function report(journal: JournalRun[], run: EndToEndRun, problems: string[]): void {
  const [grouped, serial] = journal;
  printTable(
    '(a) journal alone: EventOutbox.emit, write + fsync before it resolves, no network',
    ['emits', 'events', 'seconds', 'events/s', 'µs/event', 'CPU', 'fsyncs', 'ms/fsync', 'bytes/event on disk'],
    journal.map((j) => [
      j.label,
      fmtInt(j.events),
      fmt(j.seconds, 2),
      fmtInt(j.rate),
      fmt(1e6 / j.rate, 1),
      `${fmt(j.cpuCores)} cores`,
      fmtInt(j.fsyncs),
      fmt(j.fsyncMeanMs, 3),
      fmtInt(j.bytesPerEvent),
    ]),
  );
  const p = run.probe;
  printTable(
    '(b) end to end: authorize() → journal (fsync) → WebSocket → backend commit → events-ack',
    [
      'events',
      'all journaled s',
      'all acked s',
      'events/s',
      'batches',
      'largest batch',
      'largest frame B',
      'agent CPU / loop busy',
      'backend CPU / loop busy',
      'backend stall p99/max ms',
    ],
    [
      [
        run.stalledAt === undefined ? fmtInt(run.events) : `STALLED, ${fmtInt(run.stalledAt)} acked`,
        fmt(run.journaledSeconds, 2),
        run.stalledAt === undefined ? fmt(run.ackedSeconds, 2) : 'never',
        fmtInt(run.rate),
        fmtInt(p.batches),
        fmtInt(p.largestBatch),
        fmtInt(p.largestFrame),
        `${fmt(run.agentCores)} / ${fmt(run.agentLoopBusy * 100, 0)}%`,
        `${fmt(run.backendCores)} / ${fmt(run.backendLoopBusy * 100, 0)}%`,
        `${fmt(run.backendStallP99Ms, 0)} / ${fmt(run.backendStallMaxMs, 0)}`,
      ],
    ],
  );
  const windowMs = run.ackedSeconds * 1000;
  const part = (label: string, ms: number, count: string) => [
    label,
    count,
    fmt(ms, 0),
    fmt((ms / run.events) * 1000, 1),
    `${fmt((ms / windowMs) * 100, 1)}%`,
  ];
  const measuredMs = p.emitMs + p.journalFsyncMs + p.ackMs + p.sendMs;
  printTable(
    "(b) where the agent's main thread goes (same run; share of the end-to-end wall time)",
    ['part', 'calls', 'ms', 'µs/event', 'share'],
    [
      part('emit: number, chain, schema check, hash', p.emitMs, fmtInt(p.emits)),
      part('journal fsync (group writes)', p.journalFsyncMs, fmtInt(p.journalFsyncs)),
      part('acknowledge: acked file + its fsync, segments', p.ackMs, fmtInt(p.acks)),
      part('  of which the acked file fsync', p.ackFsyncMs, fmtInt(p.acks)),
      part('send: frame from journal lines + ws send', p.sendMs, fmtInt(p.batches)),
      part('everything else (authorize, batch sizing, writes, GC, acks in, idle)', windowMs - measuredMs, ''),
    ],
  );
  printTable(
    'same-run ratios',
    ['ratio', 'value'],
    [
      ['end to end ÷ journal alone (grouped)', fmt(run.rate / (grouped?.rate ?? Number.NaN))],
      ['journal grouped ÷ one at a time', fmt((grouped?.rate ?? Number.NaN) / (serial?.rate ?? Number.NaN), 1)],
    ],
  );
  printTable(
    'durability check (backend SIGKILLed right after the last ack, database reopened)',
    ['journaled (all)', 'check'],
    [[fmtInt(run.lastSeq), problems.length === 0 ? 'PASS' : 'FAIL']],
  );
  for (const problem of problems) console.log(`  problem: ${problem}`);
  printTable(
    'goals',
    ['goal', 'measured', 'verdict'],
    [
      [
        `≥ ${fmtInt(GOAL_EVENTS_PER_SECOND)} events/s journaled and acknowledged end to end`,
        fmtInt(run.rate),
        verdict(run.rate >= GOAL_EVENTS_PER_SECOND),
      ],
      [
        'every event delivered once, in order, chained',
        problems.length === 0 ? 'yes' : `${problems.length} problems`,
        verdict(problems.length === 0),
      ],
    ],
  );
  const { head: _head, ...figures } = run;
  printJsonLine('agent-outbox-throughput', {
    journal,
    endToEnd: figures,
    problems,
    goalMet: run.rate >= GOAL_EVENTS_PER_SECOND,
  });
}

async function main(): Promise<void> {
  heading('agent outbox throughput (journaled durably, acknowledged end to end)');
  installProbes();
  // (a) Journal alone, before anything else runs in this process.
  const journal = [
    await journalAlone(`grouped (${fmtInt(CONCURRENCY)} awaiting)`, JOURNAL_EVENTS, CONCURRENCY),
    await journalAlone('one at a time', SERIAL_EVENTS, 1),
  ];

  // (b) End to end.
  const backend = await BackendProcess.start({ exposeGc: false });
  let running = true;
  try {
    console.log(
      `backend pid ${backend.child.pid} at ${backend.url}, durability "${backend.durability}"; agent core in pid ` +
        `${process.pid}, one console with one operator in front; ${fmtInt(EVENTS)} authorize('customer.view') ` +
        `calls, ${fmtInt(CONCURRENCY)} in flight; batches of up to ${MAX_EVENTS_PER_BATCH} events, ` +
        `frame limit ${fmtInt(MAX_MESSAGE_BYTES)} bytes`,
    );
    const run = await endToEnd(backend);
    // Durability: the acknowledged events must be in the backend's database after a SIGKILL.
    if (args.stop === 'graceful') await backend.stop(true);
    else await backend.kill();
    running = false;
    const problems = checkStored(backend, run);
    report(journal, run, problems);
    if (problems.length > 0) process.exitCode = 1;
  } finally {
    if (running) await backend.stop();
    backend.removeData();
  }
}

await main();
