import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AssuranceEvent } from '../../shared/events.js';
import { startTestBackend, TestConsole, httpJson, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { ConformanceReceiver, type ReceivedSet } from '../helpers/ssf-receiver.js';

const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
const BATON = 'urn:baton:event:';
const POLL = 'urn:ietf:rfc:8936';

/**
 * A resume has a CAEP type only when the backend checked it online (CAEP `session-presented`). A console's
 * offline resume, and the backend's own record of it (reason `offline-grace`), go only to streams that asked for
 * Baton's `urn:baton:event:session-resumed` (issue 13; docs/shared-signals.md).
 */
describe('Shared Signals transmitter: online and offline resumes', () => {
  let t: TestBackend;
  let issuer: string;
  let token: string;
  let audience: string;

  before(async () => {
    t = await startTestBackend({ ssf: { retryBaseMs: 20, retryMaxMs: 200 } });
    issuer = t.backend.adminOrigin;
    const issued = (await t.admin.ok('POST', '/v1/admin/ssf/receivers', {
      name: 'Resume watcher',
      scopes: ['ssf.manage', 'ssf.read'],
    })) as Json;
    token = issued.token as string;
    audience = issued.receiver.audience as string;
  });
  after(() => t.stop());

  /** A poll stream asking for `events`, and a conformance receiver that drains it. */
  async function pollStream(events: string[]) {
    const created = await httpJson(`${t.url}/ssf/streams`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: JSON.stringify({ delivery: { method: POLL }, events_requested: events }),
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const stream = created.body as Json;
    assert.deepEqual([...(stream.events_delivered as string[])].sort(), [...events].sort());
    const receiver = new ConformanceReceiver({ issuer, audience, jwksUri: `${t.url}/ssf/jwks.json` });
    const endpoint = stream.delivery.endpoint_url as string;
    const drain = (done: (sets: ReceivedSet[]) => boolean, what: string) =>
      receiver.drainPoll(endpoint, token, done, what);
    return { drain };
  }

  async function deliver(console: TestConsole, events: AssuranceEvent[]): Promise<void> {
    const socket = await console.connect();
    const last = Math.max(...events.map((e) => e.seq));
    socket.send({ type: 'events', events });
    await socket.next('events-ack', (m) => m.upToSeq >= last);
    await socket.close();
  }

  const sessionOf = (set: ReceivedSet) => (set.claims.sub_id as Json).session?.id as string | undefined;
  const userOf = (set: ReceivedSet) => (set.claims.sub_id as Json).user?.sub as string | undefined;

  it('an offline resume reaches only the stream that asked for Baton’s session-resumed, never as session-presented', async () => {
    const caep = await pollStream([`${CAEP}session-presented`, `${CAEP}session-revoked`]);
    const baton = await pollStream([`${BATON}session-resumed`, `${BATON}operator-revoked`]);

    const console = await TestConsole.enrol(t.url, t.admin);
    const { operatorId, authenticator } = await enrolOperator(t.admin, console, { displayName: 'Offline Ola' });
    const signed = await signIn(console, authenticator);
    assert.equal(signed.status, 200, JSON.stringify(signed.body));
    const session = (signed.body as Json).session.id as string;

    // The console locks, then resumes offline (it verified the operator against the cached key): the real backend
    // accepts the resume inside the grace and records its own session-resumed, reason offline-grace.
    await deliver(console, [
      console.nextEvent({
        type: 'session-locked',
        subject: { console: console.id, session },
        reasons: ['idle-timeout'],
      }),
      console.nextEvent({
        type: 'session-resumed',
        subject: { console: console.id, session },
        reasons: ['offline-grace'],
      }),
    ]);
    assert.equal((await t.backend.store.sessions.get(session))?.state, 'active', 'the offline resume applied');
    const recorded = await t.backend.events.query({ type: 'session-resumed', session, limit: 10 });
    assert.ok(
      recorded.some((e) => e.origin === 'backend' && e.reasons.includes('offline-grace')),
      "the backend's own record of the offline resume",
    );

    // A marker after it for each stream: the operator revoked (CAEP session-revoked; Baton's operator-revoked).
    await t.admin.ok('POST', `/v1/admin/operators/${operatorId}/revoke`, { reason: 'marker' });
    const toCaep = await caep.drain(
      (sets) => sets.some((s) => s.type === `${CAEP}session-revoked` && sessionOf(s) === session),
      'the CAEP marker',
    );
    const toBaton = await baton.drain(
      (sets) => sets.some((s) => s.type === `${BATON}operator-revoked` && userOf(s) === operatorId),
      'the Baton marker',
    );

    assert.deepEqual(
      toCaep.filter((s) => sessionOf(s) === session).map((s) => s.type),
      [`${CAEP}session-revoked`],
      'the CAEP stream got no session-presented (nor any Baton URI) for the offline resume',
    );
    const resumed = toBaton.filter((s) => s.type === `${BATON}session-resumed` && sessionOf(s) === session);
    const fromBackend = resumed.find((s) => s.event.origin === 'backend');
    assert.ok(fromBackend, "the backend's record of the offline resume went to the Baton stream");
    assert.ok((fromBackend.event.reasons as string[]).includes('offline-grace'));
    assert.ok(
      resumed.some((s) => s.event.origin === console.id),
      "and the console's own report of it, as before",
    );
  });

  it('an online resume within the continuity window is sent as CAEP session-presented, not as Baton’s URI', async () => {
    const caep = await pollStream([`${CAEP}session-presented`, `${CAEP}session-revoked`]);
    const baton = await pollStream([`${BATON}session-resumed`, `${BATON}operator-revoked`]);

    const console = await TestConsole.enrol(t.url, t.admin);
    const { operatorId, authenticator } = await enrolOperator(t.admin, console, { displayName: 'Online Oli' });
    const first = await signIn(console, authenticator);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const session = (first.body as Json).session.id as string;
    // The same operator signs in again on the same console, inside the window: the backend resumes the session.
    const again = await signIn(console, authenticator);
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal((again.body as Json).session.id, session, 'the same session, resumed');
    const recorded = await t.backend.events.query({ type: 'session-resumed', session, limit: 10 });
    assert.ok(recorded.some((e) => e.origin === 'backend' && e.reasons.includes('within-continuity-window')));

    await t.admin.ok('POST', `/v1/admin/operators/${operatorId}/revoke`, { reason: 'marker' });
    const toCaep = await caep.drain(
      (sets) => sets.some((s) => s.type === `${CAEP}session-revoked` && sessionOf(s) === session),
      'the CAEP marker',
    );
    const toBaton = await baton.drain(
      (sets) => sets.some((s) => s.type === `${BATON}operator-revoked` && userOf(s) === operatorId),
      'the Baton marker',
    );

    const presented = toCaep.filter((s) => s.type === `${CAEP}session-presented` && sessionOf(s) === session);
    assert.equal(presented.length, 1, 'one session-presented for the online resume');
    const [set] = presented;
    assert.ok(set);
    assert.equal(userOf(set), operatorId);
    assert.equal(typeof set.event.acr, 'string');
    assert.ok(Array.isArray(set.event.amr) && (set.event.amr as string[]).length > 0);
    assert.equal(set.event.initiating_entity, 'user');
    assert.deepEqual(
      toBaton.filter((s) => s.type === `${BATON}session-resumed` && sessionOf(s) === session),
      [],
      'the online resume is not sent as Baton’s session-resumed',
    );
  });
});
