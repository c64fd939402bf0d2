import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import {
  startTestBackend,
  TestConsole,
  httpJson,
  type ConsoleSocket,
  type Json,
  type TestBackend,
} from '../helpers/backend-harness.js';
import { ConformanceReceiver } from '../helpers/ssf-receiver.js';
import { dropTestDatabase } from '../helpers/test-database.js';

const PUSH = 'urn:ietf:rfc:8935';
const LOCKED = 'urn:baton:event:session-locked';
const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';

/** Re-reads the admin view of one stream until `predicate` holds (the queue is in the store: no sleep-then-assert). */
async function streamView(t: TestBackend, id: string, predicate: (s: Json) => boolean, what: string): Promise<Json> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const { streams } = (await t.admin.ok('GET', '/v1/admin/ssf/streams')) as Json;
    const stream = streams.find((s: Json) => s.id === id);
    if (stream !== undefined && predicate(stream)) return stream;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(stream)}`);
    await sleep(20);
  }
}

/** Sends `count` session-locked events from the console in one batch; returns their Baton ids in order. */
async function lockEvents(console: TestConsole, socket: ConsoleSocket, count: number): Promise<string[]> {
  const events = Array.from({ length: count }, () => console.nextEvent({ type: 'session-locked', reasons: ['idle'] }));
  socket.send({ type: 'events', events });
  const last = events[events.length - 1]?.seq ?? 0;
  await socket.next('events-ack', (m: Json) => m.upToSeq >= last);
  return events.map((e) => e.id);
}

/** The `admin-action` events of the event log with one of `reasons`, oldest first. */
async function adminActions(t: TestBackend, ...reasons: string[]): Promise<Json[]> {
  const events = await t.backend.events.query({ type: 'admin-action', limit: 10_000 });
  return events
    .filter((e) => e.reasons.some((r) => reasons.includes(r)))
    .sort((a, b) => a.cursor - b.cursor) as unknown as Json[];
}

describe('Shared Signals push delivery: durable, ordered, at least once', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'baton-ssf-'));
  let offset = 0;
  const clock = () => Date.now() + offset;
  // A fixed issuer, as in production: a restarted test backend listens on another port.
  const issuer = 'https://baton.bank.example';
  const settings = { ssf: { issuer, retryBaseMs: 20, retryMaxMs: 100, pauseAfterSeconds: 3600 }, dataDir };
  let t: TestBackend;
  let adminToken: string;
  let receiver: ConformanceReceiver;
  let streamId: string;
  let console: TestConsole;
  let socket: ConsoleSocket;

  before(async () => {
    t = await startTestBackend(settings, { clock });
    adminToken = t.admin.token;
    const issued = (await t.admin.ok('POST', '/v1/admin/ssf/receivers', {
      name: 'SIEM',
      scopes: ['ssf.manage'],
    })) as Json;
    receiver = await new ConformanceReceiver({
      issuer,
      audience: issued.receiver.audience,
      jwksUri: `${t.url}/ssf/jwks.json`,
    }).listen();
    const created = await httpJson(`${t.url}/ssf/streams`, {
      method: 'POST',
      headers: { authorization: `Bearer ${issued.token as string}` },
      body: JSON.stringify({
        delivery: { method: PUSH, endpoint_url: receiver.url },
        events_requested: [LOCKED, `${CAEP}device-compliance-change`],
      }),
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    streamId = created.body.stream_id;
    console = await TestConsole.enrol(t.url, t.admin);
    socket = await console.connect();
    await socket.next('welcome');
  });
  after(async () => {
    await receiver.close();
    await t.stop();
    rmSync(dataDir, { recursive: true, force: true });
    await dropTestDatabase(dataDir);
  });

  it('a receiver down for a while gets everything when it comes back, in order, once; a key rotated meanwhile still verifies', async () => {
    await receiver.waitFor(
      (s) => s.some((x) => x.type === `${CAEP}device-compliance-change`),
      10_000,
      'the console enrolment',
    );
    const before = receiver.accepted.length;
    receiver.setDown('503');
    const first = await lockEvents(console, socket, 30);
    const down = await streamView(
      t,
      streamId,
      (s) => s.backlog === 30 && /HTTP 503/.test(s.lastError ?? ''),
      'the backlog and the error',
    );
    assert.equal(down.status, 'enabled');
    assert.ok(down.failingSince > 0);
    const oldKid = ((await httpJson(`${t.url}/ssf/jwks.json`, { method: 'GET' })).body as Json).keys[0].kid;
    const rotated = (await t.admin.ok('POST', '/v1/admin/ssf/keys/rotate', {})) as Json;
    assert.equal(rotated.previous, oldKid);
    // The rotation leaves an event, like Baton's other signing keys.
    const rotation = (await adminActions(t, 'signing-key-rotated')).filter((e) => e.detail.key === 'ssf');
    assert.equal(rotation.length, 1, 'one event for the SET signing key rotation');
    assert.equal(rotation[0].detail.previousKid, oldKid);
    assert.equal(rotation[0].detail.kid, rotated.current);
    assert.equal(rotation[0].detail.alg, 'RS256');
    assert.equal(typeof rotation[0].detail.actor, 'string');
    const jwks = (await httpJson(`${t.url}/ssf/jwks.json`, { method: 'GET' })).body as Json;
    assert.deepEqual(
      jwks.keys.map((k: Json) => k.kid).sort(),
      [oldKid, rotated.current].sort(),
      'both keys published during the overlap',
    );
    receiver.setDown('reset');
    const second = await lockEvents(console, socket, 10);
    await streamView(
      t,
      streamId,
      (s) => s.backlog === 40 && /unreachable/.test(s.lastError ?? ''),
      'the connection errors',
    );
    receiver.setDown('no');
    await receiver.waitFor((s) => s.length - before >= 40, 15_000, '40 session-locked SETs');
    const got = receiver.accepted.slice(before);
    assert.deepEqual(
      got.map((s) => s.event.baton_event_id),
      [...first, ...second],
      'every event, in order, once',
    );
    assert.equal(new Set(got.map((s) => s.jti)).size, 40);
    assert.deepEqual(
      [...new Set(got.slice(0, 30).map((s) => s.header.kid))],
      [oldKid],
      'queued before the rotation: the old key',
    );
    assert.deepEqual([...new Set(got.slice(30).map((s) => s.header.kid))], [rotated.current]);
    assert.deepEqual(receiver.rejected, []);
    // The admin view reads the stream's row and its queue one after the other: wait for both to show it healed.
    const healed = await streamView(
      t,
      streamId,
      (s) => s.backlog === 0 && s.lastError === null,
      'the queue to empty and the error to clear',
    );
    assert.equal(healed.failingSince, null);
  });

  it('a receiver down past the limit is paused and shown so; resuming delivers what queued meanwhile', async () => {
    const before = receiver.accepted.length;
    receiver.setDown('503');
    const ids = await lockEvents(console, socket, 3);
    await streamView(t, streamId, (s) => s.backlog === 3 && s.failingSince !== null, 'the failure');
    offset += 2 * 3600 * 1000; // the receiver has now failed for longer than pauseAfterSeconds
    const paused = await streamView(t, streamId, (s) => s.status === 'paused', 'the pause');
    assert.match(paused.statusReason, /receiver unreachable or refusing since .*HTTP 503/);
    // The automatic pause is an event, recorded with the status change: who (the transmitter), why, old → new.
    const [pause, ...others] = (await adminActions(t, 'ssf-stream-paused')).filter((e) => e.detail.stream === streamId);
    assert.ok(pause, 'the automatic pause left an event');
    assert.equal(others.length, 0);
    assert.deepEqual(pause.reasons, ['ssf-stream-paused', 'receiver-down-past-limit']);
    assert.equal(pause.detail.actor, 'automatic');
    assert.equal(pause.detail.previousStatus, 'enabled');
    assert.equal(pause.detail.status, 'paused');
    assert.equal(pause.detail.reason, paused.statusReason);
    assert.equal(typeof pause.detail.receiver, 'string');
    const more = await lockEvents(console, socket, 2);
    await streamView(t, streamId, (s) => s.backlog >= 5, 'events queued while paused');
    receiver.setDown('no');
    await t.admin.ok('POST', `/v1/admin/ssf/streams/${streamId}/status`, { status: 'enabled' });
    const resumed = (await adminActions(t, 'ssf-stream-enabled')).filter((e) => e.detail.stream === streamId);
    assert.equal(resumed.length, 1);
    assert.equal(resumed[0].detail.previousStatus, 'paused');
    assert.notEqual(resumed[0].detail.actor, 'automatic', "the admin's resume names the admin");
    await receiver.waitFor(
      (s) =>
        s.slice(before).filter((x) => x.type === LOCKED).length === 5 &&
        s.slice(before).some((x) => x.type.endsWith('/stream-updated') && x.event.status === 'enabled'),
      15_000,
      'the 5 held events and the stream-updated (enabled)',
    );
    const got = receiver.accepted.slice(before);
    assert.deepEqual(
      got.filter((s) => s.type === LOCKED).map((s) => s.event.baton_event_id),
      [...ids, ...more],
    );
    // The stream-updated events tell the receiver what happened to its stream.
    const updates = got.filter((s) => s.type.endsWith('/stream-updated')).map((s) => s.event.status);
    assert.ok(updates.includes('paused') && updates.includes('enabled'), JSON.stringify(updates));
  });

  it('what was queued survives a restart of the backend and is delivered by the next start', async () => {
    const before = receiver.accepted.length;
    receiver.setDown('503');
    const ids = await lockEvents(console, socket, 4);
    await streamView(t, streamId, (s) => s.backlog === 4, 'the backlog');
    await t.stop();
    t = await startTestBackend(settings, { clock, adminToken });
    receiver.useJwks(`${t.url}/ssf/jwks.json`);
    receiver.setDown('no');
    await receiver.waitFor(
      (s) => s.slice(before).filter((x) => x.type === LOCKED).length === 4,
      15_000,
      'the queued events after the restart',
    );
    assert.deepEqual(
      receiver.accepted
        .slice(before)
        .filter((s) => s.type === LOCKED)
        .map((s) => s.event.baton_event_id),
      ids,
    );
    assert.deepEqual(receiver.rejected, []);
  });
});
