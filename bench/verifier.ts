/**
 * The verifier library (@baton/verifier): verifications per CPU-second on one thread, in interleaved
 * rounds of the same run:
 *  - the anchor, raw ES256: `node:crypto.verify` (OpenSSL) of the same kind of token, and jose's `jwtVerify`;
 *  - the verifier's own ES256 call alone: its native addon (OpenSSL with a context prepared once per key), when built;
 *  - `verify()` on fresh tokens (each token presented once: every one costs a signature check);
 *  - `verify()` on repeated tokens (1,000 tokens presented again and again: the signature cache answers,
 *    every other check still runs).
 * Beside them, the CPU's own ceiling for one ES256 verification: OpenSSL's C loop (`openssl speed ecdsap256`, CPU
 * user time), which parses no token, when the `openssl` command is installed.
 * Then the time from an admin's revocation to the app server refusing the revoked session's token
 * (Baton's push channel, GET /v1/tokens/revocations), against a backend started in this process.
 *
 *   node --import tsx bench/verifier.ts [--count 10000] [--rounds 3] [--revocations 200] [--no-revocation]
 *     [--profile fresh.cpuprofile]   (a V8 CPU profile of the fresh-token rounds only)
 */
import {
  createPrivateKey,
  createPublicKey,
  sign as signBytes,
  verify as verifyBytes,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, type JWK } from 'jose';
import {
  ActionTokenVerifier,
  RevocationList,
  RevocationSubscription,
  VerificationError,
  es256Backend,
  type Revocation,
} from '../packages/verifier/src/index.js';
import { verifyEs256Native } from '../packages/verifier/src/es256-native.js';
import { TestConsole, startTestBackend, type Json } from '../test/helpers/backend-harness.js';
import { enrolOperator, signIn } from '../test/helpers/operator-flow.js';
import {
  appKeyPair,
  exchange,
  publishPolicy,
  tellerPolicy,
  TELLER_AUDIENCE,
} from '../test/helpers/action-token-fixtures.js';
import { fmt, fmtInt, heading, printJsonLine, printTable, summarize, verdict } from './lib/report.js';

const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '3' },
    revocations: { type: 'string', default: '200' },
    'no-revocation': { type: 'boolean', default: false },
    profile: { type: 'string' },
  },
});
const COUNT = Number(args.count);
const ROUNDS = Number(args.rounds);
const REVOCATIONS = Number(args.revocations);
const GOAL_RATE = 20_000;
const GOAL_REVOCATION_P99_MS = 50;

/**
 * ES256 verifications per CPU-second of OpenSSL's own C loop (`openssl speed`, one process, CPU user time as the
 * divisor): what this CPU can do for one signature check before any token is parsed. `undefined` when the
 * `openssl` command is missing or answers something else.
 */
function opensslSpeedVerify(): number | undefined {
  const run = spawnSync('openssl', ['speed', '-seconds', '3', 'ecdsap256'], { encoding: 'utf8', timeout: 60_000 });
  if (run.status !== 0) return undefined;
  const line = /nistp256\)\s+[\d.]+s\s+[\d.]+s\s+[\d.]+\s+([\d.]+)/.exec(run.stdout);
  return line?.[1] === undefined ? undefined : Number(line[1]);
}

