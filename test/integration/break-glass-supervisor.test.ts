import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_POLICY, type Policy } from '../../shared/policy.js';
import {
  TEST_ORIGIN,
  TestConsole,
  assertError,
  startTestBackend,
  type Json,
  type TestBackend,
} from '../helpers/backend-harness.js';
import { signIn } from '../helpers/operator-flow.js';
import { openRawDatabase } from '../helpers/raw-database.js';
import { SoftAuthenticator } from '../helpers/soft-authenticator.js';

/**
 * Break-glass by a supervisor's tap (issue 14 item 7): an operator without their key asks at the
 * console, a supervisor (a role in `breakGlass.approverRoles`) taps their own key on that console, and
 * the backend starts the capped session marked with who approved. Refused: the supervisor approving
 * themselves, a key that is not a supervisor's, a revoked supervisor, a replayed tap, a request past
 * the limit.
 */
describe('break-glass: a supervisor approves by tapping their own key on the console', () => {
  let t: TestBackend;
  let kiosk: TestConsole;
  let other: TestConsole;
  let supervisor: { id: string; key: SoftAuthenticator };
  let teller: { id: string; key: SoftAuthenticator };
  let forgetful: string;

  const breakGlass = {
    lifetimeSeconds: 900,
    actions: ['customer.view'],
    maxPerOperatorPerDay: 1,
    maxPerSitePerDay: 5,
    approverRoles: ['supervisor'],
  };
  const publish = async (policy: Policy) => {
    const current = (await t.admin.ok('GET', '/v1/admin/policy')) as { version: number };
    return t.admin.ok('POST', '/v1/admin/policy', { baseVersion: current.version, policy });
  };
  /** An operator with these roles and a software passkey registered on the kiosk. */
  const enrolled = async (displayName: string, roles: string[]) => {
    const { operator } = (await t.admin.ok('POST', '/v1/admin/operators', { displayName, roles })) as Json;
    const { code } = (await t.admin.ok(
      'POST',
      `/v1/admin/operators/${operator.id as string}/enrolment-codes`,
      {},
    )) as Json;
    const key = new SoftAuthenticator(TEST_ORIGIN);
    const { options } = (await kiosk.ok('POST', '/v1/operators/enrol/options', { code })) as Json;
    await kiosk.ok('POST', '/v1/operators/enrol/verify', { code, response: key.register(options) });
    return { id: operator.id as string, key };
  };
  const ask = (operatorId: string, on = kiosk) => on.request('POST', '/v1/break-glass/requests', { operatorId });
  /** The operator asks on the console and `key` taps (user verification on unless said otherwise). */
  const tapFor = async (operatorId: string, key: SoftAuthenticator, overrides: { userVerified?: boolean } = {}) => {
    const asked = await ask(operatorId);
    assert.equal(asked.status, 201, JSON.stringify(asked.body));
    const { requestId, options } = asked.body as Json;
    const response = key.assert(options, overrides);
    const result = await kiosk.request('POST', `/v1/break-glass/requests/${requestId as string}/approve`, {
      response,
    });
    return { result, requestId: requestId as string, response };
  };
  const grants = async () => (await t.admin.ok('GET', '/v1/admin/break-glass?all=true')).grants as Json[];

  before(async () => {
    t = await startTestBackend();
    kiosk = await TestConsole.enrol(t.url, t.admin);
    other = await TestConsole.enrol(t.url, t.admin);
    supervisor = await enrolled('Sam Supervisor', ['teller', 'supervisor']);
    teller = await enrolled('Ted Teller', ['teller']);
    forgetful = (await t.admin.ok('POST', '/v1/admin/operators', { displayName: 'Fay Forgetful', roles: ['teller'] }))
      .operator.id as string satisfies string;
  });
  after(() => t.stop());

  it('is off while the policy names no supervisor role, and the policy refuses a malformed role', async () => {
    await publish({ ...DEFAULT_POLICY, breakGlass: { ...breakGlass, approverRoles: undefined } });
    assertError(await ask(forgetful), 403, 'BREAK_GLASS_DISABLED');
    const current = (await t.admin.ok('GET', '/v1/admin/policy')) as { version: number };
    const bad = await t.admin.request('POST', '/v1/admin/policy', {
      baseVersion: current.version,
      policy: { ...DEFAULT_POLICY, breakGlass: { ...breakGlass, approverRoles: ['Supervisor!'] } },
    });
    assertError(bad, 400, 'POLICY_INVALID');
    assert.match(JSON.stringify(bad.body.error.issues), /breakGlass\.approverRoles/);
    await publish({ ...DEFAULT_POLICY, breakGlass });
  });

  it('starts a capped session for the operator asking, marked with the supervisor who tapped, once', async () => {
    const { result, requestId, response } = await tapFor(forgetful, supervisor.key);
    assert.equal(result.status, 201, JSON.stringify(result.body));
    const body = result.body as Json;
    assert.equal(body.session.operatorId, forgetful);
    assert.equal(body.session.level, 'presence');
    assert.equal(body.breakGlass.method, 'supervisor-tap');
    assert.equal(body.breakGlass.approvedBy, `operator:${supervisor.id}`);
    // The console shows the supervisor by name without a directory lookup (issue 12): the grant carries it.
    assert.equal(body.breakGlass.approverName, 'Sam Supervisor');
    assert.deepEqual(body.breakGlass.actions, ['customer.view']);

    // The capped session may do its break-glass actions and nothing above them, even with a step-up.
    const stepUp = await kiosk.request('POST', `/v1/sessions/${body.session.id as string}/step-up/options`, {
      action: 'payment.approve',
    });
    assertError(stepUp, 403, 'ACTION_DENIED');
    assert.deepEqual(stepUp.body.error.decision, { outcome: 'deny', reasons: ['break-glass'] });

    const [grant] = (await grants()).filter((g) => g.sessionId === body.session.id);
    assert.equal(grant.method, 'supervisor-tap');
    assert.equal(grant.approvedBy, `operator:${supervisor.id}`);
    assert.equal(grant.signedOffAt, null, 'it waits for review');
    const granted = (await t.admin.ok('GET', '/v1/admin/events?type=break-glass-granted&limit=10')).events as Json[];
    const event = granted.find((e) => e.detail.grant === grant.id);
    assert.deepEqual(event.reasons, ['break-glass', 'supervisor-tap']);
    assert.equal(event.detail.supervisor, supervisor.id);
    assert.equal(event.subject.operator, forgetful);
    const started = (await t.admin.ok('GET', '/v1/admin/events?type=session-established&limit=20')).events as Json[];
    const marked = started.find((e) => e.subject.session === body.session.id);
    assert.equal(marked.detail.breakGlass, true);
    assert.equal(marked.detail.approvedBy, `operator:${supervisor.id}`);

    // Its console token is refreshed like any session's (it rests on the grant, not on a passkey).
    const refreshed = await kiosk.request('POST', `/v1/sessions/${body.session.id as string}/token`, {});
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    // Both console assurance tokens carry the break-glass claim, as its events and action tokens do (issue 14).
    const claims = (token: unknown) =>
      JSON.parse(Buffer.from(String(token).split('.')[1] ?? '', 'base64url').toString('utf8')) as Json;
    assert.equal(claims(body.token).break_glass, true);
    assert.equal(claims((refreshed.body as Json).token).break_glass, true);
    assert.equal(claims((refreshed.body as Json).token).sid, body.session.id);
    // The supervisor's own session token (a passkey sign-in) carries no such claim.
    const own = await signIn(kiosk, supervisor.key);
    assert.equal(own.status, 200, JSON.stringify(own.body));
    assert.equal(claims((own.body as Json).token).break_glass, undefined);

    // The same tap sent again finds its request consumed: a replayed approval opens nothing.
    const replayed = await kiosk.request('POST', `/v1/break-glass/requests/${requestId}/approve`, { response });
    assertError(replayed, 400, 'CHALLENGE_UNKNOWN');
    assert.equal((await grants()).length, 1, 'no second grant');
  });

  it('refuses a request past the policy limit per operator with its code', async () => {
    const refused = await ask(forgetful);
    assertError(refused, 429, 'BREAK_GLASS_LIMIT_REACHED');
    assert.match(refused.body.error.message as string, /maxPerOperatorPerDay/);
  });

  it('tells the screen nothing about whether an operator id exists; the supervisor’s approval finds out', async () => {
    const unknown = await ask('nobody-here');
    assert.equal(unknown.status, 201, JSON.stringify(unknown.body));
    assert.deepEqual(Object.keys(unknown.body as Json).sort(), ['expiresAt', 'operatorId', 'options', 'requestId']);
    const { result } = await tapFor('nobody-here', supervisor.key);
    assertError(result, 404, 'OPERATOR_UNKNOWN');
  });

  it('refuses a supervisor approving themselves', async () => {
    const { result } = await tapFor(supervisor.id, supervisor.key);
    assertError(result, 403, 'BREAK_GLASS_SELF_APPROVAL');
  });

  it('refuses a key that is not a supervisor’s, and a tap without user verification', async () => {
    const fresh = (await t.admin.ok('POST', '/v1/admin/operators', { displayName: 'Nia New', roles: [] })).operator
      .id as string;
    assertError((await tapFor(fresh, teller.key)).result, 403, 'BREAK_GLASS_NOT_APPROVER');
    assertError(
      (await tapFor(fresh, supervisor.key, { userVerified: false })).result,
      403,
      'WEBAUTHN_USER_VERIFICATION_REQUIRED',
    );
    // A request of another console is not this console's to approve.
    const elsewhere = await ask(fresh, other);
    const { requestId, options } = elsewhere.body as Json;
    const crossed = await kiosk.request('POST', `/v1/break-glass/requests/${requestId as string}/approve`, {
      response: supervisor.key.assert(options),
    });
    assertError(crossed, 400, 'CHALLENGE_UNKNOWN');
    assert.equal((await grants()).filter((g) => g.operatorId === fresh).length, 0, 'no grant from any refusal');
  });

  it('refuses a supervisor locked out after too many failed attempts', async () => {
    const fresh = (await t.admin.ok('POST', '/v1/admin/operators', { displayName: 'Lee Late', roles: [] })).operator
      .id as string;
    const locked = await enrolled('Lou Locked', ['supervisor']);
    // 100 failed attempts (NIST's cap) as the store keeps them.
    const db = await openRawDatabase(t);
    try {
      await db.run('UPDATE operators SET failed_attempts = 100 WHERE id = ?', locked.id);
    } finally {
      await db.close();
    }
    assertError((await tapFor(fresh, locked.key)).result, 403, 'OPERATOR_LOCKED');
    assert.equal((await grants()).filter((g) => g.operatorId === fresh).length, 0);
  });

  it('refuses a revoked supervisor', async () => {
    const fresh = (await t.admin.ok('POST', '/v1/admin/operators', { displayName: 'Rae Rookie', roles: [] })).operator
      .id as string;
    const gone = await enrolled('Gil Gone', ['supervisor']);
    await t.admin.ok('POST', `/v1/admin/operators/${gone.id}/revoke`, { reason: 'left the bank' });
    const { result } = await tapFor(fresh, gone.key);
    assert.equal(result.status, 403, JSON.stringify(result.body));
    assert.match(result.body.error.code as string, /^(OPERATOR|CREDENTIAL)_REVOKED$/);
    const refusals = (await t.admin.ok('GET', '/v1/admin/events?type=break-glass-refused&limit=50')).events as Json[];
    assert.ok(
      refusals.some((e) => e.subject.operator === fresh && /_REVOKED$/.test(e.detail.code as string)),
      'the refusal is recorded',
    );
  });
});
