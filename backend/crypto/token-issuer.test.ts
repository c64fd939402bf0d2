import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import { RETIRED_TOKEN_KEY_KEPT_MS, SIGNING_KEY_FILE, TokenIssuer } from './token-issuer.js';

const DAY = 24 * 3600 * 1000;
const dirs: string[] = [];
function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'baton-tokens-'));
  dirs.push(dir);
  return dir;
}
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

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

describe('token signing key rotation', () => {
  it('a rotated key signs new tokens while tokens of the old key still verify against the JWKS until they expire', async () => {
    let now = 1_000 * DAY;
    const dir = dataDir();
    const issuer = await TokenIssuer.open(dir, () => now, { rotationDays: 0 });
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

    // The retired private half is gone from the file: only the active key can sign.
    const file = JSON.parse(readFileSync(join(dir, SIGNING_KEY_FILE), 'utf8')) as {
      keys: { kid: string; jwk: { d?: string } }[];
    };
    assert.deepEqual(
      file.keys.map((k) => [k.kid, k.jwk.d !== undefined]),
      [
        [current, true],
        [previous, false],
      ],
    );
    assert.equal(statSync(join(dir, SIGNING_KEY_FILE)).mode & 0o777, 0o600);

    // Once every token the old key signed has expired, it leaves the JWKS (and a restart keeps that).
    now += RETIRED_TOKEN_KEY_KEPT_MS;
    await issuer.maintain();
    assert.deepEqual(
      issuer.jwks().keys.map((k) => k.kid),
      [current],
    );
    const reopened = await TokenIssuer.open(dir, () => now, { rotationDays: 0 });
    assert.deepEqual(
      reopened.jwks().keys.map((k) => k.kid),
      [current],
    );
  });

  it('rotates by itself once the active key is older than the rotation period', async () => {
    let now = 1_000 * DAY;
    const dir = dataDir();
    const issuer = await TokenIssuer.open(dir, () => now, { rotationDays: 30 });
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
    const reopened = await TokenIssuer.open(dir, () => now, { rotationDays: 30 });
    assert.notEqual(reopened.activeKid, issuer.activeKid);
  });

  it('keeps the key of a data directory written by an earlier release (one private JWK)', async () => {
    const dir = dataDir();
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = await exportJWK(privateKey);
    writeFileSync(join(dir, SIGNING_KEY_FILE), JSON.stringify(jwk), { mode: 0o600 });
    const issuer = await TokenIssuer.open(dir, Date.now, { rotationDays: 0 });
    const published = issuer.jwks().keys;
    assert.equal(published.length, 1);
    assert.equal(published[0]?.x, jwk.x);
    assert.equal(published[0]?.d, undefined);
  });

  it("workers sharing the data directory see each other's rotations and never overwrite each other's keys", async () => {
    let now = 1_000 * DAY;
    const dir = dataDir();
    const [a, b] = await Promise.all([
      TokenIssuer.open(dir, () => now, { rotationDays: 30 }),
      TokenIssuer.open(dir, () => now, { rotationDays: 30 }),
    ]);
    assert.equal(a.activeKid, b.activeKid, 'workers starting together share one key');
    const first = a.activeKid;

    // An admin's rotation on worker A: worker B publishes the new key and signs with it.
    const { current } = await a.rotate();
    assert.deepEqual(
      b.jwks().keys.map((k) => k.kid),
      [current, first],
    );
    const fromA = await a.issue(claims);
    const fromB = await b.issue(claims);
    assert.equal(decodeProtectedHeader(fromB.token).kid, current);
    await b.verify(fromA.token);
    await a.verify(fromB.token);

    // The rotation falls due on every worker at once: it happens once.
    now += 31 * DAY;
    const [ta, tb] = await Promise.all([a.issue(claims), b.issue(claims)]);
    assert.equal(a.activeKid, b.activeKid);
    assert.notEqual(a.activeKid, current);
    assert.equal(decodeProtectedHeader(ta.token).kid, decodeProtectedHeader(tb.token).kid);
    const file = JSON.parse(readFileSync(join(dir, SIGNING_KEY_FILE), 'utf8')) as { keys: unknown[] };
    assert.equal(file.keys.length, 2, 'one new key; the first one, retired long ago, dropped');
    await verifyWithJwks(a, tb.token, now);
    await verifyWithJwks(b, ta.token, now);
  });

  it('breaks a lock left by a worker that died holding it', async () => {
    const dir = dataDir();
    const issuer = await TokenIssuer.open(dir, Date.now, { rotationDays: 0 });
    writeFileSync(join(dir, `${SIGNING_KEY_FILE}.lock`), '');
    const old = new Date(Date.now() - 60_000);
    utimesSync(join(dir, `${SIGNING_KEY_FILE}.lock`), old, old);
    const { current } = await issuer.rotate();
    assert.equal(issuer.activeKid, current);
  });

  it('refuses to start with a key file that is not a key ring, naming the file', async () => {
    const dir = dataDir();
    writeFileSync(join(dir, SIGNING_KEY_FILE), '{"keys": 3}');
    await assert.rejects(TokenIssuer.open(dir, Date.now), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'KEY_FILE_INVALID');
      assert.match(error.message, new RegExp(SIGNING_KEY_FILE));
      return true;
    });
  });
});
