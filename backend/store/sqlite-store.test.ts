import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
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
