/**
 * The test helpers' network waits are bounded: a server that takes a request and never answers makes the
 * helper fail with an error naming the request, instead of hanging until the runner kills the whole file
 * at its 300 s timeout and reports nothing about where it hung (test/helpers/deadline.ts).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { httpJson, TestConsole } from '../helpers/backend-harness.js';
import { ConsoleKey } from '../../main/core/console-key.js';
import { ConformanceReceiver } from '../helpers/ssf-receiver.js';

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
