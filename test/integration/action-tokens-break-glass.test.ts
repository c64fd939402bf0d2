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
    token = (await redeemBreakGlassCode(t.admin, kiosk, operatorId)).token as string;
  });
  after(() => t.stop());

  it('issues only the break-glass actions, marked, and denies the rest without offering a step-up', async () => {
    const lookup = await exchange(kiosk, token, 'customer.view');
    assert.equal(lookup.status, 200, JSON.stringify(lookup.body));
    assert.equal(decodeJwt(lookup.body.access_token).break_glass, true);
    const payment = await exchange(kiosk, token, 'payment.approve');
    assertError(payment, 403, 'ACTION_DENIED');
    assert.deepEqual(payment.body.error.decision.reasons, ['break-glass']);
  });
});
