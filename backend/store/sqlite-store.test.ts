import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { sql } from 'kysely';
import { kyselyOf } from './kysely-store.js';
import type { Store } from './repositories.js';
import { MIGRATIONS } from './migrations.js';
import { DATABASE_FILE, migrate, openSqliteStore } from './sqlite-store.js';
import { SqliteEphemeral } from './sqlite-ephemeral.js';
import { relaxedByPragma } from './sqlite-wal-sync.js';
import { tempDir } from '../temp-dir.js';

describe('SQLite store', () => {
  it('applies the numbered migrations once and records the schema version', async () => {
    const dir = tempDir('baton-store-');
    await openSqliteStore({ dataDir: dir, durability: 'full' }).close();
    const store = openSqliteStore({ dataDir: dir, durability: 'full' });
    assert.equal(store.engine, 'sqlite');
    await store.close();
    const db = new Database(join(dir, DATABASE_FILE));
    assert.equal(db.pragma('user_version', { simple: true }), MIGRATIONS.at(-1)?.version);
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    db.close();
    assert.equal(statSync(join(dir, DATABASE_FILE)).mode & 0o777, 0o600);
  });

  it('refuses a database written by a newer build', () => {
    const dir = tempDir('baton-store-');
    const db = new Database(join(dir, DATABASE_FILE));
    db.pragma('user_version = 999');
    assert.throws(() => migrate(db), /newer than this build/);
    db.close();
  });

  it('rolls a failing migration back whole', () => {
    const db = new Database(':memory:');
    assert.throws(() => migrate(db, [{ version: 1, name: 'broken', sql: 'CREATE TABLE a (x); CREATE TABLE a (y);' }]));
    assert.equal(db.pragma('user_version', { simple: true }), 0);
    assert.equal((db.prepare("SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'a'").get() as { n: number }).n, 0);
    db.close();
  });

  it("with SQLite's fsync on the loop, commits challenges and nonces without an fsync, and leaves every other commit waiting for the disk (FULL), even when one fails", () => {
    const db = new Database(join(tempDir('baton-store-'), DATABASE_FILE));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    migrate(db);
    const FULL = 2;
    const ephemeral = new SqliteEphemeral(db, relaxedByPragma(db));
    const entry = { kind: 'webauthn', key: 'con_a:c1', owner: 'con_a', value: '{}', expiresAt: 2_000 };
    ephemeral.put(entry, 32);
    assert.equal(db.pragma('synchronous', { simple: true }), FULL);
    assert.throws(() => ephemeral.put(entry, 32), /UNIQUE/);
    assert.equal(db.pragma('synchronous', { simple: true }), FULL, 'restored after a failed write');
    assert.deepEqual(
      [
        ...ephemeral.claimMany(
          'nonce',
          [
            { key: 'n1', expiresAt: 2_000 },
            { key: 'n1', expiresAt: 2_000 },
            { key: 'n2', expiresAt: 2_000 },
          ],
          1_000,
        ),
      ],
      ['n1', 'n2'],
    );
    assert.equal(ephemeral.claimMany('nonce', [{ key: 'n1', expiresAt: 2_000 }], 1_000).size, 0, 'a replay is refused');
    assert.equal(ephemeral.take('webauthn', 'con_a:c1')?.owner, 'con_a');
    assert.equal(ephemeral.take('webauthn', 'con_a:c1'), undefined, 'single use');
    assert.equal(db.pragma('synchronous', { simple: true }), FULL);
    // Inside a unit of work the unit's own (FULL) commit decides: the setting is not touched there.
    db.transaction(() => {
      ephemeral.put({ ...entry, key: 'con_a:c2' }, 32);
      assert.equal(db.pragma('synchronous', { simple: true }), FULL);
    })();
    db.close();
  });

  it('validates rows read back: a corrupted enum is an error, not a trusted value', async () => {
    const dir = tempDir('baton-store-');
    const store = openSqliteStore({ dataDir: dir, durability: 'normal' });
    const raw = new Database(join(dir, DATABASE_FILE));
    raw.exec(
      `INSERT INTO revocations (kind, target_id, reason, actor, created_at) VALUES ('everything', 'x', 'r', 'a', 1)`,
    );
    raw.close();
    await assert.rejects(() => store.revocations.since(0), /unknown value/);
    await store.close();
  });
});

