import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { sql } from 'kysely';
import { kyselyOf } from '../store/kysely-store.js';
import { openPostgresStore } from '../store/postgres-store.js';
import type { Store } from '../store/repositories.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from '../store/postgres-throwaway.js';
import {
  afterCommitTransaction,
  BUS_CHANNEL,
  decodeEnvelope,
  encodeEnvelope,
  InProcessBus,
  kyselyTransaction,
  pgTransaction,
  PostgresBus,
  type BusTransaction,
  type ClusterBus,
  type Pointer,
  type Topic,
  validatePointer,
} from './bus.js';
import { ConsoleConnectionArbiter, takeGroup } from './console-arbiter.js';
import { FreshnessMonitor } from './freshness.js';
import { memoryLogger, nextDelivery, nextResync, nextStatus, recorder, type LogRecord } from './test-kit.js';
import { stall } from '../test-kit.js';

/** What the contract needs from one engine: its nodes, a raw writer, and a transaction to commit or roll back. */
interface Rig {
  nodes: ClusterBus[];
  records: LogRecord[];
  /** Writes a raw payload on the bus channel, as another process could. */
  raw: (payload: string) => Promise<void>;
  begin: () => Promise<{ tx: BusTransaction; commit: () => Promise<void>; rollback: () => Promise<void> }>;
  /** Publishes a committed marker and waits until every node has it: everything notified before it arrived first. */
  drain: () => Promise<void>;
}

let markers = 1_000_000;
async function drainAll(nodes: ClusterBus[]): Promise<void> {
  const version = ++markers;
  const arrived = nodes.map((node) => nextDelivery(node, 'policy', (p) => p.version === version));
  await nodes[0]!.publish('policy', { version });
  await Promise.all(arrived);
}