/** `n` distinct action tokens, signed with node:crypto (fast enough to make tens of thousands). */
function makeTokens(key: KeyObject, kid: string, n: number, from: number): string[] {
  const now = Math.floor(Date.now() / 1000);
  const header = Buffer.from(JSON.stringify({ alg: 'ES256', typ: 'at+jwt', kid })).toString('base64url');
  return Array.from({ length: n }, (_, j) => {
    const i = from + j;
    const payload = Buffer.from(
      JSON.stringify({
        action: 'payment.approve',
        scope: 'payment.approve',
        sid: `ses_${i}`,
        console: `con_${i % 50}`,
        channel: 'branch-kiosk',
        level: 'verified',
        acr: 'phr',
        amr: ['hwk', 'user', 'mfa'],
        auth_time: now - 30,
        policy_version: 2,
        iss: 'urn:baton:backend',
        aud: TELLER_AUDIENCE,
        sub: `op_${i % 200}`,
        jti: `jti-${i}`,
        iat: now,
        exp: now + 600,
      }),
    ).toString('base64url');
    const input = `${header}.${payload}`;
    const signature = signBytes('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${signature.toString('base64url')}`;
  });
}

/** Runs `fn` over `tokens` once each, one at a time (one thread); returns verifications and CPU ms. */
async function pass(tokens: readonly string[], fn: (token: string) => unknown) {
  const cpu0 = process.cpuUsage();
  for (const token of tokens) await fn(token);
  const cpu = process.cpuUsage(cpu0);
  return { n: tokens.length, cpuMs: (cpu.user + cpu.system) / 1000 };
}

type Kind = 'openssl' | 'native' | 'jose' | 'fresh' | 'repeated';

async function throughput(): Promise<Record<Kind, number> & { opensslSpeed?: number }> {
  const native = es256Backend.name === 'openssl-prepared';
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' } as JWK;
  const privateJwk = await exportJWK(privateKey);
  const signingKey = createPrivateKey({ key: privateJwk as JsonWebKey, format: 'jwk' });
  const publicKeyObject = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
  const revocations = new RevocationList();
  // Some revocations to look through, as an app server would hold.
  for (let i = 0; i < 500; i++) {
    revocations.apply({ epoch: i + 1, kind: 'session', targetId: `ses_x${i}`, operatorId: null, at: Date.now() });
  }
  const verifier = new ActionTokenVerifier({
    audience: TELLER_AUDIENCE,
    jwks: { keys: [jwk] },
    actions: { 'payment.approve': { level: 'verified', maxAgeSeconds: 300 } },
    revocations,
  });
  const repeated = makeTokens(signingKey, 'k1', 1000, 0);
  const fresh = makeTokens(signingKey, 'k1', COUNT * (ROUNDS + 1), 1000);
  const rawKeys = createLocalJWKSet({ keys: [jwk] });
  const fns: Record<Kind, (token: string) => unknown> = {
    openssl: (token) => {
      const dot = token.lastIndexOf('.');
      const ok = verifyBytes(
        'sha256',
        Buffer.from(token.slice(0, dot)),
        { key: publicKeyObject, dsaEncoding: 'ieee-p1363' },
        Buffer.from(token.slice(dot + 1), 'base64url'),
      );
      if (!ok) throw new Error('raw verify failed');
    },
    native: (token) => {
      const dot = token.lastIndexOf('.');
      const ok = verifyEs256Native(
        publicKeyObject,
        token.slice(0, dot),
        Buffer.from(token.slice(dot + 1), 'base64url'),
      );
      if (ok !== true) throw new Error(`the native addon did not verify (${es256Backend.reason})`);
    },
    jose: (token) => jwtVerify(token, rawKeys, { algorithms: ['ES256'] }),
    fresh: (token) => verifier.verify(token, 'payment.approve'),
    repeated: (token) => verifier.verify(token, 'payment.approve'),
  };
  // Warm-up (the repeated tokens enter the signature cache here).
  await pass(fresh.slice(0, COUNT / 2), fns.openssl);
  if (native) await pass(fresh.slice(0, COUNT / 2), fns.native);
  await pass(fresh.slice(0, 500), fns.jose);
  await pass(fresh.slice(COUNT / 2, COUNT), fns.fresh);
  for (let i = 0; i < 3; i++) await pass(repeated, fns.repeated);
  const totals: Record<Kind, { n: number; cpuMs: number }> = {
    openssl: { n: 0, cpuMs: 0 },
    native: { n: 0, cpuMs: 0 },
    jose: { n: 0, cpuMs: 0 },
    fresh: { n: 0, cpuMs: 0 },
    repeated: { n: 0, cpuMs: 0 },
  };
  const profiler = args.profile === undefined ? undefined : new Session();
  profiler?.connect();
  await profiler?.post('Profiler.enable');
  for (let r = 0; r < ROUNDS; r++) {
    const round = fresh.slice(COUNT * (r + 1), COUNT * (r + 2));
    const add = (kind: Kind, x: { n: number; cpuMs: number }) => {
      totals[kind].n += x.n;
      totals[kind].cpuMs += x.cpuMs;
    };
    add('openssl', await pass(round, fns.openssl));
    if (native) add('native', await pass(round, fns.native));
    add('jose', await pass(round.slice(0, COUNT / 4), fns.jose));
    await profiler?.post('Profiler.start');
    add('fresh', await pass(round, fns.fresh));
    if (profiler !== undefined && args.profile !== undefined) {
      const { profile } = await profiler.post('Profiler.stop');
      if (r === ROUNDS - 1) writeFileSync(args.profile, JSON.stringify(profile));
    }
    for (let i = 0; i < COUNT / repeated.length; i++) add('repeated', await pass(repeated, fns.repeated));
  }
  profiler?.disconnect();
  const ceiling = opensslSpeedVerify();
  const rate = (kind: Kind) => (totals[kind].n / totals[kind].cpuMs) * 1000;
  const rates = {
    openssl: rate('openssl'),
    native: native ? rate('native') : Number.NaN,
    jose: rate('jose'),
    fresh: rate('fresh'),
    repeated: rate('repeated'),
  };
  const rows: [string, Kind][] = [
    ['raw ES256: node:crypto.verify (OpenSSL)', 'openssl'],
    ...(native
      ? [["raw ES256: the verifier's native addon (OpenSSL, key prepared once)", 'native'] as [string, Kind]]
      : []),
    ['raw ES256: jose jwtVerify (WebCrypto)', 'jose'],
    ['@baton/verifier verify(), fresh tokens', 'fresh'],
    ['@baton/verifier verify(), repeated tokens', 'repeated'],
  ];
  printTable(
    `verifications per CPU-second (one thread; ${ROUNDS} interleaved rounds; load ${fmt(loadavg()[0] ?? Number.NaN)}; ` +
      `the verifier's ES256: ${es256Backend.name}, ${es256Backend.reason})`,
    ['what', 'verifications', 'CPU µs each', 'per core /s', '/ raw OpenSSL'],
    [
      ...rows.map(([name, kind]) => [
        name,
        fmtInt(totals[kind].n),
        fmt((totals[kind].cpuMs * 1000) / totals[kind].n, 1),
        fmtInt(rates[kind]),
        `x${fmt(rates[kind] / rates.openssl, 3)}`,
      ]),
      ceiling === undefined
        ? ['ceiling: `openssl speed ecdsap256` (C loop, no token)', '—', '—', 'not installed', '—']
        : [
            'ceiling: `openssl speed ecdsap256` (C loop, no token)',
            '(3 s)',
            fmt(1e6 / ceiling, 1),
            fmtInt(ceiling),
            `x${fmt(ceiling / rates.openssl, 3)}`,
          ],
    ],
  );
  return { ...rates, ...(ceiling === undefined ? {} : { opensslSpeed: ceiling }) };
}

async function revocationLatency(): Promise<{ fromRequest: number[]; fromCommit: number[] }> {
  const t = await startTestBackend();
  try {
    const keys = await appKeyPair();
    await publishPolicy(t.admin, tellerPolicy(keys.publicJwk));
    const console = await TestConsole.enrol(t.url, t.admin);
    const { authenticator } = await enrolOperator(t.admin, console);
    const waiting = new Map<string, (r: Revocation) => void>();
    const subscription = new RevocationSubscription({
      batonUrl: t.url,
      audience: TELLER_AUDIENCE,
      privateKey: keys.privateJwk,
      onRevocation: (r: Revocation) => waiting.get(r.targetId)?.(r),
    });
    await subscription.ready;
    const verifier = new ActionTokenVerifier({
      audience: TELLER_AUDIENCE,
      jwksUrl: `${t.url}/v1/tokens/jwks.json`,
      actions: { 'customer.view': { level: 'presence' } },
      revocations: subscription,
    });
    const samples: number[] = [];
    const fromCommit: number[] = [];
    for (let i = 0; i < REVOCATIONS; i++) {
      const signedIn = (await signIn(console, authenticator)).body as Json;
      const sid = signedIn.session.id as string;
      const token = ((await exchange(console, signedIn.token as string, 'customer.view')).body as Json)
        .access_token as string;
      await verifier.verify(token, 'customer.view');
      const heard = new Promise<Revocation>((resolve) => waiting.set(sid, resolve));
      const t0 = performance.now();
      const [, revocation] = await Promise.all([
        t.admin.ok('POST', `/v1/admin/sessions/${sid}/revoke`, { reason: 'bench' }),
        heard,
      ]);
      const refused = await verifier.verify(token, 'customer.view').then(
        () => false,
        (e: unknown) => e instanceof VerificationError && e.code === 'TOKEN_REVOKED',
      );
      samples.push(performance.now() - t0);
      // The revocation's own time (the backend's clock, this machine's) to the refusal.
      fromCommit.push(Date.now() - revocation.at);
      waiting.delete(sid);
      if (!refused) throw new Error('the revoked token was not refused');
    }
    subscription.close();
    return { fromRequest: samples, fromCommit };
  } finally {
    await t.stop();
  }
}

heading('verifier');
const load0 = loadavg()[0] ?? Number.NaN;
const rates = await throughput();
const measuredLatency = args['no-revocation'] ? undefined : await revocationLatency();
const latency = measuredLatency === undefined ? undefined : summarize(measuredLatency.fromRequest);
const fromCommit = measuredLatency === undefined ? undefined : summarize(measuredLatency.fromCommit);
if (latency !== undefined && fromCommit !== undefined) {
  printTable(
    `revocation → the app server refuses the token (${REVOCATIONS} sessions revoked one after another)`,
    ['measured from', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms'],
    [
      ["sending the admin's revoke request", fmt(latency.p50), fmt(latency.p95), fmt(latency.p99), fmt(latency.max)],
      [
        "the revocation's time at the backend",
        fmt(fromCommit.p50),
        fmt(fromCommit.p95),
        fmt(fromCommit.p99),
        fmt(fromCommit.max),
      ],
    ],
  );
}
printTable(
  `goals (load ${fmt(load0)} → ${fmt(loadavg()[0] ?? Number.NaN)})`,
  ['goal', 'measured', 'verdict'],
  [
    [
      `≥ ${fmtInt(GOAL_RATE)} verifications/s per core, fresh tokens`,
      fmtInt(rates.fresh),
      verdict(rates.fresh >= GOAL_RATE),
    ],
    [
      `≥ ${fmtInt(GOAL_RATE)} verifications/s per core, repeated tokens`,
      fmtInt(rates.repeated),
      verdict(rates.repeated >= GOAL_RATE),
    ],
    [
      'beside raw OpenSSL ES256 verify (same run)',
      `fresh x${fmt(rates.fresh / rates.openssl, 3)} of ${fmtInt(rates.openssl)}/s`,
      '—',
    ],
    [
      "this CPU's ceiling, OpenSSL's C loop (same run)",
      rates.opensslSpeed === undefined
        ? 'openssl not installed'
        : `${fmtInt(rates.opensslSpeed)}/s, x${fmt(rates.opensslSpeed / GOAL_RATE, 3)} of the goal`,
      '—',
    ],
    ...(latency === undefined
      ? []
      : [
          [
            `revocation → refusal p99 ≤ ${GOAL_REVOCATION_P99_MS} ms`,
            fmt(latency.p99),
            verdict(latency.p99 <= GOAL_REVOCATION_P99_MS),
          ],
        ]),
  ],
);
printJsonLine('verifier', {
  load: [load0, loadavg()[0]],
  es256: es256Backend.name,
  ...rates,
  ...(latency === undefined ? {} : { revocationMs: latency, revocationFromCommitMs: fromCommit }),
});
