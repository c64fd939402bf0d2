import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { CeremonyBroker } from '../../main/core/ceremony-broker.js';
import { IpcDispatcher } from '../../main/core/ipc-dispatcher.js';
import type { BatonAgent } from '../../main/core/agent.js';
import { FakeClock } from '../helpers/fake-clock.js';
import type { Json } from '../helpers/backend-harness.js';
import { AgentRig, type RigOperator, type SoftCeremonyPort } from '../helpers/agent-rig.js';
import { appKeyPair, publishPolicy, tellerPolicy, TELLER_WORKSPACE_ORIGIN } from '../helpers/action-token-fixtures.js';
import { startTellerApp, TELLER_AUDIENCE, type TellerApp } from '../../examples/teller-app/teller-app.js';
import type { Revocation } from '../../packages/verifier/src/index.js';

const PAYMENTS = 'urn:bank:payments';
const PAYMENTS_ORIGIN = 'https://payments.bank.example';

/** What the teller page does: a token per call; on a 401 challenge, the agent steps up and the call is retried once. */
async function call(
  d: IpcDispatcher,
  workspace: { kind: 'workspace'; sessionId: string; origin: string },
  app: TellerApp,
  method: string,
  path: string,
  action: string,
): Promise<{ status: number; body: Json; challenged: string | undefined; steppedUp: boolean }> {
  const tokenFor = async (challenge?: string) => {
    const result = await d.dispatch(
      'workspace:action-token',
      { audience: TELLER_AUDIENCE, action, ...(challenge === undefined ? {} : { challenge }) },
      workspace,
    );
    assert.ok(result.ok, JSON.stringify(result));
    const value = result.value as Json;
    assert.equal(value.outcome, 'issued', JSON.stringify(value));
    return value as { token: string; steppedUp: boolean };
  };
  let issued = await tokenFor();
  let response = await fetch(`${app.url}${path}`, { method, headers: { authorization: `Bearer ${issued.token}` } });
  let challenged: string | undefined;
  let steppedUp = issued.steppedUp;
  if (response.status === 401) {
    challenged = response.headers.get('www-authenticate') ?? undefined;
    issued = await tokenFor(challenged);
    steppedUp ||= issued.steppedUp;
    response = await fetch(`${app.url}${path}`, { method, headers: { authorization: `Bearer ${issued.token}` } });
  }
  return { status: response.status, body: await response.json(), challenged, steppedUp };
}

