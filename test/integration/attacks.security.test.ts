import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { PublicKeyCredentialCreationOptionsJSON } from '@simplewebauthn/server';
import { SIGNATURE_WINDOW_MS } from '../../shared/console-auth.js';
import { ConsoleKey } from '../../main/core/console-key.js';
import {
  TEST_ORIGIN,
  TestConsole,
  httpJson,
  type AdminClient,
  type HttpResult,
  type Json,
  type TestBackend,
  assertError,
  withBackendAndConsole,
} from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { SoftAuthenticator } from '../helpers/soft-authenticator.js';

/** `WEBAUTHN_ORIGIN_MISMATCH` → `webauthn-origin-mismatch`, as failure events carry it. */
function reasonOf(code: string): string {
  return code.toLowerCase().replace(/_/g, '-');
}

async function events(admin: AdminClient, query: string): Promise<Json[]> {
  const body = (await admin.ok('GET', `/v1/admin/events?limit=1000&${query}`)) as Json;
  return body.events as Json[];
}

/** The sign-in failures recorded for this console with this reason. */
async function signInFailures(admin: AdminClient, consoleId: string, code: string): Promise<Json[]> {
  return (await events(admin, `type=sign-in-failed&console=${consoleId}`)).filter((e) =>
    (e.reasons as string[]).includes(reasonOf(code)),
  );
}

