import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { TestConsole, assertError, startTestBackend, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { appKeyPair, exchange, publishPolicy, tellerPolicy } from '../helpers/action-token-fixtures.js';
import { redeemBreakGlassCode } from '../helpers/operator-flow.js';

describe('action tokens for a break-glass session', () => {
  let t: TestBackend;
  let kiosk: TestConsole;
  let token: string;
  let sessionId: string;

  before(async () => {
    t = await startTestBackend();
    const keys = await appKeyPair();
    await publishPolicy(t.admin, {
      ...tellerPolicy(keys.publicJwk),
      breakGlass: { lifetimeSeconds: 900, actions: ['customer.view'], maxPerOperatorPerDay: 1, maxPerSitePerDay: 5 },
    });
    kiosk = await TestConsole.enrol(t.url, t.admin);
    const operatorId = ((await t.admin.ok('POST', '/v1/admin/operators', { displayName: 'Ada Teller' })) as Json)
      .operator.id as string;
    const started = await redeemBreakGlassCode(t.admin, kiosk, operatorId);
    token = started.token as string;
    sessionId = started.session.id as string;
  });
  after(() => t.stop());

  it('issues only the break-glass actions, marked, and denies the rest without offering a step-up', async () => {
    const lookup = await exchange(kiosk, token, 'customer.view');
    assert.equal(lookup.status, 200, JSON.stringify(lookup.body));
    assert.equal(decodeJwt(lookup.body.access_token).break_glass, true);
    const payment = await exchange(kiosk, token, 'payment.approve');
    assertError(payment, 403, 'ACTION_DENIED');
    assert.deepEqual(payment.body.error.decision.reasons, ['break-glass']);

    // The auditor reads the mark in the events as well as in the token.
    const read = async (type: string): Promise<Json[]> =>
      ((await t.admin.ok('GET', `/v1/admin/events?type=${type}&session=${sessionId}&limit=10`)) as Json)
        .events as Json[];
    const issued = await read('action-token-issued');
    assert.equal(issued.length, 1);
    assert.ok(issued[0].reasons.includes('break-glass'), JSON.stringify(issued[0].reasons));
    assert.equal(issued[0].detail.action, 'customer.view');
    const refused = await read('action-token-refused');
    assert.equal(refused.length, 1);
    assert.ok(refused[0].reasons.includes('break-glass'), JSON.stringify(refused[0].reasons));
  });

  it('marks the backend’s events of the session after its start: suspended, ended, revoked (and the admin action)', async () => {
    const newOperator = async (name: string) =>
      ((await t.admin.ok('POST', '/v1/admin/operators', { displayName: name })) as Json).operator.id as string;
    // A second break-glass session on the kiosk suspends the first; the console ends the second.
    const second = (await redeemBreakGlassCode(t.admin, kiosk, await newOperator('Bo Teller'))).session.id as string;
    await kiosk.ok('POST', `/v1/sessions/${second}/end`, { reason: 'sign-out' });
    // An admin revokes the first.
    await t.admin.ok('POST', `/v1/admin/sessions/${sessionId}/revoke`, { reason: 'review' });

    const reasonsOf = async (session: string, type: string): Promise<string[][]> =>
      (
        ((await t.admin.ok('GET', `/v1/admin/events?type=${type}&session=${session}&limit=10`)) as Json)
          .events as Json[]
      ).map((e) => e.reasons as string[]);
    assert.deepEqual(await reasonsOf(sessionId, 'session-suspended'), [['another-operator-signed-in', 'break-glass']]);
    assert.deepEqual(await reasonsOf(second, 'session-ended'), [['sign-out', 'break-glass']]);
    const revoked = await reasonsOf(sessionId, 'session-revoked');
    assert.equal(revoked.length, 1);
    assert.ok(revoked[0]?.includes('break-glass'), JSON.stringify(revoked));
  });
});
