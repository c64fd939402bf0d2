import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { DatabaseReadOnlyError, type DatabaseHealthView } from './store/database-health.js';
import { memoryLogger } from './cluster/test-kit.js';
import { NodeHealth, PROBE_FAILURES, type NodeHealthInputs } from './node-health.js';
import { stall } from './test-kit.js';

function rig(overrides: Partial<NodeHealthInputs> = {}) {
  let now = 10_000;
  let probes = 0;
  const state = { reachable: true, readOnly: false, stale: false, stopping: false, hang: false, driverText: false };
  const { logger, records } = memoryLogger();
  const health = new NodeHealth({
    logger,
    nodeId: 'baton1:42',
    engine: 'postgres',
    version: '0.1.0',
    startedAt: 0,
    clock: () => now,
    consolesConnected: () => 7,
    probeDatabase: () => {
      probes++;
      if (state.hang) return new Promise(() => undefined);
      if (!state.reachable && state.driverText) {
        // node-postgres' own errors carry no code: only their text, which names what it connected to.
        return Promise.reject(
          new Error('connect ECONNREFUSED 10.1.2.3:5432 (postgres://baton:s3cret@db1.example.internal/baton)'),
        );
      }
      if (!state.reachable) {
        return Promise.reject(
          Object.assign(new Error('connect ECONNREFUSED postgres://baton:pw@db1.example.internal'), {
            code: 'DATABASE_UNREACHABLE',
          }),
        );
      }
      if (state.readOnly) return Promise.reject(new DatabaseReadOnlyError('standby'));
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
    records,
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
    assert.equal((healthz.body.database as { description: string }).description, PROBE_FAILURES.refused);
    assert.ok(!JSON.stringify(healthz.body).includes('pw@'));
    const readyz = await health.readyz();
    assert.equal(readyz.status, 503);
    assert.deepEqual(readyz.body.problems, ['database-unreachable']);
  });

  it('takes a node whose database accepts no writes out of rotation, naming why, and puts it back once it does', async () => {
    const { health, state, records, advance } = rig();
    state.readOnly = true;
    const readyz = await health.readyz();
    assert.equal(readyz.status, 503);
    assert.deepEqual(readyz.body.problems, ['database-read-only']);
    const healthz = await health.healthz();
    assert.equal(healthz.status, 503);
    assert.deepEqual(healthz.body.database, {
      reachable: true,
      roundTripMs: 0,
      probedAt: 10_000,
      error: 'STORAGE_UNAVAILABLE',
      description: PROBE_FAILURES['read-only'],
    });
    const logged = records.filter((r) => r.msg === 'health: the database probe failed');
    assert.deepEqual(
      logged.map((r) => [r.code, r.failure]),
      [['STORAGE_UNAVAILABLE', 'read-only']],
    );
    assert.match(String(logged[0]?.detail), /standby/);
    state.readOnly = false;
    advance(2_000);
    assert.deepEqual(await health.readyz(), { status: 200, body: { ready: true, nodeId: 'baton1:42' } });
  });

  it('does not hang when the database does not answer', async () => {
    const { health, state } = rig();
    state.hang = true;
    const readyz = await health.readyz();
    assert.equal(readyz.status, 503);
    const healthz = await health.healthz();
    assert.equal((healthz.body.database as { error: string }).error, 'DATABASE_UNREACHABLE');
    assert.equal((healthz.body.database as { description: string }).description, PROBE_FAILURES.timeout);
  });

  it("never repeats the driver's text (hosts, users, a URL) in its bodies; logs it once, without the URL", async () => {
    const { health, state, records, advance } = rig();
    state.reachable = false;
    state.driverText = true;
    const bodies = [await health.healthz(), await health.readyz()].map((answer) => JSON.stringify(answer.body));
    advance(2_000);
    bodies.push(JSON.stringify((await health.healthz()).body));
    for (const body of bodies) {
      assert.doesNotMatch(body, /ECONNREFUSED|10\.1\.2\.3|5432|s3cret|example|postgres:/, body);
    }
    const logged = records.filter((r) => r.msg === 'health: the database probe failed');
    assert.equal(logged.length, 1, 'logged when it stopped answering, not on every probe');
    assert.match(String(logged[0]?.detail), /ECONNREFUSED 10\.1\.2\.3:5432/);
    assert.doesNotMatch(JSON.stringify(logged), /s3cret/);
    state.reachable = true;
    advance(2_000);
    assert.equal((await health.readyz()).status, 200);
    assert.ok(records.some((r) => r.msg === 'health: the database answers again'));
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

  it('does not call the database unreachable for an answer that came while this process was frozen', async () => {
    // The "database" is another process (`cat` echoes each line back), so it answers while this one is stopped.
    const peer = spawn('cat', [], { stdio: ['pipe', 'pipe', 'ignore'] });
    try {
      // Started and echoing before the probe.
      const echoed = once(peer.stdout, 'data');
      peer.stdin.write('ready\n');
      await echoed;
      const { health } = rig({
        probeTimeoutMs: 200,
        probeDatabase: () =>
          new Promise((resolve) => {
            peer.stdout.once('data', () => resolve(1));
            peer.stdin.write('SELECT 1\n');
            // Frozen once the probe's timer runs (a long stop of the world): its answer arrives meanwhile, unread.
            queueMicrotask(() => stall(1_000));
          }),
      });
      // Started from a setImmediate callback: what runs after the freeze is the timers, then the read of the pipe.
      const healthz = await new Promise<Awaited<ReturnType<NodeHealth['healthz']>>>((resolve) =>
        setImmediate(() => void health.healthz().then(resolve)),
      );
      assert.deepEqual(healthz.body.problems, []);
      assert.equal((healthz.body.database as { ok?: boolean; error?: string }).error, undefined);
    } finally {
      peer.kill();
    }
  });
});
