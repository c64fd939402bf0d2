import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BatonError } from '../../shared/errors.js';
import type { Store } from '../store/repositories.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import { CHALLENGE_KIND, ChallengeStore, MAX_CHALLENGES_PER_CONSOLE } from './webauthn-ceremonies.js';

const isCode = (code: string) => (error: unknown) => error instanceof BatonError && error.code === code;

describe('ChallengeStore', () => {
  let dir: string;
  let store: Store;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'baton-challenges-'));
    store = openSqliteStore({ dataDir: dir, durability: 'normal' });
  });

  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const signIn = (consoleId: string) => ({ purpose: 'sign-in', consoleId }) as const;
  const stepUp = (consoleId: string) =>
    ({ purpose: 'step-up', consoleId, sessionId: 'ses_1', action: 'payment' }) as const;

  for (const [kind, context] of [
    ['signed (sign-in)', signIn],
    ['stored (step-up)', stepUp],
  ] as const) {
    it(`gives each challenge once, to the console it was issued to: ${kind}`, async () => {
      const challenges = new ChallengeStore(store, () => 0, 1000);
      const challenge = await challenges.create(context('a'));
      await assert.rejects(challenges.consume(challenge, 'b'), isCode('CHALLENGE_UNKNOWN'));
      assert.deepEqual(await challenges.consume(challenge, 'a'), context('a'));
      await assert.rejects(challenges.consume(challenge, 'a'), isCode('CHALLENGE_UNKNOWN'));
    });
  }

  it('keeps what the challenge was issued for', async () => {
    const challenges = new ChallengeStore(store, () => 0, 1000);
    const context = { purpose: 'step-up', consoleId: 'a', sessionId: 'ses_1', action: 'payment' } as const;
    assert.deepEqual(await challenges.consume(await challenges.create(context), 'a'), context);
  });

  it('stores nothing for a sign-in challenge, and refuses one altered or signed by another backend', async () => {
    const challenges = new ChallengeStore(store, () => 0, 60_000);
    const challenge = await challenges.create(signIn('a'));
    assert.equal(await store.ephemeral.take(CHALLENGE_KIND, `a:${challenge}`), undefined, 'nothing stored');
    const raw = Buffer.from(challenge, 'base64url');
    raw[20] = (raw[20] ?? 0) ^ 1; // the expiry, moved
    await assert.rejects(challenges.consume(raw.toString('base64url'), 'a'), isCode('CHALLENGE_UNKNOWN'));
    const elsewhere = mkdtempSync(join(tmpdir(), 'baton-challenges-other-'));
    const otherBackend = openSqliteStore({ dataDir: elsewhere, durability: 'normal' });
    try {
      const theirs = await new ChallengeStore(otherBackend, () => 0, 60_000).create(signIn('a'));
      await assert.rejects(challenges.consume(theirs, 'a'), isCode('CHALLENGE_UNKNOWN'));
    } finally {
      await otherBackend.close();
      rmSync(elsewhere, { recursive: true, force: true });
    }
    assert.deepEqual(await challenges.consume(challenge, 'a'), signIn('a'), 'the genuine one still works');
  });

  it('expires challenges, and the store sweep forgets expired ones', async () => {
    let now = 0;
    const challenges = new ChallengeStore(store, () => now, 1000);
    const old = await challenges.create(stepUp('a'));
    const oldSignIn = await challenges.create(signIn('a'));
    now = 1000;
    await assert.rejects(challenges.consume(old, 'a'), isCode('CHALLENGE_EXPIRED'));
    await assert.rejects(challenges.consume(old, 'a'), isCode('CHALLENGE_UNKNOWN'), 'consumed even when expired');
    await assert.rejects(challenges.consume(oldSignIn, 'a'), isCode('CHALLENGE_EXPIRED'));
    await assert.rejects(challenges.consume(oldSignIn, 'a'), isCode('CHALLENGE_EXPIRED'), 'and stays expired');
    const stale = await challenges.create(stepUp('a'));
    const live = await challenges.create(stepUp('b'));
    const usedSignIn = await challenges.create(signIn('a'));
    await challenges.consume(usedSignIn, 'a');
    now = 2000;
    const fresh = await challenges.create(stepUp('b'));
    await store.ephemeral.sweep(now);
    await assert.rejects(challenges.consume(stale, 'a'), isCode('CHALLENGE_UNKNOWN'), 'swept');
    await assert.rejects(challenges.consume(live, 'b'), isCode('CHALLENGE_UNKNOWN'), 'swept at its expiry');
    assert.equal((await challenges.consume(fresh, 'b')).consoleId, 'b', 'a live one stays');
    // Its claimed nonce swept with it: the used sign-in challenge is refused as expired, never taken again.
    await assert.rejects(challenges.consume(usedSignIn, 'a'), isCode('CHALLENGE_EXPIRED'));
  });

  it('caps how many stored challenges one console can hold, evicting its oldest, without touching others', async () => {
    const challenges = new ChallengeStore(store, () => 0, 60_000);
    const theirs = await challenges.create(stepUp('quiet'));
    const mine: string[] = [];
    for (let i = 0; i <= MAX_CHALLENGES_PER_CONSOLE; i++) {
      mine.push(await challenges.create(stepUp('noisy')));
    }
    await assert.rejects(challenges.consume(mine[0] ?? '', 'noisy'), isCode('CHALLENGE_UNKNOWN'));
    assert.equal((await challenges.consume(mine[1] ?? '', 'noisy')).consoleId, 'noisy');
    assert.equal((await challenges.consume(mine.at(-1) ?? '', 'noisy')).consoleId, 'noisy');
    assert.equal((await challenges.consume(theirs, 'quiet')).consoleId, 'quiet');
  });

  it('lets a console hold any number of sign-in challenges: none pushes out another', async () => {
    const challenges = new ChallengeStore(store, () => 0, 60_000);
    const theirs = await challenges.create(signIn('quiet'));
    const mine: string[] = [];
    for (let i = 0; i <= MAX_CHALLENGES_PER_CONSOLE; i++) mine.push(await challenges.create(signIn('noisy')));
    assert.equal((await challenges.consume(mine[0] ?? '', 'noisy')).consoleId, 'noisy');
    assert.equal((await challenges.consume(theirs, 'quiet')).consoleId, 'quiet');
  });

  it('is issued by one node and consumed once by another over the same database', async () => {
    // Two stores opened on one SQLite file stand in for two nodes.
    const other = openSqliteStore({ dataDir: dir, durability: 'normal' });
    try {
      const nodeA = new ChallengeStore(store, () => 0, 60_000);
      const nodeB = new ChallengeStore(other, () => 0, 60_000);
      for (const context of [signIn('c'), stepUp('c')]) {
        const challenge = await nodeA.create(context);
        const both = await Promise.allSettled([nodeB.consume(challenge, 'c'), nodeA.consume(challenge, 'c')]);
        assert.equal(both.filter((r) => r.status === 'fulfilled').length, 1, 'exactly one node gets it');
        const refused = both.find((r) => r.status === 'rejected');
        assert.ok(refused !== undefined && isCode('CHALLENGE_UNKNOWN')(refused.reason));
        await assert.rejects(nodeB.consume(challenge, 'c'), isCode('CHALLENGE_UNKNOWN'));
      }
    } finally {
      await other.close();
    }
  });
});
