import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify } from 'jose';
import pino from 'pino';
import { KeyEncryptionKey, keyEncryptionKeyPath } from '../../crypto/key-encryption-key.js';
import { JWKS_READ_MS } from '../../crypto/rotating-signing-keys.js';
import { EventLog } from '../../services/event-log.js';
import type { Store } from '../../store/repositories.js';
import { openSqliteStore } from '../../store/sqlite-store.js';
import { buildSet, resignSet, setKid, signSet } from '../set.js';
import { SsfTransmitterConfigSchema } from './config.js';
import { DeliverySigner } from './delivery-signer.js';
import { DELIVERY_MARGIN_MS, TransmitterKeys } from './keys.js';
import { TransmitterRepository } from './repository.js';
import { POLL_METHOD, SsfTransmitter } from './transmitter.js';

const HOUR = 3600_000;
const OVERLAP = HOUR;

/**
 * Two nodes of a cluster (two key rings over one store, one clock that the test moves): a queued SET whose key has left
 * the JWKS is signed again, with the key the cluster signs with now, never the one a node held while another retired it.
 */
describe('Shared Signals delivery: SETs whose key left the JWKS are signed again', () => {
  let dir: string;
  let store: Store;
  let now = Date.parse('2026-12-01T08:00:00Z');
  const clock = () => now;
  let a: TransmitterKeys;
  let b: TransmitterKeys;

  const open = () =>
    TransmitterKeys.open({
      store,
      dataDir: dir,
      kekFile: keyEncryptionKeyPath(dir, {}),
      clock,
      algorithm: 'RS256',
      overlapMs: OVERLAP,
      logger: pino({ level: 'silent' }),
    });
  const set = (jti: string) =>
    buildSet({
      iss: 'https://baton.test',
      aud: 'https://receiver.test',
      type: 'https://schemas.openid.net/secevent/ssf/event-type/verification',
      event: { state: jti },
      subject: { format: 'opaque', id: 'str_1' },
      jti,
    });
  /** Verifies against the JWKS a receiver would fetch now (from node `keys`), as jose does. */
  const verifies = async (jwt: string, keys: TransmitterKeys) =>
    (await jwtVerify(jwt, createLocalJWKSet(await keys.publishedJwks()), { typ: 'secevent+jwt' })).payload;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-ssf-resign-'));
    KeyEncryptionKey.create(keyEncryptionKeyPath(dir, {}));
    store = openSqliteStore({ dataDir: dir, durability: 'normal' });
    a = await open();
    b = await open();
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('re-signs the same payload bytes under the new key; a SET whose key is published goes byte for byte', async () => {
    const k0 = a.signingKey();
    const queued = signSet(set('jti-1'), k0);
    assert.equal(setKid(queued), k0.kid);
    const signer = new DeliverySigner(b);
    assert.equal(signer.asQueued(queued), true, 'the active key: as queued');
    assert.equal(await signer.resign(queued), queued, 'a published key is never signed again');

    await a.rotate();
    const k1 = a.signingKey();
    now += OVERLAP - DELIVERY_MARGIN_MS - 1000;
    await b.fresh();
    assert.equal(new DeliverySigner(b).asQueued(queued), true, 'retired, but published for more than the margin');
    now += 2000; // leaves the JWKS within the margin: signed again already
    await b.fresh();
    const late = new DeliverySigner(b);
    assert.equal(late.asQueued(queued), false);
    const resigned = await late.resign(queued);
    assert.equal(late.resigned, 1);
    assert.equal(setKid(resigned), k1.kid);
    assert.equal(resigned.split('.')[1], queued.split('.')[1], 'the same payload bytes');
    assert.equal((await verifies(resigned, a)).jti, 'jti-1');
    assert.throws(() => resignSet('not.a-jws', k1), /Not a compact JWS/);
  });

  it('a node idle past the overlap signs with the key the cluster uses now, not the one it held', async () => {
    const held = b.signingKey();
    assert.equal(held.kid, a.signingKey().kid, 'both nodes sign with the same key');
    const queued = signSet(set('jti-2'), held);
    // Node a rotates; node b hears nothing for longer than the overlap (idle, or it delivers only).
    await a.rotate();
    now += 2 * OVERLAP;
    assert.equal(b.signingKey().kid, held.kid, 'b still holds the key it read (its re-read has only started)');
    const signer = new DeliverySigner(b);
    assert.equal(signer.asQueued(queued), true, "as b's ring stood, before the delivery read it again");
    await b.fresh();
    assert.equal(signer.asQueued(queued), false, 'read again: the key is no longer published');
    const resigned = await signer.resign(queued);
    assert.equal(setKid(resigned), a.signingKey().kid, "the cluster's key now");
    assert.notEqual(setKid(resigned), held.kid);
    assert.equal((await verifies(resigned, a)).jti, 'jti-2');
    assert.equal((await verifies(resigned, b)).jti, 'jti-2');
    await assert.rejects(verifies(queued, a), 'the SET as queued no longer verifies anywhere');
  });

  it('a SET under a key another node made since this one read the ring goes as queued, not signed again', async () => {
    await b.fresh();
    await a.rotate(); // within b's 5 s: b's ring does not know the new key yet
    const queued = signSet(set('jti-3'), a.signingKey());
    const signer = new DeliverySigner(b);
    assert.equal(signer.asQueued(queued), false, 'unknown to the ring b holds');
    assert.equal(await signer.resign(queued), queued, 'b read the ring again: the key is published');
    assert.equal(signer.resigned, 0);
  });

  it('a node serves its JWKS from a ring read at most JWKS_READ_MS ago: a key another node rotated to is in it by then', async () => {
    await b.publishedJwks(); // node B has just read its ring
    await a.rotate();
    const rotatedTo = a.signingKey().kid;
    const kidsOfB = async () => (await b.publishedJwks()).keys.map((k) => k.kid);
    assert.ok(!(await kidsOfB()).includes(rotatedTo), 'within the bound: served as read (a flood reads it once)');
    now += JWKS_READ_MS;
    assert.ok((await kidsOfB()).includes(rotatedTo), 'read again: the new key is published');
  });

  it('signs nothing when the ring cannot be read again', async () => {
    const queued = signSet(set('jti-4'), a.signingKey());
    await a.rotate();
    now += 2 * OVERLAP;
    const meta = store.meta;
    const get = meta.get.bind(meta);
    meta.get = () => Promise.reject(new Error('database unreachable'));
    try {
      const signer = new DeliverySigner(b);
      await assert.rejects(signer.resign(queued), /database unreachable/);
      assert.equal(signer.resigned, 0);
    } finally {
      meta.get = get;
    }
  });
});

