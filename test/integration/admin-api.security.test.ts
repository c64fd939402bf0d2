import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_POLICY, type Policy } from '../../shared/policy.js';
import type { TestConsole } from '../helpers/backend-harness.js';
import {
  httpJson,
  type HttpResult,
  type Json,
  type TestBackend,
  assertError,
  withBackendAndConsole,
} from '../helpers/backend-harness.js';

/** Polls a condition the backend reaches asynchronously (noticing a closed connection). */
async function eventually(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function issuePaths(result: HttpResult<Json>): string[] {
  return ((result.body.error?.issues ?? result.body.issues ?? []) as { path: string }[]).map((i) => i.path);
}

describe('admin API under attack', () => {
  let t: TestBackend;
  let console: TestConsole;

  withBackendAndConsole((b, c) => ((t = b), (console = c)));

  const currentPolicy = async () =>
    (await t.admin.ok('GET', '/v1/admin/policy')) as { version: number; policy: Policy };
  const draft = (): Json => structuredClone(DEFAULT_POLICY);

  /** A snapshot of what an unauthenticated caller must not be able to change. */
  async function snapshot() {
    const operators = ((await t.admin.ok('GET', '/v1/admin/operators')) as Json).operators.length as number;
    const consoles = ((await t.admin.ok('GET', '/v1/admin/consoles')) as Json).consoles as Json[];
    const policy = await currentPolicy();
    const revoked = consoles.filter((c) => c.revokedAt !== null).length;
    return { operators, consoles: consoles.length, revoked, policyVersion: policy.version };
  }

  const endpoints = (consoleId: string) =>
    [
      ['GET', '/v1/admin/consoles', undefined],
      ['POST', '/v1/admin/operators', { displayName: 'Intruder', roles: [] }],
      ['GET', '/v1/admin/events', undefined],
      ['GET', '/v1/admin/events/stream', undefined],
      ['GET', '/v1/admin/policy', undefined],
      ['POST', '/v1/admin/policy', { baseVersion: 1, policy: DEFAULT_POLICY }],
      ['POST', `/v1/admin/consoles/${consoleId}/revoke`, { reason: 'hostile takeover' }],
      ['POST', '/v1/admin/console-tokens', { channel: 'branch-kiosk' }],
    ] as const;

  const call = (method: string, path: string, body: unknown, headers: Record<string, string>) =>
    httpJson(`${t.url}${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  it('refuses every admin endpoint without a token, including the event stream, and changes nothing', async () => {
    const before = await snapshot();
    for (const [method, path, body] of endpoints(console.id)) {
      const result = await call(method, path, body, {});
      assertError(result, 401, 'ADMIN_AUTH_REQUIRED');
    }
    assert.deepEqual(await snapshot(), before);
  });

  it('refuses every admin endpoint with a wrong or malformed token, and changes nothing', async () => {
    const before = await snapshot();
    const wrong = [
      `Bearer ${'x'.repeat(t.admin.token.length)}`,
      `Bearer ${t.admin.token}x`,
      `Basic ${Buffer.from(`admin:${t.admin.token}`).toString('base64')}`,
      `Bearer ${t.admin.token} extra`,
      'Bearer',
    ];
    for (const authorization of wrong) {
      for (const [method, path, body] of endpoints(console.id)) {
        const result = await call(method, path, body, { authorization });
        assertError(result, 401, 'ADMIN_AUTH_INVALID');
      }
    }
    assert.deepEqual(await snapshot(), before);
  });

  it('does not accept a console signature in place of an admin token', async () => {
    const before = await snapshot();
    const result = await console.request('POST', '/v1/admin/operators', { displayName: 'Console Admin' });
    assertError(result, 401, 'ADMIN_AUTH_REQUIRED');
    assert.deepEqual(await snapshot(), before);
  });

  it('opens the event stream for a valid token, and drops the follower when the client goes away', async () => {
    const followers = t.backend.events.followerCount;
    const abort = new AbortController();
    const response = await fetch(`${t.url}/v1/admin/events/stream`, {
      headers: { authorization: `Bearer ${t.admin.token}` },
      signal: abort.signal,
    });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.equal(t.backend.events.followerCount, followers + 1);
    abort.abort();
    await eventually(() => t.backend.events.followerCount === followers);
  });

  it('refuses an invalid policy with POLICY_INVALID pointing at the exact field, and keeps the current version', async () => {
    const before = await currentPolicy();
    const policyChanges = ((await t.admin.ok('GET', '/v1/admin/events?type=policy-changed')) as Json).events.length;
    const policy = draft();
    policy.channels['branch-kiosk'].idleLockSeconds = 2;
    policy.actions['payment.approve'].level = 'platinum';
    const result = await t.admin.request('POST', '/v1/admin/policy', { baseVersion: before.version, policy });
    assertError(result, 400, 'POLICY_INVALID');
    assert.deepEqual(issuePaths(result).sort(), [
      'actions.payment.approve.level',
      'channels.branch-kiosk.idleLockSeconds',
    ]);

    const after = await currentPolicy();
    assert.equal(after.version, before.version);
    assert.deepEqual(after.policy, before.policy);
    assert.equal(
      ((await t.admin.ok('GET', '/v1/admin/events?type=policy-changed')) as Json).events.length,
      policyChanges,
    );
  });

  it('refuses a policy that breaks the NIST inactivity limit for its lowest level', async () => {
    const before = await currentPolicy();
    const policy = draft();
    policy.channels['vault-room'] = { ...policy.channels['branch-kiosk'], allowedLevels: ['hardware'] };
    policy.channels['vault-room'].idleLockSeconds = 1800;
    const result = await t.admin.request('POST', '/v1/admin/policy', { baseVersion: before.version, policy });
    assertError(result, 400, 'POLICY_INVALID');
    assert.deepEqual(issuePaths(result), ['channels.vault-room.idleLockSeconds']);
    assert.match(result.body.error.issues[0].message as string, /NIST/);
    assert.equal((await currentPolicy()).version, before.version);
  });

  it('refuses an action restricted to a channel the policy does not define', async () => {
    const before = await currentPolicy();
    const policy = draft();
    policy.actions['payment.approve'].channels = ['branch-kiosk', 'call-center'];
    const result = await t.admin.request('POST', '/v1/admin/policy', { baseVersion: before.version, policy });
    assertError(result, 400, 'POLICY_INVALID');
    assert.deepEqual(issuePaths(result), ['actions.payment.approve.channels[1]']);
    assert.equal((await currentPolicy()).version, before.version);
  });

  it('refuses a publish request without a base version as SCHEMA_INVALID', async () => {
    const before = await currentPolicy();
    const result = await t.admin.request('POST', '/v1/admin/policy', { policy: draft() });
    assertError(result, 400, 'SCHEMA_INVALID');
    assert.deepEqual(issuePaths(result), ['baseVersion']);
    assert.equal((await currentPolicy()).version, before.version);
  });

  it('refuses a publish based on a stale version with POLICY_VERSION_CONFLICT, keeping the newer one', async () => {
    const base = await currentPolicy();
    const mine = draft();
    mine.channels['branch-kiosk'].idleLockSeconds = 90;
    const published = await t.admin.request('POST', '/v1/admin/policy', { baseVersion: base.version, policy: mine });
    assert.equal(published.status, 201, JSON.stringify(published.body));
    assert.equal(published.body.version, base.version + 1);

    const theirs = draft();
    theirs.channels['branch-kiosk'].idleLockSeconds = 600;
    const stale = await t.admin.request('POST', '/v1/admin/policy', { baseVersion: base.version, policy: theirs });
    assertError(stale, 409, 'POLICY_VERSION_CONFLICT');

    const after = await currentPolicy();
    assert.equal(after.version, base.version + 1);
    assert.equal(after.policy.channels['branch-kiosk']?.idleLockSeconds, 90);
    const future = await t.admin.request('POST', '/v1/admin/policy', {
      baseVersion: after.version + 5,
      policy: theirs,
    });
    assertError(future, 409, 'POLICY_VERSION_CONFLICT');
    assert.equal((await currentPolicy()).version, after.version);
  });

  it('previews a decision on an undefined channel as a denial, not a server error', async () => {
    for (const channel of ['home-office', 'constructor']) {
      const result = await t.admin.request('POST', '/v1/admin/policy/preview', {
        action: 'customer.view',
        context: { channel, level: 'verified', authAgeSeconds: 10 },
      });
      assert.equal(result.status, 200, JSON.stringify(result.body));
      assert.deepEqual(result.body.decision, { outcome: 'deny', reasons: ['channel-unknown'] });
    }
  });

  it('validates a draft without publishing it, listing every issue', async () => {
    const before = await currentPolicy();
    const policy = draft();
    policy.channels['branch-kiosk'].idleLockSeconds = 2;
    policy.credentials.aaguidAllowList = ['NOT-AN-AAGUID'];
    const invalid = await t.admin.request('POST', '/v1/admin/policy/validate', policy);
    assert.equal(invalid.status, 200);
    assert.equal(invalid.body.valid, false);
    assert.deepEqual(issuePaths(invalid).sort(), [
      'channels.branch-kiosk.idleLockSeconds',
      'credentials.aaguidAllowList[0]',
    ]);
    assert.ok((invalid.body.issues as { message: string }[]).every((i) => i.message.length > 0));

    const valid = await t.admin.request('POST', '/v1/admin/policy/validate', draft());
    assert.deepEqual(valid.body, { valid: true, issues: [] });
    assert.equal((await currentPolicy()).version, before.version);
  });
});
