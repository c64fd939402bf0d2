import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AgentStatusView } from '../../shared/ipc.js';
import { OperatorUiLifecycle } from './operator-ui-lifecycle.js';

/** Records, in order, what the lifecycle asked each part to do. */
function harness() {
  const calls: string[] = [];
  let status = { locked: true, sessions: [] } as unknown as AgentStatusView;
  const lifecycle = new OperatorUiLifecycle({
    pusher: { notReady: () => calls.push('pusher.notReady'), markReady: () => calls.push('pusher.markReady') },
    ceremonies: { cancelAll: (reason) => calls.push(`ceremonies.cancelAll: ${reason}`) },
    picker: { cancelAll: () => calls.push('picker.cancelAll') },
    clipboard: { apply: (s) => calls.push(`clipboard.apply ${s.locked}`) },
    workspaces: { apply: (s) => calls.push(`workspaces.apply ${s.locked}`) },
    pushStatus: (s) => calls.push(`push ${s.locked}`),
    currentStatus: () => status,
  });
  return {
    calls,
    lifecycle,
    setStatus: (next: Partial<AgentStatusView>) => (status = { ...status, ...next }),
  };
}

describe('the operator UI follows the agent and survives reloads without stale prompts', () => {
  test('a new status clears the clipboard before any workspace changes, then reaches the UI', () => {
    const { calls, lifecycle, setStatus } = harness();
    setStatus({ locked: false });
    lifecycle.statusChanged();
    assert.deepEqual(calls, ['clipboard.apply false', 'workspaces.apply false', 'push false']);
  });

  test('a reload of the page abandons the waiting ceremony and account choice, and pushes wait for the new page', () => {
    const { calls, lifecycle } = harness();
    assert.equal(lifecycle.navigationStarted({ isMainFrame: true, isSameDocument: false }), true);
    assert.deepEqual(calls, [
      'pusher.notReady',
      'ceremonies.cancelAll: The operator screen reloaded',
      'picker.cancelAll',
    ]);
  });

  test('a sub-frame navigation or an in-page (same-document) one abandons nothing', () => {
    const { calls, lifecycle } = harness();
    assert.equal(lifecycle.navigationStarted({ isMainFrame: false, isSameDocument: false }), false);
    assert.equal(lifecycle.navigationStarted({ isMainFrame: true, isSameDocument: true }), false);
    assert.deepEqual(calls, []);
  });

  test('a crashed renderer abandons the same, with its own reason', () => {
    const { calls, lifecycle } = harness();
    lifecycle.rendererGone();
    assert.deepEqual(calls, [
      'pusher.notReady',
      'ceremonies.cancelAll: The operator screen stopped',
      'picker.cancelAll',
    ]);
  });

  test('once the page has loaded, held pushes go first and the current status follows', () => {
    const { calls, lifecycle } = harness();
    lifecycle.loaded();
    assert.deepEqual(calls, ['pusher.markReady', 'clipboard.apply true', 'workspaces.apply true', 'push true']);
  });
});
