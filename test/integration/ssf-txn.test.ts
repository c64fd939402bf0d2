import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestBackend, TestConsole, httpJson, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { appKeyPair, exchange, publishPolicy, tellerPolicy } from '../helpers/action-token-fixtures.js';
import { ConformanceReceiver, type ReceivedSet } from '../helpers/ssf-receiver.js';

const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
const BATON = 'urn:baton:event:';

/**
 * Issue 13: `txn` links the SETs of one cause, and only those. A cause is what the backend commits in
 * one unit of work (an admin's revocation of an operator: `operator-revoked` and the `session-revoked`
 * of each live session), or a console's event and what the backend records for it. Two causes written
 * at the same moment by the same emitter get two `txn`s, and each `txn` is the id of an event in
 * Baton's log, so an auditor can follow a SET back to its cause.
 */
describe('Shared Signals: txn is the cause, not a time window', () => {
  let t: TestBackend;
  let receiver: ConformanceReceiver;

  before(async () => {
    t = await startTestBackend({ ssf: { retryBaseMs: 20, retryMaxMs: 200 } });
    const issued = (await t.admin.ok('POST', '/v1/admin/ssf/receivers', {
      name: 'Fraud platform',
      scopes: ['ssf.manage'],
    })) as Json;
    receiver = await new ConformanceReceiver({
      issuer: t.backend.adminOrigin,
      audience: issued.receiver.audience as string,
      jwksUri: `${t.url}/ssf/jwks.json`,
      expectAuthorization: 'Bearer fraud-secret',
    }).listen();
    const created = await httpJson(`${t.url}/ssf/streams`, {
      method: 'POST',
      headers: { authorization: `Bearer ${issued.token as string}` },
      body: JSON.stringify({
        delivery: {
          method: 'urn:ietf:rfc:8935',
          endpoint_url: receiver.url,
          authorization_header: 'Bearer fraud-secret',
        },
        events_requested: [
          `${CAEP}session-revoked`,
          `${BATON}operator-revoked`,
          `${BATON}session-locked`,
          `${BATON}session-suspended`,
        ],
      }),
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  });
  after(async () => {
    await receiver?.close();
    await t?.stop();
  });

  /** The SETs about `operatorId` (their subject's user). */
  const about = (operatorId: string): ReceivedSet[] =>
    receiver.accepted.filter((s) => (s.claims.sub_id as Json).user?.sub === operatorId);

  it('two operators revoked at the same moment: each revocation is one txn, the id of its operator-revoked event', async () => {
    const first = await TestConsole.enrol(t.url, t.admin);
    const second = await TestConsole.enrol(t.url, t.admin);
    const ada = await enrolOperator(t.admin, first, { displayName: 'Ada Teller' });
    const bob = await enrolOperator(t.admin, second, { displayName: 'Bob Teller' });
    await signIn(first, ada.authenticator);
    await signIn(second, bob.authenticator);

    // Both at once: the backend writes the two units one right after the other.
    await Promise.all([
      t.admin.ok('POST', `/v1/admin/operators/${ada.operatorId}/revoke`, { reason: 'left the bank' }),
      t.admin.ok('POST', `/v1/admin/operators/${bob.operatorId}/revoke`, { reason: 'card fraud inquiry' }),
    ]);
    await receiver.waitFor(
      () => [ada, bob].every((o) => about(o.operatorId).length === 2),
      15_000,
      'operator-revoked and session-revoked for both operators',
    );

    const { events } = (await t.admin.ok('GET', '/v1/admin/events?type=operator-revoked&limit=10')) as Json;
    for (const operator of [ada, bob]) {
      const sets = about(operator.operatorId);
      assert.deepEqual(sets.map((s) => s.type).sort(), [`${CAEP}session-revoked`, `${BATON}operator-revoked`]);
      const cause = (events as Json[]).find((e) => e.subject.operator === operator.operatorId);
      assert.ok(cause, `the operator-revoked event of ${operator.operatorId} is in the log`);
      for (const set of sets) assert.equal(set.claims.txn, cause.id, `${set.type} names its cause`);
    }
    assert.notEqual(about(ada.operatorId)[0]?.claims.txn, about(bob.operatorId)[0]?.claims.txn, 'two causes, two txns');

    // The log says it too: the session-revoked event names the operator-revoked event it followed.
    const revoked = (
      await t.admin.ok('GET', `/v1/admin/events?type=session-revoked&operator=${ada.operatorId}&limit=5`)
    ).events as Json[];
    assert.equal(revoked.length, 1);
    assert.equal(revoked[0].detail.causeEventId, about(ada.operatorId)[0]?.claims.txn);
  });

  it("a console's lock and the backend's suspension of the session it reports share the console event's id as txn", async () => {
    const console = await TestConsole.enrol(t.url, t.admin);
    const cleo = await enrolOperator(t.admin, console, { displayName: 'Cleo Teller' });
    const session = ((await signIn(console, cleo.authenticator)).body as Json).session.id as string;
    const socket = await console.connect();
    try {
      const locked = console.nextEvent({
        type: 'session-locked',
        subject: { console: console.id, operator: cleo.operatorId, session },
        outcome: 'info',
        reasons: ['idle'],
      });
      socket.send({ type: 'events', events: [locked] });
      await socket.next('events-ack', (m) => m.upToSeq >= locked.seq);
      await receiver.waitFor(
        () => about(cleo.operatorId).length === 2,
        15_000,
        "the console's session-locked and the backend's session-suspended",
      );
      const sets = about(cleo.operatorId);
      assert.deepEqual(sets.map((s) => s.type).sort(), [`${BATON}session-locked`, `${BATON}session-suspended`]);
      for (const set of sets) assert.equal(set.claims.txn, locked.id, `${set.type}: txn is the console's event`);
    } finally {
      await socket.close();
    }
  });

  it('causes committed together stay apart: two consoles’ locks, a burst of token exchanges', async () => {
    const consoles = [await TestConsole.enrol(t.url, t.admin), await TestConsole.enrol(t.url, t.admin)];
    const operators = [
      await enrolOperator(t.admin, consoles[0]!, { displayName: 'Dan Teller' }),
      await enrolOperator(t.admin, consoles[1]!, { displayName: 'Eve Teller' }),
    ];
    const signedIn = [
      (await signIn(consoles[0]!, operators[0]!.authenticator)).body as Json as Json,
      (await signIn(consoles[1]!, operators[1]!.authenticator)).body as Json as Json,
    ];
    const sockets = await Promise.all(consoles.map((c) => c.connect()));
    try {
      // Both locks at once: the backend may commit the two consoles' batches in one group.
      const locks = consoles.map((c, i) =>
        c.nextEvent({
          type: 'session-locked',
          subject: { console: c.id, operator: operators[i]!.operatorId, session: signedIn[i]!.session.id as string },
          outcome: 'info',
          reasons: ['idle'],
        }),
      );
      sockets.forEach((socket, i) => socket.send({ type: 'events', events: [locks[i]] }));
      await Promise.all(sockets.map((socket, i) => socket.next('events-ack', (m) => m.upToSeq >= locks[i]!.seq)));
      await receiver.waitFor(
        () => operators.every((o) => about(o.operatorId).length === 2),
        15_000,
        'both locks and both suspensions',
      );
      operators.forEach((o, i) => {
        for (const set of about(o.operatorId))
          assert.equal(set.claims.txn, locks[i]!.id, `${set.type} of console ${i}`);
      });
      const suspended = (await t.admin.ok('GET', '/v1/admin/events?type=session-suspended&origin=backend&limit=20'))
        .events as Json[];
      for (const o of operators) {
        const mine = suspended.filter((e) => e.subject.operator === o.operatorId);
        assert.equal(mine.length, 1);
        assert.equal(mine[0].detail.causeEventId, undefined, 'not linked to the other console’s cause');
      }
    } finally {
      await Promise.all(sockets.map((socket) => socket.close()));
    }

    // Token exchanges are journalled in groups (one unit for many requests): each is its own cause.
    await publishPolicy(t.admin, tellerPolicy((await appKeyPair()).publicJwk));
    const resumed = (await signIn(consoles[0]!, operators[0]!.authenticator)).body as Json;
    const answers = await Promise.all(
      Array.from({ length: 12 }, () => exchange(consoles[0]!, resumed.token as string, 'customer.view')),
    );
    for (const a of answers) assert.equal(a.status, 200, JSON.stringify(a.body));
    const issued = (await t.admin.ok('GET', '/v1/admin/events?type=action-token-issued&limit=50')).events as Json[];
    assert.equal(issued.length, 12);
    assert.deepEqual(
      issued.filter((e) => e.detail?.causeEventId !== undefined).map((e) => e.id),
      [],
      'no exchange is linked to another',
    );
  });

  it('a console cannot name a cause: its own detail.causeEventId is not read', async () => {
    const console = await TestConsole.enrol(t.url, t.admin);
    const fay = await enrolOperator(t.admin, console, { displayName: 'Fay Teller' });
    await signIn(console, fay.authenticator);
    const { events } = (await t.admin.ok('GET', '/v1/admin/events?type=session-established&limit=1')) as Json;
    const someoneElses = (events as Json[])[0].id as string;
    const socket = await console.connect();
    try {
      // A lock of no session the backend knows (so the backend records nothing), claiming another event as its cause.
      const claimed = console.nextEvent({
        type: 'session-locked',
        subject: { console: console.id, operator: fay.operatorId },
        outcome: 'info',
        reasons: ['idle'],
        detail: { causeEventId: someoneElses },
      });
      socket.send({ type: 'events', events: [claimed] });
      await socket.next('events-ack', (m) => m.upToSeq >= claimed.seq);
      await receiver.waitFor(
        () => receiver.accepted.some((s) => s.event.baton_event_id === claimed.id),
        15_000,
        'the console’s session-locked',
      );
      const set = receiver.accepted.find((s) => s.event.baton_event_id === claimed.id);
      assert.equal(set?.claims.txn, claimed.id, 'a console event is its own cause');
    } finally {
      await socket.close();
    }
  });
});
