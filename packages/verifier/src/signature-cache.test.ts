import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ActionTokenVerifier, RevocationList } from './index.js';
import { AUD, NOW, jwksServer, refusal, signer, token, type JwksServer, type Signer } from './test-fixtures.js';

/**
 * The verifier remembers tokens whose signature verified (`signatureCacheSize`): a remembered token
 * must still be refused for everything but its signature: expiry, revocation, age, another key.
 */

const ACTIONS = { 'payment.approve': { level: 'verified', maxAgeSeconds: 300 } } as const;

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
    assert.equal((await refusal(verifier.verify(t, 'payment.approve'))).code, 'TOKEN_EXPIRED');
    assert.equal(verifier.cachedSignatures, 0);
  });

  it('refuses a remembered token once its session is revoked, or its authentication too old for the action', async () => {
    let now = NOW;
    const revocations = new RevocationList(() => now);
    const verifier = make(() => now, { revocations });
    const revoked = await token(a, { sid: 'ses_r' });
    assert.equal((await verifier.verify(revoked, 'payment.approve')).session, 'ses_r');
    revocations.apply({ epoch: 1, kind: 'session', targetId: 'ses_r', operatorId: 'op_ada', at: now });
    assert.equal((await refusal(verifier.verify(revoked, 'payment.approve'))).code, 'TOKEN_REVOKED');

    // Authenticated 290 s before issuance: within 300 s (+30 s tolerance) now, not 60 s later.
    const aging = await token(a, { sid: 'ses_old', auth_time: Math.floor(NOW / 1000) - 290 });
    assert.equal((await verifier.verify(aging, 'payment.approve')).session, 'ses_old');
    now = NOW + 60_000;
    assert.equal((await refusal(verifier.verify(aging, 'payment.approve'))).code, 'INSUFFICIENT_USER_AUTHENTICATION');
  });

  it('is keyed on the whole token: a remembered signature under other claims does not verify', async () => {
    const verifier = make(() => NOW);
    const t = await token(a, { sid: 'ses_1' });
    await verifier.verify(t, 'payment.approve');
    const other = await token(a, { sid: 'ses_2', level: 'hardware' });
    const [h, , sig] = t.split('.');
    const [, p] = other.split('.');
    assert.equal(
      (await refusal(verifier.verify(`${h}.${p}.${sig}`, 'payment.approve'))).code,
      'TOKEN_SIGNATURE_INVALID',
    );
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
  let jwks: JwksServer;
  before(async () => {
    jwks = await jwksServer();
  });
  after(() => jwks.close());

  it('refuses a remembered token once Baton publishes another key under its kid, or drops the kid', async () => {
    const k1 = await signer('k1');
    const impostor = await signer('k1'); // another key pair under the same kid
    jwks.published = [k1.jwk];
    let now = NOW;
    const verifier = new ActionTokenVerifier({
      audience: AUD,
      jwksUrl: jwks.url,
      actions: ACTIONS,
      clock: () => now,
      jwksCacheMaxAgeMs: 1000,
    });
    const t = await token(k1);
    await verifier.verify(t, 'payment.approve');
    assert.equal(verifier.cachedSignatures, 1);
    jwks.published = [impostor.jwk];
    now += 2000; // the JWKS is fetched again
    assert.equal((await refusal(verifier.verify(t, 'payment.approve'))).code, 'TOKEN_SIGNATURE_INVALID');
    jwks.published = [k1.jwk];
    now += 2000;
    assert.equal((await verifier.verify(t, 'payment.approve')).level, 'verified');
    jwks.published = [];
    now += 2000;
    assert.equal((await refusal(verifier.verify(t, 'payment.approve'))).code, 'TOKEN_KEY_UNKNOWN');
  });
});
