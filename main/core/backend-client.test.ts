import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
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
