import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import type { EventDraft } from '../../shared/events.js';
import { DEFAULT_MAX_OFFLINE_SECONDS, DEFAULT_POLICY, type ChannelPolicy } from '../../shared/policy.js';
import { FakeClock } from '../../test/helpers/fake-clock.js';
import { idleWarningSeconds } from './idle-lock.js';
import { SessionManager, type FinalState, type SignInOutcome } from './session-manager.js';

const CHANNEL: ChannelPolicy = { ...(DEFAULT_POLICY.channels['branch-kiosk'] as ChannelPolicy) };
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

function outcome(clock: FakeClock, id: string, operator: string, extra: Partial<SignInOutcome> = {}): SignInOutcome {
  const now = clock.now();
  return {
    session: {
      id,
      operatorId: operator,
      operatorName: operator.toUpperCase(),
      consoleId: 'con_1',
      channel: 'branch-kiosk',
      level: 'verified',
      aal: 2,
      acr: 'phr',
      amr: ['hwk', 'user'],
      authTime: now,
      startedAt: now,
      expiresAt: now + 8 * 3600_000,
      state: 'active',
    },
    resumed: false,
    token: `token-${id}`,
    tokenExpiresAt: now + 300_000,
    credential: { id: `cred-${operator}`, publicKey: 'AQID', counter: 1 },
    suspended: [],
    evicted: [],
    ...extra,
  };
}

