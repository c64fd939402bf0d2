import assert from 'node:assert/strict';
import { fstatSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CompiledQuery } from 'kysely';
import { kyselyOf } from './kysely-store.js';
import { DATABASE_FILE, openSqliteStore } from './sqlite-store.js';
import type { Store } from './repositories.js';
import { tempDir } from '../temp-dir.js';

/** A WAL flush the test releases (or fails) by hand, and the file descriptors it was asked to flush. */
function heldFlush() {
  const calls: { fd: number; release: () => void; fail: (error: Error) => void }[] = [];
  let called: () => void = () => undefined;
  return {
    calls,
    syncWal: (fd: number) =>
      new Promise<void>((resolve, reject) => {
        calls.push({ fd, release: resolve, fail: reject });
        called();
      }),
    /** Resolves once the flush has been asked for `n` times in all. */
    asked: (n: number) =>
      new Promise<void>((resolve) => {
        called = () => {
          if (calls.length >= n) resolve();
        };
        called();
      }),
  };
}

/** Whether `promise` has settled after the event loop has turned a few times (it cannot, if it waits on a held flush). */
async function settledSoon(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  return settled;
}

async function synchronous(store: Store): Promise<number> {
  const db = kyselyOf(store);
  if (db === undefined) throw new Error('not a Kysely store');
  const result = await db.executeQuery<{ synchronous: number }>(CompiledQuery.raw('PRAGMA synchronous'));
  return Number(result.rows[0]?.synchronous);
}

const FULL = 2;

describe('SQLite store, durability full: the WAL flush of a unit of work off the event loop', () => {
  it('a unit resolves only once its WAL is flushed, and nothing reads what it wrote before that', async () => {
    const dir = tempDir('baton-store-');
    const flush = heldFlush();
    const store = openSqliteStore({ dataDir: dir, durability: 'full', syncWal: flush.syncWal });
    try {
      const unit = store.transaction((tx) => tx.meta.set('k', 'v'));
      await flush.asked(1);
      const first = flush.calls[0];
      assert.ok(first !== undefined);
      assert.equal(fstatSync(first.fd).ino, statSync(join(dir, `${DATABASE_FILE}-wal`)).ino, 'the WAL file is flushed');
      const read = store.meta.get('k');
      assert.equal(await settledSoon(unit), false, 'the unit waits for its flush');
      assert.equal(await settledSoon(read), false, 'a read waits for the flush of the commit before it');
      first.release();
      await unit;
      assert.equal(await read, 'v');
      assert.equal(await synchronous(store), FULL, 'a statement outside a unit still commits with FULL');
    } finally {
      for (const call of flush.calls) call.release();
      await store.close();
    }
  });

  it('a failed flush fails the unit with a clear error, and the store goes on', async () => {
    const flush = heldFlush();
    const store = openSqliteStore({
      dataDir: tempDir('baton-store-'),
      durability: 'full',
      syncWal: flush.syncWal,
    });
    try {
      const unit = store.transaction((tx) => tx.meta.set('k', 'v'));
      await flush.asked(1);
      flush.calls[0]?.fail(new Error('EIO: i/o error, fdatasync'));
      await assert.rejects(unit, /could not be flushed to disk/);
      assert.equal(await synchronous(store), FULL);
      const next = store.transaction((tx) => tx.meta.set('k2', 'v2'));
      await flush.asked(2);
      flush.calls[1]?.release();
      await next;
      assert.equal(await store.meta.get('k2'), 'v2');
    } finally {
      for (const call of flush.calls) call.release();
      await store.close();
    }
  });

  it('a unit that rolls back asks for no flush and leaves FULL in place', async () => {
    const flush = heldFlush();
    const store = openSqliteStore({
      dataDir: tempDir('baton-store-'),
      durability: 'full',
      syncWal: flush.syncWal,
    });
    try {
      await assert.rejects(
        store.transaction(async (tx) => {
          await tx.meta.set('k', 'v');
          throw new Error('no');
        }),
        /^Error: no$/,
      );
      assert.equal(flush.calls.length, 0);
      assert.equal(await store.meta.get('k'), undefined);
      assert.equal(await synchronous(store), FULL);
    } finally {
      await store.close();
    }
  });

  it('with durability normal no flush is asked for', async () => {
    const flush = heldFlush();
    const store = openSqliteStore({
      dataDir: tempDir('baton-store-'),
      durability: 'normal',
      syncWal: flush.syncWal,
    });
    try {
      await store.transaction((tx) => tx.meta.set('k', 'v'));
      assert.equal(flush.calls.length, 0);
    } finally {
      await store.close();
    }
  });
});
