/**
 * A pushed SET that could not be acted on releases its `jti` so the transmitter's retry is accepted. The
 * release must be on disk before the transmitter is told to retry: a power loss that restored the claim
 * would have the retry refused as a replay, and the signal (a revocation) lost though never applied.
 * Observed on the embedded store with durability FULL and the WAL's flush held by the test.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { pino } from 'pino';
import { openSqliteStore } from '../../store/sqlite-store.js';
import type { Store } from '../../store/repositories.js';
import type { EventLog } from '../../services/event-log.js';
import { tempDir } from '../../temp-dir.js';
import { settledSoon } from '../../test-kit.js';
import { CAEP } from './set-validator.js';
import { RegisterTransmitterSchema, SsfReceiver } from './receiver-service.js';

const ISSUER = 'https://idp.bank.example/';
const AUDIENCE = 'https://baton.bank.example/ssf';

/** WAL flushes that pass at once, or, while `hold` is on, wait for the test to release them. */
function heldFlush() {
  const held: (() => void)[] = [];
  let asked: () => void = () => undefined;
  const state = { hold: false };
  return {
    state,
    held,
    syncWal: () =>
      new Promise<void>((resolve) => {
        if (!state.hold) return resolve();
        held.push(resolve);
        asked();
      }),
    /** Resolves once a flush is held. */
    asked: () =>
      new Promise<void>((resolve) => {
        asked = resolve;
        if (held.length > 0) resolve();
      }),
    open: () => {
      state.hold = false;
      for (const release of held.splice(0)) release();
    },
  };
}

/** The receiver on `store`; its event log fails every unit while `down.events` is on (the database away). */
function receiverOn(store: Store, down: { events: boolean }): SsfReceiver {
  const events = {
    atomically: <T>(work: (uow: unknown) => Promise<T>) =>
      down.events
        ? Promise.reject(new Error('the database is away'))
        : store.transaction((tx) => work({ store: tx, record: () => Promise.resolve() })),
  } as unknown as EventLog;
  return new SsfReceiver({
    store,
    events,
    revocations: undefined as never,
    clock: () => Date.now(),
    logger: pino({ level: 'silent' }),
    assertNotLastAdmin: () => Promise.resolve(),
  });
}

describe('Shared Signals push: the jti of a SET not acted on', () => {
  it('is released on disk before the transmitter is told to retry, and the retry is accepted', async () => {
    const flush = heldFlush();
    const store = openSqliteStore({ dataDir: tempDir('baton-store-'), durability: 'full', syncWal: flush.syncWal });
    const down = { events: false };
    try {
      const receiver = receiverOn(store, down);
      const { publicKey, privateKey } = await generateKeyPair('ES256');
      const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
      const { transmitter, pushToken } = await receiver.register(
        RegisterTransmitterSchema.parse({ issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [jwk] } }),
        'admin',
      );
      const now = Math.floor(Date.now() / 1000);
      const set = await new SignJWT({
        iss: ISSUER,
        aud: AUDIENCE,
        jti: 'set-1',
        iat: now,
        sub_id: { format: 'email', email: 'teller@bank.example' },
        events: { [`${CAEP}session-revoked`]: { event_timestamp: now } },
      })
        .setProtectedHeader({ alg: 'ES256', typ: 'secevent+jwt', kid: 'k1' })
        .sign(privateKey);
      const push = () =>
        receiver.push(transmitter.id, `Bearer ${pushToken}`, 'application/secevent+jwt', Buffer.from(set));

      down.events = true;
      flush.state.hold = true;
      const failed = push();
      assert.equal(await settledSoon(failed), false, 'the transmitter is not answered before the release is on disk');
      await flush.asked();
      flush.open();
      await assert.rejects(failed, /the database is away/);

      down.events = false;
      assert.deepEqual(await push(), { status: 202, body: null }, 'the retry is accepted, not refused as a replay');
    } finally {
      flush.open();
      await store.close();
    }
  });
});
