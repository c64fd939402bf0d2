/**
 * The verifier library (@baton/verifier): verifications per second on one core, beside raw jose
 * ES256 JWT verification of the same tokens in the same run (interleaved rounds), then the time
 * from an admin's revocation to the app server refusing the revoked session's token (Baton's push
 * channel, GET /v1/tokens/revocations), against a backend started in this process.
 *
 *   node --import tsx bench/verifier.ts [--seconds 4] [--rounds 3] [--revocations 200]
 */
import { parseArgs } from 'node:util';
import { SignJWT, createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, type CryptoKey } from 'jose';
import {
  ActionTokenVerifier,
  RevocationList,
  RevocationSubscription,
  VerificationError,
  type Revocation,
} from '../packages/verifier/src/index.js';
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
    seconds: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '3' },
    revocations: { type: 'string', default: '200' },
  },
});
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const REVOCATIONS = Number(args.revocations);
const GOAL_RATE = 20_000;
const GOAL_REVOCATION_P99_MS = 50;
const TOKENS = 1000;

async function makeTokens(key: CryptoKey, kid: string): Promise<string[]> {
  const now = Math.floor(Date.now() / 1000);
  return Promise.all(
    Array.from({ length: TOKENS }, (_, i) =>
      new SignJWT({
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
      })
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid })
        .setIssuer('urn:baton:backend')
        .setAudience(TELLER_AUDIENCE)
        .setSubject(`op_${i % 200}`)
        .setJti(`jti-${i}`)
        .setIssuedAt(now)
        .setExpirationTime(now + 600)
        .sign(key),
    ),
  );
}

/** Runs `fn` over the tokens, one at a time (one core), for `ms`; returns verifications and CPU ms. */
async function loop(tokens: readonly string[], ms: number, fn: (token: string) => Promise<unknown>) {
  const cpu0 = process.cpuUsage();
  const end = performance.now() + ms;
  let n = 0;
  while (performance.now() < end) {
    for (let i = 0; i < 100; i++) await fn(tokens[(n + i) % tokens.length] as string);
    n += 100;
  }
  const cpu = process.cpuUsage(cpu0);
  return { n, cpuMs: (cpu.user + cpu.system) / 1000 };
}

async function throughput(): Promise<{ library: number; raw: number; ratio: number }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const tokens = await makeTokens(privateKey, 'k1');
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
  const rawKeys = createLocalJWKSet({ keys: [jwk] });
  const raw = (token: string) => jwtVerify(token, rawKeys, { algorithms: ['ES256'] });
  const lib = (token: string) => verifier.verify(token, 'payment.approve');
  await loop(tokens, 500, raw); // warm-up
  await loop(tokens, 500, lib);
  const totals = { lib: { n: 0, cpuMs: 0 }, raw: { n: 0, cpuMs: 0 } };
  const perRound = (SECONDS * 1000) / ROUNDS;
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, fn] of [
      ['raw', raw],
      ['lib', lib],
    ] as const) {
      const result = await loop(tokens, perRound, fn);
      totals[name].n += result.n;
      totals[name].cpuMs += result.cpuMs;
    }
  }
  const library = (totals.lib.n / totals.lib.cpuMs) * 1000;
  const rawRate = (totals.raw.n / totals.raw.cpuMs) * 1000;
  printTable(
    'verifications per CPU-second (one thread; interleaved rounds)',
    ['what', 'verifications', 'CPU s', 'per core /s'],
    [
      ['raw jose jwtVerify ES256', fmtInt(totals.raw.n), fmt(totals.raw.cpuMs / 1000), fmtInt(rawRate)],
      ['@baton/verifier verify()', fmtInt(totals.lib.n), fmt(totals.lib.cpuMs / 1000), fmtInt(library)],
    ],
  );
  return { library, raw: rawRate, ratio: library / rawRate };
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
const rates = await throughput();
const measuredLatency = await revocationLatency();
const latency = summarize(measuredLatency.fromRequest);
const fromCommit = summarize(measuredLatency.fromCommit);
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
printTable(
  'goals',
  ['goal', 'measured', 'verdict'],
  [
    [`≥ ${fmtInt(GOAL_RATE)} verifications/s per core`, fmtInt(rates.library), verdict(rates.library >= GOAL_RATE)],
    ['beside raw jose ES256 (same run)', `x${fmt(rates.ratio)} of ${fmtInt(rates.raw)}/s`, '—'],
    [
      `revocation → refusal p99 ≤ ${GOAL_REVOCATION_P99_MS} ms`,
      fmt(latency.p99),
      verdict(latency.p99 <= GOAL_REVOCATION_P99_MS),
    ],
  ],
);
printJsonLine('verifier', { ...rates, revocationMs: latency, revocationFromCommitMs: fromCommit });
