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
 *   node --import tsx bench/token-exchange.ts [--seconds 5] [--consoles 20] [--concurrency 4]
 */
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
    seconds: { type: 'string', default: '5' },
    consoles: { type: 'string', default: '20' },
    concurrency: { type: 'string', default: '4' },
  },
});
const SECONDS = Number(args.seconds);
const CONSOLES = Number(args.consoles);
const CONCURRENCY = Number(args.concurrency);
const GOAL_RATE = 2000;
const GOAL_P99_MS = 5;

interface Seat {
  console: TestConsole;
  record: ConsoleRecord;
  token: string;
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
  await run(1000, seats, inProcess); // warm-up
  await run(1000, seats, overHttp);
  const a = await run(SECONDS * 1000, seats, inProcess);
  const b = await run(SECONDS * 1000, seats, overHttp);
  const rows = [
    ['(a) in-process TokenExchange.exchange', a],
    ['(b) HTTP, console-signed, client in-process', b],
  ] as const;
  printTable(
    `token exchange, ${CONSOLES} consoles/sessions, concurrency ${CONCURRENCY}, engine ${t.backend.store.engine}`,
    ['path', 'tokens', 'per core /s', 'per wall s', 'p50 ms', 'p99 ms', 'max ms'],
    rows.map(([name, r]) => {
      const s = summarize(r.samples);
      return [name, fmtInt(s.n), fmtInt(r.perCore), fmtInt(r.perWall), fmt(s.p50), fmt(s.p99), fmt(s.max)];
    }),
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
    inProcess: { perCore: a.perCore, ...pa },
    http: { perCore: b.perCore, ...summarize(b.samples) },
  });
} finally {
  await t.stop();
}
