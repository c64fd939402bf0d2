/**
 * WebAuthnCeremonies.verifyAuthentication with the ES256 fast path (ADR 0013): what a caller sees, with a
 * software security key; the fast path's equality with the library is pinned in
 * backend/crypto/es256-assertions.test.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import { decodeAttestationObject, isoBase64URL, parseAuthenticatorData } from '@simplewebauthn/server/helpers';
import { VerifyPool } from '../../backend/crypto/verify-pool.js';
import { WebAuthnCeremonies } from '../../backend/services/webauthn-ceremonies.js';
import { BatonError } from '../../shared/errors.js';
import { SoftAuthenticator } from '../helpers/soft-authenticator.js';

const isCode = (code: string) => (error: unknown) => error instanceof BatonError && error.code === code;

describe('WebAuthnCeremonies.verifyAuthentication and the ES256 fast path (ADR 0013)', () => {
  const rp = { rpId: 'baton.test', rpName: 'Baton', origins: ['https://baton.test'], timeoutMs: 60_000 };
  const challenge = randomBytes(32).toString('base64url');
  // A software security key (ES256, 37-byte authenticator data): the shape the fast path takes.
  const key = new SoftAuthenticator(rp.origins[0]!);
  const registration = key.register({
    rp: { id: rp.rpId, name: rp.rpName },
    user: { id: 'dXNlcg', name: 'operator', displayName: 'Operator' },
    challenge: 'AAAA',
    pubKeyCredParams: [{ type: 'public-key', alg: -7 }],
  });
  const { credentialPublicKey } = parseAuthenticatorData(
    decodeAttestationObject(isoBase64URL.toBuffer(registration.response.attestationObject)).get('authData'),
  );
  const credential = { id: registration.id, publicKey: credentialPublicKey!, counter: 4 };
  const assertion = (origin: string, counter: number): AuthenticationResponseJSON =>
    key.assert({ challenge, rpId: rp.rpId }, { origin, counter });

  it('accepts through the fast path; a refusal keeps its own code, and a counter that stood still is a clone', async () => {
    const ceremonies = new WebAuthnCeremonies(rp);
    const info = await ceremonies.verifyAuthentication(assertion(rp.origins[0]!, 5), challenge, credential, true);
    assert.equal(info.newCounter, 5);
    assert.equal(info.userVerified, true);
    assert.equal(info.backupEligible, false);
    assert.deepEqual(ceremonies.es256.stats, { accepted: 1, deferred: 0 });
    await assert.rejects(
      ceremonies.verifyAuthentication(assertion('https://evil.test', 6), challenge, credential, true),
      isCode('WEBAUTHN_ORIGIN_MISMATCH'),
    );
    await assert.rejects(
      ceremonies.verifyAuthentication(assertion(rp.origins[0]!, 4), challenge, credential, true),
      isCode('WEBAUTHN_COUNTER_REGRESSED'),
    );
    assert.deepEqual(ceremonies.es256.stats, { accepted: 2, deferred: 1 });
  });

  it('leaves every assertion to the verification pool where there is one (its admission and closing stay in force)', async () => {
    const pool = new VerifyPool({ size: 1 });
    await pool.close();
    const ceremonies = new WebAuthnCeremonies(rp, pool);
    await assert.rejects(
      ceremonies.verifyAuthentication(assertion(rp.origins[0]!, 5), challenge, credential, true),
      isCode('SHUTTING_DOWN'),
    );
    assert.deepEqual(ceremonies.es256.stats, { accepted: 0, deferred: 0 });
  });
});
