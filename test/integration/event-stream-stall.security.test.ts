import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { TEST_ORIGIN, TestConsole, type TestBackend, startTestBackend } from '../helpers/backend-harness.js';
import { SoftAuthenticator } from '../helpers/soft-authenticator.js';

const PAD = 'x'.repeat(500);

/** Stores `count` backend events of about 1.3 KiB each on the SSE wire, in one transaction. */
async function recordMany(t: TestBackend, count: number): Promise<void> {
  await t.backend.events.atomically(async (uow) => {
    for (let i = 0; i < count; i++) {
      await uow.record({
        type: 'admin-action',
        subject: {},
        outcome: 'success',
        reasons: ['load-test'],
        detail: { a: PAD, b: PAD, n: i },
      });
    }
  });
}

/** A reader on a raw TCP socket: sends the request, reads the headers, then stops reading. */
async function stalledReader(
  t: TestBackend,
  path: string,
  headers: Record<string, string>,
): Promise<{ socket: Socket; head: Buffer }> {
  const socket = connect(t.backend.port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`);
  socket.write(`GET ${path} HTTP/1.1\r\nhost: localhost\r\n${lines.join('')}\r\n`);
  const head = await new Promise<Buffer>((resolve) => {
    let seen = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      const end = seen.indexOf('\r\n\r\n');
      if (end < 0) return;
      assert.match(seen.subarray(0, end).toString('latin1'), /^HTTP\/1\.1 200/);
      socket.off('data', onData);
      socket.pause();
      resolve(seen.subarray(end + 4));
    };
    socket.on('data', onData);
  });
  return { socket, head };
}

/** Resolves once `condition` holds; fails the test after `ms`. */
async function eventually(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`${what} within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Resumes a paused socket and returns everything left in it once the server has closed it. */
function drainToEnd({ socket, head }: { socket: Socket; head: Buffer }): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [head];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.on('error', () => undefined); // a reset is one way of being ended
    socket.resume();
  });
}

/** The cursors of the complete events in an SSE body. */
function cursors(body: string): number[] {
  return [...body.matchAll(/^id: (\d+)\nevent: assurance-event\ndata: .*\n\n/gm)].map((m) => Number(m[1]));
}

describe('a live-stream reader that stops reading is disconnected, and resumes without gaps', () => {
  let t: TestBackend;
  let base: number; // the backend's own subscribers
  before(async () => {
    t = await startTestBackend({ eventStreamStallSeconds: 1 });
    base = t.backend.events.followerCount;
  });
  after(() => t?.stop());

  it('a backfill whose reader stalls while events keep landing is ended, and Last-Event-ID resumes it without a gap', async () => {
    await recordMany(t, 8000); // ~10 MiB: more than the socket buffers hold
    const auth = { authorization: `Bearer ${t.admin.token}` };
    const reader = await stalledReader(t, '/v1/admin/events/stream?after=0', auth);
    assert.equal(t.backend.events.followerCount, base + 1);
    // The proof of concept: live events keep landing while the reader is stalled mid-backfill.
    for (let i = 0; i < 20; i++) {
      await recordMany(t, 200);
      await new Promise((resolve) => setImmediate(resolve));
    }
    // The server gives up on the stalled reader (drain timeout): its subscription is gone.
    await eventually(() => t.backend.events.followerCount === base, 10_000, 'the stalled stream was not ended');
    const firstBody = await drainToEnd(reader);
    const first = cursors(firstBody);
    assert.ok(first.length > 0);
    assert.doesNotMatch(firstBody, /: connected/); // it never got past the backfill

    // The client reconnects with the last id it received and gets everything after it, in order.
    const lastId = first.at(-1) ?? 0;
    const response = await fetch(`${t.url}/v1/admin/events/stream`, {
      headers: { ...auth, 'last-event-id': String(lastId) },
    });
    assert.equal(response.status, 200);
    const body = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    const parts: string[] = [];
    let tail = '';
    while (!tail.includes(': connected\n\n')) {
      const { value, done } = await body.read();
      if (done) break;
      const text = decoder.decode(value, { stream: true });
      parts.push(text);
      tail = (tail + text).slice(-64);
    }
    await body.cancel();
    const secondBody = parts.join('');
    const all = [...first, ...cursors(secondBody)];
    const stored = (await t.backend.events.query({ limit: 100_000 })).map((e) => e.cursor);
    assert.deepEqual(all, stored, 'every stored event once, in order, across the two connections');
  });

  it('a live follower that stops reading is ended once it is too far behind, and its subscription released', async () => {
    await eventually(() => t.backend.events.followerCount === base, 5000, 'the previous streams were not closed');
    const reader = await stalledReader(t, '/v1/admin/events/stream', { authorization: `Bearer ${t.admin.token}` });
    assert.equal(t.backend.events.followerCount, base + 1);
    for (let i = 0; i < 40 && t.backend.events.followerCount > base; i++) {
      await recordMany(t, 500);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await eventually(() => t.backend.events.followerCount === base, 10_000, 'the stalled follower was not ended');
    reader.socket.destroy();
  });
});

describe('a stream whose admin session ends is destroyed even when its reader has stopped reading', () => {
  let t: TestBackend;
  before(async () => {
    // No stall limit and no keep-alive (with its session re-check) in reach, however slow the machine:
    // only the push that ends the session can close this stream.
    t = await startTestBackend({ eventStreamStallSeconds: 600, eventStreamKeepAliveSeconds: 3600 });
  });
  after(() => t?.stop());

  it('retiring the bootstrap token destroys its stalled stream instead of waiting for end() to flush', async () => {
    const base = t.backend.events.followerCount;
    const reader = await stalledReader(t, '/v1/admin/events/stream', { authorization: `Bearer ${t.admin.token}` });
    // About 5 MiB of live events: more than the socket buffers take, less than the 4 MiB follower cap
    // beyond them, so the server holds unsent data when the session ends.
    for (let i = 0; i < 20; i++) {
      await recordMany(t, 200);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.equal(t.backend.events.followerCount, base + 1, 'the stream is still held (not dropped for being behind)');

    // The first admin registers a passkey: the bootstrap token and its streams are retired.
    const kiosk = await TestConsole.enrol(t.url, t.admin);
    const { code } = await t.admin.ok('POST', '/v1/admin/bootstrap', { id: 'ops', displayName: 'Ops Admin' });
    const key = new SoftAuthenticator(TEST_ORIGIN);
    const { options } = await kiosk.ok('POST', '/v1/operators/enrol/options', { code });
    await kiosk.ok('POST', '/v1/operators/enrol/verify', { code, response: key.register(options) });

    await eventually(() => t.backend.events.followerCount === base, 5000, 'the stalled stream was not destroyed');
    const rest = await drainToEnd(reader);
    assert.doesNotMatch(rest, /: connected\n\n[\s\S]*: keep-alive/);
  });
});
