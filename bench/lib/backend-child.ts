/**
 * A Baton backend in its own process for the benchmarks. Started by `spawnBackend` (backend-process.ts)
 * with an IPC channel; it starts the real backend (`startBackend`) and answers a few commands that
 * need no HTTP endpoint: memory use after a full GC, direct console inserts, clock reads, CPU and
 * event-loop readings, and the revocation timings it observes. Nothing here changes what the
 * backend does with a request.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import pino from 'pino';
import { parseBackendConfig } from '../../backend/config.js';
import { jwkThumbprint } from '../../backend/crypto/console-signature.js';
import { startBackend, type Backend } from '../../backend/server.js';
import type { ConsoleRecord } from '../../backend/store/repositories.js';
import type { P256PublicJwk } from '../../shared/http-api.js';
import { TEST_ORIGIN } from '../../test/helpers/backend-harness.js';
import type { ChildReply, ChildRequest } from './backend-process.js';
import { wallMs } from './report.js';

interface RevokeCall {
  /** When `revoke` was entered and returned (wall ms, this process's clock). */
  startedAt: number;
  returnedAt: number;
}

const dataDir = process.env.BENCH_DATA_DIR;
if (dataDir === undefined || process.send === undefined) throw new Error('backend-child needs BENCH_DATA_DIR and IPC');

const config = parseBackendConfig(
  {
    host: '127.0.0.1',
    port: 0,
    dataDir,
    origins: [TEST_ORIGIN],
    logLevel: 'silent',
    ...(process.env.BENCH_DURABILITY === undefined ? {} : { durability: process.env.BENCH_DURABILITY }),
    // A shorter console heartbeat than the 15 s default (bench/housekeeping-stall.ts).
    ...(process.env.BENCH_HEARTBEAT_SECONDS === undefined
      ? {}
      : { heartbeatSeconds: Number(process.env.BENCH_HEARTBEAT_SECONDS) }),
    // PostgreSQL instead of the embedded SQLite database in BENCH_DATA_DIR.
    ...(process.env.BENCH_DATABASE_URL === undefined ? {} : { databaseUrl: process.env.BENCH_DATABASE_URL }),
  },
  'bench',
);
const backend: Backend = await startBackend(config, { logger: pino({ level: 'silent' }) });
const revocationTimes = new Map<number, RevokeCall>();
/**
 * When each console's acknowledgement of an epoch was committed to the store. Kept apart from the
 * revoke call's times: an acknowledgement may commit before `revoke` has returned.
 */
const ackCommittedAt = new Map<number, Map<string, number>>();
/** The latest of those commit times, per epoch. */
const lastAckAt = new Map<number, number>();
/**
 * Acknowledgements this node received (handed to the hub by the console channel, before any
 * write), per epoch: how many consoles, and when the last one arrived. What the naive anchor
 * measures ('received in memory'); the commit times above are the stricter measure.
 */
const ackReceived = new Map<number, { count: number; lastAt: number }>();
/** A CPU profile of this node taken between `profile-start` and `profile-stop` (node:inspector). */
let profiler: Session | undefined;
/** The fan-out's multi-row store writes (delivery rows, ack groups): when each started and how long it took. */
const storeWrites: { what: string; rows: number; startedAt: number; ms: number }[] = [];
/** How long the event loop was blocked: what a sign-in or a revocation push arriving then would wait. */
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

function send(message: ChildReply): void {
  process.send?.(message);
}

function gcAndMeasure(): NodeJS.MemoryUsage {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('start the backend child with --expose-gc');
  for (let i = 0; i < 4; i++) gc();
  return process.memoryUsage();
}

/** The first and the last console frame of each revocation epoch written by this node (wall ms). */
const framesSent = new Map<number, { first: number; last: number }>();
const REVOCATION_FRAME = Buffer.from('{"type":"revocation","epoch":');

/** The epoch of a revocation message as the hub serialises it, or undefined for any other message. */
function revocationEpochOf(data: string | Buffer): number | undefined {
  const bytes = typeof data === 'string' ? Buffer.from(data.slice(0, 64)) : data;
  if (
    bytes.length <= REVOCATION_FRAME.length ||
    bytes.compare(REVOCATION_FRAME, 0, REVOCATION_FRAME.length, 0, REVOCATION_FRAME.length) !== 0
  )
    return undefined;
  let epoch = 0;
  for (let i = REVOCATION_FRAME.length; i < bytes.length; i++) {
    const digit = (bytes[i] ?? 0) - 0x30;
    if (digit < 0 || digit > 9) return i === REVOCATION_FRAME.length ? undefined : epoch;
    epoch = epoch * 10 + digit;
  }
  return undefined;
}

