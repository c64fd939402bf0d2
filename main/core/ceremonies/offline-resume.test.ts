import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import type { AuthenticationResponseJSON, PublicKeyCredentialCreationOptionsJSON } from '@simplewebauthn/server';
import { decodeAttestationObject, isoBase64URL, parseAuthenticatorData } from '@simplewebauthn/server/helpers';
import { DEFAULT_POLICY, type Policy } from '../../../shared/policy.js';
import { SoftAuthenticator, type CeremonyOverrides } from '../../../test/helpers/soft-authenticator.js';
import type { AgentSession } from '../session-manager.js';
import { OFFLINE_CHALLENGE_TTL_MS, verifyOfflineResume, type OfflineResumeInput } from './offline-resume.js';

const ORIGIN = 'https://baton.test';
const RP_ID = 'baton.test';
const CHALLENGE = isoBase64URL.fromBuffer(new Uint8Array(32).fill(7));
const NOW = Date.UTC(2026, 10, 23, 9, 0, 0);

function registration(authenticator: SoftAuthenticator): { id: string; publicKey: string } {
  const options = {
    rp: { id: RP_ID, name: 'Baton' },
    user: { id: 'dXNlcg', name: 'lu', displayName: 'Lu' },
    challenge: 'cmVn',
    pubKeyCredParams: [{ type: 'public-key', alg: -7 }],
  } as PublicKeyCredentialCreationOptionsJSON;
  const response = authenticator.register(options);
  const authData = decodeAttestationObject(isoBase64URL.toBuffer(response.response.attestationObject)).get('authData');
  const publicKey = parseAuthenticatorData(authData).credentialPublicKey;
  assert.ok(publicKey !== undefined);
  return { id: response.id, publicKey: isoBase64URL.fromBuffer(publicKey) };
}

function session(credential: { id: string; publicKey: string }, extra: Partial<AgentSession> = {}): AgentSession {
  return {
    id: 'ses_1',
    operatorId: 'op_lu',
    operatorName: 'Lu',
    credentialId: credential.id,
    publicKey: credential.publicKey,
    counter: 0,
    level: 'verified',
    authTime: NOW - 60_000,
    startedAt: NOW - 60_000,
    expiresAt: NOW + 3_600_000,
    endsAtElapsed: 3_600_000,
    state: 'locked',
    since: NOW - 30_000,
    sinceElapsed: 0,
    token: undefined,
    tokenExpiresAt: undefined,
    ...extra,
  } as AgentSession;
}

