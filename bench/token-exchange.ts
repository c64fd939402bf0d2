/**
 * Token exchange (RFC 8693, `POST /v1/tokens/exchange`): action tokens issued per CPU-second and the
 * latency a console sees, against a backend started in this process on the suite's engine
 * (embedded SQLite unless BATON_TEST_DATABASE=postgres). Each issuance verifies the subject token,
 * re-reads the session, operator and passkey, evaluates the policy, signs an ES256 JWT and records
 * an `action-token-issued` event (one transaction).
 *
 *  (a) in-process: `TokenExchange.exchange` with real console records (no HTTP, no request signature);
 *  (b) end to end over HTTP (keep-alive), each request signed with the console key, client in this process.
 *
 * Beside (a), in interleaved rounds of the same run, the anchor: the bare ES256 work an exchange cannot
 * avoid, one node:crypto (OpenSSL) P-256 signature verified (the subject token) and one made (the
 * action token), per CPU-second. The ratio (a) / anchor is what to compare across loaded runs.
 * `--profile <file>` writes a V8 CPU profile of the in-process rounds only (open it in Chrome's
 * DevTools, or summarise it by self time), and one of the HTTP run beside it (`<file>.http.cpuprofile`).
 *
 * The backend runs with the production default `--durability full` (every unit of work's commit waits
 * for the disk) unless told otherwise. What the p99 is made of: every in-process request is traced
 * (its time before its issuance event is queued, its wait for the group commit, the rest), beside the
 * event loop's blocking SQLite COMMIT statements (better-sqlite3 is synchronous: the fsync and any WAL
 * checkpoint run on the event loop), the GC pauses and each group's unit of work; the slowest 1 % are
 * set against the median request. The disk's own anchor, in the same rounds and on the data
 * directory's disk: the p50/p99 of a plain `fdatasync` after a small append, and of a one-row SQLite
 * commit with `synchronous = FULL` (WAL), so the report can say how much of the p99 is the disk.
 * WAL checkpoints run on a worker thread (BATON_SQLITE_CHECKPOINT_ON_LOOP=1: SQLite's own, on the loop, for an A/B).
 * `--autocheckpoint <pages>` sets the backend connection's `wal_autocheckpoint` (0: none) for an A/B;
 * BATON_SQLITE_SYNC_ON_LOOP=1 puts SQLite's fsync back inside COMMIT, on the event loop (the A/B of
 * backend/store/sqlite-store.ts WalSync). The event loop's delay during the rounds (what any other
 * request of the process waits) is printed beside them.
 *
 *   node --import tsx bench/token-exchange.ts [--seconds 6] [--rounds 3] [--consoles 20] [--concurrency 4]
 *     [--durability full|normal] [--autocheckpoint 1000] [--no-http] [--profile exchange.cpuprofile]
 *     [--heap-profile exchange.heapprofile [--heap-profile-live]] [--back-to-back]
 *
 * The table's title names the young generation the process ran with (`--max-semi-space-size` on the node
 * command line or in NODE_OPTIONS, else V8's default), and the JSON line its peak RSS and the minor page
 * faults per exchange: for an A/B of the semi-space, `node --max-semi-space-size=32 --import tsx bench/…`.
 *
 * Each client's next request starts in a later turn of the event loop than its answer (as a request
 * over the network would); `--back-to-back` starts it in the answer's own turn (the measurement before
 * 2026-12-05 14:55 UTC), where a group's answers wait for one another's next subject-token verify.
 * `--heap-profile <file>` writes a sampling heap profile of the in-process rounds, with the objects the
 * GC has collected (where the allocations that fill the young generation come from). With
 * `--heap-profile-live` it holds only what is still alive when the last round ends: what the rounds
 * retain (what each scavenge copies or promotes instead of dropping).
 */
