/**
 * Durable ingest on both engines (issue 10), each as a ratio to the raw batched insert of its engine
 * measured in the same run (../shared/anchors/sqlite-insert.mjs, pg-insert.mjs):
 *  (a) over the wire: consoles enrolled over the API on a node started from the CLI, each keeping
 *      PIPELINE batches of BATCH chained events in flight; acknowledged events/s (the ack follows the
 *      group commit); embedded SQLite (1 process, durability full) and PostgreSQL (same two cores,
 *      fsync and synchronous_commit on) with 1, 2 and 4 workers; the store is read back afterwards:
 *      every acknowledged event stored once, in sequence, with the console's head;
 *  (b) the repositories alone, in this process: `EventRepository.insertMany` + `setHead` in one
 *      `Store.transaction` per batch of BATCH rows (what the group commit does per console and
 *      group), the hand-written better-sqlite3 store (`openSqliteStore`) against the Kysely store on
 *      the same SQLite file settings (`openKyselySqliteStore`), and the Kysely store on PostgreSQL.
 *
 *   node --import tsx bench/cluster-ingest.ts [--seconds 6] [--consoles 40] [--batch 250] [--pipeline 2] [--workers 1,2,4] [--rows 50000]
 *
 * `--waits`: during each PostgreSQL window, samples `pg_stat_activity` of the node's database every
 * 10 ms (what each backend connection waits on: a lock, an LWLock, the WAL flush, the client, or CPU)
 * and reads `pg_stat_statements` (loaded for the run) for the window: calls, rows and time per
 * statement and per 1,000 acknowledged events — where the contention between nodes is, with evidence.
 *
 * `--ab NAME=VALUE` and/or `--ab-root DIR` [--ab-engine sqlite|postgres] [--pairs 4]: only (a), one
 * process, alternately A (this tree) and B (the node with that environment variable, an A/B switch such
 * as BATON_EVENT_HASH_OBJECT=1, and/or started from another copy of the project, e.g. a `git worktree`
 * of an earlier commit), `--pairs` times; each run's events/s, CPU µs per event (backend, PostgreSQL)
 * and load printed, beside the raw anchor of the engine.
 *
 * Without PostgreSQL the PostgreSQL parts are skipped with the reason printed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { openPostgresStore } from '../backend/store/postgres-store.js';
import type { EventRow, Store } from '../backend/store/repositories.js';
import { openKyselySqliteStore, openSqliteStore } from '../backend/store/sqlite-store.js';
import {
  CliNode,
  cpuDelta,
  freshDatabase,
  loadLine,
  postgresForBench,
  postmasterPid,
  runAnchor,
  treeCpu,
} from './lib/cluster.js';
import { ingestLoad, type IngestResult } from './lib/ingest-load.js';
import { fmt, fmtInt, heading, printJsonLine, printTable, verdict } from './lib/report.js';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '6' },
    warmup: { type: 'string', default: '2' },
    consoles: { type: 'string', default: '40' },
    batch: { type: 'string', default: '250' },
    pipeline: { type: 'string', default: '2' },
    workers: { type: 'string', default: '1,2,4' },
    rows: { type: 'string', default: '50000' },
    passes: { type: 'string', default: '3' },
    'skip-wire': { type: 'boolean', default: false },
    /** Skip (b), the repositories alone. */
    'skip-repo': { type: 'boolean', default: false },
    /** Skip the SQLite wire run (PostgreSQL's workers only). */
    'skip-sqlite': { type: 'boolean', default: false },
    ab: { type: 'string' },
    'ab-root': { type: 'string' },
    'ab-engine': { type: 'string', default: 'sqlite' },
    pairs: { type: 'string', default: '4' },
    'ab-workers': { type: 'string', default: '1' },
    waits: { type: 'boolean', default: false },
  },
});
const SECONDS = Number(args.seconds);
const WARMUP = Number(args.warmup);
const CONSOLES = Number(args.consoles);
const BATCH = Number(args.batch);
const PIPELINE = Number(args.pipeline);
const ROWS = Number(args.rows);
const PASSES = Number(args.passes);
const WORKERS = args.workers
  .split(',')
  .map(Number)
  .filter((n) => n >= 1);
const WAITS = args.waits;
const AB_WORKERS = Number(args['ab-workers']);
const GOAL_SQLITE = 50_000;
const GOAL_POSTGRES = 30_000;

