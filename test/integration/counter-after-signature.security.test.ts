import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { WebAuthnCeremonies } from '../../backend/services/webauthn-ceremonies.js';
import { BatonError } from '../../shared/errors.js';
import { SoftAuthenticator, type CeremonyOverrides } from '../helpers/soft-authenticator.js';

const isCode = (code: string) => (error: unknown) => error instanceof BatonError && error.code === code;

/**
 * @simplewebauthn/server compares the signature counter before it verifies the signature: taken as
 * is, anyone who knows a credential id could send a forged low-counter assertion, be told
 * WEBAUTHN_COUNTER_REGRESSED, and now get the passkey suspended. The backend compares the counter
 * itself, after the signature verified.
 */
describe('WebAuthnCeremonies.verifyAuthentication', () => {
  const ORIGIN = 'https://baton.example';
  const rp = new WebAuthnCeremonies({ rpId: 'baton.example', rpName: 'Baton', origins: [ORIGIN], timeoutMs: 60_000 });

  async function registered() {
    const authenticator = new SoftAuthenticator(ORIGIN);
    const challenge = randomBytes(16).toString('base64url');
    const options = await rp.registrationOptions({
      challenge,
      userId: randomBytes(16),
      userName: 'ada',
      displayName: 'Ada',
      userVerification: 'preferred',
      attestation: 'none',
      exclude: [],
    });
    const info = await rp.verifyRegistration(authenticator.register(options), challenge, false);
    return { authenticator, credential: { ...info.credential, counter: 10 } };
  }

  function tamper(signature: string): string {
    const bytes = Buffer.from(signature, 'base64url');
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0x01;
    return bytes.toString('base64url');
  }

  it('compares the counter only once the signature verified: a forged low counter is a bad signature', async () => {
    const { authenticator, credential } = await registered();
    const challenge = randomBytes(16).toString('base64url');
    const forged = authenticator.assert({ challenge, rpId: 'baton.example' }, { counter: 1 });
    forged.response.signature = tamper(forged.response.signature);
    await assert.rejects(
      rp.verifyAuthentication(forged, challenge, credential, false),
      isCode('WEBAUTHN_VERIFICATION_FAILED'),
    );
    const copy = authenticator.assert({ challenge, rpId: 'baton.example' }, { counter: 10 });
    await assert.rejects(
      rp.verifyAuthentication(copy, challenge, credential, false),
      (error: unknown) =>
        isCode('WEBAUTHN_COUNTER_REGRESSED')(error) &&
        (error as BatonError).extra?.storedCounter === 10 &&
        (error as BatonError).extra?.receivedCounter === 10,
    );
    const genuine = authenticator.assert({ challenge, rpId: 'baton.example' }, { counter: 11 });
    assert.equal((await rp.verifyAuthentication(genuine, challenge, credential, false)).newCounter, 11);
  });

  it('names a missing touch, a wrong ceremony type and a missing user verification before the signature', async () => {
    const { authenticator, credential } = await registered();
    const challenge = randomBytes(16).toString('base64url');
    const cases: [CeremonyOverrides, string][] = [
      [{ userPresent: false }, 'WEBAUTHN_USER_PRESENCE_REQUIRED'],
      [{ clientDataType: 'webauthn.create' }, 'WEBAUTHN_WRONG_CEREMONY_TYPE'],
      [{ userVerified: false }, 'WEBAUTHN_USER_VERIFICATION_REQUIRED'],
    ];
    for (const [overrides, code] of cases) {
      const response = authenticator.assert({ challenge, rpId: 'baton.example' }, { counter: 20, ...overrides });
      await assert.rejects(rp.verifyAuthentication(response, challenge, credential, true), isCode(code));
    }
  });
});
