import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BatonError } from '../../shared/errors.js';
import type { Store } from '../store/repositories.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import { ChallengeStore, MAX_CHALLENGES_PER_CONSOLE } from './webauthn-ceremonies.js';

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

  it('gives each challenge once, to the console it was issued to', async () => {
    const challenges = new ChallengeStore(store.ephemeral, () => 0, 1000);
    const challenge = await challenges.create({ purpose: 'sign-in', consoleId: 'a' });
    await assert.rejects(challenges.consume(challenge, 'b'), isCode('CHALLENGE_UNKNOWN'));
    assert.deepEqual(await challenges.consume(challenge, 'a'), { purpose: 'sign-in', consoleId: 'a' });
    await assert.rejects(challenges.consume(challenge, 'a'), isCode('CHALLENGE_UNKNOWN'));
  });

  it('keeps what the challenge was issued for', async () => {
    const challenges = new ChallengeStore(store.ephemeral, () => 0, 1000);
    const context = { purpose: 'step-up', consoleId: 'a', sessionId: 'ses_1', action: 'payment' } as const;
    assert.deepEqual(await challenges.consume(await challenges.create(context), 'a'), context);
  });

  it('expires challenges, and the store sweep forgets expired ones', async () => {
    let now = 0;
    const challenges = new ChallengeStore(store.ephemeral, () => now, 1000);
    const old = await challenges.create({ purpose: 'sign-in', consoleId: 'a' });
    now = 1000;
    await assert.rejects(challenges.consume(old, 'a'), isCode('CHALLENGE_EXPIRED'));
    await assert.rejects(challenges.consume(old, 'a'), isCode('CHALLENGE_UNKNOWN'), 'consumed even when expired');
    const stale = await challenges.create({ purpose: 'sign-in', consoleId: 'a' });
    const live = await challenges.create({ purpose: 'sign-in', consoleId: 'b' });
    now = 2000;
    const fresh = await challenges.create({ purpose: 'sign-in', consoleId: 'b' });
    await store.ephemeral.sweep(now);
    await assert.rejects(challenges.consume(stale, 'a'), isCode('CHALLENGE_UNKNOWN'), 'swept');
    await assert.rejects(challenges.consume(live, 'b'), isCode('CHALLENGE_UNKNOWN'), 'swept at its expiry');
    assert.equal((await challenges.consume(fresh, 'b')).consoleId, 'b', 'a live one stays');
  });

  it('caps how many challenges one console can hold, evicting its oldest, without touching others', async () => {
    const challenges = new ChallengeStore(store.ephemeral, () => 0, 60_000);
    const theirs = await challenges.create({ purpose: 'sign-in', consoleId: 'quiet' });
    const mine: string[] = [];
    for (let i = 0; i <= MAX_CHALLENGES_PER_CONSOLE; i++) {
      mine.push(await challenges.create({ purpose: 'sign-in', consoleId: 'noisy' }));
    }
    await assert.rejects(challenges.consume(mine[0] ?? '', 'noisy'), isCode('CHALLENGE_UNKNOWN'));
    assert.equal((await challenges.consume(mine[1] ?? '', 'noisy')).consoleId, 'noisy');
    assert.equal((await challenges.consume(mine.at(-1) ?? '', 'noisy')).consoleId, 'noisy');
    assert.equal((await challenges.consume(theirs, 'quiet')).consoleId, 'quiet');
  });

  it('is issued by one node and consumed once by another over the same database', async () => {
    // Two stores opened on one SQLite file stand in for two nodes.
    const other = openSqliteStore({ dataDir: dir, durability: 'normal' });
    try {
      const nodeA = new ChallengeStore(store.ephemeral, () => 0, 60_000);
      const nodeB = new ChallengeStore(other.ephemeral, () => 0, 60_000);
      const challenge = await nodeA.create({ purpose: 'sign-in', consoleId: 'c' });
      const both = await Promise.allSettled([nodeB.consume(challenge, 'c'), nodeA.consume(challenge, 'c')]);
      assert.equal(both.filter((r) => r.status === 'fulfilled').length, 1, 'exactly one node gets it');
      const refused = both.find((r) => r.status === 'rejected');
      assert.ok(refused !== undefined && isCode('CHALLENGE_UNKNOWN')(refused.reason));
      await assert.rejects(nodeB.consume(challenge, 'c'), isCode('CHALLENGE_UNKNOWN'));
    } finally {
      await other.close();
    }
  });
});
