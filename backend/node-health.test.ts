import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DatabaseHealthView } from './store/database-health.js';
import { NodeHealth, type NodeHealthInputs } from './node-health.js';

function rig(overrides: Partial<NodeHealthInputs> = {}) {
  let now = 10_000;
  let probes = 0;
  const state = { reachable: true, stale: false, stopping: false, hang: false };
  const health = new NodeHealth({
    nodeId: 'baton1:42',
    engine: 'postgres',
    version: '0.1.0',
    startedAt: 0,
    clock: () => now,
    consolesConnected: () => 7,
    probeDatabase: () => {
      probes++;
      if (state.hang) return new Promise(() => undefined);
      if (!state.reachable) {
        return Promise.reject(
          Object.assign(new Error('connect ECONNREFUSED postgres://baton:pw@db1.example.internal'), {
            code: 'DATABASE_UNREACHABLE',
          }),
        );
      }
      return Promise.resolve(1);
    },
    freshness: () => ({ stale: state.stale, ...(state.stale ? { reason: 'cluster bus disconnected' } : {}) }),
    stopping: () => state.stopping,
    probeTimeoutMs: 50,
    probeCacheMs: 1000,
    ...overrides,
  });
  return {
    health,
    state,
    probes: () => probes,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

describe('node health: /healthz and /readyz', () => {
  it('is ok and ready when the database answers and the node is fresh', async () => {
    const { health } = rig();
    const healthz = await health.healthz();
    assert.equal(healthz.status, 200);
    assert.equal(healthz.body.status, 'ok');
    assert.equal(healthz.body.nodeId, 'baton1:42');
    assert.equal(healthz.body.engine, 'postgres');
    assert.equal(healthz.body.consolesConnected, 7);
    assert.equal(healthz.body.uptimeSeconds, 10);
    assert.deepEqual(await health.readyz(), { status: 200, body: { ready: true, nodeId: 'baton1:42' } });
  });

  it('is degraded and not ready when the database is unreachable, saying so without the URL', async () => {
    const { health, state } = rig();
    state.reachable = false;
    const healthz = await health.healthz();
    assert.equal(healthz.status, 503);
    assert.equal(healthz.body.status, 'degraded');
    assert.deepEqual(healthz.body.problems, ['database-unreachable']);
    assert.equal((healthz.body.database as { error: string }).error, 'DATABASE_UNREACHABLE');
    assert.ok(!JSON.stringify(healthz.body).includes('pw@'));
    const readyz = await health.readyz();
    assert.equal(readyz.status, 503);
    assert.deepEqual(readyz.body.problems, ['database-unreachable']);
  });

  it('does not hang when the database does not answer', async () => {
    const { health, state } = rig();
    state.hang = true;
    const readyz = await health.readyz();
    assert.equal(readyz.status, 503);
    const healthz = await health.healthz();
    assert.match(String((healthz.body.database as { error: string }).error), /no answer within 50 ms/);
  });

  it('takes a stale node out of rotation, and puts it back once fresh', async () => {
    const { health, state } = rig();
    state.stale = true;
    const readyz = await health.readyz();
    assert.equal(readyz.status, 503);
    assert.deepEqual(readyz.body.problems, ['node-stale']);
    const healthz = await health.healthz();
    assert.equal(healthz.status, 503);
    assert.deepEqual(healthz.body.freshness, { stale: true, reason: 'cluster bus disconnected' });
    state.stale = false;
    assert.equal((await health.readyz()).status, 200);
  });

  it('is not ready while stopping, without calling itself degraded', async () => {
    const { health, state } = rig();
    state.stopping = true;
    assert.equal((await health.readyz()).status, 503);
    const healthz = await health.healthz();
    assert.equal(healthz.status, 200);
    assert.equal(healthz.body.stopping, true);
  });

  it('reports a damaged embedded database file', async () => {
    const view: DatabaseHealthView = { state: 'damaged', problems: ['row 3 missing from index'], checkedAt: 5 };
    const { health } = rig({ engine: 'sqlite', databaseFile: () => view, freshness: undefined });
    const healthz = await health.healthz();
    assert.equal(healthz.status, 503);
    assert.deepEqual(healthz.body.problems, ['database-damaged']);
    assert.equal((healthz.body.database as { state: string }).state, 'damaged');
    assert.equal((await health.readyz()).status, 503);
  });

  it('probes the database at most once per cache period, one probe at a time', async () => {
    const { health, probes, advance } = rig();
    await Promise.all([health.readyz(), health.readyz(), health.healthz()]);
    assert.equal(probes(), 1);
    advance(500);
    await health.readyz();
    assert.equal(probes(), 1);
    advance(600);
    await health.readyz();
    assert.equal(probes(), 2);
  });
});
