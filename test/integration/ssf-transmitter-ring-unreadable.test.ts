/**
 * The Shared Signals transmitter signs and judges queued SETs only against the signing key ring as the database has
 * it (`TransmitterKeys.fresh()`: read again when older than 5 s). Here the ring stored in the database cannot be read:
 * one byte of its sealed value (`meta` row `key-ring:ssf`) is changed behind the backend's back, and the backend's
 * clock moved past the 5 s refresh. Then:
 * - a push round sends nothing, gives its lease back, shows `signing key ring unreadable: …` as the stream's last
 *   error (admin streams API) and tries again by itself: once the sealed value is put back, the SET that waited is
 *   delivered (nothing lost);
 * - an admin's or the receiver's disable still works (it signs nothing); a pause still needs the ring and is refused.
 * Real backend, real HTTP, the conformance receiver (test/helpers/ssf-receiver.ts), plain SQL for the fault.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { keyRingMetaKey } from '../../backend/crypto/key-ring.js';
import { SSF_RING_NAME } from '../../backend/ssf/transmitter/keys.js';
import { TransmitterRepository } from '../../backend/ssf/transmitter/repository.js';
import { startTestBackend, assertError, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { openRawDatabase, type RawDatabase } from '../helpers/raw-database.js';
import type { ConformanceReceiver } from '../helpers/ssf-receiver.js';
import { RegisteredReceiver } from '../helpers/ssf-registered-receiver.js';

const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
const PUSH = 'urn:ietf:rfc:8935';
const UNREADABLE = /^signing key ring unreadable: /;
const MARKER = 'test: not written by the transmitter';

describe('Shared Signals transmitter: the signing key ring in the database cannot be read', () => {
  let offset = 0;
  const clock = () => Date.now() + offset;
  let t: TestBackend;
  let db: RawDatabase;
  let registered: RegisteredReceiver;
  const metaKey = keyRingMetaKey(SSF_RING_NAME);

  before(async () => {
    t = await startTestBackend({ ssf: { retryBaseMs: 20, retryMaxMs: 200 } }, { clock });
    db = await openRawDatabase(t);
    registered = await RegisteredReceiver.register(t, 'Ring unreadable');
  });
  after(async () => {
    await registered.close();
    await db.close();
    await t.stop();
  });

  const call = (method: string, path: string, body?: unknown) => registered.call(method, path, body);
  const adminStream = async (id: string): Promise<Json> => {
    const { streams } = (await t.admin.ok('GET', '/v1/admin/ssf/streams')) as Json;
    const stream = (streams as Json[]).find((s) => s.id === id);
    assert.ok(stream, `the admin streams API lists ${id}`);
    return stream;
  };
  const queue = (id: string) => new TransmitterRepository(t.backend.store).head(id, 100);

  /** Resolves once `test` holds (checked every 20 ms), or throws after `ms` naming `what`. */
  async function until(test: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(await test())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(20);
    }
  }

  async function pushStream(receiver: ConformanceReceiver): Promise<string> {
    const created = await call('POST', '/ssf/streams', {
      delivery: { method: PUSH, endpoint_url: receiver.url },
      events_requested: [`${CAEP}session-revoked`],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    return created.body.stream_id as string;
  }

  /**
   * Changes one character of the ciphertext of the sealed ring in the database (it no longer authenticates under the
   * key-encryption key) and moves the backend's clock past the 5 s refresh: the next `fresh()` reads it again and
   * fails. Returns a function putting the original sealed value back.
   */
  async function corruptRing(): Promise<() => Promise<void>> {
    const row = await db.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', metaKey);
    assert.ok(row, `the database holds ${metaKey}`);
    const original = row.value;
    const sealed = JSON.parse(original) as { ct: string };
    assert.equal(typeof sealed.ct, 'string', 'a sealed record with its ciphertext');
    const flipped = sealed.ct.startsWith('A') ? `B${sealed.ct.slice(1)}` : `A${sealed.ct.slice(1)}`;
    const changed = JSON.stringify({ ...sealed, ct: flipped });
    assert.equal(await db.run('UPDATE meta SET value = ? WHERE key = ?', changed, metaKey), 1);
    offset += 6000;
    return async () => {
      assert.equal(await db.run('UPDATE meta SET value = ? WHERE key = ?', original, metaKey), 1);
    };
  }

  it('push: a round sends nothing, says why on the stream and tries again; the SET goes once the ring reads again', async () => {
    const receiver = await registered.listen();
    // The receiver refuses at first: the verification SET stays queued (retried with backoff), signed and judged
    // while the ring could still be read (the fan-out and /ssf/verify need it as well).
    receiver.setDown('503');
    const id = await pushStream(receiver);
    assert.equal((await call('POST', '/ssf/verify', { stream_id: id, state: 'held back' })).status, 204);
    const jti = (await adminStream(id)).verification?.jti as string;
    assert.ok(jti, 'the verification SET asked for');
    await until(
      async () => ((await queue(id)).find((r) => r.jti === jti)?.attempts ?? 0) >= 1,
      'a first push refused by the receiver',
    );

    const restore = await corruptRing();
    try {
      await until(
        async () => UNREADABLE.test(String((await adminStream(id)).lastError)),
        'the stream to show the ring unreadable',
      );
      const shown = await adminStream(id);
      assert.match(String(shown.lastError), /KEY_RING_TAMPERED|does not authenticate/);
      // Rounds keep running (each takes the lease, fails, gives it back): one seen without the lease.
      await until(async () => (await adminStream(id)).deliveringNode === null, 'the round to give its lease back');

      // The receiver is up now; two more rounds, each seen to end (the transmitter writes the error again over a
      // marker), the second begun wholly after the receiver came up: neither posted anything.
      receiver.setDown('no');
      for (let round = 0; round < 2; round++) {
        assert.equal(await db.run('UPDATE ssf_streams SET last_error = ? WHERE id = ?', MARKER, id), 1);
        await until(
          async () => UNREADABLE.test(String((await adminStream(id)).lastError)),
          'another round to find the ring unreadable',
        );
      }
      assert.deepEqual(
        receiver.accepted.map((s) => s.jti),
        [],
        'nothing is sent while the ring cannot be read',
      );
      assert.ok(
        (await queue(id)).some((r) => r.jti === jti),
        'the SET is still queued',
      );
    } finally {
      await restore();
    }

    // The ring reads again: the next round (no kick from the test) delivers the SET that waited.
    await receiver.waitFor((s) => s.some((x) => x.jti === jti), 15_000, 'the verification SET');
    await until(async () => (await adminStream(id)).lastError === null, 'the last error cleared by the delivery');
    assert.deepEqual(receiver.rejected, []);
    assert.deepEqual(
      (await queue(id)).filter((r) => r.jti === jti),
      [],
      'delivered and off the queue',
    );
  });

  it('a disable, by an admin or by the receiver, works without the ring; a pause needs it', async () => {
    const receiver = await registered.listen();
    const byAdmin = await pushStream(receiver);
    const byReceiver = await pushStream(receiver);
    const restore = await corruptRing();
    try {
      const paused = await t.admin.request('POST', `/v1/admin/ssf/streams/${byAdmin}/status`, { status: 'paused' });
      assert.notEqual(paused.status, 200, JSON.stringify(paused.body));
      assertError(paused, 500, 'KEY_RING_TAMPERED');
      const pausedByReceiver = await call('POST', '/ssf/status', { stream_id: byReceiver, status: 'paused' });
      assert.notEqual(pausedByReceiver.status, 200, JSON.stringify(pausedByReceiver.body));
      assertError(pausedByReceiver, 500, 'KEY_RING_TAMPERED');
      assert.equal((await adminStream(byAdmin)).status, 'enabled', 'the refused pause changed nothing');
      assert.equal((await adminStream(byReceiver)).status, 'enabled', 'the refused pause changed nothing');

      const disabled = await t.admin.request('POST', `/v1/admin/ssf/streams/${byAdmin}/status`, {
        status: 'disabled',
        reason: 'emergency',
      });
      assert.equal(disabled.status, 200, JSON.stringify(disabled.body));
      assert.equal(disabled.body.status, 'disabled');
      assert.equal((await adminStream(byAdmin)).status, 'disabled');

      const disabledByReceiver = await call('POST', '/ssf/status', { stream_id: byReceiver, status: 'disabled' });
      assert.equal(disabledByReceiver.status, 200, JSON.stringify(disabledByReceiver.body));
      assert.equal(disabledByReceiver.body.status, 'disabled');
      assert.equal((await adminStream(byReceiver)).status, 'disabled');
    } finally {
      await restore();
    }
  });
});
