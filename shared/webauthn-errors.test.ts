import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type PublicKeyCredentialCreationOptionsJSON,
} from '@simplewebauthn/server';
import { SoftAuthenticator, type CeremonyOverrides } from '../test/helpers/soft-authenticator.js';
import { ceremonyRefusal, webauthnRefusalCode } from './webauthn-errors.js';

const ORIGIN = 'https://baton.example';
const RP_ID = 'baton.example';

function creation(): PublicKeyCredentialCreationOptionsJSON {
  return {
    rp: { id: RP_ID, name: 'Baton' },
    user: { id: randomBytes(16).toString('base64url'), name: 'ada', displayName: 'Ada' },
    challenge: randomBytes(16).toString('base64url'),
    pubKeyCredParams: [{ type: 'public-key', alg: -7 }],
  };
}

/** What @simplewebauthn/server throws for a registration made with these overrides. */
async function registrationError(overrides: CeremonyOverrides, requireUserVerification = false): Promise<unknown> {
  const options = creation();
  const response = new SoftAuthenticator(ORIGIN).register(options, overrides);
  try {
    await verifyRegistrationResponse({
      response,
      expectedChallenge: options.challenge,
      expectedOrigin: ORIGIN,
      expectedRPID: RP_ID,
      requireUserVerification,
    });
  } catch (error) {
    return error;
  }
  assert.fail('the library accepted the registration');
}

/** What @simplewebauthn/server throws for an assertion made with these overrides (stored counter 10). */
async function authenticationError(overrides: CeremonyOverrides, requireUserVerification = false): Promise<unknown> {
  const authenticator = new SoftAuthenticator(ORIGIN);
  const options = creation();
  const registration = await verifyRegistrationResponse({
    response: authenticator.register(options),
    expectedChallenge: options.challenge,
    expectedOrigin: ORIGIN,
    expectedRPID: RP_ID,
  });
  assert.ok(registration.verified);
  const challenge = randomBytes(16).toString('base64url');
  const response = authenticator.assert({ challenge, rpId: RP_ID }, { counter: 11, ...overrides });
  try {
    await verifyAuthenticationResponse({
      response,
      expectedChallenge: challenge,
      expectedOrigin: ORIGIN,
      expectedRPID: RP_ID,
      credential: { ...registration.registrationInfo.credential, counter: 10 },
      requireUserVerification,
    });
  } catch (error) {
    return error;
  }
  assert.fail('the library accepted the assertion');
}

describe('webauthnRefusalCode: @simplewebauthn/server errors mapped to stable codes in one place', () => {
  it('maps each registration refusal the library reports to its own code', async () => {
    assert.equal(
      webauthnRefusalCode(await registrationError({ userVerified: false }, true)),
      'WEBAUTHN_USER_VERIFICATION_REQUIRED',
    );
    assert.equal(
      webauthnRefusalCode(await registrationError({ userPresent: false })),
      'WEBAUTHN_USER_PRESENCE_REQUIRED',
    );
    assert.equal(
      webauthnRefusalCode(await registrationError({ clientDataType: 'webauthn.get' })),
      'WEBAUTHN_WRONG_CEREMONY_TYPE',
    );
    assert.equal(
      webauthnRefusalCode(await registrationError({ origin: 'https://evil.example' })),
      'WEBAUTHN_ORIGIN_MISMATCH',
    );
    assert.equal(webauthnRefusalCode(await registrationError({ rpId: 'evil.example' })), 'WEBAUTHN_RP_ID_MISMATCH');
  });

  it('maps each authentication refusal the library reports to its own code', async () => {
    assert.equal(
      webauthnRefusalCode(await authenticationError({ userVerified: false }, true)),
      'WEBAUTHN_USER_VERIFICATION_REQUIRED',
    );
    assert.equal(
      webauthnRefusalCode(await authenticationError({ userPresent: false })),
      'WEBAUTHN_USER_PRESENCE_REQUIRED',
    );
    assert.equal(
      webauthnRefusalCode(await authenticationError({ clientDataType: 'webauthn.create' })),
      'WEBAUTHN_WRONG_CEREMONY_TYPE',
    );
    assert.equal(webauthnRefusalCode(await authenticationError({ counter: 5 })), 'WEBAUTHN_COUNTER_REGRESSED');
    assert.equal(
      webauthnRefusalCode(await authenticationError({ origin: 'https://evil.example' })),
      'WEBAUTHN_ORIGIN_MISMATCH',
    );
    assert.equal(webauthnRefusalCode(await authenticationError({ rpId: 'evil.example' })), 'WEBAUTHN_RP_ID_MISMATCH');
  });

  it('answers WEBAUTHN_VERIFICATION_FAILED for anything else', () => {
    assert.equal(
      webauthnRefusalCode(new Error('Credential public key was missing numeric alg')),
      'WEBAUTHN_VERIFICATION_FAILED',
    );
    assert.equal(webauthnRefusalCode('not even an error'), 'WEBAUTHN_VERIFICATION_FAILED');
  });
});

describe('ceremonyRefusal: the checks made before the signature, each with its code', () => {
  const ok = { type: 'webauthn.get', userPresent: true, userVerified: true };
  const get = { type: 'webauthn.get' as const, requireUserVerification: true };
  it('names the first rule broken, and nothing when none is', () => {
    assert.equal(ceremonyRefusal(ok, get), undefined);
    assert.equal(ceremonyRefusal({ ...ok, type: 'webauthn.create' }, get)?.code, 'WEBAUTHN_WRONG_CEREMONY_TYPE');
    assert.equal(ceremonyRefusal({ ...ok, userPresent: false }, get)?.code, 'WEBAUTHN_USER_PRESENCE_REQUIRED');
    assert.equal(ceremonyRefusal({ ...ok, userVerified: false }, get)?.code, 'WEBAUTHN_USER_VERIFICATION_REQUIRED');
    assert.equal(
      ceremonyRefusal({ ...ok, userVerified: false }, { ...get, requireUserVerification: false }),
      undefined,
    );
  });
});