describe('SessionManager', () => {
  let clock: FakeClock;
  let events: EventDraft[];
  let ended: { id: string; state: FinalState; reason: string }[];
  let due: string[];
  let manager: SessionManager;

  beforeEach(() => {
    clock = new FakeClock();
    events = [];
    ended = [];
    due = [];
    manager = new SessionManager('con_1', clock, () => CHANNEL, {
      record: (draft) => events.push(draft),
      endedLocally: (session, state, reason) => ended.push({ id: session.id, state, reason }),
      tokenDue: (session) => due.push(session.id),
      changed: () => undefined,
    });
  });

  /** The operator in front keeps working (input every half minute) for `ms`. */
  async function work(ms: number): Promise<void> {
    for (let t = 0; t < ms; t += MINUTE / 2) {
      manager.noteActivity();
      await clock.advance(Math.min(MINUTE / 2, ms - t));
    }
  }

  test('a second operator suspends the first and the switch is an event naming both', () => {
    manager.signedIn(outcome(clock, 's1', 'ada'));
    manager.signedIn(outcome(clock, 's2', 'ben', { suspended: ['s1'] }));
    assert.equal(manager.front?.id, 's2');
    assert.equal(manager.get('s1')?.state, 'suspended');
    const switched = events.filter((e) => e.type === 'session-switched');
    assert.equal(switched.length, 1);
    assert.equal(switched[0]?.subject.session, 's2');
    assert.equal(switched[0]?.detail?.fromSession, 's1');
    assert.equal(switched[0]?.assurance?.level, 'verified');
  });

  test('idle lock fires at the policy delay after the last activity, once', async () => {
    manager.signedIn(outcome(clock, 's1', 'ada'));
    await clock.advance(CHANNEL.idleLockSeconds * 1000 - 1);
    assert.equal(manager.front?.state, 'active');
    manager.noteActivity();
    await clock.advance(CHANNEL.idleLockSeconds * 1000 - 1);
    assert.equal(manager.front?.state, 'active');
    await clock.advance(1);
    assert.equal(manager.front?.state, 'locked');
    const locks = events.filter((e) => e.type === 'session-locked');
    assert.deepEqual(
      locks.map((e) => e.reasons),
      [['idle-timeout']],
    );
  });

  test('a warning comes before the idle lock; input takes it away; the lock says why', async () => {
    let changes = 0;
    manager = new SessionManager('con_1', clock, () => CHANNEL, {
      record: (draft) => events.push(draft),
      endedLocally: () => undefined,
      tokenDue: () => undefined,
      changed: () => changes++,
    });
    manager.signedIn(outcome(clock, 's1', 'ada'));
    const idleMs = CHANNEL.idleLockSeconds * 1000;
    const warnMs = idleWarningSeconds(CHANNEL.idleLockSeconds) * 1000;
    assert.ok(warnMs > 0);
    await clock.advance(idleMs - warnMs - 1);
    assert.equal(manager.idle.warning, undefined);
    const before = changes;
    await clock.advance(1);
    assert.deepEqual(manager.idle.warning, { locksAt: clock.now() + warnMs });
    assert.ok(changes > before, 'the warning is pushed to the UI');
    manager.noteActivity(); // "Stay signed in"
    assert.equal(manager.idle.warning, undefined);
    await clock.advance(idleMs - 1);
    assert.equal(manager.front?.state, 'active');
    assert.notEqual(manager.idle.warning, undefined);
    await clock.advance(1);
    assert.equal(manager.front?.state, 'locked');
    assert.equal(manager.idle.warning, undefined);
    assert.equal(manager.snapshot()[0]?.lockedBecause, 'idle-timeout');
    manager.signedIn(outcome(clock, 's1', 'ada', { resumed: true }));
    assert.equal(manager.snapshot()[0]?.lockedBecause, undefined, 'only a locked session says why');
    manager.lock('operator-locked');
    assert.equal(manager.snapshot()[0]?.lockedBecause, 'operator-locked');
  });

  test('the OS idle reading and the OS lock lock the front session too', () => {
    manager.signedIn(outcome(clock, 's1', 'ada'));
    manager.reportSystemIdle(CHANNEL.idleLockSeconds - 1);
    assert.equal(manager.front?.state, 'active');
    manager.reportSystemIdle(CHANNEL.idleLockSeconds);
    assert.equal(manager.front?.state, 'locked');
    manager.signedIn(outcome(clock, 's1', 'ada', { resumed: true }));
    manager.lock('os-lock');
    assert.deepEqual(
      events.filter((e) => e.type === 'session-locked').map((e) => e.reasons[0]),
      ['idle-timeout', 'os-lock'],
    );
  });

  test('a locked session expires when its continuity window closes; the console ends it itself', async () => {
    manager.signedIn(outcome(clock, 's1', 'ada'));
    manager.lock('operator-locked');
    await clock.advance(CHANNEL.continuitySeconds * 1000 - 1);
    assert.equal(manager.get('s1')?.state, 'locked');
    await clock.advance(1);
    assert.equal(manager.get('s1'), undefined);
    assert.equal(manager.front, undefined);
    assert.deepEqual(ended, [{ id: 's1', state: 'expired', reason: 'continuity-window-elapsed' }]);
  });

  test('the maximum lifetime ends even a session in active use', async () => {
    manager.signedIn(outcome(clock, 's1', 'ada'));
    const lifetime = (manager.get('s1')?.expiresAt ?? 0) - clock.now();
    for (let t = 0; t < lifetime; t += MINUTE) {
      manager.noteActivity();
      await clock.advance(MINUTE);
    }
    assert.equal(manager.get('s1'), undefined);
    assert.deepEqual(ended, [{ id: 's1', state: 'expired', reason: 'lifetime-exceeded' }]);
  });

  test('a revocation ends the session it names, in front or not, and a command ends one too', () => {
    manager.signedIn(outcome(clock, 's1', 'ada'));
    manager.signedIn(outcome(clock, 's2', 'ben', { suspended: ['s1'] }));
    manager.signedIn(outcome(clock, 's3', 'cy', { suspended: ['s2'] }));
    const at = clock.now();
    assert.deepEqual(
      manager.applyRevocations([
        { epoch: 1, kind: 'credential', targetId: 'cred-ben', operatorId: 'ben', reason: 'lost', at },
      ]),
      ['s2'],
    );
    assert.deepEqual(
      manager.applyRevocations([{ epoch: 2, kind: 'operator', targetId: 'cy', operatorId: null, reason: 'left', at }]),
      ['s3'],
    );
    assert.equal(manager.front, undefined, 'the revoked session was in front: the lock screen is up');
    assert.equal(manager.endedByBackend('s1', 'ended', 'ended-by-admin'), true);
    assert.equal(manager.all.length, 0);
    assert.deepEqual(ended, [], 'backend-decided ends are not reported back to it');
  });

  test('sessions the backend evicted leave at once', () => {
    manager.signedIn(outcome(clock, 's1', 'ada'));
    manager.signedIn(outcome(clock, 's2', 'ben', { suspended: ['s1'] }));
    manager.signedIn(outcome(clock, 's3', 'cy', { suspended: ['s2'], evicted: ['s1'] }));
    assert.deepEqual(manager.all.map((s) => s.id).sort(), ['s2', 's3']);
  });

  test('offline resume is never rated above the session, and is recorded with its reason', () => {
    manager.signedIn(outcome(clock, 's1', 'ada'));
    manager.lock('operator-locked');
    assert.deepEqual(
      manager.resumableOffline().map((s) => s.id),
      ['s1'],
    );
    manager.resumedOffline('s1', 'hardware', 7);
    assert.equal(manager.get('s1')?.level, 'verified');
    assert.equal(manager.get('s1')?.counter, 7);
    const resumed = events.find((e) => e.type === 'session-resumed');
    assert.deepEqual(resumed?.reasons, ['offline-grace']);
  });

  test('the offline grace runs from the lock: past it nothing is resumable offline', async () => {
    manager.signedIn(outcome(clock, 's1', 'ada'));
    manager.lock('operator-locked');
    await clock.advance(Math.min(CHANNEL.offlineGraceSeconds, CHANNEL.continuitySeconds) * 1000 + 1);
    assert.deepEqual(manager.resumableOffline(), []);
  });

  test('the UI snapshot never carries the token or key material', () => {
    manager.signedIn(outcome(clock, 's1', 'ada'));
    const text = JSON.stringify(manager.snapshot());
    assert.ok(!text.includes('token-s1'));
    assert.ok(!text.includes('AQID'));
    assert.ok(!text.includes('cred-ada'));
  });
  test('setting the wall clock back does not stretch the continuity window', async () => {
    manager.signedIn(outcome(clock, 's1', 'ada'));
    manager.lock('operator-locked');
    await clock.advance(CHANNEL.continuitySeconds * 1000 - MINUTE);
    clock.shiftWall(-2 * HOUR);
    await clock.advance(MINUTE);
    assert.equal(manager.get('s1'), undefined, 'the window closed on elapsed time, not on the wall clock');
    assert.deepEqual(ended, [{ id: 's1', state: 'expired', reason: 'continuity-window-elapsed' }]);
  });

  test('setting the wall clock back does not reopen the offline grace', async () => {
    manager.signedIn(outcome(clock, 's1', 'ada'));
    manager.lock('operator-locked');
    const grace = Math.min(CHANNEL.offlineGraceSeconds, CHANNEL.continuitySeconds) * 1000;
    await clock.advance(grace + 1);
    clock.setWallTime(clock.now() - grace);
    assert.deepEqual(manager.resumableOffline(), [], 'a console clock set back opens nothing offline');
  });

  test('setting the wall clock back does not delay the idle lock', async () => {
    manager.signedIn(outcome(clock, 's1', 'ada'));
    await clock.advance(CHANNEL.idleLockSeconds * 1000 - 1);
    clock.shiftWall(-HOUR);
    await clock.advance(1);
    assert.equal(manager.front?.state, 'locked');
  });

  test('the lifetime runs from the backend authTime on elapsed time, whatever the wall clock says', async () => {
    manager.signedIn(outcome(clock, 's1', 'ada'));
    await work(8 * HOUR - MINUTE);
    assert.equal(manager.front?.state, 'active');
    clock.shiftWall(-3 * HOUR);
    await work(MINUTE);
    assert.equal(manager.get('s1'), undefined);
    assert.deepEqual(ended, [{ id: 's1', state: 'expired', reason: 'lifetime-exceeded' }]);
  });

  describe('the cap on continuous time offline (maxOfflineSeconds)', () => {
    const cap = 3600;
    beforeEach(() => {
      manager = new SessionManager('con_1', clock, () => ({ ...CHANNEL, maxOfflineSeconds: cap }), {
        record: (draft) => events.push(draft),
        endedLocally: (session, state, reason) => ended.push({ id: session.id, state, reason }),
        tokenDue: () => undefined,
        changed: () => undefined,
      });
    });

    test('past the cap the session in front locks and nothing resumes offline', async () => {
      manager.signedIn(outcome(clock, 's1', 'ada'));
      manager.connectionLost();
      // The operator keeps working offline; a short lock and an offline resume do not reset the count.
      await work(cap * 1000 - 10 * MINUTE);
      manager.lock('operator-locked');
      assert.deepEqual(
        manager.resumableOffline().map((s) => s.id),
        ['s1'],
      );
      manager.resumedOffline('s1', 'verified', 2);
      await work(10 * MINUTE);
      assert.equal(manager.offlineLimitReached, true);
      assert.equal(manager.front?.id, 's1');
      assert.equal(manager.front?.state, 'locked', 'only locking is allowed past the cap');
      assert.deepEqual(
        events.filter((e) => e.type === 'session-locked').map((e) => e.reasons[0]),
        ['operator-locked', 'offline-limit-reached'],
      );
      assert.deepEqual(manager.resumableOffline(), [], 'no offline resume past the cap');
    });

    test('the cap counts continuous time: a wall clock set back or short locks do not reset it', async () => {
      manager.signedIn(outcome(clock, 's1', 'ada'));
      manager.connectionLost();
      await work(cap * 1000 - MINUTE);
      clock.shiftWall(-2 * HOUR);
      manager.connectionLost(); // a failed reconnect is not a return of the backend
      manager.noteActivity();
      await clock.advance(MINUTE);
      assert.equal(manager.offlineLimitReached, true);
      assert.equal(manager.front?.state, 'locked');
    });

    test('the backend coming back starts the count over', async () => {
      manager.signedIn(outcome(clock, 's1', 'ada'));
      manager.connectionLost();
      await work(cap * 1000 - MINUTE);
      manager.connectionRestored();
      manager.connectionLost();
      await work(2 * MINUTE);
      assert.equal(manager.offlineLimitReached, false);
      assert.equal(manager.front?.state, 'active');
    });
  });

  test('without maxOfflineSeconds in the policy the cap is the 4-hour default', async () => {
    assert.equal(CHANNEL.maxOfflineSeconds, undefined);
    assert.equal(DEFAULT_MAX_OFFLINE_SECONDS, 4 * 3600);
    manager.connectionLost();
    await clock.advance(DEFAULT_MAX_OFFLINE_SECONDS * 1000 - 1);
    assert.equal(manager.offlineLimitReached, false);
    await clock.advance(1);
    assert.equal(manager.offlineLimitReached, true);
  });
  describe('the assurance token', () => {
    const TTL = 300_000; // outcome(): tokenExpiresAt = authTime + 300 s

    test('is due for a refresh two thirds into its life, and only for the session in front', async () => {
      manager.signedIn(outcome(clock, 's1', 'ada'));
      await work((TTL * 2) / 3 - 1000);
      assert.deepEqual(due, []);
      await work(1000);
      assert.deepEqual(due, ['s1']);
    });

    test('is never handed out in its last seconds or after it expired, whatever the wall clock says', async () => {
      manager.signedIn(outcome(clock, 's1', 'ada'));
      assert.equal(manager.frontToken, 'token-s1');
      await work(TTL - 5000 - 1000);
      assert.equal(manager.frontToken, 'token-s1');
      clock.shiftWall(-HOUR);
      await work(1000);
      assert.equal(
        manager.frontToken,
        undefined,
        'no refresh arrived: the workspace gets no token rather than a stale one',
      );
    });

    test('a refreshed token replaces it, with its lifetime measured from the backend serverTime', async () => {
      manager.signedIn(outcome(clock, 's1', 'ada'));
      await work(TTL - 10_000);
      const serverTime = clock.now() - 7 * HOUR; // the backend's clock is hours behind ours
      manager.tokenRefreshed('s1', 'token-s1-b', serverTime + TTL, serverTime);
      await work(TTL - 10_000);
      assert.equal(manager.frontToken, 'token-s1-b');
      await work(10_000);
      assert.equal(manager.frontToken, undefined);
    });

    test('a locked session holds no usable token, and a refused refresh leaves none', async () => {
      manager.signedIn(outcome(clock, 's1', 'ada'));
      manager.lock('operator-locked');
      assert.equal(manager.frontToken, undefined);
      manager.signedIn(outcome(clock, 's1', 'ada', { resumed: true }));
      assert.equal(manager.frontToken, 'token-s1');
      manager.tokenRefused('s1');
      assert.equal(manager.frontToken, undefined);
      await work(TTL);
      assert.deepEqual(due, [], 'no refresh is asked for a token the backend refused');
    });
  });
});
