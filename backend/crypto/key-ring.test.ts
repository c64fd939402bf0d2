import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { BatonError } from '../../shared/errors.js';
import type { Store } from '../store/repositories.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import { openStore } from '../store/open-store.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from '../store/postgres-throwaway.js';
import { KEY_ENCRYPTION_KEY_FILE, KeyEncryptionKey } from './key-encryption-key.js';
import { KeyRing, SharedKeyRing, keyRingMetaKey, type SharedKeyRingOptions } from './key-ring.js';

const dirs: string[] = [];
const stores: Store[] = [];
after(async () => {
  for (const store of stores) await store.close();
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
});
const logger = pino({ level: 'silent' });

function dir(): string {
  const d = mkdtempSync(join(tmpdir(), 'baton-ring-'));
  dirs.push(d);
  return d;
}
function database(): Store {
  const store = openSqliteStore({ dataDir: dir(), durability: 'normal' });
  stores.push(store);
  return store;
}
const open = (store: Store, dataDir: string, extra: Partial<SharedKeyRingOptions> = {}) =>
  SharedKeyRing.open({ store, name: 'token', dataDir, clock: () => 1_000, logger, ...extra });

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof BatonError, String(error));
    return `${error.code}: ${error.message}`;
  }
  return 'no error';
}

describe('the sealed key ring in the database', () => {
  it('workers opening a fresh data directory together all get the one key-encryption key and the one ring', async () => {
    const store = database();
    const dataDir = dir();
    const rings = await Promise.all([1, 2, 3, 4].map(() => open(store, dataDir)));
    assert.equal(new Set(rings.map((r) => r.current.active.kid)).size, 1, 'one key for every worker');
    assert.deepEqual(readdirSync(dataDir), [KEY_ENCRYPTION_KEY_FILE], 'no temporary file left behind');
    assert.equal(statSync(join(dataDir, KEY_ENCRYPTION_KEY_FILE)).mode & 0o777, 0o600);
  });

  it('a node without the key-encryption key refuses to start, naming the file, and makes no key of its own', async () => {
    const store = database();
    await open(store, dir());
    const before = await store.meta.get(keyRingMetaKey('token'));
    const second = dir();
    const message = await codeOf(open(store, second));
    assert.match(message, /^KEY_ENCRYPTION_KEY_MISSING: /);
    assert.ok(message.includes(join(second, KEY_ENCRYPTION_KEY_FILE)), message);
    assert.deepEqual(readdirSync(second), [], 'no key-encryption key made');
    assert.equal(await store.meta.get(keyRingMetaKey('token')), before, 'the ring is untouched');
  });

  it('a key-encryption key made beforehand by IT (base64url with padding) is used; a file that is not one is refused', async () => {
    const store = database();
    const dataDir = dir();
    const made = Buffer.alloc(32, 7).toString('base64url');
    writeFileSync(join(dataDir, KEY_ENCRYPTION_KEY_FILE), `${made}=\n`, { mode: 0o644 });
    await open(store, dataDir);
    assert.equal(statSync(join(dataDir, KEY_ENCRYPTION_KEY_FILE)).mode & 0o777, 0o600, 'made private');
    assert.equal(readdirSync(dataDir).length, 1);
    const other = dir();
    writeFileSync(join(other, KEY_ENCRYPTION_KEY_FILE), 'too short\n');
    assert.match(await codeOf(open(store, other)), /^KEY_ENCRYPTION_KEY_MISMATCH: .*is not a key-encryption key/);
  });

  it('a node with another key-encryption key refuses to start (KEY_ENCRYPTION_KEY_MISMATCH)', async () => {
    const store = database();
    await open(store, dir());
    const other = dir();
    KeyEncryptionKey.create(join(other, KEY_ENCRYPTION_KEY_FILE));
    assert.match(await codeOf(open(store, other)), /^KEY_ENCRYPTION_KEY_MISMATCH: .*key-encryption-key/);
  });

  it('refuses a sealed ring changed in the database: a byte changed, a ring moved from another name, a record of an attacker’s making', async () => {
    const store = database();
    const dataDir = dir();
    const ring = await open(store, dataDir);
    const name = keyRingMetaKey('token');
    const sealed = (await store.meta.get(name)) ?? '';
    const record = JSON.parse(sealed) as { ct: string; kek: string };

    // One byte of the ciphertext changed.
    const ct = Buffer.from(record.ct, 'base64url');
    ct[5] = (ct[5] ?? 0) ^ 1;
    await store.meta.set(name, JSON.stringify({ ...record, ct: ct.toString('base64url') }));
    assert.match(await codeOf(open(store, dataDir)), /^KEY_RING_TAMPERED: /);

    // The checkpoint ring (sealed under the same key) put in the token ring's place.
    await store.meta.set(name, sealed);
    await open(store, dataDir, { name: 'checkpoint' });
    await store.meta.set(name, (await store.meta.get(keyRingMetaKey('checkpoint'))) ?? '');
    assert.match(await codeOf(open(store, dataDir)), /^KEY_RING_TAMPERED: /);

    // An attacker's ring with a key of their own, sealed under a key of their own but naming ours.
    const attacker = dir();
    const theirs = KeyEncryptionKey.create(join(attacker, KEY_ENCRYPTION_KEY_FILE));
    const forged = await KeyRing.fresh(1_000);
    const plain = JSON.stringify({ version: 1, name: 'token', generation: 99, keys: forged.entries });
    await store.meta.set(name, JSON.stringify({ ...JSON.parse(theirs.seal(plain, name)), kek: record.kek }));
    assert.match(await codeOf(open(store, dataDir)), /^KEY_RING_TAMPERED: /);
    // A running node keeps the ring it holds and never takes up the attacker's key.
    await assert.rejects(ring.reload(), /KEY_RING_TAMPERED|does not authenticate/);
    assert.equal(await ring.find(forged.active.kid), undefined);
    assert.notEqual(ring.current.active.kid, forged.active.kid);
  });

  it('imports a key file of an earlier release once; another node’s old file adds its public keys as retired', async () => {
    const store = database();
    const a = dir();
    const b = dir();
    const old = await KeyRing.fresh(500);
    const fileText = JSON.stringify({ version: 1, keys: old.entries });
    writeFileSync(join(a, 'token-signing-key.json'), fileText, { mode: 0o600 });
    const ringA = await open(store, a, { legacyFile: join(a, 'token-signing-key.json') });
    assert.equal(ringA.current.active.kid, old.active.kid, 'the file’s key signs on');
    assert.deepEqual(readdirSync(a).sort(), [KEY_ENCRYPTION_KEY_FILE, 'token-signing-key.json.imported']);

    const otherHost = await KeyRing.fresh(600);
    writeFileSync(join(b, 'token-signing-key.json'), JSON.stringify({ version: 1, keys: otherHost.entries }));
    copyFileSync(join(a, KEY_ENCRYPTION_KEY_FILE), join(b, KEY_ENCRYPTION_KEY_FILE));
    const ringB = await open(store, b, { legacyFile: join(b, 'token-signing-key.json') });
    assert.equal(ringB.current.active.kid, old.active.kid, 'the cluster keeps one active key');
    assert.equal(ringB.current.get(otherHost.active.kid)?.retiredAt, 1_000, 'B’s old key verifies, retired');
    unlinkSync(join(b, 'token-signing-key.json.imported'));
  });
});