import { generateKeyPairSync, sign as signBytes, verify as verifyBytes } from 'node:crypto';
import fs, { closeSync, fdatasyncSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { Session } from 'node:inspector/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver, constants, createHistogram } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { IssuanceJournal } from '../backend/tokens/issuance-journal.js';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT } from '../shared/action-tokens.js';
import { TestConsole, startTestBackend, type Json } from '../test/helpers/backend-harness.js';
import { enrolOperator, signIn } from '../test/helpers/operator-flow.js';
import {
  appKeyPair,
  exchange,
  publishPolicy,
  tellerPolicy,
  TELLER_AUDIENCE,
} from '../test/helpers/action-token-fixtures.js';
import type { ConsoleRecord } from '../backend/store/repositories.js';
import { fmt, fmtInt, heading, printJsonLine, printTable, summarize, verdict } from './lib/report.js';
/**
 * A scavenge on demand (V8's `gc` extension, exposed to a new context). Run between the anchors and each
 * traced round: the anchor's thousands of node:crypto sign and verify jobs are native objects with weak
 * handles, and the first scavenge of the round would otherwise process them all (measured: 20,000–26,000
 * weak handles, a 7–20 ms pause inside the round, against ~620 and ~1.8 ms for a scavenge of the
 * exchanges' own garbage). That pause is the benchmark's, not the backend's.
 */
setFlagsFromString('--expose-gc');
const collectYoung = runInNewContext('gc') as (options: { type: 'minor' | 'major' }) => void;

/** The young generation this process runs with, for the report. */
const NODE_FLAGS =
  [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].find((a) =>
    /^--max[-_]semi[-_]space[-_]size=/.test(a),
  ) ?? "V8's default semi-space";

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '6' },
    rounds: { type: 'string', default: '3' },
    consoles: { type: 'string', default: '20' },
    concurrency: { type: 'string', default: '4' },
    'no-http': { type: 'boolean', default: false },
    durability: { type: 'string', default: 'full' },
    autocheckpoint: { type: 'string' },
    profile: { type: 'string' },
    'heap-profile': { type: 'string' },
    'heap-profile-live': { type: 'boolean', default: false },
    'back-to-back': { type: 'boolean', default: false },
  },
});
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const CONSOLES = Number(args.consoles);
const CONCURRENCY = Number(args.concurrency);
/** Each in-process client starts its next request in the same turn as its answer came (the measurement before 2026-12-05 14:55 UTC). */
const BACK_TO_BACK = args['back-to-back'];
const GOAL_RATE = 2000;
// One request in flight per seat: the trace keys a request's journal times by its seat's session.
if (CONCURRENCY > CONSOLES) throw new Error('--concurrency may not exceed --consoles');
const GOAL_P99_MS = 5;

interface Seat {
  console: TestConsole;
  record: ConsoleRecord;
  token: string;
  /** The session behind `token`: it keys the journal's times of the seat's one request in flight. */
  session: string;
  /** A request of this seat is in flight (`run` gives a seat to one client at a time). */
  busy: boolean;
}

type Interval = [start: number, end: number];

/**
 * A growing column of doubles, for what the benchmark records per request or per commit while it
 * measures: its buffer is off the V8 heap (an ArrayBuffer). A plain array's backing store would sit in
 * the young generation and grow by copies, and every scavenge would copy it again: the GC pauses
 * measured would be partly the benchmark's own (survivors per scavenge grow with the run).
 */
class Column {
  private data = new Float64Array(1 << 16);
  length = 0;

  push(value: number): void {
    if (this.length === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = value;
  }

  /** The values as a plain array (for the report, once the measuring is over). */
  values(): number[] {
    return Array.from(this.data.subarray(0, this.length));
  }
}

/** Intervals recorded while measuring, kept in two columns; `list()` for the report. */
class Intervals {
  private readonly starts = new Column();
  private readonly ends = new Column();

  add(start: number, end: number): void {
    this.starts.push(start);
    this.ends.push(end);
  }

