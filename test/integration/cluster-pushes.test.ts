import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CLOSE_CODES } from '../../shared/protocol.js';
import { DEFAULT_POLICY } from '../../shared/policy.js';
import type { PostgresBus } from '../../backend/cluster/bus.js';
import { startTestBackend, TestConsole, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from '../helpers/postgres-server.js';

/** Polls `check` until it holds (a guard against a flush still on its way, not a sleep). */
async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Two backends in this process on one PostgreSQL database are two nodes of a cluster: a push taken
 * on one reaches the consoles connected to the other through the cluster bus (LISTEN/NOTIFY), and a
 * node that missed notifications catches up from the store when its bus reconnects.
 */
describe('pushes reach the consoles of every node (two nodes, one PostgreSQL)', { skip: postgresSkip() }, () => {
  let server: PostgresServer;
  let nodeA: TestBackend;
  let nodeB: TestBackend;

  before(async () => {
    server = await startPostgres();
    const databaseUrl = await createDatabase(server.url, 'baton_cluster_pushes');
    // A second node with its own data directory: the harness gives it the first one's key-encryption key (ADR 0006).
    nodeA = await startTestBackend({ databaseUrl });
    nodeB = await startTestBackend({ databaseUrl }, { adminToken: nodeA.admin.token });
  });

  after(async () => {
    await nodeB?.stop();
    await nodeA?.stop();
    await server?.stop();
  });

  /** The same console, talking to node B (same key, same id). */
  const onB = (console: TestConsole) => new TestConsole(nodeB.url, console.key, console.id);

  it('a revocation taken by node A is received and acknowledged by a console connected to node B', async () => {
    const console = await TestConsole.enrol(nodeA.url, nodeA.admin);
    const { authenticator } = await enrolOperator(nodeA.admin, console);
    const session = ((await signIn(console, authenticator)).body as Json).session;
    const viaB = onB(console);
    const socket = await viaB.connect({ revocationEpoch: await nodeB.backend.revocations.currentEpoch() });
    await socket.next('welcome');
    const revoked = (await nodeA.admin.ok('POST', `/v1/admin/sessions/${session.id as string}/revoke`, {
      reason: 'card reported stolen',
    })) as Json;
    assert.equal(revoked.pushedTo, 0, 'node A holds no socket of that console');
    const message = await socket.next('revocation', (m) => m.items.some((i) => i.targetId === session.id));
    assert.equal(message.epoch, revoked.epoch);
    socket.send({ type: 'ack', of: 'revocation', epoch: message.epoch });
    await eventually('the acknowledgement recorded by node B', async () => {
      const deliveries = (await nodeA.admin.ok('GET', `/v1/admin/revocations/${message.epoch}/deliveries`)) as Json;
      return deliveries.acknowledged === 1 && deliveries.deliveries[0]?.consoleId === console.id;
    });
    await socket.close();
  });

  it('a policy published on node B reaches a console connected to node A', async () => {
    const console = await TestConsole.enrol(nodeA.url, nodeA.admin);
    const socket = await console.connect();
    const initial = await socket.next('policy');
    const policy = structuredClone(DEFAULT_POLICY);
    policy.channels['branch-kiosk']!.idleLockSeconds = 61;
    await nodeB.admin.ok('POST', '/v1/admin/policy', { baseVersion: initial.version, policy });
    const pushed = await socket.next('policy', (m) => m.version === initial.version + 1);
    assert.equal(pushed.policy.channels['branch-kiosk']?.idleLockSeconds, 61);
    assert.equal(nodeA.backend.policies.version.version, initial.version + 1, "node A's cached policy moved too");
    await socket.close();
  });

  it('an end-session command from node A reaches a console connected to node B', async () => {
    const console = await TestConsole.enrol(nodeA.url, nodeA.admin);
    const { authenticator } = await enrolOperator(nodeA.admin, console, { displayName: 'Cross Node' });
    const session = ((await signIn(console, authenticator)).body as Json).session;
    const socket = await onB(console).connect();
    await socket.next('welcome');
    await nodeA.admin.ok('POST', `/v1/admin/sessions/${session.id as string}/end`, { reason: 'shift over' });
    const command = await socket.next('command', (m) => m.sessionId === session.id);
    assert.equal(command.command, 'end-session');
    await socket.close();
  });

  it('a console connecting to node B while connected to node A loses its node A socket', async () => {
    const console = await TestConsole.enrol(nodeA.url, nodeA.admin);
    const first = await console.connect();
    await first.next('welcome');
    await eventually('node A to hold the console', () =>
      Promise.resolve(nodeA.backend.channel.isConnected(console.id)),
    );
    // "Newest" is the cluster's order of announcements: node A's must be in it (back from PostgreSQL) before the
    // console connects to B, or B's may come first under load, and then B's socket is the older one and is closed.
    const arbiterA = (nodeA.backend.channel as unknown as { arbiter: { local: Map<string, { announced: boolean }> } })
      .arbiter;
    await eventually("node A's announcement to come back", () =>
      Promise.resolve(arbiterA.local.get(console.id)?.announced === true),
    );
    const second = await onB(console).connect();
    await second.next('welcome');
    const closed = await first.closed;
    assert.equal(closed.code, CLOSE_CODES.SUPERSEDED);
    assert.equal(nodeB.backend.channel.isConnected(console.id), true, 'the newest socket stays');
    await eventually('node A to let the console go', () =>
      Promise.resolve(!nodeA.backend.channel.isConnected(console.id)),
    );
    await second.close();
  });

  it('a node whose bus missed a revocation pushes it to its consoles once the bus reconnects (resync)', async () => {
    const console = await TestConsole.enrol(nodeA.url, nodeA.admin);
    const { authenticator } = await enrolOperator(nodeA.admin, console, { displayName: 'Missed Pointer' });
    const session = ((await signIn(console, authenticator)).body as Json).session;
    const socket = await onB(console).connect({ revocationEpoch: await nodeB.backend.revocations.currentEpoch() });
    await socket.next('welcome');
    const bus = nodeB.backend.services.bus as PostgresBus;
    assert.equal(bus.kind, 'postgres');
    // Node B hears nothing on the bus meanwhile: as if its listening connection were down.
    const busInternals = bus as unknown as { receive(payload: string | undefined): void };
    const receive = busInternals.receive.bind(bus);
    busInternals.receive = () => undefined;
    const connectsBefore = bus.connects;
    try {
      const revoked = (await nodeA.admin.ok('POST', `/v1/admin/sessions/${session.id as string}/revoke`, {
        reason: 'missed by node B',
      })) as Json;
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(
        socket.received.some((m) => m.type === 'revocation' && m.epoch === revoked.epoch),
        false,
        'node B missed the pointer',
      );
    } finally {
      busInternals.receive = receive;
    }
    // The listening connection is dropped for real (PostgreSQL ends it); the bus reconnects and resyncs.
    const db = nodeA.backend.services.store;
    const { kyselyOf } = await import('../../backend/store/kysely-store.js');
    const { sql } = await import('kysely');
    await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ${`baton-bus:${nodeB.backend.services.nodeId}`.slice(0, 63)}`.execute(
      kyselyOf(db)!,
    );
    const message = await socket.next('revocation', (m) => m.items.some((i) => i.targetId === session.id), 15_000);
    assert.ok(bus.connects > connectsBefore, 'the bus reconnected');
    socket.send({ type: 'ack', of: 'revocation', epoch: message.epoch });
    await eventually('the acknowledgement after the resync', async () => {
      const deliveries = (await nodeA.admin.ok('GET', `/v1/admin/revocations/${message.epoch}/deliveries`)) as Json;
      return deliveries.acknowledged === 1;
    });
    await socket.close();
  });

  it("an event recorded on node A reaches node B's live admin stream, once and in cursor order", async () => {
    const seen: number[] = [];
    const unsubscribe = nodeB.backend.events.subscribe({ type: 'admin-action' }, (event) => seen.push(event.cursor));
    try {
      const recorded: number[] = [];
      for (let i = 0; i < 5; i++) {
        const stored = await nodeA.backend.events.record({
          type: 'admin-action',
          subject: {},
          outcome: 'success',
          reasons: ['cluster-stream-test'],
          detail: { i },
        });
        recorded.push(stored.cursor);
      }
      await eventually('node B to follow node A', () => Promise.resolve(recorded.every((c) => seen.includes(c))));
      assert.deepEqual(
        seen,
        [...new Set(seen)].sort((a, b) => a - b),
        'each event once, in cursor order',
      );
    } finally {
      unsubscribe();
    }
  });
});