interface WireResult extends IngestResult {
  name: string;
  engine: 'sqlite' | 'postgres';
  command: string;
  load: string;
  backendCores: number;
  postgresCores: number;
}

async function wire(
  name: string,
  engine: 'sqlite' | 'postgres',
  command: string,
  node: CliNode,
  databaseUrl: string | undefined,
  postgresPid: number | undefined,
): Promise<WireResult> {
  let b0 = new Map<number, number>();
  let p0 = new Map<number, number>();
  let backendMs = 0;
  let postgresMs = 0;
  const load = loadLine();
  const sampler = WAITS && databaseUrl !== undefined ? await WaitSampler.open(databaseUrl) : undefined;
  const result = await ingestLoad(node, {
    consoles: CONSOLES,
    batch: BATCH,
    pipeline: PIPELINE,
    warmupSeconds: WARMUP,
    seconds: SECONDS,
    ...(databaseUrl === undefined ? {} : { databaseUrl }),
    onWindow: async (edge) => {
      if (edge === 'start') {
        await sampler?.start();
        b0 = treeCpu(node.pid);
        if (postgresPid !== undefined) p0 = treeCpu(postgresPid);
      } else {
        backendMs = cpuDelta(b0, treeCpu(node.pid));
        if (postgresPid !== undefined) postgresMs = cpuDelta(p0, treeCpu(postgresPid));
        await sampler?.stop();
      }
    },
  });
  if (sampler !== undefined) await sampler.report(name, result.ackedInWindow);
  const r: WireResult = {
    ...result,
    name,
    engine,
    command,
    load,
    backendCores: backendMs / result.windowMs,
    postgresCores: postgresMs / result.windowMs,
  };
  console.log(
    `${name}: ${fmtInt(r.eventsPerSecond)} events/s, ack p99 ${fmt(r.ackLatency.p99, 1)} ms, ` +
      `${r.problems.length === 0 ? 'store check PASS' : `store check FAIL: ${r.problems.slice(0, 3).join('; ')}`} (${load})`,
  );
  return r;
}

/**
 * `--waits`: what the node's PostgreSQL connections do during the window (pg_stat_activity sampled
 * every 10 ms) and what they run (pg_stat_statements, reset at the window's start).
 */
class WaitSampler {
  private readonly counts = new Map<string, number>();
  private samples = 0;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private statements = false;
  private startCursor = 0;

  private constructor(private readonly client: pg.Client) {}

  static async open(url: string): Promise<WaitSampler> {
    const client = new pg.Client({ connectionString: url, application_name: 'bench-waits' });
    await client.connect();
    const sampler = new WaitSampler(client);
    try {
      await client.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
      sampler.statements = true;
    } catch {
      // not preloaded: waits only
    }
    return sampler;
  }

