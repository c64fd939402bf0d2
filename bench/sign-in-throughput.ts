/**
 * Sign-in throughput: full usernameless sign-ins (options → software-authenticator assertion →
 * verify → session start or resume → assurance token) against the raw rate of
 * `@simplewebauthn/server`'s `verifyAuthenticationResponse` on the same kind of assertion.
 *
 * Everything runs in this one process ("on one core"):
 *  (a) in-process: `SessionService.signInOptions` + `signIn` with real console records, on a
 *      SQLite store at the default durability (`full`);
 *  (b) end to end over real HTTP (keep-alive) with console-signed requests, against a backend
 *      started in this process.
 * Consoles and operators are enrolled once over the real API; the data directory is then copied
 * so (a) and (b) start from identical state. Raw-verify rounds are interleaved with sign-in rounds
 * so that the ratio compares like with like on a shared machine.
 *
 *   node --import tsx bench/sign-in-throughput.ts [--seconds 6] [--operators 200] [--consoles 50] [--concurrency 4]
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { verifyAuthenticationResponse, type AuthenticationResponseJSON } from '@simplewebauthn/server';
import { parseBackendConfig, type BackendConfig } from '../backend/config.js';
import { startBackend } from '../backend/server.js';
import { composeServices } from '../backend/services/compose-services.js';
import { NO_CONSOLE_CHANNEL } from '../backend/services/console-port.js';
import type { UnitOfWork } from '../backend/services/event-log.js';
import type { SessionService } from '../backend/services/session-service.js';
import type { ConsoleRecord, CredentialRecord, Store } from '../backend/store/repositories.js';
import { TEST_ORIGIN, TestConsole, startTestBackend } from '../test/helpers/backend-harness.js';
import { enrolOperator } from '../test/helpers/operator-flow.js';
import type { SoftAuthenticator } from '../test/helpers/soft-authenticator.js';
import { fmt, fmtInt, heading, printTable, seededRandom, summarize, verdict, type Summary } from './lib/report.js';
import { httpSignIns, type BenchOperator } from './lib/signed-http.js';
import { mapLimit } from './lib/ws-console.js';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '6' },
    rounds: { type: 'string', default: '3' },
    operators: { type: 'string', default: '200' },
    consoles: { type: 'string', default: '50' },
    concurrency: { type: 'string', default: '4' },
  },
});
/** Measured seconds per run, split over ROUNDS interleaved rounds. */
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const OPERATORS = Number(args.operators);
const CONSOLES = Number(args.consoles);
const CONCURRENCY = Number(args.concurrency);

const GOAL_RATE = 1000;
const GOAL_RATIO = 0.75;
const GOAL_P99_MS = 10;

/** An operator and the console it signs in at (operators are spread evenly over consoles). */
type Operator = BenchOperator;

/** One sign-in: the time the caller waited, and the part of it the authenticator spent signing. */
interface Sample {
  totalMs: number;
  clientMs: number;
  resumed: boolean;
}

type SignInFn = (operator: Operator) => Promise<Sample>;

interface Run {
  samples: Sample[];
  wallMs: number;
  cpuMs: number;
}

function merge(runs: readonly Run[]): Run {
  return {
    samples: runs.flatMap((r) => r.samples),
    wallMs: runs.reduce((a, r) => a + r.wallMs, 0),
    cpuMs: runs.reduce((a, r) => a + r.cpuMs, 0),
  };
}

/**
 * Runs sign-ins with `concurrency` workers until `seconds` pass (or each operator signed in once).
 * Operators are partitioned by console: a console never runs two ceremonies at once, as at a real
 * workstation, and an operator's signature counter never races itself.
 */
