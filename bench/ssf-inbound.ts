/**
 * Shared Signals inbound (issue 13): an upstream transmitter pushes a RISC `account-disabled` SET
 * (RFC 8935, signed RS256) for an operator linked by email → Baton validates it, revokes the
 * operator through the revocation hub → every connected console receives the revocation and
 * acknowledges it. Goal: every console acknowledged, p99 ≤ 50 ms, with 1,000 consoles connected.
 *
 * The backend runs in a child process (bench/lib/backend-process.ts); the consoles (real P-256
 * keys, signed WebSocket upgrades) and the transmitter in this one. Each SET is signed before the
 * clock starts (the transmitter's cost, not Baton's). Timed from just before the POST:
 *   - the transmitter's 202 (validation, jti claim, revocation committed, pushed);
 *   - every console received the revocation (each answers its `ack` at once, so this is also
 *     when the last console acknowledged);
 *   - every acknowledgement committed by the backend.
 * Anchors in the same run: an admin's revoke of another operator alternated with the SETs (the same
 * revocation path without Shared Signals in front), and after Baton's rounds the naive
 * ../shared/anchors/ws-broadcast.mjs (BENCH_ANCHORS_DIR) with as many clients and rounds: Baton ÷ anchor.
 *
 *   node --import tsx bench/ssf-inbound.ts [--consoles 1000] [--rounds 30]
 */
import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { parseArgs } from 'node:util';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { newId } from '../backend/crypto/secrets.js';
import { ConsoleKey } from '../main/core/console-key.js';
import type { Json } from '../test/helpers/backend-harness.js';
import { BackendProcess } from './lib/backend-process.js';
import { ensureFileLimit } from './lib/fd-limit.js';
import { RevocationReceipts, waitForAcks } from './lib/revocation-receipts.js';
import { loadLine, runAnchor } from './lib/cluster.js';
import {
  fmt,
  fmtInt,
  heading,
  printJsonLine,
  printTable,
  summarize,
  verdict,
  wallMs,
  type Summary,
} from './lib/report.js';
import { BareConsole, connectConsole, mapLimit } from './lib/ws-console.js';

const { values: args } = parseArgs({
  options: {
    consoles: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '30' },
    'ack-timeout': { type: 'string', default: '30' },
  },
});
const CONSOLES = Number(args.consoles);
const ROUNDS = Number(args.rounds);
const ACK_TIMEOUT_MS = Number(args['ack-timeout']) * 1000;
const GOAL_P99_MS = 50;
const ISSUER = 'https://idp.bank.example/';
const AUDIENCE = 'https://baton.bank.example/ssf';
const RISC = 'https://schemas.openid.net/secevent/risc/event-type/';

const receipts = new RevocationReceipts();

