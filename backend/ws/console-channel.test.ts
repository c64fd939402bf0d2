import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { WebSocket } from 'ws';
import { GENESIS_HASH, type AssuranceEvent } from '../../shared/events.js';
import { CLOSE_CODES, MAX_EVENTS_PER_BATCH, PROTOCOL_VERSION, type BackendMessage } from '../../shared/protocol.js';
import { InProcessBus } from '../cluster/bus.js';
import type { IngestResult } from '../services/event-log.js';
import { consoleRow } from '../store/test-kit.js';
import { ConsoleChannel, type ConsoleChannelDeps, type ConsoleConnection } from './console-channel.js';
import { ConsoleConnections } from './console-connections.js';

const logger = pino({ level: 'silent' });

/**
 * The channel on a real WebSocket server, every store behind it a stand-in: the event log holds each
 * batch until the test's "database" commits it, so the test sees exactly what the node holds.
 */
async function channelWith(ingest: ConsoleChannelDeps['events']['ingest'], maxPendingEvents: number) {
  const bus = new InProcessBus({ nodeId: 'node-test', logger });
  await bus.start();
  const policy = { version: 1, policy: {}, publishedAt: 0, publishedBy: 'test' };
  const consoles = new ConsoleConnections<ConsoleConnection>();
  const deps = {
    registry: {
      authenticate: (req: { path: string }) =>
        Promise.resolve(consoleRow(new URL(req.path, 'http://x').searchParams.get('console') ?? '', 0)),
      touch: () => undefined,
      flushSoon: () => undefined,
      recordPolicyVersion: () => Promise.resolve(),
    },
    events: {
      ingest,
      head: () => Promise.resolve({ lastSeq: 0, lastHash: GENESIS_HASH }),
      heads: (ids: readonly string[]) =>
        Promise.resolve(new Map(ids.map((id) => [id, { lastSeq: 0, lastHash: GENESIS_HASH }]))),
    },
    policies: { version: policy, onPublish: () => () => undefined },
    revocations: {
      currentEpoch: () => Promise.resolve(0),
      catchUp: () => Promise.resolve([]),
      acknowledge: () => true,
    },
    sessions: { consoleEventEffect: () => undefined },
    commands: {
      pending: () => Promise.resolve([]),
      pendingFor: (ids: readonly string[]) => Promise.resolve(new Map(ids.map((id) => [id, []]))),
      acknowledge: () => Promise.resolve(),
    },
    logger,
    clock: Date.now,
    heartbeatSeconds: 15,
    helloTimeoutSeconds: 10,
    consoles,
    bus,
    freshness: {
      state: () => ({ stale: false, since: undefined, reason: undefined }),
      onChange: () => () => undefined,
    },
    maxPendingEvents,
  } as unknown as ConsoleChannelDeps;
  const channel = new ConsoleChannel(deps);
  const server: Server = createServer();
  server.on('upgrade', (req, socket, head) => channel.handleUpgrade(req, socket, head));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/v1/console/ws`;
  return {
    url,
    consoles,
    close: async () => {
      await channel.close();
      await new Promise((resolve) => server.close(resolve));
      await bus.close();
    },
  };
}

/** The agent's hello for a console holding policy 1 and no revocation. */
const HELLO = JSON.stringify({
  type: 'hello',
  protocol: PROTOCOL_VERSION,
  policyVersion: 1,
  revocationEpoch: 0,
  agentVersion: 'test',
});

/** An `events` message of `n` events, the first after seq `after`. */
function eventsBatch(after: number, n: number): string {
  const events = Array.from(
    { length: n },
    (_, i): AssuranceEvent => ({
      id: randomUUID(),
      seq: after + i + 1,
      time: Date.now(),
      type: 'agent-online',
      subject: {},
      outcome: 'info',
      reasons: ['started'],
      prevHash: GENESIS_HASH,
    }),
  );
  return JSON.stringify({ type: 'events', events });
}

/** A console that says hello, then sends its whole backlog at once (more than its window: the node stops reading it). */
async function pushBacklog(url: string, batches: number, perBatch: number): Promise<{ acked: Promise<number> }> {
  const id = `con_${randomUUID().slice(0, 8)}`;
  const ws = new WebSocket(`${url}?console=${id}`);
  const messages: BackendMessage[] = [];
  let onMessage = (): void => undefined;
  ws.on('message', (data) => {
    messages.push(JSON.parse((data as Buffer).toString('utf8')) as BackendMessage);
    onMessage();
  });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const welcomed = new Promise<void>((resolve) => {
    onMessage = () => {
      if (messages.some((m) => m.type === 'welcome')) resolve();
    };
  });
  ws.send(HELLO);
  // As the agent does, it sends its backlog once welcomed (all of it at once: more than its window).
  await welcomed;
  for (let b = 0; b < batches; b++) ws.send(eventsBatch(b * perBatch, perBatch));
  const acked = new Promise<number>((resolve, reject) => {
    onMessage = () => {
      const last = messages.at(-1);
      if (last?.type === 'error') reject(new Error(`console ${id} refused: ${last.code}`));
      const acks = messages.filter((m) => m.type === 'events-ack');
      if (acks.length === batches) {
        ws.close();
        resolve(acks.length * perBatch);
      }
    };
  });
  return { acked };
}

describe('console channel: the node-wide bound on events awaiting commit', () => {
  const BOUND = 2_000;
  let held: { events: number; resolve: (r: IngestResult) => void; upToSeq: number }[] = [];
  let holding = 0;
  let most = 0;
  let commitScheduled = false;
  /** The "database": commits one batch per turn of the event loop, slower than the consoles send. */
  const commitOne = () => {
    commitScheduled = false;
    const batch = held.shift();
    if (batch === undefined) return;
    holding -= batch.events;
    batch.resolve({ upToSeq: batch.upToSeq, inserted: batch.events, findings: [] });
    if (held.length > 0) scheduleCommit();
  };
  const scheduleCommit = () => {
    if (commitScheduled) return;
    commitScheduled = true;
    setImmediate(commitOne);
  };
  let channel: Awaited<ReturnType<typeof channelWith>>;

  before(async () => {
    channel = await channelWith(
      (_origin, events) =>
        new Promise<IngestResult>((resolve) => {
          held.push({ events: events.length, resolve, upToSeq: events.at(-1)?.seq ?? 0 });
          holding += events.length;
          most = Math.max(most, holding);
          scheduleCommit();
        }),
      BOUND,
    );
  });
  after(() => channel.close());

  it('holds at most its bound (and about one batch) of all consoles’ events, and reads every console again in turn until all are stored', async () => {
    held = [];
    holding = 0;
    most = 0;
    // 40 consoles reconnecting with backlogs: 40 × 4 batches of 100 events fit in their windows, 16,000 events.
    const consoles = await Promise.all(Array.from({ length: 40 }, () => pushBacklog(channel.url, 8, 100)));
    const acked = await Promise.all(consoles.map((c) => c.acked));
    assert.equal(
      acked.reduce((a, b) => a + b, 0),
      40 * 8 * 100,
      'every batch of every console was stored and acknowledged',
    );
    assert.ok(most >= BOUND, `the consoles did fill the node to its bound (${most} events held at most)`);
    assert.ok(
      most <= BOUND + MAX_EVENTS_PER_BATCH,
      `the node held ${most} events awaiting commit at once; its bound is ${BOUND}`,
    );
  });
});

describe('console channel: a console held back at the bound is still closed properly', () => {
  const BOUND = 200;
  /** Each batch the "database" was handed (it never commits them: the node stays at its bound). */
  let onIngest: (() => void) | undefined;
  let channel: Awaited<ReturnType<typeof channelWith>>;
  before(async () => {
    channel = await channelWith(() => {
      onIngest?.();
      return new Promise<IngestResult>(() => undefined);
    }, BOUND);
  });
  after(() => channel.close());

  /** A console welcomed, then 3 batches of 100 events: the node takes 2 (its bound) and holds it back. */
  async function heldBack(id: string): Promise<{ ws: WebSocket; server: ConsoleConnection }> {
    let ingested = 0;
    const atBound = new Promise<void>((resolve) => {
      onIngest = () => {
        if (++ingested === 2) resolve();
      };
    });
    const ws = new WebSocket(`${channel.url}?console=${id}`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const welcomed = new Promise<void>((resolve) =>
      ws.on('message', (data) => {
        if ((JSON.parse((data as Buffer).toString('utf8')) as BackendMessage).type === 'welcome') resolve();
      }),
    );
    ws.send(HELLO);
    await welcomed;
    for (let b = 0; b < 3; b++) ws.send(eventsBatch(b * 100, 100));
    await atBound; // the second batch took the node to its bound: this console is no longer read
    const server = channel.consoles.get(id);
    assert.ok(server !== undefined);
    assert.equal(server.socket.isPaused, true, 'held back');
    return { ws, server };
  }

  it(
    'a revoked console held back answers the close handshake: its delivery is acknowledged',
    { timeout: 10_000 },
    async () => {
      const { ws } = await heldBack('con_revoked');
      const clientClosed = new Promise<number>((resolve) => ws.once('close', resolve));
      // Without reading it again, the node never reads the console's answering close frame (behind the batch it
      // holds back): ws gives up after 30 s with 1006, and the revocation stays unacknowledged for good.
      const acknowledged = new Promise<void>((resolve) =>
        channel.consoles.disconnect('con_revoked', 'revoked', resolve),
      );
      await acknowledged;
      assert.equal(await clientClosed, CLOSE_CODES.CONSOLE_REVOKED);
      assert.equal(channel.consoles.isConnected('con_revoked'), false);
    },
  );

  it('a held-back socket superseded by a newer one is gone at once, not 30 s later', { timeout: 10_000 }, async () => {
    const { server } = await heldBack('con_twice');
    const oldClosed = new Promise<void>((resolve) => server.socket.once('close', () => resolve()));
    const newer = new WebSocket(`${channel.url}?console=con_twice`);
    await new Promise((resolve, reject) => newer.once('open', resolve).once('error', reject));
    await oldClosed;
    assert.notEqual(channel.consoles.get('con_twice'), server, 'only the newer socket is left');
    newer.close();
  });
});
