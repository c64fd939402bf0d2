/**
 * CPU per full sign-in, A/B: two copies of the project (e.g. a snapshot of the previous commit and the
 * working tree) alternated in the same minutes on one throwaway PostgreSQL (or embedded SQLite), so a
 * loaded, shared machine moves both alike. Each pass starts a node from one copy (`backend/cli.ts`,
 * `--workers 1`), enrols consoles and operators over the API, warms up, then runs a fixed number of
 * full sign-ins over signed HTTP and reports, per sign-in:
 *  - backend CPU (the node's processes, from /proc), PostgreSQL CPU (postmaster + backends); the backend's CPU
 *    split by thread (each process's main thread, the event loop, against its other threads: libuv's pool, where
 *    WebCrypto and the WAL flush run, worker threads, V8's GC and compiler threads) and into user and kernel time;
 *  - on PostgreSQL, from pg_stat_statements of the node's database: statements executed, statements
 *    planned, plan and execution time (server side), and commits (pg_stat_database.xact_commit).
 * The order alternates (A B, B A, …); the load is printed beside every pass. With `--op ingest` the
 * pass is a durable ingest over the wire instead (bench/lib/ingest-load.ts) and the figures are per
 * 1,000 acknowledged events of the measured window (the store is read back and checked).
 *
 *   node --import tsx bench/cluster-cpu-ab.ts --a <dir of copy A> [--b <dir, default this project>]
 *        [--engine postgres|sqlite] [--op sign-in|ingest] [--sign-ins 300] [--seconds 4 (ingest)] [--rounds 2]
 *        [--concurrency 4] [--consoles 4] [--operators 8] [--unix-socket A|B|AB]
 *
 * A copy needs node_modules (a symlink to this project's is enough).
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import type { PostgresServer } from '../backend/store/postgres-throwaway.js';
import { TestConsole } from '../test/helpers/backend-harness.js';
import { enrolOperator } from '../test/helpers/operator-flow.js';
import {
  CliNode,
  cpuDelta,
  freshDatabase,
  loadLine,
  postgresForBench,
  postmasterPid,
  processTree,
  PROJECT_ROOT,
  treeCpu,
} from './lib/cluster.js';
import { monotonicUs, printProfileSummary, profileFiles, summarizeProfiles } from './lib/cpu-profile-summary.js';
import { fmt, heading, printJsonLine, printTable } from './lib/report.js';
import { ingestLoad } from './lib/ingest-load.js';
import { httpSignIns, type BenchOperator } from './lib/signed-http.js';
import { mapLimit } from './lib/ws-console.js';

const { values: args } = parseArgs({
  options: {
    a: { type: 'string' },
    b: { type: 'string', default: PROJECT_ROOT },
    engine: { type: 'string', default: 'postgres' },
    'sign-ins': { type: 'string', default: '300' },
    rounds: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '4' },
    consoles: { type: 'string', default: '4' },
    operators: { type: 'string', default: '8' },
    /** sign-in: full sign-ins (figures per sign-in); ingest: durable ingest over the wire (figures per 1,000 events). */
    op: { type: 'string', default: 'sign-in' },
    seconds: { type: 'string', default: '4' },
    /** Run the nodes with --cpu-prof; a summary of where B's CPU went (self time) is printed (whole run). */
    profile: { type: 'boolean', default: false },
    /**
     * Which copies' nodes reach PostgreSQL over its Unix socket instead of TCP on 127.0.0.1 (`A`, `B` or `AB`):
     * with `--a` and `--b` the same tree, the cost of the loopback TCP stack to the node.
     */
    'unix-socket': { type: 'string', default: '' },
  },
});
if (args.a === undefined) throw new Error('--a <dir of copy A> is required');
const SIGN_INS = Number(args['sign-ins']);
const ROUNDS = Number(args.rounds);
const CONCURRENCY = Number(args.concurrency);
const CONSOLES = Number(args.consoles);
const OPERATORS = Number(args.operators);
const POSTGRES = args.engine === 'postgres';
const INGEST = args.op === 'ingest';
if (!/^(A|B|AB|BA)?$/i.test(args['unix-socket'])) throw new Error('--unix-socket takes A, B or AB');
if (args['unix-socket'] !== '' && !POSTGRES) throw new Error('--unix-socket is for --engine postgres');
const UNIT = INGEST ? '1,000 events' : 'sign-in';

