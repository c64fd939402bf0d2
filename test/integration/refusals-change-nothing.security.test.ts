import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_POLICY, type Policy } from '../../shared/policy.js';
import { AdminBrowser } from '../helpers/admin-session.js';
import {
  TEST_ORIGIN,
  TestConsole,
  assertError,
  startTestBackend,
  type HttpResult,
  type Json,
  type TestBackend,
} from '../helpers/backend-harness.js';
import { openRawDatabase, type RawDatabase } from '../helpers/raw-database.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { SoftAuthenticator, type CeremonyOverrides } from '../helpers/soft-authenticator.js';

/**
 * A refused sign-in or step-up must change nothing about the credential: the black-box client found
 * a `CREDENTIAL_NOT_DEVICE_BOUND` refusal that still stored the assertion's counter and `lastUsedAt`.
 * Each refusal here reads the credential's row from the backend's own SQLite file before and after.
 */

interface CredentialRow {
  counter: number;
  last_used_at: number | null;
  revoked_at: number | null;
  suspended_at: number | null;
}

describe('a refused assertion leaves the stored credential as it was', () => {
  let t: TestBackend;
  let kiosk: TestConsole;
  let db: RawDatabase;

  before(async () => {
    t = await startTestBackend();
    kiosk = await TestConsole.enrol(t.url, t.admin);
    db = await openRawDatabase(t, { readonly: true });
    // An action only an attested, allow-listed key reaches: software keys step up and still fall short.
    const policy: Policy = structuredClone(DEFAULT_POLICY);
    policy.actions['vault.open'] = { level: 'hardware', maxAgeSeconds: 60 };
    await t.admin.ok('POST', '/v1/admin/policy', { baseVersion: 1, policy });
  });
  after(async () => {
    await db.close();
    await t.stop();
  });

  const row = async (credentialId: string): Promise<CredentialRow> =>
    (await db.get<CredentialRow>(
      'SELECT counter, last_used_at, revoked_at, suspended_at FROM credentials WHERE id = ?',
      credentialId,
    )) as CredentialRow;

  /** Runs a refusal and asserts what the caller sees, and that the credential's row did not move. */
  async function refusedWithoutChange(
    credentialId: string,
    refusal: () => Promise<HttpResult<Json>>,
    status: number,
    code: string,
  ): Promise<void> {
    const before = await row(credentialId);
    assertError(await refusal(), status, code);
    assert.deepEqual(await row(credentialId), before, `${code} changed the stored credential`);
  }

  async function signedInOperator(name: string) {
    const enrolled = await enrolOperator(t.admin, kiosk, { displayName: name });
    const first = await signIn(kiosk, enrolled.authenticator);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    return { ...enrolled, sessionId: first.body.session.id as string };
  }

  function stepUp(
    sessionId: string,
    action: string,
    authenticator: SoftAuthenticator,
    overrides: CeremonyOverrides = {},
  ): () => Promise<HttpResult<Json>> {
    return async () => {
      const path = `/v1/sessions/${sessionId}/step-up`;
      const { options } = (await kiosk.ok('POST', `${path}/options`, { action })) as Json;
      const response = authenticator.assert(options, overrides);
      return kiosk.request('POST', `${path}/verify`, { action, response });
    };
  }

  it('sign-in: a device-bound credential asserting the backup-eligible flag stores no counter and no last use', async () => {
    const { credentialId, authenticator } = await signedInOperator('Ann Backup');
    await refusedWithoutChange(
      credentialId,
      () => signIn(kiosk, authenticator, { backupEligible: true, counter: 1000 }),
      403,
      'CREDENTIAL_NOT_DEVICE_BOUND',
    );
    // The genuine key, counting on from the stored value, still works.
    assert.equal((await signIn(kiosk, authenticator, { counter: (await row(credentialId)).counter + 1 })).status, 200);
  });

  it('step-up: the backup-eligible flag on a device-bound credential stores nothing', async () => {
    const { credentialId, authenticator, sessionId } = await signedInOperator('Bea Backup');
    await refusedWithoutChange(
      credentialId,
      stepUp(sessionId, 'vault.open', authenticator, { backupEligible: true, counter: 1000 }),
      403,
      'CREDENTIAL_NOT_DEVICE_BOUND',
    );
  });

  it('sign-in: a level the channel does not allow stores nothing', async () => {
    const shared = await TestConsole.enrol(t.url, t.admin, 'shared-console');
    const { credentialId, authenticator } = await signedInOperator('Cal Presence');
    await refusedWithoutChange(
      credentialId,
      () => signIn(shared, authenticator, { userVerified: false }),
      403,
      'LEVEL_NOT_ALLOWED_ON_CHANNEL',
    );
  });

  it('step-up: a verified assertion that still falls short of the action stores nothing', async () => {
    const { credentialId, authenticator, sessionId } = await signedInOperator('Dee Short');
    await refusedWithoutChange(
      credentialId,
      stepUp(sessionId, 'vault.open', authenticator),
      403,
      'STEP_UP_INSUFFICIENT',
    );
  });

  it('step-up: the wrong operator, and a step-up without the user verification it needs, store nothing', async () => {
    const owner = await signedInOperator('Eve Owner');
    const other = await enrolOperator(t.admin, kiosk, { displayName: 'Fay Other' });
    await refusedWithoutChange(
      other.credentialId,
      async () => {
        const path = `/v1/sessions/${owner.sessionId}/step-up`;
        const { options } = (await kiosk.ok('POST', `${path}/options`, { action: 'vault.open' })) as Json;
        const response = other.authenticator.assert({ ...options, allowCredentials: [] });
        return kiosk.request('POST', `${path}/verify`, { action: 'vault.open', response });
      },
      403,
      'STEP_UP_WRONG_OPERATOR',
    );
    const presence = await enrolOperator(t.admin, kiosk, { displayName: 'Gus Presence' });
    const signedIn = await signIn(kiosk, presence.authenticator, { userVerified: false });
    await refusedWithoutChange(
      presence.credentialId,
      stepUp(signedIn.body.session.id as string, 'payment.approve', presence.authenticator, { userVerified: false }),
      403,
      'WEBAUTHN_USER_VERIFICATION_REQUIRED',
    );
  });

  it('sign-in: every refusal of the WebAuthn checks stores nothing', async () => {
    const { credentialId, authenticator } = await signedInOperator('Hal Checks');
    const cases: [CeremonyOverrides, number, string][] = [
      [{ origin: 'https://evil.example' }, 400, 'WEBAUTHN_ORIGIN_MISMATCH'],
      [{ rpId: 'evil.example' }, 400, 'WEBAUTHN_RP_ID_MISMATCH'],
      [{ userPresent: false }, 403, 'WEBAUTHN_USER_PRESENCE_REQUIRED'],
      [{ clientDataType: 'webauthn.create' }, 400, 'WEBAUTHN_WRONG_CEREMONY_TYPE'],
    ];
    for (const [overrides, status, code] of cases) {
      await refusedWithoutChange(credentialId, () => signIn(kiosk, authenticator, overrides), status, code);
    }
  });

  it('admin sign-in: an operator without the admin role leaves their passkey as it was', async () => {
    const { credentialId, authenticator } = await signedInOperator('Ivy Teller');
    const intruder = new AdminBrowser(t.url, t.backend.adminOrigin);
    await refusedWithoutChange(
      credentialId,
      async () => {
        const { options } = await intruder.ok('POST', '/v1/admin/auth/sign-in/options', {});
        const response = authenticator.assert(options, { origin: t.backend.adminOrigin });
        return intruder.request('POST', '/v1/admin/auth/sign-in/verify', { response });
      },
      403,
      'ADMIN_ROLE_REQUIRED',
    );
    assert.equal(intruder.cookie, undefined);
  });
});