  list(): Interval[] {
    const ends = this.ends.values();
    return this.starts.values().map((start, i) => [start, ends[i] as number]);
  }
}

/**
 * The trace of the in-process rounds: better-sqlite3's COMMIT statements (timed on the statement
 * prototype, before the backend opens its connection), GC pauses, each issuance group's unit of
 * work, and per request when its issuance event was queued and when the journal let it go.
 * Per request the trace keeps numbers only, keyed by the seat's session (a seat has one request in
 * flight at a time): keeping each request's token (or its jti) until the report would make every
 * scavenge copy and promote them, and the GC pauses measured would be the benchmark's own.
 */
const trace = {
  on: false,
  /** The current (or last) traced round's start and end (performance.now()); GC entries arrive after the fact. */
  since: Number.POSITIVE_INFINITY,
  until: Number.POSITIVE_INFINITY,
  raw: new Set<Database.Database>(),
  commits: new Intervals(),
  gc: new Intervals(),
  /** GC pauses' milliseconds by kind (minor = scavenge, major = mark-compact, incremental, weak callbacks). */
  gcKinds: new Map<string, number[]>(),
  units: new Intervals(),
  /** The store's WAL flushes off the event loop (fs.fdatasync on the thread pool: sqlite-store.ts WalSync). */
  flushes: new Intervals(),
  /** By session id: when the seat's current request queued its issuance event, and when the journal let it go. */
  queued: new Map<string, number>(),
  released: new Map<string, number>(),
};
{
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called with its `this` below
  const prepare = Database.prototype.prepare;
  Database.prototype.prepare = function (this: Database.Database, sql: string) {
    trace.raw.add(this);
    return prepare.call(this, sql);
  } as typeof prepare;
  const scratch = new Database(':memory:');
  const statementProto = Object.getPrototypeOf(scratch.prepare('SELECT 1')) as { run: (...a: unknown[]) => unknown };
  scratch.close();
  const run = statementProto.run;
  statementProto.run = function (this: { source: string }, ...params: unknown[]) {
    if (!trace.on || this.source !== 'commit') return run.apply(this, params);
    const start = performance.now();
    try {
      return run.apply(this, params);
    } finally {
      trace.commits.add(start, performance.now());
    }
  };
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called with its `this` below
  const record = IssuanceJournal.prototype.record;
  IssuanceJournal.prototype.record = function (this: IssuanceJournal, draft) {
    const session = draft.subject.session;
    if (!trace.on || draft.type !== 'action-token-issued' || session === undefined) return record.call(this, draft);
    trace.queued.set(session, performance.now());
    return record.call(this, draft).then(() => {
      trace.released.set(session, performance.now());
    });
  };
  const flush = fs.fdatasync;
  fs.fdatasync = ((fd: number, callback: (error: NodeJS.ErrnoException | null) => void) => {
    if (!trace.on) return flush(fd, callback);
    const start = performance.now();
    flush(fd, (error) => {
      trace.flushes.add(start, performance.now());
      callback(error);
    });
  }) as typeof fs.fdatasync;
  syncBuiltinESMExports();
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      // Delivered later than it ran: a pause counts when it started inside a traced round.
      if (entry.startTime < trace.since || entry.startTime > trace.until) continue;
      trace.gc.add(entry.startTime, entry.startTime + entry.duration);
      const kind = ((entry as { detail?: unknown }).detail as { kind?: number } | undefined)?.kind;
      const name =
        kind === constants.NODE_PERFORMANCE_GC_MINOR
          ? 'minor'
          : kind === constants.NODE_PERFORMANCE_GC_MAJOR
            ? 'major'
            : kind === constants.NODE_PERFORMANCE_GC_INCREMENTAL
              ? 'incremental'
              : 'weak callbacks';
      const pauses = trace.gcKinds.get(name) ?? [];
      pauses.push(entry.duration);
      trace.gcKinds.set(name, pauses);
    }
  }).observe({ entryTypes: ['gc'] });
}

/** Milliseconds of `[start, end]` covered by `intervals` (sorted by start, not overlapping much). */
function overlap(start: number, end: number, intervals: readonly Interval[]): number {
  let sum = 0;
  for (const [a, b] of intervals) {
    if (a >= end) break;
    if (b > start) sum += Math.min(b, end) - Math.max(a, start);
  }
  return sum;
}

/**
 * The disk's anchor on the data directory's disk: `n` appends of 128 bytes each followed by
 * `fdatasync`, and `n` one-row SQLite transactions with `synchronous = FULL` in WAL mode; ms each.
 */