/** Profile directories of each copy's passes, each with its measured window (monotonic µs). */
const profileDirs: Record<'A' | 'B', { dir: string; window: { fromUs: number; toUs: number } }[]> = { A: [], B: [] };
let measured = { fromUs: 0, toUs: 0 };

interface Pass {
  copy: 'A' | 'B';
  load: string;
  signIns: number;
  backendCpuMs: number;
  /** The backend's CPU on its processes' main threads (the event loops), user + kernel. */
  loopCpuMs: number;
  /** The backend's CPU in the kernel (all threads): syscalls (sockets, files) and what they cause. */
  kernelCpuMs: number;
  postgresCpuMs: number;
  statements: number;
  plans: number;
  planMs: number;
  execMs: number;
  commits: number;
}

const CLK_TCK = 100;

/** CPU of every thread of a process tree, from /proc: main threads (tid = pid) apart, user and kernel apart. */
function threadCpu(root: number): { loopMs: number; kernelMs: number } {
  let loopMs = 0;
  let kernelMs = 0;
  for (const pid of processTree(root)) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        const text = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
        const user = (Number(rest[11]) * 1000) / CLK_TCK;
        const kernel = (Number(rest[12]) * 1000) / CLK_TCK;
        kernelMs += kernel;
        if (Number(tid) === pid) loopMs += user + kernel;
      } catch {
        // The thread ended meanwhile: its time is in neither snapshot's sum of live threads.
      }
    }
  }
  return { loopMs, kernelMs };
}

async function statsOf(
  url: string,
): Promise<{ statements: number; plans: number; planMs: number; execMs: number; commits: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const s = await client.query<{ calls: string; plans: string; plan: number; exec: number }>(
      `select coalesce(sum(calls), 0) as calls, coalesce(sum(plans), 0) as plans,
              coalesce(sum(total_plan_time), 0)::float8 as plan, coalesce(sum(total_exec_time), 0)::float8 as exec
         from bench_stats.pg_stat_statements where dbid = (select oid from pg_database where datname = current_database())`,
    );
    const c = await client.query<{ commits: string }>(
      `select xact_commit as commits from pg_stat_database where datname = current_database()`,
    );
    const row = s.rows[0]!;
    return {
      statements: Number(row.calls),
      plans: Number(row.plans),
      planMs: row.plan,
      execMs: row.exec,
      commits: Number(c.rows[0]!.commits),
    };
  } finally {
    await client.end();
  }
}

/** The same database through the server's Unix socket (its directory is where `-k` put it). */
function overUnixSocket(url: string, server: PostgresServer): string {
  const tcp = new URL(url);
  return `postgres://${tcp.username}@localhost${tcp.pathname}?host=${encodeURIComponent(server.dir)}&port=${server.port}`;
}

