import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import { FakeAgentContext } from '../../../test/helpers/fake-agent-context.js';
import type { AgentPhase } from '../agent-types.js';
import type { ConsoleRuntime } from '../console-runtime.js';
import type { AgentSession } from '../session-manager.js';
import { authorize, type CeremonyRunner } from './step-up.js';

const MINUTE = 60_000;

describe('authorize (the step-up ceremony)', () => {
  let ctx: FakeAgentContext;
  let front: Partial<AgentSession> | undefined;
  let activity: number;
  let phases: AgentPhase[];
  const ceremony: CeremonyRunner = async (phase, fn) => {
    phases.push(phase);
    return fn();
  };

  beforeEach(() => {
    ctx = new FakeAgentContext();
    activity = 0;
    phases = [];
    const now = ctx.clock.now();
    front = {
      id: 'ses_1',
      operatorId: 'op_lu',
      level: 'verified',
      authTime: now - 10 * MINUTE,
      startedAt: now - 10 * MINUTE,
      state: 'active',
    };
    const runtime = ctx.runtime as ConsoleRuntime;
    ctx.runtime = {
      ...runtime,
      sessions: {
        get front() {
          return front;
        },
        noteActivity: () => activity++,
      },
    } as unknown as ConsoleRuntime;
  });

  test('with nobody in front the action is refused and nothing is journaled', async () => {
    front = undefined;
    const result = await authorize(ctx, ceremony, 'customer.view');
    assert.deepEqual(result.outcome === 'refused' && result.code, 'NO_SESSION_IN_FRONT');
    assert.equal(ctx.notice?.code, 'NO_SESSION_IN_FRONT');
    assert.equal(ctx.outbox.emitted.length, 0);
  });

  test('a locked session in front may not act', async () => {
    front = { ...front, state: 'locked' };
    const result = await authorize(ctx, ceremony, 'customer.view');
    assert.equal(result.outcome, 'refused');
  });

  test('an allowed action is journaled as a policy decision before it is allowed, and counts as activity', async () => {
    const result = await authorize(ctx, ceremony, 'customer.view');
    assert.deepEqual(result, { outcome: 'allow', steppedUp: false, reasons: ['action-allowed'] });
    const decisions = ctx.journaled('policy-decision');
    assert.equal(decisions.length, 1);
    assert.deepEqual(decisions[0]?.subject, { operator: 'op_lu', console: 'con_1', session: 'ses_1' });
    assert.deepEqual(decisions[0]?.detail, { action: 'customer.view', policyVersion: 0 });
    assert.equal(activity, 1);
    assert.deepEqual(phases, [], 'no ceremony');
  });

  test('a denied action is journaled and shown as ACTION_DENIED', async () => {
    const result = await authorize(ctx, ceremony, 'vault.open');
    assert.deepEqual(result, { outcome: 'deny', reasons: ['action-unknown'] });
    assert.equal(ctx.journaled('policy-decision')[0]?.outcome, 'deny');
    assert.equal(ctx.notice?.code, 'ACTION_DENIED');
  });

  test('a break-glass session may do only its grant’s actions, even those the policy allows at its level', async () => {
    const now = ctx.clock.now();
    front = {
      ...front,
      breakGlass: {
        method: 'supervisor-tap',
        approvedBy: 'operator:op_sup',
        actions: ['customer.view'],
        expiresAt: now + MINUTE,
      },
    };
    // address.change is allowed at the session's level by the policy, but is not in the grant.
    assert.equal((await authorize(ctx, ceremony, 'customer.view')).outcome, 'allow');
    const refused = await authorize(ctx, ceremony, 'address.change');
    assert.deepEqual(refused, { outcome: 'deny', reasons: ['break-glass-action-not-allowed'] });
    assert.equal(ctx.notice?.code, 'ACTION_DENIED');
    const decisions = ctx.journaled('policy-decision');
    assert.deepEqual(
      decisions.map((d) => [d.outcome, d.reasons]),
      [
        ['allow', ['action-allowed']],
        ['deny', ['break-glass-action-not-allowed']],
      ],
    );
    assert.deepEqual(phases, [], 'no step-up ceremony for an action outside the grant');
  });

  test('a step-up while the backend is unreachable is refused and journaled as step-up-failed', async () => {
    const result = await authorize(ctx, ceremony, 'payment.approve');
    assert.deepEqual(result.outcome === 'refused' && result.code, 'BACKEND_UNREACHABLE');
    assert.deepEqual(phases, [{ kind: 'stepping-up', action: 'payment.approve' }]);
    const failed = ctx.journaled('step-up-failed');
    assert.equal(failed.length, 1);
    assert.deepEqual(failed[0]?.reasons, ['backend-unreachable']);
    assert.equal(ctx.journaled('policy-decision').length, 0, 'no decision before the step-up');
    assert.equal(ctx.notice?.code, 'BACKEND_UNREACHABLE');
  });
});
