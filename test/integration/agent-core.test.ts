import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BatonAgent } from '../../main/core/agent.js';
import { AgentRig, rejectsWithCode, withAgentConsole, type RigOperator } from '../helpers/agent-rig.js';
import type { Policy } from '../../shared/policy.js';
import { TEST_ORIGIN, type Json } from '../helpers/backend-harness.js';

const MINUTE = 60_000;

async function backendSession(rig: AgentRig, id: string): Promise<Json> {
  const { sessions } = (await rig.backend.admin.ok('GET', `/v1/admin/sessions?limit=500`)) as Json;
  return (sessions as Json[]).find((s) => s.id === id);
}

/**
 * The session as the backend has it once it is no longer `from`: an online console ends a session
 * with a call it does not wait for (session-backend.ts), so nothing on the console marks its arrival.
 */
async function backendSessionLeaving(rig: AgentRig, id: string, from: string, ms = 10_000): Promise<Json> {
  const deadline = Date.now() + ms;
  for (;;) {
    const session = await backendSession(rig, id);
    if (session?.state !== from || Date.now() > deadline) return session;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('agent core against the real backend', () => {
  const f = withAgentConsole('branch-kiosk', ['Ada Teller', 'Ben Clerk']);

  test('a console enrols with a token and comes online with the backend policy', () => {
    const { agent } = f;
    const status = agent.status;
    assert.equal(status.identity.kind, 'enrolled');
    assert.equal(status.connection, 'online');
    assert.ok(status.policyVersion >= 1);
    assert.equal(status.locked, true, 'nobody signed in: the lock screen is up');
  });

  test('two operators sign in; each tap brings their own session to the front and suspends the other', async () => {
    const { agent, port, rig } = f;
    const [ada, ben] = f.ops as [RigOperator, RigOperator];
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
    const { agent, port, rig } = f;
    const ada = f.ops[0] as RigOperator;
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
    const { agent, port, rig } = f;
    const ada = f.ops[0] as RigOperator;
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
    const stored = await backendSessionLeaving(rig, front.id, 'suspended');
    assert.equal(stored.state, 'expired');

    port.tap(ada.authenticator);
    const fresh = await agent.tapIn();
    assert.notEqual(fresh.id, front.id);
  });
});

describe('agent core: session limit', () => {
  // shared-console holds at most 3 sessions.
  const f = withAgentConsole('shared-console', ['Cy', 'Di', 'Ed', 'Flo']);

  test('past the session limit the oldest suspended session is ended, on the backend and on screen', async () => {
    const { agent, port, rig } = f;
    const ops = f.ops;
    const [cy, di, ed, flo] = ops as [RigOperator, RigOperator, RigOperator, RigOperator];
    const ids: string[] = [];
    for (const op of [cy, di, ed]) {
      port.tap(op.authenticator);
      ids.push((await agent.tapIn()).id);
      await rig.clock.advance(1_000);
    }
    assert.equal(agent.status.sessions.length, 3);
    port.tap(flo.authenticator);
    const newest = await agent.tapIn();
    const left = agent.status.sessions.map((s) => s.operatorName).sort();
    assert.deepEqual(left, ['Di', 'Ed', 'Flo'], 'Cy (suspended longest) was evicted');
    assert.equal(agent.status.front?.id, newest.id);
    assert.equal((await backendSession(rig, ids[0] ?? '')).state, 'ended');
  });
});

describe('agent core: step-up', () => {
  // branch-kiosk lets a presence-only tap sign in; risky actions then need step-up.
  const f = withAgentConsole('branch-kiosk', ['Cy', 'Di', 'Ed', 'Flo']);

  test('step-up: allowed for the operator in front, who gets the higher level', async () => {
    const { agent, port } = f;
    const ops = f.ops;
    const flo = ops[3] as RigOperator;
    // A presence-only tap: the session starts at `presence`.
    port.tap(flo.authenticator, { userVerified: false });
    const s = await agent.tapIn();
    assert.equal(s.level, 'presence');
    assert.deepEqual(await agent.authorize('customer.view'), {
      outcome: 'allow',
      steppedUp: false,
      reasons: ['action-allowed'],
    });
    port.tap(flo.authenticator, { userVerified: true });
    const result = await agent.authorize('payment.approve');
    assert.deepEqual(result, { outcome: 'allow', steppedUp: true, reasons: ['action-allowed'] });
    assert.equal(port.asked.at(-1)?.purpose, 'step-up');
    assert.equal(port.asked.at(-1)?.action, 'payment.approve');
    assert.equal(agent.status.front?.level, 'verified');
    assert.equal(agent.status.front?.state, 'stepped-up');
    // Inside the 5-minute window the next approval needs no tap.
    const asked = port.asked.length;
    assert.equal((await agent.authorize('payment.approve')).outcome, 'allow');
    assert.equal(port.asked.length, asked);
  });

  test('step-up: a tap by another operator is refused and recorded', async () => {
    const { agent, port, rig } = f;
    const ops = f.ops;
    // The operator keeps working (no idle lock) until the step-up is older than payment.approve allows.
    for (let i = 0; i < 4; i++) {
      await rig.clock.advance(100_000);
      agent.noteActivity();
    }
    const ed = ops[2] as RigOperator;
    const front = agent.status.front;
    assert.equal(front?.operatorName, 'Flo');
    const edCredential = [...ed.authenticator.credentials.keys()][0] ?? '';
    port.tap(ed.authenticator, { credentialId: edCredential });
    const result = await agent.authorize('payment.approve');
    assert.equal(result.outcome, 'refused');
    assert.ok(result.outcome === 'refused' && result.code === 'STEP_UP_WRONG_OPERATOR', JSON.stringify(result));
    assert.equal(agent.status.notice?.code, 'STEP_UP_WRONG_OPERATOR');
    assert.equal(agent.status.front?.operatorName, 'Flo', 'nobody else came to the front');
    const failures = await rig.events({ type: 'step-up-failed', session: front?.id ?? '' });
    assert.ok(failures.length >= 1, 'the refusal is in the audit trail');
  });

  test('step-up: a tap without user verification is too weak for an action that needs it', async () => {
    const { agent, port } = f;
    const ops = f.ops;
    const flo = ops[3] as RigOperator;
    port.tap(flo.authenticator, { userVerified: false });
    const result = await agent.authorize('payment.approve');
    assert.equal(result.outcome, 'refused');
    // One code for one cause, as api.md and error-codes.md say (never STEP_UP_INSUFFICIENT for a missing UV).
    assert.ok(
      result.outcome === 'refused' && result.code === 'WEBAUTHN_USER_VERIFICATION_REQUIRED',
      JSON.stringify(result),
    );
    assert.equal(agent.status.front?.level, 'verified', 'the level did not change');
  });

  test('an unknown action is denied with its reason, and a locked console refuses to act', async () => {
    const { agent } = f;
    assert.deepEqual(await agent.authorize('vault.open'), { outcome: 'deny', reasons: ['action-unknown'] });
    agent.lock();
    const result = await agent.authorize('customer.view');
    assert.equal(result.outcome, 'refused');
    assert.ok(result.outcome === 'refused' && result.code === 'NO_SESSION_IN_FRONT');
  });

  test('a cancelled tap leaves everything as it was and says so', async () => {
    const { agent, port } = f;
    const before = agent.status.sessions.map((s) => [s.id, s.state]);
    port.cancelNext = true;
    await rejectsWithCode(agent.tapIn(), 'CEREMONY_CANCELLED');
    assert.deepEqual(
      agent.status.sessions.map((s) => [s.id, s.state]),
      before,
    );
    assert.equal(agent.status.phase.kind, 'idle');
  });
});

describe('agent core: the next tap’s challenge, asked for ahead', () => {
  const f = withAgentConsole('branch-kiosk', ['Ada Teller']);

  test('a tap answers the challenge asked for ahead, and only once: the same answer again opens nothing', async () => {
    const { agent, port, rig } = f;
    const [ada] = f.ops as [RigOperator];
    await rig.clock.advance(5_000);
    port.tap(ada.authenticator);
    const session = await agent.tapIn();
    const asked = port.asked.at(-1);
    assert.equal(asked?.purpose, 'sign-in');
    // Issued with the backend's 120 s lifetime when the console came online, 5 s ago: only what is left.
    assert.equal(asked?.options.timeout, 115_000, 'the tap was given the challenge asked for ahead');
    agent.lock();
    port.replayNext = port.answers.at(-1);
    await rejectsWithCode(agent.tapIn(), 'CHALLENGE_UNKNOWN');
    assert.equal(agent.status.front?.id, session.id);
    assert.equal(agent.status.front?.state, 'locked', 'the replayed tap resumed nothing');
  });

  test('after a policy change, the next tap is asked for what the new policy requires, not the held challenge', async () => {
    const { agent, port, rig } = f;
    const [ada] = f.ops as [RigOperator];
    port.tap(ada.authenticator);
    await agent.tapIn(); // a challenge is asked for ahead under the policy now held
    const current = (await rig.backend.admin.ok('GET', '/v1/admin/policy')) as Json;
    const policy = structuredClone(current.policy) as Policy;
    assert.equal(policy.credentials.userVerification, 'preferred');
    policy.credentials.userVerification = 'required';
    await rig.backend.admin.ok('POST', '/v1/admin/policy', { baseVersion: current.version as number, policy });
    await rig.until(agent, (s) => s.policyVersion === (current.version as number) + 1, 'new policy applied');
    agent.lock();
    port.tap(ada.authenticator);
    await agent.tapIn();
    assert.equal(port.asked.at(-1)?.options.userVerification, 'required');
    assert.equal(agent.status.front?.state, 'active');
  });
});

describe('agent core: a configuration that changed channel under an enrolled console', () => {
  test('keeps the enrolled channel (the backend holds it to that) and says so', async () => {
    const rig = await AgentRig.start();
    try {
      const first = await rig.agent({ channel: 'branch-kiosk' });
      await first.agent.stop();
      const again = await BatonAgent.start(
        {
          backendUrl: rig.backend.url,
          channel: 'shared-console',
          rpId: 'localhost',
          origin: TEST_ORIGIN,
          dataDir: first.dataDir,
          agentVersion: 'test',
        },
        { secrets: first.secrets, ceremonies: first.port, clock: rig.clock },
      );
      rig.agents.push(again);
      const status = await rig.until(again, (s) => s.connection === 'online', 'online');
      assert.equal(status.identity.kind === 'enrolled' && status.identity.channel, 'branch-kiosk');
      assert.equal(status.notice?.code, 'CHANNEL_MISMATCH');
      // Local timers follow the enrolled channel: branch-kiosk locks after 120 s idle, shared-console after 180 s.
      const op = await rig.operator(again, first.port, 'Pat');
      first.port.tap(op.authenticator);
      await again.tapIn();
      await rig.clock.advance(121_000);
      assert.equal(again.status.front?.state, 'locked', 'locked on the enrolled channel’s idle delay');
    } finally {
      await rig.stop();
    }
  });
});
