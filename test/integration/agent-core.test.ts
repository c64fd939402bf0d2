import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BatonError } from '../../shared/errors.js';
import { BatonAgent } from '../../main/core/agent.js';
import { AgentRig, type RigOperator, type SoftCeremonyPort } from '../helpers/agent-rig.js';
import { TEST_ORIGIN, type Json } from '../helpers/backend-harness.js';
import { SoftAuthenticator } from '../helpers/soft-authenticator.js';

const MINUTE = 60_000;

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<BatonError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof BatonError, `expected a BatonError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}

async function backendSession(rig: AgentRig, id: string): Promise<Json> {
  const { sessions } = (await rig.backend.admin.ok('GET', `/v1/admin/sessions?limit=500`)) as Json;
  return (sessions as Json[]).find((s) => s.id === id);
}

describe('agent core against the real backend', () => {
  let rig: AgentRig;
  let agent: BatonAgent;
  let port: SoftCeremonyPort;
  let ada: RigOperator;
  let ben: RigOperator;

  before(async () => {
    rig = await AgentRig.start();
    ({ agent, port } = await rig.agent());
    ada = await rig.operator(agent, port, 'Ada Teller');
    ben = await rig.operator(agent, port, 'Ben Clerk');
  });
  after(() => rig.stop());

  test('a console enrols with a token and comes online with the backend policy', () => {
    const status = agent.status;
    assert.equal(status.identity.kind, 'enrolled');
    assert.equal(status.connection, 'online');
    assert.ok(status.policyVersion >= 1);
    assert.equal(status.locked, true, 'nobody signed in: the lock screen is up');
  });

  test('two operators sign in; each tap brings their own session to the front and suspends the other', async () => {
    port.tap(ada.authenticator);
    const a = await agent.tapIn();
    assert.equal(a.operatorName, 'Ada Teller');
    assert.equal(a.state, 'active');
    assert.equal(agent.status.front?.id, a.id);

    port.tap(ben.authenticator);
    const b = await agent.tapIn();
    assert.notEqual(b.id, a.id);
    assert.equal(agent.status.front?.id, b.id);
    assert.equal(agent.status.sessions.find((s) => s.id === a.id)?.state, 'suspended');

    // Back to Ada: the *same* session resumes, inside the continuity window.
    port.tap(ada.authenticator);
    const again = await agent.tapIn();
    assert.equal(again.id, a.id);
    assert.equal(agent.status.front?.id, a.id);
    assert.equal(agent.status.sessions.find((s) => s.id === b.id)?.state, 'suspended');

    await rig.until(agent, (s) => s.outbox?.pending === 0, 'outbox flushed');
    const switched = await rig.events({ type: 'session-switched' });
    assert.deepEqual(
      switched.map((e) => [e.subject.session, e.detail?.fromSession]),
      [
        [b.id, a.id],
        [a.id, b.id],
      ],
    );
    assert.equal(switched[0]?.assurance?.level, b.level, 'switch events carry the assurance context');
    const resumed = await rig.events({ type: 'session-resumed', session: a.id });
    assert.equal(resumed.length, 1, 'the backend recorded the resume');
  });

  test('idle lock after the policy delay; the same operator resumes inside the continuity window', async () => {
    const front = agent.status.front;
    assert.ok(front !== undefined);
    await rig.clock.advance(119_000);
    assert.equal(agent.status.front?.state, 'active', 'not yet: the branch-kiosk delay is 120 s');
    agent.noteActivity();
    await rig.clock.advance(119_000);
    assert.equal(agent.status.front?.state, 'active', 'activity restarted the idle timer');
    await rig.clock.advance(1_000 + 119_000);
    assert.equal(agent.status.front?.state, 'locked');
    assert.equal(agent.status.locked, true);
    await rig.until(agent, (s) => s.outbox?.pending === 0, 'lock event delivered');
    assert.equal((await backendSession(rig, front.id)).state, 'suspended', 'the backend follows the lock');

    await rig.clock.advance(10 * MINUTE);
    port.tap(ada.authenticator);
    const resumed = await agent.tapIn();
    assert.equal(resumed.id, front.id, 'inside 15 min: the same session');
    assert.equal(resumed.state, 'active');
  });

  test('outside the continuity window the locked session expires and a tap starts a new one', async () => {
    const front = agent.status.front;
    assert.ok(front !== undefined);
    agent.lock();
    assert.equal(agent.status.front?.state, 'locked');
    await rig.clock.advance(15 * MINUTE + 1_000);
    assert.equal(
      agent.status.sessions.some((s) => s.id === front.id),
      false,
      'the console dropped the session when its window closed',
    );
    await rig.until(agent, (s) => s.outbox?.pending === 0, 'events delivered');
    const stored = await backendSession(rig, front.id);
    assert.equal(stored.state, 'expired');

    port.tap(ada.authenticator);
    const fresh = await agent.tapIn();
    assert.notEqual(fresh.id, front.id);
  });
});
