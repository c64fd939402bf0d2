import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { canonicalJson } from '../../shared/canonical-json.js';
import { GENESIS_HASH, type AssuranceEvent, type EventDraft, type StoredEvent } from '../../shared/events.js';
import { DEFAULT_POLICY } from '../../shared/policy.js';
import { ConsoleKey } from '../../main/core/console-key.js';
import {
  httpJson,
  startTestBackend,
  TestConsole,
  type ConsoleSocket,
  type Json,
  type TestBackend,
} from '../helpers/backend-harness.js';
import { eventually } from '../helpers/console-stream.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';

type EventsAck = Extract<ConsoleSocket['received'][number], { type: 'events-ack' }>;

const MINUTE = 60_000;
const channel = DEFAULT_POLICY.channels['branch-kiosk'];
assert.ok(channel !== undefined);
const GRACE_MS = Math.min(channel.offlineGraceSeconds, channel.continuitySeconds) * 1000;

/**
 * What a console holding its own key can write into the audit trail and into the backend's session
 * state. The audit found that a console could send backend-only facts (a `session-established`
 * backdated by a year counted as a sign-in), that refused events still changed sessions, and that
 * an offline resume was bounded only by the console's own clock.
 */
describe('what the backend takes from a console', () => {
  let now = Date.now();
  let t: TestBackend;

  before(async () => {
    t = await startTestBackend({}, { clock: () => now });
  });
  after(() => t.stop());

  /** A console whose chain and signatures run on the test's clock. */
  class Console {
    seq = 0;
    prev = GENESIS_HASH;
    constructor(readonly c: TestConsole) {}
    get id() {
      return this.c.id;
    }
    event(draft: Partial<EventDraft>, time = now, seq = this.seq + 1): AssuranceEvent {
      const e: AssuranceEvent = {
        id: randomUUID(),
        seq,
        time,
        type: draft.type ?? 'agent-online',
        subject: draft.subject ?? { console: this.c.id },
        ...(draft.assurance === undefined ? {} : { assurance: draft.assurance }),
        outcome: draft.outcome ?? 'info',
        reasons: draft.reasons ?? [],
        ...(draft.detail === undefined ? {} : { detail: draft.detail }),
        prevHash: this.prev,
      };
      if (seq === this.seq + 1) {
        this.seq = seq;
        this.prev = createHash('sha256').update(canonicalJson(e)).digest('hex');
      }
      return e;
    }
  }

  /** Enrols a console on the test's clock (its signatures must fall inside the backend's window). */
  async function newConsole(): Promise<Console> {
    const key = ConsoleKey.generate();
    const { token } = (await t.admin.ok('POST', '/v1/admin/console-tokens', { channel: 'branch-kiosk' })) as Json;
    const body = JSON.stringify({ token, publicKey: key.publicJwk(), channel: 'branch-kiosk', name: 'trust test' });
    const path = '/v1/consoles/enrol';
    const result = await httpJson(`${t.url}${path}`, {
      method: 'POST',
      headers: key.signRequest({ consoleId: undefined, method: 'POST', path, body, now }),
      body,
    });
    assert.equal(result.status, 201, JSON.stringify(result.body));
    return new Console(new TestConsole(t.url, key, (result.body as Json).consoleId as string, () => now));
  }

  async function signedIn(c: Console, name: string): Promise<{ session: string; operator: string }> {
    const { authenticator, operatorId } = await enrolOperator(t.admin, c.c, { displayName: name });
    const result = await signIn(c.c, authenticator);
    assert.equal(result.status, 200, JSON.stringify(result.body));
    return { session: ((result.body as Json).session as { id: string }).id, operator: operatorId };
  }

  async function send(socket: ConsoleSocket, events: AssuranceEvent[]): Promise<EventsAck> {
    const before = socket.received.length;
    socket.send({ type: 'events', events });
    return socket.next('events-ack', (m) => socket.received.indexOf(m) >= before);
  }

  /** Connects, sends one batch, waits for its ack, disconnects. */
  async function deliver(c: Console, events: AssuranceEvent[]): Promise<EventsAck> {
    const socket = await c.c.connect();
    await socket.next('welcome');
    const ack = await send(socket, events);
    await socket.close();
    return ack;
  }

  const state = async (id: string) => (await t.backend.store.sessions.get(id))?.state;
  const stored = async (c: Console, seq: number): Promise<StoredEvent> => {
    const page = (await t.admin.ok('GET', `/v1/admin/events?origin=${c.id}&limit=1000`)) as { events: StoredEvent[] };
    const event = page.events.find((e) => e.seq === seq);
    assert.ok(event !== undefined, `event #${seq} of ${c.id} is stored`);
    return event;
  };
  const backendEvents = async (session: string, type: string): Promise<StoredEvent[]> =>
    ((await t.admin.ok('GET', `/v1/admin/events?origin=backend&session=${session}&type=${type}`)) as Json)
      .events as StoredEvent[];

  describe('events the backend refuses change no session', () => {
    it('a session-ended carried by a reused sequence number (EVENT_SEQUENCE_CONFLICT) leaves the session active', async () => {
      const c = await newConsole();
      const { session } = await signedIn(c, 'Conflict Cora');
      const first = c.event({ type: 'agent-online', reasons: ['started'] });
      await deliver(c, [first]);
      const forged = {
        ...first,
        id: randomUUID(),
        type: 'session-ended' as const,
        subject: { console: c.id, session },
      };
      const ack = await deliver(c, [{ ...forged, reasons: ['sign-out'] }]);
      assert.deepEqual(ack.findings, [{ code: 'EVENT_SEQUENCE_CONFLICT', seq: 1 }]);
      assert.equal(await state(session), 'active', 'the refused event did not end the session');
      assert.deepEqual(await backendEvents(session, 'session-ended'), []);
    });

    it('a session-resumed carried by a reused sequence number leaves a suspended session suspended', async () => {
      const c = await newConsole();
      const { session } = await signedIn(c, 'Conflict Carl');
      now += 1000;
      const lock = c.event({ type: 'session-locked', subject: { console: c.id, session }, reasons: ['idle-timeout'] });
      await deliver(c, [lock]);
      assert.equal(await state(session), 'suspended');
      const ack = await deliver(c, [
        { ...lock, id: randomUUID(), type: 'session-resumed', reasons: ['offline-grace'] },
      ]);
      assert.deepEqual(ack.findings, [{ code: 'EVENT_SEQUENCE_CONFLICT', seq: 1 }]);
      assert.equal(await state(session), 'suspended');
    });

    it('records a backend event for every session change a console causes, naming the console event', async () => {
      const c = await newConsole();
      const { session, operator } = await signedIn(c, 'Trail Tess');
      now += 1000;
      const lock = c.event({ type: 'session-locked', subject: { console: c.id, session }, reasons: ['os-lock'] });
      now += 1000;
      const resume = c.event({
        type: 'session-resumed',
        subject: { console: c.id, session },
        reasons: ['offline-grace'],
      });
      now += 1000;
      const end = c.event({ type: 'session-ended', subject: { console: c.id, session }, reasons: ['sign-out'] });
      const ack = await deliver(c, [lock, resume, end]);
      assert.deepEqual(ack.findings, []);
      assert.equal(await state(session), 'ended');
      const trail = [
        ...(await backendEvents(session, 'session-suspended')),
        ...(await backendEvents(session, 'session-resumed')).filter((e) => e.reasons.includes('reported-by-console')),
        ...(await backendEvents(session, 'session-ended')),
      ].sort((a, b) => a.cursor - b.cursor);
      assert.deepEqual(
        trail.map((e) => [e.type, e.reasons, e.detail?.consoleSeq, e.subject.operator]),
        [
          ['session-suspended', ['os-lock', 'reported-by-console'], 1, operator],
          ['session-resumed', ['offline-grace', 'reported-by-console'], 2, operator],
          ['session-ended', ['sign-out', 'reported-by-console'], 3, operator],
        ],
      );
      // Each backend event comes right after the console event that caused it.
      assert.ok(trail.every((e, i) => i === 0 || e.cursor > (trail[i - 1]?.cursor ?? 0)));
    });
  });

  describe('an offline resume is bounded by what the backend observed, not by the console clock', () => {
    it('a console that stayed connected cannot send, after the grace, a resume dated inside it', async () => {
      const c = await newConsole();
      const { session } = await signedIn(c, 'Connected Cleo');
      const socket = await c.c.connect();
      await socket.next('welcome');
      now += 1000;
      const lockedAt = now;
      await send(socket, [
        c.event({ type: 'session-locked', subject: { console: c.id, session }, reasons: ['idle-timeout'] }),
      ]);
      now += GRACE_MS + 10 * MINUTE;
      const ack = await send(socket, [
        c.event(
          { type: 'session-resumed', subject: { console: c.id, session }, reasons: ['offline-grace'] },
          lockedAt + MINUTE,
        ),
      ]);
      assert.deepEqual(ack.findings, [{ code: 'EVENT_SESSION_CHANGE_REFUSED', seq: 2 }]);
      assert.equal(await state(session), 'suspended', 'the backdated resume did not reactivate the session');
      assert.ok(
        (await stored(c, 2)).integrity.includes('session-change-refused'),
        'the stored resume is visibly marked',
      );
      await socket.close();
    });

    it('an offline resume counts only when the console was out of contact before the grace ran out', async () => {
      const c = await newConsole();
      const { session } = await signedIn(c, 'Seen Sam');
      now += 1000;
      const lockedAt = now;
      await deliver(c, [
        c.event({ type: 'session-locked', subject: { console: c.id, session }, reasons: ['idle-timeout'] }),
      ]);
      now += GRACE_MS + MINUTE;
      // In contact with the backend after the grace ran out (a connection, no events).
      const seen = await c.c.connect();
      await seen.next('welcome');
      await seen.close();
      now += MINUTE;
      const ack = await deliver(c, [
        c.event(
          { type: 'session-resumed', subject: { console: c.id, session }, reasons: ['offline-grace'] },
          lockedAt + MINUTE,
        ),
      ]);
      assert.deepEqual(ack.findings, [{ code: 'EVENT_SESSION_CHANGE_REFUSED', seq: 2 }]);
      assert.equal(await state(session), 'suspended');

      // The same resume from a console the backend has not heard from since before the grace ran out
      // is what a genuine offline resume looks like: applied, at the time it says.
      const o = await newConsole();
      const offline = await signedIn(o, 'Offline Olu');
      now += 1000;
      const lockedAtOffline = now;
      await deliver(o, [
        o.event({
          type: 'session-locked',
          subject: { console: o.id, session: offline.session },
          reasons: ['idle-timeout'],
        }),
      ]);
      now += MINUTE;
      const offlineResume = o.event({
        type: 'session-resumed',
        subject: { console: o.id, session: offline.session },
        reasons: ['offline-grace'],
      });
      now += GRACE_MS + 30 * MINUTE; // back online long after the grace
      const offlineAck = await deliver(o, [offlineResume]);
      assert.deepEqual(offlineAck.findings, []);
      assert.equal(await state(offline.session), 'active');
      assert.equal((await t.backend.store.sessions.get(offline.session))?.authTime, lockedAtOffline + MINUTE);
    });
  });

  describe('types, times and subjects a console may report', () => {
    it('refuses backend-only types from a console: flagged, never counted as a sign-in in /v1/admin/stats', async () => {
      const c = await newConsole();
      const { session, operator } = await signedIn(c, 'Forged Fin');
      const yearAgo = now - 365 * 24 * 60 * MINUTE;
      const ack = await deliver(c, [
        c.event(
          {
            type: 'session-established',
            subject: { operator, console: c.id, session },
            outcome: 'success',
            reasons: ['sign-in-allowed'],
          },
          yearAgo,
        ),
        c.event({ type: 'admin-action', subject: { operator }, outcome: 'success', reasons: ['operator-unlocked'] }),
        c.event({ type: 'integrity-chain-broken', subject: { console: c.id }, outcome: 'failure', reasons: [] }),
      ]);
      assert.deepEqual(
        ack.findings.filter((f) => f.code === 'EVENT_TYPE_NOT_ALLOWED').map((f) => f.seq),
        [1, 2, 3],
      );
      for (const seq of [1, 2, 3]) {
        const event = await stored(c, seq);
        assert.ok(event.integrity.includes('refused') && event.integrity.includes('type-not-allowed'), event.type);
        assert.equal(event.origin, c.id, 'the stored event names the console that sent it');
      }
      const stats = (await t.admin.ok(
        'GET',
        `/v1/admin/stats?from=${yearAgo - 60 * MINUTE}&to=${yearAgo + 60 * MINUTE}&bucketMinutes=60`,
      )) as Json;
      assert.equal(
        (stats.signIns as { success: number }[]).reduce((n, b) => n + b.success, 0),
        0,
        'the forged, backdated sign-in does not count',
      );
    });

    it('refuses an event dated beyond the clock skew after its arrival, and marks one dated before the previous event', async () => {
      const c = await newConsole();
      const ack = await deliver(c, [
        c.event({ type: 'agent-online', reasons: ['started'] }),
        c.event({ type: 'agent-offline', reasons: ['connection-lost'] }, now + 10 * MINUTE),
        c.event({ type: 'agent-online', reasons: ['reconnected'] }, now - 60 * MINUTE),
        c.event({ type: 'agent-online', reasons: ['reconnected'] }, now + 2 * MINUTE),
      ]);
      assert.deepEqual(ack.findings, [
        { code: 'EVENT_TIME_IN_FUTURE', seq: 2 },
        { code: 'EVENT_TIME_BACKDATED', seq: 3 },
      ]);
      assert.deepEqual((await stored(c, 2)).integrity, ['time-in-future', 'refused']);
      assert.deepEqual((await stored(c, 3)).integrity, ['time-before-previous']);
      assert.deepEqual((await stored(c, 4)).integrity, [], 'a clock a little ahead is within the skew');
    });

    it('marks subjects the console could not have witnessed and lets them change nothing', async () => {
      const other = await newConsole();
      const theirs = await signedIn(other, 'Elsewhere Eli');
      const c = await newConsole();
      const mine = await signedIn(c, 'Here Hana');
      const ack = await deliver(c, [
        // A session of another console.
        c.event({ type: 'session-ended', subject: { console: c.id, session: theirs.session }, reasons: ['sign-out'] }),
        // This console's session, but another operator.
        c.event({
          type: 'session-locked',
          subject: { console: c.id, session: mine.session, operator: theirs.operator },
          reasons: ['idle-timeout'],
        }),
        // An operator who never signed in here.
        c.event({
          type: 'sign-in-failed',
          subject: { console: c.id, operator: theirs.operator },
          outcome: 'failure',
          reasons: ['offline-grace-elapsed'],
        }),
        // The operator who did sign in here: fine.
        c.event({
          type: 'sign-in-failed',
          subject: { console: c.id, operator: mine.operator },
          outcome: 'failure',
          reasons: ['offline-grace-elapsed'],
        }),
      ]);
      assert.deepEqual(ack.findings, [
        { code: 'EVENT_SUBJECT_NOT_WITNESSED', seq: 1 },
        { code: 'EVENT_SUBJECT_NOT_WITNESSED', seq: 2 },
        { code: 'EVENT_SUBJECT_NOT_WITNESSED', seq: 3 },
      ]);
      for (const seq of [1, 2, 3]) assert.deepEqual((await stored(c, seq)).integrity, ['subject-not-witnessed']);
      assert.deepEqual((await stored(c, 4)).integrity, []);
      assert.equal(await state(theirs.session), 'active', 'another console’s session was not ended');
      assert.equal(await state(mine.session), 'active', 'a lock naming the wrong operator did not suspend the session');
    });
  });

  describe('a live follower that throws', () => {
    it('does not make a committed batch or a recorded fact look failed', async () => {
      const c = await newConsole();
      const unsubscribe = t.backend.events.subscribe({}, () => {
        throw new Error('a follower bug');
      });
      try {
        const failuresBefore = t.backend.events.listenerFailures;
        const ack = await deliver(c, [c.event({ type: 'agent-online', reasons: ['started'] })]);
        assert.equal(ack.upToSeq, 1, 'the console is told its batch is stored');
        const recorded = await t.backend.events.record({
          type: 'policy-changed',
          subject: {},
          outcome: 'success',
          reasons: [],
        });
        assert.ok(recorded.seq > 0, 'record() returns the stored event');
        // Followers are handed committed events after the commit (on PostgreSQL through the live feed, in
        // cursor order, which can follow the ack): the two failures are counted when they are handed over.
        await eventually(
          () => t.backend.events.listenerFailures >= failuresBefore + 2,
          'the two follower failures to be counted',
        );
      } finally {
        unsubscribe();
      }
    });
  });
});