async function runSignIns(
  operators: readonly Operator[],
  signIn: SignInFn,
  opts: { seconds?: number; count?: number; concurrency: number; random: () => number; eachOnce?: boolean },
): Promise<Run> {
  const byWorker: Operator[][] = Array.from({ length: opts.concurrency }, () => []);
  for (const op of operators) byWorker[op.consoleIndex % opts.concurrency]?.push(op);
  const samples: Sample[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + (opts.seconds ?? Infinity) * 1000;
  const limit = opts.count ?? Infinity;
  let started = 0;
  await Promise.all(
    byWorker.map(async (pool) => {
      const queue = opts.eachOnce === true ? [...pool] : undefined;
      while (pool.length > 0 && performance.now() < deadline && started < limit) {
        const op = queue !== undefined ? queue.pop() : pool[Math.floor(opts.random() * pool.length)];
        if (op === undefined) return;
        started++;
        samples.push(await signIn(op));
      }
    }),
  );
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { samples, wallMs, cpuMs: (cpu.user + cpu.system) / 1000 };
}

// ---- raw @simplewebauthn/server verification, same kind of assertion (soft authenticator, ES256) ----

interface RawPoolEntry {
  authenticator: SoftAuthenticator;
  credential: CredentialRecord;
}

interface RawRun {
  n: number;
  wallMs: number;
  cpuMs: number;
  latencies: number[];
}

async function rawVerify(pool: readonly RawPoolEntry[], count: number, concurrency: number): Promise<RawRun> {
  // Assertions are made up front (one per random challenge, as in a real ceremony): only verification is timed.
  const jobs = Array.from({ length: count }, (_, i) => {
    const entry = pool[i % pool.length] as RawPoolEntry;
    const challenge = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('base64url');
    const response = entry.authenticator.assert({ challenge, rpId: 'localhost', userVerification: 'preferred' });
    return { response, challenge, credential: entry.credential };
  });
  const latencies: number[] = [];
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let job = jobs[next++]; job !== undefined; job = jobs[next++]) {
        const s = performance.now();
        const result = await verifyAuthenticationResponse({
          response: job.response as AuthenticationResponseJSON,
          expectedChallenge: job.challenge,
          expectedOrigin: [TEST_ORIGIN],
          expectedRPID: 'localhost',
          expectedType: 'webauthn.get',
          credential: { id: job.credential.id, publicKey: new Uint8Array(job.credential.publicKey), counter: 0 },
          requireUserVerification: false,
        });
        if (!result.verified) throw new Error('raw verification failed');
        latencies.push(performance.now() - s);
      }
    }),
  );
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { n: count, wallMs, cpuMs: (cpu.user + cpu.system) / 1000, latencies };
}

// ---- (a) in-process: the sign-in services, composed exactly as the backend composes them ----

interface InProcess {
  store: Store;
  sessions: SessionService;
  consoles: ConsoleRecord[];
  /** Milliseconds spent in the parts of a sign-in, summed (observed by wrapping, not changed). */
  parts: { verify: number; commit: number; token: number };
}

async function inProcess(config: BackendConfig, consoleIds: readonly string[]): Promise<InProcess> {
  const { store, events, sessions, ceremonies, tokens } = await composeServices(config, {
    clock: Date.now,
    logger: pino({ level: 'silent' }),
    consoles: NO_CONSOLE_CHANNEL,
  });
  const consoles = await Promise.all(
    consoleIds.map(async (id) => {
      const record = await store.consoles.get(id);
      if (record === undefined) throw new Error(`console ${id} missing`);
      return record;
    }),
  );
  const parts = { verify: 0, commit: 0, token: 0 };
  const verify = ceremonies.verifyAuthentication.bind(ceremonies);
  ceremonies.verifyAuthentication = async (...a: Parameters<typeof verify>) => {
    const t0 = performance.now();
    try {
      return await verify(...a);
    } finally {
      parts.verify += performance.now() - t0;
    }
  };
  // A unit of work from its start to its commit (measured at c=1, where units do not overlap).
  const atomically = events.atomically.bind(events);
  events.atomically = async <T>(fn: (uow: UnitOfWork) => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await atomically(fn);
    } finally {
      parts.commit += performance.now() - t0;
    }
  };
  const issue = tokens.issue.bind(tokens);
  tokens.issue = async (...a: Parameters<typeof issue>) => {
    const t0 = performance.now();
    try {
      return await issue(...a);
    } finally {
      parts.token += performance.now() - t0;
    }
  };
  return { store, sessions, consoles, parts };
}

function inProcessSignIn(rig: InProcess): SignInFn {
  return async (op) => {
    const console = rig.consoles[op.consoleIndex] as ConsoleRecord;
    const t0 = performance.now();
    const options = await rig.sessions.signInOptions(console);
    const t1 = performance.now();
    const response = op.authenticator.assert(options);
    const t2 = performance.now();
    const result = await rig.sessions.signIn(console, response);
    const t3 = performance.now();
    if (result.token.length === 0 || result.session.operatorId !== op.operatorId) throw new Error('bad sign-in');
    return { totalMs: t3 - t0, clientMs: t2 - t1, resumed: result.resumed };
  };
}

