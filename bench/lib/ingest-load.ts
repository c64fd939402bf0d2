/**
 * The durable-ingest load of bench/event-ingest.ts as a reusable function, for nodes started from the
 * CLI (bench/cluster-ingest.ts): consoles enrolled over the API, each keeping `pipeline` batches of
 * `batch` chained events in flight over its signed WebSocket; only acknowledged events count (an
 * `events-ack` is sent after the group commit). Afterwards the store is read to check that every
 * acknowledged event is stored once, in sequence, unflagged, with the console's chain head.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import type WebSocket from 'ws';
import { DATABASE_FILE } from '../../backend/store/sqlite-store.js';
import type { EventDraft } from '../../shared/events.js';
import { MAX_MESSAGE_BYTES, type BackendMessage } from '../../shared/protocol.js';
import { TestConsole } from '../../test/helpers/backend-harness.js';
import type { CliNode } from './cluster.js';
import { summarize, type Summary } from './report.js';
import { connectConsole, mapLimit } from './ws-console.js';

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
      return { type: 'session-locked', subject: { console: consoleId }, outcome: 'info', reasons: ['idle'] };
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

export interface IngestResult {
  eventsPerSecond: number;
  windowMs: number;
  /** Enrolling and connecting the consoles, before the warm-up. */
  setupMs: number;
  /** Events acknowledged in the measured window, and in every phase. */
  ackedInWindow: number;
  acked: number;
  /** The largest `events` message sent, in bytes. */
  largestMessage: number;
  ackLatency: Summary;
  /** Problems found reading the store back (empty: every acknowledged event stored once, chained). */
  problems: string[];
  stored: number;
}

export interface IngestOptions {
  consoles: number;
  batch: number;
  pipeline: number;
  warmupSeconds: number;
  seconds: number;
  /** PostgreSQL URL of the node's database; absent: the node's embedded SQLite file. */
  databaseUrl?: string;
  /** Called (and awaited) at the start and the end of the measured window (CPU readings). */
  onWindow?: (edge: 'start' | 'end') => void | Promise<void>;
  /** Called as soon as every batch sent is acknowledged, before the store is read back (a SIGKILL). */
  afterDrain?: () => Promise<void>;
}

/** A node the load runs against: a CLI node (cluster.ts) or an instrumented child (backend-process.ts). */
export type IngestTarget = Pick<CliNode, 'url' | 'admin' | 'dataDir'>;

/**
 * Enrols and connects the consoles, warms up, measures a window while every console keeps `pipeline`
 * batches in flight, drains, then reads the store back.
 */
export async function ingestLoad(node: IngestTarget, options: IngestOptions): Promise<IngestResult> {
  const setupStart = performance.now();
  const consoles = await mapLimit(
    Array.from({ length: options.consoles }, (_, i) => i),
    8,
    () => TestConsole.enrol(node.url, node.admin),
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
  let onDrained: (() => void) | undefined;
  let largestMessage = 0;
  const totalInFlight = () => states.reduce((a, s) => a + s.inFlight.length, 0);
  const sendBatch = (state: ConsoleState) => {
    const events = Array.from({ length: options.batch }, () =>
      state.console.nextEvent(draftFor(state.console.seq + 1, state.console.id)),
    );
    const data = JSON.stringify({ type: 'events', events });
    const bytes = Buffer.byteLength(data);
    if (bytes > MAX_MESSAGE_BYTES) throw new Error('batch exceeds the protocol frame limit');
    largestMessage = Math.max(largestMessage, bytes);
    state.inFlight.push({ lastSeq: state.console.seq, count: options.batch, sentAt: performance.now() });
    state.sent += options.batch;
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
    if (phase !== 'drain') while (state.inFlight.length < options.pipeline) sendBatch(state);
    else if (onDrained !== undefined && totalInFlight() === 0) onDrained();
  };
  await mapLimit(states, 50, async (state) => {
    const { ws } = await connectConsole(node.url, state.console, onMessage(state), {
      policyVersion: 1,
      revocationEpoch: 0,
    });
    state.ws = ws;
  });
  const setupMs = performance.now() - setupStart;
  for (const state of states) for (let i = 0; i < options.pipeline; i++) sendBatch(state);
  await new Promise((resolve) => setTimeout(resolve, options.warmupSeconds * 1000));
  await options.onWindow?.('start');
  phase = 'measure';
  const windowStart = performance.now();
  await new Promise((resolve) => setTimeout(resolve, options.seconds * 1000));
  phase = 'drain';
  const windowMs = performance.now() - windowStart;
  await options.onWindow?.('end');
  await new Promise<void>((resolve) => {
    onDrained = resolve;
    if (totalInFlight() === 0) resolve();
  });
  await options.afterDrain?.();
  for (const s of states) s.ws?.terminate();

  // Read the store back: every acknowledged event once, in sequence, unflagged, with the console's head.
  type Row = { origin: string; n: number; distinct_seq: number; lo: number; hi: number; flagged: number };
  const sql = `SELECT origin, COUNT(*) AS n, COUNT(DISTINCT seq) AS distinct_seq, MIN(seq) AS lo, MAX(seq) AS hi,
                      SUM(CASE WHEN integrity IS NOT NULL THEN 1 ELSE 0 END) AS flagged
               FROM events WHERE origin <> 'backend' GROUP BY origin`;
  let rows: Row[];
  let heads: { origin: string; last_hash: string }[];
  if (options.databaseUrl !== undefined) {
    const client = new pg.Client({ connectionString: options.databaseUrl });
    await client.connect();
    try {
      rows = (await client.query(sql)).rows.map((r: Record<string, unknown>) => ({
        origin: String(r.origin),
        n: Number(r.n),
        distinct_seq: Number(r.distinct_seq),
        lo: Number(r.lo),
        hi: Number(r.hi),
        flagged: Number(r.flagged),
      }));
      heads = (await client.query('SELECT origin, last_hash FROM event_streams')).rows as typeof heads;
    } finally {
      await client.end();
    }
  } else {
    const db = new Database(join(node.dataDir, DATABASE_FILE), { readonly: true });
    try {
      rows = db.prepare(sql).all() as Row[];
      heads = db.prepare('SELECT origin, last_hash FROM event_streams').all() as typeof heads;
    } finally {
      db.close();
    }
  }
  const perOrigin = new Map(rows.map((r) => [r.origin, r]));
  const headOf = new Map(heads.map((h) => [h.origin, h.last_hash]));
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
    if (row.distinct_seq !== row.n || row.lo !== 1 || row.hi !== row.n)
      problems.push(`${s.console.id}: duplicate or missing sequence numbers`);
    if (row.flagged !== 0) problems.push(`${s.console.id}: ${row.flagged} events flagged (gap/chain/late)`);
    if (headOf.get(s.console.id) !== s.console.lastHash)
      problems.push(`${s.console.id}: stored chain head differs from the console's`);
    if (s.findings !== 0) problems.push(`${s.console.id}: ${s.findings} findings in acknowledgements`);
  }
  return {
    eventsPerSecond: (ackedInWindow / windowMs) * 1000,
    windowMs,
    setupMs,
    ackedInWindow,
    acked: states.reduce((a, s) => a + s.acked, 0),
    largestMessage,
    ackLatency: summarize(latencies),
    problems,
    stored,
  };
}