async function pass(copy: 'A' | 'B', root: string, server: PostgresServer | undefined): Promise<Pass> {
  let databaseUrl: string | undefined;
  if (server !== undefined) {
    databaseUrl = await freshDatabase(server, `ab_${copy.toLowerCase()}`);
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    await client.query('create schema bench_stats; create extension pg_stat_statements with schema bench_stats');
    await client.end();
  }
  const profileDir = args.profile ? mkdtempSync(join(tmpdir(), `baton-ab-prof-${copy}-`)) : undefined;
  const nodeUrl =
    databaseUrl !== undefined && server !== undefined && args['unix-socket'].toUpperCase().includes(copy)
      ? overUnixSocket(databaseUrl, server)
      : databaseUrl;
  const node = await CliNode.start({
    databaseUrl: nodeUrl,
    root,
    workers: 1,
    ...(profileDir === undefined ? {} : { nodeFlags: ['--cpu-prof', '--cpu-prof-dir', profileDir] }),
  });
  if (databaseUrl !== undefined && nodeUrl !== databaseUrl) {
    // Shown, not assumed: the node's sessions have no client address over the Unix socket.
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    const { rows } = await client.query<{ unix: number; tcp: number }>(
      `SELECT count(*) FILTER (WHERE client_addr IS NULL)::int AS unix, count(*) FILTER (WHERE client_addr IS NOT NULL)::int AS tcp
       FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
    );
    await client.end();
    console.log(`${copy}: the node's sessions over the Unix socket ${rows[0]?.unix}, over TCP ${rows[0]?.tcp}`);
  }
  if (INGEST) {
    try {
      return await ingestPass(copy, node, databaseUrl, server);
    } finally {
      await node.stop();
      if (profileDir !== undefined) profileDirs[copy].push({ dir: profileDir, window: measured });
    }
  }
  try {
    const consoles = await mapLimit(
      Array.from({ length: CONSOLES }, (_, i) => i),
      2,
      () => TestConsole.enrol(node.url, node.admin),
    );
    const operators: BenchOperator[] = [];
    for (let i = 0; i < OPERATORS; i++) {
      const consoleIndex = i % CONSOLES;
      const { operatorId, authenticator } = await enrolOperator(node.admin, consoles[consoleIndex] as TestConsole, {
        displayName: `Operator ${i}`,
      });
      operators.push({ operatorId, authenticator, consoleIndex });
    }
    const { signIn, agent } = httpSignIns(node.url, consoles);
    // A console never runs two ceremonies at once: each client lane owns its consoles' operators.
    const run = async (count: number): Promise<number> => {
      const lanes: BenchOperator[][] = Array.from({ length: CONCURRENCY }, () => []);
      for (const op of operators) lanes[op.consoleIndex % CONCURRENCY]?.push(op);
      let left = count;
      let done = 0;
      await Promise.all(
        lanes.map(async (lane) => {
          let i = 0;
          while (lane.length > 0 && left > 0) {
            left--;
            await signIn(lane[i++ % lane.length]!);
            done++;
          }
        }),
      );
      return done;
    };
    await run(Math.max(40, SIGN_INS / 5)); // warm-up: JIT, pools, prepared statements
    const pgRoot = server === undefined ? undefined : postmasterPid(server);
    const s0 = databaseUrl === undefined ? undefined : await statsOf(databaseUrl);
    const load = loadLine();
    const b0 = treeCpu(node.pid);
    const t0 = threadCpu(node.pid);
    const p0 = pgRoot === undefined ? new Map<number, number>() : treeCpu(pgRoot);
    const fromUs = monotonicUs();
    const signIns = await run(SIGN_INS);
    measured = { fromUs, toUs: monotonicUs() };
    const backendCpuMs = cpuDelta(b0, treeCpu(node.pid));
    const t1 = threadCpu(node.pid);
    const postgresCpuMs = pgRoot === undefined ? 0 : cpuDelta(p0, treeCpu(pgRoot));
    const s1 = databaseUrl === undefined ? undefined : await statsOf(databaseUrl);
    agent.destroy();
    // The two statistics reads of the bench itself (one statement and one commit each) are not the node's.
    const d = (k: 'statements' | 'plans' | 'planMs' | 'execMs' | 'commits', own = 0) =>
      s0 === undefined || s1 === undefined ? 0 : (s1[k] - s0[k] - own) / signIns;
    return {
      copy,
      load,
      signIns,
      backendCpuMs: backendCpuMs / signIns,
      loopCpuMs: (t1.loopMs - t0.loopMs) / signIns,
      kernelCpuMs: (t1.kernelMs - t0.kernelMs) / signIns,
      postgresCpuMs: postgresCpuMs / signIns,
      statements: d('statements', 2),
      plans: d('plans'),
      planMs: d('planMs'),
      execMs: d('execMs'),
      commits: d('commits', 2),
    };
  } finally {
    await node.stop();
    if (profileDir !== undefined) profileDirs[copy].push({ dir: profileDir, window: measured });
  }
}

/** Durable ingest over the wire (bench/lib/ingest-load.ts: 20 consoles, 250 events a message, 2 in flight). */
async function ingestPass(
  copy: 'A' | 'B',
  node: CliNode,
  databaseUrl: string | undefined,
  server: PostgresServer | undefined,
): Promise<Pass> {
  const pgRoot = server === undefined ? undefined : postmasterPid(server);
  let b0 = new Map<number, number>();
  let p0 = new Map<number, number>();
  let s0: Awaited<ReturnType<typeof statsOf>> | undefined;
  let s1: Awaited<ReturnType<typeof statsOf>> | undefined;
  let backendCpuMs = 0;
  let postgresCpuMs = 0;
  let t0 = { loopMs: 0, kernelMs: 0 };
  let t1 = { loopMs: 0, kernelMs: 0 };
  let load = '';
  const result = await ingestLoad(node, {
    consoles: 20,
    batch: 250,
    pipeline: 2,
    warmupSeconds: 2,
    seconds: Number(args.seconds),
    ...(databaseUrl === undefined ? {} : { databaseUrl }),
    onWindow: async (edge) => {
      if (edge === 'start') {
        load = loadLine();
        measured = { fromUs: monotonicUs(), toUs: Infinity };
        if (databaseUrl !== undefined) s0 = await statsOf(databaseUrl);
        b0 = treeCpu(node.pid);
        t0 = threadCpu(node.pid);
        if (pgRoot !== undefined) p0 = treeCpu(pgRoot);
      } else {
        backendCpuMs = cpuDelta(b0, treeCpu(node.pid));
        t1 = threadCpu(node.pid);
        if (pgRoot !== undefined) postgresCpuMs = cpuDelta(p0, treeCpu(pgRoot));
        measured = { ...measured, toUs: monotonicUs() };
        if (databaseUrl !== undefined) s1 = await statsOf(databaseUrl);
      }
    },
  });
  if (result.problems.length > 0) throw new Error(`store check failed: ${result.problems.slice(0, 3).join('; ')}`);
  const per = result.ackedInWindow / 1000;
  const d = (k: 'statements' | 'plans' | 'planMs' | 'execMs' | 'commits', own = 0) =>
    s0 === undefined || s1 === undefined ? 0 : (s1[k] - s0[k] - own) / per;
  return {
    copy,
    load,
    signIns: result.ackedInWindow,
    backendCpuMs: backendCpuMs / per,
    loopCpuMs: (t1.loopMs - t0.loopMs) / per,
    kernelCpuMs: (t1.kernelMs - t0.kernelMs) / per,
    postgresCpuMs: postgresCpuMs / per,
    statements: d('statements', 2),
    plans: d('plans'),
    planMs: d('planMs'),
    execMs: d('execMs'),
    commits: d('commits', 2),
  };
}

async function main(): Promise<void> {
  heading(`CPU per full sign-in, A/B (${POSTGRES ? 'PostgreSQL, 1 worker' : 'embedded SQLite'})`);
  console.log(
    `A = ${args.a}\nB = ${args.b}\n${SIGN_INS} sign-ins per pass at c=${CONCURRENCY}, ${ROUNDS} rounds; ${loadLine()}`,
  );
  let server: PostgresServer | undefined;
  if (POSTGRES) {
    const found = await postgresForBench({
      shared_preload_libraries: 'pg_stat_statements',
      'pg_stat_statements.track_planning': 'on',
    });
    if ('skip' in found) {
      console.log(`PostgreSQL skipped: ${found.skip}`);
      return;
    }
    server = found.server;
  }
  const passes: Pass[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const order: ('A' | 'B')[] = round % 2 === 0 ? ['A', 'B'] : ['B', 'A'];
      for (const copy of order) {
        const p = await pass(copy, copy === 'A' ? args.a! : args.b, server);
        passes.push(p);
        console.log(
          `${copy}: backend ${fmt(p.backendCpuMs, 3)} ms (event loop ${fmt(p.loopCpuMs, 3)}, kernel ${fmt(p.kernelCpuMs, 3)}), PostgreSQL ${fmt(p.postgresCpuMs, 3)} ms CPU per ${UNIT}; ` +
            `${fmt(p.statements, 1)} statements, ${fmt(p.plans, 1)} planned, ${fmt(p.commits, 2)} commits (${p.load})`,
        );
      }
    }
  } finally {
    await server?.stop();
  }
  const mean = (copy: 'A' | 'B', k: keyof Omit<Pass, 'copy' | 'load'>) => {
    const xs = passes.filter((p) => p.copy === copy).map((p) => p[k]);
    return xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);
  };
  const keys = [
    'backendCpuMs',
    'loopCpuMs',
    'kernelCpuMs',
    'postgresCpuMs',
    'statements',
    'plans',
    'planMs',
    'execMs',
    'commits',
  ] as const;
  printTable(
    `per ${UNIT}, mean of the passes`,
    ['figure', 'A', 'B', 'B ÷ A'],
    keys.map((k) => [k, fmt(mean('A', k), 3), fmt(mean('B', k), 3), fmt(mean('B', k) / mean('A', k), 2)]),
  );
  console.log(loadLine());
  for (const copy of ['A', 'B'] as const) {
    for (const { dir, window } of profileDirs[copy]) {
      printProfileSummary(
        `CPU profile of ${copy}'s node processes, one pass's measured window (self time)`,
        summarizeProfiles(profileFiles([dir]), 25, window),
      );
      rmSync(dir, { recursive: true, force: true });
    }
  }
  printJsonLine('cluster-cpu-ab', { engine: args.engine, a: args.a, b: args.b, passes });
}

await main();
