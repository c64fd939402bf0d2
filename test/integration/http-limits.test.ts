import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { parseBackendConfig } from '../../backend/config.js';
import { HttpLimits } from '../../backend/http/http-limits.js';
import { MAX_HTTP_BODY_BYTES } from '../../shared/http-api.js';
import { startTestBackend, type TestBackend } from '../helpers/backend-harness.js';
import pino from 'pino';

/**
 * docs/api.md promises: headers within 10 s, a whole request within 30 s, an idle keep-alive
 * connection closed after 5 s, and 413 for a body over 64 KiB however it is sent. These run the
 * same code with the limits made small, over real sockets, and measure when the backend answers.
 */

const HEADERS_MS = 400;
const REQUEST_MS = 900;
const KEEP_ALIVE_MS = 300;
/**
 * How late the backend may be on a limit: its check runs every tenth of the headers limit (40 ms
 * here); the rest is room for a loaded test machine. Before the fix it was late by up to 30 s.
 */
const SLACK_MS = 800;

interface Seen {
  /** Milliseconds from `startAt` (the socket connecting, unless moved) to the connection closing. */
  closedAfter: number;
  /** Everything the backend sent, as text. */
  text: string;
  /** A socket error the client saw (a reset), if any. */
  error: string | undefined;
}

