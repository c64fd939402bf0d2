import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CeremonyBroker } from '../../main/core/ceremony-broker.js';
import { IpcDispatcher } from '../../main/core/ipc-dispatcher.js';
import type { BatonAgent } from '../../main/core/agent.js';
import { FakeClock } from '../helpers/fake-clock.js';
import type { Json } from '../helpers/backend-harness.js';
import { AgentRig, type RigOperator, type SoftCeremonyPort } from '../helpers/agent-rig.js';
import { appKeyPair, publishPolicy, tellerPolicy, TELLER_WORKSPACE_ORIGIN } from '../helpers/action-token-fixtures.js';
import { startTellerApp, TELLER_AUDIENCE, type TellerApp } from '../../examples/teller-app/teller-app.js';

/**
 * An app server stricter than the bank's policy: the policy lets `payment.approve` go at `presence`,
 * the teller app's server wants `verified`. Its RFC 9470 challenge cannot be met by a step-up the
 * policy does not ask for, so the agent says so (ACTION_STEP_UP_REQUIRED) instead of handing the page
 * a token the server will refuse again, and asks the operator for nothing.
 */
describe('an RFC 9470 challenge asking for more than the policy', () => {
  let rig: AgentRig;
  let agent: BatonAgent;
  let port: SoftCeremonyPort;
  let ada: RigOperator;
  let app: TellerApp;

  before(async () => {
    rig = await AgentRig.start();
    const keys = await appKeyPair();
    const policy = tellerPolicy(keys.publicJwk, 600);
    policy.actions = { ...policy.actions, 'payment.approve': { level: 'presence', maxAgeSeconds: 12 * 3600 } };
    await publishPolicy(rig.backend.admin, policy);
    ({ agent, port } = await rig.agent());
    await rig.until(agent, (s) => s.policyVersion > 1, 'the new policy');
    ada = await rig.operator(agent, port, 'Ada');
    app = await startTellerApp({ batonUrl: rig.backend.url, clock: () => rig.clock.now() });
  });
  after(async () => {
    await app?.close();
    await rig?.stop();
  });

  it('is refused with ACTION_STEP_UP_REQUIRED, with no ceremony and no second useless token', async () => {
    port.tap(ada.authenticator, { userVerified: false });
    await agent.tapIn();
    const front = agent.status.front;
    assert.ok(front !== undefined);
    const d = new IpcDispatcher(agent, new CeremonyBroker(() => undefined, new FakeClock()));
    const mine = { kind: 'workspace', sessionId: front.id, origin: TELLER_WORKSPACE_ORIGIN } as const;
    const first = await d.dispatch(
      'workspace:action-token',
      { audience: TELLER_AUDIENCE, action: 'payment.approve' },
      mine,
    );
    assert.ok(first.ok && (first.value as Json).outcome === 'issued', JSON.stringify(first));
    const answer = await fetch(`${app.url}/api/payments/p-9/approve`, {
      method: 'POST',
      headers: { authorization: `Bearer ${(first.value as Json).token as string}` },
    });
    assert.equal(answer.status, 401);
    const challenge = answer.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /error="insufficient_user_authentication"/);
    assert.match(challenge, /acr_values="phr phrh"/);

    const asked = port.asked.length;
    const again = await d.dispatch(
      'workspace:action-token',
      { audience: TELLER_AUDIENCE, action: 'payment.approve', challenge },
      mine,
    );
    assert.ok(again.ok, JSON.stringify(again));
    assert.equal((again.value as Json).outcome, 'refused');
    assert.equal((again.value as Json).code, 'ACTION_STEP_UP_REQUIRED');
    assert.match((again.value as Json).message as string, /more than the policy requires/);
    assert.equal(port.asked.length, asked, 'the operator was asked for nothing');
    assert.equal(app.approvals.has('p-9'), false);
  });
});