/** The contract every ClusterBus keeps, whatever the engine. */
function busContract(rig: () => Rig): void {
  it('delivers a publish to the subscribers of every node, the publishing node included', async () => {
    const { nodes } = rig();
    const [a] = nodes;
    const arrivals = nodes.map((node) => nextDelivery(node, 'revocation', (p) => p.epoch === 41));
    await a!.publish('revocation', { epoch: 41 });
    const got = await Promise.all(arrivals);
    for (const [i, { pointer, delivery }] of got.entries()) {
      assert.deepEqual(pointer, { epoch: 41 });
      assert.equal(delivery.origin, a!.origin);
      assert.equal(delivery.node, a!.nodeId);
      assert.equal(delivery.local, i === 0);
    }
  });

  it('carries every topic with its pointer', async () => {
    const { nodes } = rig();
    const samples: { [T in Topic]: Pointer<T> } = {
      revocation: { epoch: 7 },
      policy: { version: 3 },
      command: { consoleId: 'con_1', id: 'cmd_1' },
      'console-connected': { consoleId: 'con_1', nodeId: 'node-x', connectionId: 'c-9' },
      'consoles-connected': {
        nodeId: 'node-x',
        connections: [
          ['con_1', 'c-9'],
          ['con_2', 'c-10'],
        ],
      },
      'admin-stream': { cursor: 1234 },
      authenticators: {},
      'admin-session-ended': { sessionId: 'ads_1' },
    };
    const last = nodes.at(-1)!;
    for (const topic of Object.keys(samples) as Topic[]) {
      const arrival = nextDelivery(last, topic);
      await nodes[0]!.publish(topic, samples[topic] as never);
      assert.deepEqual((await arrival).pointer, samples[topic]);
    }
  });

  it('refuses to publish an unknown topic or a malformed pointer (the caller has a bug)', async () => {
    const [a] = rig().nodes;
    await assert.rejects(async () => a!.publish('revocation', { epoch: -1 }), /Invalid pointer/);
    await assert.rejects(async () => a!.publish('revocation', { epoch: 1, extra: 1 } as never), /Invalid pointer/);
    await assert.rejects(async () => a!.publish('nope' as Topic, {} as never), /Unknown cluster bus topic/);
    await assert.rejects(
      async () => a!.publish('command', { consoleId: 'x'.repeat(8000), id: '1' }),
      /Invalid pointer/,
    );
    assert.throws(() => a!.subscribe('nope' as Topic, () => undefined), /Unknown cluster bus topic/);
  });

  it('delivers a publish inside a transaction only once it commits', async () => {
    const { nodes, begin, drain } = rig();
    const seen = nodes.map((node) => recorder(node, 'command'));
    const { tx, commit } = await begin();
    await nodes[0]!.publish('command', { consoleId: 'con_tx', id: 'cmd_commit' }, tx);
    await drain();
    for (const s of seen) assert.equal(s.length, 0, 'not delivered before COMMIT');
    const arrivals = nodes.map((node) => nextDelivery(node, 'command', (p) => p.id === 'cmd_commit'));
    await commit();
    await Promise.all(arrivals);
  });

  it('never delivers a publish inside a rolled-back transaction', async () => {
    const { nodes, begin, drain } = rig();
    const seen = nodes.map((node) => recorder(node, 'command'));
    const { tx, rollback } = await begin();
    await nodes[0]!.publish('command', { consoleId: 'con_tx', id: 'cmd_rollback' }, tx);
    await rollback();
    // Notifications arrive in commit order: once a later committed marker arrived, the rolled-back one never will.
    await drain();
    for (const s of seen) assert.deepEqual(s, []);
  });

  it('drops and logs malformed payloads from the wire, and keeps delivering', async () => {
    const { nodes, raw, drain, records } = rig();
    const seen = nodes.map((node) => recorder(node, 'revocation'));
    const droppedBefore = nodes.map((node) => node.dropped);
    const warningsBefore = records.filter((r) => r.msg === 'cluster bus: malformed notification dropped').length;
    const garbage = [
      '',
      'not json',
      'null',
      '[1,2]',
      '{"v":2,"t":"revocation","p":{"epoch":1},"o":"evil"}',
      '{"v":1,"t":"revocation","p":{"epoch":"1"},"o":"evil"}',
      '{"v":1,"t":"revocation","p":{"epoch":1,"more":true},"o":"evil"}',
      '{"v":1,"t":"revocation","p":{"epoch":-3},"o":"evil"}',
      '{"v":1,"t":"toString","p":{},"o":"evil"}',
      '{"v":1,"t":"__proto__","p":{},"o":"evil"}',
      '{"v":1,"t":"revocation","p":{"epoch":1}}',
      '{"v":1,"t":"ping","p":{"x":1},"o":"evil"}',
    ];
    for (const payload of garbage) await raw(payload);
    await drain();
    for (const s of seen) assert.deepEqual(s, [], 'nothing malformed reaches a subscriber');
    for (const [i, node] of nodes.entries()) {
      assert.equal(node.dropped - droppedBefore[i]!, garbage.length, `${node.nodeId} dropped all`);
    }
    const warnings = records.filter((r) => r.msg === 'cluster bus: malformed notification dropped').length;
    assert.equal(warnings - warningsBefore, garbage.length * nodes.length);
    // Still alive: a valid publish goes through.
    const arrival = nextDelivery(nodes.at(-1)!, 'revocation', (p) => p.epoch === 99);
    await nodes[0]!.publish('revocation', { epoch: 99 });
    await arrival;
  });

  it('logs a subscriber that throws or rejects, and still delivers to the others', async () => {
    const { nodes, records } = rig();
    const [a] = nodes;
    const off1 = a!.subscribe('policy', () => {
      throw new Error('boom sync');
    });
    const off2 = a!.subscribe('policy', () => Promise.reject(new Error('boom async')));
    const arrival = nextDelivery(a!, 'policy', (p) => p.version === 77);
    await a!.publish('policy', { version: 77 });
    await arrival;
    await new Promise<void>((resolve) => setImmediate(resolve));
    off1();
    off2();
    const failures = records.filter((r) => r.msg === 'cluster bus: subscriber failed');
    assert.ok(failures.length >= 2, 'both failures logged');
  });

  it('unsubscribes', async () => {
    const { nodes, drain } = rig();
    const got: number[] = [];
    const off = nodes[0]!.subscribe('admin-stream', (p) => void got.push(p.cursor));
    await nodes[0]!.publish('admin-stream', { cursor: 1 });
    await drain();
    off();
    await nodes[0]!.publish('admin-stream', { cursor: 2 });
    await drain();
    assert.deepEqual(got, [1]);
  });

  it('answers a ping through the bus', async () => {
    for (const node of rig().nodes) {
      const ms = await node.ping(5_000);
      assert.ok(ms >= 0);
    }
  });
}

