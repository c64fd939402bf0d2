import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import { CLOSE_CODES, CONSOLE_WS_PATH, MAX_MESSAGE_BYTES, PROTOCOL_VERSION } from '../../shared/protocol.js';
import type { AssuranceEvent } from '../../shared/events.js';
import { ConsoleKey } from '../../main/core/console-key.js';
import {
  TestConsole,
  type ConsoleSocket,
  type Json,
  type TestBackend,
  withBackendAndConsole,
} from '../helpers/backend-harness.js';

type EventsAck = Extract<ConsoleSocket['received'][number], { type: 'events-ack' }>;

/** Waits for the next events-ack that was not already received when called. */
function nextAck(socket: ConsoleSocket): Promise<EventsAck> {
  const seen = new Set(socket.received.filter((m) => m.type === 'events-ack'));
  return socket.next('events-ack', (m) => !seen.has(m));
}

async function sendBatch(socket: ConsoleSocket, events: AssuranceEvent[]): Promise<EventsAck> {
  const ack = nextAck(socket);
  socket.send({ type: 'events', events });
  return ack;
}

/** Polls a condition the backend reaches asynchronously (its side of a close handshake). */
async function eventually(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** What the attacker sees for a protocol violation: an `error` message, then the close code. */
async function expectViolation(socket: ConsoleSocket, closeCode: number, errorCode: string): Promise<void> {
  const error = await socket.next('error');
  assert.equal(error.code, errorCode, JSON.stringify(error));
  assert.equal(error.fatal, true);
  const closed = await socket.closed;
  assert.equal(closed.code, closeCode);
}

describe('console channel (WebSocket) under attack', () => {
  let t: TestBackend;
  let bystander: TestConsole;

  withBackendAndConsole((b, c) => ((t = b), (bystander = c)));

  async function storedEvents(consoleId: string): Promise<Json[]> {
    const body = (await t.admin.ok('GET', `/v1/admin/events?origin=${consoleId}&limit=1000`)) as Json;
    return body.events as Json[];
  }

  async function backendEvents(type: string, consoleId: string): Promise<Json[]> {
    const body = (await t.admin.ok('GET', `/v1/admin/events?origin=backend&type=${type}&console=${consoleId}`)) as Json;
    return body.events as Json[];
  }

  /** After a violation the backend still serves everyone else, over HTTP and WebSocket. */
  async function assertStillServing(): Promise<void> {
    const health = await fetch(`${t.url}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as Json).status, 'ok');
    const status = await bystander.request('GET', '/v1/console/status');
    assert.equal(status.status, 200, JSON.stringify(status.body));
    const socket = await bystander.connect();
    const welcome = await socket.next('welcome');
    assert.equal(welcome.consoleId, bystander.id);
    await socket.close();
  }

  async function freshConsole(): Promise<{ console: TestConsole; socket: ConsoleSocket }> {
    const console = await TestConsole.enrol(t.url, t.admin);
    const socket = await console.connect();
    await socket.next('welcome');
    return { console, socket };
  }

  it('closes with 4000 and BAD_JSON on a frame that is not JSON', async () => {
    const { socket } = await freshConsole();
    socket.send('{"type": "events", "events": [');
    await expectViolation(socket, CLOSE_CODES.BAD_JSON, 'BAD_JSON');
    await assertStillServing();
  });

  it('closes with 4000 and BAD_JSON on a binary frame', async () => {
    const { socket } = await freshConsole();
    socket.ws.send(Buffer.from(JSON.stringify({ type: 'hello' })), { binary: true });
    await expectViolation(socket, CLOSE_CODES.BAD_JSON, 'BAD_JSON');
    await assertStillServing();
  });

  it('closes with 4004 and MESSAGE_TYPE_UNKNOWN on a message type it does not know', async () => {
    const { socket } = await freshConsole();
    socket.send({ type: 'exec', command: 'rm -rf /' });
    await expectViolation(socket, CLOSE_CODES.MESSAGE_TYPE_UNKNOWN, 'MESSAGE_TYPE_UNKNOWN');
    await assertStillServing();
  });

  it('closes with 4004 on JSON that is not a typed message at all', async () => {
    const { socket } = await freshConsole();
    socket.send('[1,2,3]');
    await expectViolation(socket, CLOSE_CODES.MESSAGE_TYPE_UNKNOWN, 'MESSAGE_TYPE_UNKNOWN');
    await assertStillServing();
  });

  it('closes with 4002 on a message that fails its schema', async () => {
    const console = await TestConsole.enrol(t.url, t.admin);
    const socket = await console.connect({ hello: false });
    socket.send({ type: 'hello', protocol: 99, policyVersion: -1, revocationEpoch: 0, agentVersion: 'x' });
    await expectViolation(socket, CLOSE_CODES.SCHEMA_INVALID, 'SCHEMA_INVALID');
    await assertStillServing();
  });

  it('closes with 4002 and EVENT_SCHEMA_INVALID on a batch with a malformed event, storing none of it', async () => {
    const { console, socket } = await freshConsole();
    const good = console.nextEvent();
    const { prevHash: _dropped, ...bad } = console.nextEvent();
    socket.send({ type: 'events', events: [good, bad] });
    await expectViolation(socket, CLOSE_CODES.SCHEMA_INVALID, 'EVENT_SCHEMA_INVALID');
    assert.deepEqual(await storedEvents(console.id), []);
    await assertStillServing();
  });

  it('closes with 4006 when the first message is not hello, and acts on nothing', async () => {
    const console = await TestConsole.enrol(t.url, t.admin);
    const socket = await console.connect({ hello: false });
    socket.send({ type: 'events', events: [console.nextEvent()] });
    await expectViolation(socket, CLOSE_CODES.HELLO_REQUIRED, 'HELLO_REQUIRED');
    assert.equal(
      socket.received.some((m) => m.type === 'welcome' || m.type === 'events-ack'),
      false,
    );
    assert.deepEqual(await storedEvents(console.id), []);
    await assertStillServing();
  });

  it('closes with 1009 on a frame larger than 256 KiB', async () => {
    const { console, socket } = await freshConsole();
    const huge = JSON.stringify({
      type: 'events',
      events: [{ ...console.nextEvent(), detail: { note: 'x'.repeat(MAX_MESSAGE_BYTES) } }],
    });
    assert.ok(Buffer.byteLength(huge) > MAX_MESSAGE_BYTES);
    socket.send(huge);
    const closed = await socket.closed;
    assert.equal(closed.code, CLOSE_CODES.MESSAGE_TOO_BIG);
    assert.deepEqual(await storedEvents(console.id), []);
    await assertStillServing();
  });

  it('keeps the stored event when a sequence number is reused with different content', async () => {
    const { console, socket } = await freshConsole();
    const original = console.nextEvent();
    const first = await sendBatch(socket, [original]);
    assert.deepEqual([first.upToSeq, first.findings], [1, []]);

    const forged: AssuranceEvent = { ...original, id: randomUUID(), type: 'session-ended', reasons: ['rewritten'] };
    const ack = await sendBatch(socket, [forged]);
    assert.equal(ack.upToSeq, 1);
    assert.deepEqual(ack.findings, [{ code: 'EVENT_SEQUENCE_CONFLICT', seq: 1 }]);

    const stored = await storedEvents(console.id);
    assert.equal(stored.length, 1);
    assert.equal(stored[0].id, original.id);
    assert.equal(stored[0].type, original.type);
    assert.deepEqual(stored[0].reasons, original.reasons);
    const conflicts = await backendEvents('integrity-sequence-conflict', console.id);
    assert.equal(conflicts.length, 1);
    assert.equal(conflicts[0].detail.seq, 1);
    await socket.close();
    await assertStillServing();
  });

  it('flags a skipped sequence number as a gap and records an integrity event', async () => {
    const { console, socket } = await freshConsole();
    const e1 = console.nextEvent();
    const e2 = console.nextEvent();
    const e3 = console.nextEvent();
    await sendBatch(socket, [e1]);
    const ack = await sendBatch(socket, [e3]);
    assert.equal(ack.upToSeq, 3);
    assert.deepEqual(ack.findings, [{ code: 'EVENT_SEQUENCE_GAP', seq: 3 }]);
    const gaps = await backendEvents('integrity-sequence-gap', console.id);
    assert.equal(gaps.length, 1);
    assert.deepEqual([gaps[0].detail.missingFrom, gaps[0].detail.missingTo], [2, 2]);
    const stored = await storedEvents(console.id);
    assert.deepEqual(
      stored.map((e) => [e.seq, e.integrity]),
      [
        [1, []],
        [3, ['sequence-gap']],
      ],
    );

    // The missing event arriving late fills the hole without duplicating anything.
    const late = await sendBatch(socket, [e2]);
    assert.deepEqual([late.upToSeq, late.findings], [3, []]);
    assert.deepEqual(
      (await storedEvents(console.id)).map((e) => e.seq as number).sort((a, b) => a - b),
      [1, 2, 3],
    );
    await socket.close();
    await assertStillServing();
  });

  it('flags an event whose previous hash does not match the stored chain', async () => {
    const { console, socket } = await freshConsole();
    await sendBatch(socket, [console.nextEvent()]);
    const broken: AssuranceEvent = { ...console.nextEvent(), prevHash: 'f'.repeat(64) };
    const ack = await sendBatch(socket, [broken]);
    assert.equal(ack.upToSeq, 2);
    assert.deepEqual(ack.findings, [{ code: 'EVENT_CHAIN_BROKEN', seq: 2 }]);
    const findings = await backendEvents('integrity-chain-broken', console.id);
    assert.equal(findings.length, 1);
    assert.equal(findings[0].detail.receivedPrevHash, 'f'.repeat(64));
    const stored = await storedEvents(console.id);
    assert.deepEqual(stored.at(-1).integrity, ['chain-broken']);
    const detail = (await t.admin.ok('GET', `/v1/admin/consoles/${console.id}`)) as Json;
    assert.ok((detail.events.integrityFindings as Json[]).some((e) => e.type === 'integrity-chain-broken'));
    await socket.close();
    await assertStillServing();
  });

  it('stores an exactly replayed batch once, on the same socket and after a reconnect', async () => {
    const { console, socket } = await freshConsole();
    const batch = [console.nextEvent(), console.nextEvent(), console.nextEvent()];
    const first = await sendBatch(socket, batch);
    assert.deepEqual([first.upToSeq, first.findings], [3, []]);
    const again = await sendBatch(socket, batch);
    assert.deepEqual([again.upToSeq, again.findings], [3, []]);
    await socket.close();

    const reconnected = await console.connect();
    const welcome = await reconnected.next('welcome');
    assert.equal(welcome.ackedSeq, 3);
    const replay = await sendBatch(reconnected, batch);
    assert.deepEqual([replay.upToSeq, replay.findings], [3, []]);
    const stored = await storedEvents(console.id);
    assert.deepEqual(
      stored.map((e) => e.id),
      batch.map((e) => e.id),
    );
    assert.ok(stored.every((e) => (e.integrity as string[]).length === 0));
    await reconnected.close();
    await assertStillServing();
  });

  it('refuses the upgrade with 401 when the signature does not verify, before any socket exists', async () => {
    const victim = await TestConsole.enrol(t.url, t.admin);
    const impostor = new TestConsole(t.url, ConsoleKey.generate(), victim.id);
    const before = t.backend.channel.connectionCount;
    const refusal = await impostor.connect().then(
      () => assert.fail('the upgrade was accepted'),
      (error: { status?: number; body?: string }) => error,
    );
    assert.equal(refusal.status, 401);
    assert.equal((JSON.parse(refusal.body ?? '{}') as Json).error.code, 'CONSOLE_SIGNATURE_INVALID');
    assert.equal(t.backend.channel.isConnected(victim.id), false);
    assert.equal(t.backend.channel.connectionCount, before);
    await assertStillServing();
  });

  it('refuses the upgrade with 401 when the signature headers are missing', async () => {
    const ws = new WebSocket(`${t.url.replace(/^http/, 'ws')}${CONSOLE_WS_PATH}`);
    const status = await new Promise<number | undefined>((resolve, reject) => {
      ws.once('open', () => reject(new Error('the upgrade was accepted')));
      ws.once('unexpected-response', (_req, res) => {
        res.resume();
        resolve(res.statusCode);
      });
      ws.once('error', reject);
    });
    assert.equal(status, 401);
  });

  it('refuses the upgrade with 403 for a revoked console', async () => {
    const console = await TestConsole.enrol(t.url, t.admin);
    await t.admin.ok('POST', `/v1/admin/consoles/${console.id}/revoke`, { reason: 'decommissioned' });
    const refusal = await console.connect().then(
      () => assert.fail('the upgrade was accepted'),
      (error: { status?: number; body?: string }) => error,
    );
    assert.equal(refusal.status, 403);
    assert.equal((JSON.parse(refusal.body ?? '{}') as Json).error.code, 'CONSOLE_REVOKED');
    assert.equal(t.backend.channel.isConnected(console.id), false);
    await assertStillServing();
  });

  it('tells a connected console it was revoked and closes its socket with 4003', async () => {
    const { console, socket } = await freshConsole();
    await t.admin.ok('POST', `/v1/admin/consoles/${console.id}/revoke`, { reason: 'stolen' });
    await expectViolation(socket, CLOSE_CODES.CONSOLE_REVOKED, 'CONSOLE_REVOKED');
    await eventually(() => !t.backend.channel.isConnected(console.id));
    await assertStillServing();
  });

  it('keeps hello working for a well-behaved console after all of the above', async () => {
    const console = await TestConsole.enrol(t.url, t.admin);
    const ws = await console.connect({ hello: false });
    ws.send({ type: 'hello', protocol: PROTOCOL_VERSION, policyVersion: 0, revocationEpoch: 0, agentVersion: 'test' });
    const welcome = await ws.next('welcome');
    assert.equal(welcome.ackedSeq, 0);
    const policy = await ws.next('policy');
    assert.equal(policy.version, 1);
    await ws.close();
  });
});
