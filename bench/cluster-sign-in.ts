/**
 * Sign-in over signed HTTP on a Baton node started as IT starts it (`backend/cli.ts`): embedded SQLite
 * (one process; WebAuthn verification on its verify pool where composition makes one) and PostgreSQL with 1, 2 and 4 workers.
 * Full sign-ins (console-signed POST /v1/sign-in/options → soft-authenticator assertion → console-
 * signed POST /v1/sign-in/verify → session + assurance token), consoles and operators enrolled over
 * the API first. Reported per configuration:
 *  - sign-ins/s at c=CONCURRENCY (each client worker owns its consoles: a console never runs two
 *    ceremonies at once), wall time, the client (this process) on the same two cores;
 *  - p50/p99 at c=1 (backend time: the call minus the authenticator's signing);
 *  - backend CPU per sign-in: CPU time of the backend's processes (supervisor + workers, all threads,
 *    from /proc) ÷ sign-ins, against the CPU of one raw `verifyAuthenticationResponse` measured by
 *    ../shared/anchors/webauthn-verify.mjs in the same run; PostgreSQL's own CPU per sign-in beside it.
 *
 *   node --import tsx bench/cluster-sign-in.ts [--seconds 4] [--consoles 16] [--operators 32] [--concurrency 8] [--workers 1,2,4]
 *
 * Without PostgreSQL the PostgreSQL configurations are skipped with the reason printed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { TestConsole } from '../test/helpers/backend-harness.js';
import { enrolOperator } from '../test/helpers/operator-flow.js';
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
import { monotonicUs, printProfileSummary, profileFiles, summarizeProfiles } from './lib/cpu-profile-summary.js';
import { fmt, fmtInt, heading, printJsonLine, printTable, summarize, verdict } from './lib/report.js';
import { httpSignIns, type BenchOperator } from './lib/signed-http.js';
import { mapLimit } from './lib/ws-console.js';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '4' },
    consoles: { type: 'string', default: '16' },
    operators: { type: 'string', default: '32' },
    concurrency: { type: 'string', default: '8' },
    workers: { type: 'string', default: '1,2,4' },
    'skip-sqlite': { type: 'boolean', default: false },
    /** Run the backend processes with --cpu-prof and print where their CPU went (self time). */
    profile: { type: 'boolean', default: false },
  },
});
const SECONDS = Number(args.seconds);
const CONSOLES = Number(args.consoles);
const OPERATORS = Number(args.operators);
const CONCURRENCY = Number(args.concurrency);
const WORKERS = args.workers
  .split(',')
  .map(Number)
  .filter((n) => n >= 1);
const GOAL_RATE = 1000;
const GOAL_P99_MS = 10;
const GOAL_CPU_RATIO = 1.5;

/** An operator and the console it signs in at (operators are spread evenly over consoles). */
type Operator = BenchOperator;

interface Sample {
  totalMs: number;
  clientMs: number;
}

interface Window {
  samples: Sample[];
  wallMs: number;
  backendCpuMs: number;
  postgresCpuMs: number;
  clientCpuMs: number;
}

async function window(
  operators: readonly Operator[],
  signIn: (op: Operator) => Promise<Sample>,
  concurrency: number,
  seconds: number,
  cpuRoots: { backend: number; postgres: number | undefined },
): Promise<Window> {
  const byWorker: Operator[][] = Array.from({ length: concurrency }, () => []);
  for (const op of operators) byWorker[op.consoleIndex % concurrency]?.push(op);
  const samples: Sample[] = [];
  const b0 = treeCpu(cpuRoots.backend);
  const p0 = cpuRoots.postgres === undefined ? new Map<number, number>() : treeCpu(cpuRoots.postgres);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  await Promise.all(
    byWorker.map(async (pool, w) => {
      let i = w;
      while (pool.length > 0 && performance.now() < deadline) samples.push(await signIn(pool[i++ % pool.length]!));
    }),
  );
  const wallMs = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return {
    samples,
    wallMs,
    backendCpuMs: cpuDelta(b0, treeCpu(cpuRoots.backend)),
    postgresCpuMs: cpuRoots.postgres === undefined ? 0 : cpuDelta(p0, treeCpu(cpuRoots.postgres)),
    clientCpuMs: (c.user + c.system) / 1000,
  };
}

interface Result {
  name: string;
  command: string;
  load: string;
  c1: Window;
  cN: Window;
  windowUs: { fromUs: number; toUs: number };
  idleCpuMsPerSecond: number;
}