describe('InProcessBus (embedded SQLite mode)', () => {
  const { logger, records } = memoryLogger();
  const bus = new InProcessBus({ nodeId: 'embedded', logger });
  let resyncs = 0;
  bus.onResync(() => void resyncs++);

  before(async () => {
    await bus.start();
  });
  after(async () => {
    await bus.close();
  });

  it('resyncs once when started, then reports connected', () => {
    assert.equal(resyncs, 1);
    assert.equal(bus.status().connected, true);
  });

  it('delivers on a microtask, never inside the publisher', async () => {
    const seen = recorder(bus, 'revocation');
    const arrival = nextDelivery(bus, 'revocation', (p) => p.epoch === 6);
    const published = bus.publish('revocation', { epoch: 6 });
    assert.deepEqual(seen, [], 'not delivered synchronously');
    await published;
    await arrival;
    assert.equal(seen.length, 1);
  });

  it('stays not connected (stale) after a resync that failed, and retries it until one succeeds', async () => {
    const { logger, records } = memoryLogger();
    const node = new InProcessBus({ nodeId: 'embedded-r', logger, reconnect: { initialMs: 2, maxMs: 4 } });
    let now = 0;
    const freshness = new FreshnessMonitor({ bus: node, logger, boundMs: 1_000, clock: () => now });
    const during: { connected: boolean; stale: boolean }[] = [];
    let calls = 0;
    node.onResync(async () => {
      if (++calls === 1) throw new Error('store read failed (revocations since the watermark)');
      now += 5_000; // the store refused reads for longer than the bound
      during.push({ connected: node.status().connected, stale: (await freshness.check()).stale });
    });
    try {
      await node.start();
      assert.equal(calls, 2, 'the failed resync was run again');
      assert.deepEqual(during, [{ connected: false, stale: true }], 'not connected, so stale, until one succeeded');
      assert.equal(node.status().connected, true);
      assert.equal((await freshness.check()).stale, false, 'fresh once a resync succeeded');
      assert.ok(records.some((r) => r.msg === 'cluster bus: resync failed, retrying'));
    } finally {
      await freshness.stop();
      await node.close();
    }
  });

  it('refuses a PostgreSQL transaction (a wiring mistake)', async () => {
    const tx = pgTransaction({ query: () => Promise.resolve(undefined) });
    await assert.rejects(async () => bus.publish('policy', { version: 2 }, tx), /wiring mistake/);
  });

  busContract(() => ({
    nodes: [bus],
    records,
    raw: (payload) => {
      bus.injectRaw(payload);
      return Promise.resolve();
    },
    begin: () => {
      let hooks: (() => void)[] = [];
      const tx = afterCommitTransaction((fn) => void hooks.push(fn));
      return Promise.resolve({
        tx,
        commit: () => {
          for (const hook of hooks) hook();
          hooks = [];
          return Promise.resolve();
        },
        rollback: () => {
          hooks = [];
          return Promise.resolve();
        },
      });
    },
    drain: () => drainAll([bus]),
  }));
});

describe('wire format', () => {
  it('keeps every pointer far below the 8000-byte NOTIFY limit and refuses what would not fit', () => {
    const biggest = encodeEnvelope(
      'console-connected',
      { consoleId: 'c'.repeat(200), nodeId: 'n'.repeat(200), connectionId: 'x'.repeat(200) },
      'o'.repeat(200),
    );
    assert.ok(Buffer.byteLength(biggest) < 1000);
    assert.throws(() => encodeEnvelope('policy', { filler: 'x'.repeat(8000) }, 'node'), /max 7900/);
  });

  it('groups as many console announcements into one notification as fit, whatever the ids', () => {
    for (const [idLength, atLeast] of [
      [200, 10],
      [36, 60],
    ] as const) {
      const waiting = Array.from({ length: 2_000 }, (_, i) => ({
        consoleId: `${i}`.padStart(idLength, 'c'),
        connectionId: `${i}`.padStart(idLength, 'x'),
      }));
      const nodeId = 'n'.repeat(200);
      const group = takeGroup(waiting, nodeId);
      assert.ok(group.length >= atLeast, `${group.length} announcements of ${idLength}-character ids in one`);
      assert.deepEqual(group, waiting.slice(0, group.length), 'the oldest first, in order');
      const connections = group.map((a): [string, string] => [a.consoleId, a.connectionId]);
      // Fits, and checks against the topic's schema (encodeEnvelope throws past the limit).
      const text = encodeEnvelope(
        'consoles-connected',
        validatePointer('consoles-connected', { nodeId, connections }),
        nodeId,
      );
      assert.ok(Buffer.byteLength(text) <= 7_900);
    }
  });

  it('decodes what it encodes', () => {
    const decoded = decodeEnvelope(encodeEnvelope('admin-stream', { cursor: 9 }, 'node-a'));
    assert.deepEqual(decoded, { kind: 'message', topic: 'admin-stream', pointer: { cursor: 9 }, origin: 'node-a' });
  });
});

