/**
 * A SET waits in a paused stream's queue while the transmitter's key is rotated and the old key's overlap runs out
 * (`ssf.keyOverlapHours`: the retired key leaves the JWKS). When the stream resumes, the receiver must still get a SET
 * it can verify against the JWKS published then, with the same jti and claims: the transmitter signs it again with the
 * current key as it hands it out, push (RFC 8935) and poll (RFC 8936). A SET whose key is still published goes out byte
 * for byte as it was queued. Real backend, real HTTP, the conformance receiver (test/helpers/ssf-receiver.ts).
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { TransmitterRepository } from '../../backend/ssf/transmitter/repository.js';
import { startTestBackend, TestConsole, httpJson, type Json, type TestBackend } from '../helpers/backend-harness.js';
import type { ReceivedSet } from '../helpers/ssf-receiver.js';
import { RegisteredReceiver } from '../helpers/ssf-registered-receiver.js';

const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
const PUSH = 'urn:ietf:rfc:8935';
const POLL = 'urn:ietf:rfc:8936';
const HOUR = 3600_000;

const kidOf = (jwt: string) => decodeProtectedHeader(jwt).kid as string;
const payloadOf = (jwt: string) => jwt.split('.')[1];

describe('Shared Signals transmitter: SETs queued under a key that has since left the JWKS', () => {
  let offset = 0;
  const clock = () => Date.now() + offset;
  let t: TestBackend;
  let registered: RegisteredReceiver;
  const consoles: TestConsole[] = [];

  before(async () => {
    t = await startTestBackend({ ssf: { keyOverlapHours: 1, retryBaseMs: 20, retryMaxMs: 200 } }, { clock });
    for (let i = 0; i < 3; i++) consoles.push(await TestConsole.enrol(t.url, t.admin));
    registered = await RegisteredReceiver.register(t, 'Paused for a long time');
  });
  after(async () => {
    await registered.close();
    await t.stop();
  });
  // Each test's streams go with it: a later test's rotation and clock would otherwise reach what they still hold.
  const streams: string[] = [];
  afterEach(async () => {
    for (const id of streams.splice(0)) await call('DELETE', `/ssf/streams?stream_id=${id}`);
  });

  const call = (method: string, path: string, body?: unknown) => registered.call(method, path, body);
  const jwks = async () => (await httpJson(`${t.url}/ssf/jwks.json`, { method: 'GET' })).body as JSONWebKeySet;
  const queue = (streamId: string) => new TransmitterRepository(t.backend.store).head(streamId, 100);

  /** A stream asking for device-compliance-change, paused by its receiver. */
  async function pausedStream(delivery: Json): Promise<{ id: string; pollUrl: string }> {
    const created = await call('POST', '/ssf/streams', {
      delivery,
      events_requested: [`${CAEP}device-compliance-change`],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.stream_id as string;
    streams.push(id);
    const paused = await call('POST', '/ssf/status', { stream_id: id, status: 'paused' });
    assert.equal(paused.status, 200, JSON.stringify(paused.body));
    return { id, pollUrl: created.body.delivery.endpoint_url as string };
  }

  /**
   * Queues SETs on the paused streams: a console revoked by the admin (device-compliance-change, from the event log;
   * the consoles were enrolled before the test clock moved: a console's own requests carry real time) and a
   * verification each; returns each stream's queued SETs once the fan-out has queued them.
   */
  async function queueWhilePaused(ids: string[]): Promise<Map<string, { jti: string; setJwt: string }[]>> {
    const console = consoles.shift();
    assert.ok(console);
    await t.admin.ok('POST', `/v1/admin/consoles/${console.id}/revoke`, { reason: 'decommissioned' });
    for (const id of ids) assert.equal((await call('POST', '/ssf/verify', { stream_id: id, state: id })).status, 204);
    const queued = new Map<string, { jti: string; setJwt: string }[]>();
    const deadline = Date.now() + 15_000;
    for (const id of ids) {
      for (;;) {
        const rows = await queue(id);
        const claims = rows.map(
          (r) => JSON.parse(Buffer.from(payloadOf(r.setJwt) ?? '', 'base64url').toString()) as Json,
        );
        if (claims.some((c) => c.sub_id.device?.id === console.id)) {
          queued.set(id, rows);
          break;
        }
        if (Date.now() > deadline) throw new Error(`the console's SET was not queued on ${id}`);
        await sleep(20);
      }
    }
    return queued;
  }

  it('a SET whose key is still published goes out byte for byte as queued, push and poll', async () => {
    const receiver = await registered.listen();
    const push = await pausedStream({ method: PUSH, endpoint_url: receiver.url });
    const poll = await pausedStream({ method: POLL });
    const queued = await queueWhilePaused([push.id, poll.id]);
    const rotated = (await t.admin.ok('POST', '/v1/admin/ssf/keys/rotate', {})) as Json;
    offset += HOUR / 2; // retired half an hour ago: published for another half hour
    assert.ok((await jwks()).keys.some((k) => k.kid === rotated.previous));

    assert.equal((await call('POST', '/ssf/status', { stream_id: push.id, status: 'enabled' })).status, 200);
    const pushed = queued.get(push.id) ?? [];
    assert.ok(pushed.length >= 3, 'stream-updated (paused), verification, device-compliance-change');
    await receiver.waitFor((s) => pushed.every((q) => s.some((x) => x.jti === q.jti)), 15_000, 'the queued SETs');
    for (const q of pushed) {
      assert.equal(kidOf(q.setJwt), rotated.previous);
      assert.equal(receiver.accepted.find((x) => x.jti === q.jti)?.raw, q.setJwt, 'byte for byte as queued');
    }

    assert.equal((await call('POST', '/ssf/status', { stream_id: poll.id, status: 'enabled' })).status, 200);
    const polled = queued.get(poll.id) ?? [];
    const got = await receiver.drainPoll(
      poll.pollUrl,
      registered.token,
      (s) => polled.every((q) => s.some((x) => x.jti === q.jti)),
      'the queued SETs',
    );
    for (const q of polled) assert.equal(got.find((x) => x.jti === q.jti)?.raw, q.setJwt, 'byte for byte as queued');
    assert.deepEqual(receiver.rejected, []);
  });

  /**
   * Rotates the key and moves the clock past the overlap (keyOverlapHours 1): the key the queued SETs were signed with
   * is no longer published. Returns the current kid and a verifier against the JWKS published now.
   */
  async function retireQueuedKey(queued: Map<string, { jti: string; setJwt: string }[]>) {
    const old = (await jwks()).keys.at(0)?.kid;
    const rotated = (await t.admin.ok('POST', '/v1/admin/ssf/keys/rotate', {})) as Json;
    assert.equal(rotated.previous, old);
    for (const rows of queued.values()) {
      assert.ok(rows.length >= 3, 'stream-updated (paused), verification, device-compliance-change');
      for (const q of rows) assert.equal(kidOf(q.setJwt), old, 'queued under the old key');
    }
    offset += 2 * HOUR;
    const published = await jwks();
    assert.deepEqual(
      published.keys.map((k) => k.kid),
      [rotated.current],
      'only the current key is published',
    );
    const verify = (jwt: string) => jwtVerify(jwt, createLocalJWKSet(published), { typ: 'secevent+jwt' });
    for (const rows of queued.values()) {
      await assert.rejects(verify(rows[0]?.setJwt ?? ''), 'as queued, no receiver could verify it');
    }
    return { current: rotated.current as string, verify };
  }

  /** Each queued SET was received signed with `current`, with the payload bytes queued, verifying against the JWKS. */
  async function assertSignedAgain(
    queued: { jti: string; setJwt: string }[],
    received: ReceivedSet[],
    current: string,
    verify: (jwt: string) => Promise<{ payload: { jti?: string } }>,
  ): Promise<void> {
    for (const q of queued) {
      const got = received.find((x) => x.jti === q.jti);
      assert.ok(got, `received ${q.jti}`);
      assert.equal(got.header.kid, current, 'signed with the current key');
      assert.equal(payloadOf(got.raw), payloadOf(q.setJwt), 'the same payload bytes: same claims, same jti');
      assert.equal((await verify(got.raw)).payload.jti, q.jti, 'verifies against the JWKS published now');
    }
  }

  it('push: a SET queued under a key retired past the overlap arrives signed with the current key, same jti and claims; a failed push keeps it so', async () => {
    const receiver = await registered.listen();
    const failing = await registered.listen();
    const push = await pausedStream({ method: PUSH, endpoint_url: receiver.url });
    const retried = await pausedStream({ method: PUSH, endpoint_url: failing.url });
    const queued = await queueWhilePaused([push.id, retried.id]);
    const { current, verify } = await retireQueuedKey(queued);

    const pushed = queued.get(push.id) ?? [];
    assert.equal((await call('POST', '/ssf/status', { stream_id: push.id, status: 'enabled' })).status, 200);
    await receiver.waitFor((s) => pushed.every((q) => s.some((x) => x.jti === q.jti)), 15_000, 'the queued SETs');
    await assertSignedAgain(pushed, receiver.accepted, current, verify);
    assert.deepEqual(receiver.rejected, []);

    // The other receiver refuses the first push (503): the SET signed again is what the queue keeps for the retry.
    failing.setDown('503');
    const waiting = queued.get(retried.id) ?? [];
    const first = waiting[0];
    assert.ok(first);
    assert.equal((await call('POST', '/ssf/status', { stream_id: retried.id, status: 'enabled' })).status, 200);
    let kept: string | undefined;
    const deadline = Date.now() + 15_000;
    while (kept === undefined || kidOf(kept) !== current) {
      if (Date.now() > deadline) throw new Error(`the failed push did not keep the SET signed again: ${kept}`);
      await sleep(20);
      kept = (await queue(retried.id)).find((r) => r.jti === first.jti)?.setJwt;
    }
    assert.equal(payloadOf(kept), payloadOf(first.setJwt));
    failing.setDown('no');
    await failing.waitFor((s) => waiting.every((q) => s.some((x) => x.jti === q.jti)), 15_000, 'the queued SETs');
    await assertSignedAgain(waiting, failing.accepted, current, verify);
    assert.equal(failing.accepted.find((x) => x.jti === first.jti)?.raw, kept, 'the retry sent what the queue kept');
    assert.deepEqual(failing.rejected, []);
  });

  it('poll: a SET queued under a key retired past the overlap is handed out signed with the current key, same jti and claims, and kept so', async () => {
    const receiver = await registered.listen();
    const poll = await pausedStream({ method: POLL });
    const queued = await queueWhilePaused([poll.id]);
    const { current, verify } = await retireQueuedKey(queued);
    const polled = queued.get(poll.id) ?? [];
    const signedBefore = ((await t.admin.ok('GET', '/v1/admin/ssf/streams')) as Json).node.resigned as number;

    assert.equal((await call('POST', '/ssf/status', { stream_id: poll.id, status: 'enabled' })).status, 200);
    const answer = await receiver.poll(poll.pollUrl, registered.token, { returnImmediately: true });
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.errors, {}, 'every SET handed out passes the conformance checks (its kid is published)');
    await assertSignedAgain(polled, receiver.accepted, current, verify);
    const { node } = (await t.admin.ok('GET', '/v1/admin/ssf/streams')) as Json;
    assert.ok(node.resigned - signedBefore >= polled.length, 'the node counts the SETs it signed again');
    // Not acknowledged yet: the queue keeps them as handed out (a redelivery is not signed again).
    const kept = await queue(poll.id);
    for (const q of polled) assert.equal(kept.find((r) => r.jti === q.jti)?.setJwt, answer.raw[q.jti]);
    await receiver.poll(poll.pollUrl, registered.token, { ack: answer.accepted, returnImmediately: true });
    assert.deepEqual(
      (await queue(poll.id)).filter((r) => polled.some((q) => q.jti === r.jti)),
      [],
      'acknowledged',
    );
  });
});
