import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { CompiledQuery } from 'kysely';
import { kyselyOf } from './kysely-store.js';
import { DATABASE_FILE, openSqliteStore } from './sqlite-store.js';
import { SAFETY_PAGES, WalCheckpointer } from './sqlite-wal-sync-checkpointer.js';
import type { Store } from './repositories.js';

async function pragma(store: Store, name: string): Promise<unknown> {
  const db = kyselyOf(store);
  if (db === undefined) throw new Error('not a Kysely store');
  const result = await db.executeQuery<Record<string, unknown>>(CompiledQuery.raw(`PRAGMA ${name}`));
  return Object.values(result.rows[0] ?? {})[0];
}

/** The value of `key` in a copy of the database file alone (without its WAL): what a checkpoint has copied there. */
function inDatabaseFileAlone(dir: string, key: string): string | undefined {
  const copyDir = mkdtempSync(join(tmpdir(), 'baton-ckpt-copy-'));
  try {
    copyFileSync(join(dir, DATABASE_FILE), join(copyDir, DATABASE_FILE));
    const db = new Database(join(copyDir, DATABASE_FILE), { readonly: true });
    try {
      const row = db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
      return row?.value;
    } finally {
      db.close();
    }
  } catch {
    return undefined; // a copy taken while a checkpoint writes may be torn: the next look sees it whole
  } finally {
    rmSync(copyDir, { recursive: true, force: true });
  }
}

describe('SQLite store: WAL checkpoints on a worker thread, off the event loop', () => {
  it("committed units reach the database file without the store's connection checkpointing", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-store-'));
    const store = openSqliteStore({ dataDir: dir, durability: 'full' });
    try {
      // The store's own connection checkpoints only past the safety bound, far above what this test writes.
      assert.equal(Number(await pragma(store, 'wal_autocheckpoint')), SAFETY_PAGES);
      for (let i = 0; i < 50; i++) await store.transaction((tx) => tx.meta.set(`k${i}`, `v${i}`));
      // Wait for the state a restore from the database file alone would see (no fixed time; bounded).
      const deadline = Date.now() + 30_000;
      while (inDatabaseFileAlone(dir, 'k49') !== 'v49' && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(inDatabaseFileAlone(dir, 'k49'), 'v49', "the worker's checkpoint copied the last unit");
      // The store goes on writing and reading after (and during) the worker's checkpoints.
      await store.transaction((tx) => tx.meta.set('after', 'yes'));
      assert.equal(await store.meta.get('after'), 'yes');
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the store closes its checkpointer: after close the WAL is checkpointed and removed, nothing holds the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-store-'));
    const store = openSqliteStore({ dataDir: dir, durability: 'full' });
    await store.transaction((tx) => tx.meta.set('k', 'v'));
    await store.close();
    // The last connection to close (the store's, after the worker's) checkpoints and deletes the WAL.
    assert.equal(existsSync(join(dir, `${DATABASE_FILE}-wal`)), false);
    assert.equal(inDatabaseFileAlone(dir, 'k'), 'v');
    rmSync(dir, { recursive: true, force: true });
  });

  it('a checkpoint that fails is reported, and the checkpointer still closes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-ckpt-'));
    const errors: string[] = [];
    const checkpointer = new WalCheckpointer(join(dir, 'missing.db'), { onError: (m) => errors.push(m) });
    await assert.rejects(checkpointer.checkpointNow());
    assert.ok(checkpointer.failures >= 1);
    assert.ok(errors.length >= 1);
    await checkpointer.close();
    rmSync(dir, { recursive: true, force: true });
  });
});