describe('the agent gets action tokens for a workspace app and answers its RFC 9470 challenge with a step-up', () => {
  let rig: AgentRig;
  let agent: BatonAgent;
  let port: SoftCeremonyPort;
  let ada: RigOperator;
  let app: TellerApp;
  const revocations: Revocation[] = [];

  before(async () => {
    rig = await AgentRig.start();
    const keys = await appKeyPair();
    const policy = tellerPolicy(keys.publicJwk, 600);
    // Two more app servers: payments (its own page on its own origin), and an app that names no workspace.
    policy.apps = [
      ...(policy.apps ?? []),
      { audience: PAYMENTS, name: 'Payments', actions: ['customer.view'], workspaceOrigins: [PAYMENTS_ORIGIN] },
      { audience: 'urn:bank:batch', name: 'Batch', actions: ['customer.view'] },
    ];
    await publishPolicy(rig.backend.admin, policy);
    ({ agent, port } = await rig.agent());
    await rig.until(agent, (s) => s.policyVersion > 1, 'the new policy');
    ada = await rig.operator(agent, port, 'Ada');
    app = await startTellerApp({
      batonUrl: rig.backend.url,
      revocationKey: keys.privateJwk,
      clock: () => rig.clock.now(),
      onRevocation: (r) => revocations.push(r),
    });
    await app.subscription?.ready;
  });
  after(async () => {
    await app?.close();
    await rig?.stop();
  });

  function workspace() {
    const front = agent.status.front;
    assert.ok(front !== undefined);
    return {
      d: new IpcDispatcher(agent, new CeremonyBroker(() => undefined, new FakeClock())),
      mine: { kind: 'workspace', sessionId: front.id, origin: TELLER_WORKSPACE_ORIGIN } as const,
    };
  }

  it('a lookup needs no step-up; a payment does, and the operator taps once', async () => {
    port.tap(ada.authenticator, { userVerified: false }); // presence: a tap without PIN
    await agent.tapIn();
    const { d, mine } = workspace();
    const lookup = await call(d, mine, app, 'GET', '/api/customers/c-1001', 'customer.view');
    assert.equal(lookup.status, 200);
    assert.equal(lookup.body.name, 'Grace Hopper');
    assert.equal(port.asked.filter((a) => a.purpose === 'step-up').length, 0);

    port.tap(ada.authenticator, { userVerified: true });
    const approval = await call(d, mine, app, 'POST', '/api/payments/p-1/approve', 'payment.approve');
    assert.equal(approval.status, 200, JSON.stringify(approval.body));
    assert.equal(approval.body.level, 'verified');
    assert.equal(approval.steppedUp, true);
    assert.deepEqual(
      port.asked.filter((a) => a.purpose === 'step-up').map((a) => a.action),
      ['payment.approve'],
    );
  });

  it("a token held past the payment's 5 minutes is answered with the RFC 9470 challenge; step-up and retry succeed", async () => {
    const { d, mine } = workspace();
    const held = await d.dispatch(
      'workspace:action-token',
      { audience: TELLER_AUDIENCE, action: 'payment.approve' },
      mine,
    );
    assert.ok(held.ok && (held.value as Json).outcome === 'issued');
    // Six minutes of work at the console: the token (10 min) still lives, the step-up is 6 min old.
    for (let minute = 0; minute < 6; minute++) {
      agent.noteActivity();
      await rig.clock.advance(60_000);
    }
    agent.noteActivity();
    const stale = await fetch(`${app.url}/api/payments/p-2/approve`, {
      method: 'POST',
      headers: { authorization: `Bearer ${(held.value as Json).token}` },
    });
    assert.equal(stale.status, 401);
    const challenge = stale.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /error="insufficient_user_authentication"/);
    assert.match(challenge, /acr_values="phr phrh"/);
    assert.match(challenge, /max_age=300/);

    port.tap(ada.authenticator, { userVerified: true });
    const again = await d.dispatch(
      'workspace:action-token',
      { audience: TELLER_AUDIENCE, action: 'payment.approve', challenge },
      mine,
    );
    assert.ok(again.ok && (again.value as Json).outcome === 'issued', JSON.stringify(again));
    assert.equal((again.value as Json).steppedUp, true);
    const retried = await fetch(`${app.url}/api/payments/p-2/approve`, {
      method: 'POST',
      headers: { authorization: `Bearer ${(again.value as Json).token}` },
    });
    assert.equal(retried.status, 200);
    assert.equal(app.approvals.get('p-2')?.by, ada.id);
  });

  it("only the workspace in front gets tokens, and the agent's assurance token is never what it gets", async () => {
    const { d, mine } = workspace();
    const other = { kind: 'workspace', sessionId: 'ses_someone_else', origin: TELLER_WORKSPACE_ORIGIN } as const;
    const refused = await d.dispatch(
      'workspace:action-token',
      { audience: TELLER_AUDIENCE, action: 'customer.view' },
      other,
    );
    assert.ok(refused.ok && (refused.value as Json).code === 'NO_SESSION_IN_FRONT');
    const ui = await d.dispatch(
      'workspace:action-token',
      { audience: TELLER_AUDIENCE, action: 'customer.view' },
      { kind: 'operator-ui' },
    );
    assert.ok(!ui.ok && ui.error.code === 'NOT_FOUND');
    const issued = await d.dispatch(
      'workspace:action-token',
      { audience: TELLER_AUDIENCE, action: 'customer.view' },
      mine,
    );
    assert.ok(issued.ok);
    assert.notEqual((issued.value as Json).token, agent.frontToken);
  });

  it("a workspace gets tokens only for its own app's server: another app's audience is refused in the agent", async () => {
    const { d, mine } = workspace();
    const stepUps = () => port.asked.filter((a) => a.purpose === 'step-up').length;
    const asked = stepUps();
    const codeOf = (result: Awaited<ReturnType<IpcDispatcher['dispatch']>>) =>
      result.ok ? (result.value as Json).code : result.error.code;
    // The teller page (or a script injected into it) asks for a token for the payments server.
    const foreign = await d.dispatch('workspace:action-token', { audience: PAYMENTS, action: 'customer.view' }, mine);
    assert.equal(codeOf(foreign), 'AUDIENCE_NOT_FOR_WORKSPACE', JSON.stringify(foreign));
    // Nor can it get the operator to step up for it by sending a challenge along.
    const challenged = await d.dispatch(
      'workspace:action-token',
      {
        audience: PAYMENTS,
        action: 'customer.view',
        challenge: 'Bearer error="insufficient_user_authentication", acr_values="urn:baton:acr:verified"',
      },
      mine,
    );
    assert.equal(codeOf(challenged), 'AUDIENCE_NOT_FOR_WORKSPACE');
    assert.equal(stepUps(), asked, 'no step-up was asked for a foreign audience');
    // An app that names no workspace origin is closed to every page (services may still use it).
    const unnamed = await d.dispatch(
      'workspace:action-token',
      { audience: 'urn:bank:batch', action: 'customer.view' },
      mine,
    );
    assert.equal(codeOf(unnamed), 'AUDIENCE_NOT_FOR_WORKSPACE');
    // The payments page on its own origin gets its own server's token; the teller page still gets the teller's.
    const own = await d.dispatch(
      'workspace:action-token',
      { audience: PAYMENTS, action: 'customer.view' },
      { ...mine, origin: PAYMENTS_ORIGIN },
    );
    assert.ok(own.ok && (own.value as Json).outcome === 'issued', JSON.stringify(own));
    assert.equal(decodeJwt((own.value as Json).token as string).aud, PAYMENTS);
    // The backend saw none of the refused requests: for these audiences, only the payments page's token.
    const trail = async (type: string) =>
      (
        (await rig.backend.admin.ok('GET', `/v1/admin/events?type=${type}&session=${mine.sessionId}&limit=100`)) as Json
      ).events.filter((e: Json) => e.detail.audience === PAYMENTS || e.detail.audience === 'urn:bank:batch') as Json[];
    assert.equal((await trail('action-token-issued')).length, 1);
    assert.deepEqual(await trail('action-token-refused'), []);
    const teller = await d.dispatch(
      'workspace:action-token',
      { audience: TELLER_AUDIENCE, action: 'customer.view' },
      mine,
    );
    assert.ok(teller.ok && (teller.value as Json).outcome === 'issued', JSON.stringify(teller));
  });

  it('after the admin revokes the session, the app server refuses its still-unexpired token', async () => {
    const { d, mine } = workspace();
    const issued = await d.dispatch(
      'workspace:action-token',
      { audience: TELLER_AUDIENCE, action: 'customer.view' },
      mine,
    );
    assert.ok(issued.ok);
    const token = (issued.value as Json).token as string;
    const before = await fetch(`${app.url}/api/customers/c-1002`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(before.status, 200);
    const heard = new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (revocations.some((r) => r.kind === 'session' && r.targetId === mine.sessionId)) {
          clearInterval(timer);
          resolve();
        }
      }, 5);
    });
    await rig.backend.admin.ok('POST', `/v1/admin/sessions/${mine.sessionId}/revoke`, { reason: 'left the branch' });
    await heard;
    const afterRevocation = await fetch(`${app.url}/api/customers/c-1002`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(afterRevocation.status, 401);
    assert.equal(((await afterRevocation.json()) as Json).error.code, 'TOKEN_REVOKED');
  });
});
