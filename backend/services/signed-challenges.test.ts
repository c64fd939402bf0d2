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

/**
 * `store` seen by a node that stalls after its `nth` meta read (having read what the store held then)
 * until `resume` is called; `stalled` resolves when it stalls.
 */
function stallOnRead(store: Store, nth: number): { stall: Store; stalled: Promise<void>; resume: () => void } {
  let resume!: () => void;
  const resumed = new Promise<void>((resolve) => (resume = resolve));
  let reached!: () => void;
  const stalled = new Promise<void>((resolve) => (reached = resolve));
  let reads = 0;
  const meta: Store['meta'] = {
    get: async (key) => {
      const value = await store.meta.get(key);
      if (++reads === nth) {
        reached();
        await resumed;
      }
      return value;
    },
    set: (key, value) => store.meta.set(key, value),
    insertIfAbsent: (key, value) => store.meta.insertIfAbsent(key, value),
  };
  return { stall: { ...store, meta }, stalled, resume };
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

    it('agrees on one key across nodes when the first stalls past its claim mid-create and another creates', async () => {
      const store = await open();
      // Node A claims the right to create, reads "no key yet", then stalls (a pause, a slow host).
      const { stall, stalled, resume } = stallOnRead(store, 2);
      const nodeA = make(stall);
      const issuedOnA = nodeA.issue();
      await stalled;
      now += 15_001; // A's claim lapses: node B may create
      const nodeB = make(store);
      const issuedOnB = await nodeB.issue();
      resume();
      const fromA = await issuedOnA;
      // Both nodes hold the key the store holds: what either issues verifies on the other.
      assert.equal(await codeOf(() => nodeB.consume(fromA)), undefined, 'issued on A, presented to B');
      assert.equal(await codeOf(() => nodeA.consume(issuedOnB)), undefined, 'issued on B, presented to A');
      assert.equal(
        await codeOf(async () => make(store).consume(await nodeA.issue())),
        undefined,
        'a node started later',
      );
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
    it('commits one creation when a creator stalls past its claim and another takes over: both return it', async () => {
      const store = await openTestStore(engine, 'baton-once-');
      let now = 1_000_000;
      let created = 0;
      const create = async (tx: Store) => {
        created++;
        await tx.meta.set('y', `value-${created}`);
        return `value-${created}`;
      };
      const { stall, stalled, resume } = stallOnRead(store, 2);
      const first = createOnce(
        stall,
        'y',
        () => now,
        () => stall.meta.get('y'),
        create,
      );
      await stalled;
      now += 15_001;
      const second = await createOnce(
        store,
        'y',
        () => now,
        () => store.meta.get('y'),
        create,
      );
      resume();
      assert.equal(await first, second);
      assert.equal(created, 1, 'the stalled creator created nothing');
      assert.equal(await store.meta.get('y'), second);
      await store.close();
    });

    it('creates a shared value once when several nodes ask together', async () => {
      const store = await openTestStore(engine, 'baton-once-');
      let created = 0;
      const read = () => store.meta.get('x');
      const create = async (tx: Store) => {
        created++;
        await tx.meta.set('x', `value-${created}`);
        return `value-${created}`;
      };
      const values = await Promise.all(Array.from({ length: 5 }, () => createOnce(store, 'x', Date.now, read, create)));
      assert.equal(created, 1);
      assert.deepEqual(new Set(values), new Set(['value-1']));
      await store.close();
    });
  });
}
