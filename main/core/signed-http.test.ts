import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { test } from 'node:test';
import { z } from 'zod';
import { CONSOLE_HEADERS } from '../../shared/console-auth.js';
import { systemClock } from './clock.js';
import { ConsoleKey } from './console-key.js';
import { SignedHttp } from './signed-http.js';

const ANSWER = z.strictObject({ ok: z.literal(true) });

const httpFor = (url: string) =>
  new SignedHttp({ backendUrl: url, key: ConsoleKey.generate(), consoleId: 'con_test', clock: systemClock });

/** A backend stand-in: `handle` answers; every request's line and headers are recorded. */
async function serve(
  handle: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ url: string; seen: { line: string; headers: IncomingMessage['headers'] }[]; close: () => Promise<void> }> {
  const seen: { line: string; headers: IncomingMessage['headers'] }[] = [];
  const server = createServer((req, res) => {
    seen.push({ line: `${req.method ?? ''} ${req.url ?? ''}`, headers: req.headers });
    req.resume();
    req.on('end', () => handle(req, res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const json = (status: number, body: unknown) => (_req: IncomingMessage, res: ServerResponse) =>
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

test('a request is signed by the console, and its answer is checked against the schema', async () => {
  const good = await serve(json(200, { ok: true }));
  const odd = await serve(json(200, { ok: 'yes' }));
  try {
    assert.deepEqual(await httpFor(good.url).request('POST', '/v1/sessions/ses_1/end', { reason: 'x' }, ANSWER), {
      ok: true,
    });
    const headers = good.seen[0]?.headers ?? {};
    assert.equal(good.seen[0]?.line, 'POST /v1/sessions/ses_1/end');
    assert.equal(headers[CONSOLE_HEADERS.console], 'con_test');
    assert.ok(headers[CONSOLE_HEADERS.signature] && headers[CONSOLE_HEADERS.nonce], 'signature and nonce sent');
    await assert.rejects(httpFor(odd.url).request('GET', '/v1/x', undefined, ANSWER), {
      code: 'BACKEND_PROTOCOL_ERROR',
    });
  } finally {
    await good.close();
    await odd.close();
  }
});

test('a refusal carries the backend’s stable code; without one, 503 is unreachable and anything else a protocol error', async () => {
  const revoked = await serve(json(403, { error: { code: 'CONSOLE_REVOKED', message: 'This console was revoked' } }));
  const busy = await serve((_req, res) => res.writeHead(503).end());
  const broken = await serve(json(500, {}));
  try {
    await assert.rejects(httpFor(revoked.url).request('GET', '/v1/x', undefined, ANSWER), {
      code: 'CONSOLE_REVOKED',
      message: 'This console was revoked',
    });
    await assert.rejects(httpFor(busy.url).request('GET', '/v1/x', undefined, ANSWER), { code: 'BACKEND_UNREACHABLE' });
    await assert.rejects(httpFor(broken.url).request('GET', '/v1/x', undefined, ANSWER), {
      code: 'BACKEND_PROTOCOL_ERROR',
    });
  } finally {
    await Promise.all([revoked.close(), busy.close(), broken.close()]);
  }
});

test('a backend that cannot be reached is BACKEND_UNREACHABLE', async () => {
  const gone = await serve(json(200, { ok: true }));
  await gone.close();
  await assert.rejects(httpFor(gone.url).request('GET', '/v1/x', undefined, ANSWER), { code: 'BACKEND_UNREACHABLE' });
});

test('a redirect is not followed: the signed request and its body go nowhere but the configured backend', async () => {
  const elsewhere = await serve(json(200, { ok: true }));
  const backend = await serve((_req, res) => res.writeHead(307, { location: `${elsewhere.url}/v1/x` }).end());
  try {
    await assert.rejects(httpFor(backend.url).request('POST', '/v1/x', { secret: 1 }, ANSWER), {
      code: 'BACKEND_PROTOCOL_ERROR',
    });
    assert.deepEqual(elsewhere.seen, []);
  } finally {
    await backend.close();
    await elsewhere.close();
  }
});

test('a kept connection the backend dropped just as it was reused: the request is made once more on a new one', async () => {
  // Raw HTTP/1.1: the first connection answers its first request and keeps the connection open,
  // then drops it on the second request without answering (as a backend closing an idle
  // connection while the request was on its way); any other connection answers.
  const body = JSON.stringify({ ok: true });
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
        seen.push({ connection, nonce: new RegExp(`${CONSOLE_HEADERS.nonce}: (\\S+)`, 'i').exec(head)?.[1] ?? '' });
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
  const http = httpFor(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  try {
    await http.request('POST', '/v1/x', {}, ANSWER);
    assert.deepEqual(await http.request('POST', '/v1/x', {}, ANSWER), { ok: true });
    assert.deepEqual(
      seen.map((s) => s.connection),
      [1, 1, 2],
      'the first two on the kept connection, the retry on a new one',
    );
    assert.ok(seen[1]?.nonce !== '' && seen[1]?.nonce !== undefined, 'the nonce header was read');
    assert.equal(seen[2]?.nonce, seen[1]?.nonce, 'the same signed request: a replay of one that did arrive is refused');
  } finally {
    http.closeIdle();
    await new Promise((resolve) => server.close(resolve));
  }
});
