import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { ActionTokenVerifier, RevocationList, VerificationError } from './index.js';

/**
 * The verifier remembers tokens whose signature verified (`signatureCacheSize`): a remembered token
 * must still be refused for everything but its signature: expiry, revocation, age, another key.
 */

const AUD = 'urn:bank:teller';
const NOW = Date.UTC(2026, 11, 5, 3, 0, 0);
const ACTIONS = { 'payment.approve': { level: 'verified', maxAgeSeconds: 300 } } as const;

interface Signer {
  key: CryptoKey;
  jwk: JWK;
}
async function signer(kid: string): Promise<Signer> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  return { key: privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

let serial = 0;
function token(s: Signer, claims: Record<string, unknown> = {}, at = NOW): Promise<string> {
  const iat = Math.floor(at / 1000);
  return new SignJWT({
    action: 'payment.approve',
    scope: 'payment.approve',
    sid: 'ses_1',
    console: 'con_1',
    channel: 'branch-kiosk',
    level: 'verified',
    acr: 'phr',
    auth_time: iat - 60,
    policy_version: 3,
    ...claims,
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: s.jwk.kid! })
    .setIssuer('urn:baton:backend')
    .setAudience(AUD)
    .setSubject('op_ada')
    .setJti(`jti-${++serial}`)
    .setIssuedAt(iat)
    .setExpirationTime(iat + 120)
    .sign(s.key);
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => assert.fail('expected a refusal'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof VerificationError, String(error));
  return error.code;
}

describe('verifier signature cache', () => {
  let a: Signer;
  before(async () => {
    a = await signer('k1');
  });

  function make(clock: () => number, options: { size?: number; revocations?: RevocationList } = {}) {
    return new ActionTokenVerifier({
      audience: AUD,
      jwks: { keys: [a.jwk] },
      actions: ACTIONS,
      clock,
      ...(options.revocations === undefined ? {} : { revocations: options.revocations }),
      ...(options.size === undefined ? {} : { signatureCacheSize: options.size }),
    });
  }

  it('refuses a remembered token once it has expired, and forgets it', async () => {
    let now = NOW;
    const verifier = make(() => now);
    const t = await token(a);
    await verifier.verify(t, 'payment.approve');
    await verifier.verify(t, 'payment.approve');
    assert.equal(verifier.cachedSignatures, 1);
    now = NOW + 120_000 + 30_000; // exp + the 30 s tolerance
    assert.equal(await refusal(verifier.verify(t, 'payment.approve')), 'TOKEN_EXPIRED');
    assert.equal(verifier.cachedSignatures, 0);
  });

  it('refuses a remembered token once its session is revoked, or its authentication too old for the action', async () => {
    let now = NOW;
    const revocations = new RevocationList(() => now);
    const verifier = make(() => now, { revocations });
    const revoked = await token(a, { sid: 'ses_r' });
    assert.equal((await verifier.verify(revoked, 'payment.approve')).session, 'ses_r');
    revocations.apply({ epoch: 1, kind: 'session', targetId: 'ses_r', operatorId: 'op_ada', at: now });
    assert.equal(await refusal(verifier.verify(revoked, 'payment.approve')), 'TOKEN_REVOKED');

    // Authenticated 290 s before issuance: within 300 s (+30 s tolerance) now, not 60 s later.
    const aging = await token(a, { sid: 'ses_old', auth_time: Math.floor(NOW / 1000) - 290 });
    assert.equal((await verifier.verify(aging, 'payment.approve')).session, 'ses_old');
    now = NOW + 60_000;
    assert.equal(await refusal(verifier.verify(aging, 'payment.approve')), 'INSUFFICIENT_USER_AUTHENTICATION');
  });

  it('is keyed on the whole token: a remembered signature under other claims does not verify', async () => {
    const verifier = make(() => NOW);
    const t = await token(a, { sid: 'ses_1' });
    await verifier.verify(t, 'payment.approve');
    const other = await token(a, { sid: 'ses_2', level: 'hardware' });
    const [h, , sig] = t.split('.');
    const [, p] = other.split('.');
    assert.equal(await refusal(verifier.verify(`${h}.${p}.${sig}`, 'payment.approve')), 'TOKEN_SIGNATURE_INVALID');
  });

  it('stays within its bound, and verifies every token whether or not it is remembered', async () => {
    const verifier = make(() => NOW, { size: 3 });
    const tokens = await Promise.all(Array.from({ length: 5 }, (_, i) => token(a, { sid: `ses_${i}` })));
    for (const t of tokens) await verifier.verify(t, 'payment.approve');
    assert.equal(verifier.cachedSignatures, 3);
    for (const t of tokens) assert.equal((await verifier.verify(t, 'payment.approve')).level, 'verified');
    assert.equal(verifier.cachedSignatures, 3);
    const off = make(() => NOW, { size: 0 });
    await off.verify(tokens[0]!, 'payment.approve');
    assert.equal(off.cachedSignatures, 0);
    assert.throws(() => make(() => NOW, { size: -1 }), TypeError);
  });
});

describe('verifier signature cache and the remote JWKS', () => {
  let server: Server;
  let published: JWK[] = [];
  let url = '';
  before(async () => {
    server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: published }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('refuses a remembered token once Baton publishes another key under its kid, or drops the kid', async () => {
    const k1 = await signer('k1');
    const impostor = await signer('k1'); // another key pair under the same kid
    published = [k1.jwk];
    let now = NOW;
    const verifier = new ActionTokenVerifier({
      audience: AUD,
      jwksUrl: url,
      actions: ACTIONS,
      clock: () => now,
      jwksCacheMaxAgeMs: 1000,
    });
    const t = await token(k1);
    await verifier.verify(t, 'payment.approve');
    assert.equal(verifier.cachedSignatures, 1);
    published = [impostor.jwk];
    now += 2000; // the JWKS is fetched again
    assert.equal(await refusal(verifier.verify(t, 'payment.approve')), 'TOKEN_SIGNATURE_INVALID');
    published = [k1.jwk];
    now += 2000;
    assert.equal((await verifier.verify(t, 'payment.approve')).level, 'verified');
    published = [];
    now += 2000;
    assert.equal(await refusal(verifier.verify(t, 'payment.approve')), 'TOKEN_KEY_UNKNOWN');
  });
});