async function measure(name: string, command: string, node: CliNode, postgres: number | undefined): Promise<Result> {
  const t = performance.now();
  const consoles = await mapLimit(
    Array.from({ length: CONSOLES }, (_, i) => i),
    4,
    () => TestConsole.enrol(node.url, node.admin),
  );
  const operators: Operator[] = [];
  for (let i = 0; i < OPERATORS; i++) {
    const consoleIndex = i % CONSOLES;
    const { operatorId, authenticator } = await enrolOperator(node.admin, consoles[consoleIndex] as TestConsole, {
      displayName: `Operator ${i}`,
    });
    operators.push({ operatorId, authenticator, consoleIndex });
  }
  console.log(
    `${name}: ${CONSOLES} consoles and ${OPERATORS} operators enrolled over the API in ${fmt((performance.now() - t) / 1000, 1)}s`,
  );
  const { signIn, agent } = httpSignIns(node.url, consoles);
  const roots = { backend: node.pid, postgres };
  await window(operators, signIn, CONCURRENCY, 1.5, roots); // warm-up (JIT, pools, connections to every worker)
  // Background CPU with no sign-ins (timers, health probes, bus, sweeps): at low rates it is a large
  // share of "CPU per sign-in", so it is measured and shown apart.
  const idle0 = treeCpu(node.pid);
  const idleT0 = performance.now();
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const idleCpuMsPerSecond = (cpuDelta(idle0, treeCpu(node.pid)) / (performance.now() - idleT0)) * 1000;
  const load = loadLine();
  const fromUs = monotonicUs();
  const c1 = await window(operators, signIn, 1, SECONDS, roots);
  const cN = await window(operators, signIn, CONCURRENCY, SECONDS, roots);
  const windowUs = { fromUs, toUs: monotonicUs() };
  agent.destroy();
  console.log(
    `${name}: c=${CONCURRENCY} ${fmtInt(rate(cN))}/s, c=1 p99 ${fmt(p(c1).p99, 2)} ms, ` +
      `backend CPU ${fmt(cN.backendCpuMs / cN.samples.length, 3)} ms/sign-in (${load})`,
  );
  return { name, command, load, c1, cN, windowUs, idleCpuMsPerSecond };
}

/** Node flags that profile the backend's processes into a fresh directory (with --profile). */
function profiling(): { flags: string[]; dir: string | undefined } {
  if (!args.profile) return { flags: [], dir: undefined };
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-prof-'));
  return { flags: ['--cpu-prof', '--cpu-prof-dir', dir], dir };
}

function reportProfile(name: string, dir: string | undefined, result: Result | undefined): void {
  if (dir === undefined || result === undefined) return;
  printProfileSummary(
    `CPU profile of the backend processes, ${name}, measured windows only (c=1 and c=${CONCURRENCY})`,
    summarizeProfiles(profileFiles([dir]), 15, result.windowUs),
  );
  // BENCH_KEEP_PROFILE=1 keeps the .cpuprofile files (for a caller-by-caller read in DevTools).
  if (process.env.BENCH_KEEP_PROFILE === '1')
    console.log(`profiles kept in ${dir} (measured window ${result.windowUs.fromUs}–${result.windowUs.toUs} µs)`);
  else rmSync(dir, { recursive: true, force: true });
}

const rate = (w: Window) => (w.samples.length / w.wallMs) * 1000;
const p = (w: Window) => summarize(w.samples.map((s) => s.totalMs - s.clientMs));

