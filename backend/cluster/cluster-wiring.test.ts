import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from '../store/postgres-throwaway.js';
import { InProcessBus, kyselyTransaction, PostgresBus, type ClusterBus } from './bus.js';
import { ConsoleConnectionArbiter } from './console-arbiter.js';
import { newNodeId } from './nodes.js';
import { StreamCursorPublisher } from './stream-publisher.js';
import { memoryLogger, nextDelivery, recorder } from './test-kit.js';

let markers = 2_000_000;
/** Publishes a marker and waits until every node has it: everything published before it has arrived. */
async function drain(nodes: ClusterBus[]): Promise<void> {
  const version = ++markers;
  const arrived = nodes.map((node) => nextDelivery(node, 'policy', (p) => p.version === version));
  await nodes[0]!.publish('policy', { version });
  await Promise.all(arrived);
}

describe('StreamCursorPublisher', () => {
  it('coalesces a burst of cursors into few publishes, the last one carrying the highest cursor', async () => {
    const { logger } = memoryLogger();
    const bus = new InProcessBus({ nodeId: 'embedded', logger });
    await bus.start();
    const seen = recorder(bus, 'admin-stream');
    const publisher = new StreamCursorPublisher(bus, logger);
    for (let cursor = 1; cursor <= 1_000; cursor++) publisher.offer(cursor);
    publisher.offer(500); // older: ignored
    await publisher.flush();
    await drain([bus]);
    assert.ok(seen.length >= 1 && seen.length < 10, `coalesced (${seen.length} publishes)`);
    assert.equal(seen.at(-1)?.pointer.cursor, 1_000);
    const cursors = seen.map((s) => s.pointer.cursor);
    assert.deepEqual(
      cursors,
      [...cursors].sort((x, y) => x - y),
      'increasing',
    );
    await bus.close();
  });
});

describe('newNodeId', () => {
  it('is unique per start and a valid bus origin', () => {
    const a = newNodeId('host with spaces', 42);
    const b = newNodeId('host with spaces', 42);
    assert.notEqual(a, b);
    assert.match(a, /^host-with-spaces-42-[0-9a-f]{8}$/);
  });
});