/** A raw TCP client: what it sent is up to the test, what came back and when is measured. */
function rawClient(port: number, giveUpMs: number, onConnect: (socket: Socket, seen: { startAt: number }) => void) {
  return new Promise<Seen>((resolve, reject) => {
    const mark = { startAt: Date.now() };
    const chunks: Buffer[] = [];
    let error: string | undefined;
    const socket = connect(port, '127.0.0.1', () => {
      mark.startAt = Date.now();
      onConnect(socket, mark);
    });
    const giveUp = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the backend still held the connection after ${giveUpMs} ms`));
    }, giveUpMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    socket.on('close', () => {
      clearTimeout(giveUp);
      resolve({ closedAfter: Date.now() - mark.startAt, text: Buffer.concat(chunks).toString('latin1'), error });
    });
  });
}

function parseResponse(text: string): { status: number; headers: Record<string, string>; body: string } {
  const split = text.indexOf('\r\n\r\n');
  assert.ok(split > 0, `an HTTP answer, got ${JSON.stringify(text.slice(0, 200))}`);
  const [statusLine = '', ...lines] = text.slice(0, split).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body: text.slice(split + 4) };
}

function assertNear(ms: number, limit: number): void {
  assert.ok(ms >= limit - 20, `closed after ${ms} ms, before the ${limit} ms limit`);
  assert.ok(ms <= limit + SLACK_MS, `closed after ${ms} ms, long after the ${limit} ms limit`);
}

describe('connection limits, as configured', () => {
  let t: TestBackend;
  before(async () => {
    t = await startTestBackend({
      headersTimeoutSeconds: HEADERS_MS / 1000,
      requestTimeoutSeconds: REQUEST_MS / 1000,
      keepAliveTimeoutSeconds: KEEP_ALIVE_MS / 1000,
    });
  });
  after(() => t?.stop());

  /** POSTs `json` a byte every 20 ms (all but its last byte), as a client stalling mid-body does. */
  function trickle(path: string, contentType: string, json: unknown): Promise<Seen> {
    const body = JSON.stringify(json);
    return rawClient(t.backend.port, REQUEST_MS + 3000, (socket) => {
      socket.write(
        `POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: ${contentType}\r\nContent-Length: ${body.length}\r\n\r\n`,
      );
      let sent = 0;
      const drip = setInterval(() => {
        if (socket.destroyed || socket.writableEnded || sent >= body.length - 1) return clearInterval(drip);
        socket.write(body[sent++] ?? '');
      }, 20);
      socket.once('close', () => clearInterval(drip));
    });
  }

  it('answers 408 REQUEST_TIMEOUT and closes a connection whose headers stop halfway, at the headers limit', async () => {
    const seen = await rawClient(t.backend.port, HEADERS_MS + 3000, (socket) => {
      socket.write('POST /v1/admin/auth/sign-in/options HTTP/1.1\r\nHost: localhost\r\nContent-Ty');
    });
    assertNear(seen.closedAfter, HEADERS_MS);
    const answer = parseResponse(seen.text);
    assert.equal(answer.status, 408);
    assert.equal(answer.headers.connection, 'close');
    assert.equal(JSON.parse(answer.body).error.code, 'REQUEST_TIMEOUT');
  });

  it('closes a connection that never sends a byte at the headers limit, without an answer', async () => {
    const seen = await rawClient(t.backend.port, HEADERS_MS + 3000, () => undefined);
    assertNear(seen.closedAfter, HEADERS_MS);
    assert.equal(seen.text, '');
  });

  it('answers 408 REQUEST_TIMEOUT and closes a connection trickling its body, at the request limit', async () => {
    const seen = await trickle('/v1/admin/auth/sign-in/options', 'application/json', { padding: 'x'.repeat(200) });
    assertNear(seen.closedAfter, REQUEST_MS);
    const answer = parseResponse(seen.text);
    assert.equal(answer.status, 408);
    assert.equal(JSON.parse(answer.body).error.code, 'REQUEST_TIMEOUT');
  });

  it('answers a SCIM request trickling its body 408 in SCIM’s error shape, so the directory can read it', async () => {
    const seen = await trickle('/scim/v2/Users', 'application/scim+json', {
      userName: 'late@bank.example',
      padding: 'x'.repeat(200),
    });
    assertNear(seen.closedAfter, REQUEST_MS);
    const answer = parseResponse(seen.text);
    assert.equal(answer.status, 408);
    assert.equal(answer.headers.connection, 'close');
    assert.match(answer.headers['content-type'] ?? '', /^application\/scim\+json/);
    const parsed = JSON.parse(answer.body) as { schemas: string[]; status: string; error: { code: string } };
    assert.deepEqual(parsed.schemas, ['urn:ietf:params:scim:api:messages:2.0:Error']);
    assert.equal(parsed.status, '408');
    assert.equal(parsed.error.code, 'REQUEST_TIMEOUT');
  });

  it('closes an idle keep-alive connection once its advertised keep-alive has passed', async () => {
    const seen = await rawClient(t.backend.port, KEEP_ALIVE_MS + 3000, (socket, mark) => {
      socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
      socket.once('data', () => (mark.startAt = Date.now()));
    });
    const answer = parseResponse(seen.text);
    assert.equal(answer.status, 200);
    assert.match(answer.headers['keep-alive'] ?? '', /timeout=\d+/);
    // Node keeps the socket one second past the advertised time, so a client never races the close.
    assert.ok(seen.closedAfter >= KEEP_ALIVE_MS - 20, `closed after ${seen.closedAfter} ms`);
    assert.ok(seen.closedAfter <= KEEP_ALIVE_MS + 1000 + SLACK_MS, `closed after ${seen.closedAfter} ms`);
  });

  it('applies the documented defaults: headers 10 s, request 30 s, keep-alive 5 s', () => {
    const limits = new HttpLimits(parseBackendConfig({}, 'test'), pino({ level: 'silent' }), Date.now);
    assert.equal(limits.serverOptions.headersTimeout, 10_000);
    assert.equal(limits.serverOptions.requestTimeout, 30_000);
    assert.ok((limits.serverOptions.connectionsCheckingInterval ?? 30_000) <= 1000);
  });
});

describe('a body over the limit', () => {
  let t: TestBackend;
  before(async () => {
    t = await startTestBackend();
  });
  after(() => t?.stop());

  /**
   * Sends the headers, then `count` chunks as fast as the socket takes them, whatever the backend
   * answers meanwhile (as a client uploading a file does), then ends its side.
   */
  function upload(headers: string, chunk: Buffer, count: number): Promise<Seen> {
    return rawClient(t.backend.port, 10_000, (socket) => {
      socket.write(headers);
      let sent = 0;
      const pump = (): void => {
        while (sent < count && !socket.destroyed) {
          sent++;
          if (!socket.write(chunk)) {
            socket.once('drain', pump);
            return;
          }
        }
        if (!socket.destroyed) socket.end();
      };
      pump();
    });
  }

  it('answers a chunked upload streamed past 64 KiB with 413 PAYLOAD_TOO_LARGE, then closes, instead of a reset', async () => {
    const piece = Buffer.alloc(16 * 1024, 'a');
    const chunk = Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]);
    const seen = await upload(
      'POST /v1/admin/auth/sign-in/options HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n',
      chunk,
      256, // 4 MiB, no Content-Length
    );
    const answer = parseResponse(seen.text);
    assert.equal(answer.status, 413, seen.text.slice(0, 200));
    assert.equal(answer.headers.connection, 'close');
    assert.equal(JSON.parse(answer.body).error.code, 'PAYLOAD_TOO_LARGE');
    assert.equal(seen.error, undefined, 'the client saw the answer and a clean close, not a reset');
  });

  it('answers a declared oversized body with 413 even while the client keeps sending it', async () => {
    const size = 8 * MAX_HTTP_BODY_BYTES;
    const seen = await upload(
      `POST /v1/admin/auth/sign-in/options HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${size}\r\n\r\n`,
      Buffer.alloc(16 * 1024, 'a'),
      size / (16 * 1024),
    );
    const answer = parseResponse(seen.text);
    assert.equal(answer.status, 413);
    assert.equal(JSON.parse(answer.body).error.code, 'PAYLOAD_TOO_LARGE');
    assert.equal(seen.error, undefined, 'no reset');
  });
});
