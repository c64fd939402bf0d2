import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_POLICY } from '../../shared/policy.js';
import {
  assertError,
  httpJson,
  startTestBackend,
  TestConsole,
  type Json,
  type TestBackend,
  withBackendAndConsole,
} from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { ConsoleKey } from '../../main/core/console-key.js';

/** Runs `during` while the backend awaits its WebAuthn verification, then lets the verification finish. */
function interleave(t: TestBackend, during: () => Promise<void>): void {
  const ceremonies = t.backend.services.ceremonies;
  const original = ceremonies.verifyAuthentication.bind(ceremonies);
  ceremonies.verifyAuthentication = async (...args: Parameters<typeof original>) => {
    ceremonies.verifyAuthentication = original;
    const result = await original(...args);
    await during();
    return result;
  };
}

describe('regressions from the security review', () => {
  let t: TestBackend;
  let console: TestConsole;
  withBackendAndConsole((b, c) => ((t = b), (console = c)));

  it('does not start a session for an operator revoked while their sign-in was being verified', async () => {
    const { operatorId, authenticator } = await enrolOperator(t.admin, console, { displayName: 'Racing Revoked' });
    interleave(t, async () => {
      await t.admin.ok('POST', `/v1/admin/operators/${operatorId}/revoke`, { reason: 'left' });
    });
    assertError(await signIn(console, authenticator), 403, 'OPERATOR_REVOKED');
    const detail = (await t.admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json;
    assert.deepEqual(detail.sessions, [], 'no live session exists for the revoked operator');
  });

  it('does not revive a session revoked while its step-up was being verified', async () => {
    const { authenticator } = await enrolOperator(t.admin, console, { displayName: 'Racing Step-up' });
    const session = ((await signIn(console, authenticator, { userVerified: false })).body as Json).session;
    const { options } = (await console.ok('POST', `/v1/sessions/${session.id as string}/step-up/options`, {
      action: 'payment.approve',
    })) as Json;
    interleave(t, async () => {
      await t.admin.ok('POST', `/v1/admin/sessions/${session.id as string}/revoke`, { reason: 'suspicious' });
    });
    const response = authenticator.assert(options, { userVerified: true });
    const result = await console.request('POST', `/v1/sessions/${session.id as string}/step-up/verify`, {
      action: 'payment.approve',
      response,
    });
    assertError(result, 409, 'SESSION_NOT_ACTIVE');
    const sessions = (await t.admin.ok('GET', `/v1/admin/sessions?state=revoked&console=${console.id}`)) as Json;
    assert.ok(sessions.sessions.some((s: Json) => s.id === session.id));
  });

  it('ends a stepped-up session when the credential used for the step-up is revoked', async () => {
    const { operatorId, authenticator } = await enrolOperator(t.admin, console, { displayName: 'Two Keys' });
    const { code } = (await t.admin.ok('POST', `/v1/admin/operators/${operatorId}/enrolment-codes`, {})) as Json;
    const { options: creation } = (await console.ok('POST', '/v1/operators/enrol/options', { code })) as Json;
    const second = (await console.ok('POST', '/v1/operators/enrol/verify', {
      code,
      response: authenticator.register(creation),
    })) as Json;
    const firstKey = [...authenticator.credentials.keys()][0];
    const session = (
      (await signIn(console, authenticator, { userVerified: false, credentialId: firstKey })).body as Json
    ).session;
    const { options } = (await console.ok('POST', `/v1/sessions/${session.id as string}/step-up/options`, {
      action: 'payment.approve',
    })) as Json;
    const response = authenticator.assert(options, { userVerified: true, credentialId: second.credential.id });
    await console.ok('POST', `/v1/sessions/${session.id as string}/step-up/verify`, {
      action: 'payment.approve',
      response,
    });
    const revoked = (await t.admin.ok('POST', `/v1/admin/credentials/${second.credential.id as string}/revoke`, {
      reason: 'lost',
    })) as Json;
    assert.deepEqual(revoked.sessionsRevoked, [session.id]);
  });

  it('refuses to step up a suspended session: it must come back through sign-in and its continuity window', async () => {
    const first = await enrolOperator(t.admin, console, { displayName: 'Suspended One' });
    const other = await enrolOperator(t.admin, console, { displayName: 'Front One' });
    const session = ((await signIn(console, first.authenticator)).body as Json).session;
    await signIn(console, other.authenticator);
    const result = await console.request('POST', `/v1/sessions/${session.id as string}/step-up/options`, {
      action: 'payment.approve',
    });
    assertError(result, 409, 'SESSION_NOT_ACTIVE');
  });

  it('answers malformed percent-encoding in a path with 404, not a server error', async () => {
    const result = await httpJson(`${t.url}/v1/sessions/%E0%A4%A/end`, { method: 'POST', body: '{}' });
    assertError(result, 404, 'NOT_FOUND');
  });

  it('spends no signature check and stores no nonce for an enrolment without a valid token', async () => {
    const key = ConsoleKey.generate();
    const body = JSON.stringify({
      token: 'bct_not-a-real-token-at-all',
      publicKey: key.publicJwk(),
      channel: 'branch-kiosk',
    });
    const headers = key.signRequest({
      consoleId: undefined,
      method: 'POST',
      path: '/v1/consoles/enrol',
      body,
      now: Date.now(),
    });
    for (let i = 0; i < 2; i++) {
      const result = await httpJson(`${t.url}/v1/consoles/enrol`, { method: 'POST', headers, body });
      assertError(result, 401, 'ENROLMENT_TOKEN_INVALID');
    }
  });
});

describe('policy: user verification required', () => {
  it('refuses a sign-in without user verification when policy requires it', async () => {
    const t = await startTestBackend();
    try {
      const console = await TestConsole.enrol(t.url, t.admin);
      const { authenticator } = await enrolOperator(t.admin, console);
      const current = (await t.admin.ok('GET', '/v1/admin/policy')) as Json;
      const policy = structuredClone(DEFAULT_POLICY);
      policy.credentials.userVerification = 'required';
      await t.admin.ok('POST', '/v1/admin/policy', { baseVersion: current.version, policy });
      assertError(
        await signIn(console, authenticator, { userVerified: false }),
        403,
        'WEBAUTHN_USER_VERIFICATION_REQUIRED',
      );
      assert.equal((await signIn(console, authenticator, { userVerified: true })).status, 200);
    } finally {
      await t.stop();
    }
  });
});

describe('replay across a backend restart', () => {
  // The nonce is in the database (the ephemeral store every node shares), not in the process: it
  // outlives the restart, so the replay is refused as a replay, not for having been signed earlier.
  it('refuses a signed request captured before the restart: its nonce outlives the restart', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'baton-replay-'));
    const first = await startTestBackend({ dataDir });
    const console = await TestConsole.enrol(first.url, first.admin);
    const captured = console.signedHeaders('GET', '/v1/console/status');
    const before = await httpJson(`${first.url}/v1/console/status`, { method: 'GET', headers: captured });
    assert.equal(before.status, 200);
    await first.stop();
    const second = await startTestBackend({ dataDir }, { adminToken: first.admin.token });
    try {
      const replay = await httpJson(`${second.url}/v1/console/status`, { method: 'GET', headers: captured });
      assertError(replay, 401, 'CONSOLE_SIGNATURE_REPLAYED');
      const fresh = new TestConsole(second.url, console.key, console.id);
      assert.equal((await fresh.request('GET', '/v1/console/status')).status, 200);
    } finally {
      await second.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
