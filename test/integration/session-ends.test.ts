import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestBackend, TestConsole, assertError, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { toOcsf } from '../../backend/siem/ocsf.js';
import { DEFAULT_POLICY } from '../../shared/policy.js';
import type { StoredEvent } from '../../shared/events.js';

/**
 * No silent ends (issue 13, docs/siem.md "No silent ends"): the end paths that no other test
 * asserted — eviction by the session limit, an admin ending a session, an expiry the console
 * observed, and a suspended session whose continuity window passed — each driven through the real backend as a console and an admin
 * would, checked for the event and reason the security team sees (and the OCSF record the SIEM
 * export makes of it) and for what the console is told.
 */

const KIOSK = DEFAULT_POLICY.channels['branch-kiosk']!;

/** The SIEM's view of an end: OCSF Authentication (3002), 2 Logoff, carrying the session and operator. */
function assertLogoff(event: StoredEvent, operatorId: string, sessionId: string): void {
  const record = toOcsf(event, { productVersion: 'test' });
  assert.equal(record.class_uid, 3002);
  assert.equal(record.activity_id, 2);
  assert.equal(record.type_uid, 300202);
  assert.deepEqual((record['session'] as Json)?.uid, sessionId);
  assert.deepEqual((record['user'] as Json)?.uid, operatorId);
  assert.equal((record['unmapped'] as Json)?.baton?.type, event.type);
  assert.deepEqual((record['unmapped'] as Json)?.baton?.reasons, event.reasons);
}