  async start(): Promise<void> {
    if (this.statements) await this.client.query('SELECT pg_stat_statements_reset()');
    const max = await this.client.query<{ max: string | null }>('SELECT MAX(cursor) AS max FROM events');
    this.startCursor = Number(max.rows[0]?.max ?? 0);
    this.timer = setInterval(() => {
      if (this.busy) return;
      this.busy = true;
      this.client
        .query<{ what: string }>(
          `SELECT CASE WHEN state = 'active' THEN 'active: ' || COALESCE(wait_event_type || ':' || wait_event, 'CPU')
                         || ' | ' || left(regexp_replace(query, '\\s+', ' ', 'g'), 70)
                       ELSE COALESCE(state, '?') || ': ' || COALESCE(wait_event_type || ':' || wait_event, '-') END AS what
             FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
        )
        .then((r) => {
          this.samples++;
          for (const { what } of r.rows) this.counts.set(what, (this.counts.get(what) ?? 0) + 1);
        })
        .catch(() => undefined)
        .finally(() => (this.busy = false));
    }, 10);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    while (this.busy) await new Promise((resolve) => setTimeout(resolve, 5));
  }

  /**
   * After the drain: 2 s more for the nodes' live feeds to catch up, then per statement the calls and
   * rows since the window's start per 1,000 events stored since then (the feed's reads included).
   */
  async report(name: string, acked: number): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const stored = await this.client.query<{ n: string }>('SELECT COUNT(*) AS n FROM events WHERE cursor > $1', [
      this.startCursor,
    ]);
    const events = Number(stored.rows[0]?.n ?? 0);
    const rows = [...this.counts].sort((a, b) => b[1] - a[1]).slice(0, 14);
    printTable(
      `${name}: pg_stat_activity, ${this.samples} samples every 10 ms in the window (connections per sample)`,
      ['state: wait | query', 'mean connections'],
      rows.map(([what, n]) => [what, fmt(n / Math.max(1, this.samples), 2)]),
    );
    if (this.statements) {
      const r = await this.client.query<{ query: string; calls: string; rows: string; ms: number }>(
        `SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query, calls, rows, total_exec_time AS ms
           FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
          ORDER BY calls DESC LIMIT 16`,
      );
      printTable(
        `${name}: pg_stat_statements from the window's start to 2 s after the drain (${fmtInt(events)} events stored meanwhile, ${fmtInt(acked)} acknowledged in the window)`,
        ['statement', 'calls', 'calls per 1,000 events', 'rows', 'rows per event', 'exec ms per 1,000 events'],
        r.rows.map((x) => [
          x.query,
          fmtInt(Number(x.calls)),
          fmt((Number(x.calls) * 1000) / events, 2),
          fmtInt(Number(x.rows)),
          fmt(Number(x.rows) / events, 2),
          fmt((x.ms * 1000) / events, 2),
        ]),
      );
    }
    await this.client.end();
  }
}

// ---- (b) repositories alone ----

const BODY = JSON.stringify({
  type: 'session-established',
  operator: 'o'.repeat(36),
  console: 'c'.repeat(36),
  acr: 'phr',
  amr: ['hwk', 'user'],
  pad: 'p'.repeat(300),
});

function rowsFor(origin: string, from: number, count: number): EventRow[] {
  const now = Date.now();
  return Array.from({ length: count }, (_, j) => ({
    origin,
    seq: from + j,
    id: `${origin}-${from + j}`,
    time: now,
    receivedAt: now,
    type: 'session-switched',
    outcome: 'success',
    operatorId: null,
    consoleId: origin,
    sessionId: null,
    serviceId: null,
    body: BODY,
    hash: 'h'.repeat(64),
    integrity: [],
  }));
}

interface RepoRun {
  rate: number;
  /** CPU time of this process per row (µs): less sensitive than the rate to a loaded, shared machine. */
  cpuUsPerRow: number;
}

async function repositoryRate(store: Store, rows: number, batch: number): Promise<RepoRun> {
  // Warm-up batch on its own origin, then `rows` rows over 8 origins (consoles) in batches.
  await store.transaction(async (tx) => {
    await tx.events.insertMany(rowsFor('warm', 1, batch));
    await tx.events.setHead('warm', { lastSeq: batch, lastHash: 'h'.repeat(64) });
  });
  const origins = Array.from({ length: 8 }, (_, i) => `con-bench-${i}`);
  const next = new Map(origins.map((o) => [o, 1]));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let done = 0, i = 0; done < rows; done += batch, i++) {
    const origin = origins[i % origins.length] as string;
    const from = next.get(origin) as number;
    next.set(origin, from + batch);
    await store.transaction(async (tx) => {
      await tx.events.lockHead(origin);
      const results = await tx.events.insertMany(rowsFor(origin, from, batch));
      if (results.some((r) => !r.inserted)) throw new Error('row not inserted');
      await tx.events.setHead(origin, { lastSeq: from + batch - 1, lastHash: 'h'.repeat(64) });
    });
  }
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { rate: (rows / wall) * 1000, cpuUsPerRow: (cpu.user + cpu.system) / rows };
}

/**
 * `--ab NAME=VALUE` and/or `--ab-root DIR`: one wire configuration (`--ab-engine`, 1 process) run
 * alternately as A (this tree) and B (with the variable set, and/or the node started from DIR).
 */
