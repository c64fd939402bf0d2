import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import type { Policy } from '../../shared/policy.js';
import { appKeyPair, exchange, publishPolicy, tellerPolicy } from '../helpers/action-token-fixtures.js';
import {
  TEST_ORIGIN,
  TestConsole,
  assertError,
  startTestBackend,
  type Json,
  type TestBackend,
} from '../helpers/backend-harness.js';
import { redeemBreakGlassCode } from '../helpers/operator-flow.js';
import { SoftAuthenticator } from '../helpers/soft-authenticator.js';

/**
 * Issue 14 item 7: a break-glass session is capped at step-up exactly as at the action-token
 * exchange. An action outside the policy's `breakGlass.actions` is refused on both routes with the
 * same answer (`403 ACTION_DENIED`, decision `deny` with reason `break-glass`), also when the policy
 * changed between the step-up's options and its verification; a step-up the session may do (its
 * authentication grew too old for a break-glass action) renews its time but never lifts it above
 * `presence`, and every console token it gets says `break_glass: true`: the step-up's, the next
 * refresh's, and the action tokens after it.
 */
describe('break-glass sessions at step-up: the exchange’s cap, and the break_glass claim on every token', () => {
  let t: TestBackend;
  let kiosk: TestConsole;
  let policy: Policy;
  let now = Date.now();
  const clock = () => now;
  let operatorId: string;
  let key: SoftAuthenticator;
  let session: string;
  let token: string;

  const options = (action: string) => kiosk.request('POST', `/v1/sessions/${session}/step-up/options`, { action });
  const withBreakGlassActions = (actions: string[]): Policy => ({
    ...policy,
    breakGlass: { lifetimeSeconds: 900, actions, maxPerOperatorPerDay: 3, maxPerSitePerDay: 5 },
  });

  before(async () => {
    t = await startTestBackend({}, { clock });
    const keys = await appKeyPair();
    const teller = tellerPolicy(keys.publicJwk);
    // A lookup must be re-confirmed after a minute; a second presence-level action for the policy change below.
    policy = {
      ...teller,
      actions: {
        ...teller.actions,
        'customer.view': { level: 'presence', maxAgeSeconds: 60 },
        'balance.view': { level: 'presence', maxAgeSeconds: 3600 },
      },
    };
    await publishPolicy(t.admin, withBreakGlassActions(['customer.view']));
    const enrolled = await TestConsole.enrol(t.url, t.admin);
    kiosk = new TestConsole(enrolled.url, enrolled.key, enrolled.id, clock);
    // Fay has a registered key (she may find it later in the day); this morning she starts without it.
    const { operator } = (await t.admin.ok('POST', '/v1/admin/operators', { displayName: 'Fay Teller' })) as Json;
    operatorId = operator.id as string;
    const { code: enrolment } = (await t.admin.ok(
      'POST',
      `/v1/admin/operators/${operatorId}/enrolment-codes`,
      {},
    )) as Json;
    key = new SoftAuthenticator(TEST_ORIGIN);
    const { options: creation } = (await kiosk.ok('POST', '/v1/operators/enrol/options', { code: enrolment })) as Json;
    await kiosk.ok('POST', '/v1/operators/enrol/verify', { code: enrolment, response: key.register(creation) });
    const redeemed = await redeemBreakGlassCode(t.admin, kiosk, operatorId);
    session = redeemed.session.id as string;
    token = redeemed.token as string;
    assert.equal(decodeJwt(token).break_glass, true);
  });
  after(() => t.stop());

  it('refuses an action outside breakGlass.actions at step-up with the exchange’s own answer, recorded', async () => {
    const atExchange = await exchange(kiosk, token, 'payment.approve');
    assertError(atExchange, 403, 'ACTION_DENIED');
    const atStepUp = await options('payment.approve');
    assertError(atStepUp, 403, 'ACTION_DENIED');
    assert.deepEqual(atStepUp.body.error.decision, atExchange.body.error.decision);
    assert.deepEqual(atStepUp.body.error.decision, { outcome: 'deny', reasons: ['break-glass'] });
    assert.equal(atStepUp.body.options, undefined);
    const decisions = (await t.admin.ok('GET', '/v1/admin/events?type=policy-decision&limit=100')).events as Json[];
    const refused = decisions.find((e) => e.subject.session === session && e.detail.action === 'payment.approve');
    assert.equal(refused?.outcome, 'deny');
    assert.deepEqual(refused?.reasons, ['break-glass']);
  });

  it('renews a break-glass action’s authentication at presence, and marks the step-up’s and the refresh’s tokens', async () => {
    now += 120_000; // the lookup's 60 s are past: it needs Fay's tap again
    const asked = await options('customer.view');
    assert.equal(asked.status, 200, JSON.stringify(asked.body));
    assert.equal(asked.body.decision.outcome, 'step-up');
    const response = key.assert(asked.body.options); // with user verification: a key's tap would be `verified`
    const stepped = await kiosk.request('POST', `/v1/sessions/${session}/step-up/verify`, {
      action: 'customer.view',
      response,
    });
    assert.equal(stepped.status, 200, JSON.stringify(stepped.body));
    assert.equal(stepped.body.session.level, 'presence', 'a break-glass session never gets above presence');
    const claims = decodeJwt(stepped.body.token as string);
    assert.equal(claims.break_glass, true);
    assert.equal((claims.baton as Json).level, 'presence');
    assert.equal(claims.auth_time, Math.floor(now / 1000));

    // The session still rests on its grant: the refresh marks its token, and the exchange still caps it.
    const refreshed = await kiosk.request('POST', `/v1/sessions/${session}/token`, {});
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    assert.equal(decodeJwt(refreshed.body.token as string).break_glass, true);
    const lookup = await exchange(kiosk, stepped.body.token as string, 'customer.view');
    assert.equal(lookup.status, 200, JSON.stringify(lookup.body));
    assert.equal(decodeJwt(lookup.body.access_token as string).break_glass, true);
    assertError(await exchange(kiosk, stepped.body.token as string, 'payment.approve'), 403, 'ACTION_DENIED');
    assertError(await options('payment.approve'), 403, 'ACTION_DENIED');

    // Each event of the step-up carries the session's mark: the options' decision, the step-up, its allow.
    const events = (await t.admin.ok('GET', `/v1/admin/events?session=${session}&limit=100`)).events as Json[];
    const ofStepUp = events.filter(
      (e) => (e.type === 'policy-decision' && e.detail.action === 'customer.view') || e.type === 'session-stepped-up',
    );
    assert.deepEqual(
      ofStepUp.map((e) => [e.type, e.outcome]),
      [
        ['policy-decision', 'step-up'],
        ['session-stepped-up', 'success'],
        ['policy-decision', 'allow'],
      ],
    );
    for (const e of ofStepUp) assert.ok(e.reasons.includes('break-glass'), JSON.stringify([e.type, e.reasons]));
  });

  it('refuses the step-up’s verification when the policy took the action off breakGlass.actions meanwhile', async () => {
    now += 120_000;
    const asked = await options('customer.view');
    assert.equal(asked.body.decision.outcome, 'step-up', JSON.stringify(asked.body));
    await publishPolicy(t.admin, withBreakGlassActions(['balance.view']));
    const late = await kiosk.request('POST', `/v1/sessions/${session}/step-up/verify`, {
      action: 'customer.view',
      response: key.assert(asked.body.options),
    });
    assertError(late, 403, 'ACTION_DENIED');
    assert.deepEqual(late.body.error.decision, { outcome: 'deny', reasons: ['break-glass'] });
    assert.equal(late.body.token, undefined);
  });
});