// ---- (b) HTTP: console-signed requests over a keep-alive connection per console ----

function httpSignIn(url: string, consoles: readonly TestConsole[]): SignInFn {
  return httpSignIns(url, consoles).signIn;
}

// ---- runs and report ----

interface Level {
  starts: Run;
  seq: Run;
  conc: Run;
  raw1: RawRun;
  rawN: RawRun;
  /** Backend rate ÷ raw rate, one value per interleaved round (c=1). */
  roundRatios: number[];
  /** For (a): backend time per c=1 sign-in spent in each part, in ms. */
  parts?: { verify: number; commit: number; token: number };
}

/** Sign-ins per second of backend work: wall time minus what the soft authenticator spent signing. */
const backendRate = (r: Run) => (r.samples.length / (r.wallMs - r.samples.reduce((a, s) => a + s.clientMs, 0))) * 1000;
const wallRate = (r: Run) => (r.samples.length / r.wallMs) * 1000;
const rawRate = (r: RawRun) => (r.n / r.wallMs) * 1000;
const mergeRaw = (runs: readonly RawRun[]): RawRun => ({
  n: runs.reduce((a, r) => a + r.n, 0),
  wallMs: runs.reduce((a, r) => a + r.wallMs, 0),
  cpuMs: runs.reduce((a, r) => a + r.cpuMs, 0),
  latencies: runs.flatMap((r) => r.latencies),
});

async function measureLevel(
  pool: readonly Operator[],
  warm: readonly Operator[],
  rawPool: RawPoolEntry[],
  signIn: SignInFn,
  seed: number,
  parts?: InProcess['parts'],
): Promise<Level> {
  const spent = { verify: 0, commit: 0, token: 0 };
  const random = seededRandom(seed);
  await runSignIns(warm, signIn, { count: 300, concurrency: 1, random }); // JIT warm-up on spare operators
  await rawVerify(rawPool, 300, 1);
  const starts = await runSignIns(pool, signIn, { concurrency: 1, random, eachOnce: true });
  const seq: Run[] = [];
  const conc: Run[] = [];
  const raw1: RawRun[] = [];
  const rawN: RawRun[] = [];
  const roundRatios: number[] = [];
  const perRound = SECONDS / ROUNDS;
  for (let round = 0; round < ROUNDS; round++) {
    // Raw verification gets about as many operations as the sign-in round it is compared with.
    const expected = Math.max(200, Math.round(perRound * (seq.length > 0 ? wallRate(merge(seq)) * 1.5 : 600)));
    const r1 = await rawVerify(rawPool, expected, 1);
    const before = parts === undefined ? undefined : { ...parts };
    const s1 = await runSignIns(pool, signIn, { seconds: perRound, concurrency: 1, random });
    if (parts !== undefined && before !== undefined) {
      spent.verify += parts.verify - before.verify;
      spent.commit += parts.commit - before.commit;
      spent.token += parts.token - before.token;
    }
    const rN = await rawVerify(rawPool, expected, CONCURRENCY);
    const sN = await runSignIns(pool, signIn, { seconds: perRound, concurrency: CONCURRENCY, random });
    raw1.push(r1);
    seq.push(s1);
    rawN.push(rN);
    conc.push(sN);
    roundRatios.push(backendRate(s1) / rawRate(r1));
  }
  const n = merge(seq).samples.length;
  return {
    starts,
    seq: merge(seq),
    conc: merge(conc),
    raw1: mergeRaw(raw1),
    rawN: mergeRaw(rawN),
    roundRatios,
    ...(parts === undefined
      ? {}
      : { parts: { verify: spent.verify / n, commit: spent.commit / n, token: spent.token / n } }),
  };
}

function rows(label: string, level: Level): string[][] {
  const line = (name: string, run: Run, raw: RawRun) => {
    const lat: Summary = summarize(run.samples.map((s) => s.totalMs - s.clientMs));
    const resumed = run.samples.filter((s) => s.resumed).length;
    return [
      `${label} ${name}`,
      fmtInt(run.samples.length),
      `${fmtInt(resumed)}/${fmtInt(run.samples.length - resumed)}`,
      fmtInt(backendRate(run)),
      fmtInt(wallRate(run)),
      fmt(backendRate(run) / rawRate(raw)),
      fmt(lat.p50, 2),
      fmt(lat.p95, 2),
      fmt(lat.p99, 2),
      fmt(run.cpuMs / run.wallMs),
    ];
  };
  return [
    line('first sign-in per operator, c=1', level.starts, level.raw1),
    line('random operators, c=1', level.seq, level.raw1),
    line(`random operators, c=${CONCURRENCY}`, level.conc, level.rawN),
  ];
}