/** Observes revocations without changing them: wraps the hub's own methods and times them. */
function instrumentRevocations(): void {
  const hub = backend.revocations;
  const revoke = hub.revoke.bind(hub);
  const acknowledge = hub.acknowledge.bind(hub);
  // The hub's console port (given at construction, private): each revocation frame written to a console is
  // timed by the epoch it carries (read from its first bytes), so the push loop's first and last write are
  // known per epoch, whatever else is pushed meanwhile, without touching the hub.
  const pusher = (hub as unknown as { pusher: { sendRaw(id: string, data: string | Buffer): boolean } }).pusher;
  const sendRaw = pusher.sendRaw.bind(pusher);
  pusher.sendRaw = (consoleId: string, data: string | Buffer) => {
    const sent = sendRaw(consoleId, data);
    if (sent) {
      const epoch = revocationEpochOf(data);
      if (epoch !== undefined) {
        const at = wallMs();
        const seen = framesSent.get(epoch);
        if (seen === undefined) framesSent.set(epoch, { first: at, last: at });
        else seen.last = at;
      }
    }
    return sent;
  };
  hub.revoke = async (...args: Parameters<typeof hub.revoke>) => {
    const startedAt = wallMs();
    const outcome = await revoke(...args);
    revocationTimes.set(outcome.revocation.epoch, { startedAt, returnedAt: wallMs() });
    return outcome;
  };
  // The store writes behind a fan-out, timed as they run (what each costs, and how many rows it took).
  const repo = backend.store.revocations;
  const recordDeliveries = repo.recordDeliveries.bind(repo);
  const recordAcks = repo.recordAcks.bind(repo);
  repo.recordDeliveries = async (epoch, consoleIds, at) => {
    const t0 = wallMs();
    await recordDeliveries(epoch, consoleIds, at);
    if (consoleIds.length > 1)
      storeWrites.push({ what: 'deliveries', rows: consoleIds.length, startedAt: t0, ms: wallMs() - t0 });
  };
  // An acknowledgement is committed when the store write that carries it returns (exactly the acks it
  // wrote, whatever flush or retry wrote them).
  repo.recordAcks = async (acks) => {
    const t0 = wallMs();
    await recordAcks(acks);
    const at = wallMs();
    if (acks.length > 1) storeWrites.push({ what: 'acks', rows: acks.length, startedAt: t0, ms: at - t0 });
    for (const { consoleId, epoch } of acks) {
      let times = ackCommittedAt.get(epoch);
      if (times === undefined) ackCommittedAt.set(epoch, (times = new Map()));
      if (!times.has(consoleId)) {
        times.set(consoleId, at);
        lastAckAt.set(epoch, at);
      }
    }
  };
  hub.acknowledge = (consoleId: string, epoch: number) => {
    // A count and a time only (each console acknowledges an epoch once in these benchmarks): this runs in
    // the node being measured, once per ack.
    const received = ackReceived.get(epoch);
    if (received === undefined) ackReceived.set(epoch, { count: 1, lastAt: wallMs() });
    else {
      received.count++;
      received.lastAt = wallMs();
    }
    return acknowledge(consoleId, epoch);
  };
}

// If the benchmark dies, do not linger holding ports, sockets and the data directory.
process.on('disconnect', () => process.exit(1));

