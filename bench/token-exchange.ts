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
 *   node --import tsx bench/token-exchange.ts [--seconds 6] [--rounds 3] [--consoles 20] [--concurrency 4]
 *     [--no-http] [--profile exchange.cpuprofile]
 */
import { generateKeyPairSync, sign as signBytes, verify as verifyBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
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

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '6' },
    rounds: { type: 'string', default: '3' },
    consoles: { type: 'string', default: '20' },
    concurrency: { type: 'string', default: '4' },
    'no-http': { type: 'boolean', default: false },
    profile: { type: 'string' },
  },
});
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const CONSOLES = Number(args.consoles);
const CONCURRENCY = Number(args.concurrency);
const GOAL_RATE = 2000;
const GOAL_P99_MS = 5;

interface Seat {
  console: TestConsole;
  record: ConsoleRecord;
  token: string;
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

async function run(ms: number, seats: readonly Seat[], one: (seat: Seat) => Promise<void>) {
  const samples: number[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + ms;
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const seat = seats[next++ % seats.length] as Seat;
        const s0 = performance.now();
        await one(seat);
        samples.push(performance.now() - s0);
      }
    }),
  );
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  return {
    systemMs: cpu.system / 1000,
    samples,
    wallMs: wall,
    cpuMs,
    perCore: (samples.length / cpuMs) * 1000,
    perWall: (samples.length / wall) * 1000,
  };
}

heading('token-exchange');
const t = await startTestBackend();
try {
  const keys = await appKeyPair();
  await publishPolicy(t.admin, tellerPolicy(keys.publicJwk));
  const seats: Seat[] = [];
  for (let i = 0; i < CONSOLES; i++) {
    const console = await TestConsole.enrol(t.url, t.admin);
    const { authenticator } = await enrolOperator(t.admin, console, { displayName: `Teller ${i}` });
    const signedIn = (await signIn(console, authenticator)).body as Json;
    const record = await t.backend.store.consoles.get(console.id);
    if (record === undefined) throw new Error('console vanished');
    seats.push({ console, record, token: signedIn.token as string });
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
  const perRound = (SECONDS * 1000) / ROUNDS;
  const rounds: Awaited<ReturnType<typeof run>>[] = [];
  const anchors = { n: 0, cpuMs: 0 };
  for (let r = 0; r < ROUNDS; r++) {
    const x = anchor(Math.min(1000, perRound / 2));
    anchors.n += x.n;
    anchors.cpuMs += x.cpuMs;
    rounds.push(await run(perRound, seats, inProcess));
  }
  if (profiler !== undefined && args.profile !== undefined) {
    const { profile } = await profiler.post('Profiler.stop');
    writeFileSync(args.profile, JSON.stringify(profile));
    profiler.disconnect();
  }
  const a = {
    samples: rounds.flatMap((r) => r.samples),
    cpuMs: rounds.reduce((x, r) => x + r.cpuMs, 0),
    systemMs: rounds.reduce((x, r) => x + r.systemMs, 0),
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
    `token exchange, ${CONSOLES} consoles/sessions, concurrency ${CONCURRENCY}, engine ${t.backend.store.engine}, load ${fmt(load0)} → ${fmt(load1)}`,
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
  printJsonLine('token-exchange', {
    engine: t.backend.store.engine,
    load: [load0, load1],
    anchor: { perCore: anchorRate },
    inProcess: {
      perCore: a.perCore,
      cpuUsEach: (a.cpuMs * 1000) / pa.n,
      systemUsEach: (a.systemMs * 1000) / pa.n,
      ...pa,
    },
    ...(b === undefined ? {} : { http: { perCore: b.perCore, ...summarize(b.samples) } }),
  });
} finally {
  await t.stop();
}
