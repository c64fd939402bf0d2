/**
 * Migration 29 (issue 10): single-use claims (request nonces, sign-in challenges, jtis) in
 * `ephemeral_claims`, a table of one b-tree, on both engines. A nonce claimed before the migration
 * is still refused after it while its window is open; the sweep walks the claims in chunks and
 * deletes exactly the expired ones (they can be claimed again, the live ones still cannot); a claim
 * taken is withdrawn (the Shared Signals receiver releases a jti it did not keep).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { sql } from 'kysely';
import pg from 'pg';
import { NONCE_KIND } from '../crypto/console-signature.js';
import { tempDir } from '../temp-dir.js';
import { EPHEMERAL_SKEW_MARGIN_MS } from './kysely-revocations.js';
import { kyselyOf } from './kysely-store.js';
import { MIGRATIONS } from './migrations.js';
import { migratePostgres, POSTGRES_MIGRATIONS } from './postgres-migrations.js';
import { openPostgresStore } from './postgres-store.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from './postgres-throwaway.js';
import type { Store } from './repositories.js';
import { DATABASE_FILE, migrate, openSqliteStore } from './sqlite-store.js';

const VERSION = 29;
const T0 = 1_700_000_000_000;
const WINDOW = 5 * 60_000;

/** `ephemeral` rows as the builds before migration 29 wrote them: claims with no owner and no value. */
const BEFORE = [
  // Claimed a minute ago, its window still open: a replay must be refused after the migration.
  { kind: NONCE_KIND, key: 'con_a:open', owner: '', value: '', expires_at: T0 + WINDOW, created_seq: 1 },
  // Claimed long ago, expired: claimable again, as before.
  { kind: NONCE_KIND, key: 'con_a:expired', owner: '', value: '', expires_at: T0 - 1, created_seq: 2 },
  // A step-up challenge (put): stays where it is, taken once with its value.
  {
    kind: 'webauthn',
    key: 'con_a:c1',
    owner: 'con_a',
    value: '{"purpose":"step-up"}',
    expires_at: T0 + 60_000,
    created_seq: 3,
  },
];
const COLUMNS = 'kind, key, owner, value, expires_at, created_seq';

