import assert from 'node:assert/strict';
import { fdatasync, fstatSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { CompiledQuery } from 'kysely';
import { kyselyOf } from './kysely-store.js';
import { DATABASE_FILE, openSqliteStore } from './sqlite-store.js';
import type { EventRow, Store } from './repositories.js';
import { tempDir } from '../temp-dir.js';
import { settledSoon } from '../test-kit.js';

/** A WAL flush the test releases (or fails) by hand, and the file descriptors it was asked to flush. */
function heldFlush() {
  const calls: { fd: number; release: () => void; fail: (error: Error) => void }[] = [];
  let called: () => void = () => undefined;
  let opened = false;
  return {
    calls,
    syncWal: (fd: number) =>
      new Promise<void>((resolve, reject) => {
        calls.push({ fd, release: resolve, fail: reject });
        if (opened) resolve();
        called();
      }),
    /** Releases every flush asked for, and every later one at once (the end of a test, passed or failed). */
    open: () => {
      opened = true;
      for (const call of calls) call.release();
    },
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

/**
 * A store whose flushes the test holds, with unit `a` (meta 'a' = '1') committed and its flush asked for
 * but held: what `test` does beside it, its Kysely `db` outside any unit. Everything is released at the end.
 */
async function withUnitFlushing(
  test: (t: {
    flush: ReturnType<typeof heldFlush>;
    store: Store;
    a: Promise<void>;
    db: NonNullable<ReturnType<typeof kyselyOf>>;
  }) => Promise<void>,
): Promise<void> {
  const flush = heldFlush();
  const store = openSqliteStore({ dataDir: tempDir('baton-store-'), durability: 'full', syncWal: flush.syncWal });
  const db = kyselyOf(store);
  assert.ok(db !== undefined);
  try {
    const a = store.transaction((tx) => tx.meta.set('a', '1'));
    await flush.asked(1);
    await test({ flush, store, a, db });
  } finally {
    flush.open();
    await store.close();
  }
}

/** What another connection to the file reads of `meta` now: the rows committed, flushed or not. */
function committedMeta(dir: string, key: string): string | undefined {
  const reader = new Database(join(dir, DATABASE_FILE), { readonly: true });
  try {
    const row = reader.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return row?.value;
  } finally {
    reader.close();
  }
}

async function pragma(store: Store, name: string): Promise<unknown> {
  const db = kyselyOf(store);
  if (db === undefined) throw new Error('not a Kysely store');
  const result = await db.executeQuery<Record<string, unknown>>(CompiledQuery.raw(`PRAGMA ${name}`));
  return Object.values(result.rows[0] ?? {})[0];
}

const NORMAL = 1;
const FULL = 2;

function event(seq: number): EventRow {
  return {
    origin: 'backend',
    seq,
    id: `evt_${seq}`,
    time: 1_000,
    receivedAt: 1_000,
    type: 'test',
    outcome: 'success',
    operatorId: null,
    consoleId: null,
    sessionId: null,
    serviceId: null,
    body: '{}',
    hash: `h${seq}`,
    integrity: [],
  };
}

describe('SQLite store, durability full: group flush of the WAL, connection free while the disk works', () => {
  it('a unit resolves only after a flush that started after its commit, and the connection is free meanwhile', async () => {
    const dir = tempDir('baton-store-');
    const flush = heldFlush();
    const store = openSqliteStore({ dataDir: dir, durability: 'full', syncWal: flush.syncWal });
    try {
      const a = store.transaction((tx) => tx.meta.set('a', '1'));
      await flush.asked(1);
      const first = flush.calls[0];
      assert.ok(first !== undefined);
      assert.equal(fstatSync(first.fd).ino, statSync(join(dir, `${DATABASE_FILE}-wal`)).ino, 'the WAL file is flushed');
      // While A's flush is in flight, B runs and commits: the connection is not held by A.
      const b = store.transaction((tx) => tx.meta.set('b', '2'));
      assert.equal(await settledSoon(b), false);
      assert.equal(committedMeta(dir, 'b'), '2', 'B has committed while A waits for its flush');
      // A read outside a unit runs at once, but may have seen B's unflushed row: its answer waits for B's flush.
      const readB = store.meta.get('b');
      assert.equal(await settledSoon(readB), false, 'a read waits for the flush due for what was committed before it');
      assert.equal(await settledSoon(a), false, 'A waits for its flush');
      assert.equal(flush.calls.length, 1, 'one flush in flight at a time');
      first.release();
      await a;
      assert.equal(await settledSoon(b), false, 'B committed after that flush started: it waits for the next one');
      assert.equal(await settledSoon(readB), false, 'and so does the read that may have seen B');
      await flush.asked(2);
      flush.calls[1]?.release();
      await b;
      assert.equal(await readB, '2');
      assert.equal(
        await settledSoon(store.meta.get('b')),
        true,
        'with nothing owed to the disk a read waits for nothing',
      );
      assert.equal(await pragma(store, 'synchronous'), NORMAL, 'no PRAGMA flips: NORMAL for the whole life');
    } finally {
      flush.open();
      await store.close();
    }
  });

  it('units that commit while a flush is in flight share the next one and resolve in commit order', async () => {
    const flush = heldFlush();
    const store = openSqliteStore({ dataDir: tempDir('baton-store-'), durability: 'full', syncWal: flush.syncWal });
    try {
      const order: string[] = [];
      const unit = (key: string) => store.transaction((tx) => tx.meta.set(key, 'v')).then(() => void order.push(key));
      const x = unit('x');
      await flush.asked(1);
      const units = [unit('b'), unit('c'), unit('d')];
      // A hand-written read (ImmediateSqliteDriver.run) and a Kysely read run while the units wait; their
      // answers (which may show b, c and d) wait for the flush that covers them.
      const reads = Promise.all([store.consoles.get('con_none'), store.meta.get('d')]);
      assert.equal(await settledSoon(reads), false);
      flush.calls[0]?.release();
      await x;
      await flush.asked(2);
      assert.equal(await settledSoon(Promise.all(units)), false, 'b, c and d wait for the second flush');
      assert.equal(await settledSoon(reads), false);
      flush.calls[1]?.release();
      await Promise.all(units);
      assert.deepEqual(await reads, [undefined, 'v']);
      assert.equal(flush.calls.length, 2, 'three units, one flush');
      assert.deepEqual(order, ['x', 'b', 'c', 'd']);
    } finally {
      flush.open();
      await store.close();
    }
  });

  it('a failed flush fails the units it covered, not those committed after it started; every row reads back', async () => {
    const flush = heldFlush();
    const dir = tempDir('baton-store-');
    const store = openSqliteStore({ dataDir: dir, durability: 'full', syncWal: flush.syncWal });
    try {
      const x = store.transaction((tx) => tx.meta.set('x', '1'));
      await flush.asked(1);
      const a = store.transaction((tx) => tx.meta.set('a', '1'));
      const b = store.transaction((tx) => tx.meta.set('b', '1'));
      assert.equal(await settledSoon(b), false);
      assert.equal(committedMeta(dir, 'b'), '1', 'a and b committed while the first flush is in flight');
      const readA = store.meta.get('a');
      flush.calls[0]?.release();
      await x;
      await flush.asked(2); // covers a and b
      const c = store.transaction((tx) => tx.meta.set('c', '1'));
      assert.equal(await settledSoon(c), false);
      assert.equal(committedMeta(dir, 'c'), '1', 'c committed while the second flush is in flight');
      flush.calls[1]?.fail(new Error('EIO: i/o error, fdatasync'));
      await assert.rejects(readA, { code: 'INTERNAL' }, 'a read that may have seen a or b fails with their flush');
      const [failedA, failedB] = await Promise.allSettled([a, b]);
      assert.equal(failedA?.status, 'rejected');
      assert.equal(failedB?.status, 'rejected');
      const reason = failedA?.status === 'rejected' ? (failedA.reason as { code?: string; message?: string }) : {};
      assert.equal(reason.code, 'INTERNAL');
      assert.match(reason.message ?? '', /could not be flushed to disk/);
      assert.equal(await settledSoon(c), false, 'c was not covered: it waits for a flush of its own');
      await flush.asked(3);
      flush.calls[2]?.release();
      await c;
      // The failed units' rows are committed (the caller cannot tell whether they survive a power loss).
      assert.deepEqual(await Promise.all(['x', 'a', 'b', 'c'].map((k) => store.meta.get(k))), ['1', '1', '1', '1']);
      assert.equal(await pragma(store, 'integrity_check'), 'ok');
      const next = store.transaction((tx) => tx.meta.set('d', '1'));
      await flush.asked(4);
      flush.calls[3]?.release();
      await next;
    } finally {
      flush.open();
      await store.close();
    }
  });

  it('a write outside a unit (Kysely autocommit, a hand-written statement) waits for a flush; a nonce claim and a read do not ask for one', async () => {
    const flush = heldFlush();
    const storeDir = tempDir('baton-store-');
    const store = openSqliteStore({ dataDir: storeDir, durability: 'full', syncWal: flush.syncWal });
    try {
      assert.equal(await store.meta.get('k'), undefined);
      assert.equal(await store.ephemeral.claimOnce('nonce', 'n1', 2_000, 1_000), true, 'a relaxed commit: no flush');
      assert.equal(flush.calls.length, 0, 'neither the read nor the claim asked for a flush');
      const autocommit = store.meta.set('k', 'v');
      assert.equal(await settledSoon(autocommit), false, 'the autocommit write waits for its flush');
      assert.equal(flush.calls.length, 1);
      assert.equal(committedMeta(storeDir, 'k'), 'v', 'committed, and the connection is free');
      flush.calls[0]?.release();
      await autocommit;
      const handWritten = store.events.insert(event(1));
      assert.equal(await settledSoon(handWritten), false, 'a hand-written insert outside a unit waits for its flush');
      await flush.asked(2);
      flush.calls[1]?.release();
      assert.deepEqual(await handWritten, { inserted: true, cursor: 1 });
    } finally {
      flush.open();
      await store.close();
    }
  });

  it('while a flush is owed, a read waits for it; a nonce claim and a unit that fails do not', async () => {
    const flush = heldFlush();
    const store = openSqliteStore({ dataDir: tempDir('baton-store-'), durability: 'full', syncWal: flush.syncWal });
    try {
      const a = store.transaction((tx) => tx.meta.set('a', '1'));
      await flush.asked(1);
      const read = store.meta.get('a');
      assert.equal(await settledSoon(read), false, 'a read may have seen a: it waits for its flush');
      const claim = store.ephemeral.claimOnce('nonce', 'n1', 2_000, 1_000);
      assert.equal(await settledSoon(claim), true, 'a nonce claim touches only its own single-use row');
      assert.equal(await claim, true);
      const failing = store.transaction(async (tx) => {
        await tx.meta.set('b', '1');
        throw new Error('the caller’s own refusal');
      });
      assert.equal(await settledSoon(failing), true, 'a unit that rolls back gets its own error at once');
      await assert.rejects(failing, /the caller’s own refusal/);
      flush.calls[0]?.release();
      await a;
      assert.equal(await read, '1');
      assert.equal(flush.calls.length, 1, 'neither the claim nor the rollback asked for a flush');
    } finally {
      flush.open();
      await store.close();
    }
  });

  it('a Kysely statement outside a unit that fails gets its own error at once, not the failure of a flush owed by others', async () => {
    await withUnitFlushing(async ({ flush, a, db }) => {
      const duplicate = db.insertInto('meta').values({ key: 'a', value: '2' }).execute();
      const settled = await settledSoon(duplicate);
      flush.calls[0]?.fail(new Error('EIO: i/o error, fdatasync'));
      await assert.rejects(
        duplicate,
        { code: 'SQLITE_CONSTRAINT_PRIMARYKEY' },
        'its own error, not the flush’s INTERNAL',
      );
      assert.equal(settled, true, 'it wrote nothing: it waited for no flush');
      await assert.rejects(a, { code: 'INTERNAL' }, 'the unit the flush covered fails with it');
      assert.equal(flush.calls.length, 1, 'the failed statement asked for no flush');
    });
  });

  it('a Kysely statement outside a unit that fails after writing part of its rows (OR FAIL) still waits for its flush', async () => {
    await withUnitFlushing(async ({ flush, store, a, db }) => {
      flush.calls[0]?.release();
      await a;
      // 'b' is written and stays written; 'a' fails: the statement's error, but 'b' is a committed row.
      const partial = db.executeQuery(
        CompiledQuery.raw("INSERT OR FAIL INTO meta (key, value) VALUES ('b', '1'), ('a', '2')"),
      );
      const settled = await settledSoon(partial);
      flush.open();
      await assert.rejects(partial, { code: 'SQLITE_CONSTRAINT_PRIMARYKEY' });
      assert.equal(settled, false, 'it wrote a row: its error waited for the flush that makes that row durable');
      assert.equal(await store.meta.get('b'), '1');
    });
  });

  it('with the real fdatasync, concurrent units share flushes and their rows survive a reopen', async () => {
    const dir = tempDir('baton-store-');
    let flushes = 0;
    const syncWal = (fd: number) =>
      new Promise<void>((resolve, reject) => {
        flushes++;
        fdatasync(fd, (error) => (error === null ? resolve() : reject(error)));
      });
    const store = openSqliteStore({ dataDir: dir, durability: 'full', syncWal });
    const keys = Array.from({ length: 16 }, (_, i) => `k${i}`);
    try {
      await Promise.all(keys.map((k) => store.transaction((tx) => tx.meta.set(k, k))));
      assert.ok(flushes >= 1 && flushes < keys.length, `16 units, ${flushes} flushes`);
    } finally {
      await store.close();
    }
    const reopened = openSqliteStore({ dataDir: dir, durability: 'full' });
    try {
      assert.deepEqual(await Promise.all(keys.map((k) => reopened.meta.get(k))), keys);
    } finally {
      await reopened.close();
    }
  });

  it('a unit that rolls back asks for no flush', async () => {
    const flush = heldFlush();
    const store = openSqliteStore({ dataDir: tempDir('baton-store-'), durability: 'full', syncWal: flush.syncWal });
    try {
      await assert.rejects(
        store.transaction(async (tx) => {
          await tx.meta.set('k', 'v');
          throw new Error('no');
        }),
        /^Error: no$/,
      );
      assert.equal(await store.meta.get('k'), undefined);
      assert.equal(flush.calls.length, 0);
    } finally {
      await store.close();
    }
  });

  it('with durability normal, or SQLite’s fsync on the loop, no flush is asked for', async () => {
    const flush = heldFlush();
    const normal = openSqliteStore({ dataDir: tempDir('baton-store-'), durability: 'normal', syncWal: flush.syncWal });
    try {
      await normal.transaction((tx) => tx.meta.set('k', 'v'));
      await normal.meta.set('k2', 'v');
      assert.equal(await pragma(normal, 'synchronous'), NORMAL);
    } finally {
      await normal.close();
    }
    process.env.BATON_SQLITE_SYNC_ON_LOOP = '1';
    const onLoop = openSqliteStore({ dataDir: tempDir('baton-store-'), durability: 'full', syncWal: flush.syncWal });
    delete process.env.BATON_SQLITE_SYNC_ON_LOOP;
    try {
      await onLoop.transaction((tx) => tx.meta.set('k', 'v'));
      await onLoop.meta.set('k2', 'v');
      assert.equal(await onLoop.ephemeral.claimOnce('nonce', 'n1', 2_000, 1_000), true);
      assert.equal(await pragma(onLoop, 'synchronous'), FULL, 'SQLite fsyncs inside COMMIT');
    } finally {
      await onLoop.close();
    }
    assert.equal(flush.calls.length, 0);
  });
});