function diskAnchor(dir: string, n: number): { fdatasync: number[]; sqliteFull: number[] } {
  const fdatasync: number[] = [];
  const fd = openSync(join(dir, 'anchor-append.bin'), 'a');
  const chunk = Buffer.alloc(128, 1);
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    writeSync(fd, chunk);
    fdatasyncSync(fd);
    fdatasync.push(performance.now() - t0);
  }
  closeSync(fd);
  const db = new Database(join(dir, 'anchor.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)');
  const insert = db.prepare('INSERT INTO t (body) VALUES (?)');
  const one = db.transaction((body: string) => insert.run(body));
  const body = 'x'.repeat(600);
  const sqliteFull: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    one(body);
    sqliteFull.push(performance.now() - t0);
  }
  db.close();
  return { fdatasync, sqliteFull };
}

/** The anchor: one ES256 verify and one ES256 sign with OpenSSL, synchronously, for `ms`; pairs and CPU ms. */
function anchor(ms: number): { n: number; cpuMs: number } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const input = Buffer.from(`eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.${'x'.repeat(420)}`);
  const signature = signBytes('sha256', input, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const cpu0 = process.cpuUsage();
  const end = performance.now() + ms;
  let n = 0;
  while (performance.now() < end) {
    for (let i = 0; i < 50; i++) {
      if (!verifyBytes('sha256', input, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature)) throw new Error('!');
      signBytes('sha256', input, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    }
    n += 50;
  }
  const cpu = process.cpuUsage(cpu0);
  return { n, cpuMs: (cpu.user + cpu.system) / 1000 };
}

/** The traced requests, column by column (plain doubles: nothing per request for the GC to trace or copy). */
interface Traced {
  start: Column;
  end: Column;
  /** When its issuance event was queued in the journal, and when the journal let it go. */
  queued: Column;
  released: Column;
}

async function run(ms: number, seats: readonly Seat[], one: (seat: Seat) => Promise<unknown>, traced?: Traced) {
  const samples = new Column();
  const faults0 = process.resourceUsage().minorPageFault;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + ms;
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        let seat = seats[next++ % seats.length] as Seat;
        while (seat.busy) seat = seats[next++ % seats.length] as Seat;
        seat.busy = true;
        const s0 = performance.now();
        try {
          await one(seat);
        } finally {
          seat.busy = false;
        }
        const s1 = performance.now();
        samples.push(s1 - s0);
        if (traced !== undefined) {
          const queued = trace.queued.get(seat.session);
          const released = trace.released.get(seat.session);
          if (queued !== undefined && released !== undefined && queued >= s0 && released >= queued) {
            traced.start.push(s0);
            traced.end.push(s1);
            traced.queued.push(queued);
            traced.released.push(released);
          }
        }
        // A client's next request comes in a later turn of the event loop, as one over the network
        // would: started at once, in the answer's own turn, its CPU work (the subject token's verify
        // runs synchronously) would run before the other answers of the same group reach their
        // clients, and their latency would count it.
        if (!BACK_TO_BACK) await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }),
  );
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  return {
    /** Minor page faults (pages the kernel mapped in: a new semi-space page's first touch is one). */
    faults: process.resourceUsage().minorPageFault - faults0,
    systemMs: cpu.system / 1000,
    samples: samples.values(),
    wallMs: wall,
    cpuMs,
    perCore: (samples.length / cpuMs) * 1000,
    perWall: (samples.length / wall) * 1000,
  };
}

/** The trace's intervals as lists, each sorted by start (for the report, once the measuring is over). */
interface Timeline {
  commits: Interval[];
  gc: Interval[];
  units: Interval[];
  flushes: Interval[];
}

function timeline(): Timeline {
  const byStart = (a: Interval, b: Interval) => a[0] - b[0];
  return {
    commits: trace.commits.list().sort(byStart),
    gc: trace.gc.list().sort(byStart),
    units: trace.units.list().sort(byStart),
    flushes: trace.flushes.list().sort(byStart),
  };
}