describe('no silent ends: every way a session ends is an event the SIEM sees', () => {
  let t: TestBackend;
  let now = Date.now();
  before(async () => {
    t = await startTestBackend({}, { clock: () => now });
  });
  after(() => t?.stop());

  /** A console enrolled now whose signed requests follow the backend's clock (so time can jump). */
  async function console(channel = 'branch-kiosk'): Promise<TestConsole> {
    const enrolled = await TestConsole.enrol(t.url, t.admin, channel);
    return new TestConsole(enrolled.url, enrolled.key, enrolled.id, () => now);
  }

  async function endsOf(sessionId: string): Promise<StoredEvent[]> {
    const events = await t.backend.events.query({ session: sessionId, limit: 100 });
    return events.filter((e) => ['session-ended', 'session-expired', 'session-revoked'].includes(e.type));
  }

  it('a sign-in past the console’s session limit ends the oldest suspended session: session-ended (evicted-by-session-limit), and the console is told', async () => {
    // Operators get their passkeys at an enrolment desk (a contact-centre console, whose limit they stay under).
    const desk = await console('contact-centre');
    const kiosk = await console();
    const operators = [];
    for (let i = 0; i <= KIOSK.maxSessions; i++) {
      operators.push(await enrolOperator(t.admin, desk, { displayName: `Teller ${i}` }));
    }
    const socket = await kiosk.connect();
    await socket.next('welcome');

    // maxSessions operators sign in one after another at the kiosk: each suspends the one before.
    const sessions: string[] = [];
    for (const operator of operators.slice(0, KIOSK.maxSessions)) {
      now += 1000;
      const answer = await signIn(kiosk, operator.authenticator);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.deepEqual(answer.body.evicted, [], 'nobody is evicted while the kiosk is within its limit');
      sessions.push(answer.body.session.id as string);
    }
    const oldest = sessions[0]!;
    assert.deepEqual(await endsOf(oldest), []);

    // One more: the oldest suspended session goes.
    now += 1000;
    const answer = await signIn(kiosk, operators[KIOSK.maxSessions]!.authenticator);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.deepEqual(answer.body.evicted, [oldest], 'the sign-in answer names the evicted session');

    // What the security team sees: one session-ended, reason evicted-by-session-limit, the session's subject.
    const ends = await endsOf(oldest);
    assert.equal(ends.length, 1, JSON.stringify(ends));
    assert.equal(ends[0]!.type, 'session-ended');
    assert.deepEqual(ends[0]!.reasons, ['evicted-by-session-limit']);
    assert.equal(ends[0]!.origin, 'backend');
    assert.deepEqual(ends[0]!.subject, { operator: operators[0]!.operatorId, console: kiosk.id, session: oldest });
    assertLogoff(ends[0]!, operators[0]!.operatorId, oldest);
    const stored = await t.backend.store.sessions.get(oldest);
    assert.equal(stored?.state, 'ended');
    assert.equal(stored?.endReason, 'evicted-by-session-limit');
    // Only the oldest: the other suspended sessions live on.
    for (const id of sessions.slice(1)) assert.deepEqual(await endsOf(id), [], id);

    // What the console is told: an end-session command for it, and the session is no longer served.
    const command = await socket.next('command', (m) => m.sessionId === oldest);
    assert.equal(command.command, 'end-session');
    assert.equal(command.reason, 'evicted-by-session-limit');
    socket.send({ type: 'ack', of: 'command', commandId: command.commandId });
    assertError(await kiosk.request('POST', `/v1/sessions/${oldest}/token`, {}), 409, 'SESSION_NOT_ACTIVE');
    await socket.close();
  });

  it('an admin ends a session through the admin API: session-ended (ended-by-admin) with reason_admin, and the console is told', async () => {
    const kiosk = await console();
    const { operatorId, authenticator } = await enrolOperator(t.admin, kiosk, { displayName: 'Ida Admin-Ended' });
    now += 1000;
    const signedIn = await signIn(kiosk, authenticator);
    assert.equal(signedIn.status, 200, JSON.stringify(signedIn.body));
    const sessionId = signedIn.body.session.id as string;
    const socket = await kiosk.connect();
    await socket.next('welcome');

    now += 1000;
    const ended = await t.admin.ok('POST', `/v1/admin/sessions/${sessionId}/end`, { reason: 'shift over' });
    assert.equal(ended.session.id, sessionId);
    assert.equal(ended.session.state, 'ended');

    const ends = await endsOf(sessionId);
    assert.equal(ends.length, 1, JSON.stringify(ends));
    assert.equal(ends[0]!.type, 'session-ended');
    assert.deepEqual(ends[0]!.reasons, ['ended-by-admin']);
    assert.equal(ends[0]!.detail?.['reason_admin'], 'shift over', 'the admin’s words travel as CAEP reason_admin');
    assert.deepEqual(ends[0]!.subject, { operator: operatorId, console: kiosk.id, session: sessionId });
    assertLogoff(ends[0]!, operatorId, sessionId);
    assert.equal((await t.backend.store.sessions.get(sessionId))?.endReason, 'ended-by-admin');
    // The admin's action is on the trail too, naming who did it.
    const actions = (await t.backend.events.query({ session: sessionId, type: 'admin-action', limit: 10 })).filter(
      (e) => e.reasons.includes('session-ended'),
    );
    assert.equal(actions.length, 1);
    assert.equal(actions[0]!.detail?.['reason'], 'shift over');
    assert.equal(typeof actions[0]!.detail?.['actor'], 'string');

    // The console is told at once, and the session is no longer served. It is told a stable code
    // (docs/protocol.md "Commands"), never the admin's words: those stay in the two events above.
    const command = await socket.next('command', (m) => m.sessionId === sessionId);
    assert.equal(command.command, 'end-session');
    assert.equal(command.reason, 'ended-by-admin');
    assert.ok(!JSON.stringify(command).includes('shift over'), JSON.stringify(command));
    socket.send({ type: 'ack', of: 'command', commandId: command.commandId });
    assertError(await kiosk.request('POST', `/v1/sessions/${sessionId}/token`, {}), 409, 'SESSION_NOT_ACTIVE');
    // Ending it again is refused, and records nothing more.
    assertError(
      await t.admin.request('POST', `/v1/admin/sessions/${sessionId}/end`, { reason: 'again' }),
      409,
      'SESSION_NOT_ACTIVE',
    );
    assert.equal((await endsOf(sessionId)).length, 1);
    await socket.close();
  });

  it('a command stored before the reason codes, still unacknowledged, reaches the console as ended-by-admin, not as the admin’s text', async () => {
    const kiosk = await console();
    const { authenticator } = await enrolOperator(t.admin, kiosk, { displayName: 'Otto Older-Backend' });
    now += 1000;
    const signedIn = await signIn(kiosk, authenticator);
    assert.equal(signedIn.status, 200, JSON.stringify(signedIn.body));
    const sessionId = signedIn.body.session.id as string;
    // What the backend stored for an admin's end before the codes: the admin's own words.
    await t.backend.store.commands.insert({
      id: 'cmd_0123456789abcdef0123456789abcdef',
      consoleId: kiosk.id,
      sessionId,
      reason: 'Forgot to sign out, call Otto',
      createdAt: now,
    });
    // Re-sent after the console's hello until acknowledged: as the code.
    const socket = await kiosk.connect();
    await socket.next('welcome');
    const command = await socket.next('command', (m) => m.sessionId === sessionId);
    assert.equal(command.reason, 'ended-by-admin');
    assert.ok(!JSON.stringify(command).includes('Otto'), JSON.stringify(command));
    socket.send({ type: 'ack', of: 'command', commandId: command.commandId });
    await socket.close();
  });

  it('an expiry the console observed ends the session: session-expired, online (its end call) and offline (its journaled event)', async () => {
    const kiosk = await console();
    const { operatorId, authenticator } = await enrolOperator(t.admin, kiosk, { displayName: 'Eve Expired' });

    // Online: the console ends the session it saw expire with its end call (main/core/session-backend.ts).
    now += 1000;
    const online = (await signIn(kiosk, authenticator)).body.session.id as string;
    const ended = await kiosk.ok('POST', `/v1/sessions/${online}/end`, { reason: 'expired' });
    assert.equal(ended.session.state, 'expired');
    const onlineEnds = await endsOf(online);
    assert.equal(onlineEnds.length, 1, JSON.stringify(onlineEnds));
    assert.equal(onlineEnds[0]!.type, 'session-expired');
    assert.deepEqual(onlineEnds[0]!.reasons, ['expired']);
    assert.deepEqual(onlineEnds[0]!.subject, { operator: operatorId, console: kiosk.id, session: online });
    assertLogoff(onlineEnds[0]!, operatorId, online);

    // Offline: the console journals session-expired and delivers it once it is back.
    now += 1000;
    const offline = (await signIn(kiosk, authenticator)).body.session.id as string;
    const socket = await kiosk.connect();
    await socket.next('welcome');
    const journaled = kiosk.nextEvent({
      type: 'session-expired',
      subject: { operator: operatorId, console: kiosk.id, session: offline },
      outcome: 'info',
      reasons: ['expired'],
    });
    socket.send({ type: 'events', events: [journaled] });
    await socket.next('events-ack', (m) => m.upToSeq >= journaled.seq);
    await socket.close();
    const offlineEnds = (await endsOf(offline)).filter((e) => e.origin === 'backend');
    assert.equal(offlineEnds.length, 1, JSON.stringify(offlineEnds));
    assert.equal(offlineEnds[0]!.type, 'session-expired');
    assert.deepEqual(offlineEnds[0]!.reasons, ['expired', 'reported-by-console']);
    assert.equal(offlineEnds[0]!.detail?.['consoleEventId'], journaled.id);
    assertLogoff(offlineEnds[0]!, operatorId, offline);
    assert.equal((await t.backend.store.sessions.get(offline))?.state, 'expired');
    assertError(await kiosk.request('POST', `/v1/sessions/${offline}/token`, {}), 409, 'SESSION_NOT_ACTIVE');
  });

  it('a suspended session whose continuity window passed ends when its operator comes back: session-expired (continuity-window-elapsed), and a new session starts', async () => {
    const kiosk = await console();
    const ann = await enrolOperator(t.admin, kiosk, { displayName: 'Ann Early' });
    const bob = await enrolOperator(t.admin, kiosk, { displayName: 'Bob Late' });
    now += 1000;
    const first = await signIn(kiosk, ann.authenticator);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const annSession = first.body.session.id as string;
    now += 1000;
    const second = await signIn(kiosk, bob.authenticator);
    assert.deepEqual(second.body.suspended, [annSession], 'Bob’s sign-in suspends Ann’s session');
    const suspendedAt = now;

    // Ann is away longer than the kiosk's continuity window (but well within the session's lifetime).
    now = suspendedAt + KIOSK.continuitySeconds * 1000 + 1000;
    assert.ok(now < (await t.backend.store.sessions.get(annSession))!.expiresAt);
    assert.deepEqual(await endsOf(annSession), []);
    const back = await signIn(kiosk, ann.authenticator);
    assert.equal(back.status, 200, JSON.stringify(back.body));

    // What the console is told: not a resume, a new session; the old one is no longer served.
    assert.equal(back.body.resumed, false);
    assert.notEqual(back.body.session.id, annSession);
    assertError(await kiosk.request('POST', `/v1/sessions/${annSession}/token`, {}), 409, 'SESSION_NOT_ACTIVE');

    // What the security team sees: the suspended session expired, reason continuity-window-elapsed.
    const ends = await endsOf(annSession);
    assert.equal(ends.length, 1, JSON.stringify(ends));
    assert.equal(ends[0]!.type, 'session-expired');
    assert.deepEqual(ends[0]!.reasons, ['continuity-window-elapsed']);
    assert.deepEqual(ends[0]!.subject, { operator: ann.operatorId, console: kiosk.id, session: annSession });
    assertLogoff(ends[0]!, ann.operatorId, annSession);
    const stored = await t.backend.store.sessions.get(annSession);
    assert.equal(stored?.state, 'expired');
    assert.equal(stored?.endReason, 'continuity-window-elapsed');
    const established = await t.backend.events.query({
      session: back.body.session.id as string,
      type: 'session-established',
      limit: 10,
    });
    assert.equal(established.length, 1);
  });
});
