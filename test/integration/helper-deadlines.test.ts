/**
 * The test helpers' network waits are bounded: a server that takes a request and never answers makes the
 * helper fail with an error naming the request, instead of hanging until the runner kills the whole file
 * at its 300 s timeout and reports nothing about where it hung (test/helpers/deadline.ts).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { httpJson, startTestBackend, TestConsole } from '../helpers/backend-harness.js';
import { ConsoleKey } from '../../main/core/console-key.js';
import { createDatabase } from '../helpers/postgres-server.js';
import { ConformanceReceiver } from '../helpers/ssf-receiver.js';
import { tempDir } from '../helpers/temp-dir.js';
import { dropTestDatabase, TEST_ENGINE, testDatabaseUrl } from '../helpers/test-database.js';

/** A short bound, so that the test is fast; the helpers' default is 30 s. */
const BOUND_MS = 300;
/** Without the bounds the helpers would wait forever: the test then fails here instead of hanging. */
const SAFETY = { timeout: 20_000 };

describe('test helpers facing a server that never answers', () => {
  const seen: string[] = [];
  /** Requests it holds open, never answered (or, on /half, answered with a head and no end of body). */
  const held: ServerResponse[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    seen.push(`${req.method ?? ''} ${req.url ?? ''}`);
    if (req.url === '/half') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"partial":');
    }
    held.push(res);
  });
  // An upgrade request (a console's WebSocket) taken and never answered either.
  const upgrades: Duplex[] = [];
  server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    seen.push(`UPGRADE ${req.url ?? ''}`);
    upgrades.push(socket);
  });
  let base = '';

  before(async () => {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const socket of upgrades) socket.destroy();
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });

  it('httpJson fails naming the method and path of the request that got no answer', SAFETY, async () => {
    await assert.rejects(
      httpJson(`${base}/v1/admin/ssf/keys/rotate?why=test`, { method: 'POST', body: '{}', timeoutMs: BOUND_MS }),
      (error: Error) => {
        assert.equal(error.name, 'DeadlineError');
        assert.equal(
          error.message,
          `POST /v1/admin/ssf/keys/rotate?why=test (${new URL(base).host}): no answer within ${BOUND_MS} ms`,
        );
        return true;
      },
    );
    assert.ok(seen.includes('POST /v1/admin/ssf/keys/rotate?why=test'), 'the server did take the request');
  });

  it('httpJson fails the same way when the answer starts and its body never ends', SAFETY, async () => {
    await assert.rejects(httpJson(`${base}/half`, { method: 'GET', timeoutMs: BOUND_MS }), {
      name: 'DeadlineError',
      message: `GET /half (${new URL(base).host}): no answer within ${BOUND_MS} ms`,
    });
  });

  it("a conformance receiver's poll fails naming the poll endpoint", SAFETY, async () => {
    const receiver = new ConformanceReceiver({ issuer: base, audience: 'a', jwksUri: `${base}/jwks` });
    await assert.rejects(receiver.poll(`${base}/ssf/streams/str_1/poll`, 'token', {}, BOUND_MS), {
      name: 'DeadlineError',
      message: `POST /ssf/streams/str_1/poll (${new URL(base).host}): no answer within ${BOUND_MS} ms`,
    });
  });

  it("a console's WebSocket upgrade fails naming the socket's path", SAFETY, async () => {
    const console = new TestConsole(base, ConsoleKey.generate(), 'con_test');
    await assert.rejects(console.connect({ timeoutMs: BOUND_MS }), (error: Error) => {
      assert.equal(error.name, 'DeadlineError');
      assert.match(error.message, /^WebSocket upgrade GET \/\S+ \(127\.0\.0\.1:\d+\): no answer within 300 ms$/);
      return true;
    });
    assert.ok(
      seen.some((s) => s.startsWith('UPGRADE ')),
      'the server did take the upgrade',
    );
  });
});

describe('creating a test database on a server that takes the connection and never answers', () => {
  it('fails with the connection timeout instead of waiting without end', SAFETY, async () => {
    let taken = 0;
    const held: Socket[] = [];
    const silent = createTcpServer((socket) => {
      taken++;
      held.push(socket);
    });
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const url = `postgres://baton@127.0.0.1:${(silent.address() as AddressInfo).port}/postgres`;
    try {
      await assert.rejects(createDatabase(url, 'baton_never', { connectTimeoutMs: BOUND_MS }), /timeout/i);
      assert.equal(taken, 1, 'the server did take the connection');
    } finally {
      for (const socket of held) socket.destroy();
      silent.close();
      await once(silent, 'close');
    }
  });
});

/**
 * A relay to the suite's PostgreSQL server that drops the connections of a backend's cluster bus (their
 * startup message names the application `baton-bus:…`) and lets every other one through, until `letThrough()`.
 */
async function busBlocker(port: number) {
  const open = new Set<Socket>();
  let blocking = true;
  let busPassed = false;
  let settle: () => void = () => undefined;
  const check = () => {
    if (busPassed && open.size === 0) settle();
  };
  const server = createTcpServer((client) => {
    open.add(client);
    client.on('close', () => {
      open.delete(client);
      check();
    });
    client.on('error', () => client.destroy());
    client.once('data', (first: Buffer) => {
      const bus = first.includes('baton-bus');
      if (bus && blocking) {
        client.destroy();
        return;
      }
      if (bus) busPassed = true;
      const upstream = connect(port, '127.0.0.1');
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      upstream.write(first);
      client.pipe(upstream).pipe(client);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    letThrough: () => (blocking = false),
    /** Resolves once a bus connection went through and every connection has closed since (the backend stopped). */
    drained: () =>
      new Promise<void>((resolve) => {
        settle = resolve;
        check();
      }),
    close: async () => {
      server.close();
      await once(server, 'close');
    },
  };
}

describe(
  'a test backend whose cluster bus cannot listen',
  { skip: TEST_ENGINE === 'sqlite' ? 'PostgreSQL only: the embedded store has no cluster bus to wait for' : false },
  () => {
    it(
      'fails to start naming the step and the warnings the backend logged, instead of waiting without end',
      // The 10 s deadline, then the late start this test lets through: the bus's next attempt may be up to its longest
      // backoff (10 s) away, then the harness stops that backend. A bound against a hang, not a speed.
      { timeout: 40_000 },
      async () => {
        const dir = tempDir('baton-test-');
        const url = new URL((await testDatabaseUrl(dir)) as string);
        const relay = await busBlocker(Number(url.port));
        url.port = String(relay.port);
        try {
          // The backend retries its bus without end and listens only once the bus does: without a bound, a hang.
          await assert.rejects(
            startTestBackend({ dataDir: dir, databaseUrl: url.toString() }, { startTimeoutMs: 10_000 }),
            (error: Error) => {
              assert.equal(error.name, 'DeadlineError');
              assert.match(
                error.message,
                /^starting a test backend on PostgreSQL database baton_test_\d+_\d+ \(migrations, cluster bus, listening\): no answer within 10000 ms; its last warnings: .*cluster bus: cannot listen, retrying/,
              );
              return true;
            },
          );
        } finally {
          // Let the bus through: the start finishes late, and the harness stops that backend at once.
          relay.letThrough();
          await relay.drained();
          await relay.close();
          await dropTestDatabase(dir);
        }
      },
    );
  },
);