async function main(): Promise<void> {
  ensureFileLimit(CONSOLES + 1024);
  heading('Shared Signals inbound: account-disabled → every console acknowledged');
  const loadStart = loadLine();
  const backend = await BackendProcess.start();
  await backend.request('instrument-revocations');
  backend.child.on('exit', (code, signal) => console.error(`backend child exited (${code ?? signal ?? '?'})`));

  const consoles = Array.from({ length: CONSOLES }, () => new BareConsole(newId('con'), ConsoleKey.generate()));
  for (let i = 0; i < consoles.length; i += 1000) {
    await backend.request('insert-consoles', {
      consoles: consoles.slice(i, i + 1000).map((c) => ({ id: c.id, publicJwk: c.key.publicJwk() })),
    });
  }
  // Everything the admin sets up is done before the consoles connect (the timed path makes no admin call).
  // The upstream transmitter: an RS256 key pinned at Baton (no JWKS fetch on the timed path after the first).
  const { privateKey, publicKey } = await generateKeyPair('RS256', { modulusLength: 2048 });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench-1', alg: 'RS256' };
  const registered = (await backend.admin.ok('POST', '/v1/admin/ssf/transmitters', {
    issuer: ISSUER,
    audience: AUDIENCE,
    jwks: { keys: [jwk] },
  })) as Json;
  const endpoint = registered.pushEndpoint as string;
  const pushToken = registered.pushToken as string;

  const operators: { id: string; email: string }[] = [];
  for (let i = 0; i < ROUNDS + 1; i++) {
    const { operator } = (await backend.admin.ok('POST', '/v1/admin/operators', {
      displayName: `Leaver ${i}`,
      roles: ['teller'],
    })) as Json;
    const email = `leaver.${i}@bank.example`;
    await backend.admin.ok('POST', `/v1/admin/operators/${operator.id as string}/identities`, {
      format: 'email',
      email,
    });
    operators.push({ id: operator.id as string, email });
  }
  const sign = (email: string) =>
    new SignJWT({
      iss: ISSUER,
      jti: randomUUID(),
      iat: Math.floor(Date.now() / 1000),
      aud: AUDIENCE,
      sub_id: { format: 'email', email },
      events: { [`${RISC}account-disabled`]: { reason: 'hijacking' } },
    })
      .setProtectedHeader({ alg: 'RS256', typ: 'secevent+jwt', kid: 'bench-1' })
      .sign(privateKey);
  // A fresh connection per call (no pooled keep-alive socket the loaded server may be closing meanwhile).
  const call = (url: string, body: string, headers: Record<string, string>) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(url, { method: 'POST', agent: false, headers });
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
      req.end(body);
    });
  const push = (jwt: string) =>
    call(endpoint, jwt, { 'content-type': 'application/secevent+jwt', authorization: `Bearer ${pushToken}` });

  // The same-run anchor: an admin's revoke of another operator (POST /v1/admin/operators/:id/revoke),
  // alternated with the SETs, so the machine's load weighs on both alike.
  const anchorOperators: string[] = [];
  for (let i = 0; i < ROUNDS + 1; i++) {
    const { operator } = (await backend.admin.ok('POST', '/v1/admin/operators', {
      displayName: `Anchor ${i}`,
      roles: ['teller'],
    })) as Json;
    anchorOperators.push(operator.id as string);
  }
  // Which epoch revoked which operator, as the consoles see it (no admin call on the timed path).
  const epochOf = new Map<string, number>();
  const epochWaiters = new Map<string, (epoch: number) => void>();
  // 25 upgrades at a time: gentle enough that none waits past the server's header or hello timeouts on a loaded machine.
  let dropped = 0;
  await mapLimit(consoles, 25, async (c) => {
    const receipt = receipts.handler(c.id);
    const lean = await connectConsole(
      backend.url,
      c,
      (message, ws) => {
        if (message.type === 'revocation') {
          for (const item of message.items) {
            if (item.kind !== 'operator' || epochOf.has(item.targetId)) continue;
            epochOf.set(item.targetId, item.epoch);
            epochWaiters.get(item.targetId)?.(item.epoch);
          }
        }
        receipt(message, ws);
      },
      { policyVersion: 1, revocationEpoch: 0 },
    );
    // A console the loaded machine loses is counted (and the round waiting for it fails), never a crash.
    lean.ws.on('error', () => undefined);
    lean.ws.on('close', () => (dropped += 1));
    return lean;
  });
  const epochFor = (operatorId: string) =>
    new Promise<number>((resolve) => {
      const known = epochOf.get(operatorId);
      if (known !== undefined) resolve(known);
      else epochWaiters.set(operatorId, resolve);
    });

  console.log(
    `backend pid ${backend.child.pid} at ${backend.url} (durability "${backend.durability}"); ${fmtInt(CONSOLES)} consoles connected; ` +
      `${ROUNDS} rounds (+1 warm-up); clock offset to backend ${fmt(backend.clockOffsetMs, 3)} ms`,
  );

  type Round = {
    accepted: number;
    allReceived: number;
    allAcked: number;
    perConsole: number[];
    /** Where the time went, ms from the POST (undefined when the child did not see it). */
    revokeEntered?: number | undefined;
    firstWritten?: number | undefined;
    lastWritten?: number | undefined;
    /** This process's CPU from the POST until every console had received: the consoles' own reading and acks. */
    consolesCpuMs: number;
  };
  /** One revocation, timed from just before `start()` until every console received and every ack committed. */
  const timed = async (operatorId: string, start: () => Promise<{ status: number; text: string }>, expect: number) => {
    const cpu0 = process.cpuUsage();
    const t0 = wallMs();
    const answer = await start();
    const t1 = wallMs();
    if (answer.status !== expect) throw new Error(`→ ${answer.status} ${answer.text}`);
    const epoch = await epochFor(operatorId);
    if (dropped > 0) throw new Error(`${dropped} console connections were closed by the backend`);
    await receipts.waitFor(epoch, undefined, CONSOLES, ACK_TIMEOUT_MS);
    const cpu = process.cpuUsage(cpu0);
    const times = await waitForAcks([backend], epoch, CONSOLES, ACK_TIMEOUT_MS, { all: true });
    const perConsole = receipts.times(epoch).map((at) => at - t0);
    const acked = (times.acks ?? []).map(([, at]) => at - t0);
    const since = (at: number | undefined) => (at === undefined ? undefined : at - t0);
    return {
      accepted: t1 - t0,
      allReceived: Math.max(...perConsole),
      allAcked: Math.max(...acked),
      perConsole,
      revokeEntered: since(times.startedAt),
      firstWritten: since(times.firstSentAt),
      lastWritten: since(times.lastSentAt),
      consolesCpuMs: (cpu.user + cpu.system) / 1000,
    };
  };
  const adminRevoke = (operatorId: string) =>
    call(`${backend.url}/v1/admin/operators/${operatorId}/revoke`, JSON.stringify({ reason: 'benchmark anchor' }), {
      'content-type': 'application/json',
      authorization: `Bearer ${backend.admin.token}`,
    });
  const rounds: Round[] = [];
  const anchors: Round[] = [];
  for (const [i, operator] of operators.entries()) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const jwt = await sign(operator.email);
    const ssf = await timed(operator.id, () => push(jwt), 202);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const anchor = await timed(anchorOperators[i] ?? '', () => adminRevoke(anchorOperators[i] ?? ''), 200);
    if (i === 0) continue; // warm-up: the first SET loads the key set and the code paths
    rounds.push(ssf);
    anchors.push(anchor);
  }
  await backend.stop();
  const loadAfterBaton = loadLine();
  // The naive anchor in the same run, right after: a plain `ws` server broadcasting one message to as many
  // clients (../shared/anchors/ws-broadcast.mjs, or BENCH_ANCHORS_DIR) until all answered, as many rounds.
  const broadcast = (await runAnchor('ws-broadcast.mjs', [String(CONSOLES), String(ROUNDS)])).find(
    (a) => a.anchor === 'ws-broadcast',
  )?.allAckedMs as { p50: number; p99: number; max: number } | undefined;
  const loadAfterAnchor = loadLine();

  const accepted = summarize(rounds.map((r) => r.accepted));
  const received = summarize(rounds.map((r) => r.allReceived));
  const committed = summarize(rounds.map((r) => r.allAcked));
  const pooled = summarize(rounds.flatMap((r) => r.perConsole));
  const anchorReceived = summarize(anchors.map((r) => r.allReceived));
  const anchorCommitted = summarize(anchors.map((r) => r.allAcked));
  printTable(
    `inbound account-disabled, ${rounds.length} rounds, ${fmtInt(CONSOLES)} consoles; ms from the POST`,
    ['measure', 'p50', 'p95', 'p99', 'max'],
    [
      ['transmitter got 202', fmt(accepted.p50, 1), fmt(accepted.p95, 1), fmt(accepted.p99, 1), fmt(accepted.max, 1)],
      [
        'every console received + acknowledged',
        fmt(received.p50, 1),
        fmt(received.p95, 1),
        fmt(received.p99, 1),
        fmt(received.max, 1),
      ],
      [
        'every acknowledgement committed',
        fmt(committed.p50, 1),
        fmt(committed.p95, 1),
        fmt(committed.p99, 1),
        fmt(committed.max, 1),
      ],
      [
        'anchor: admin revoke, every console received',
        fmt(anchorReceived.p50, 1),
        fmt(anchorReceived.p95, 1),
        fmt(anchorReceived.p99, 1),
        fmt(anchorReceived.max, 1),
      ],
      [
        'anchor: admin revoke, every ack committed',
        fmt(anchorCommitted.p50, 1),
        fmt(anchorCommitted.p95, 1),
        fmt(anchorCommitted.p99, 1),
        fmt(anchorCommitted.max, 1),
      ],
      [
        `per console received (${fmtInt(pooled.n)})`,
        fmt(pooled.p50, 1),
        fmt(pooled.p95, 1),
        fmt(pooled.p99, 1),
        fmt(pooled.max, 1),
      ],
    ],
  );
  // Where the time of an SET round went: Baton's part ends with the last console's frame written; after
  // that, what remains is this process reading 1,000 sockets and answering each (the simulated consoles
  // share one process and one core, where real ones would each have their own).
  const at = (pick: (r: Round) => number | undefined) =>
    summarize(rounds.map(pick).filter((v): v is number => v !== undefined));
  const sorted = (r: Round) => [...r.perConsole].sort((a, b) => a - b);
  const timeline: [string, Summary][] = [
    ['backend: revoke entered (SET validated, subject mapped)', at((r) => r.revokeEntered)],
    ['backend: first console frame written (revocation committed)', at((r) => r.firstWritten)],
    ['backend: last console frame written', at((r) => r.lastWritten)],
    ['consoles: first received', at((r) => sorted(r)[0])],
    ['consoles: half received', at((r) => sorted(r)[Math.floor(r.perConsole.length / 2)])],
    ['consoles: every one received', received],
    ["this process's CPU meanwhile (the consoles' reading and acks)", at((r) => r.consolesCpuMs)],
  ];
  printTable(
    `where an SET round's time goes, ms from the POST (${rounds.length} rounds)`,
    ['milestone', 'p50', 'p99', 'max'],
    timeline.map(([name, v]) => [name, fmt(v.p50, 1), fmt(v.p99, 1), fmt(v.max, 1)]),
  );
  const ratio = (ours: number, theirs: number | undefined) =>
    theirs === undefined || theirs <= 0 ? 'n/a' : `${fmt(ours / theirs, 2)}×`;
  printTable(
    `same-run anchor: ws-broadcast.mjs ${CONSOLES} ${ROUNDS} (a plain ws server, one message to every client, all answered)`,
    ['measure', 'p50', 'p99', 'max', 'Baton ÷ anchor p50', 'Baton ÷ anchor p99'],
    [
      [
        'anchor: all acked',
        fmt(broadcast?.p50 ?? Number.NaN, 1),
        fmt(broadcast?.p99 ?? Number.NaN, 1),
        fmt(broadcast?.max ?? Number.NaN, 1),
        '',
        '',
      ],
      [
        'Baton: SET → every console received + acknowledged',
        fmt(received.p50, 1),
        fmt(received.p99, 1),
        fmt(received.max, 1),
        ratio(received.p50, broadcast?.p50),
        ratio(received.p99, broadcast?.p99),
      ],
      [
        'Baton: admin revoke → every console received',
        fmt(anchorReceived.p50, 1),
        fmt(anchorReceived.p99, 1),
        fmt(anchorReceived.max, 1),
        ratio(anchorReceived.p50, broadcast?.p50),
        ratio(anchorReceived.p99, broadcast?.p99),
      ],
    ],
  );
  console.log(`${loadStart} at the start; ${loadAfterBaton} after Baton's rounds; ${loadAfterAnchor} after the anchor`);
  printTable(
    'goal',
    ['goal', 'measured', 'verdict'],
    [
      [
        `every console acknowledged, p99 ≤ ${GOAL_P99_MS} ms (${fmtInt(CONSOLES)} consoles)`,
        `${fmt(received.p99, 1)} ms`,
        verdict(received.p99 <= GOAL_P99_MS),
      ],
      [
        `every acknowledgement committed, p99 ≤ ${GOAL_P99_MS} ms`,
        `${fmt(committed.p99, 1)} ms`,
        verdict(committed.p99 <= GOAL_P99_MS),
      ],
    ],
  );
  printJsonLine('ssf-inbound', {
    consoles: CONSOLES,
    rounds: rounds.length,
    accepted,
    allReceived: received,
    allAckCommitted: committed,
    adminRevokeAllReceived: anchorReceived,
    timeline: Object.fromEntries(timeline.map(([name, v]) => [name, v])),
    wsBroadcastAllAcked: broadcast ?? null,
    load: { start: loadStart, afterBaton: loadAfterBaton, afterAnchor: loadAfterAnchor },
  });
}

await main();