describe('verifyOfflineResume', () => {
  let authenticator: SoftAuthenticator;
  let lu: AgentSession;

  beforeEach(() => {
    authenticator = new SoftAuthenticator(ORIGIN, { userVerified: true });
    lu = session(registration(authenticator));
  });

  function tap(overrides: CeremonyOverrides = {}): AuthenticationResponseJSON {
    return authenticator.assert({ challenge: CHALLENGE, rpId: RP_ID }, overrides);
  }

  function input(response: AuthenticationResponseJSON, extra: Partial<OfflineResumeInput> = {}): OfflineResumeInput {
    return {
      response,
      challenge: CHALLENGE,
      challengeExpiresAt: 1_000 + OFFLINE_CHALLENGE_TTL_MS,
      now: NOW,
      monotonic: 1_000,
      resumable: [lu],
      known: [lu],
      policy: DEFAULT_POLICY,
      channel: 'branch-kiosk',
      rpId: RP_ID,
      origin: ORIGIN,
      ...extra,
    };
  }

  test('a genuine tap on a resumable session resumes it at the level the tap proves, with the new counter', async () => {
    const verdict = await verifyOfflineResume(input(tap()));
    assert.equal(verdict.ok, true);
    assert.ok(verdict.ok);
    assert.equal(verdict.session.id, 'ses_1');
    assert.equal(verdict.level, 'verified');
    assert.equal(verdict.newCounter, 1);
  });

  test('a tap without user verification resumes only at presence', async () => {
    const verdict = await verifyOfflineResume(input(tap({ userVerified: false })));
    assert.ok(verdict.ok);
    assert.equal(verdict.level, 'presence');
  });

  test('refuses a tap signed for another challenge (a replayed or earlier ceremony)', async () => {
    const verdict = await verifyOfflineResume(input(tap({ challenge: 'b3RoZXI' })));
    assert.deepEqual(verdict.ok ? verdict : { code: verdict.code, reason: verdict.reason }, {
      code: 'CHALLENGE_UNKNOWN',
      reason: 'challenge-unknown',
    });
  });

  test('refuses a tap that answers this ceremony’s challenge after it expired', async () => {
    const verdict = await verifyOfflineResume(input(tap(), { monotonic: 1_001 + OFFLINE_CHALLENGE_TTL_MS }));
    assert.equal(verdict.ok ? 'ok' : verdict.code, 'CHALLENGE_UNKNOWN');
  });

  test('refuses a key that holds no session here as a new sign-in, naming nobody', async () => {
    const verdict = await verifyOfflineResume(input(tap(), { resumable: [], known: [] }));
    assert.ok(!verdict.ok);
    assert.equal(verdict.code, 'OFFLINE_SIGN_IN_REFUSED');
    assert.equal(verdict.operatorId, undefined);
  });

  test('refuses a session left longer than the offline grace, naming its operator', async () => {
    const verdict = await verifyOfflineResume(input(tap(), { resumable: [] }));
    assert.ok(!verdict.ok);
    assert.equal(verdict.code, 'OFFLINE_RESUME_REFUSED');
    assert.equal(verdict.reason, 'offline-grace-elapsed');
    assert.equal(verdict.operatorId, 'op_lu');
  });

  test('maps the library’s refusals to the backend’s stable codes', async () => {
    const cases: [CeremonyOverrides, string][] = [
      [{ origin: 'https://evil.test' }, 'WEBAUTHN_ORIGIN_MISMATCH'],
      [{ rpId: 'evil.test' }, 'WEBAUTHN_RP_ID_MISMATCH'],
      [{ userPresent: false }, 'WEBAUTHN_USER_PRESENCE_REQUIRED'],
      [{ clientDataType: 'webauthn.create' }, 'WEBAUTHN_WRONG_CEREMONY_TYPE'],
    ];
    for (const [overrides, code] of cases) {
      const verdict = await verifyOfflineResume(input(tap(overrides)));
      assert.ok(!verdict.ok, code);
      assert.equal(verdict.code, code);
      assert.equal(verdict.reason, code.toLowerCase().replace(/_/g, '-'));
      assert.equal(verdict.operatorId, 'op_lu');
    }
  });

  test('refuses a cloned key whose counter went back', async () => {
    const verdict = await verifyOfflineResume(input(tap({ counter: 3 }), { resumable: [{ ...lu, counter: 5 }] }));
    assert.equal(verdict.ok ? 'ok' : verdict.code, 'WEBAUTHN_COUNTER_REGRESSED');
  });

  test('refuses a tap without user verification when the policy requires it', async () => {
    const policy: Policy = {
      ...DEFAULT_POLICY,
      credentials: { ...DEFAULT_POLICY.credentials, userVerification: 'required' },
    };
    const verdict = await verifyOfflineResume(input(tap({ userVerified: false }), { policy }));
    assert.equal(verdict.ok ? 'ok' : verdict.code, 'WEBAUTHN_USER_VERIFICATION_REQUIRED');
  });

  test('refuses a tap signed by another key than the session’s', async () => {
    const other = session(registration(authenticator), { credentialId: lu.credentialId });
    const verdict = await verifyOfflineResume(input(tap({ credentialId: lu.credentialId }), { resumable: [other] }));
    assert.equal(verdict.ok ? 'ok' : verdict.code, 'WEBAUTHN_VERIFICATION_FAILED');
  });

  test('refuses a level the channel does not allow to sign in', async () => {
    const verdict = await verifyOfflineResume(input(tap({ userVerified: false }), { channel: 'shared-console' }));
    assert.ok(!verdict.ok);
    assert.equal(verdict.code, 'LEVEL_NOT_ALLOWED_ON_CHANNEL');
    assert.equal(verdict.operatorId, 'op_lu');
  });
});