const skip = postgresSkip();
describe('PostgresBus (a cluster on one PostgreSQL)', { skip }, () => {
  let server: PostgresServer;
  let url: string;
  const { logger, records } = memoryLogger();
  let a: PostgresBus;
  let b: PostgresBus;
  let raw: pg.Pool;
  const resyncs: { node: string; reason: string }[] = [];

  before(async () => {
    server = await startPostgres();
    url = await createDatabase(server.url, 'bus_test');
    const reconnect = { initialMs: 20, maxMs: 200 };
    a = new PostgresBus({ nodeId: 'node-a', logger, connection: url, reconnect, connectTimeoutMs: 2_000 });
    b = new PostgresBus({ nodeId: 'node-b', logger, connection: url, reconnect, connectTimeoutMs: 2_000 });
    for (const bus of [a, b]) bus.onResync((info) => void resyncs.push({ node: bus.nodeId, reason: info.reason }));
    raw = new pg.Pool({ connectionString: url, max: 2 });
    raw.on('error', () => undefined);
    await Promise.all([a.start(), b.start()]);
  });

  after(async () => {
    await Promise.allSettled([a?.close(), b?.close(), raw?.end()]);
    await server?.stop();
  });

  it('resynced once per node on start', () => {
    assert.deepEqual(resyncs.map((r) => `${r.node}:${r.reason}`).sort(), ['node-a:connected', 'node-b:connected']);
    assert.equal(a.status().connected, true);
  });

  busContract(() => ({
    nodes: [a, b],
    records,
    raw: async (payload) => {
      await raw.query('SELECT pg_notify($1, $2)', [BUS_CHANNEL, payload]);
    },
    begin: async () => {
      const client = await raw.connect();
      await client.query('BEGIN');
      const end = async (sql: string) => {
        try {
          await client.query(sql);
        } finally {
          client.release();
        }
      };
      return { tx: pgTransaction(client), commit: () => end('COMMIT'), rollback: () => end('ROLLBACK') };
    },
    drain: () => drainAll([a, b]),
  }));

  it("sends a publish in a unit of work on the store's pool with the COMMIT: intact, never on rollback or a failed COMMIT", async () => {
    // One connection: every unit below runs on the same one, so what a unit left on it would show.
    const store = await openPostgresStore({ url, poolSize: 1 });
    try {
      const seen = [a, b].map((node) => recorder(node, 'command'));
      const publishIn = (tx: Store, consoleId: string, id: string) => {
        const db = kyselyOf(tx);
        assert.ok(db !== undefined);
        return a.publish('command', { consoleId, id }, kyselyTransaction(db));
      };
      // Quotes, a backslash, a statement separator and non-ASCII text reach every node as they were sent.
      const tricky = `con_'; SELECT 1; --\\ "é" ''`;
      const arrivals = [a, b].map((node) => nextDelivery(node, 'command', (p) => p.id === 'cmd_unit_commit'));
      const pid = await store.transaction(async (tx) => {
        await publishIn(tx, tricky, 'cmd_unit_commit');
        return (await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(kyselyOf(tx)!)).rows[0]!.pid;
      });
      for (const { pointer } of await Promise.all(arrivals)) assert.equal(pointer.consoleId, tricky);
      // The server's own record of that connection's last statement: the NOTIFY went in the COMMIT's round trip.
      const activity = await raw.query<{ query: string }>('SELECT query FROM pg_stat_activity WHERE pid = $1', [pid]);
      assert.match(activity.rows[0]?.query ?? '', /^SELECT pg_notify\('baton_cluster', +E?'.*'\); commit$/s);

      await assert.rejects(
        store.transaction(async (tx) => {
          await publishIn(tx, 'con_tx', 'cmd_unit_rollback');
          throw new Error('rolled back');
        }),
        /rolled back/,
      );
      await store.transaction((tx) => publishIn(tx, 'con_tx', 'cmd_unit_after_rollback'));
      // A COMMIT that fails (a deferred unique constraint is checked by it): the unit rejects, nothing is sent.
      await assert.rejects(
        store.transaction(async (tx) => {
          const db = kyselyOf(tx);
          assert.ok(db !== undefined);
          await sql`CREATE TEMP TABLE checked_at_commit (x int UNIQUE DEFERRABLE INITIALLY DEFERRED) ON COMMIT DROP`.execute(
            db,
          );
          await sql`INSERT INTO checked_at_commit VALUES (1), (1)`.execute(db);
          await publishIn(tx, 'con_tx', 'cmd_unit_failed_commit');
        }),
        (error: unknown) => (error as { code?: unknown }).code === '23505',
      );
      // The same connection then commits and sends the next unit's publish, and only that one.
      const last = [a, b].map((node) => nextDelivery(node, 'command', (p) => p.id === 'cmd_unit_after'));
      await store.transaction((tx) => publishIn(tx, 'con_tx', 'cmd_unit_after'));
      await Promise.all(last);
      await drainAll([a, b]);
      for (const s of seen) {
        assert.deepEqual(
          s.map((d) => d.pointer.id),
          ['cmd_unit_commit', 'cmd_unit_after_rollback', 'cmd_unit_after'],
        );
      }
    } finally {
      await store.close();
    }
  });

  it('publishes after commit through the pool for an after-commit transaction', async () => {
    const hooks: (() => void)[] = [];
    const arrival = nextDelivery(b, 'authenticators');
    await a.publish(
      'authenticators',
      {},
      afterCommitTransaction((fn) => void hooks.push(fn)),
    );
    assert.equal(hooks.length, 1);
    hooks[0]!();
    await arrival;
  });

  it('reconnects by itself when PostgreSQL restarts under it, resyncs, and delivers again', async () => {
    const before = { a: a.connects, b: b.connects };
    const lostA = nextStatus(a, false);
    const resyncA = nextResync(a);
    const resyncB = nextResync(b);
    await server.restart();
    await lostA;
    const [infoA, infoB] = await Promise.all([resyncA, resyncB]);
    assert.equal(infoA.reason, 'reconnected');
    assert.equal(infoB.reason, 'reconnected');
    assert.ok((infoA.downMs ?? -1) >= 0);
    await Promise.all([nextStatus(a, true), nextStatus(b, true)]);
    assert.equal(a.connects, before.a + 1);
    assert.equal(b.connects, before.b + 1);
    // LISTEN was issued again: a publish on B reaches A.
    const arrival = nextDelivery(a, 'revocation', (p) => p.epoch === 500);
    await b.publish('revocation', { epoch: 500 });
    await arrival;
    assert.ok(records.some((r) => r.msg === 'cluster bus: listening connection lost, reconnecting'));
  });

  it('survives a crash of PostgreSQL (SIGKILL) the same way, retrying with backoff while it is down', async () => {
    const lost = nextStatus(a, false);
    await server.kill();
    await lost;
    assert.equal(a.status().connected, false);
    assert.ok(a.status().lastError !== undefined);
    await assert.rejects(() => a.ping(1_000), /not connected/);
    const resynced = nextResync(a);
    await server.restart();
    assert.equal((await resynced).reason, 'reconnected');
    await nextStatus(a, true);
    await nextStatus(b, true);
    const arrival = nextDelivery(b, 'policy', (p) => p.version === 600);
    await a.publish('policy', { version: 600 });
    await arrival;
    assert.ok(records.some((r) => r.msg === 'cluster bus: cannot listen, retrying'));
  });

  it('recycles its listening connection on demand (a ping that did not come back) and resyncs', async () => {
    const resynced = nextResync(a);
    a.recycle('test');
    assert.equal((await resynced).reason, 'reconnected');
    await nextStatus(a, true);
    assert.ok((await a.ping(5_000)) >= 0);
  });

  it('does not fail a ping the server answered while this process was frozen (judged after reading)', async () => {
    // A node whose reads time out after 1 s: its listening connection (the heartbeat's NOTIFY) and its own pool.
    const node = new PostgresBus({ nodeId: 'node-frozen', logger, connection: url, connectTimeoutMs: 1_000 });
    try {
      await node.start();
      await node.publish('policy', { version: 9_099 }); // the pool has a connection ready, as a running node's has
      const arrival = nextDelivery(b, 'policy', (p) => p.version === 9_100);
      // The ping's NOTIFY is written on the listening connection before the freeze; its answer and the notification
      // arrive during it. (A publish started with it is written only after the freeze: pg-pool hands out an idle
      // connection on the next tick. It must go through all the same.) Frozen in a setImmediate callback: what runs
      // next is the timers, then the read of the sockets.
      const { ping, publish } = await new Promise<{ ping: Promise<number>; publish: Promise<void> }>((resolve) =>
        setImmediate(() => {
          const started = { ping: node.ping(1_000), publish: node.publish('policy', { version: 9_100 }) };
          stall(2_500); // past both timeouts, and long enough for a loaded server to answer meanwhile
          resolve(started);
        }),
      );
      // When the loop runs again, the timers are due before the sockets are read: they must not decide alone.
      assert.ok((await ping) >= 0, 'the ping came back');
      await publish;
      await arrival;
      assert.equal(node.status().connected, true);
    } finally {
      await node.close();
    }
  });

  it('answers its heartbeat ping on the listening connection while the store pool is exhausted', async () => {
    // The store's pool, every connection of it held (a burst of console connections and sign-ins).
    const busy = new pg.Pool({ connectionString: url, max: 1 });
    busy.on('error', () => undefined);
    const held = await busy.connect();
    let released = false;
    const node = new PostgresBus({ nodeId: 'node-busy', logger, connection: url, pool: busy });
    try {
      await node.start();
      const ms = await node.ping(1_000);
      assert.ok(ms >= 0 && ms < 1_000, `ping came back in ${ms} ms`);
      // Publishing still goes through the pool: it waits for a connection, as a store write would.
      let published = false;
      const publish = node.publish('policy', { version: 9_001 }).then(() => (published = true));
      assert.ok((await node.ping(1_000)) >= 0);
      assert.equal(published, false, 'the publish waits for the pool; the ping did not');
      released = true;
      held.release();
      await publish;
    } finally {
      if (!released) held.release();
      await node.close();
      await busy.end().catch(() => undefined);
    }
  });

  it('abandons a resync that hangs, reconnects and resyncs again; connected only once a resync finished', async () => {
    const slow = new PostgresBus({
      nodeId: 'node-s',
      logger,
      connection: url,
      resyncTimeoutMs: 200,
      reconnect: { initialMs: 10, maxMs: 50 },
    });
    const reasons: string[] = [];
    let calls = 0;
    slow.onResync((info) => {
      reasons.push(info.reason);
      calls++;
      // The first resync never finishes (a hung store read).
      return calls === 1 ? new Promise<void>(() => undefined) : undefined;
    });
    const statuses: boolean[] = [];
    slow.onStatus((status) => void statuses.push(status.connected));
    try {
      await slow.start();
      assert.deepEqual(reasons, ['connected', 'reconnected']);
      assert.equal(slow.connects, 2);
      assert.deepEqual(statuses, [true], 'never reported connected before a resync finished');
      assert.ok(records.some((r) => r.msg === 'cluster bus: resync timed out, reconnecting'));
    } finally {
      await slow.close();
    }
  });

  it('a resync the store answered while the node was stopped finishes when it wakes; it is not abandoned', async () => {
    const reader = new pg.Client({ connectionString: url });
    await reader.connect();
    const woken = new PostgresBus({ nodeId: 'node-w', logger, connection: url, resyncTimeoutMs: 300 });
    const reasons: string[] = [];
    woken.onResync(async (info) => {
      reasons.push(info.reason);
      if (reasons.length > 1) return; // a resync run again (the old bound's verdict) is not stopped again
      await Promise.resolve(); // past the synchronous start: the resync's bound is armed by now
      const answered = reader.query('SELECT 1 AS one');
      // The node does not run for 1 s (a stop, a stall): the store answers meanwhile, the bound passes.
      stall(1_000);
      await answered;
    });
    try {
      await woken.start();
      assert.deepEqual(reasons, ['connected'], 'the resync was abandoned and run again on a new connection');
      assert.equal(woken.connects, 1);
      assert.equal(woken.status().connected, true);
    } finally {
      await woken.close();
      await reader.end();
    }
  });

  it('stays not connected after a resync that failed (a store read refused in a failover), and resyncs again', async () => {
    const failing = new PostgresBus({
      nodeId: 'node-f',
      logger,
      connection: url,
      reconnect: { initialMs: 10, maxMs: 50 },
    });
    const reasons: string[] = [];
    failing.onResync((info) => {
      reasons.push(info.reason);
      if (reasons.length === 1) throw new Error('store read failed (revocations since the watermark)');
    });
    const statuses: boolean[] = [];
    failing.onStatus((status) => void statuses.push(status.connected));
    try {
      await failing.start();
      assert.deepEqual(reasons, ['connected', 'reconnected']);
      assert.deepEqual(statuses, [true], 'never reported connected before a resync succeeded');
      assert.ok(records.some((r) => r.msg === 'cluster bus: resync failed, reconnecting'));
    } finally {
      await failing.close();
    }
  });

  it('a periodic resync that fails leaves the node not connected until a resync succeeds', async () => {
    const periodic = new PostgresBus({
      nodeId: 'node-pf',
      logger,
      connection: url,
      resyncEveryMs: 30,
      reconnect: { initialMs: 10, maxMs: 50 },
    });
    const reasons: string[] = [];
    periodic.onResync((info) => {
      reasons.push(info.reason);
      if (info.reason === 'periodic' && !reasons.includes('reconnected')) throw new Error('store read failed');
    });
    try {
      await periodic.start();
      await nextStatus(periodic, false);
      await nextStatus(periodic, true);
      assert.deepEqual(reasons.slice(0, 3), ['connected', 'periodic', 'reconnected']);
    } finally {
      await periodic.close();
    }
  });

  it('tells two processes configured with the same node id apart, and logs NODE_ID_DUPLICATE', async () => {
    const twinA = new PostgresBus({ nodeId: 'twin', logger, connection: url });
    const twinB = new PostgresBus({ nodeId: 'twin', logger, connection: url });
    try {
      await Promise.all([twinA.start(), twinB.start()]);
      const atA = nextDelivery(twinA, 'policy', (p) => p.version === 9_200);
      const atB = nextDelivery(twinB, 'policy', (p) => p.version === 9_200);
      await twinA.publish('policy', { version: 9_200 });
      assert.equal((await atA).delivery.local, true);
      assert.equal((await atB).delivery.local, false, "the twin's message is not taken for its own");
      assert.ok((await twinB.ping(5_000)) >= 0, 'each answers its own heartbeat');
      assert.ok((await twinA.ping(5_000)) >= 0);
      const duplicates = records.filter((r) => r.code === 'NODE_ID_DUPLICATE' && r.node === 'twin');
      assert.deepEqual(duplicates.map((r) => r.origin).sort(), [twinA.origin, twinB.origin].sort(), 'each says so');

      // A console that moved from one twin to the other keeps only its newest socket.
      const closed: string[] = [];
      const arbiters = [twinA, twinB].map(
        (bus) => new ConsoleConnectionArbiter(bus, logger, (_console, connection) => void closed.push(connection)),
      );
      const echoed = nextDelivery(twinA, 'console-connected', (p) => p.connectionId === 'a1');
      await arbiters[0]!.connected('con_twin', 'a1');
      await echoed;
      const seen = nextDelivery(twinA, 'console-connected', (p) => p.connectionId === 'b1');
      await arbiters[1]!.connected('con_twin', 'b1');
      await seen;
      assert.deepEqual(closed, ['a1'], 'the older socket, on the other process, was closed');
      for (const arbiter of arbiters) arbiter.stop();
    } finally {
      await Promise.all([twinA.close(), twinB.close()]);
    }
  });

  it('resyncs periodically when asked to (resyncEveryMs)', async () => {
    const periodic = new PostgresBus({ nodeId: 'node-p', logger, connection: url, resyncEveryMs: 30 });
    try {
      const first = nextResync(periodic);
      await periodic.start();
      assert.equal((await first).reason, 'connected');
      assert.equal((await nextResync(periodic)).reason, 'periodic');
    } finally {
      await periodic.close();
    }
  });

  it('rejects start() when closed before it could ever connect', async () => {
    const port = server.port;
    const lonely = new PostgresBus({
      nodeId: 'node-z',
      logger,
      connection: `postgres://baton@127.0.0.1:${port === 1 ? 2 : 1}/postgres`,
      reconnect: { initialMs: 10, maxMs: 20 },
      connectTimeoutMs: 500,
    });
    const started = lonely.start();
    await lonely.close();
    await assert.rejects(started, /closed before it connected/);
  });
});
