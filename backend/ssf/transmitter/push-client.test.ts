import '@simplewebauthn/server/helpers';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import * as x509 from '@peculiar/x509';
import { PushClient, pushEndpoint } from './push-client.js';
import { stall } from '../../test-kit.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** An HTTP server that records requests and counts connections; `answer` writes each response. */
async function server(
  answer: (res: ServerResponse, n: number) => void,
  make: (handler: (req: IncomingMessage, res: ServerResponse) => void) => Server = (h) => createHttpServer(h),
): Promise<{ url: string; seen: Seen[]; connections: () => number; close: () => Promise<void> }> {
  const seen: Seen[] = [];
  let connections = 0;
  const s = make((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      });
      answer(res, seen.length);
    });
  });
  s.on('connection', () => connections++);
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/ssf/events?x=1`,
    seen,
    connections: () => connections,
    close: () => {
      s.closeAllConnections();
      return new Promise((resolve) => s.close(() => resolve()));
    },
  };
}

/** A raw TCP server: `onRequest(socket, n)` is called for each request head received (n from 1, over all connections). */
async function rawServer(onRequest: (socket: Socket, n: number) => void) {
  let n = 0;
  let connections = 0;
  const sockets = new Set<Socket>();
  const s = createNetServer((socket) => {
    connections++;
    sockets.add(socket);
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      // Each request: a head with Content-Length, then that many bytes.
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end === -1) return;
        const length = Number(/content-length: (\d+)/i.exec(buffered.slice(0, end))?.[1] ?? 0);
        if (buffered.length < end + 4 + length) return;
        buffered = buffered.slice(end + 4 + length);
        onRequest(socket, ++n);
      }
    });
    socket.on('error', () => undefined);
  });
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/events`,
    connections: () => connections,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
}

const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJqdGkiOiIxIn0.c2ln';