const skip = postgresSkip();
describe('cluster wiring on PostgreSQL', { skip }, () => {
  let server: PostgresServer;
  let url: string;
  const { logger } = memoryLogger();
  let a: PostgresBus;
  let b: PostgresBus;

  before(async () => {
    server = await startPostgres();
    url = await createDatabase(server.url, 'wiring_test');
    a = new PostgresBus({ nodeId: 'node-a', logger, connection: url });
    b = new PostgresBus({ nodeId: 'node-b', logger, connection: url });
    await Promise.all([a.start(), b.start()]);
  });

  after(async () => {
    await Promise.allSettled([a?.close(), b?.close()]);
    await server?.stop();
  });

  it('publishes inside a Kysely transaction: delivered on commit, dropped on rollback', async () => {
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    const db = new Kysely<Record<string, never>>({ dialect: new PostgresDialect({ pool }) });
    try {
      const seen = recorder(b, 'command');
      await assert.rejects(
        db.transaction().execute(async (trx) => {
          await a.publish('command', { consoleId: 'con_k', id: 'rolled-back' }, kyselyTransaction(trx));
          await sql`SELECT 1`.execute(trx);
          throw new Error('abort');
        }),
        /abort/,
      );
      const committed = nextDelivery(b, 'command', (p) => p.id === 'committed');
      await db.transaction().execute(async (trx) => {
        await a.publish('command', { consoleId: 'con_k', id: 'committed' }, kyselyTransaction(trx));
      });
      await committed;
      await drain([a, b]);
      assert.deepEqual(
        seen.map((s) => s.pointer.id),
        ['committed'],
      );
    } finally {
      await db.destroy();
    }
  });

  describe('newest socket wins, cluster-wide', () => {
    function rig() {
      const closed: string[] = [];
      const arbA = new ConsoleConnectionArbiter(a, logger, (consoleId, connectionId) =>
        closed.push(`A:${consoleId}:${connectionId}`),
      );
      const arbB = new ConsoleConnectionArbiter(b, logger, (consoleId, connectionId) =>
        closed.push(`B:${consoleId}:${connectionId}`),
      );
      return {
        arbA,
        arbB,
        closed,
        stop: () => {
          arbA.stop();
          arbB.stop();
        },
      };
    }

    it('a console that connects on B after A is closed on A, and kept on B', async () => {
      const { arbA, arbB, closed, stop } = rig();
      try {
        await arbA.connected('con_1', 'a1');
        await drain([a, b]);
        await arbB.connected('con_1', 'b1');
        await drain([a, b]);
        assert.deepEqual(closed, ['A:con_1:a1']);
        // A's connection is gone from the arbiter: a later announcement changes nothing on A.
        await arbB.connected('con_1', 'b2');
        await drain([a, b]);
        assert.deepEqual(closed, ['A:con_1:a1'], 'a replacement on B is B’s own business');
      } finally {
        stop();
      }
    });

    it('two connections announced at the same time: exactly one survives, the same on every node', async () => {
      const { arbA, arbB, closed, stop } = rig();
      const order = recorder(a, 'console-connected');
      try {
        for (let round = 0; round < 10; round++) {
          closed.length = 0;
          order.length = 0;
          const consoleId = `con_race_${round}`;
          await Promise.all([arbA.connected(consoleId, `a${round}`), arbB.connected(consoleId, `b${round}`)]);
          await drain([a, b]);
          assert.equal(closed.length, 1, `round ${round}: one connection closed (${closed.join(', ')})`);
          const mine = order.filter((o) => o.pointer.consoleId === consoleId);
          const first = mine[0]!.pointer;
          assert.deepEqual(
            closed,
            [`${first.nodeId === 'node-a' ? 'A' : 'B'}:${consoleId}:${first.connectionId}`],
            'the one announced first is closed',
          );
        }
      } finally {
        stop();
      }
    });

    it('a burst of connections is announced in a few notifications, with the same outcome as one by one', async () => {
      const { arbA, arbB, closed, stop } = rig();
      const ids = Array.from({ length: 300 }, (_, i) => `con_burst_${i}`);
      const singles = recorder(b, 'console-connected');
      const groups = recorder(b, 'consoles-connected');
      try {
        await Promise.all(ids.map((id) => arbB.connected(id, `b-${id}`)));
        await drain([a, b]);
        singles.length = 0;
        groups.length = 0;
        // The consoles of B reconnect to A all at once (B's node is failing): every socket on B is closed.
        await Promise.all(ids.map((id) => arbA.connected(id, `a-${id}`)));
        await drain([a, b]);
        const announced = [
          ...singles.map((s) => s.pointer.consoleId),
          ...groups.flatMap((g) => g.pointer.connections.map(([consoleId]) => consoleId)),
        ];
        assert.deepEqual(announced.sort(), [...ids].sort(), 'each connection announced once');
        assert.ok(singles.length + groups.length <= 30, `${singles.length + groups.length} notifications for 300`);
        assert.deepEqual(closed.sort(), ids.map((id) => `B:${id}:b-${id}`).sort());
        // A took its grouped announcements back as its own: a later connection on B closes A's.
        closed.length = 0;
        await arbB.connected(ids[150]!, 'b-again');
        await drain([a, b]);
        assert.deepEqual(closed, [`A:${ids[150]}:a-${ids[150]}`]);
      } finally {
        stop();
      }
    });

    it('a connection that closed while its announcement waited is never announced, and closes nothing elsewhere', async () => {
      const { arbA, arbB, closed, stop } = rig();
      const singles = recorder(b, 'console-connected');
      const groups = recorder(b, 'consoles-connected');
      try {
        await arbB.connected('con_gone', 'b-live');
        await drain([a, b]);
        // A's announcement of con_busy is being published; con_gone's a-dead waits behind it, then its socket closes.
        const busy = arbA.connected('con_busy', 'a-busy');
        const dead = arbA.connected('con_gone', 'a-dead');
        arbA.disconnected('con_gone', 'a-dead');
        await Promise.all([busy, dead]);
        await drain([a, b]);
        const announced = [
          ...singles.map((s) => s.pointer.connectionId),
          ...groups.flatMap((g) => g.pointer.connections.map(([, connectionId]) => connectionId)),
        ];
        assert.deepEqual(announced, ['b-live', 'a-busy']);
        assert.deepEqual(closed, [], 'the live socket on B stays');
      } finally {
        stop();
      }
    });

    it('a replacement on the same node is left to the console channel', async () => {
      const { arbA, arbB, closed, stop } = rig();
      try {
        await arbA.connected('con_2', 'a1');
        await arbA.connected('con_2', 'a2');
        await drain([a, b]);
        assert.deepEqual(closed, []);
        arbA.disconnected('con_2', 'a1'); // the old socket's close event: not the current one, ignored
        await arbB.connected('con_2', 'b1');
        await drain([a, b]);
        assert.deepEqual(closed, ['A:con_2:a2']);
      } finally {
        stop();
      }
    });

    it('a console that left this node is not closed by a later announcement', async () => {
      const { arbA, arbB, closed, stop } = rig();
      try {
        await arbA.connected('con_3', 'a1');
        arbA.disconnected('con_3', 'a1');
        await arbB.connected('con_3', 'b1');
        await drain([a, b]);
        assert.deepEqual(closed, []);
      } finally {
        stop();
      }
    });
  });
});
