/**
 * Revocation fan-out to 10,000 consoles connected over loopback WebSockets. The backend runs in a
 * child process (started with --expose-gc), the consoles in this one. Each console says `hello`,
 * and on a `revocation` message immediately answers `{type:'ack', of:'revocation', epoch}`.
 *
 * (a) single-console: POST /v1/admin/sessions/:id/revoke for a session on one console → that
 *     console receives it → the backend commits its acknowledgement.
 * (b) every console: POST /v1/admin/operators/:id/revoke (pushed to all connected consoles) → all
 *     10,000 received → all 10,000 acknowledgements committed.
 * (c) backend memory per connection: RSS and heapUsed after a full GC, before and after connecting.
 *
 * Consoles are inserted straight into the backend's store (`store.consoles.insert`, real P-256 keys)
 * to save the 20,000 enrolment requests; every WebSocket upgrade is still signed and verified.
 *
 *   node --import tsx bench/revocation-fanout.ts [--consoles 10000] [--samples 200] [--rounds 10]
 */
import { parseArgs } from 'node:util';
import { newId } from '../backend/crypto/secrets.js';
import { ConsoleKey } from '../main/core/console-key.js';
import { TestConsole, type Json } from '../test/helpers/backend-harness.js';
import { enrolOperator, signIn } from '../test/helpers/operator-flow.js';
import { BackendProcess } from './lib/backend-process.js';
import { ensureFileLimit } from './lib/fd-limit.js';
import { RevocationReceipts, waitForAcks } from './lib/revocation-receipts.js';
import { fmt, fmtInt, heading, printTable, seededRandom, summarize, verdict, wallMs } from './lib/report.js';
import { BareConsole, connectConsole, mapLimit } from './lib/ws-console.js';

const { values: args } = parseArgs({
  options: {
    consoles: { type: 'string', default: '10000' },
    samples: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '10' },
    'ack-timeout': { type: 'string', default: '30' },
  },
});
const CONSOLES = Number(args.consoles);
const SAMPLES = Number(args.samples);
const ROUNDS = Number(args.rounds);
const ACK_TIMEOUT_MS = Number(args['ack-timeout']) * 1000;
const GOAL_SINGLE_P99_MS = 20;
const GOAL_ALL_P99_MS = 250;
const GOAL_BYTES_PER_CONNECTION = 12 * 1024;

interface ChildMemory {
  memory: NodeJS.MemoryUsage;
  connections: number;
}

/** When each console received each epoch (this process's wall clock). */
const receipts = new RevocationReceipts();

const kib = (bytes: number) => `${fmt(bytes / 1024, 1)} KiB`;
const mib = (bytes: number) => `${fmt(bytes / 2 ** 20, 1)} MiB`;

