import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sessionFromSignIn, snapshotOf } from './session-records.js';
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