describe('RFC 8935 push client', () => {
  test('posts the SET with its headers and reuses the kept connection', async () => {
    const s = await server((res) => res.writeHead(202).end());
    const client = new PushClient(5000);
    try {
      const endpoint = pushEndpoint(s.url, 'Bearer abc');
      assert.deepEqual(await client.post(endpoint, JWT), { status: 202, text: '' });
      assert.deepEqual(await client.post(endpoint, `${JWT}2`), { status: 202, text: '' });
      assert.equal(s.connections(), 1, 'the second push reuses the first connection');
      assert.equal(s.seen.length, 2);
      const first = s.seen[0] as Seen;
      assert.equal(first.method, 'POST');
      assert.equal(first.url, '/ssf/events?x=1');
      assert.equal(first.headers['content-type'], 'application/secevent+jwt');
      assert.equal(first.headers.accept, 'application/json');
      assert.equal(first.headers.authorization, 'Bearer abc');
      assert.equal(first.headers.host, new URL(s.url).host);
      assert.equal(first.body, JWT);
      assert.equal(s.seen[1]?.body, `${JWT}2`);
    } finally {
      client.destroy();
      await s.close();
    }
  });

  test("reads a 400's error JSON, chunked or with a length, and keeps the connection", async () => {
    const s = await server((res, n) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      if (n === 1) {
        res.write('{"err":"invalid_');
        res.end('key","description":"unknown kid"}');
      } else {
        res.end('{"err":"invalid_audience"}');
      }
    });
    const client = new PushClient(5000);
    try {
      const endpoint = pushEndpoint(s.url);
      const chunked = await client.post(endpoint, JWT);
      assert.equal(chunked.status, 400);
      assert.deepEqual(JSON.parse(chunked.text), { err: 'invalid_key', description: 'unknown kid' });
      const sized = await client.post(endpoint, JWT);
      assert.deepEqual(JSON.parse(sized.text), { err: 'invalid_audience' });
      assert.equal(s.connections(), 1);
      assert.equal(s.seen[0]?.headers.authorization, undefined, 'no Authorization when the stream has none');
    } finally {
      client.destroy();
      await s.close();
    }
  });

  test('a redirect is answered as such, never followed', async () => {
    const s = await server((res) => res.writeHead(302, { location: 'http://127.0.0.1:1/elsewhere' }).end('moved'));
    const client = new PushClient(5000);
    try {
      const answer = await client.post(pushEndpoint(s.url), JWT);
      assert.equal(answer.status, 302);
      assert.equal(s.seen.length, 1);
    } finally {
      client.destroy();
      await s.close();
    }
  });

  test('a receiver that never answers: the push fails after the timeout', async () => {
    const s = await rawServer(() => undefined);
    const client = new PushClient(200);
    try {
      await assert.rejects(client.post(pushEndpoint(s.url), JWT), /no answer within 200 ms/);
    } finally {
      client.destroy();
      await s.close();
    }
  });

  test('a push that times out on a kept connection is not sent again (the receiver is slow, not gone)', async () => {
    let requests = 0;
    const s = await rawServer((socket, n) => {
      requests = n;
      if (n === 1) socket.write('HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n'); // later ones: never
    });
    const client = new PushClient(200);
    try {
      const endpoint = pushEndpoint(s.url);
      assert.deepEqual(await client.post(endpoint, JWT), { status: 202, text: '' });
      await assert.rejects(client.post(endpoint, `${JWT}2`), /no answer within 200 ms/);
      assert.equal(requests, 2, 'the timed-out push reached the receiver once');
      assert.equal(s.connections(), 1);
    } finally {
      client.destroy();
      await s.close();
    }
  });

  test('a push answered while this process was frozen is not failed when it resumes (judged after reading)', async () => {
    // The receiver is another process, so it answers while this one is stopped. It answers with the number of
    // pushes it has received: one sent twice (the first destroyed as timed out, again on a new connection) shows.
    const receiver = spawn(
      process.execPath,
      [
        '-e',
        `let n = 0;
         const s = require('node:http').createServer((req, res) => { req.resume(); req.on('end', () => res.writeHead(202).end(String(++n))); });
         s.listen(0, '127.0.0.1', () => console.log(s.address().port));`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const client = new PushClient(1_000);
    try {
      const [port] = (await Promise.race([
        once(receiver.stdout, 'data'),
        once(receiver, 'exit').then(() => assert.fail('the receiver process exited')),
      ])) as [Buffer];
      const endpoint = pushEndpoint(`http://127.0.0.1:${port.toString().trim()}/ssf/events`);
      assert.deepEqual(await client.post(endpoint, JWT), { status: 202, text: '1' }); // a kept connection: written at once
      // Posted from a setImmediate callback, then frozen past the push's timeout: what runs after the freeze is
      // the timers (the watchdog), then the read of the answer that came meanwhile.
      const answer = await new Promise<Promise<unknown>>((resolve) =>
        setImmediate(() => {
          const pending = client.post(endpoint, `${JWT}2`);
          stall(2_500);
          resolve(pending);
        }),
      );
      assert.deepEqual(await answer, { status: 202, text: '2' }, 'the push was answered once, not sent again');
    } finally {
      client.destroy();
      receiver.kill();
    }
  });

  test('a kept connection the receiver closed is replaced: the push goes on a new one', async () => {
    const s = await rawServer((socket, n) => {
      // The first request is answered and the connection kept; the second, on it, finds it closed.
      if (n === 2) socket.destroy();
      else socket.write('HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n');
    });
    const client = new PushClient(5000);
    try {
      const endpoint = pushEndpoint(s.url);
      assert.equal((await client.post(endpoint, JWT)).status, 202);
      assert.equal((await client.post(endpoint, JWT)).status, 202);
      assert.equal(s.connections(), 2);
    } finally {
      client.destroy();
      await s.close();
    }
  });

  test('Connection: close, interim 100 and a body ended by the connection', async () => {
    const s = await rawServer((socket, n) => {
      if (n === 1) socket.write('HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      if (n === 2) {
        socket.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n');
      }
      if (n === 3) {
        socket.end('HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n{"err":"invalid_issuer"}');
      }
    });
    const client = new PushClient(5000);
    try {
      const endpoint = pushEndpoint(s.url);
      assert.equal((await client.post(endpoint, JWT)).status, 202);
      assert.equal((await client.post(endpoint, JWT)).status, 202);
      assert.equal(s.connections(), 2, 'a connection the receiver said it closes is not reused');
      assert.deepEqual(await client.post(endpoint, JWT), { status: 400, text: '{"err":"invalid_issuer"}' });
    } finally {
      client.destroy();
      await s.close();
    }
  });

  test('an answer that arrives a few bytes at a time is read whole', async () => {
    const answer =
      'HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n' +
      'a\r\n{"err":"in\r\n11\r\nvalid_request"}  \r\n0\r\nX-Trailer: 1\r\n\r\n';
    const s = await rawServer((socket) => {
      void (async () => {
        for (let i = 0; i < answer.length; i += 3) {
          socket.write(answer.slice(i, i + 3));
          await new Promise((resolve) => setImmediate(resolve));
        }
      })();
    });
    const client = new PushClient(5000);
    try {
      const endpoint = pushEndpoint(s.url);
      const got = await client.post(endpoint, JWT);
      assert.equal(got.status, 400);
      assert.deepEqual(JSON.parse(got.text), { err: 'invalid_request' });
      assert.equal((await client.post(endpoint, JWT)).status, 400);
      assert.equal(s.connections(), 1, 'read to its end, the connection is reused');
    } finally {
      client.destroy();
      await s.close();
    }
  });

  test('https: the receiver certificate is verified', async () => {
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
    const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=receiver.test',
      notBefore: new Date(Date.now() - 3600_000),
      notAfter: new Date(Date.now() + 24 * 3600_000),
      signingAlgorithm: alg,
      keys,
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }])],
    });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
    const key = `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)?.join('\n') ?? ''}\n-----END PRIVATE KEY-----\n`;
    const pem = cert.toString('pem');
    const s = await server(
      (res) => res.writeHead(202).end(),
      (h) => createHttpsServer({ cert: pem, key }, h),
    );
    const url = s.url.replace(/^http:/, 'https:');
    const trusting = new PushClient(5000, { ca: pem });
    const untrusting = new PushClient(5000);
    try {
      assert.equal((await trusting.post(pushEndpoint(url), JWT)).status, 202);
      assert.equal((await trusting.post(pushEndpoint(url), JWT)).status, 202);
      assert.equal(s.connections(), 1);
      await assert.rejects(untrusting.post(pushEndpoint(url), JWT), /self.signed|certificate/i);
      assert.equal(s.seen.length, 2, 'nothing is sent to a receiver whose certificate is not trusted');
    } finally {
      trusting.destroy();
      untrusting.destroy();
      await s.close();
    }
  });

  test('an authorization header with CR/LF is refused (no header injection)', () => {
    assert.throws(() => pushEndpoint('http://127.0.0.1:1/e', 'Bearer a\r\nX-Evil: 1'), /not allowed/);
  });
});