async function main(): Promise<void> {
  heading('sign-in throughput (single process)');
  console.log(
    `${OPERATORS} operators on ${CONSOLES} consoles (branch-kiosk, default policy: up to 4 sessions per console), ` +
      `SQLite durability "full"; ${SECONDS}s measured per level and concurrency in ${ROUNDS} rounds interleaved with raw verification`,
  );

  // Enrol once over the real API (backend in this process), then snapshot the data directory.
  let t = performance.now();
  const dirA = mkdtempSync(join(tmpdir(), 'baton-bench-signin-a-'));
  const setup = await startTestBackend({ durability: 'full', dataDir: dirA });
  const consoles: TestConsole[] = await mapLimit(
    Array.from({ length: CONSOLES + 1 }, (_, i) => i),
    4,
    () => TestConsole.enrol(setup.url, setup.admin),
  );
  const all: Operator[] = [];
  for (let i = 0; i < OPERATORS + 4; i++) {
    // The extra console and its four operators only warm the JIT up.
    const consoleIndex = i < OPERATORS ? i % CONSOLES : CONSOLES;
    const { operatorId, authenticator } = await enrolOperator(setup.admin, consoles[consoleIndex] as TestConsole, {
      displayName: `Operator ${i}`,
    });
    all.push({ operatorId, authenticator, consoleIndex });
  }
  await setup.stop();
  const dirB = mkdtempSync(join(tmpdir(), 'baton-bench-signin-b-'));
  cpSync(dirA, dirB, { recursive: true });
  console.log(
    `${CONSOLES} consoles and ${OPERATORS} operators enrolled over the API in ${fmt((performance.now() - t) / 1000, 1)}s`,
  );
  const pool = all.slice(0, OPERATORS);
  const warm = all.slice(OPERATORS);
  const config = (dataDir: string) =>
    parseBackendConfig({ port: 0, dataDir, origins: [TEST_ORIGIN], logLevel: 'silent' }, 'bench');
  if (config(dirA).durability !== 'full') throw new Error('expected the default durability to be "full"');

  // (a) in-process
  t = performance.now();
  const rig = await inProcess(
    config(dirA),
    consoles.map((c) => c.id),
  );
  const rawPool = await Promise.all(
    pool.map(async (op) => {
      const credential = await rig.store.operators.getCredential([...op.authenticator.credentials.keys()][0] ?? '');
      if (credential === undefined) throw new Error('credential missing');
      return { authenticator: op.authenticator, credential };
    }),
  );
  const a = await measureLevel(pool, warm, rawPool, inProcessSignIn(rig), 1, rig.parts);
  await rig.store.close();
  const dirC = mkdtempSync(join(tmpdir(), 'baton-bench-signin-c-'));
  cpSync(dirA, dirC, { recursive: true });

  // Diagnostic only: the same in-process loop with durability "normal" (no fsync per commit).
  const rigNormal = await inProcess(
    parseBackendConfig(
      { port: 0, dataDir: dirC, origins: [TEST_ORIGIN], logLevel: 'silent', durability: 'normal' },
      'bench',
    ),
    consoles.map((c) => c.id),
  );
  const normalRandom = seededRandom(3);
  const normalRaw = await rawVerify(rawPool, 1500, 1);
  const normal = await runSignIns(pool, inProcessSignIn(rigNormal), {
    seconds: SECONDS / 2,
    concurrency: 1,
    random: normalRandom,
  });
  await rigNormal.store.close();
  rmSync(dirC, { recursive: true, force: true });

  // (b) HTTP, backend in this process on the copy
  const backend = await startBackend(config(dirB), { logger: pino({ level: 'silent' }) });
  const b = await measureLevel(pool, warm, rawPool, httpSignIn(backend.url, consoles), 2);
  await backend.stop();
  rmSync(dirA, { recursive: true, force: true });
  rmSync(dirB, { recursive: true, force: true });
  const elapsed = (performance.now() - t) / 1000;

  // ---- report ----
  const rawRow = (name: string, r: RawRun) => {
    const s = summarize(r.latencies);
    return [name, fmtInt(r.n), fmtInt(rawRate(r)), fmt(s.p50, 3), fmt(s.p99, 3), fmt(r.cpuMs / r.wallMs)];
  };
  printTable(
    'raw @simplewebauthn/server verifyAuthenticationResponse (same soft-authenticator ES256 assertions, interleaved)',
    ['run', 'n', 'verifications/s', 'p50 ms', 'p99 ms', 'CPU cores'],
    [
      rawRow('beside (a), c=1', a.raw1),
      rawRow(`beside (a), c=${CONCURRENCY}`, a.rawN),
      rawRow('beside (b), c=1', b.raw1),
      rawRow(`beside (b), c=${CONCURRENCY}`, b.rawN),
    ],
  );
  printTable(
    'full sign-ins: options + assertion + verify + session start/resume + token',
    ['run', 'n', 'resumed/started', 'backend/s', 'wall/s', 'ratio to raw', 'p50 ms', 'p95 ms', 'p99 ms', 'CPU cores'],
    [
      ...rows('(a) in-process', a),
      ...rows('(b) HTTP', b),
      rows('(diagnostic) in-process, durability "normal",', {
        starts: normal,
        seq: normal,
        conc: normal,
        raw1: normalRaw,
        rawN: normalRaw,
        roundRatios: [],
      })[1] as string[],
    ],
  );
  if (a.parts !== undefined) {
    const total = summarize(a.seq.samples.map((s) => s.totalMs - s.clientMs)).mean;
    const { verify, commit, token } = a.parts;
    printTable(
      '(a) in-process, c=1: where the backend time of one sign-in goes (mean, µs)',
      ['part', 'µs', 'share'],
      [
        [
          'verifyAuthenticationResponse (incl. pre-checks)',
          fmtInt(verify * 1000),
          `${fmt((verify / total) * 100, 0)}%`,
        ],
        ['store transaction incl. durable commit', fmtInt(commit * 1000), `${fmt((commit / total) * 100, 0)}%`],
        ['assurance token (ES256 JWT)', fmtInt(token * 1000), `${fmt((token / total) * 100, 0)}%`],
        [
          'everything else (options, lookups, policy)',
          fmtInt((total - verify - commit - token) * 1000),
          `${fmt(((total - verify - commit - token) / total) * 100, 0)}%`,
        ],
        ['total', fmtInt(total * 1000), '100%'],
      ],
    );
  }
  console.log(
    '\nbackend/s: sign-ins per second of wall time minus the time the soft authenticator spent signing (it shares' +
      "\nthis core); wall/s includes it. Latencies exclude the authenticator; for (b) they include the client's" +
      '\nrequest signing and HTTP. ratio: backend/s ÷ raw verifications/s at the same concurrency, same run.' +
      `\nPer-round ratios (c=1): (a) ${a.roundRatios.map((r) => fmt(r)).join(', ')}; (b) ${b.roundRatios.map((r) => fmt(r)).join(', ')}.` +
      `\n(measurement phase: ${fmt(elapsed, 0)}s)`,
  );

  const goalRows = (name: string, level: Level) => {
    const best = [level.seq, level.conc].reduce((x, y) => (backendRate(y) > backendRate(x) ? y : x));
    const bestRaw = best === level.seq ? level.raw1 : level.rawN;
    const p99 = summarize(level.seq.samples.map((s) => s.totalMs - s.clientMs)).p99;
    return [
      [
        `${name}: ≥ ${fmtInt(GOAL_RATE)} sign-ins/s (best of c=1, c=${CONCURRENCY})`,
        fmtInt(backendRate(best)),
        verdict(backendRate(best) >= GOAL_RATE),
      ],
      [
        `${name}: ≥ ${GOAL_RATIO} × raw verify rate (same concurrency)`,
        fmt(backendRate(best) / rawRate(bestRaw)),
        verdict(backendRate(best) / rawRate(bestRaw) >= GOAL_RATIO),
      ],
      [`${name}: p99 ≤ ${GOAL_P99_MS} ms (c=1)`, `${fmt(p99, 2)} ms`, verdict(p99 <= GOAL_P99_MS)],
    ];
  };
  printTable('goals', ['goal', 'measured', 'verdict'], [...goalRows('(a) in-process', a), ...goalRows('(b) HTTP', b)]);
}

await main();
