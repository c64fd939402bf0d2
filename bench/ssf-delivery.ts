/**
 * Shared Signals transmitter delivery (issue 13, docs/benchmarks.md "Shared Signals"). The backend
 * runs in this process on a fresh embedded store; the receivers are loopback HTTP servers here that
 * answer 202 at once (verifying is the receiver's cost, not the transmitter's).
 *
 * (a) revocation → SET accepted: POST /v1/admin/sessions/:id/revoke → the receiver has the
 *     `session-revoked` SET for that session (wall clock, this process), p50/p95/p99.
 * (b) sustained delivery to 4 push receivers: consoles send `session-locked` events (one batch per
 *     console) that every stream requested; from the first send to every receiver holding every SET:
 *     SETs/s, and per CPU-second. The receivers run in a child process (bench/ssf-loopback-receivers.ts):
 *     "whole process" is this process's CPU (backend ingesting the consoles' events, the consoles, the
 *     transmitter); "transmitter alone" subtracts (b0), the same events sent and ingested in the same run
 *     before any stream asks for them; "with receivers" adds the child's CPU.
 * (c) signing cost per SET, as the transmitter signs (backend/ssf/set.ts `signSet`: node:crypto with the
 *     ring's cached KeyObject), and in the same run: jose `SignJWT` of the same claims with the same key,
 *     and the raw signature alone (`crypto.sign` of a SET-sized input: the floor for this algorithm and
 *     key on this machine), as signatures per CPU-second.
 *
 *   node --import tsx bench/ssf-delivery.ts [--samples 200] [--events 2000] [--consoles 16] [--algorithm RS256|ES256]
 *     [--profile /tmp/b.cpuprofile]   (a CPU profile of (b) alone)
 */
