import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { startTestBackend, TestConsole, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { sweepExpiredSessions } from '../../backend/services/session-expiry-sweep.js';

describe('a session past its lifetime that no console closed', () => {
  let t: TestBackend | undefined;
  after(() => t?.stop());

  it('is closed by the backend with session-expired (lifetime-exceeded), once, whichever node sweeps', async () => {
    let now = Date.now();
    t = await startTestBackend({}, { clock: () => now });
    const kiosk = await TestConsole.enrol(t.url, t.admin);
    const { operatorId, authenticator } = await enrolOperator(t.admin, kiosk);
    const signedIn = await signIn(kiosk, authenticator);
    assert.equal(signedIn.status, 200);
    const session = (signedIn.body as Json).session;
    const { sessions } = t.backend.services;
    const { store, events } = t.backend;

    // Not yet due: nothing closes.
    assert.equal(await sweepExpiredSessions(store, events, sessions, now), 0);
    assert.equal((await store.sessions.get(session.id as string))?.state, 'active');

    // The console went away for good; its session's lifetime passes.
    const record = await store.sessions.get(session.id as string);
    now = (record?.expiresAt ?? 0) + 1;
    assert.equal(await sweepExpiredSessions(store, events, sessions, now), 1);
    const closed = await store.sessions.get(session.id as string);
    assert.equal(closed?.state, 'expired');
    assert.equal(closed?.endReason, 'lifetime-exceeded');
    const ends = await events.query({ session: session.id as string, type: 'session-expired', limit: 10 });
    assert.equal(ends.length, 1);
    assert.deepEqual(ends[0]?.subject, { operator: operatorId, console: kiosk.id, session: session.id });
    assert.deepEqual(ends[0]?.reasons, ['lifetime-exceeded']);

    // A second sweep (another node's, or the next one) finds nothing more to close.
    assert.equal(await sweepExpiredSessions(store, events, sessions, now + 60_000), 0);
    assert.equal((await events.query({ session: session.id as string, type: 'session-expired', limit: 10 })).length, 1);
  });
});
