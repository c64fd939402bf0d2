import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import pg from 'pg';
import { lagAwareClient, waitForClient } from './read-timeout.js';

/**
 * A server that speaks just enough of PostgreSQL's protocol for a client to connect: it answers the startup
 * message with AuthenticationOk and ReadyForQuery after the delay `answerAfter` gives for that connection, or
 * never (undefined). What a real server does not let a test choose: when, or whether, a connection opens.
 */
async function fakePostgres(answerAfter: (connection: number) => number | undefined) {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((socket) => {
    const n = ++connections;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('end', () => socket.end());
    socket.once('data', () => {
      const delay = answerAfter(n);
      if (delay === undefined) return;
      setTimeout(() => {
        const authenticationOk = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0]);
        const readyForQuery = Buffer.from([0x5a, 0, 0, 0, 5, 0x49]);
        if (!socket.destroyed) socket.write(Buffer.concat([authenticationOk, readyForQuery]));
      }, delay);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return {
    url: `postgres://baton@127.0.0.1:${port}/baton`,
    connections: () => connections,
    async close() {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

describe('the store’s bounds on opening and waiting for a connection (read-timeout.ts)', () => {
  it('a server that accepts and never answers: the connection fails within its bound, as DATABASE_UNREACHABLE would name it', async () => {
    const server = await fakePostgres(() => undefined);
    const Client = lagAwareClient(200);
    const client = new Client({ connectionString: server.url });
    try {
      // http-kit answers /^Connection terminated/ with DATABASE_UNREACHABLE.
      await assert.rejects(client.connect(), {
        message: /^Connection terminated due to connection timeout \(200 ms\)/,
      });
    } finally {
      await server.close();
    }
  });

  it('a pool the silent server exhausts: every wait fails within its bound, and none is left queued', async () => {
    const server = await fakePostgres(() => undefined);
    const pool = new pg.Pool({ connectionString: server.url, max: 1, Client: lagAwareClient(200) });
    pool.on('error', () => undefined);
    try {
      const waits = [1, 2, 3].map(() => waitForClient(pool, 200));
      const outcomes = await Promise.allSettled(waits);
      assert.deepEqual(
        outcomes.map((o) => (o.status === 'rejected' ? String((o.reason as Error).message) : 'a connection')),
        Array(3).fill('timeout exceeded when trying to connect'),
      );
      assert.equal(pool.waitingCount, 0, 'a wait given up stays in the pool’s queue');
    } finally {
      await pool.end();
      await server.close();
    }
  });

  it(
    'a connection that opens after its waiter gave up goes back to the pool and serves the next wait',
    { timeout: 10_000 },
    async () => {
      const server = await fakePostgres((n) => (n === 1 ? 600 : 0));
      const pool = new pg.Pool({ connectionString: server.url, max: 1, Client: lagAwareClient(5_000) });
      pool.on('error', () => undefined);
      try {
        const returned = once(pool, 'release');
        await assert.rejects(waitForClient(pool, 200), { message: /^timeout exceeded when trying to connect/ });
        await returned;
        assert.equal(pool.idleCount, 1, 'the late connection is idle in the pool');
        const client = await waitForClient(pool, 200);
        client.release();
        assert.equal(server.connections(), 1, 'the next wait was served by the late connection, not a new one');
      } finally {
        await pool.end();
        await server.close();
      }
    },
  );
});
