import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AssuranceEvent } from '../../shared/events.js';
import { CLOSE_CODES } from '../../shared/protocol.js';
import { TestConsole, startTestBackend, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { assertIntactStream } from '../helpers/console-stream.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { openRawDatabase, sessionWriteFault, type RawDatabase } from '../helpers/raw-database.js';

/**
 * A console sends its journal in order, several batches in flight. When the backend refuses one
 * ("nothing from this batch was stored; send them again"), a later batch of the same connection
 * stored after it would move the console's head past the refused events: the security team would be
 * shown an `integrity-sequence-gap` the console never caused, and the next welcome's `ackedSeq` would
 * have the console drop the refused events from its journal, lost for good. Here, nothing sent on the
 * connection after the refused batch is stored, and the resend on the next connection is stored whole.
 */
describe("a console's batches after one the backend refused", () => {
  let t: TestBackend;
  let db: RawDatabase;

  before(async () => {
    t = await startTestBackend();
    db = await openRawDatabase(t);
    if (db.engine === 'sqlite') await db.exec('PRAGMA busy_timeout = 5000');
  });
  after(async () => {
    await db.close();
    await t.stop();
  });

  /** The database refuses to write this session, as a full disk would. */
  const fault = () => sessionWriteFault(db, 'test_order_fault');

  /**
   * The console's next connection: its welcome must acknowledge the `stored` events and none of the
   * refused ones (the agent drops from its journal what it acknowledges); the console then sends
   * `events`, everything after them, again in one batch. Its ack comes after every batch of the
   * refused connection was settled (one queue, in order), so what the backend holds then is final.
   */
  async function reconnectAndResend(c: TestConsole, stored: number, events: AssuranceEvent[]): Promise<void> {
    const socket = await c.connect();
    const { ackedSeq } = await socket.next('welcome');
    assert.equal(ackedSeq, stored, 'the welcome acknowledges none of the events the backend refused');
    socket.send({ type: 'events', events });
    const ack = await socket.next('events-ack');
    assert.deepEqual(
      { upToSeq: ack.upToSeq, findings: ack.findings },
      { upToSeq: stored + events.length, findings: [] },
      'the resend is stored whole, with no finding',
    );
    await socket.close();
  }

  it('stores nothing after a batch the database refused: the welcome acknowledges none of its events, and the resend fills no gap', async () => {
    const c = await TestConsole.enrol(t.url, t.admin);
    const { authenticator } = await enrolOperator(t.admin, c, { displayName: 'Order Olga' });
    const signedIn = await signIn(c, authenticator);
    assert.equal(signedIn.status, 200, JSON.stringify(signedIn.body));
    const sessionId = (signedIn.body as Json).session.id as string;
    await fault().inject(sessionId);

    const a = [
      c.nextEvent({ type: 'agent-online', reasons: ['started'] }),
      c.nextEvent({
        type: 'session-locked',
        subject: { console: c.id, session: sessionId },
        reasons: ['operator-locked'],
      }),
    ];
    const b = [
      c.nextEvent({ type: 'agent-offline', reasons: ['connection-lost'] }),
      c.nextEvent({ type: 'agent-online', reasons: ['started'] }),
    ];
    const socket = await c.connect();
    await socket.next('welcome');
    // Both in flight at once, as the agent sends its backlog.
    socket.send({ type: 'events', events: a });
    socket.send({ type: 'events', events: b });
    assert.equal((await socket.next('error')).code, 'STORAGE_UNAVAILABLE');
    assert.equal((await socket.closed).code, CLOSE_CODES.INTERNAL);
    assert.equal(
      socket.received.some((m) => m.type === 'events-ack'),
      false,
      'no batch of the connection was acknowledged',
    );

    // The database is back. The console's next welcome acknowledges nothing of A, nor of B.
    await fault().heal();
    await reconnectAndResend(c, 0, [...a, ...b]);
    // What the security team sees: the four events once, in order, no gap, no late event, nothing flagged.
    await assertIntactStream(t.admin, c.id, 4);
    const sessions = (await t.admin.ok('GET', `/v1/admin/sessions?console=${c.id}`)) as Json;
    assert.equal(
      sessions.sessions.find((s: Json) => s.id === sessionId)?.state,
      'suspended',
      'A took effect once stored',
    );
  });

  it('stores nothing sent after a batch refused as malformed (read while the socket closes)', async () => {
    const c = await TestConsole.enrol(t.url, t.admin);
    const first = c.nextEvent({ type: 'agent-online', reasons: ['started'] });
    const a = [c.nextEvent({ type: 'agent-offline', reasons: ['connection-lost'] })];
    const b = [
      c.nextEvent({ type: 'agent-online', reasons: ['started'] }),
      c.nextEvent({ type: 'agent-offline', reasons: ['connection-lost'] }),
    ];
    const socket = await c.connect();
    await socket.next('welcome');
    // Acknowledged: the hello's answers are all sent, nothing the console sends now waits for them.
    socket.send({ type: 'events', events: [first] });
    await socket.next('events-ack', (m) => m.upToSeq === 1);
    // A arrives damaged (a reason the schema refuses); B, sent right behind it, is read before the console's close frame.
    socket.send({ type: 'events', events: a.map((e) => ({ ...e, reasons: ['Not A Reason'] })) });
    socket.send({ type: 'events', events: b });
    assert.equal((await socket.next('error')).code, 'EVENT_SCHEMA_INVALID');
    assert.equal((await socket.closed).code, CLOSE_CODES.SCHEMA_INVALID);

    await reconnectAndResend(c, 1, [...a, ...b]);
    await assertIntactStream(t.admin, c.id, 4);
  });
});