async function liveSessions(admin: AdminClient, operatorId: string): Promise<Json[]> {
  const body = (await admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json;
  return body.sessions as Json[];
}

async function sessionsEstablished(admin: AdminClient, operatorId: string): Promise<number> {
  return (await events(admin, `type=session-established&operator=${operatorId}`)).length;
}

/** Flips the last byte of a DER ECDSA signature: still well-formed, no longer valid. */
function tamper(signature: string): string {
  const bytes = Buffer.from(signature, 'base64url');
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0x01;
  return bytes.toString('base64url');
}

/** Creation options no backend issued: a passkey made from them is registered nowhere. */
const STRAY_CREATION: PublicKeyCredentialCreationOptionsJSON = {
  rp: { id: 'localhost', name: 'Baton' },
  user: { id: randomBytes(16).toString('base64url'), name: 'nobody', displayName: 'Nobody' },
  challenge: randomBytes(16).toString('base64url'),
  pubKeyCredParams: [{ type: 'public-key', alg: -7 }],
};

function enrolConsoleRaw(url: string, token: string, key: ConsoleKey, channel = 'branch-kiosk', now = Date.now()) {
  const path = '/v1/consoles/enrol';
  const body = JSON.stringify({ token, publicKey: key.publicJwk(), channel, name: 'attacker console' });
  return httpJson(`${url}${path}`, {
    method: 'POST',
    headers: key.signRequest({ consoleId: undefined, method: 'POST', path, body, now }),
    body,
  });
}

describe('WebAuthn ceremonies under attack', () => {
  let t: TestBackend;
  let console: TestConsole;

  withBackendAndConsole((b, c) => ((t = b), (console = c)));

  it('rejects a replayed assertion: the second post of a verified response finds no challenge', async () => {
    const { operatorId, authenticator } = await enrolOperator(t.admin, console, { displayName: 'Replay Victim' });
    const { options } = (await console.ok('POST', '/v1/sign-in/options', {})) as Json;
    const response = authenticator.assert(options);
    const first = await console.request('POST', '/v1/sign-in/verify', { response });
    assert.equal(first.status, 200, JSON.stringify(first.body));

    const replay = await console.request('POST', '/v1/sign-in/verify', { response });
    assertError(replay, 400, 'CHALLENGE_UNKNOWN');
    assert.equal((await liveSessions(t.admin, operatorId)).length, 1);
    assert.equal(await sessionsEstablished(t.admin, operatorId), 1);
    assert.ok((await signInFailures(t.admin, console.id, 'CHALLENGE_UNKNOWN')).length >= 1);
  });

  it('consumes a challenge even when its verification fails, so it cannot be retried', async () => {
    const { operatorId, authenticator } = await enrolOperator(t.admin, console, { displayName: 'Retry Victim' });
    const { options } = (await console.ok('POST', '/v1/sign-in/options', {})) as Json;
    const bad = authenticator.assert(options, { origin: 'http://localhost:9999' });
    assertError(
      await console.request('POST', '/v1/sign-in/verify', { response: bad }),
      400,
      'WEBAUTHN_ORIGIN_MISMATCH',
    );

    const good = authenticator.assert(options);
    assertError(await console.request('POST', '/v1/sign-in/verify', { response: good }), 400, 'CHALLENGE_UNKNOWN');
    assert.deepEqual(await liveSessions(t.admin, operatorId), []);
  });

  it('refuses a challenge that was issued to another console, without burning it for its owner', async () => {
    const { operatorId, authenticator } = await enrolOperator(t.admin, console, { displayName: 'Cross Console' });
    const other = await TestConsole.enrol(t.url, t.admin);
    const { options } = (await console.ok('POST', '/v1/sign-in/options', {})) as Json;
    const response = authenticator.assert(options);

    const stolen = await other.request('POST', '/v1/sign-in/verify', { response });
    assertError(stolen, 400, 'CHALLENGE_UNKNOWN');
    assert.equal((await signInFailures(t.admin, other.id, 'CHALLENGE_UNKNOWN')).length, 1);
    assert.deepEqual(await liveSessions(t.admin, operatorId), []);

    const own = await console.request('POST', '/v1/sign-in/verify', { response });
    assert.equal(own.status, 200, JSON.stringify(own.body));
    assert.equal(own.body.session.consoleId, console.id);
  });

  it('refuses an assertion made on an origin that is not pinned', async () => {
    const { operatorId, authenticator } = await enrolOperator(t.admin, console, { displayName: 'Phished Origin' });
    const before = (await signInFailures(t.admin, console.id, 'WEBAUTHN_ORIGIN_MISMATCH')).length;
    const result = await signIn(console, authenticator, { origin: 'https://baton.evil.example' });
    assertError(result, 400, 'WEBAUTHN_ORIGIN_MISMATCH');
    const failures = await signInFailures(t.admin, console.id, 'WEBAUTHN_ORIGIN_MISMATCH');
    assert.equal(failures.length, before + 1);
    assert.equal(failures.at(-1).subject.operator, operatorId);
    assert.deepEqual(await liveSessions(t.admin, operatorId), []);
  });

  it('refuses an assertion signed for another relying party ID', async () => {
    const { operatorId, authenticator } = await enrolOperator(t.admin, console, { displayName: 'Wrong RP' });
    const result = await signIn(console, authenticator, { rpId: 'evil.example' });
    assertError(result, 400, 'WEBAUTHN_RP_ID_MISMATCH');
    const failures = await signInFailures(t.admin, console.id, 'WEBAUTHN_RP_ID_MISMATCH');
    assert.ok(failures.some((e) => e.subject.operator === operatorId));
    assert.deepEqual(await liveSessions(t.admin, operatorId), []);
  });

  it('refuses an authenticator whose signature counter went backwards and records a possible clone', async () => {
    const { operatorId, credentialId, authenticator } = await enrolOperator(t.admin, console, {
      displayName: 'Cloned Key',
    });
    const first = await signIn(console, authenticator, { counter: 10 });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const sessionId = first.body.session.id as string;

    const clone = await signIn(console, authenticator, { counter: 5 });
    assertError(clone, 403, 'WEBAUTHN_COUNTER_REGRESSED');
    const regressed = await events(t.admin, `type=credential-counter-regressed&operator=${operatorId}`);
    assert.equal(regressed.length, 1);
    assert.equal(regressed[0].subject.credential, credentialId);
    assert.equal(regressed[0].detail.storedCounter, 10);
    assert.ok(
      (await signInFailures(t.admin, console.id, 'WEBAUTHN_COUNTER_REGRESSED')).some(
        (e) => e.subject.operator === operatorId,
      ),
    );
    // The clone did not resume or replace the session, and the stored counter did not move back.
    assert.deepEqual(
      (await liveSessions(t.admin, operatorId)).map((s) => s.id),
      [sessionId],
    );
    // The policy's default suspends the passkey until an admin reviews it (cloned-key.security.test.ts).
    assertError(await signIn(console, authenticator, { counter: 11 }), 403, 'CREDENTIAL_SUSPENDED');
  });

  it('refuses an assertion whose signature was tampered with', async () => {
    const { operatorId, authenticator } = await enrolOperator(t.admin, console, { displayName: 'Tampered' });
    const { options } = (await console.ok('POST', '/v1/sign-in/options', {})) as Json;
    const response = authenticator.assert(options);
    response.response.signature = tamper(response.response.signature);
    const result = await console.request('POST', '/v1/sign-in/verify', { response });
    assertError(result, 400, 'WEBAUTHN_VERIFICATION_FAILED');
    assert.ok(
      (await signInFailures(t.admin, console.id, 'WEBAUTHN_VERIFICATION_FAILED')).some(
        (e) => e.subject.operator === operatorId,
      ),
    );
    assert.deepEqual(await liveSessions(t.admin, operatorId), []);
    const { operator } = (await t.admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json;
    assert.equal(operator.failedAttempts, 1);
  });

  it('refuses a credential no operator registered', async () => {
    const stray = new SoftAuthenticator(TEST_ORIGIN);
    stray.register(STRAY_CREATION);
    const before = (await signInFailures(t.admin, console.id, 'CREDENTIAL_UNKNOWN')).length;
    const result = await signIn(console, stray);
    assertError(result, 401, 'CREDENTIAL_UNKNOWN');
    assert.equal((await signInFailures(t.admin, console.id, 'CREDENTIAL_UNKNOWN')).length, before + 1);
  });

  it('refuses a revoked credential', async () => {
    const { operatorId, credentialId, authenticator } = await enrolOperator(t.admin, console, {
      displayName: 'Lost Key',
    });
    await t.admin.ok('POST', `/v1/admin/credentials/${credentialId}/revoke`, { reason: 'key reported lost' });
    const result = await signIn(console, authenticator);
    assertError(result, 403, 'CREDENTIAL_REVOKED');
    assert.ok(
      (await signInFailures(t.admin, console.id, 'CREDENTIAL_REVOKED')).some(
        (e) => e.subject.credential === credentialId,
      ),
    );
    assert.deepEqual(await liveSessions(t.admin, operatorId), []);
  });

  it('refuses a revoked operator, and revoking ends the session they had', async () => {
    const { operatorId, authenticator } = await enrolOperator(t.admin, console, { displayName: 'Departed' });
    const signedIn = await signIn(console, authenticator);
    assert.equal(signedIn.status, 200, JSON.stringify(signedIn.body));
    const revoked = (await t.admin.ok('POST', `/v1/admin/operators/${operatorId}/revoke`, {
      reason: 'left the company',
    })) as Json;
    assert.deepEqual(revoked.sessionsRevoked, [signedIn.body.session.id]);

    const result = await signIn(console, authenticator);
    assertError(result, 403, 'OPERATOR_REVOKED');
    assert.ok(
      (await signInFailures(t.admin, console.id, 'OPERATOR_REVOKED')).some((e) => e.subject.operator === operatorId),
    );
    assert.deepEqual(await liveSessions(t.admin, operatorId), []);
  });

  it('refuses a backup-eligible (syncable) passkey at registration under the default policy', async () => {
    const { operator } = (await t.admin.ok('POST', '/v1/admin/operators', { displayName: 'Synced Passkey' })) as Json;
    const { code } = (await t.admin.ok('POST', `/v1/admin/operators/${operator.id}/enrolment-codes`, {})) as Json;
    const authenticator = new SoftAuthenticator(TEST_ORIGIN);
    const { options } = (await console.ok('POST', '/v1/operators/enrol/options', { code })) as Json;
    const response = authenticator.register(options, { backupEligible: true });
    const result = await console.request('POST', '/v1/operators/enrol/verify', { code, response });
    assertError(result, 403, 'CREDENTIAL_NOT_DEVICE_BOUND');

    const detail = (await t.admin.ok('GET', `/v1/admin/operators/${operator.id}`)) as Json;
    assert.deepEqual(detail.credentials, []);
    const refused = await events(t.admin, `type=credential-change&operator=${operator.id}`);
    assert.deepEqual(
      refused.map((e) => [e.outcome, e.reasons]),
      [['failure', ['credential-not-device-bound']]],
    );

    // The refusal does not burn the code: the operator can still enrol a device-bound key.
    const retry = (await console.ok('POST', '/v1/operators/enrol/options', { code })) as Json;
    const ok = await console.request('POST', '/v1/operators/enrol/verify', {
      code,
      response: authenticator.register(retry.options),
    });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
  });

  it('refuses an enrolment code that was already used', async () => {
    const { operator } = (await t.admin.ok('POST', '/v1/admin/operators', { displayName: 'Used Code' })) as Json;
    const { code } = (await t.admin.ok('POST', `/v1/admin/operators/${operator.id}/enrolment-codes`, {})) as Json;
    const authenticator = new SoftAuthenticator(TEST_ORIGIN);
    const { options } = (await console.ok('POST', '/v1/operators/enrol/options', { code })) as Json;
    await console.ok('POST', '/v1/operators/enrol/verify', { code, response: authenticator.register(options) });

    const again = await console.request('POST', '/v1/operators/enrol/options', { code });
    assertError(again, 401, 'ENROLMENT_CODE_USED');
    const attacker = new SoftAuthenticator(TEST_ORIGIN);
    const replay = await console.request('POST', '/v1/operators/enrol/verify', {
      code,
      response: attacker.register(options),
    });
    assertError(replay, 400, 'CHALLENGE_UNKNOWN');
    const detail = (await t.admin.ok('GET', `/v1/admin/operators/${operator.id}`)) as Json;
    assert.equal(detail.credentials.length, 1);
  });

  it('refuses an enrolment code nobody issued, and one that is malformed', async () => {
    assertError(
      await console.request('POST', '/v1/operators/enrol/options', { code: 'ABCD-EFGH-JKLM-NPQR' }),
      401,
      'ENROLMENT_CODE_INVALID',
    );
    assertError(
      await console.request('POST', '/v1/operators/enrol/options', { code: 'not a code' }),
      401,
      'ENROLMENT_CODE_INVALID',
    );
    assertError(
      await console.request('POST', '/v1/operators/enrol/options', { code: '' }),
      401,
      'ENROLMENT_CODE_INVALID',
    );
  });

  it('records every refused sign-in as a sign-in-failed event for this console', async () => {
    // A shared console, where presence-only sign-in is not allowed by the default policy.
    const probe = await TestConsole.enrol(t.url, t.admin, 'shared-console');
    const { authenticator, credentialId } = await enrolOperator(t.admin, probe, { displayName: 'Audit Trail' });
    const departed = await enrolOperator(t.admin, probe, { displayName: 'Audit Departed' });
    const codes: string[] = [];
    const expectFailure = (result: HttpResult<Json>, code: string) => {
      assert.equal(result.body.error?.code, code, JSON.stringify(result.body));
      codes.push(code);
    };
    expectFailure(await signIn(probe, authenticator, { origin: 'https://evil.example' }), 'WEBAUTHN_ORIGIN_MISMATCH');
    expectFailure(await signIn(probe, authenticator, { rpId: 'evil.example' }), 'WEBAUTHN_RP_ID_MISMATCH');
    const { options } = (await probe.ok('POST', '/v1/sign-in/options', {})) as Json;
    const tampered = authenticator.assert(options);
    tampered.response.signature = tamper(tampered.response.signature);
    expectFailure(
      await probe.request('POST', '/v1/sign-in/verify', { response: tampered }),
      'WEBAUTHN_VERIFICATION_FAILED',
    );
    expectFailure(
      await probe.request('POST', '/v1/sign-in/verify', { response: authenticator.assert(options) }),
      'CHALLENGE_UNKNOWN',
    );
    expectFailure(await signIn(probe, authenticator, { userVerified: false }), 'LEVEL_NOT_ALLOWED_ON_CHANNEL');
    const stray = new SoftAuthenticator(TEST_ORIGIN);
    stray.register({ ...STRAY_CREATION, challenge: randomBytes(16).toString('base64url') });
    expectFailure(await signIn(probe, stray), 'CREDENTIAL_UNKNOWN');
    await t.admin.ok('POST', `/v1/admin/credentials/${credentialId}/revoke`, { reason: 'audit test' });
    expectFailure(await signIn(probe, authenticator), 'CREDENTIAL_REVOKED');
    await t.admin.ok('POST', `/v1/admin/operators/${departed.operatorId}/revoke`, { reason: 'audit test' });
    expectFailure(await signIn(probe, departed.authenticator), 'OPERATOR_REVOKED');

    const failed = await events(t.admin, `type=sign-in-failed&console=${probe.id}`);
    assert.deepEqual(
      failed.map((e) => e.reasons),
      codes.map((code) => [reasonOf(code)]),
    );
    assert.ok(failed.every((e) => e.outcome === 'failure' && e.origin === 'backend'));
  });
});

describe('WebAuthn challenges and enrolment secrets expire', () => {
  let t: TestBackend;
  let console: TestConsole;
  let now = Date.now();
  const clock = () => now;

  withBackendAndConsole((b, c) => ((t = b), (console = c)), { challengeTtlSeconds: 30 }, { clock });

  it('refuses an assertion answering a challenge older than challengeTtlSeconds', async () => {
    const { operatorId, authenticator } = await enrolOperator(t.admin, console, { displayName: 'Slow Tapper' });
    const { options } = (await console.ok('POST', '/v1/sign-in/options', {})) as Json;
    const response = authenticator.assert(options);
    now += 31_000;
    const result = await console.request('POST', '/v1/sign-in/verify', { response });
    assertError(result, 400, 'CHALLENGE_EXPIRED');
    assert.equal((await signInFailures(t.admin, console.id, 'CHALLENGE_EXPIRED')).length, 1);
    assert.deepEqual(await liveSessions(t.admin, operatorId), []);
    // An expired challenge is not revived by a retry: it stays refused (a signed challenge carries its expiry).
    assertError(await console.request('POST', '/v1/sign-in/verify', { response }), 400, 'CHALLENGE_EXPIRED');
    assert.deepEqual(await liveSessions(t.admin, operatorId), []);
  });

  it('accepts the same ceremony when it completes inside the challenge lifetime', async () => {
    const { authenticator } = await enrolOperator(t.admin, console, { displayName: 'Quick Tapper' });
    const { options } = (await console.ok('POST', '/v1/sign-in/options', {})) as Json;
    const response = authenticator.assert(options);
    now += 29_000;
    const result = await console.request('POST', '/v1/sign-in/verify', { response });
    assert.equal(result.status, 200, JSON.stringify(result.body));
  });

  it('refuses a console enrolment token past its lifetime', async () => {
    const { token } = (await t.admin.ok('POST', '/v1/admin/console-tokens', {
      channel: 'branch-kiosk',
      ttlSeconds: 60,
    })) as Json;
    now += 61_000;
    const before = ((await t.admin.ok('GET', '/v1/admin/consoles')) as Json).consoles.length as number;
    const result = await enrolConsoleRaw(t.url, token as string, ConsoleKey.generate());
    assertError(result, 401, 'ENROLMENT_TOKEN_EXPIRED');
    assert.equal(((await t.admin.ok('GET', '/v1/admin/consoles')) as Json).consoles.length, before);
  });

  it('refuses an operator enrolment code past its lifetime', async () => {
    const { operator } = (await t.admin.ok('POST', '/v1/admin/operators', { displayName: 'Late Starter' })) as Json;
    const { code } = (await t.admin.ok('POST', `/v1/admin/operators/${operator.id}/enrolment-codes`, {
      ttlSeconds: 60,
    })) as Json;
    now += 61_000;
    assertError(await console.request('POST', '/v1/operators/enrol/options', { code }), 401, 'ENROLMENT_CODE_EXPIRED');
  });
});

describe('console request signatures under attack', () => {
  let t: TestBackend;
  let console: TestConsole;
  const STATUS = '/v1/console/status';

  withBackendAndConsole((b, c) => ((t = b), (console = c)));

  it('serves a correctly signed request (the control for every refusal below)', async () => {
    const result = await console.request('GET', STATUS);
    assert.equal(result.status, 200);
    assert.equal(result.body.consoleId, console.id);
  });

  it('refuses a request from a revoked console, and keeps serving the others', async () => {
    const doomed = await TestConsole.enrol(t.url, t.admin);
    assert.equal((await doomed.request('GET', STATUS)).status, 200);
    await t.admin.ok('POST', `/v1/admin/consoles/${doomed.id}/revoke`, { reason: 'stolen from branch 12' });
    assertError(await doomed.request('GET', STATUS), 403, 'CONSOLE_REVOKED');
    assertError(await doomed.request('POST', '/v1/sign-in/options', {}), 403, 'CONSOLE_REVOKED');
    assert.equal((await console.request('GET', STATUS)).status, 200);
  });

  it('refuses a request signed with another key than the console enrolled', async () => {
    const forger = ConsoleKey.generate();
    const headers = forger.signRequest({ consoleId: console.id, method: 'GET', path: STATUS, now: Date.now() });
    assertError(await httpJson(`${t.url}${STATUS}`, { method: 'GET', headers }), 401, 'CONSOLE_SIGNATURE_INVALID');
  });

  it('refuses a captured request replayed with the same headers', async () => {
    const headers = console.signedHeaders('GET', STATUS);
    assert.equal((await httpJson(`${t.url}${STATUS}`, { method: 'GET', headers })).status, 200);
    assertError(await httpJson(`${t.url}${STATUS}`, { method: 'GET', headers }), 401, 'CONSOLE_SIGNATURE_REPLAYED');
  });

  it('does not let a forged request burn the nonce of a legitimate one', async () => {
    const headers = console.signedHeaders('GET', STATUS);
    const forged = ConsoleKey.generate().signRequest({ consoleId: console.id, method: 'GET', path: STATUS, now: 0 });
    const withStolenNonce = {
      ...headers,
      'x-baton-signature': forged['x-baton-signature'] as string,
    };
    assertError(
      await httpJson(`${t.url}${STATUS}`, { method: 'GET', headers: withStolenNonce }),
      401,
      'CONSOLE_SIGNATURE_INVALID',
    );
    assert.equal((await httpJson(`${t.url}${STATUS}`, { method: 'GET', headers })).status, 200);
  });

  it('refuses a stale or future timestamp and tells the console the server time', async () => {
    for (const skew of [-(SIGNATURE_WINDOW_MS + 60_000), SIGNATURE_WINDOW_MS + 60_000]) {
      const headers = console.key.signRequest({
        consoleId: console.id,
        method: 'GET',
        path: STATUS,
        now: Date.now() + skew,
      });
      const before = Date.now();
      const result = await httpJson(`${t.url}${STATUS}`, { method: 'GET', headers });
      assertError(result, 401, 'CONSOLE_SIGNATURE_STALE');
      assert.equal(typeof result.body.error.serverTime, 'number');
      assert.ok(Math.abs((result.body.error.serverTime as number) - before) < 5_000);
    }
  });

  it('refuses a console id that was never enrolled', async () => {
    const key = ConsoleKey.generate();
    const headers = key.signRequest({
      consoleId: 'con_0123456789abcdef',
      method: 'GET',
      path: STATUS,
      now: Date.now(),
    });
    assertError(await httpJson(`${t.url}${STATUS}`, { method: 'GET', headers }), 401, 'CONSOLE_UNKNOWN');
  });

  it('refuses a request without signature headers, or with some of them missing', async () => {
    assertError(await httpJson(`${t.url}${STATUS}`, { method: 'GET' }), 401, 'CONSOLE_AUTH_MISSING');
    const headers = console.signedHeaders('GET', STATUS);
    for (const drop of ['x-baton-console', 'x-baton-timestamp', 'x-baton-nonce', 'x-baton-signature']) {
      const partial = Object.fromEntries(Object.entries(headers).filter(([name]) => name !== drop));
      assertError(
        await httpJson(`${t.url}${STATUS}`, { method: 'GET', headers: partial }),
        401,
        'CONSOLE_AUTH_MISSING',
      );
    }
    assertError(
      await httpJson(`${t.url}${STATUS}`, { method: 'GET', headers: { ...headers, 'x-baton-timestamp': 'yesterday' } }),
      401,
      'CONSOLE_AUTH_MISSING',
    );
  });

  it('refuses a body or a path altered after signing', async () => {
    const path = '/v1/operators/enrol/options';
    const headers = console.signedHeaders('POST', path, JSON.stringify({ code: 'AAAA-BBBB-CCCC-DDDD' }));
    assertError(
      await httpJson(`${t.url}${path}`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ code: 'WXYZ-WXYZ-WXYZ-WXYZ' }),
      }),
      401,
      'CONSOLE_SIGNATURE_INVALID',
    );
    const statusHeaders = console.signedHeaders('GET', STATUS);
    assertError(
      await httpJson(`${t.url}/v1/console/policy`, { method: 'GET', headers: statusHeaders }),
      401,
      'CONSOLE_SIGNATURE_INVALID',
    );
  });

  it('refuses a console enrolment token that was already used', async () => {
    const { token } = (await t.admin.ok('POST', '/v1/admin/console-tokens', { channel: 'branch-kiosk' })) as Json;
    const first = await enrolConsoleRaw(t.url, token as string, ConsoleKey.generate());
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const count = ((await t.admin.ok('GET', '/v1/admin/consoles')) as Json).consoles.length as number;
    assertError(await enrolConsoleRaw(t.url, token as string, ConsoleKey.generate()), 401, 'ENROLMENT_TOKEN_USED');
    assert.equal(((await t.admin.ok('GET', '/v1/admin/consoles')) as Json).consoles.length, count);
  });

  it('refuses a console enrolment token nobody issued', async () => {
    const forged = `bct_${randomBytes(24).toString('base64url')}`;
    assertError(await enrolConsoleRaw(t.url, forged, ConsoleKey.generate()), 401, 'ENROLMENT_TOKEN_INVALID');
  });

  it('refuses to enrol a console on a channel the policy does not define, even one named like a JS built-in', async () => {
    const { token } = (await t.admin.ok('POST', '/v1/admin/console-tokens', {})) as Json;
    const count = ((await t.admin.ok('GET', '/v1/admin/consoles')) as Json).consoles.length as number;
    for (const channel of ['home-office', 'constructor']) {
      assertError(
        await enrolConsoleRaw(t.url, token as string, ConsoleKey.generate(), channel),
        400,
        'CHANNEL_UNKNOWN',
      );
      assertError(await t.admin.request('POST', '/v1/admin/console-tokens', { channel }), 400, 'CHANNEL_UNKNOWN');
    }
    assert.equal(((await t.admin.ok('GET', '/v1/admin/consoles')) as Json).consoles.length, count);
  });

  it('refuses an enrolment not signed by the key being enrolled', async () => {
    const { token } = (await t.admin.ok('POST', '/v1/admin/console-tokens', { channel: 'branch-kiosk' })) as Json;
    const path = '/v1/consoles/enrol';
    const claimed = ConsoleKey.generate();
    const body = JSON.stringify({ token, publicKey: claimed.publicJwk(), channel: 'branch-kiosk' });
    const headers = ConsoleKey.generate().signRequest({
      consoleId: undefined,
      method: 'POST',
      path,
      body,
      now: Date.now(),
    });
    assertError(await httpJson(`${t.url}${path}`, { method: 'POST', headers, body }), 401, 'CONSOLE_SIGNATURE_INVALID');
    // The token survives the failed attempt and still enrols the real console.
    assert.equal((await enrolConsoleRaw(t.url, token as string, claimed)).status, 201);
  });
});