async function claimsLeft(store: Store): Promise<number> {
  const db = kyselyOf(store);
  assert.ok(db !== undefined);
  const row = await db
    .selectFrom('ephemeral_claims')
    .select(sql<number>`COUNT(*)`.as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** What each engine must show, on a store opened over a database at schema version 28 holding BEFORE. */
function contract(openAt28: () => Promise<Store>, openFresh: () => Promise<Store>, margin: number) {
  it('refuses after the migration a nonce claimed before it, while its window is open', async () => {
    const store = await openAt28();
    try {
      assert.equal(await store.ephemeral.claimOnce(NONCE_KIND, 'con_a:open', T0 + WINDOW, T0 + 1000), false);
      assert.equal(
        (await store.ephemeral.claimMany(NONCE_KIND, [{ key: 'con_a:open', expiresAt: T0 + WINDOW }], T0 + 1000)).size,
        0,
        'refused by the grouped claim too (the request path)',
      );
      assert.equal(
        await store.ephemeral.claimOnce(NONCE_KIND, 'con_a:expired', T0 + WINDOW, T0 + 1000),
        true,
        'an expired nonce is claimable again',
      );
      assert.deepEqual(await store.ephemeral.take('webauthn', 'con_a:c1'), {
        owner: 'con_a',
        value: '{"purpose":"step-up"}',
        expiresAt: T0 + 60_000,
      });
      assert.equal(await store.ephemeral.take('webauthn', 'con_a:c1'), undefined, 'single use');
      // Once its window has passed, the nonce claimed before the migration is claimable again, and swept.
      assert.equal(await store.ephemeral.claimOnce(NONCE_KIND, 'con_a:open', T0 + 3 * WINDOW, T0 + WINDOW), true);
      assert.equal(await store.ephemeral.sweep(T0 + 4 * WINDOW + margin), 2);
      assert.equal(await claimsLeft(store), 0);
    } finally {
      await store.close();
    }
  });

  it('sweeps exactly the expired claims, chunk after chunk: they are claimable again, the live ones still refused', async () => {
    const store = await openFresh();
    try {
      // More claims than a sweep statement walks on either engine, in key order, one live after three expired: the
      // last claim of every chunk (the 1,000th, the 10,000th…) is an expired one, left behind by a walk that
      // mishandles the chunk boundaries.
      const keys = Array.from({ length: 25_000 }, (_, i) => `con_a:${String(i).padStart(6, '0')}`);
      const expired = keys.filter((_, i) => i % 4 !== 1);
      const live = keys.filter((_, i) => i % 4 === 1);
      const liveSet = new Set(live);
      const entries = keys.map((key) => ({ key, expiresAt: liveSet.has(key) ? T0 + 10 * WINDOW : T0 + 10 }));
      assert.equal((await store.ephemeral.claimMany(NONCE_KIND, entries, T0)).size, keys.length);
      assert.equal(await store.ephemeral.claimOnce('ssf-jti', 't1:j1', T0 + 10, T0), true);
      assert.equal(await store.ephemeral.claimOnce('ssf-jti', 't1:j2', T0 + 10 * WINDOW, T0), true);
      assert.equal(await store.ephemeral.sweep(T0 + 9 + margin), 0, 'nothing expired yet');
      assert.equal(await store.ephemeral.sweep(T0 + 10 + margin), expired.length + 1);
      assert.equal(await claimsLeft(store), live.length + 1, 'only the live claims are left');
      const now = T0 + 20;
      const replayed = await store.ephemeral.claimMany(
        NONCE_KIND,
        live.map((key) => ({ key, expiresAt: T0 + 10 * WINDOW })),
        now,
      );
      assert.equal(replayed.size, 0, 'every live nonce is still refused');
      assert.equal(await store.ephemeral.claimOnce('ssf-jti', 't1:j2', T0 + 10 * WINDOW, now), false);
      const again = await store.ephemeral.claimMany(
        NONCE_KIND,
        expired.map((key) => ({ key, expiresAt: now + WINDOW })),
        now,
      );
      assert.equal(again.size, expired.length, 'every swept nonce is claimable again');
    } finally {
      await store.close();
    }
  });

  it('withdraws a claim that is taken: claimable again once, then refused', async () => {
    const store = await openFresh();
    try {
      assert.equal(await store.ephemeral.claimOnce('ssf-jti', 't1:j1', T0 + 100, T0), true);
      assert.deepEqual(await store.ephemeral.take('ssf-jti', 't1:j1'), { owner: '', value: '', expiresAt: T0 + 100 });
      assert.equal(await store.ephemeral.take('ssf-jti', 't1:j1'), undefined);
      assert.equal(await store.ephemeral.claimOnce('ssf-jti', 't1:j1', T0 + 100, T0 + 1), true);
      assert.equal(await store.ephemeral.claimOnce('ssf-jti', 't1:j1', T0 + 100, T0 + 2), false);
    } finally {
      await store.close();
    }
  });
}

describe('ephemeral_claims on SQLite (migration 29)', () => {
  contract(
    () => {
      const dataDir = tempDir('baton-claims-');
      const db = new Database(join(dataDir, DATABASE_FILE));
      try {
        migrate(
          db,
          MIGRATIONS.filter((m) => m.version < VERSION),
        );
        const insert = db.prepare(`INSERT INTO ephemeral (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)`);
        for (const r of BEFORE) insert.run(r.kind, r.key, r.owner, r.value, r.expires_at, r.created_seq);
      } finally {
        db.close();
      }
      return Promise.resolve(openSqliteStore({ dataDir, durability: 'normal' }));
    },
    () => Promise.resolve(openSqliteStore({ dataDir: tempDir('baton-claims-'), durability: 'normal' })),
    0,
  );
});

describe('ephemeral_claims on PostgreSQL (migration 29)', { skip: postgresSkip() }, () => {
  let server: PostgresServer | undefined;
  let databases = 0;
  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await server?.stop();
  });
  const fresh = () => {
    if (server === undefined) throw new Error('no PostgreSQL server');
    return createDatabase(server.url, `claims_${++databases}`);
  };

  contract(
    async () => {
      const url = await fresh();
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await migratePostgres(
          client,
          POSTGRES_MIGRATIONS.filter((m) => m.version < VERSION),
        );
        for (const r of BEFORE) {
          await client.query(`INSERT INTO ephemeral (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)`, [
            r.kind,
            r.key,
            r.owner,
            r.value,
            r.expires_at,
            r.created_seq,
          ]);
        }
      } finally {
        await client.end();
      }
      return openPostgresStore({ url });
    },
    async () => openPostgresStore({ url: await fresh() }),
    EPHEMERAL_SKEW_MARGIN_MS,
  );
});
