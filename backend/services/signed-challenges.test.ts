import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { BatonError } from '../../shared/errors.js';
import type { Store } from '../store/repositories.js';
import { openStore } from '../store/open-store.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from '../store/postgres-throwaway.js';
import { SignedChallenges, challengeKeyName, createOnce } from './signed-challenges.js';
import { tempDir } from '../temp-dir.js';

/** The engines these tests run on: embedded SQLite, and PostgreSQL where it can run here. */
const ENGINES = ['sqlite', 'postgres'] as const;
let postgres: Promise<PostgresServer> | undefined;
after(async () => {
  if (postgres !== undefined) await (await postgres).stop();
});
let databases = 0;

/** A fresh store on `engine` (PostgreSQL: a database of its own on one throwaway server). */
async function openTestStore(engine: (typeof ENGINES)[number], prefix: string): Promise<Store> {
  const dataDir = tempDir(prefix);
  if (engine === 'sqlite') return openStore({ dataDir, durability: 'normal' });
  postgres ??= startPostgres();
  const url = await createDatabase((await postgres).url, `baton_unit_${process.pid}_${++databases}`);
  return openStore({ dataDir, durability: 'normal', databaseUrl: url });
}

const skipOn = (engine: (typeof ENGINES)[number]) => (engine === 'postgres' ? postgresSkip() : false);

async function codeOf(fn: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await fn();
    return undefined;
  } catch (error) {
    assert.ok(error instanceof BatonError, String(error));
    return error.code;
  }
}

for (const engine of ENGINES) {
  describe(`SignedChallenges (${engine})`, { skip: skipOn(engine) }, () => {
    let now = 1_000_000;
    const stores: Store[] = [];
    const open = async () => {
      const store = await openTestStore(engine, 'baton-challenges-');
      stores.push(store);
      return store;
    };
    after(async () => {
      for (const store of stores) await store.close();
    });
    const make = (store: Store) =>
      new SignedChallenges({ purpose: 'admin-sign-in', ttlMs: () => 60_000, clock: () => now, store });

    it('accepts a challenge it issued once, and refuses it the second time', async () => {
      const challenges = make(await open());
      const challenge = await challenges.issue();
      assert.equal(await codeOf(() => challenges.consume(challenge)), undefined);
      assert.equal(await codeOf(() => challenges.consume(challenge)), 'CHALLENGE_UNKNOWN');
    });

    it('verifies on another node what one node issued, once across both (one shared key in the store)', async () => {
      const store = await open();
      // Two nodes starting together on a fresh database: both need the key at once.
      const [nodeA, nodeB, nodeC] = [make(store), make(store), make(store)];
      const [a, b, c] = await Promise.all([nodeA.issue(), nodeB.issue(), nodeC.issue()]);
      assert.ok((await store.meta.get(challengeKeyName('admin-sign-in'))) !== undefined);
      assert.equal(await codeOf(() => nodeB.consume(a)), undefined);
      assert.equal(await codeOf(() => nodeA.consume(a)), 'CHALLENGE_UNKNOWN', 'replayed to another node');
      assert.equal(await codeOf(() => nodeC.consume(b)), undefined);
      assert.equal(await codeOf(() => nodeA.consume(c)), undefined);
      // A node started later reads the same key.
      assert.equal(await codeOf(async () => make(store).consume(await nodeA.issue())), undefined);
    });

    it('refuses a forged, altered or foreign challenge, and an expired one', async () => {
      const challenges = make(await open());
      const raw = Buffer.from(await challenges.issue(), 'base64url');
      raw[20] = (raw[20] ?? 0) ^ 1; // a later expiry, say
      assert.equal(await codeOf(() => challenges.consume(raw.toString('base64url'))), 'CHALLENGE_UNKNOWN');
      assert.equal(await codeOf(() => challenges.consume('AAAAAAAAAAAAAAAAAAAAAA')), 'CHALLENGE_UNKNOWN');
      const foreign = await make(await open()).issue();
      assert.equal(await codeOf(() => challenges.consume(foreign)), 'CHALLENGE_UNKNOWN', 'another backend');
      const late = await challenges.issue();
      now += 60_000;
      assert.equal(await codeOf(() => challenges.consume(late)), 'CHALLENGE_EXPIRED');
    });

    it('keeps a used challenge refused until it expires, after a sweep of the store', async () => {
      const store = await open();
      const challenges = make(store);
      const challenge = await challenges.issue();
      await challenges.consume(challenge);
      await store.ephemeral.sweep(now);
      assert.equal(await codeOf(() => challenges.consume(challenge)), 'CHALLENGE_UNKNOWN');
      now += 60_000;
      await store.ephemeral.sweep(now);
      assert.equal(await codeOf(() => challenges.consume(challenge)), 'CHALLENGE_EXPIRED');
    });
  });

  describe(`createOnce (${engine})`, { skip: skipOn(engine) }, () => {
    it('creates a shared value once when several nodes ask together', async () => {
      const store = await openTestStore(engine, 'baton-once-');
      let created = 0;
      const read = () => store.meta.get('x');
      const create = async () => {
        created++;
        await store.meta.set('x', `value-${created}`);
        return `value-${created}`;
      };
      const values = await Promise.all(Array.from({ length: 5 }, () => createOnce(store, 'x', Date.now, read, create)));
      assert.equal(created, 1);
      assert.deepEqual(new Set(values), new Set(['value-1']));
      await store.close();
    });
  });
}