async function abMain(): Promise<void> {
  const assignment = args.ab;
  const [name, value = '1'] = assignment === undefined ? [] : (assignment.split('=') as [string, string | undefined]);
  const root = args['ab-root'];
  const engine = args['ab-engine'] === 'postgres' ? 'postgres' : 'sqlite';
  const b = [name === undefined ? '' : `${name}=${value}`, root === undefined ? '' : `node from ${root}`]
    .filter(Boolean)
    .join(', ');
  heading(`cluster durable ingest (issue 10), ${engine} over the wire, A/B: A = this tree, B = ${b}`);
  console.log(loadLine());
  let anchor: string;
  let pgServer: Awaited<ReturnType<typeof postgresForBench>> | undefined;
  if (engine === 'sqlite') {
    const sqliteAnchor = await runAnchor('sqlite-insert.mjs');
    const raw = Number(sqliteAnchor.find((a) => a.synchronous === 'FULL' && a.rowsPerTx === 250)?.rowsPerSecond);
    anchor = `raw SQLite FULL 250/tx ${fmtInt(raw)} rows/s`;
  } else {
    pgServer = await postgresForBench(WAITS ? { shared_preload_libraries: 'pg_stat_statements' } : {});
    if (!('server' in pgServer)) throw new Error(`no PostgreSQL: ${pgServer.skip}`);
    const pgAnchor = await runAnchor('pg-insert.mjs', [await freshDatabase(pgServer.server, 'anchor')]);
    const raw = Number(pgAnchor.find((a) => a.connections === 1 && a.rowsPerTx === 250)?.rowsPerSecond);
    anchor = `raw PostgreSQL 250/tx 1 conn ${fmtInt(raw)} rows/s`;
  }
  console.log(`anchor: ${anchor}`);
  const runs: { side: 'A' | 'B'; r: WireResult }[] = [];
  try {
    for (let pair = 0; pair < Number(args.pairs); pair++) {
      for (const side of pair % 2 === 0 ? (['A', 'B'] as const) : (['B', 'A'] as const)) {
        const saved = name === undefined ? undefined : process.env[name];
        if (name !== undefined) {
          if (side === 'B') process.env[name] = value;
          else delete process.env[name];
        }
        const url =
          pgServer !== undefined && 'server' in pgServer ? await freshDatabase(pgServer.server, 'ingest') : undefined;
        let node: CliNode;
        try {
          node = await CliNode.start({
            ...(url === undefined ? {} : { databaseUrl: url, workers: AB_WORKERS }),
            ...(side === 'B' && root !== undefined ? { root } : {}),
            nodeFlags: process.env.BENCH_BACKEND_NODE_FLAGS?.split(' ').filter(Boolean) ?? [],
          });
        } finally {
          if (name !== undefined) {
            if (saved === undefined) delete process.env[name];
            else process.env[name] = saved;
          }
        }
        try {
          const pid = pgServer !== undefined && 'server' in pgServer ? postmasterPid(pgServer.server) : undefined;
          runs.push({ side, r: await wire(`${engine} ${side}`, engine, '', node, url, pid) });
        } finally {
          await node.stop();
        }
      }
    }
  } finally {
    if (pgServer !== undefined && 'server' in pgServer) await pgServer.server.stop();
  }
  const perEvent = (cores: number, r: WireResult) => (cores * 1e6) / r.eventsPerSecond;
  printTable(
    `(a) ${engine}, 1 process, alternated A (this tree) / B (${b}); ${anchor}`,
    [
      'run',
      'events/s',
      'backend cores',
      'backend CPU µs/event',
      'PostgreSQL CPU µs/event',
      'store check',
      'load at start',
    ],
    runs.map(({ side, r }) => [
      side,
      fmtInt(r.eventsPerSecond),
      fmt(r.backendCores),
      fmt(perEvent(r.backendCores, r), 1),
      engine === 'postgres' ? fmt(perEvent(r.postgresCores, r), 1) : '—',
      r.problems.length === 0 ? 'PASS' : `FAIL (${r.problems.length})`,
      r.load.replace('load average ', ''),
    ]),
  );
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? Number.NaN;
  for (const side of ['A', 'B'] as const) {
    const mine = runs.filter((x) => x.side === side).map((x) => x.r);
    console.log(
      `${side}: median backend ${fmt(median(mine.map((r) => perEvent(r.backendCores, r))), 1)} µs CPU per event` +
        (engine === 'postgres'
          ? `, PostgreSQL ${fmt(median(mine.map((r) => perEvent(r.postgresCores, r))), 1)} µs`
          : '') +
        `, ${fmtInt(median(mine.map((r) => r.eventsPerSecond)))} events/s`,
    );
  }
  printJsonLine('cluster-ingest-ab', {
    engine,
    b,
    anchor,
    runs: runs.map(({ side, r }) => ({
      side,
      eventsPerSecond: r.eventsPerSecond,
      backendCpuUsPerEvent: perEvent(r.backendCores, r),
      postgresCpuUsPerEvent: perEvent(r.postgresCores, r),
      load: r.load,
      problems: r.problems.length,
    })),
  });
  if (runs.some(({ r }) => r.problems.length > 0)) process.exitCode = 1;
}

