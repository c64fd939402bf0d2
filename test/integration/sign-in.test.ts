import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jwtVerify, createRemoteJWKSet } from 'jose';
import type { TestConsole } from '../helpers/backend-harness.js';
import { type TestBackend, type Json, withBackendAndConsole } from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';

describe('usernameless sign-in, resume and step-up over real HTTP', () => {
  let t: TestBackend;
  let console: TestConsole;

  withBackendAndConsole((b, c) => ((t = b), (console = c)));

  it('starts a session at the level the authenticator flags prove, with a console-bound token', async () => {
    const { operatorId, authenticator } = await enrolOperator(t.admin, console);
    const result = await signIn(console, authenticator, { userVerified: false });
    assert.equal(result.status, 200, JSON.stringify(result.body));
    const body = result.body as Json;
    assert.equal(body.session.operatorId, operatorId);
    assert.equal(body.session.level, 'presence');
    assert.equal(body.session.aal, 1);
    assert.equal(body.resumed, false);

    const jwks = createRemoteJWKSet(new URL(`${t.url}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(body.token as string, jwks, {
      issuer: 'urn:baton:backend',
      audience: 'urn:baton:console',
    });
    assert.equal(payload.sub, operatorId);
    assert.equal(payload.sid, body.session.id);
    assert.deepEqual((payload.cnf as { jkt: string }).jkt.length, 43);
    assert.equal((payload.baton as { console: string }).console, console.id);
  });

  it('resumes the same session when the same operator taps again inside the continuity window', async () => {
    const { authenticator } = await enrolOperator(t.admin, console, { displayName: 'Bo Clerk' });
    const first = (await signIn(console, authenticator)).body as Json;
    assert.equal(first.session.level, 'verified');
    const second = (await signIn(console, authenticator)).body as Json;
    assert.equal(second.resumed, true);
    assert.equal(second.session.id, first.session.id);
  });

  it('steps up a presence-only session for payment.approve and raises its level', async () => {
    const { authenticator } = await enrolOperator(t.admin, console, { displayName: 'Cy Cashier' });
    const signedIn = (await signIn(console, authenticator, { userVerified: false })).body as Json;
    const sessionId = signedIn.session.id as string;
    const first = (await console.ok('POST', `/v1/sessions/${sessionId}/step-up/options`, {
      action: 'payment.approve',
    })) as Json;
    assert.equal(first.decision.outcome, 'step-up');
    assert.equal(first.decision.level, 'verified');
    assert.equal(first.options.userVerification, 'required');
    const response = authenticator.assert(first.options, { userVerified: true });
    const stepped = (await console.ok('POST', `/v1/sessions/${sessionId}/step-up/verify`, {
      action: 'payment.approve',
      response,
    })) as Json;
    assert.equal(stepped.decision.outcome, 'allow');
    assert.equal(stepped.session.level, 'verified');
    const again = (await console.ok('POST', `/v1/sessions/${sessionId}/step-up/options`, {
      action: 'payment.approve',
    })) as Json;
    assert.equal(again.decision.outcome, 'allow');
    assert.equal(again.options, undefined);

    const events = (await t.admin.ok('GET', `/v1/admin/events?session=${sessionId}`)) as Json;
    const types = (events.events as { type: string }[]).map((e) => e.type);
    assert.ok(types.includes('session-established'));
    assert.ok(types.includes('assurance-level-change'));
    assert.ok(types.includes('session-stepped-up'));
  });

  it('refuses a step-up performed by another operator and records it', async () => {
    const owner = await enrolOperator(t.admin, console, { displayName: 'Di Owner' });
    const other = await enrolOperator(t.admin, console, { displayName: 'Ed Other' });
    const signedIn = (await signIn(console, owner.authenticator, { userVerified: false })).body as Json;
    const sessionId = signedIn.session.id as string;
    const { options } = (await console.ok('POST', `/v1/sessions/${sessionId}/step-up/options`, {
      action: 'payment.approve',
    })) as Json;
    const response = other.authenticator.assert({ ...options, allowCredentials: [] });
    const result = await console.request('POST', `/v1/sessions/${sessionId}/step-up/verify`, {
      action: 'payment.approve',
      response,
    });
    assert.equal(result.status, 403);
    assert.equal(result.body.error.code, 'STEP_UP_WRONG_OPERATOR');
    const failed = (await t.admin.ok(
      'GET',
      `/v1/admin/events?type=step-up-failed&operator=${other.operatorId}`,
    )) as Json;
    assert.equal(failed.events.length, 1);
  });

  it('refuses an assertion in which a device-bound credential suddenly claims to be syncable', async () => {
    const { operatorId, authenticator } = await enrolOperator(t.admin, console, { displayName: 'Flo Flags' });
    const result = await signIn(console, authenticator, { backupEligible: true });
    assert.equal(result.status, 403);
    assert.equal(result.body.error.code, 'CREDENTIAL_NOT_DEVICE_BOUND');
    const failed = (await t.admin.ok('GET', `/v1/admin/events?type=sign-in-failed&operator=${operatorId}`)) as Json;
    assert.deepEqual(failed.events.at(-1).reasons, ['credential-not-device-bound']);
    assert.equal((await signIn(console, authenticator)).status, 200, 'the genuine key still works');
  });

  it('lets an admin unlock an operator locked after 100 consecutive failures', async () => {
    const { operatorId, authenticator } = await enrolOperator(t.admin, console, { displayName: 'Gus Guessed' });
    const misdirected = await signIn(console, authenticator, { rpId: 'evil.example' });
    assert.equal(misdirected.body.error.code, 'WEBAUTHN_RP_ID_MISMATCH');
    const afterMisdirected = (await t.admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json;
    assert.equal(afterMisdirected.operator.failedAttempts, 0, 'a console-side mismatch is not a guess at the key');
    for (let i = 0; i < 100; i++) {
      const { options } = (await console.ok('POST', '/v1/sign-in/options', {})) as Json;
      const response = authenticator.assert(options);
      const signature = Buffer.from(response.response.signature, 'base64url');
      signature.writeUInt8(signature.readUInt8(signature.length - 1) ^ 0x01, signature.length - 1);
      response.response.signature = signature.toString('base64url');
      const bad = await console.request('POST', '/v1/sign-in/verify', { response });
      assert.equal(bad.body.error.code, 'WEBAUTHN_VERIFICATION_FAILED');
    }
    const locked = await signIn(console, authenticator);
    assert.equal(locked.status, 403);
    assert.equal(locked.body.error.code, 'OPERATOR_LOCKED');
    const unlocked = (await t.admin.ok('POST', `/v1/admin/operators/${operatorId}/unlock`, {})) as Json;
    assert.equal(unlocked.operator.failedAttempts, 0);
    assert.equal((await signIn(console, authenticator)).status, 200);
  });
});