async function main(): Promise<void> {
  // Each process holds one socket per console, plus files, the IPC channel and some slack.
  const files = ensureFileLimit(CONSOLES + 1024);
  heading('revocation fan-out');
  const backend = await BackendProcess.start();
  await backend.request('instrument-revocations');
  console.log(
    `backend pid ${backend.child.pid} at ${backend.url} (durability "${backend.durability}"), clients in pid ${process.pid}; ` +
      `${fmtInt(CONSOLES)} consoles, ${SAMPLES} single-console samples, ${ROUNDS} all-console rounds; ` +
      `clock offset to backend ${fmt(backend.clockOffsetMs, 3)} ms; ulimit -n ${files.soft} (hard ${files.hard})`,
  );

  // Consoles: real P-256 keys, records inserted directly into the backend's store.
  let t = performance.now();
  const consoles = Array.from({ length: CONSOLES }, () => new BareConsole(newId('con'), ConsoleKey.generate()));
  for (let i = 0; i < consoles.length; i += 1000) {
    await backend.request('insert-consoles', {
      consoles: consoles.slice(i, i + 1000).map((c) => ({ id: c.id, publicJwk: c.key.publicJwk() })),
    });
  }
  const setupKeys = (performance.now() - t) / 1000;
  const before = await backend.request<ChildMemory>('memory');

  t = performance.now();
  await mapLimit(consoles, 100, (c) =>
    connectConsole(backend.url, c, receipts.handler(c.id), { policyVersion: 1, revocationEpoch: 0 }),
  );
  const connectSeconds = (performance.now() - t) / 1000;
  const after = await backend.request<ChildMemory>('memory');
  console.log(
    `${fmtInt(CONSOLES)} keys generated and inserted in ${fmt(setupKeys, 1)}s; ` +
      `${fmtInt(after.connections)} signed WebSocket upgrades + hello in ${fmt(connectSeconds, 1)}s ` +
      `(${fmtInt(CONSOLES / connectSeconds)}/s)`,
  );
  if (after.connections !== CONSOLES) throw new Error(`only ${after.connections} consoles connected`);

  // (a) Single-console revocations: one operator signs in on SAMPLES distinct consoles, then each
  // session is revoked and timed on its own.
  const random = seededRandom(42);
  const picked = new Set<number>();
  while (picked.size < Math.min(SAMPLES, CONSOLES)) picked.add(Math.floor(random() * CONSOLES));
  const sampleConsoles = [...picked].map((i) => {
    const c = consoles[i] as BareConsole;
    return new TestConsole(backend.url, c.key, c.id);
  });
  const first = sampleConsoles[0] as TestConsole;
  const { authenticator } = await enrolOperator(backend.admin, first, { displayName: 'Fan Out' });
  const sessions: { console: TestConsole; sessionId: string }[] = [];
  for (const console of sampleConsoles) {
    const result = await signIn(console, authenticator);
    if (result.status !== 200) throw new Error(`sign-in → ${result.status} ${JSON.stringify(result.body)}`);
    sessions.push({ console, sessionId: (result.body as Json).session.id as string });
  }
  const singleReceived: number[] = [];
  const singleAcked: number[] = [];
  const singleCall: number[] = [];
  for (const { console, sessionId } of sessions) {
    const t0 = wallMs();
    const body = (await backend.admin.ok('POST', `/v1/admin/sessions/${sessionId}/revoke`, {
      reason: 'benchmark',
    })) as Json;
    const t1 = wallMs();
    const epoch = body.epoch as number;
    if (body.pushedTo !== 1) throw new Error(`session revocation pushed to ${body.pushedTo as number} consoles`);
    await receipts.waitFor(epoch, console.id, 1, 5000);
    const times = await waitForAcks([backend], epoch, 1, 5000, { consoleId: console.id });
    singleCall.push(t1 - t0);
    singleReceived.push(receipts.at(epoch, console.id) - t0);
    singleAcked.push((times.consoleAt ?? Number.NaN) - t0);
  }

  // (b) All-console revocations: operators revoked one per round; each push goes to every console.
  const operators: string[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const { operator } = (await backend.admin.ok('POST', '/v1/admin/operators', {
      displayName: `Round ${i}`,
      roles: ['teller'],
    })) as Json;
    operators.push(operator.id as string);
  }
  const rounds: {
    call: number;
    backendRevoke: number;
    allReceived: number;
    allAcked: number;
    perConsole: number[];
    perAck: number[];
    pushedTo: number;
  }[] = [];
  for (const operatorId of operators) {
    await new Promise((resolve) => setTimeout(resolve, 300));
    const t0 = wallMs();
    const body = (await backend.admin.ok('POST', `/v1/admin/operators/${operatorId}/revoke`, {
      reason: 'benchmark',
    })) as Json;
    const t1 = wallMs();
    const epoch = body.epoch as number;
    await receipts.waitFor(epoch, undefined, CONSOLES, ACK_TIMEOUT_MS);
    const times = await waitForAcks([backend], epoch, CONSOLES, ACK_TIMEOUT_MS, { all: true });
    const perConsole = receipts.times(epoch).map((at) => at - t0);
    const perAck = (times.acks ?? []).map(([, at]) => at - t0);
    rounds.push({
      call: t1 - t0,
      backendRevoke: (times.returnedAt ?? Number.NaN) - (times.startedAt ?? Number.NaN),
      allReceived: Math.max(...perConsole),
      allAcked: Math.max(...perAck),
      perConsole,
      perAck,
      pushedTo: body.pushedTo as number,
    });
  }
  const end = await backend.request<ChildMemory>('memory');
  await backend.stop();

  // ---- report ----
  const sCall = summarize(singleCall);
  const sRecv = summarize(singleReceived);
  const sAck = summarize(singleAcked);
  printTable(
    `(a) single-console revocation (POST /v1/admin/sessions/:id/revoke), ${sRecv.n} samples, ms from the call`,
    ['measure', 'p50', 'p95', 'p99', 'max'],
    [
      ['HTTP response to the admin', fmt(sCall.p50, 2), fmt(sCall.p95, 2), fmt(sCall.p99, 2), fmt(sCall.max, 2)],
      ['console received it', fmt(sRecv.p50, 2), fmt(sRecv.p95, 2), fmt(sRecv.p99, 2), fmt(sRecv.max, 2)],
      ['backend committed the ack', fmt(sAck.p50, 2), fmt(sAck.p95, 2), fmt(sAck.p99, 2), fmt(sAck.max, 2)],
    ],
  );

  printTable(
    `(b) revocation pushed to every console (POST /v1/admin/operators/:id/revoke), ms from the call`,
    [
      'round',
      'pushed to',
      'revoke() in backend',
      'HTTP response',
      'received p50',
      'received p99',
      'all received',
      'all acks committed',
    ],
    rounds.map((r, i) => {
      const s = summarize(r.perConsole);
      return [
        String(i + 1),
        fmtInt(r.pushedTo),
        fmt(r.backendRevoke, 1),
        fmt(r.call, 1),
        fmt(s.p50, 1),
        fmt(s.p99, 1),
        fmt(r.allReceived, 1),
        fmt(r.allAcked, 1),
      ];
    }),
  );
  const allReceived = summarize(rounds.map((r) => r.allReceived));
  const allAcked = summarize(rounds.map((r) => r.allAcked));
  const pooled = summarize(rounds.flatMap((r) => r.perConsole));
  const pooledAck = summarize(rounds.flatMap((r) => r.perAck));
  printTable(
    `(b) over ${rounds.length} rounds`,
    ['measure', 'p50', 'p99', 'max'],
    [
      ['time until all consoles received', fmt(allReceived.p50, 1), fmt(allReceived.p99, 1), fmt(allReceived.max, 1)],
      ['time until all acks committed', fmt(allAcked.p50, 1), fmt(allAcked.p99, 1), fmt(allAcked.max, 1)],
      [
        `per console received (${fmtInt(pooled.n)} deliveries)`,
        fmt(pooled.p50, 1),
        fmt(pooled.p99, 1),
        fmt(pooled.max, 1),
      ],
      [
        `per console ack committed (${fmtInt(pooledAck.n)})`,
        fmt(pooledAck.p50, 1),
        fmt(pooledAck.p99, 1),
        fmt(pooledAck.max, 1),
      ],
    ],
  );

  const rssPer = (after.memory.rss - before.memory.rss) / CONSOLES;
  const heapPer = (after.memory.heapUsed - before.memory.heapUsed) / CONSOLES;
  printTable(
    '(c) backend memory after a full GC',
    ['when', 'connections', 'RSS', 'heapUsed', 'external+arrayBuffers'],
    [
      [
        'before connecting',
        fmtInt(before.connections),
        mib(before.memory.rss),
        mib(before.memory.heapUsed),
        mib(before.memory.external + before.memory.arrayBuffers),
      ],
      [
        'after connecting',
        fmtInt(after.connections),
        mib(after.memory.rss),
        mib(after.memory.heapUsed),
        mib(after.memory.external + after.memory.arrayBuffers),
      ],
      [
        `after ${SAMPLES + ROUNDS} revocations`,
        fmtInt(end.connections),
        mib(end.memory.rss),
        mib(end.memory.heapUsed),
        mib(end.memory.external + end.memory.arrayBuffers),
      ],
      [
        'per connection',
        '',
        kib(rssPer),
        kib(heapPer),
        kib(
          (after.memory.external + after.memory.arrayBuffers - before.memory.external - before.memory.arrayBuffers) /
            CONSOLES,
        ),
      ],
    ],
  );

  printTable(
    'goals',
    ['goal', 'measured', 'verdict'],
    [
      [
        `(a) single console: received, p99 ≤ ${GOAL_SINGLE_P99_MS} ms`,
        `${fmt(sRecv.p99, 2)} ms`,
        verdict(sRecv.p99 <= GOAL_SINGLE_P99_MS),
      ],
      [
        `(a) single console: ack committed, p99 ≤ ${GOAL_SINGLE_P99_MS} ms`,
        `${fmt(sAck.p99, 2)} ms`,
        verdict(sAck.p99 <= GOAL_SINGLE_P99_MS),
      ],
      [
        `(b) all ${fmtInt(CONSOLES)} received, p99 over rounds ≤ ${GOAL_ALL_P99_MS} ms`,
        `${fmt(allReceived.p99, 1)} ms`,
        verdict(allReceived.p99 <= GOAL_ALL_P99_MS),
      ],
      [
        `(b) all ${fmtInt(CONSOLES)} acks committed, p99 ≤ ${GOAL_ALL_P99_MS} ms`,
        `${fmt(allAcked.p99, 1)} ms`,
        verdict(allAcked.p99 <= GOAL_ALL_P99_MS),
      ],
      [
        `(c) RSS per connection ≤ ${GOAL_BYTES_PER_CONNECTION / 1024} KiB`,
        kib(rssPer),
        verdict(rssPer <= GOAL_BYTES_PER_CONNECTION),
      ],
      [
        `(c) heapUsed per connection ≤ ${GOAL_BYTES_PER_CONNECTION / 1024} KiB`,
        kib(heapPer),
        verdict(heapPer <= GOAL_BYTES_PER_CONNECTION),
      ],
    ],
  );
}

await main();