describe('two nodes rotating the one ring at once (PostgreSQL, one store each)', { skip: postgresSkip() }, () => {
  let server: PostgresServer | undefined;
  after(async () => {
    await server?.stop();
  });

  it('every rotation lands and no key is lost: each node rotates on the ring the other committed', async () => {
    server = await startPostgres();
    const url = await createDatabase(server.url, `baton_ring_${process.pid}`);
    const nodeA = dir();
    const nodeB = dir();
    const storeA = await openStore({ dataDir: nodeA, durability: 'normal', databaseUrl: url });
    const storeB = await openStore({ dataDir: nodeB, durability: 'normal', databaseUrl: url });
    stores.push(storeA, storeB);
    let now = 1_000;
    const options = { name: 'checkpoint', clock: () => now, logger, keepRetiredMs: undefined };
    const a = await SharedKeyRing.open({ ...options, store: storeA, dataDir: nodeA });
    copyFileSync(join(nodeA, KEY_ENCRYPTION_KEY_FILE), join(nodeB, KEY_ENCRYPTION_KEY_FILE));
    const b = await SharedKeyRing.open({ ...options, store: storeB, dataDir: nodeB });
    const first = a.current.active.kid;
    const made: string[] = [];
    const rotate = (ring: SharedKeyRing) =>
      ring.update(async (current, at) => {
        const next = await (current as KeyRing).rotated(at, undefined);
        return next;
      });
    for (let round = 0; round < 5; round++) {
      now += 1;
      const [ra, rb] = await Promise.all([rotate(a), rotate(b)]);
      made.push(ra.active.kid, rb.active.kid);
    }
    await a.reload();
    await b.reload();
    const kids = a.current.list().map((k) => k.kid);
    assert.equal(new Set(made).size, 10, 'ten distinct rotations');
    for (const kid of [first, ...made]) assert.ok(kids.includes(kid), `${kid} kept`);
    assert.equal(kids.length, 11);
    assert.equal(a.current.active.kid, b.current.active.kid);
    assert.equal(a.current.list().filter((k) => k.retiredAt === null).length, 1, 'one active key');
  });
});