async function main(): Promise<void> {
  heading('cluster sign-in over signed HTTP (issue 10)');
  console.log(
    `${CONSOLES} consoles, ${OPERATORS} operators; ${SECONDS}s at c=1 and ${SECONDS}s at c=${CONCURRENCY} per configuration; ` +
      `clients in this process (pid ${process.pid}) share the machine's cores with the backend`,
  );
  console.log(loadLine());
  const anchorBefore = (await runAnchor('webauthn-verify.mjs', ['3'])).find((a) => a.anchor === 'webauthn-verify');
  console.log(`anchor (before): ${JSON.stringify(anchorBefore)}`);

  const results: Result[] = [];
  const skipped: string[] = [];
  if (!args['skip-sqlite']) {
    const prof = profiling();
    const node = await CliNode.start({ nodeFlags: prof.flags });
    try {
      results.push(
        await measure('SQLite, 1 process', 'npm run backend -- --data-dir D (embedded SQLite)', node, undefined),
      );
    } finally {
      await node.stop();
    }
    reportProfile('SQLite', prof.dir, results.at(-1));
  }
  const pg = await postgresForBench();
  if ('skip' in pg) {
    skipped.push(`PostgreSQL configurations skipped: ${pg.skip}`);
    console.log(skipped.at(-1));
  } else {
    try {
      for (const workers of WORKERS) {
        const url = await freshDatabase(pg.server, 'signin');
        const prof = profiling();
        const node = await CliNode.start({ databaseUrl: url, workers, nodeFlags: prof.flags });
        try {
          results.push(
            await measure(
              `PostgreSQL, ${workers} worker(s)`,
              `npm run backend -- --database postgres://… --workers ${workers}`,
              node,
              postmasterPid(pg.server),
            ),
          );
        } finally {
          await node.stop();
        }
        reportProfile(`PostgreSQL, ${workers} worker(s)`, prof.dir, results.at(-1));
      }
    } finally {
      await pg.server.stop();
    }
  }
  const anchorAfter = (await runAnchor('webauthn-verify.mjs', ['3'])).find((a) => a.anchor === 'webauthn-verify');
  console.log(`anchor (after): ${JSON.stringify(anchorAfter)}`);
  const rawRate = (Number(anchorBefore?.perSecond) + Number(anchorAfter?.perSecond)) / 2;
  const rawCpuMs = (Number(anchorBefore?.cpuMsPerVerify) + Number(anchorAfter?.cpuMsPerVerify)) / 2;

  printTable(
    `full sign-ins over signed HTTP; raw verify (anchor, mean of before/after): ${fmtInt(rawRate)}/s on one core, ${fmt(rawCpuMs, 3)} ms CPU each`,
    [
      'configuration',
      `sign-ins/s c=${CONCURRENCY}`,
      'ratio to raw (1 core)',
      'c=1 /s',
      'c=1 p50 ms',
      'c=1 p99 ms',
      `c=${CONCURRENCY} p99 ms`,
      'backend CPU ms/sign-in',
      '× raw verify CPU',
      'backend idle CPU ms/s',
      'net of idle ms/sign-in',
      'PostgreSQL CPU ms/sign-in',
      'CPU ceiling on 2 cores /s',
      'client CPU ms/sign-in',
      'load at start',
    ],
    results.map((r) => [
      r.name,
      fmtInt(rate(r.cN)),
      fmt(rate(r.cN) / rawRate),
      fmtInt(rate(r.c1)),
      fmt(p(r.c1).p50, 2),
      fmt(p(r.c1).p99, 2),
      fmt(p(r.cN).p99, 2),
      fmt(r.cN.backendCpuMs / r.cN.samples.length, 3),
      fmt(r.cN.backendCpuMs / r.cN.samples.length / rawCpuMs),
      fmt(r.idleCpuMsPerSecond, 1),
      fmt((r.cN.backendCpuMs - (r.idleCpuMsPerSecond * r.cN.wallMs) / 1000) / r.cN.samples.length, 3),
      r.cN.postgresCpuMs === 0 ? '—' : fmt(r.cN.postgresCpuMs / r.cN.samples.length, 3),
      // What two cores could do if the backend (and PostgreSQL) had them to themselves: 2,000 ms of CPU per second ÷ CPU per sign-in.
      fmtInt(2000 / ((r.cN.backendCpuMs + r.cN.postgresCpuMs) / r.cN.samples.length)),
      fmt(r.cN.clientCpuMs / r.cN.samples.length, 3),
      r.load.replace('load average ', ''),
    ]),
  );
  for (const s of skipped) console.log(s);
  printTable(
    'goals',
    ['goal', 'configuration', 'measured', 'verdict'],
    results.flatMap((r) => [
      [`≥ ${fmtInt(GOAL_RATE)} sign-ins/s`, r.name, fmtInt(rate(r.cN)), verdict(rate(r.cN) >= GOAL_RATE)],
      [`p99 ≤ ${GOAL_P99_MS} ms at c=1`, r.name, fmt(p(r.c1).p99, 2), verdict(p(r.c1).p99 <= GOAL_P99_MS)],
      [
        `backend CPU ≤ ${GOAL_CPU_RATIO} × raw verify`,
        r.name,
        fmt(r.cN.backendCpuMs / r.cN.samples.length / rawCpuMs),
        verdict(r.cN.backendCpuMs / r.cN.samples.length / rawCpuMs <= GOAL_CPU_RATIO),
      ],
    ]),
  );
  console.log(loadLine());
  printJsonLine('cluster-sign-in', {
    rawRate,
    rawCpuMs,
    skipped,
    results: results.map((r) => ({
      name: r.name,
      command: r.command,
      load: r.load,
      rate: rate(r.cN),
      c1Rate: rate(r.c1),
      c1p99: p(r.c1).p99,
      backendCpuMsPerSignIn: r.cN.backendCpuMs / r.cN.samples.length,
      idleCpuMsPerSecond: r.idleCpuMsPerSecond,
      postgresCpuMsPerSignIn: r.cN.postgresCpuMs / r.cN.samples.length,
    })),
  });
}

await main();
