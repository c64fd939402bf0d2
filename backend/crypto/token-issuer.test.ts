import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import pino from 'pino';
import { openSqliteStore } from '../store/sqlite-store.js';
import type { Store } from '../store/repositories.js';
import { KEY_ENCRYPTION_KEY_FILE, KeyEncryptionKey } from './key-encryption-key.js';
import { keyRingMetaKey } from './key-ring.js';
import { JWKS_READ_MS } from './rotating-signing-keys.js';
import {
  RETIRED_TOKEN_KEY_KEPT_MS,
  SIGNING_KEY_FILE,
  SIGNING_RING_REFRESH_MS,
  TokenIssuer,
  type TokenIssuerOptions,
} from './token-issuer.js';

const DAY = 24 * 3600 * 1000;
const dirs: string[] = [];
function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'baton-tokens-'));
  dirs.push(dir);
  return dir;
}
const stores: Store[] = [];
after(async () => {
  for (const store of stores) await store.close();
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
});
const logger = pino({ level: 'silent' });

/** A real SQLite store of its own (the database every "node" of a test shares). */
function database(): Store {
  const store = openSqliteStore({ dataDir: dataDir(), durability: 'normal' });
  stores.push(store);
  return store;
}

/** An issuer on `store` with its own data directory (a node); `open(dir, …)` names the data directory. */
function open(dir: string, clock: () => number, options: Partial<TokenIssuerOptions> & { store: Store }) {
  return TokenIssuer.open(dir, clock, { logger, ...options });
}

const claims = {
  operatorId: 'jdoe',
  sessionId: 'ses_1',
  level: 'verified' as const,
  authTime: 0,
  consoleId: 'con_1',
  consoleJkt: 'jkt',
  channel: 'branch-kiosk',
  ttlSeconds: 3600,
};

/** What a downstream app does: verify against the published JWKS only. */
async function verifyWithJwks(issuer: TokenIssuer, token: string, now: number) {
  return jwtVerify(token, createLocalJWKSet(issuer.jwks()), { currentDate: new Date(now) });
}

/** Two nodes (their own data directories, the same key-encryption key) on one store, on `clock`. */
async function twoNodes(clock: () => number): Promise<{ a: TokenIssuer; b: TokenIssuer }> {
  const store = database();
  const dirA = dataDir();
  const dirB = dataDir();
  const a = await open(dirA, clock, { rotationDays: 30, store });
  copyFileSync(join(dirA, KEY_ENCRYPTION_KEY_FILE), join(dirB, KEY_ENCRYPTION_KEY_FILE));
  const b = await open(dirB, clock, { rotationDays: 30, store });
  return { a, b };
}

