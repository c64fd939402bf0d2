import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_POLICY } from '../../shared/policy.js';
import type { SessionSnapshot } from './session-manager.js';
import { projectStatus, type StatusSources } from './status-projection.js';

function snapshot(id: string, state: SessionSnapshot['state'], inFront: boolean): SessionSnapshot {
  return {
    id,
    operatorId: `op_${id}`,
    operatorName: id,
    level: 'verified',
    aal: 2,
    authTime: 1,
    startedAt: 1,
    expiresAt: 2,
    state,
    since: undefined,
    inFront,
  };
}

const BASE: StatusSources = {
  identity: { kind: 'enrolled', consoleId: 'con_1', channel: 'branch-kiosk' },
  connection: 'online',
  phase: { kind: 'idle' },
  sessions: [],
  outbox: undefined,
  policyVersion: 4,
  notice: undefined,
  channel: DEFAULT_POLICY.channels['branch-kiosk'],
  lastEnded: undefined,
  idleWarning: undefined,
  support: undefined,
};

describe('projectStatus', () => {
  test('the lock screen covers the workspaces when nobody is in front', () => {
    const status = projectStatus({ ...BASE, sessions: [snapshot('a', 'suspended', false)] });
    assert.equal(status.front, undefined);
    assert.equal(status.locked, true);
  });

  test('the lock screen covers the workspaces when the one in front is locked', () => {
    const status = projectStatus({ ...BASE, sessions: [snapshot('a', 'locked', true)] });
    assert.equal(status.front?.id, 'a');
    assert.equal(status.locked, true);
  });

  test('an active or stepped-up operator in front sees their workspace', () => {
    for (const state of ['active', 'stepped-up'] as const) {
      const status = projectStatus({
        ...BASE,
        sessions: [snapshot('a', 'suspended', false), snapshot('b', state, true)],
      });
      assert.equal(status.front?.id, 'b');
      assert.equal(status.locked, false);
      assert.equal(status.sessions.length, 2);
    }
  });

  test('the channel’s timings are shown, and none when the channel is not in the policy', () => {
    assert.deepEqual(projectStatus(BASE).limits, {
      idleLockSeconds: 120,
      continuitySeconds: 900,
      offlineGraceSeconds: 900,
    });
    assert.equal(projectStatus({ ...BASE, channel: undefined }).limits, undefined);
  });

  test('identity, connection, phase, notice and policy version pass through unchanged', () => {
    const notice = { code: 'CHANNEL_MISMATCH' as const, message: 'm', at: 5 };
    const status = projectStatus({ ...BASE, connection: 'syncing', phase: { kind: 'enrolling-operator' }, notice });
    assert.equal(status.connection, 'syncing');
    assert.deepEqual(status.phase, { kind: 'enrolling-operator' });
    assert.equal(status.notice, notice);
    assert.equal(status.policyVersion, 4);
    assert.deepEqual(status.identity, BASE.identity);
  });
});
