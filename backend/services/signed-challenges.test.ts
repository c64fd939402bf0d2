import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatonError } from '../../shared/errors.js';
import { SignedChallenges } from './signed-challenges.js';

function codeOf(fn: () => void): string | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    assert.ok(error instanceof BatonError, String(error));
    return error.code;
  }
}

describe('SignedChallenges', () => {
  let now = 1_000_000;
  const make = (maxInFlight = 10) =>
    new SignedChallenges({ purpose: 'admin-sign-in', ttlMs: () => 60_000, clock: () => now, maxInFlight });

  it('accepts a challenge it issued once, and refuses it the second time', () => {
    const challenges = make();
    const challenge = challenges.issue();
    assert.equal(
      codeOf(() => challenges.consume(challenge)),
      undefined,
    );
    assert.equal(
      codeOf(() => challenges.consume(challenge)),
      'CHALLENGE_UNKNOWN',
    );
  });

  it('refuses a forged, altered or foreign challenge, and an expired one', () => {
    const challenges = make();
    const raw = Buffer.from(challenges.issue(), 'base64url');
    raw[20] = (raw[20] ?? 0) ^ 1; // a later expiry, say
    assert.equal(
      codeOf(() => challenges.consume(raw.toString('base64url'))),
      'CHALLENGE_UNKNOWN',
    );
    assert.equal(
      codeOf(() => challenges.consume('AAAAAAAAAAAAAAAAAAAAAA')),
      'CHALLENGE_UNKNOWN',
    );
    assert.equal(
      codeOf(() => challenges.consume(make().issue())),
      'CHALLENGE_UNKNOWN',
      'another process key',
    );
    const late = challenges.issue();
    now += 60_000;
    assert.equal(
      codeOf(() => challenges.consume(late)),
      'CHALLENGE_EXPIRED',
    );
  });

  it('refuses new presentations rather than forget a used challenge when too many are in flight', () => {
    const challenges = make(2);
    const [a, b, c] = [challenges.issue(), challenges.issue(), challenges.issue()];
    challenges.consume(a);
    challenges.consume(b);
    assert.equal(
      codeOf(() => challenges.consume(c)),
      'ADMIN_SIGN_IN_RATE_LIMITED',
    );
    now += 60_000; // a and b expire: room again, and they stay refused (expired)
    const d = challenges.issue();
    assert.equal(
      codeOf(() => challenges.consume(d)),
      undefined,
    );
    assert.equal(
      codeOf(() => challenges.consume(a)),
      'CHALLENGE_EXPIRED',
    );
  });
});