/** Per request: before its event was queued, the journal's wait, after; what overlapped it (COMMITs, GC); group size. */
function explain(traced: Traced, line: Timeline) {
  const unitEnds = line.units.map(([, y]) => y).sort((a, b) => a - b);
  const unitOf = (at: number) => {
    let lo = 0;
    let hi = unitEnds.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((unitEnds[mid] as number) <= at) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  };
  const ends = traced.end.values();
  const queuedAt = traced.queued.values();
  const releasedAt = traced.released.values();
  const rows = traced.start.values().flatMap((start, i) => {
    const r = { start, end: ends[i] as number };
    const queued = queuedAt[i] as number;
    const released = releasedAt[i] as number;
    // Its own group's COMMIT: the last one to end while it waited in the journal.
    let own = 0;
    for (const [a, b] of line.commits) {
      if (a >= released) break;
      if (b >= queued && b <= released) own = b - a;
    }
    let flushed = 0;
    for (const [a, b] of line.flushes) {
      if (a >= released) break;
      if (b >= queued && b <= released) flushed = b - a;
    }
    const commits = overlap(r.start, r.end, line.commits);
    return [
      {
        total: r.end - r.start,
        before: queued - r.start,
        journal: released - queued,
        after: r.end - released,
        ownCommit: own,
        ownFlush: flushed,
        otherCommits: Math.max(0, commits - own),
        gc: overlap(r.start, r.end, line.gc),
        unit: unitOf(released),
      },
    ];
  });
  const groupSize = new Map<number, number>();
  for (const row of rows) groupSize.set(row.unit, (groupSize.get(row.unit) ?? 0) + 1);
  rows.sort((a, b) => a.total - b.total);
  const mean = (name: string, part: typeof rows) => {
    const avg = (f: (row: (typeof rows)[number]) => number) =>
      part.length === 0 ? Number.NaN : part.reduce((x, row) => x + f(row), 0) / part.length;
    return {
      name,
      n: part.length,
      total: avg((r) => r.total),
      before: avg((r) => r.before),
      journal: avg((r) => r.journal),
      after: avg((r) => r.after),
      ownCommit: avg((r) => r.ownCommit),
      ownFlush: avg((r) => r.ownFlush),
      otherCommits: avg((r) => r.otherCommits),
      gc: avg((r) => r.gc),
      group: avg((r) => groupSize.get(r.unit) ?? 0),
    };
  };
  const at = (p: number) => Math.floor((p / 100) * rows.length);
  return [
    mean('all (mean)', rows),
    mean('median band (45-55 %)', rows.slice(at(45), at(55))),
    mean('p90-p99 band', rows.slice(at(90), at(99))),
    mean('slowest 1 %', rows.slice(at(99))),
  ];
}

