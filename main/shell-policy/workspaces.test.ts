import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AgentStatusView } from '../../shared/ipc.js';
import { WorkspaceManager, visibleWorkspace, type WorkspaceHost } from './workspaces.js';

type State = AgentStatusView['sessions'][number]['state'];

/** A host that records what a real one would do to its views. */
function recordingHost() {
  const log: string[] = [];
  const visible = new Set<string>();
  const host: WorkspaceHost = {
    create: (id) => {
      log.push(`create ${id}`);
      return {
        show: () => visible.add(id),
        hide: () => visible.delete(id),
        destroy: () => {
          visible.delete(id);
          log.push(`destroy+clear ${id}`);
          return Promise.resolve();
        },
      };
    },
  };
  return { host, log, visible };
}

function status(sessions: [string, State][], front?: string, extra: Partial<AgentStatusView> = {}) {
  const frontState = sessions.find(([id]) => id === front)?.[1];
  return {
    sessions: sessions.map(([id, state]) => ({ id, state })),
    front: front === undefined ? undefined : { id: front },
    locked: front === undefined || frontState === 'locked',
    phase: { kind: 'idle' } as AgentStatusView['phase'],
    ...extra,
  } as Pick<AgentStatusView, 'sessions' | 'locked' | 'phase'> & { front?: { id: string } };
}

describe('per-operator workspaces follow the agent’s status', () => {
  test('a tap-in creates a workspace and shows it; a second operator suspends the first without reloading it', () => {
    const { host, log, visible } = recordingHost();
    const m = new WorkspaceManager(host);
    m.apply(status([['ses_nia', 'active']], 'ses_nia'));
    assert.deepEqual([...visible], ['ses_nia']);
    m.apply(
      status(
        [
          ['ses_nia', 'suspended'],
          ['ses_oz', 'active'],
        ],
        'ses_oz',
      ),
    );
    assert.deepEqual([...visible], ['ses_oz']);
    m.apply(
      status(
        [
          ['ses_nia', 'active'],
          ['ses_oz', 'suspended'],
        ],
        'ses_nia',
      ),
    );
    assert.deepEqual([...visible], ['ses_nia']);
    assert.deepEqual(log, ['create ses_nia', 'create ses_oz'], 'switching never recreates (reloads) a workspace');
  });

  test('the lock screen covers everything: locked, or a ceremony on screen', () => {
    const { host, visible } = recordingHost();
    const m = new WorkspaceManager(host);
    m.apply(status([['ses_nia', 'active']], 'ses_nia'));
    m.apply(status([['ses_nia', 'locked']], 'ses_nia'));
    assert.equal(visible.size, 0);
    m.apply(
      status([['ses_nia', 'stepped-up']], 'ses_nia', { phase: { kind: 'stepping-up', action: 'payment.approve' } }),
    );
    assert.equal(visible.size, 0);
    m.apply(status([['ses_nia', 'stepped-up']], 'ses_nia'));
    assert.deepEqual([...visible], ['ses_nia']);
    assert.equal(m.sessions.length, 1, 'the locked workspace kept its state');
  });

  test('a session that ends, expires or is revoked loses its view and its partition, whichever is in front', () => {
    const { host, log, visible } = recordingHost();
    const m = new WorkspaceManager(host);
    m.apply(
      status(
        [
          ['ses_nia', 'suspended'],
          ['ses_oz', 'active'],
        ],
        'ses_oz',
      ),
    );
    m.apply(
      status(
        [
          ['ses_nia', 'revoked'],
          ['ses_oz', 'active'],
        ],
        'ses_oz',
      ),
    );
    assert.ok(log.includes('destroy+clear ses_nia'));
    m.apply(status([['ses_oz', 'ended']]));
    assert.ok(log.includes('destroy+clear ses_oz'));
    assert.deepEqual(m.sessions, []);
    assert.equal(visible.size, 0);
    assert.equal(visibleWorkspace(status([['ses_x', 'expired']], 'ses_x')), undefined);
  });
});