describe('registration without user verification under a policy that requires it', () => {
  let t: TestBackend;
  let kiosk: TestConsole;
  before(async () => {
    t = await startTestBackend();
    kiosk = await TestConsole.enrol(t.url, t.admin);
    const policy: Policy = structuredClone(DEFAULT_POLICY);
    policy.credentials.userVerification = 'required';
    await t.admin.ok('POST', '/v1/admin/policy', { baseVersion: 1, policy });
  });
  after(() => t.stop());

  it('is refused with 403 WEBAUTHN_USER_VERIFICATION_REQUIRED, as the docs promise, and registers nothing', async () => {
    const { operator } = (await t.admin.ok('POST', '/v1/admin/operators', {
      displayName: 'Jo No-PIN',
      roles: ['teller'],
    })) as Json;
    const { code } = (await t.admin.ok(
      'POST',
      `/v1/admin/operators/${operator.id as string}/enrolment-codes`,
      {},
    )) as Json;
    const { options } = (await kiosk.ok('POST', '/v1/operators/enrol/options', { code })) as Json;
    const response = new SoftAuthenticator(TEST_ORIGIN).register(options, { userVerified: false });
    assertError(
      await kiosk.request('POST', '/v1/operators/enrol/verify', { code, response }),
      403,
      'WEBAUTHN_USER_VERIFICATION_REQUIRED',
    );
    const detail = (await t.admin.ok('GET', `/v1/admin/operators/${operator.id as string}`)) as Json;
    assert.deepEqual(detail.credentials, []);
  });

  it('refuses a registration signed as an assertion (wrong clientDataJSON.type) with its own code', async () => {
    const { operator } = (await t.admin.ok('POST', '/v1/admin/operators', {
      displayName: 'Kim Type',
      roles: ['teller'],
    })) as Json;
    const { code } = (await t.admin.ok(
      'POST',
      `/v1/admin/operators/${operator.id as string}/enrolment-codes`,
      {},
    )) as Json;
    const { options } = (await kiosk.ok('POST', '/v1/operators/enrol/options', { code })) as Json;
    const response = new SoftAuthenticator(TEST_ORIGIN).register(options, { clientDataType: 'webauthn.get' });
    assertError(
      await kiosk.request('POST', '/v1/operators/enrol/verify', { code, response }),
      400,
      'WEBAUTHN_WRONG_CEREMONY_TYPE',
    );
  });
});