import { fork } from 'node:child_process';
import { generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { SignJWT } from 'jose';
import { buildSet, signSet, type SetAlgorithm } from '../backend/ssf/set.js';
import { startTestBackend, TestConsole, httpJson, type Json } from '../test/helpers/backend-harness.js';
import { enrolOperator, signIn } from '../test/helpers/operator-flow.js';
import { fmt, fmtInt, heading, measured, printJsonLine, printTable, summarize, verdict, wallMs } from './lib/report.js';

const { values: args } = parseArgs({
  options: {
    samples: { type: 'string', default: '200' },
    events: { type: 'string', default: '2000' },
    consoles: { type: 'string', default: '16' },
    algorithm: { type: 'string', default: 'RS256' },
    /** Writes a CPU profile of (b) alone (not the set-up, (a) or (c)) to this .cpuprofile file. */
    profile: { type: 'string' },
  },
});
const SAMPLES = Number(args.samples);
const EVENTS = Number(args.events);
const CONSOLES = Number(args.consoles);
const ALGORITHM = args.algorithm as SetAlgorithm;
const GOAL_P99_MS = 50;
const GOAL_PER_CORE = 2000;
const PUSH = 'urn:ietf:rfc:8935';
const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
const LOCKED = 'urn:baton:event:session-locked';

/** A loopback push receiver: 202 at once; records when each SET arrived, by event type and subject. */
class LoopbackReceiver {
  server: Server | undefined;
  url = '';
  count = 0;
  readonly revokedAt = new Map<string, number>();
  private waiters: (() => void)[] = [];

  async listen(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        res.writeHead(202).end();
        const now = wallMs();
        const payload = JSON.parse(
          Buffer.from(Buffer.concat(chunks).toString().split('.')[1] ?? '', 'base64url').toString(),
        ) as Json;
        this.count++;
        if (`${CAEP}session-revoked` in payload.events) this.revokedAt.set(payload.sub_id.session?.id as string, now);
        for (const w of this.waiters) w();
      });
    });
    this.server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/events`;
    return this;
  }

  until(predicate: () => boolean, ms = 120_000): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timed out')), ms);
      const check = () => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve();
      };
      this.waiters.push(check);
    });
  }

  close(): Promise<void> {
    this.server?.closeAllConnections();
    return new Promise((resolve) => this.server?.close(() => resolve()));
  }
}

async function main(): Promise<void> {
  heading(`Shared Signals delivery (${ALGORITHM})`);
  const t = await startTestBackend({ ssf: { signingAlgorithm: ALGORITHM, retryBaseMs: 50 } });
  const issued = (await t.admin.ok('POST', '/v1/admin/ssf/receivers', {
    name: 'bench',
    scopes: ['ssf.manage'],
  })) as Json;
  const token = issued.token as string;
  const createStream = async (url: string, events: string[]) => {
    const r = await httpJson(`${t.url}/ssf/streams`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: JSON.stringify({ delivery: { method: PUSH, endpoint_url: url }, events_requested: events }),
    });
    if (r.status !== 201) throw new Error(JSON.stringify(r.body));
  };

  // (a) revocation → SET accepted
  const one = await new LoopbackReceiver().listen();
  await createStream(one.url, [`${CAEP}session-revoked`]);
  const first = await TestConsole.enrol(t.url, t.admin);
  const { authenticator } = await enrolOperator(t.admin, first);
  const latencies: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const console = i === 0 ? first : await TestConsole.enrol(t.url, t.admin);
    const session = ((await signIn(console, authenticator)).body as Json).session.id as string;
    const t0 = wallMs();
    await t.admin.ok('POST', `/v1/admin/sessions/${session}/revoke`, { reason: 'bench' });
    await one.until(() => one.revokedAt.has(session), 10_000);
    latencies.push((one.revokedAt.get(session) as number) - t0);
  }
  const lat = summarize(latencies);
  printTable(
    '(a) revocation issued → session-revoked SET accepted by a loopback receiver (ms)',
    ['n', 'p50', 'p95', 'p99', 'max', `goal p99 ≤ ${GOAL_P99_MS}`],
    [[fmtInt(lat.n), fmt(lat.p50), fmt(lat.p95), fmt(lat.p99), fmt(lat.max), verdict(lat.p99 <= GOAL_P99_MS)]],
  );

  // (b) sustained delivery to 4 push receivers (in a child process: their CPU is counted apart)
  const child = fork(join(import.meta.dirname, 'ssf-loopback-receivers.ts'), ['4'], {
    execArgv: ['--import', 'tsx'],
  });
  const ask = <T>(what: string, pick: (m: Json) => boolean, extra: Json = {}): Promise<T> =>
    new Promise((resolve) => {
      const on = (m: Json) => {
        if (!pick(m)) return;
        child.off('message', on);
        resolve(m as T);
      };
      child.on('message', on);
      if (what !== '') child.send({ ask: what, ...extra });
    });
  const { urls } = await ask<{ urls: string[] }>('', (m) => Array.isArray(m.urls));
  const consoles = await Promise.all(Array.from({ length: CONSOLES }, () => TestConsole.enrol(t.url, t.admin)));
  const sockets = await Promise.all(consoles.map((c) => c.connect()));
  for (const s of sockets) await s.next('welcome');
  const perConsole = Math.ceil(EVENTS / CONSOLES);
  const total = perConsole * CONSOLES * urls.length;
  const sendAll = () =>
    Promise.all(
      consoles.map(async (c, i) => {
        const socket = sockets[i];
        if (socket === undefined) return;
        for (let sent = 0; sent < perConsole; sent += 500) {
          const events = Array.from({ length: Math.min(500, perConsole - sent) }, () =>
            c.nextEvent({ type: 'session-locked', reasons: ['idle'] }),
          );
          socket.send({ type: 'events', events });
          const last = events.at(-1)?.seq ?? 0;
          await socket.next('events-ack', (m: Json) => m.upToSeq >= last);
        }
      }),
    );
  // (b0) the consoles' side alone, same run: the same events sent and ingested before any stream asks for
  // them (the fan-out reads them and maps nothing). Its CPU is subtracted from (b) for "transmitter alone".
  await sendAll(); // warm-up of the ingest path
  const ingest = await measured(async () => {
    await sendAll();
    await new Promise((resolve) => setTimeout(resolve, 300)); // the fan-out reads the last batch
  });
  for (const url of urls) await createStream(url, [LOCKED]);
  const nodeView = async () => ((await t.admin.ok('GET', '/v1/admin/ssf/streams')) as Json).node as Json;
  const signed0 = await nodeView();
  const childCpu0 = (await ask<{ cpuMs: number }>('counts', (m) => typeof m.cpuMs === 'number')).cpuMs;
  let childCpu1 = 0;
  const profiler = args.profile === undefined ? undefined : new Session();
  if (profiler !== undefined) {
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.start');
  }
  const split0 = process.cpuUsage();
  const { wallMs: wall, cpuMs } = await measured(async () => {
    // The receivers say when each holds every SET (no polling from here: this process's CPU is the transmitter's).
    const all = ask<{ cpuMs: number }>('when', (m) => m.done === true, { atLeast: perConsole * CONSOLES });
    // A run that stalls says where (each stream's backlog and last error, each receiver's count) every 30 s.
    const stalled = setInterval(() => {
      void (async () => {
        const { counts } = await ask<{ counts: number[] }>('counts', (m) => Array.isArray(m.counts));
        const { streams } = (await t.admin.ok('GET', '/v1/admin/ssf/streams')) as Json;
        const views = (streams as Json[]).map((v) => `${v.backlog as number} queued, ${String(v.lastError)}`);
        console.error(`(b) not done after 30 s: receivers ${counts.join(', ')}; streams: ${views.join('; ')}`);
      })().catch(() => undefined);
    }, 30_000);
    await sendAll();
    childCpu1 = (await all).cpuMs;
    clearInterval(stalled);
  });
  if (profiler !== undefined && args.profile !== undefined) {
    const { profile } = await profiler.post('Profiler.stop');
    writeFileSync(args.profile, JSON.stringify(profile));
    profiler.disconnect();
  }
  const split = process.cpuUsage(split0);
  const receiversCpuMs = childCpu1 - childCpu0;
  const rate = total / (wall / 1000);
  const perCore = total / (cpuMs / 1000);
  const perCoreAll = total / ((cpuMs + receiversCpuMs) / 1000);
  const signed1 = await nodeView();
  const signedInRun = (signed1.signed as number) - (signed0.signed as number);
  const signingUsInRun =
    signedInRun === 0 ? 0 : (((signed1.signingMs as number) - (signed0.signingMs as number)) * 1000) / signedInRun;

  // (c) signing cost: signSet as the transmitter does, and raw jose, same claims, same key type
  const { privateKey } =
    ALGORITHM === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const claims = buildSet({
    iss: 'https://baton.bank.example',
    aud: 'https://receiver.example',
    type: LOCKED,
    event: { event_timestamp: 1, reasons: ['idle'] },
    subject: { format: 'complex', device: { format: 'opaque', id: 'con_1' } },
    txn: 'txn',
  });
  const n = 2000;
  // CPU time of this process (not wall: the machine may be shared), per SET.
  const cpuUs = (since: NodeJS.CpuUsage) => {
    const used = process.cpuUsage(since);
    return (used.user + used.system) / n;
  };
  let c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) signSet(claims, { kid: 'k', alg: ALGORITHM, privateKey });
  const oursUs = cpuUs(c0);
  c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    await new SignJWT(claims as unknown as Record<string, unknown>)
      .setProtectedHeader({ alg: ALGORITHM, kid: 'k', typ: 'secevent+jwt' })
      .sign(privateKey);
  }
  const joseUs = cpuUs(c0);
  // The raw signature alone, over an input of a SET's size: the floor for this key on this machine.
  const input = Buffer.from(signSet(claims, { kid: 'k', alg: ALGORITHM, privateKey }).split('.').slice(0, 2).join('.'));
  c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    if (ALGORITHM === 'ES256') nodeSign('sha256', input, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    else nodeSign('sha256', input, privateKey);
  }
  const rawUs = cpuUs(c0);
  const events = perConsole * CONSOLES;
  const aloneCpuMs = cpuMs - ingest.cpuMs;
  const perCoreAlone = total / (aloneCpuMs / 1000);
  printTable(
    `(b) sustained push delivery to 4 receivers (${fmtInt(total)} SETs = ${fmtInt(events)} console events × 4 streams, ${CONSOLES} consoles as subjects)`,
    [
      'SETs/s (wall)',
      'SETs per CPU-s, whole process',
      `goal ≥ ${GOAL_PER_CORE}`,
      'SETs per CPU-s, transmitter alone',
      `goal ≥ ${GOAL_PER_CORE}`,
      'with receivers',
      'CPU µs/SET: whole = ingest + transmitter',
      'of which signing (c) + the rest, CPU µs/SET',
    ],
    [
      [
        fmt(rate, 0),
        fmt(perCore, 0),
        verdict(perCore >= GOAL_PER_CORE),
        fmt(perCoreAlone, 0),
        verdict(perCoreAlone >= GOAL_PER_CORE),
        fmt(perCoreAll, 0),
        `${fmt((cpuMs * 1000) / total, 1)} = ${fmt((ingest.cpuMs * 1000) / total, 1)} + ${fmt((aloneCpuMs * 1000) / total, 1)}`,
        `${fmt(oursUs, 1)} + ${fmt((aloneCpuMs * 1000) / total - oursUs, 1)}`,
      ],
    ],
  );
  console.log(
    "   whole process: the backend ingesting the consoles' events, the 16 simulated consoles and the transmitter, all in this",
  );
  console.log(
    `   process; transmitter alone: minus the same run's (b0), the same ${fmtInt(events)} events sent and ingested with no stream`,
  );
  console.log(
    `   asking for them (${fmt(ingest.cpuMs, 0)} CPU ms: ${fmt((ingest.cpuMs * 1000) / events, 1)} µs per console event); receivers: their child process added.`,
  );
  console.log(
    `   (b) CPU of this process: user ${fmt(split.user / total, 1)} + system ${fmt(split.system / total, 1)} µs per SET (system: the kernel's loopback TCP and the SQLite file writes).`,
  );
  printTable(
    `(c) signing cost per SET (${ALGORITHM}), CPU µs (and signatures per CPU-second)`,
    ['signSet (node:crypto, cached KeyObject)', 'jose SignJWT (same key)', 'raw crypto.sign alone (floor)'],
    [
      [
        `${fmt(oursUs, 1)} (${fmt(1e6 / oursUs, 0)}/s)`,
        `${fmt(joseUs, 1)} (${fmt(1e6 / joseUs, 0)}/s)`,
        `${fmt(rawUs, 1)} (${fmt(1e6 / rawUs, 0)}/s)`,
      ],
    ],
  );
  printJsonLine('ssf-delivery', {
    algorithm: ALGORITHM,
    revocationToSet: lat,
    sustained: {
      sets: total,
      wallMs: wall,
      cpuMs,
      receiversCpuMs,
      setsPerSecond: rate,
      setsPerCpuSecond: perCore,
      setsPerCpuSecondWithReceivers: perCoreAll,
      ingestAloneCpuMs: ingest.cpuMs,
      userMicrosPerSet: split.user / total,
      systemMicrosPerSet: split.system / total,
      setsPerCpuSecondTransmitterAlone: perCoreAlone,
      signingMicrosInRun: signingUsInRun,
    },
    signing: { signSetMicros: oursUs, joseMicros: joseUs, rawSignMicros: rawUs },
  });
  for (const s of sockets) void s.close();
  child.send({ ask: 'exit' });
  await one.close();
  await t.stop();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
