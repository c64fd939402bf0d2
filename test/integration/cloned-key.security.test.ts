import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_POLICY, type Policy } from '../../shared/policy.js';
import { TestConsole, assertError, startTestBackend, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { openRawDatabase, type RawDatabase } from '../helpers/raw-database.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';

/**
 * The black-box client found that a sign-in refused for a regressed signature counter ("looks like a
 * copy of a registered key") left the credential active: the next tap with it was accepted. A likely
 * clone is now a security event: by default the credential is suspended until an admin reviews it.
 */

interface CredentialRow {
  counter: number;
  last_used_at: number | null;
  suspended_at: number | null;
  suspended_reason: string | null;
}

function tamper(signature: string): string {
  const bytes = Buffer.from(signature, 'base64url');
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0x01;
  return bytes.toString('base64url');
}

describe('a cloned passkey (signature counter gone backwards)', () => {
  let t: TestBackend;
  let kiosk: TestConsole;
  let db: RawDatabase;

  before(async () => {
    t = await startTestBackend();
    kiosk = await TestConsole.enrol(t.url, t.admin);
    db = await openRawDatabase(t, { readonly: true });
  });
  after(async () => {
    await db.close();
    await t.stop();
  });

  const row = async (id: string): Promise<CredentialRow> =>
    (await db.get<CredentialRow>(
      'SELECT counter, last_used_at, suspended_at, suspended_reason FROM credentials WHERE id = ?',
      id,
    )) as CredentialRow;

  const credentialView = async (operatorId: string, credentialId: string): Promise<Json> => {
    const detail = (await t.admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json;
    return (detail.credentials as Json[]).find((c) => c.id === credentialId);
  };

  it('is refused, suspends the credential, refuses the next tap with the same key until an admin reinstates it', async () => {
    const { operatorId, credentialId, authenticator } = await enrolOperator(t.admin, kiosk, { displayName: 'Cloned' });
    assert.equal((await signIn(kiosk, authenticator, { counter: 10 })).status, 200);

    // The copy lags behind the original: refused, and the passkey is suspended.
    assertError(await signIn(kiosk, authenticator, { counter: 5 }), 403, 'WEBAUTHN_COUNTER_REGRESSED');
    const suspended = await row(credentialId);
    assert.equal(suspended.counter, 10, 'the copy did not move the stored counter');
    assert.notEqual(suspended.suspended_at, null);
    assert.equal(suspended.suspended_reason, 'possible-cloned-authenticator');
    const recorded = (await t.admin.ok(
      'GET',
      `/v1/admin/events?type=credential-counter-regressed&operator=${operatorId}`,
    )) as Json;
    assert.equal(recorded.events.length, 1);
    assert.deepEqual(recorded.events[0].reasons, ['possible-cloned-authenticator', 'credential-suspended']);
    assert.equal(recorded.events[0].detail.storedCounter, 10);
    assert.equal(recorded.events[0].detail.receivedCounter, 5);

    // The next tap, even counting on correctly, is refused with a stable code and changes nothing.
    assertError(await signIn(kiosk, authenticator, { counter: 11 }), 403, 'CREDENTIAL_SUSPENDED');
    assert.deepEqual(await row(credentialId), suspended);
    // The admin console sees why, on the operator's page and in the list of passkeys awaiting review.
    const view = await credentialView(operatorId, credentialId);
    assert.equal(view.suspendedReason, 'possible-cloned-authenticator');
    assert.equal(view.revokedAt, null);
    const awaiting = (await t.admin.ok('GET', '/v1/admin/credentials/suspended')) as Json;
    assert.deepEqual(
      (awaiting.credentials as Json[]).map((c) => [c.id, c.operatorId, c.operatorName]),
      [[credentialId, operatorId, 'Cloned']],
    );

    // An admin reviews it and reinstates it: it works again.
    const reinstated = (await t.admin.ok('POST', `/v1/admin/credentials/${credentialId}/reinstate`, {
      reason: 'operator still holds the key; the copy was a lab test',
    })) as Json;
    assert.equal(reinstated.credential.suspendedAt, null);
    assert.deepEqual(((await t.admin.ok('GET', '/v1/admin/credentials/suspended')) as Json).credentials, []);
    assert.equal((await signIn(kiosk, authenticator, { counter: 12 })).status, 200);
    assert.equal((await row(credentialId)).counter, 12);
    const actions = (await t.admin.ok('GET', `/v1/admin/events?type=admin-action&operator=${operatorId}`)) as Json;
    assert.ok((actions.events as Json[]).some((e) => (e.reasons as string[]).includes('credential-reinstated')));
  });

  it('is not suspended by someone who only knows the credential id: a forged low-counter assertion is a bad signature', async () => {
    const { credentialId, authenticator } = await enrolOperator(t.admin, kiosk, { displayName: 'Forged' });
    assert.equal((await signIn(kiosk, authenticator, { counter: 10 })).status, 200);
    const { options } = (await kiosk.ok('POST', '/v1/sign-in/options', {})) as Json;
    const response = authenticator.assert(options, { counter: 1 });
    response.response.signature = tamper(response.response.signature);
    assertError(await kiosk.request('POST', '/v1/sign-in/verify', { response }), 400, 'WEBAUTHN_VERIFICATION_FAILED');
    assert.equal((await row(credentialId)).suspended_at, null);
    assert.equal((await signIn(kiosk, authenticator, { counter: 11 })).status, 200);
  });

  it('refuses to reinstate a credential that is not suspended, or that does not exist', async () => {
    const { credentialId } = await enrolOperator(t.admin, kiosk, { displayName: 'Not Suspended' });
    assertError(
      await t.admin.request('POST', `/v1/admin/credentials/${credentialId}/reinstate`, { reason: 'check' }),
      409,
      'CREDENTIAL_NOT_SUSPENDED',
    );
    assertError(
      await t.admin.request('POST', '/v1/admin/credentials/nope/reinstate', { reason: 'check' }),
      404,
      'NOT_FOUND',
    );
  });

  it('with policy onCounterRegression "refuse", refuses the copy but leaves the credential usable', async () => {
    const current = (await t.admin.ok('GET', '/v1/admin/policy')) as { version: number };
    const policy: Policy = structuredClone(DEFAULT_POLICY);
    policy.credentials.onCounterRegression = 'refuse';
    await t.admin.ok('POST', '/v1/admin/policy', { baseVersion: current.version, policy });
    const { operatorId, credentialId, authenticator } = await enrolOperator(t.admin, kiosk, {
      displayName: 'Refuse Only',
    });
    assert.equal((await signIn(kiosk, authenticator, { counter: 10 })).status, 200);
    assertError(await signIn(kiosk, authenticator, { counter: 5 }), 403, 'WEBAUTHN_COUNTER_REGRESSED');
    assert.equal((await row(credentialId)).suspended_at, null);
    const recorded = (await t.admin.ok(
      'GET',
      `/v1/admin/events?type=credential-counter-regressed&operator=${operatorId}`,
    )) as Json;
    assert.deepEqual(recorded.events[0].reasons, ['possible-cloned-authenticator']);
    assert.equal((await signIn(kiosk, authenticator, { counter: 11 })).status, 200);
  });
});