/**
 * The same at the transmitter, two nodes over one store: node A queues a SET and rotates the key; node B, which read
 * the ring before the rotation and nothing since, answers the receiver's poll past the overlap. It must hand out the SET
 * signed again with A's current key (verifiable against the JWKS either node publishes), keep it so in the queue, and
 * a redelivery by A hands out those same bytes without signing again.
 */
describe('Shared Signals transmitter in a cluster: a poll past the overlap on a node that did not rotate', () => {
  let dir: string;
  let store: Store;
  let now = Date.parse('2026-12-01T08:00:00Z');
  const clock = () => now;
  const nodes: SsfTransmitter[] = [];
  const keys: TransmitterKeys[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-ssf-resign-cluster-'));
    KeyEncryptionKey.create(keyEncryptionKeyPath(dir, {}));
    store = openSqliteStore({ dataDir: dir, durability: 'normal' });
    const logger = pino({ level: 'silent' });
    const events = new EventLog(store, clock, logger);
    const config = SsfTransmitterConfigSchema.parse({
      issuer: 'https://baton.test',
      keyOverlapHours: OVERLAP / HOUR,
      pollRedeliverSeconds: 1,
    });
    for (const nodeId of ['node-a', 'node-b']) {
      const ring = await TransmitterKeys.open({
        store,
        dataDir: dir,
        kekFile: keyEncryptionKeyPath(dir, {}),
        clock,
        algorithm: config.signingAlgorithm,
        overlapMs: OVERLAP,
        logger,
      });
      keys.push(ring);
      nodes.push(
        new SsfTransmitter({
          store,
          events,
          keys: ring,
          config,
          clock,
          logger,
          nodeId,
          issuer: () => 'https://baton.test',
        }),
      );
    }
  });
  after(async () => {
    for (const node of nodes) await node.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('hands out the SET signed with the current key, keeps it so, and does not sign it twice', async () => {
    const [a, b] = nodes as [SsfTransmitter, SsfTransmitter];
    const [keysA, keysB] = keys as [TransmitterKeys, TransmitterKeys];
    const { receiver } = await a.issueReceiver({ name: 'SIEM', scopes: ['ssf.manage'] }, 'admin');
    const streamId = (await a.createStream(receiver, { delivery: { method: POLL_METHOD } })).stream_id as string;
    await a.verify(receiver, streamId, 'queued-before-the-rotation');
    const [queued] = await new TransmitterRepository(store).head(streamId, 10);
    assert.ok(queued);
    const k0 = setKid(queued.setJwt);
    assert.equal(k0, keysB.signingKey().kid, 'node b holds the key the SET was signed with');

    const { current } = await a.rotateKeys(undefined, 'admin');
    now += 2 * OVERLAP;
    const first = (await b.poll(receiver, streamId, { returnImmediately: true })).sets as Record<string, string>;
    const handed = first[queued.jti];
    assert.ok(handed, 'the queued SET is handed out');
    assert.equal(setKid(handed), current, "signed with the cluster's current key, not the one b held");
    assert.equal(handed.split('.')[1], queued.setJwt.split('.')[1], 'the same payload bytes: same claims, same jti');
    for (const ring of keys) {
      const jwks = createLocalJWKSet(await ring.publishedJwks());
      assert.equal((await jwtVerify(handed, jwks, { typ: 'secevent+jwt' })).payload.jti, queued.jti);
      await assert.rejects(jwtVerify(queued.setJwt, jwks), 'as queued, it verifies nowhere');
    }
    assert.equal(b.nodeView().resigned, 1);
    const [kept] = await new TransmitterRepository(store).head(streamId, 10);
    assert.equal(kept?.setJwt, handed, 'the queue keeps the SET as signed again');

    // Not acknowledged: handed out again after pollRedeliverSeconds, by the other node, byte for byte.
    now += 2000;
    const again = (await a.poll(receiver, streamId, { returnImmediately: true })).sets as Record<string, string>;
    assert.equal(again[queued.jti], handed);
    assert.equal(a.nodeView().resigned, 0, 'not signed a second time');
    await a.poll(receiver, streamId, { ack: [queued.jti], maxEvents: 0 });
    assert.deepEqual(await new TransmitterRepository(store).head(streamId, 10), []);
    assert.ok(keysA.verifiable(current));
  });
});