describe('HTTP API refuses bad input', () => {
  let t: TestBackend;
  let console: TestConsole;

  withBackendAndConsole((b, c) => ((t = b), (console = c)));

  const operatorCount = async () =>
    ((await t.admin.ok('GET', '/v1/admin/operators')) as Json).operators.length as number;
  const adminHeaders = () => ({ authorization: `Bearer ${t.admin.token}` });

  it('refuses a body that is not JSON with BAD_JSON', async () => {
    const count = await operatorCount();
    const result = await httpJson(`${t.url}/v1/admin/operators`, {
      method: 'POST',
      headers: adminHeaders(),
      body: '{"displayName": "Half',
    });
    assertError(result, 400, 'BAD_JSON');
    assert.equal(await operatorCount(), count);

    const path = '/v1/sign-in/options';
    const body = '{not json';
    const signed = await httpJson(`${t.url}${path}`, {
      method: 'POST',
      headers: console.signedHeaders('POST', path, body),
      body,
    });
    assertError(signed, 400, 'BAD_JSON');
  });

  it('refuses a body that fails its schema and points at each bad field', async () => {
    const count = await operatorCount();
    const result = await t.admin.request('POST', '/v1/admin/operators', {
      displayName: '   ',
      roles: ['teller', 'Root Admin'],
      isSuperuser: true,
    });
    assertError(result, 400, 'SCHEMA_INVALID');
    const paths = (result.body.error.issues as { path: string }[]).map((i) => i.path);
    assert.ok(paths.includes('displayName'), paths.join());
    assert.ok(paths.includes('roles[1]'), paths.join());
    assert.ok(paths.includes('(root)'), paths.join());
    assert.equal(await operatorCount(), count);

    const nested = await console.request('POST', '/v1/sign-in/verify', { response: { id: 'x', type: 'password' } });
    assertError(nested, 400, 'SCHEMA_INVALID');
    assert.ok((nested.body.error.issues as { path: string }[]).some((i) => i.path === 'response.type'));
  });

  it('refuses a body larger than 64 KiB with 413 before reading it', async () => {
    const count = await operatorCount();
    const result = await t.admin.request('POST', '/v1/admin/operators', {
      displayName: 'Big',
      roles: [],
      padding: 'x'.repeat(70 * 1024),
    });
    assertError(result, 413, 'PAYLOAD_TOO_LARGE');
    assert.equal(await operatorCount(), count);
    assert.equal((await fetch(`${t.url}/healthz`)).status, 200);
  });

  it('refuses a chunked body that grows past 64 KiB without declaring its length', async () => {
    const count = await operatorCount();
    const url = new URL(`${t.url}/v1/admin/operators`);
    const result = await new Promise<HttpResult<Json>>((resolve, reject) => {
      const req = httpRequest(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          headers: { ...adminHeaders(), 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
        },
        (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Json }));
        },
      );
      req.on('error', reject);
      const chunk = 'x'.repeat(8 * 1024);
      req.write('{"displayName":"Chunky","padding":"');
      for (let i = 0; i < 10; i++) req.write(chunk);
      req.end('"}');
    });
    assertError(result, 413, 'PAYLOAD_TOO_LARGE');
    assert.equal(await operatorCount(), count);
  });

  it('refuses a body that is not declared as application/json', async () => {
    const result = await httpJson(`${t.url}/v1/admin/operators`, {
      method: 'POST',
      headers: { ...adminHeaders(), 'content-type': 'text/plain' },
      body: JSON.stringify({ displayName: 'Plain Text' }),
    });
    assertError(result, 415, 'UNSUPPORTED_MEDIA_TYPE');
    const form = await httpJson(`${t.url}/v1/admin/operators`, {
      method: 'POST',
      headers: { ...adminHeaders(), 'content-type': 'application/x-www-form-urlencoded' },
      body: 'displayName=Form',
    });
    assertError(form, 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('answers an unknown path with NOT_FOUND and a known path with the wrong method with METHOD_NOT_ALLOWED', async () => {
    assertError(await t.admin.request('GET', '/v1/admin/nothing-here'), 404, 'NOT_FOUND');
    assertError(await httpJson(`${t.url}/v2/console/status`, { method: 'GET' }), 404, 'NOT_FOUND');
    assertError(await t.admin.request('DELETE', '/v1/admin/operators'), 405, 'METHOD_NOT_ALLOWED');
    assertError(await t.admin.request('GET', '/v1/admin/policy/validate'), 405, 'METHOD_NOT_ALLOWED');
    assertError(await console.request('GET', '/v1/sign-in/verify'), 405, 'METHOD_NOT_ALLOWED');
  });
});
