import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { canonicalJson } from '../../shared/canonical-json.js';
import { DEFAULT_POLICY } from '../../shared/policy.js';
import { GENESIS_HASH, type AssuranceEvent } from '../../shared/events.js';
import { startTestBackend, TestConsole, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';

/**
 * What a console reports about its sessions (lock, offline resume) moves them on the backend. A
 * console's word must stay inside the policy: a resume replayed with its batch after a reconnect, or
 * one claimed after the offline grace closed, must not bring a session back to life.
 */
describe('console-reported session events on the backend', () => {
  let now = Date.now();
  let t: TestBackend;
  let console: TestConsole;
  const channel = DEFAULT_POLICY.channels['branch-kiosk'];
  assert.ok(channel !== undefined);

  before(async () => {
    t = await startTestBackend({}, { clock: () => now });
    const enrolled = await TestConsole.enrol(t.url, t.admin);
    // The console signs with the backend's (fake) clock, so the clock can move on by minutes.
    console = new TestConsole(t.url, enrolled.key, enrolled.id, () => now);
  });
  after(() => t.stop());

  let seq = 0;
  let prev = GENESIS_HASH;
  function event(type: string, session: string, time: number, reasons: string[]): AssuranceEvent {
    const e: AssuranceEvent = {
      id: randomUUID(),
      seq: ++seq,
      time,
      type: type as AssuranceEvent['type'],
      subject: { console: console.id, session },
      outcome: 'info',
      reasons,
      prevHash: prev,
    };
    prev = createHash('sha256').update(canonicalJson(e)).digest('hex');
    return e;
  }

  async function deliver(events: AssuranceEvent[]): Promise<void> {
    const socket = await console.connect();
    const last = Math.max(...events.map((e) => e.seq));
    socket.send({ type: 'events', events });
    await socket.next('events-ack', (m) => m.upToSeq >= last);
    await socket.close();
  }

  const state = async (id: string) => (await t.backend.store.sessions.get(id))?.state;

  async function signedIn(name: string): Promise<string> {
    const { authenticator } = await enrolOperator(t.admin, console, { displayName: name });
    const result = await signIn(console, authenticator);
    assert.equal(result.status, 200, JSON.stringify(result.body));
    return ((result.body as Json).session as { id: string }).id;
  }

  it('a replayed offline resume does not reactivate a session suspended by a later sign-in', async () => {
    const a = await signedIn('Replay Ada');
    now += 1000;
    const batch = [
      event('session-locked', a, now, ['idle-timeout']),
      event('session-resumed', a, now + 500, ['offline-grace']),
    ];
    now += 1000;
    await deliver(batch);
    assert.equal(await state(a), 'active', 'the offline resume applied once');

    now += 5000;
    await signedIn('Replay Ben'); // the backend suspends Ada's session now
    assert.equal(await state(a), 'suspended');

    // The same batch again (its ack was lost): storage ignores the duplicates; so must the session.
    await deliver(batch);
    assert.equal(await state(a), 'suspended', 'the old resume did not bring the suspended session back');
  });

  it('an offline resume claimed after the offline grace closed does not resurrect the session', async () => {
    const c = await signedIn('Late Cleo');
    now += 1000;
    await deliver([event('session-locked', c, now, ['operator-locked'])]);
    assert.equal(await state(c), 'suspended');

    now += (Math.min(channel.offlineGraceSeconds, channel.continuitySeconds) + 60) * 1000;
    await deliver([event('session-resumed', c, now, ['offline-grace'])]);
    assert.equal(await state(c), 'suspended', 'past the grace, only a tap checked by the backend resumes it');
  });

  it('an offline resume inside the grace still resumes the session, never above its level', async () => {
    const d = await signedIn('Grace Dev');
    const level = (await t.backend.store.sessions.get(d))?.level;
    now += 1000;
    await deliver([event('session-locked', d, now, ['idle-timeout'])]);
    now += 60_000;
    await deliver([event('session-resumed', d, now, ['offline-grace'])]);
    assert.equal(await state(d), 'active');
    assert.equal((await t.backend.store.sessions.get(d))?.level, level);
  });
});