async function main(): Promise<void> {
  if (args.ab !== undefined || args['ab-root'] !== undefined) return abMain();
  heading('cluster durable ingest (issue 10)');
  console.log(
    `(a) ${CONSOLES} consoles over the wire, ${BATCH} events per message, ${PIPELINE} in flight each, ` +
      `${WARMUP}s warm-up + ${SECONDS}s measured per configuration; (b) ${fmtInt(ROWS)} rows in batches of ${BATCH} per store`,
  );
  console.log(loadLine());
  const pgServer = await postgresForBench(WAITS ? { shared_preload_libraries: 'pg_stat_statements' } : {});
  const skipped: string[] = [];
  if ('skip' in pgServer) {
    skipped.push(`PostgreSQL parts skipped: ${pgServer.skip}`);
    console.log(skipped[0]);
  }

  // Anchors first (same run): raw batched inserts of each engine.
  const sqliteAnchor = await runAnchor('sqlite-insert.mjs');
  const rawSqlite = Number(sqliteAnchor.find((a) => a.synchronous === 'FULL' && a.rowsPerTx === 250)?.rowsPerSecond);
  console.log(`anchor sqlite-insert: ${sqliteAnchor.map((a) => JSON.stringify(a)).join(' ')}`);
  let rawPg1 = Number.NaN;
  let rawPg4 = Number.NaN;
  if ('server' in pgServer) {
    const anchorUrl = await freshDatabase(pgServer.server, 'anchor');
    const pgAnchor = await runAnchor('pg-insert.mjs', [anchorUrl]);
    rawPg1 = Number(pgAnchor.find((a) => a.connections === 1 && a.rowsPerTx === 250)?.rowsPerSecond);
    rawPg4 = Number(pgAnchor.find((a) => a.connections === 4 && a.rowsPerTx === 250)?.rowsPerSecond);
    console.log(`anchor pg-insert: ${pgAnchor.map((a) => JSON.stringify(a)).join(' ')}`);
  }

  // (b) repositories alone: hand-written and Kysely alternated, PASSES times each, on fresh files.
  const repo: { name: string; runs: RepoRun[]; anchor: number; load: string }[] = [
    { name: 'SQLite, hand-written better-sqlite3 (openSqliteStore)', runs: [], anchor: rawSqlite, load: loadLine() },
    { name: 'SQLite, Kysely (openKyselySqliteStore)', runs: [], anchor: rawSqlite, load: loadLine() },
  ];
  const opens = [openSqliteStore, openKyselySqliteStore] as const;
  for (let pass = 0; pass < (args['skip-repo'] ? 0 : PASSES); pass++) {
    for (const k of pass % 2 === 0 ? [0, 1] : [1, 0]) {
      const dir = mkdtempSync(join(tmpdir(), 'baton-bench-repo-'));
      const store = (opens[k] as (typeof opens)[number])({ dataDir: dir, durability: 'full' });
      try {
        repo[k]?.runs.push(await repositoryRate(store, ROWS, BATCH));
      } finally {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  if ('server' in pgServer && !args['skip-repo']) {
    const url = await freshDatabase(pgServer.server, 'repo');
    const store = await openPostgresStore({ url });
    const load = loadLine();
    try {
      repo.push({
        name: 'PostgreSQL, Kysely (openPostgresStore)',
        runs: [await repositoryRate(store, ROWS, BATCH)],
        anchor: rawPg1,
        load,
      });
    } finally {
      await store.close();
    }
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? Number.NaN;
  printTable(
    `(b) EventRepository.insertMany + setHead in one transaction per ${BATCH} rows, durable commits, this process; median of ${PASSES} alternated passes`,
    ['store', 'rows/s (median)', 'rows/s per pass', 'CPU µs/row (median)', 'ratio to raw anchor', 'load at start'],
    repo.map((r) => [
      r.name,
      fmtInt(median(r.runs.map((x) => x.rate))),
      r.runs.map((x) => fmtInt(x.rate)).join(' / '),
      fmt(median(r.runs.map((x) => x.cpuUsPerRow)), 1),
      fmt(median(r.runs.map((x) => x.rate)) / r.anchor),
      r.load.replace('load average ', ''),
    ]),
  );
  const [hand, kysely] = repo;
  if (hand !== undefined && kysely !== undefined) {
    console.log(
      `Kysely ÷ hand-written on SQLite: rows/s ${fmt(median(kysely.runs.map((x) => x.rate)) / median(hand.runs.map((x) => x.rate)))}, ` +
        `CPU per row ${fmt(median(kysely.runs.map((x) => x.cpuUsPerRow)) / median(hand.runs.map((x) => x.cpuUsPerRow)))}`,
    );
  }

  // (a) over the wire.
  const results: WireResult[] = [];
  if (!args['skip-wire'] && !args['skip-sqlite']) {
    const node = await CliNode.start({
      nodeFlags: process.env.BENCH_BACKEND_NODE_FLAGS?.split(' ').filter(Boolean) ?? [],
    });
    try {
      results.push(
        await wire('SQLite, 1 process', 'sqlite', 'npm run backend -- --data-dir D', node, undefined, undefined),
      );
    } finally {
      await node.stop();
    }
  }
  if (!args['skip-wire']) {
    if ('server' in pgServer) {
      for (const workers of WORKERS) {
        const url = await freshDatabase(pgServer.server, 'ingest');
        const node = await CliNode.start({
          databaseUrl: url,
          workers,
          nodeFlags: process.env.BENCH_BACKEND_NODE_FLAGS?.split(' ').filter(Boolean) ?? [],
        });
        try {
          results.push(
            await wire(
              `PostgreSQL, ${workers} worker(s)`,
              'postgres',
              `npm run backend -- --database postgres://… --workers ${workers}`,
              node,
              url,
              postmasterPid(pgServer.server),
            ),
          );
        } finally {
          await node.stop();
        }
      }
    }
  }
  if ('server' in pgServer) await pgServer.server.stop();

  const anchorOf = (r: WireResult) => (r.engine === 'sqlite' ? rawSqlite : rawPg4);
  printTable(
    `(a) acknowledged events/s over the wire (raw anchors: SQLite FULL 250/tx ${fmtInt(rawSqlite)} rows/s; PostgreSQL 250/tx 1 conn ${fmtInt(rawPg1)}, 4 conns ${fmtInt(rawPg4)} rows/s)`,
    [
      'configuration',
      'events/s',
      'ratio to raw (SQLite FULL / PG 4 conns)',
      'ack p50 ms',
      'ack p99 ms',
      'backend cores',
      'PostgreSQL cores',
      'backend CPU µs/event',
      'PostgreSQL CPU µs/event',
      'store check',
      'load at start',
    ],
    results.map((r) => [
      r.name,
      fmtInt(r.eventsPerSecond),
      fmt(r.eventsPerSecond / anchorOf(r)),
      fmt(r.ackLatency.p50, 1),
      fmt(r.ackLatency.p99, 1),
      fmt(r.backendCores),
      r.engine === 'postgres' ? fmt(r.postgresCores) : '—',
      fmt((r.backendCores * 1e6) / r.eventsPerSecond, 1),
      r.engine === 'postgres' ? fmt((r.postgresCores * 1e6) / r.eventsPerSecond, 1) : '—',
      r.problems.length === 0 ? `PASS (${fmtInt(r.stored)} stored)` : `FAIL (${r.problems.length})`,
      r.load.replace('load average ', ''),
    ]),
  );
  for (const s of skipped) console.log(s);
  printTable(
    'goals',
    ['goal', 'configuration', 'measured', 'verdict'],
    results.map((r) => {
      const goal = r.engine === 'sqlite' ? GOAL_SQLITE : GOAL_POSTGRES;
      return [
        `≥ ${fmtInt(goal)} events/s`,
        r.name,
        fmtInt(r.eventsPerSecond),
        verdict(r.eventsPerSecond >= goal && r.problems.length === 0),
      ];
    }),
  );
  console.log(loadLine());
  printJsonLine('cluster-ingest', {
    rawSqlite,
    rawPg1,
    rawPg4,
    skipped,
    repositories: repo,
    wire: results.map((r) => ({
      name: r.name,
      command: r.command,
      load: r.load,
      eventsPerSecond: r.eventsPerSecond,
      ackP99: r.ackLatency.p99,
      backendCores: r.backendCores,
      postgresCores: r.postgresCores,
      problems: r.problems.length,
    })),
  });
  if (results.some((r) => r.problems.length > 0)) process.exitCode = 1;
}

await main();