heading('token-exchange');
if (args.durability !== 'full' && args.durability !== 'normal') throw new Error('--durability full|normal');
const onLoop = args.durability === 'normal' || process.env.BATON_SQLITE_SYNC_ON_LOOP === '1';
/** WAL checkpoints: on a worker thread by default (sqlite-wal-sync-checkpointer.ts); BATON_SQLITE_CHECKPOINT_ON_LOOP=1 for the A/B. */
const checkpointsOnLoop = process.env.BATON_SQLITE_CHECKPOINT_ON_LOOP === '1';
const t = await startTestBackend({ durability: args.durability });
try {
  if (args.autocheckpoint !== undefined)
    for (const db of trace.raw) if (db.open) db.pragma(`wal_autocheckpoint = ${Number(args.autocheckpoint)}`);
  const walPages = [...trace.raw].find((db) => db.open)?.pragma('wal_autocheckpoint', { simple: true });
  {
    // Each issuance group's unit of work (the journal's `atomically`), for the trace.
    const log = t.backend.services.events;
    const atomically = log.atomically.bind(log);
    log.atomically = async (fn) => {
      const start = performance.now();
      try {
        return await atomically(fn);
      } finally {
        if (trace.on) trace.units.add(start, performance.now());
      }
    };
  }
  const keys = await appKeyPair();
  await publishPolicy(t.admin, tellerPolicy(keys.publicJwk));
  const seats: Seat[] = [];
  for (let i = 0; i < CONSOLES; i++) {
    const console = await TestConsole.enrol(t.url, t.admin);
    const { authenticator } = await enrolOperator(t.admin, console, { displayName: `Teller ${i}` });
    const signedIn = (await signIn(console, authenticator)).body as Json;
    const record = await t.backend.store.consoles.get(console.id);
    if (record === undefined) throw new Error('console vanished');
    const token = signedIn.token as string;
    const { sid } = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as { sid: string };
    seats.push({ console, record, token, session: sid, busy: false });
  }
  const service = t.backend.services.actionTokens.exchange;
  const inProcess = (seat: Seat) =>
    service
      .exchange(seat.record, {
        grant_type: TOKEN_EXCHANGE_GRANT,
        subject_token: seat.token,
        subject_token_type: ACCESS_TOKEN_TYPE,
        audience: TELLER_AUDIENCE,
        scope: 'payment.approve',
      })
      .then(() => undefined);
  const overHttp = async (seat: Seat) => {
    const result = await exchange(seat.console, seat.token, 'payment.approve');
    if (result.status !== 200) throw new Error(`exchange → ${result.status} ${JSON.stringify(result.body)}`);
  };
  const load0 = loadavg()[0] ?? Number.NaN;
  await run(1000, seats, inProcess); // warm-up
  anchor(300);
  const profiler = args.profile === undefined ? undefined : new Session();
  if (profiler !== undefined) {
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.start');
  }
  // Sampled allocations of the in-process rounds, those the GC has collected since included: where the
  // young generation fills from (each scavenge pauses the loop).
  const heapProfiler = args['heap-profile'] === undefined ? undefined : new Session();
  if (heapProfiler !== undefined) {
    heapProfiler.connect();
    await heapProfiler.post('HeapProfiler.enable');
    await heapProfiler.post('HeapProfiler.startSampling', {
      samplingInterval: 4096,
      includeObjectsCollectedByMajorGC: !args['heap-profile-live'],
      includeObjectsCollectedByMinorGC: !args['heap-profile-live'],
    } as never);
  }
  const perRound = (SECONDS * 1000) / ROUNDS;
  const rounds: Awaited<ReturnType<typeof run>>[] = [];
  const anchors = { n: 0, cpuMs: 0 };
  const disk = { fdatasync: [] as number[], sqliteFull: [] as number[] };
  const traced: Traced = { start: new Column(), end: new Column(), queued: new Column(), released: new Column() };
  // What any other work of the process (another console's request, a WebSocket frame) waits for the
  // event loop while the exchanges run: a 1 ms timer's lateness, sampled during the traced rounds only
  // (the first tick of a round is skipped: it would count the anchors before it).
  const loopDelay = createHistogram();
  let lastTick = performance.now();
  let tickedOn = false;
  const ticker = setInterval(() => {
    const now = performance.now();
    if (trace.on && tickedOn) loopDelay.record(Math.max(1, Math.round((now - lastTick - 1) * 1e6)));
    tickedOn = trace.on;
    lastTick = now;
  }, 1);
  for (let r = 0; r < ROUNDS; r++) {
    const x = anchor(Math.min(1000, perRound / 2));
    anchors.n += x.n;
    anchors.cpuMs += x.cpuMs;
    const d = diskAnchor(t.dataDir, 200);
    disk.fdatasync.push(...d.fdatasync);
    disk.sqliteFull.push(...d.sqliteFull);
    collectYoung({ type: 'minor' }); // the anchors' garbage, before the round (see collectYoung)
    tickedOn = false; // the next tick only starts the round's sampling
    trace.since = performance.now();
    trace.until = Number.POSITIVE_INFINITY;
    trace.on = true;
    rounds.push(await run(perRound, seats, inProcess, traced));
    trace.on = false;
    trace.until = performance.now();
  }
  clearInterval(ticker);
  if (heapProfiler !== undefined && args['heap-profile'] !== undefined) {
    const { profile } = await heapProfiler.post('HeapProfiler.stopSampling');
    writeFileSync(args['heap-profile'], JSON.stringify(profile));
    heapProfiler.disconnect();
  }
  rmSync(join(t.dataDir, 'anchor-append.bin'), { force: true });
  if (profiler !== undefined && args.profile !== undefined) {
    const { profile } = await profiler.post('Profiler.stop');
    writeFileSync(args.profile, JSON.stringify(profile));
    profiler.disconnect();
  }
  const a = {
    samples: rounds.flatMap((r) => r.samples),
    cpuMs: rounds.reduce((x, r) => x + r.cpuMs, 0),
    systemMs: rounds.reduce((x, r) => x + r.systemMs, 0),
    faults: rounds.reduce((x, r) => x + r.faults, 0),
    wallMs: rounds.reduce((x, r) => x + r.wallMs, 0),
    perCore: 0,
    perWall: 0,
  };
  a.perCore = (a.samples.length / a.cpuMs) * 1000;
  a.perWall = (a.samples.length / a.wallMs) * 1000;
  const anchorRate = (anchors.n / anchors.cpuMs) * 1000;
  let b: typeof a | undefined;
  if (!args['no-http']) {
    await run(1000, seats, overHttp);
    const httpProfiler = args.profile === undefined ? undefined : new Session();
    httpProfiler?.connect();
    await httpProfiler?.post('Profiler.enable');
    await httpProfiler?.post('Profiler.start');
    b = await run(SECONDS * 1000, seats, overHttp);
    if (httpProfiler !== undefined && args.profile !== undefined) {
      const { profile } = await httpProfiler.post('Profiler.stop');
      writeFileSync(args.profile.replace(/(\.cpuprofile)?$/, '.http.cpuprofile'), JSON.stringify(profile));
      httpProfiler.disconnect();
    }
  }
  const load1 = loadavg()[0] ?? Number.NaN;
  const rows: [string, typeof a][] = [['(a) in-process TokenExchange.exchange', a]];
  if (b !== undefined) rows.push(['(b) HTTP, console-signed, client in-process', b]);
  printTable(
    `token exchange, ${CONSOLES} consoles/sessions, concurrency ${CONCURRENCY}${BACK_TO_BACK ? ' back to back' : ''}, engine ${t.backend.store.engine}, node ${NODE_FLAGS}, durability ${args.durability}${args.durability === 'full' ? (onLoop ? ' (fsync on the event loop)' : ' (WAL flush off the event loop)') : ''}, load ${fmt(load0)} → ${fmt(load1)}`,
    ['path', 'tokens', 'CPU µs each', 'of it system', 'per core /s', 'per wall s', 'p50 ms', 'p99 ms', 'max ms'],
    rows.map(([name, r]) => {
      const s = summarize(r.samples);
      return [
        name,
        fmtInt(s.n),
        fmtInt((r.cpuMs * 1000) / s.n),
        fmtInt((r.systemMs * 1000) / s.n),
        fmtInt(r.perCore),
        fmtInt(r.perWall),
        fmt(s.p50),
        fmt(s.p99),
        fmt(s.max),
      ];
    }),
  );
  printTable(
    'anchor (same run, interleaved with (a)): one OpenSSL ES256 verify + one sign, synchronous',
    ['what', 'pairs', 'CPU µs each', 'per core /s', '(a) / anchor'],
    [
      [
        'node:crypto verify + sign',
        fmtInt(anchors.n),
        fmtInt((anchors.cpuMs * 1000) / anchors.n),
        fmtInt(anchorRate),
        `x${fmt(a.perCore / anchorRate, 3)}`,
      ],
    ],
  );
  const pa = summarize(a.samples);
  printTable(
    'goals (the in-process path: the issuer itself, without the HTTP client sharing the core)',
    ['goal', 'measured', 'verdict'],
    [
      [`≥ ${fmtInt(GOAL_RATE)} tokens/s per core`, fmtInt(a.perCore), verdict(a.perCore >= GOAL_RATE)],
      [`p99 ≤ ${GOAL_P99_MS} ms`, fmt(pa.p99), verdict(pa.p99 <= GOAL_P99_MS)],
    ],
  );
  const line = timeline();
  const breakdown = explain(traced, line);
  const commitMs = line.commits.map(([x, y]) => y - x);
  const gcMs = line.gc.map(([x, y]) => y - x);
  const unitMs = line.units.map(([x, y]) => y - x);
  const flushMs = line.flushes.map(([x, y]) => y - x);
  const cs = summarize(commitMs);
  const gs = summarize(gcMs);
  const us = summarize(unitMs);
  const df = summarize(disk.fdatasync);
  const dq = summarize(disk.sqliteFull);
  printTable(
    `what a request's time is made of (in-process rounds, ${fmtInt(traced.start.length)} requests traced, ms)`,
    [
      'requests',
      'n',
      'total',
      'before queued',
      'journal wait',
      'after',
      'own COMMIT',
      'own WAL flush',
      "others' COMMITs",
      'GC',
      'group size',
    ],
    breakdown.map((row) => [
      row.name,
      fmtInt(row.n),
      fmt(row.total),
      fmt(row.before),
      fmt(row.journal),
      fmt(row.after),
      fmt(row.ownCommit),
      fmt(row.ownFlush),
      fmt(row.otherCommits),
      fmt(row.gc),
      fmt(row.group, 1),
    ]),
  );
  printTable(
    `what blocked the event loop during the in-process rounds (durability ${args.durability}, WAL flush ${onLoop ? 'inside COMMIT, on the event loop' : 'off the event loop'}, checkpoints ${checkpointsOnLoop ? 'on the event loop' : 'on a worker thread (bound on the loop)'}, wal_autocheckpoint ${String(walPages)})`,
    ['what', 'count', 'p50 ms', 'p99 ms', 'max ms', 'total ms', '> 2 ms'],
    [
      ['SQLite COMMIT (all units)', cs, commitMs],
      ['GC pause', gs, gcMs],
      ...[...trace.gcKinds].map(([kind, list]) => [`  of it ${kind}`, summarize(list), list]),
      ['WAL flush off the event loop (fdatasync, not blocking)', summarize(flushMs), flushMs],
      ['issuance group unit of work (not blocking)', us, unitMs],
    ].map(([name, x, list]) => {
      const v = x as ReturnType<typeof summarize>;
      const l = list as number[];
      return [
        name as string,
        fmtInt(v.n),
        fmt(v.p50),
        fmt(v.p99),
        fmt(v.max),
        fmt(l.reduce((a, b) => a + b, 0)),
        fmtInt(l.filter((m) => m > 2).length),
      ];
    }),
  );
  const lag = {
    p50: loopDelay.percentile(50) / 1e6,
    p99: loopDelay.percentile(99) / 1e6,
    max: loopDelay.max / 1e6,
  };
  printTable(
    'event loop delay during the in-process rounds (what every other request of the process waits)',
    ['p50 ms', 'p99 ms', 'max ms'],
    [[fmt(lag.p50), fmt(lag.p99), fmt(lag.max)]],
  );
  printTable(
    `disk anchor (same rounds, ${fmtInt(df.n)} each, data directory ${t.dataDir})`,
    ['what', 'p50 ms', 'p99 ms', 'max ms'],
    [
      ['append 128 B + fdatasync', fmt(df.p50, 3), fmt(df.p99, 3), fmt(df.max, 3)],
      ['SQLite one-row commit, WAL, synchronous FULL', fmt(dq.p50, 3), fmt(dq.p99, 3), fmt(dq.max, 3)],
      ["the backend's COMMITs (above)", fmt(cs.p50, 3), fmt(cs.p99, 3), fmt(cs.max, 3)],
    ],
  );
  printJsonLine('token-exchange', {
    nodeFlags: NODE_FLAGS,
    /** The process's peak resident set (backend, clients and the benchmark's own trace), MiB. */
    maxRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    durability: args.durability,
    walFlush: onLoop ? 'on-loop' : 'off-loop',
    flushes: summarize(flushMs),
    loopDelay: lag,
    walAutocheckpoint: walPages,
    checkpoints: checkpointsOnLoop ? 'on-loop' : 'worker',
    breakdown,
    commits: cs,
    gc: gs,
    units: us,
    disk: { fdatasync: df, sqliteFull: dq },
    engine: t.backend.store.engine,
    load: [load0, load1],
    anchor: { perCore: anchorRate },
    inProcess: {
      perCore: a.perCore,
      cpuUsEach: (a.cpuMs * 1000) / pa.n,
      systemUsEach: (a.systemMs * 1000) / pa.n,
      minorFaultsEach: a.faults / pa.n,
      ...pa,
    },
    ...(b === undefined ? {} : { http: { perCore: b.perCore, ...summarize(b.samples) } }),
  });
} finally {
  await t.stop();
}
