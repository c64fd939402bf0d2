import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { BackendClient, RECONNECT_BASE_MS, RECONNECT_CAP_MS, reconnectDelay } from './backend-client.js';
import { systemClock } from './clock.js';
import { ConsoleKey } from './console-key.js';

test('reconnect delays grow exponentially, stay within half to all of their ceiling, and are capped', () => {
  for (let attempt = 0; attempt < 30; attempt++) {
    const ceiling = Math.min(RECONNECT_CAP_MS, RECONNECT_BASE_MS * 2 ** attempt);
    assert.equal(
      reconnectDelay(attempt, () => 0),
      Math.round(ceiling / 2),
    );
    assert.equal(
      reconnectDelay(attempt, () => 0.999999),
      Math.round(ceiling / 2 + (0.999999 * ceiling) / 2),
    );
  }
  assert.equal(
    reconnectDelay(100, () => 1),
    RECONNECT_CAP_MS,
  );
});

test('jitter spreads a thousand consoles reconnecting at once over the window', () => {
  const delays = Array.from({ length: 1000 }, () => reconnectDelay(6, Math.random));
  const ceiling = RECONNECT_BASE_MS * 2 ** 6;
  assert.ok(delays.every((d) => d >= ceiling / 2 && d <= ceiling));
  const buckets = new Set(delays.map((d) => Math.floor((d - ceiling / 2) / (ceiling / 20))));
  assert.ok(buckets.size >= 9, `delays fall in ${buckets.size} of 10 buckets`);
});

/** A backend stand-in that records each request and answers with `answer`. */
async function stubBackend(answer: unknown): Promise<{ url: string; seen: string[]; close: () => Promise<void> }> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.method ?? ''} ${req.url ?? ''}`);
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function clientFor(url: string): BackendClient {
  return new BackendClient({
    backendUrl: url,
    key: ConsoleKey.generate(),
    consoleId: 'con_test',
    clock: systemClock,
    random: Math.random,
    agentVersion: 'test',
    hello: () => ({ policyVersion: 0, revocationEpoch: 0 }),
    onMessage: () => undefined,
    onOpen: () => undefined,
    onClose: () => undefined,
    onProtocolError: () => undefined,
  });
}

const SESSION = {
  id: 'ses_1',
  operatorId: 'op_1',
  operatorName: 'Jane',
  consoleId: 'con_test',
  channel: 'branch-teller',
  level: 'verified',
  aal: 2,
  acr: 'urn:baton:passkey',
  amr: ['hwk'],
  authTime: 1,
  startedAt: 1,
  expiresAt: 2,
  state: 'ended',
};

test('a route call goes to the path of the route table, its parameter percent-encoded', async () => {
  const stub = await stubBackend({ session: SESSION });
  try {
    const answer = await clientFor(stub.url).call('sessionEnd', { id: 'ses/1' }, { reason: 'sign-out' });
    assert.deepEqual(stub.seen, ['POST /v1/sessions/ses%2F1/end']);
    assert.equal(answer.session.state, 'ended');
  } finally {
    await stub.close();
  }
});

test("an answer that does not match the route's declared response schema is a protocol error", async () => {
  const stub = await stubBackend({ session: { ...SESSION, state: 'on-holiday' } });
  try {
    await assert.rejects(clientFor(stub.url).call('sessionEnd', { id: 'ses_1' }, { reason: 'sign-out' }), {
      code: 'BACKEND_PROTOCOL_ERROR',
    });
  } finally {
    await stub.close();
  }
});

test('a redirect is not followed: the signed request and its body go nowhere but the configured backend', async () => {
  const elsewhere = await stubBackend({ session: SESSION });
  const backend = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(307, { location: `${elsewhere.url}/v1/sessions/ses_1/end` }).end());
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
    await assert.rejects(clientFor(url).call('sessionEnd', { id: 'ses_1' }, { reason: 'sign-out' }), {
      code: 'BACKEND_PROTOCOL_ERROR',
    });
    assert.deepEqual(elsewhere.seen, []);
  } finally {
    await new Promise((resolve) => backend.close(resolve));
    await elsewhere.close();
  }
});

test('a kept connection the backend dropped just as it was reused: the call is made once more on a new one', async () => {
  // Raw HTTP/1.1: the first connection answers its first request and keeps the connection open,
  // then drops it on the second request without answering (as a backend closing an idle
  // connection while the request was on its way); any other connection answers.
  const body = JSON.stringify({ session: SESSION });
  const seen: { connection: number; nonce: string }[] = [];
  let connections = 0;
  const server = createTcpServer((socket: Socket) => {
    const connection = ++connections;
    let buffered = '';
    let requests = 0;
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffered.slice(0, end);
        const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (buffered.length < end + 4 + length) return;
        buffered = buffered.slice(end + 4 + length);
        requests++;
        seen.push({ connection, nonce: /x-baton-nonce: (\S+)/i.exec(head)?.[1] ?? '' });
        if (connection === 1 && requests === 2) {
          socket.destroy();
          return;
        }
        socket.write(
          `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: keep-alive\r\n\r\n${body}`,
        );
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = clientFor(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  try {
    await client.call('sessionEnd', { id: 'ses_1' }, { reason: 'sign-out' });
    const answer = await client.call('sessionEnd', { id: 'ses_1' }, { reason: 'sign-out' });
    assert.equal(answer.session.state, 'ended');
    assert.deepEqual(
      seen.map((s) => s.connection),
      [1, 1, 2],
      'the first two on the kept connection, the retry on a new one',
    );
    assert.equal(seen[2]?.nonce, seen[1]?.nonce, 'the same signed request: a replay of one that did arrive is refused');
  } finally {
    client.stop();
    await new Promise((resolve) => server.close(resolve));
  }
});
