import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eventTypeUri } from '../../shared/events.js';
import type { TestConsole } from '../helpers/backend-harness.js';
import { openRawDatabase } from '../helpers/raw-database.js';
import { type Json, type TestBackend, withBackendAndConsole } from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';

/** Opens the SSE stream and collects parsed events until `until` says stop. */
async function follow(
  t: TestBackend,
  query: string,
  until: (events: Json[]) => boolean,
  trigger: () => Promise<void>,
): Promise<Json[]> {
  const controller = new AbortController();
  const response = await fetch(`${t.url}/v1/admin/events/stream${query}`, {
    headers: { authorization: `Bearer ${t.admin.token}` },
    signal: controller.signal,
  });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /text\/event-stream/);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  const events: Json[] = [];
  let buffer = '';
  let triggered = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = frame.split('\n').find((l) => l.startsWith('data: '));
        if (data) events.push(JSON.parse(data.slice(6)));
        if (frame.startsWith(': connected') && !triggered) {
          triggered = true;
          await trigger();
        }
      }
      if (until(events)) break;
    }
  } finally {
    controller.abort();
  }
  return events;
}

describe('the audit trail', () => {
  let t: TestBackend;
  let console: TestConsole;
  withBackendAndConsole((b, c) => ((t = b), (console = c)));

  it('streams a sign-in to a live follower filtered by type, as it happens', async () => {
    const { operatorId, authenticator } = await enrolOperator(t.admin, console);
    const events = await follow(
      t,
      `?type=session-established&operator=${operatorId}`,
      (e) => e.length >= 1,
      async () => {
        const result = await signIn(console, authenticator);
        assert.equal(result.status, 200);
      },
    );
    assert.equal(events[0].type, 'session-established');
    assert.equal(events[0].subject.operator, operatorId);
    assert.equal(events[0].subject.console, console.id);
    assert.equal(events[0].assurance.level, 'verified');
    assert.equal(events[0].origin, 'backend');
    assert.ok(events[0].cursor > 0);
    assert.equal(
      eventTypeUri('session-established'),
      'https://schemas.openid.net/secevent/caep/event-type/session-established',
    );
  });

  it('replays what a follower missed after its last event id, then carries on live', async () => {
    const page = (await t.admin.ok('GET', '/v1/admin/events?limit=1')) as Json;
    const first = page.events[0].cursor as number;
    const events = await follow(
      t,
      `?after=${first}`,
      (e) => e.length >= 3,
      () => Promise.resolve(),
    );
    assert.ok(events.every((e) => e.cursor > first));
    assert.deepEqual(
      events.map((e) => e.cursor),
      [...events.map((e) => e.cursor)].sort((a, b) => a - b),
    );
  });

  it('answers queries by operator, console, session, type and time range', async () => {
    const { operatorId, authenticator } = await enrolOperator(t.admin, console, { displayName: 'Query Person' });
    const before = Date.now();
    const session = ((await signIn(console, authenticator)).body as Json).session;
    const byOperator = (await t.admin.ok('GET', `/v1/admin/events?operator=${operatorId}`)) as Json;
    assert.ok(byOperator.events.length >= 3);
    assert.ok(byOperator.events.every((e: Json) => e.subject.operator === operatorId));
    const bySession = (await t.admin.ok('GET', `/v1/admin/events?session=${session.id as string}`)) as Json;
    assert.deepEqual(
      bySession.events.map((e: Json) => e.type),
      ['session-established'],
    );
    const inRange = (await t.admin.ok(
      'GET',
      `/v1/admin/events?console=${console.id}&from=${before}&to=${Date.now() + 1}`,
    )) as Json;
    assert.ok(inRange.events.length >= 1);
    assert.ok(inRange.events.every((e: Json) => e.time >= before));
    const bad = await t.admin.request('GET', '/v1/admin/events?type=not-a-type');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'SCHEMA_INVALID');
  });

  it('verifies the backend chain, and shows an edit made behind its back', async () => {
    const intact = (await t.admin.ok('GET', '/v1/admin/events/verify?origin=backend')) as Json;
    assert.equal(intact.intact, true, JSON.stringify(intact.problems));
    assert.ok(intact.checked > 5);

    const db = await openRawDatabase(t);
    const row = (await db.get<{ seq: number; body: string }>(
      "SELECT seq, body FROM events WHERE origin = 'backend' AND type = 'session-established' LIMIT 1",
    )) as { seq: number; body: string };
    await db.run(
      "UPDATE events SET body = ? WHERE origin = 'backend' AND seq = ?",
      row.body.replace('"verified"', '"hardware"'),
      row.seq,
    );
    await db.close();

    const tampered = (await t.admin.ok('GET', '/v1/admin/events/verify?origin=backend')) as Json;
    assert.equal(tampered.intact, false);
    assert.deepEqual(tampered.problems[0], { seq: row.seq, problem: 'hash-mismatch' });
  });

  it('reports an unreadable stored body and refuses to verify a stream that does not exist', async () => {
    const db = await openRawDatabase(t);
    const row = (await db.get<{ seq: number }>(
      "SELECT seq FROM events WHERE origin = 'backend' ORDER BY seq DESC LIMIT 1",
    )) as { seq: number };
    await db.run("UPDATE events SET body = '{not json' WHERE origin = 'backend' AND seq = ?", row.seq);
    await db.close();
    const report = (await t.admin.ok('GET', '/v1/admin/events/verify?origin=backend')) as Json;
    assert.equal(report.intact, false);
    assert.ok(report.problems.some((p: Json) => p.seq === row.seq && p.problem === 'body-unreadable'));
    assert.ok(report.problemCount >= 2);
    const unknown = await t.admin.request('GET', '/v1/admin/events/verify?origin=con_nobody');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, 'NOT_FOUND');
  });
});
