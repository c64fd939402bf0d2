import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatonError } from '../../shared/errors.js';
import { ChallengeStore, MAX_CHALLENGES_PER_CONSOLE } from './webauthn-ceremonies.js';

const isCode = (code: string) => (error: unknown) => error instanceof BatonError && error.code === code;

describe('ChallengeStore', () => {
  it('gives each challenge once, to the console it was issued to', () => {
    const store = new ChallengeStore(() => 0, 1000);
    const challenge = store.create({ purpose: 'sign-in', consoleId: 'a' });
    assert.throws(() => store.consume(challenge, 'b'), isCode('CHALLENGE_UNKNOWN'));
    assert.deepEqual(store.consume(challenge, 'a'), { purpose: 'sign-in', consoleId: 'a' });
    assert.throws(() => store.consume(challenge, 'a'), isCode('CHALLENGE_UNKNOWN'));
  });

  it('expires challenges and forgets them without scanning live ones', () => {
    let now = 0;
    const store = new ChallengeStore(() => now, 1000);
    const old = store.create({ purpose: 'sign-in', consoleId: 'a' });
    now = 1000;
    assert.throws(() => store.consume(old, 'a'), isCode('CHALLENGE_EXPIRED'));
    const stale = store.create({ purpose: 'sign-in', consoleId: 'a' });
    now = 2500;
    store.create({ purpose: 'sign-in', consoleId: 'b' });
    assert.equal(store.size, 1, 'the expired one was swept when the next was created');
    assert.throws(() => store.consume(stale, 'a'), isCode('CHALLENGE_UNKNOWN'));
  });

  it('caps how many challenges one console can hold, evicting its oldest, without touching others', () => {
    const store = new ChallengeStore(() => 0, 60_000);
    const theirs = store.create({ purpose: 'sign-in', consoleId: 'quiet' });
    const mine = Array.from({ length: MAX_CHALLENGES_PER_CONSOLE + 1 }, () =>
      store.create({ purpose: 'sign-in', consoleId: 'noisy' }),
    );
    assert.equal(store.size, MAX_CHALLENGES_PER_CONSOLE + 1);
    assert.throws(() => store.consume(mine[0] ?? '', 'noisy'), isCode('CHALLENGE_UNKNOWN'));
    assert.equal(store.consume(mine.at(-1) ?? '', 'noisy').consoleId, 'noisy');
    assert.equal(store.consume(theirs, 'quiet').consoleId, 'quiet');
  });
});
