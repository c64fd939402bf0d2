import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FakeClock } from '../../test/helpers/fake-clock.js';
import { TokenTimer, clearToken, setToken, usableToken } from './session-tokens.js';
import { TOKEN_EXPIRY_MARGIN_MS, type AgentSession } from './session-types.js';

const TTL = 300_000;

function session(elapsed: number, extra: Partial<AgentSession> = {}): AgentSession {
  const s = { id: 'ses_1', state: 'active', endsAtElapsed: elapsed + 3_600_000, ...extra } as AgentSession;
  setToken(s, 'tok', 1_000 + TTL, TTL, elapsed);
  return s;
}

describe('session tokens', () => {
  test('a token is refreshed two thirds into its life and never handed out in its last margin', () => {
    const s = session(0);
    assert.equal(s.tokenRefreshAtElapsed, (TTL * 2) / 3);
    assert.equal(usableToken(s, TTL - TOKEN_EXPIRY_MARGIN_MS - 1), 'tok');
    assert.equal(usableToken(s, TTL - TOKEN_EXPIRY_MARGIN_MS), undefined);
  });

  test('only an active or stepped-up session in front hands out its token', () => {
    assert.equal(usableToken(session(0, { state: 'stepped-up' }), 0), 'tok');
    assert.equal(usableToken(session(0, { state: 'locked' }), 0), undefined);
    assert.equal(usableToken(undefined, 0), undefined);
  });

  test('a refused token is gone and nothing is refreshed for it', async () => {
    const clock = new FakeClock();
    const s = session(clock.monotonic());
    clearToken(s);
    assert.equal(usableToken(s, clock.monotonic()), undefined);
    const due: string[] = [];
    const timer = new TokenTimer(
      clock,
      () => s,
      (x) => due.push(x.id),
    );
    timer.follow(s);
    await clock.advance(TTL);
    assert.deepEqual(due, []);
  });

  test('the refresh falls due for the session in front, and not for one that left the front meanwhile', async () => {
    const clock = new FakeClock();
    let front: AgentSession | undefined = session(clock.monotonic());
    const due: string[] = [];
    const timer = new TokenTimer(
      clock,
      () => front,
      (x) => due.push(x.id),
    );
    timer.follow(front);
    await clock.advance((TTL * 2) / 3 - 1);
    assert.deepEqual(due, []);
    await clock.advance(1);
    assert.deepEqual(due, ['ses_1']);
    timer.follow(front);
    front = session(clock.monotonic(), { id: 'ses_2' });
    await clock.advance(TTL);
    assert.deepEqual(due, ['ses_1'], 'the timer was for ses_1, which is no longer in front');
  });

  test('no refresh past the session’s own lifetime', async () => {
    const clock = new FakeClock();
    const s = session(clock.monotonic(), { endsAtElapsed: clock.monotonic() + 1_000 });
    const due: string[] = [];
    new TokenTimer(
      clock,
      () => s,
      (x) => due.push(x.id),
    ).follow(s);
    await clock.advance(TTL);
    assert.deepEqual(due, []);
  });
});