describe('token signing key rotation', () => {
  it('a rotated key signs new tokens while tokens of the old key still verify against the JWKS until they expire', async () => {
    let now = 1_000 * DAY;
    const dir = dataDir();
    const store = database();
    const issuer = await open(dir, () => now, { rotationDays: 0, store });
    const old = await issuer.issue({ ...claims, authTime: now });
    const oldKid = decodeProtectedHeader(old.token).kid;

    const { previous, current } = await issuer.rotate();
    assert.equal(previous, oldKid);
    assert.notEqual(current, previous);
    const fresh = await issuer.issue({ ...claims, authTime: now });
    assert.equal(decodeProtectedHeader(fresh.token).kid, current);
    assert.deepEqual(
      issuer.jwks().keys.map((k) => k.kid),
      [current, previous],
    );
    await verifyWithJwks(issuer, old.token, now);
    await verifyWithJwks(issuer, fresh.token, now);
    await issuer.verify(old.token);

    // The retired private half is gone from the sealed ring: only the active key can sign. The
    // database holds it sealed under the key-encryption key, a 0600 file of the data directory.
    const kekFile = join(dir, KEY_ENCRYPTION_KEY_FILE);
    assert.equal(statSync(kekFile).mode & 0o777, 0o600);
    const sealed = (await store.meta.get(keyRingMetaKey('token'))) ?? '';
    const ring = JSON.parse(
      (KeyEncryptionKey.read(kekFile) as KeyEncryptionKey).open(sealed, keyRingMetaKey('token')),
    ) as {
      keys: { kid: string; jwk: { d?: string } }[];
    };
    assert.deepEqual(
      ring.keys.map((k) => [k.kid, k.jwk.d !== undefined]),
      [
        [current, true],
        [previous, false],
      ],
    );
    for (const key of ring.keys) {
      if (key.jwk.d !== undefined) assert.equal(sealed.includes(key.jwk.d), false, 'no private key in the clear');
    }

    // Once every token the old key signed has expired, it leaves the JWKS (and a restart keeps that).
    now += RETIRED_TOKEN_KEY_KEPT_MS;
    await issuer.maintain();
    assert.deepEqual(
      issuer.jwks().keys.map((k) => k.kid),
      [current],
    );
    const reopened = await open(dir, () => now, { rotationDays: 0, store });
    assert.deepEqual(
      reopened.jwks().keys.map((k) => k.kid),
      [current],
    );
  });

  it('rotates by itself once the active key is older than the rotation period', async () => {
    let now = 1_000 * DAY;
    const dir = dataDir();
    const store = database();
    const issuer = await open(dir, () => now, { rotationDays: 30, store });
    const first = issuer.activeKid;
    now += 29 * DAY;
    await issuer.issue(claims);
    assert.equal(issuer.activeKid, first);
    now += 2 * DAY;
    const { token } = await issuer.issue(claims);
    assert.notEqual(issuer.activeKid, first);
    assert.equal(decodeProtectedHeader(token).kid, issuer.activeKid);
    assert.equal(issuer.jwks().keys.length, 2);
    // A restart after a long stop rotates at start too.
    now += 31 * DAY;
    const reopened = await open(dir, () => now, { rotationDays: 30, store });
    assert.notEqual(reopened.activeKid, issuer.activeKid);
  });

  it('keeps the key of a data directory written by an earlier release (one private JWK), imported once', async () => {
    const dir = dataDir();
    const store = database();
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = await exportJWK(privateKey);
    writeFileSync(join(dir, SIGNING_KEY_FILE), JSON.stringify(jwk), { mode: 0o600 });
    const issuer = await open(dir, Date.now, { rotationDays: 0, store });
    const published = issuer.jwks().keys;
    assert.equal(published.length, 1);
    assert.equal(published[0]?.x, jwk.x);
    assert.equal(published[0]?.d, undefined);
    assert.equal(existsSync(join(dir, SIGNING_KEY_FILE)), false, 'the file is no longer read');
    assert.equal(existsSync(join(dir, `${SIGNING_KEY_FILE}.imported`)), true, 'kept for the backups');
    const again = await open(dir, Date.now, { rotationDays: 0, store });
    assert.equal(again.activeKid, issuer.activeKid);
  });

  it("nodes with their own data directories and the same key-encryption key share one ring: each takes up the other's rotation, never overwriting a key", async () => {
    let now = 1_000 * DAY;
    const { a, b } = await twoNodes(() => now);
    assert.equal(a.activeKid, b.activeKid, 'one key for the cluster');
    const first = a.activeKid;

    // An admin's rotation on node A: node B accepts A's new tokens at once (an unknown kid makes it
    // read the ring again), publishes the new key, and signs with it once its copy is older than the
    // refresh period.
    const { current } = await a.rotate();
    const fromA = await a.issue(claims);
    assert.equal(decodeProtectedHeader(fromA.token).kid, current);
    await b.verify(fromA.token);
    assert.deepEqual(
      b.jwks().keys.map((k) => k.kid),
      [current, first],
    );
    now += SIGNING_RING_REFRESH_MS;
    const fromB = await b.issue(claims);
    assert.equal(decodeProtectedHeader(fromB.token).kid, current);
    await a.verify(fromB.token);

    // The rotation falls due on every node at once: it happens once.
    now += 31 * DAY;
    const [ta, tb] = await Promise.all([a.issue(claims), b.issue(claims)]);
    assert.equal(a.activeKid, b.activeKid);
    assert.notEqual(a.activeKid, current);
    assert.equal(decodeProtectedHeader(ta.token).kid, decodeProtectedHeader(tb.token).kid);
    assert.deepEqual(
      a.jwks().keys.map((k) => k.kid),
      [a.activeKid, current],
      'one new key; the first one, retired long ago, dropped',
    );
    await verifyWithJwks(a, tb.token, now);
    await verifyWithJwks(b, ta.token, now);

    // Two nodes rotating at the same moment: both rotations land, no key is lost.
    const before = a.activeKid;
    const [ra, rb] = await Promise.all([a.rotate(), b.rotate()]);
    assert.notEqual(ra.current, rb.current);
    const signedByBoth = [ra.current, rb.current];
    now += SIGNING_RING_REFRESH_MS;
    await a.maintain();
    const kids = a.jwks().keys.map((k) => k.kid);
    assert.ok(kids.includes(before), 'the key before both rotations is still published');
    for (const kid of signedByBoth) assert.ok(kids.includes(kid), `${kid} is in the ring`);
    assert.equal(kids.length, 4);
  });

  it('the JWKS a node serves lists a key another node rotated to once its read of the ring is JWKS_READ_MS old, not 5 s', async () => {
    let now = 1_000 * DAY;
    const { a, b } = await twoNodes(() => now);
    const first = a.activeKid;
    const { current } = await a.rotate();
    // B read its ring just now: what it holds does not have A's new key yet.
    assert.deepEqual(
      (await b.servedJwks()).keys.map((k) => k.kid),
      [first],
    );
    now += JWKS_READ_MS;
    assert.deepEqual(
      (await b.servedJwks()).keys.map((k) => k.kid),
      [current, first],
      'served from a ring read again',
    );
    assert.ok(JWKS_READ_MS < SIGNING_RING_REFRESH_MS);
  });

  it('a running node whose ring was changed in the database keeps signing with the keys it holds and says why', async () => {
    let now = 1_000 * DAY;
    const store = database();
    const lines: { code?: string; msg: string }[] = [];
    const record = { info() {}, warn() {}, error: (obj: object, msg: string) => lines.push({ ...obj, msg }) };
    const issuer = await TokenIssuer.open(dataDir(), () => now, { rotationDays: 0, store, logger: record });
    const kid = issuer.activeKid;
    const sealed = JSON.parse((await store.meta.get(keyRingMetaKey('token'))) ?? '{}') as { tag: string };
    const tag = Buffer.from(sealed.tag, 'base64url');
    tag[0] = (tag[0] ?? 0) ^ 1;
    await store.meta.set(keyRingMetaKey('token'), JSON.stringify({ ...sealed, tag: tag.toString('base64url') }));
    now += SIGNING_RING_REFRESH_MS;
    const { token } = await issuer.issue(claims);
    assert.equal(decodeProtectedHeader(token).kid, kid);
    await issuer.verify(token);
    assert.ok(
      lines.some((l) => l.code === 'KEY_RING_TAMPERED'),
      JSON.stringify(lines),
    );
    await assert.rejects(issuer.rotate(), /KEY_RING_TAMPERED|does not authenticate/);
    assert.equal(issuer.activeKid, kid);
  });

  it('refuses to start with a key file that is not a key ring, naming the file', async () => {
    const dir = dataDir();
    writeFileSync(join(dir, SIGNING_KEY_FILE), '{"keys": 3}');
    await assert.rejects(open(dir, Date.now, { store: database() }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'KEY_FILE_INVALID');
      assert.match(error.message, new RegExp(SIGNING_KEY_FILE));
      return true;
    });
  });
});
