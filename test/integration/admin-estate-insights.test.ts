/**
 * Issue 12, what the admin console's new tables and pictures read from the admin API, over real HTTP on
 * the suite's engine: the revocations list with names and how far each revocation reached; the pictures'
 * revocation propagation as p50 / p99 per period of a chosen range; a chart bar's click-through (several
 * event types, an origin, a time window); list totals counted up to 10,000 ("more than 10,000").
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { kyselyOf } from '../../backend/store/kysely-store.js';
import { assertError, startTestBackend, type Json, type TestBackend } from '../helpers/backend-harness.js';

const HOUR = 3_600_000;

describe('admin console at estate scale: revocations, pictures, click-through, totals', () => {
  let t: TestBackend;
  const get = async (path: string): Promise<Json> => t.admin.ok('GET', path);
  /** Two whole hours, both ending before now: the pictures' range in the tests. */
  const start = Math.floor(Date.now() / HOUR) * HOUR - 2 * HOUR;
  const epochs: number[] = [];

  before(async () => {
    t = await startTestBackend();
    const store = t.backend.services.store;
    for (const [id, name] of [
      ['con_north', 'North desk'],
      ['con_south', 'South desk'],
    ] as const) {
      await store.consoles.insert({
        id,
        name,
        channel: 'branch-kiosk',
        site: 'Leeds',
        publicJwk: '{}',
        jkt: `jkt-${id}`,
        enrolledAt: start,
        lastSeenAt: null,
        policyVersion: 1,
        revocationEpoch: 0,
        revokedAt: null,
        revokedReason: null,
      });
    }
    await store.operators.insert({
      id: 'op_ada',
      displayName: 'Ada Teller',
      roles: ['teller'],
      webauthnUserId: 'wa-ada',
      createdAt: start,
      failedAttempts: 0,
      revokedAt: null,
      revokedReason: null,
    });
    // First hour: ten revocations acknowledged by both consoles in 10, 20, … 100 ms (and 5 ms by the other);
    // second hour: one acknowledged in 700 ms by one console and never by the other.
    for (let i = 0; i < 10; i++) {
      const at = start + 60_000 * (i + 1);
      const r = await store.revocations.insert({
        kind: 'session',
        targetId: `ses_${i}`,
        operatorId: 'op_ada',
        consoleId: 'con_north',
        reason: 'test',
        actor: 'operator:op_ada',
        at,
      });
      epochs.push(r.epoch);
      await store.revocations.recordDeliveries(r.epoch, ['con_north', 'con_south'], at);
      await store.revocations.recordAck('con_north', r.epoch, at + 10 * (i + 1));
      await store.revocations.recordAck('con_south', r.epoch, at + 5);
    }
    const late = await store.revocations.insert({
      kind: 'console',
      targetId: 'con_south',
      operatorId: null,
      consoleId: 'con_south',
      reason: 'stolen',
      actor: 'operator:op_ada',
      at: start + HOUR + 60_000,
    });
    epochs.push(late.epoch);
    await store.revocations.recordDeliveries(late.epoch, ['con_north', 'con_south'], late.at);
    await store.revocations.recordAck('con_north', late.epoch, late.at + 700);
  });
  after(() => t.stop());

  it('lists revocations newest first with names, who did it, and how far each reached', async () => {
    const page = (await get('/v1/admin/revocations?limit=5')) as {
      revocations: {
        epoch: number;
        kind: string;
        deliveries: { sent: number; acknowledged: number; maxAckMs: number | null };
      }[];
      names: { consoles: Record<string, { name: string }>; operators: Record<string, string> };
      page: { next: string | null };
    };
    assert.deepEqual(
      page.revocations.map((r) => r.epoch),
      [...epochs].reverse().slice(0, 5),
    );
    assert.deepEqual(page.revocations[0]?.deliveries, { sent: 2, acknowledged: 1, maxAckMs: 700 });
    assert.deepEqual(page.revocations[1]?.deliveries, { sent: 2, acknowledged: 2, maxAckMs: 100 });
    assert.equal(page.names.consoles.con_south?.name, 'South desk');
    assert.equal(page.names.operators.op_ada, 'Ada Teller');
    assert.notEqual(page.page.next, null);
  });

  it('filters revocations by the console’s name and by a time window', async () => {
    const byName = (await get('/v1/admin/revocations?target=south%20desk')) as { revocations: { epoch: number }[] };
    assert.deepEqual(
      byName.revocations.map((r) => r.epoch),
      [epochs.at(-1)],
    );
    const secondHour = (await get(`/v1/admin/revocations?from=${start + HOUR}&to=${start + 2 * HOUR}`)) as {
      revocations: { epoch: number }[];
    };
    assert.deepEqual(
      secondHour.revocations.map((r) => r.epoch),
      [epochs.at(-1)],
    );
  });

  it('draws revocation propagation per hour as p50 and p99 of the consoles’ acknowledgements', async () => {
    const stats = (await get(`/v1/admin/stats?from=${start}&to=${start + 2 * HOUR}&bucketMinutes=60`)) as {
      propagation: { start: number; acknowledgements: number; p50Ms: number | null; p99Ms: number | null }[];
      revocations: { epoch: number; maxAckMs: number | null; acknowledged: number; deliveries: number }[];
    };
    // Hour 1: 5 ms ten times and 10 … 100 ms: the 10th of 20 sorted values is 5, the 20th (p99) is 100.
    assert.deepEqual(stats.propagation, [
      { start, acknowledgements: 20, p50Ms: 5, p99Ms: 100, maxMs: 100 },
      { start: start + HOUR, acknowledgements: 1, p50Ms: 700, p99Ms: 700, maxMs: 700 },
    ]);
    assert.equal(stats.revocations.length, 11);
    assert.deepEqual(stats.revocations.at(-1), {
      epoch: epochs.at(-1),
      kind: 'console',
      targetId: 'con_south',
      at: start + HOUR + 60_000,
      deliveries: 2,
      acknowledged: 1,
      maxAckMs: 700,
    });
  });

  it('a chart bar’s click-through: several event types, one origin, a time window; an unknown type refused', async () => {
    const events = t.backend.services.events;
    await events.record({ type: 'admin-action', subject: {}, outcome: 'success', reasons: ['insights-test'] });
    await events.record({
      type: 'operator-created',
      subject: { operator: 'op_ada' },
      outcome: 'success',
      reasons: ['insights-test'],
    });
    const all = (await get('/v1/admin/events?sort=received&limit=100')) as { events: { type: string; time: number }[] };
    const from = Math.min(...all.events.map((e) => e.time));
    const page = (await get(
      `/v1/admin/events?sort=received&type=admin-action,operator-created&origin=backend&from=${from}&to=${Date.now() + 1}`,
    )) as { events: { type: string; origin: string }[] };
    assert.ok(page.events.some((e) => e.type === 'admin-action'));
    assert.ok(page.events.some((e) => e.type === 'operator-created'));
    assert.ok(page.events.every((e) => ['admin-action', 'operator-created'].includes(e.type)));
    assert.ok(page.events.every((e) => e.origin === 'backend'));
    const none = (await get(`/v1/admin/events?sort=received&type=admin-action&from=${from - 10_000}&to=${from}`)) as {
      events: unknown[];
    };
    assert.equal(none.events.length, 0);
    assertError(
      await t.admin.request('GET', '/v1/admin/events?sort=received&type=admin-action,not-a-type'),
      400,
      'SCHEMA_INVALID',
    );
  });

  it('counts a list’s matches up to 10,000, then says "more than"', async () => {
    const db = kyselyOf(t.backend.services.store);
    assert.ok(db !== undefined);
    // 10,001 operators in one statement (a recursive series both engines understand).
    await sql`INSERT INTO operators (id, display_name, roles, webauthn_user_id, created_at, failed_attempts)
      WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < 10000)
      SELECT 'op_cap' || CAST(i AS TEXT), 'Capped ' || CAST(i AS TEXT), '["teller"]', 'wa-cap' || CAST(i AS TEXT), ${start}, 0 FROM s`.execute(
      db,
    );
    const many = (await get('/v1/admin/operators?q=capped&limit=5')) as { total: number; totalAtLeast: boolean };
    assert.deepEqual([many.total, many.totalAtLeast], [10_000, true]);
    const few = (await get('/v1/admin/operators?q=ada&limit=5')) as { total: number; totalAtLeast: boolean };
    assert.deepEqual([few.total, few.totalAtLeast], [1, false]);
  });
});