process.on('message', (raw: unknown) => {
  const request = raw as ChildRequest;
  const reply = (body: Record<string, unknown>) => send({ type: 'reply', id: request.id, ...body });
  try {
    switch (request.command) {
      case 'clock':
        reply({ now: wallMs() });
        return;
      case 'memory':
        reply({ memory: gcAndMeasure(), connections: backend.channel.connectionCount });
        return;
      case 'cpu':
        reply({ cpu: process.cpuUsage(), at: wallMs() });
        return;
      case 'elu':
        // Event-loop utilisation so far (busy vs idle ms); the parent diffs two readings.
        reply({ elu: performance.eventLoopUtilization() });
        return;
      case 'loop-delay':
        reply({
          maxMs: loopDelay.max / 1e6,
          p99Ms: loopDelay.percentile(99) / 1e6,
          meanMs: loopDelay.mean / 1e6,
        });
        if (request.reset === true) loopDelay.reset();
        return;
      case 'connections':
        reply({ connections: backend.channel.connectionCount });
        return;
      case 'insert-consoles': {
        const now = Date.now();
        const jwks = request.consoles as { id: string; publicJwk: P256PublicJwk }[];
        const insert = (jkts: string[]) =>
          backend.store.transaction(async (tx) => {
            for (const [i, { id, publicJwk }] of jwks.entries()) {
              const record: ConsoleRecord = {
                id,
                name: null,
                channel: 'branch-kiosk',
                site: null,
                publicJwk: JSON.stringify(publicJwk),
                jkt: jkts[i] ?? '',
                enrolledAt: now,
                lastSeenAt: null,
                policyVersion: 0,
                revocationEpoch: 0,
                revokedAt: null,
                revokedReason: null,
              };
              await tx.consoles.insert(record);
            }
          });
        void Promise.all(jwks.map((c) => jwkThumbprint(c.publicJwk)))
          .then(async (jkts) => {
            await insert(jkts);
            reply({ inserted: jwks.length });
          })
          .catch((error: unknown) => reply({ error: error instanceof Error ? error.stack : String(error) }));
        return;
      }
      case 'instrument-revocations':
        instrumentRevocations();
        reply({});
        return;
      case 'revocation-times': {
        // Counts by default (cheap to poll); `consoleId`: that console's commit time; `all`: every one.
        const epoch = request.epoch as number;
        const times = revocationTimes.get(epoch);
        const frames = framesSent.get(epoch);
        const acks = ackCommittedAt.get(epoch);
        const consoleAt = typeof request.consoleId === 'string' ? acks?.get(request.consoleId) : undefined;
        reply({
          // Not found: revoked on another node (cluster); the acknowledgements this node committed still count.
          found: times !== undefined,
          ...(times === undefined ? {} : { startedAt: times.startedAt, returnedAt: times.returnedAt }),
          // This node's push of the epoch (a node that did not take the revoke call pushes too).
          ...(frames === undefined ? {} : { firstSentAt: frames.first, lastSentAt: frames.last }),
          count: acks?.size ?? 0,
          ...(acks === undefined ? {} : { lastAt: lastAckAt.get(epoch) }),
          receivedCount: ackReceived.get(epoch)?.count ?? 0,
          ...(ackReceived.has(epoch) ? { receivedLastAt: ackReceived.get(epoch)?.lastAt } : {}),
          ...(consoleAt === undefined ? {} : { consoleAt }),
          ...(request.all === true ? { acks: [...(acks?.entries() ?? [])] } : {}),
        });
        return;
      }
      case 'profile-start':
        // A CPU profile of this node from now until `profile-stop` (only the part of a run one wants).
        profiler = new Session();
        profiler.connect();
        void profiler
          .post('Profiler.enable')
          .then(() => profiler?.post('Profiler.setSamplingInterval', { interval: 200 }))
          .then(() => profiler?.post('Profiler.start'))
          .then(() => reply({}))
          .catch((error: unknown) => reply({ error: String(error) }));
        return;
      case 'profile-stop': {
        const session = profiler;
        profiler = undefined;
        if (session === undefined) {
          reply({ error: 'no profile-start' });
          return;
        }
        void session
          .post('Profiler.stop')
          .then(({ profile }) => {
            writeFileSync(request.file as string, JSON.stringify(profile));
            session.disconnect();
            reply({});
          })
          .catch((error: unknown) => reply({ error: String(error) }));
        return;
      }
      case 'store-writes':
        // The multi-row revocation writes since the last call (then forgotten).
        reply({ writes: storeWrites.splice(0) });
        return;
      case 'stop':
        void backend.stop().then(() => {
          reply({});
          process.exit(0);
        });
        return;
    }
  } catch (error) {
    reply({ error: error instanceof Error ? error.stack : String(error) });
  }
});

send({
  type: 'ready',
  url: backend.url,
  port: backend.port,
  adminToken: backend.bootstrapAdminToken ?? '',
  durability: config.durability,
});