/** Makes the store's file full: no page beyond those it has (`PRAGMA max_page_count` on its own connection); returns the undo. */
async function fillDisk(store: Store): Promise<() => Promise<void>> {
  const db = kyselyOf(store);
  assert.ok(db !== undefined);
  const { rows } = await sql<{ page_count: number }>`PRAGMA page_count`.execute(db);
  await sql.raw(`PRAGMA max_page_count = ${rows[0]?.page_count ?? 0}`).execute(db);
  return async () => {
    await sql.raw('PRAGMA max_page_count = 1073741823').execute(db);
  };
}

const code = (error: unknown): unknown => (error as { code?: unknown }).code;
const TOO_BIG = 'x'.repeat(200_000); // far more than the free space in the file's pages

/**
 * On a full disk SQLite rolls the whole unit back by itself; Kysely's ROLLBACK then failed with
 * SQLITE_ERROR "cannot rollback - no transaction is active", which replaced the full disk (the caller
 * answered INTERNAL), and whatever the unit ran after a failure it caught committed on its own.
 */
for (const durability of ['full', 'normal'] as const) {
  describe(`SQLite store on a full disk (durability ${durability})`, () => {
    it('a unit that fills the disk fails with SQLITE_FULL, and nothing of it or before it changes', async () => {
      const store = openSqliteStore({ dataDir: tempDir('baton-store-'), durability });
      await store.meta.set('before', 'kept');
      const undo = await fillDisk(store);
      const failure = await store
        .transaction(async (tx) => {
          await tx.meta.set('first', 'x');
          await tx.meta.set('big', TOO_BIG);
        })
        .then(
          () => assert.fail('the unit committed on a full disk'),
          (error: unknown) => error,
        );
      assert.equal(code(failure), 'SQLITE_FULL', String(failure));
      await undo();
      assert.equal(await store.meta.get('first'), undefined, 'rolled back whole');
      assert.equal(await store.meta.get('before'), 'kept');
      await store.meta.set('after', 'y'); // the store works again once there is room
      assert.equal(await store.meta.get('after'), 'y');
      await store.close();
    });

    it('a unit that caught the full disk cannot go on: its next statements, hand-written or not, are refused and commit nothing', async () => {
      const store = openSqliteStore({ dataDir: tempDir('baton-store-'), durability });
      const undo = await fillDisk(store);
      const refused: unknown[] = [];
      const failure = await store
        .transaction(async (tx) => {
          await tx.meta.set('big', TOO_BIG).catch(() => undefined); // a caller that swallows the error
          await tx.meta.set('kysely', 'x').catch((error: unknown) => refused.push(error));
          await tx.ephemeral
            .put({ kind: 'test', key: 'hand-written', owner: 'o', value: 'x', expiresAt: 2_000 })
            .catch((error: unknown) => refused.push(error));
        })
        .then(
          () => undefined,
          (error: unknown) => error,
        );
      assert.deepEqual(refused.map(code), ['SQLITE_FULL', 'SQLITE_FULL']);
      assert.match(String(refused[0]), /rolled the unit of work back itself \("database or disk is full"\)/);
      assert.equal(code(failure), 'SQLITE_FULL', 'the COMMIT is refused the same way');
      await undo();
      assert.equal(await store.meta.get('kysely'), undefined, 'nothing committed on its own');
      assert.equal(await store.ephemeral.take('test', 'hand-written'), undefined, 'nothing committed on its own');
      await store.close();
    });
  });
}
