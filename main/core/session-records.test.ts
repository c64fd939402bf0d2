import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { markBreakGlass, sessionFromSignIn, snapshotOf } from './session-records.js';
import type { SignInOutcome } from './session-types.js';

const AUTH_TIME = Date.UTC(2026, 10, 23, 9, 0, 0);

const OUTCOME = {
  session: {
    id: 'ses_1',
    operatorId: 'op_lu',
    operatorName: 'Lu',
    level: 'hardware',
    authTime: AUTH_TIME,
    startedAt: AUTH_TIME,
    expiresAt: AUTH_TIME + 8 * 3_600_000,
  },
  credential: { id: 'cred', publicKey: 'pk', counter: 4 },
  token: 'secret-token',
  tokenExpiresAt: AUTH_TIME + 300_000,
} as unknown as SignInOutcome;

describe('session records', () => {
  test('a signed-in session’s deadlines are the backend’s, counted on the monotonic clock from now', () => {
    const s = sessionFromSignIn(OUTCOME, 5_000);
    assert.equal(s.state, 'active');
    assert.equal(s.endsAtElapsed, 5_000 + 8 * 3_600_000);
    assert.equal(s.tokenExpiresAtElapsed, 5_000 + 300_000);
    assert.equal(s.tokenRefreshAtElapsed, 5_000 + 200_000);
    assert.equal(s.counter, 4);
  });

  test('what the UI sees of a session carries neither its token nor its key', () => {
    const snapshot = snapshotOf(sessionFromSignIn(OUTCOME, 0), true);
    assert.equal(snapshot.inFront, true);
    assert.equal(snapshot.aal, 3);
    const text = JSON.stringify(snapshot);
    assert.ok(!text.includes('secret-token'));
    assert.ok(!text.includes('"pk"'));
  });
});

describe('markBreakGlass', () => {
  const bg = (id: string) => id === 'ses_bg';
  const draft = (session: string, extra: object = {}) => ({
    type: 'session-locked' as const,
    subject: { operator: 'op', console: 'con_1', session },
    outcome: 'info' as const,
    reasons: ['idle-timeout'],
    ...extra,
  });

  test('an event about a break-glass session gets reason break-glass after its own; others are untouched', () => {
    assert.deepEqual(markBreakGlass(draft('ses_bg'), bg).reasons, ['idle-timeout', 'break-glass']);
    assert.deepEqual(markBreakGlass(draft('ses_1'), bg).reasons, ['idle-timeout']);
    const away = draft('ses_1', { type: 'session-switched', detail: { fromSession: 'ses_bg' } });
    assert.deepEqual(markBreakGlass(away, bg).reasons, ['idle-timeout', 'break-glass']);
    const once = { ...draft('ses_bg'), reasons: ['break-glass'] };
    assert.deepEqual(markBreakGlass(once, bg).reasons, ['break-glass']);
    const full = { ...draft('ses_bg'), reasons: Array.from({ length: 16 }, (_, i) => `r${i}`) };
    assert.equal(markBreakGlass(full, bg).reasons.length, 16);
    assert.equal(markBreakGlass(full, bg).reasons.at(-1), 'break-glass');
  });
});
