import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { calculateJwkThumbprint } from 'jose';
import { CONSOLE_HEADERS, SIGNATURE_WINDOW_MS, signingInput } from '../../shared/console-auth.js';
import { BatonError } from '../../shared/errors.js';
import type { P256PublicJwk } from '../../shared/http-api.js';
import type { EphemeralRepository, Store } from '../store/repositories.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import {
  ReplayGuard,
  jwkThumbprint,
  readSignatureHeaders,
  verifySignedRequest,
  type SignedRequest,
} from './console-signature.js';

/** The thumbprint as Baton computed it by hand before it used jose: stored `jkt` values must still match. */
function handWritten(jwk: P256PublicJwk): string {
  const canonical = `{"crv":"${jwk.crv}","kty":"${jwk.kty}","x":"${jwk.x}","y":"${jwk.y}"}`;
  return createHash('sha256').update(canonical).digest('base64url');
}

describe('jwkThumbprint (RFC 7638, by jose)', () => {
  it('gives the known thumbprint of the RFC 7517 appendix A.1 P-256 key', async () => {
    const jwk: P256PublicJwk = {
      kty: 'EC',
      crv: 'P-256',
      x: 'MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4',
      y: '4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM',
    };
    assert.equal(await jwkThumbprint(jwk), 'cn-I_WNMClehiVp51i_0VpOENW1upEerA8sEam5hn-s');
  });

  it('relies on an implementation that gives RFC 7638 section 3.1 its published thumbprint', async () => {
    const rfcExample = {
      kty: 'RSA',
      n: '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
      e: 'AQAB',
    };
    assert.equal(await calculateJwkThumbprint(rfcExample, 'sha256'), 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
  });

  it('matches the thumbprints Baton stored before (hand-written canonical form) for fresh keys', async () => {
    for (let i = 0; i < 20; i++) {
      const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
      const key: P256PublicJwk = { kty: 'EC', crv: 'P-256', x: String(jwk.x), y: String(jwk.y) };
      assert.equal(await jwkThumbprint(key), handWritten(key));
    }
  });
});

const isCode = (code: string) => (error: unknown) => error instanceof BatonError && error.code === code;

describe('ReplayGuard and verifySignedRequest over a shared store', () => {
  let dir: string;
  let nodeA: Store;
  let nodeB: Store;
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });

  before(() => {
    // Two stores opened on one SQLite file stand in for two nodes.
    dir = mkdtempSync(join(tmpdir(), 'baton-nonces-'));
    nodeA = openSqliteStore({ dataDir: dir, durability: 'normal' });
    nodeB = openSqliteStore({ dataDir: dir, durability: 'normal' });
  });

  after(async () => {
    await nodeA.close();
    await nodeB.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function signed(consoleId: string, timestamp: number, path = '/v1/console/status'): SignedRequest {
    const nonce = randomBytes(16).toString('base64url');
    const body = new Uint8Array();
    const input = signingInput({
      method: 'GET',
      path,
      consoleId,
      timestamp,
      nonce,
      bodySha256: createHash('sha256').update(body).digest('hex'),
    });
    const signature = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
    return {
      method: 'GET',
      path,
      body,
      headers: {
        [CONSOLE_HEADERS.console]: consoleId,
        [CONSOLE_HEADERS.timestamp]: String(timestamp),
        [CONSOLE_HEADERS.nonce]: nonce,
        [CONSOLE_HEADERS.signature]: signature.toString('base64url'),
      },
    };
  }

  const check = (request: SignedRequest, guard: ReplayGuard, now: number) =>
    verifySignedRequest(request, readSignatureHeaders(request.headers), 'con_1', publicKey, guard, now);

  it('refuses on one node a request already accepted by another', async () => {
    const now = 1_000_000_000;
    const guardA = new ReplayGuard(nodeA.ephemeral, () => now);
    const guardB = new ReplayGuard(nodeB.ephemeral, () => now);
    const request = signed('con_1', now);
    await check(request, guardA, now);
    await assert.rejects(check(request, guardB, now), isCode('CONSOLE_SIGNATURE_REPLAYED'));
    await assert.rejects(check(request, guardA, now), isCode('CONSOLE_SIGNATURE_REPLAYED'));
    await check(signed('con_1', now), guardB, now);
  });

  it('remembers a nonce for as long as its request is fresh, and only that long', async () => {
    let now = 2_000_000_000;
    const signedAt = now;
    const guardA = new ReplayGuard(nodeA.ephemeral, () => now);
    const guardB = new ReplayGuard(nodeB.ephemeral, () => now);
    assert.equal(await guardA.claim('con_1:late-nonce', signedAt), true);
    now = signedAt + SIGNATURE_WINDOW_MS;
    assert.equal(await guardB.claim('con_1:late-nonce', signedAt), false, 'still fresh at the edge of the window');
    now = signedAt + SIGNATURE_WINDOW_MS + 1;
    assert.equal(await guardB.claim('con_1:late-nonce', signedAt), true, 'stale by then: refused as stale instead');
  });

  it('claims a lone nonce at once and a burst behind it in one statement, refusing a nonce given twice in it and one claimed before', async () => {
    const now = 4_000_000_000;
    const store = nodeA.ephemeral;
    let statements = 0;
    const counted: EphemeralRepository = {
      put: (entry, max) => store.put(entry, max),
      take: (kind, key) => store.take(kind, key),
      claimOnce: (kind, key, expiresAt, at) => store.claimOnce(kind, key, expiresAt, at),
      claimMany: (kind, entries, at) => {
        statements++;
        return store.claimMany(kind, entries, at);
      },
      sweep: (at) => store.sweep(at),
    };
    const guard = new ReplayGuard(counted, () => now);
    assert.equal(await new ReplayGuard(nodeB.ephemeral, () => now).claim('con_1:burst-0', now), true);
    statements = 0;
    const keys = Array.from({ length: 50 }, (_, i) => `con_1:burst-${i}`);
    const results = await Promise.all([...keys, 'con_1:burst-7'].map((key) => guard.claim(key, now)));
    // The first goes to the store at once, alone; the 50 made while it ran go together after it.
    assert.equal(statements, 2);
    // burst-0 was claimed on the other node; burst-7 given twice is claimed once.
    assert.deepEqual(
      results.map((claimed, i) => (claimed ? i : -1)).filter((i) => i >= 0),
      keys.map((_, i) => i).filter((i) => i !== 0),
    );
  });

  it('refuses a stale request before claiming its nonce, and a forged one without burning the nonce', async () => {
    const now = 3_000_000_000;
    const guard = new ReplayGuard(nodeA.ephemeral, () => now);
    await assert.rejects(
      check(signed('con_1', now - SIGNATURE_WINDOW_MS - 1), guard, now),
      isCode('CONSOLE_SIGNATURE_STALE'),
    );
    const request = signed('con_1', now);
    const forged = { ...request, path: '/v1/console/policy' };
    await assert.rejects(check(forged, guard, now), isCode('CONSOLE_SIGNATURE_INVALID'));
    await check(request, guard, now);
  });

  it('accepts a request signed before this node started (the nonces outlive a restart)', async () => {
    const signedAt = 4_000_000_000;
    const request = signed('con_1', signedAt);
    const restarted = new ReplayGuard(nodeB.ephemeral, () => signedAt + 1000);
    await check(request, restarted, signedAt + 1000);
    const again = new ReplayGuard(nodeA.ephemeral, () => signedAt + 2000);
    await assert.rejects(check(request, again, signedAt + 2000), isCode('CONSOLE_SIGNATURE_REPLAYED'));
  });
});
