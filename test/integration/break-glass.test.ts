import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { DEFAULT_POLICY, type Policy } from '../../shared/policy.js';
import {
  TestConsole,
  assertError,
  httpJson,
  startTestBackend,
  type Json,
  type TestBackend,
} from '../helpers/backend-harness.js';

/**
 * Break-glass, backend side (issue 14 item 7): an admin-issued one-time code bound to an operator and
 * a console, redeemed for a session capped by policy, marked in its events, limited per operator and
 * per site, listed for review until signed off.
 */
describe('break-glass: a one-time temporary access code for an operator without their key', () => {
  let t: TestBackend;
  let kiosk: TestConsole;
  let other: TestConsole;
  let operatorId: string;

  const policyWith = (breakGlass: Policy['breakGlass']): Policy => ({ ...DEFAULT_POLICY, breakGlass });
  const publish = async (policy: Policy) => {
    const current = (await t.admin.ok('GET', '/v1/admin/policy')) as { version: number };
    return t.admin.request('POST', '/v1/admin/policy', { baseVersion: current.version, policy });
  };
  const issue = (consoleId = kiosk.id) =>
    t.admin.request('POST', '/v1/admin/break-glass/codes', { operatorId, consoleId, reason: 'key left at home' });

  before(async () => {
    t = await startTestBackend();
    kiosk = await TestConsole.enrol(t.url, t.admin);
    other = await TestConsole.enrol(t.url, t.admin);
    operatorId = ((await t.admin.ok('POST', '/v1/admin/operators', { displayName: 'Ada Teller' })) as Json).operator
      .id as string;
  });
  after(() => t.stop());

  it('is off until the policy has a breakGlass section, which caps it at presence-level actions', async () => {
    assertError(await issue(), 403, 'BREAK_GLASS_DISABLED');
    const risky = await publish(
      policyWith({ lifetimeSeconds: 900, actions: ['payment.approve'], maxPerOperatorPerDay: 1, maxPerSitePerDay: 5 }),
    );
    assertError(risky, 400, 'POLICY_INVALID');
    assert.match(JSON.stringify(risky.body.error.issues), /breakGlass\.actions\[0\]/);
    const ok = await publish(
      policyWith({ lifetimeSeconds: 900, actions: ['customer.view'], maxPerOperatorPerDay: 1, maxPerSitePerDay: 5 }),
    );
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
  });

  it('gives a capped, marked session for the bound operator on the bound console only, once', async () => {
    const issued = await issue();
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    const { code, grantId } = issued.body as { code: string; grantId: string };

    assertError(
      await kiosk.request('POST', '/v1/break-glass/redeem', { operatorId: 'someone-else', code }),
      401,
      'BREAK_GLASS_CODE_INVALID',
    );
    assertError(
      await other.request('POST', '/v1/break-glass/redeem', { operatorId, code }),
      401,
      'BREAK_GLASS_CODE_INVALID',
    );
    const started = Date.now();
    const redeemed = await kiosk.request('POST', '/v1/break-glass/redeem', { operatorId, code: code.toLowerCase() });
    assert.equal(redeemed.status, 201, JSON.stringify(redeemed.body));
    const body = redeemed.body as Json;
    assert.equal(body.session.level, 'presence');
    assert.deepEqual(body.breakGlass.actions, ['customer.view']);
    assert.ok(body.breakGlass.expiresAt <= started + 900_000 + 5_000, 'the policy lifetime caps the session');
    const jwks = (await httpJson(`${t.url}/.well-known/jwks.json`, { method: 'GET' })).body;
    const { payload } = await jwtVerify(body.token as string, createLocalJWKSet(jwks));
    assert.equal((payload.baton as Json).level, 'presence');
    assert.equal(payload.sid, body.session.id);
    // Marked in its console assurance token too, as in its events and action tokens (issue 14).
    assert.equal(payload.break_glass, true);

    assertError(
      await kiosk.request('POST', '/v1/break-glass/redeem', { operatorId, code }),
      401,
      'BREAK_GLASS_CODE_USED',
    );

    // Only the policy's break-glass actions: payment.approve is refused outright (as at the exchange), not offered a step-up.
    const stepUp = (action: string) =>
      kiosk.request('POST', `/v1/sessions/${body.session.id as string}/step-up/options`, { action });
    const approve = await stepUp('payment.approve');
    assertError(approve, 403, 'ACTION_DENIED');
    assert.deepEqual(approve.body.error.decision, { outcome: 'deny', reasons: ['break-glass'] });
    assert.equal(approve.body.options, undefined);
    assert.equal((await stepUp('customer.view')).body.decision.outcome, 'allow');

    const established = (await t.admin.ok('GET', `/v1/admin/events?type=session-established&limit=100`))
      .events as Json[];
    const marked = established.find((e) => e.subject.session === body.session.id);
    assert.deepEqual(marked.reasons, ['break-glass']);
    assert.equal(marked.detail.breakGlass, true);
    assert.equal(marked.detail.grant, grantId);
    const refused = (await t.admin.ok('GET', `/v1/admin/events?type=break-glass-refused&limit=100`)).events as Json[];
    assert.deepEqual(refused.map((e) => e.detail.code as string).sort(), [
      'BREAK_GLASS_CODE_INVALID',
      'BREAK_GLASS_CODE_INVALID',
      'BREAK_GLASS_CODE_USED',
    ]);
  });

  it('limits grants per operator per the policy, and lists each grant for review until signed off', async () => {
    assertError(await issue(), 429, 'BREAK_GLASS_LIMIT_REACHED');

    const pending = (await t.admin.ok('GET', '/v1/admin/break-glass')).grants as Json[];
    assert.equal(pending.length, 1);
    const [grant] = pending;
    assert.equal(grant.operatorId, operatorId);
    assert.equal(grant.consoleId, kiosk.id);
    assert.equal(typeof grant.sessionId, 'string');
    assert.equal(grant.reason, 'key left at home');

    // Its session is still running: a review covers all it did, so it cannot be signed off yet, and
    // the grant stays on the review list while the session can still act.
    const early = await t.admin.request('POST', `/v1/admin/break-glass/${grant.id as string}/sign-off`, {
      note: 'looks fine so far',
    });
    assertError(early, 409, 'BREAK_GLASS_SESSION_ACTIVE');
    assert.deepEqual(
      ((await t.admin.ok('GET', '/v1/admin/break-glass')).grants as Json[]).map((g) => g.id),
      [grant.id],
    );
    assert.equal(
      ((await t.admin.ok('GET', '/v1/admin/events?type=break-glass-signed-off&limit=10')).events as Json[]).length,
      0,
    );
    // The session still acts as its grant allows (nothing was signed off under it)…
    const stepUp = await kiosk.request('POST', `/v1/sessions/${grant.sessionId as string}/step-up/options`, {
      action: 'customer.view',
    });
    assert.equal(stepUp.body.decision.outcome, 'allow', JSON.stringify(stepUp.body));
    // …until it ends (here an admin ends it); then the review is of everything it did, and it is signed off.
    await t.admin.ok('POST', `/v1/admin/sessions/${grant.sessionId as string}/revoke`, { reason: 'key found' });
    const signed = await t.admin.ok('POST', `/v1/admin/break-glass/${grant.id as string}/sign-off`, {
      note: 'checked with the branch manager',
    });
    assert.equal(typeof signed.signedOffAt, 'number');
    assert.deepEqual((await t.admin.ok('GET', '/v1/admin/break-glass')).grants, []);
    assert.equal(((await t.admin.ok('GET', '/v1/admin/break-glass?all=true')).grants as Json[]).length, 1);
    assertError(
      await t.admin.request('POST', `/v1/admin/break-glass/${grant.id as string}/sign-off`, { note: 'again' }),
      409,
      'BREAK_GLASS_ALREADY_SIGNED_OFF',
    );
    const events = (await t.admin.ok('GET', '/v1/admin/events?type=break-glass-signed-off&limit=10')).events as Json[];
    assert.equal(events[0]?.detail.note, 'checked with the branch manager');
  });

  it('closes a code signed off before it was used: redeeming it is refused, and no session starts', async () => {
    const late = ((await t.admin.ok('POST', '/v1/admin/operators', { displayName: 'Len Late' })) as Json).operator
      .id as string;
    const issued = await t.admin.request('POST', '/v1/admin/break-glass/codes', {
      operatorId: late,
      consoleId: kiosk.id,
      reason: 'key left at home',
    });
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    const { code, grantId } = issued.body as { code: string; grantId: string };
    await t.admin.ok('POST', `/v1/admin/break-glass/${grantId}/sign-off`, { note: 'not needed after all' });

    const redeemed = await kiosk.request('POST', '/v1/break-glass/redeem', { operatorId: late, code });
    assertError(redeemed, 409, 'BREAK_GLASS_ALREADY_SIGNED_OFF');
    assert.equal(redeemed.body.token, undefined);
    const [grant] = ((await t.admin.ok('GET', '/v1/admin/break-glass?all=true')).grants as Json[]).filter(
      (g) => g.id === grantId,
    );
    assert.equal(grant?.usedAt, null);
    assert.equal(grant?.sessionId, null);
    const started = (await t.admin.ok('GET', '/v1/admin/events?type=session-established&limit=100')).events as Json[];
    assert.equal(started.filter((e) => e.subject.operator === late).length, 0, 'no session for the signed-off code');
    const refused = (await t.admin.ok('GET', '/v1/admin/events?type=break-glass-refused&limit=100')).events as Json[];
    const mine = refused.filter((e) => e.subject.operator === late);
    assert.deepEqual(
      mine.map((e) => e.detail.code as string),
      ['BREAK_GLASS_ALREADY_SIGNED_OFF'],
    );
    assert.deepEqual(mine[0]?.reasons, ['break-glass', 'break-glass-already-signed-off']);
  });
});
