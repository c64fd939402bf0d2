/**
 * The last-seen flush (`ConsoleRepository.touchMany`) on PostgreSQL beside a transaction that locks
 * the same console rows, as a revocation ack group does (ascending id, FOR UPDATE): the flush gives
 * way, and no sighting is lost. On embedded SQLite (a synchronous driver), a flush of thousands of
 * consoles gives way to a write that arrives meanwhile, and still writes every sighting.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { tempDir } from '../temp-dir.js';
import { openPostgresStore } from './postgres-store.js';
import type { Store } from './repositories.js';
import { openSqliteStore } from './sqlite-store.js';
import { consoleRow } from './test-kit.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from './postgres-throwaway.js';

const pgSkip = postgresSkip();
let server: PostgresServer | undefined;

before(async () => {
  if (pgSkip === false) server = await startPostgres();
});
after(async () => {
  await server?.stop();
});

const T0 = 1_800_000_000_000;

describe('SQLite last-seen flush beside another write', () => {
  // `normal`: commits without a wait for the disk, so only the flush's own turns of the event loop let the
  // other write in (with `full`, it also gets in while a chunk's commit waits for its fdatasync).
  for (const durability of ['normal', 'full'] as const) {
    it(`lets a write that arrives during a flush of 2,000 consoles commit before the flush ends, and writes every sighting (durability ${durability})`, async () => {
      const dir = tempDir('baton-touch-');
      const store: Store = openSqliteStore({ dataDir: dir, durability });
      try {
        const ids = Array.from({ length: 2000 }, (_, i) => `c${String(i).padStart(4, '0')}`);
        await store.transaction(async (tx) => {
          for (const id of ids) await tx.consoles.insert(consoleRow(id, T0));
        });
        const order: string[] = [];
        const flush = store.consoles
          .touchMany(ids.map((id) => ({ id, at: T0 + 1000 })))
          .then(() => order.push('flush'));
        // A revocation (or any unit of work) arriving while the flush is under way.
        await new Promise((resolve) => setImmediate(resolve));
        const other = store
          .transaction(async (tx) => {
            await tx.consoles.revoke('c1999', T0 + 2000, 'revoked meanwhile');
          })
          .then(() => order.push('other write'));
        await Promise.all([flush, other]);
        // One unit for all 2,000 held the other write until the whole flush had committed.
        assert.deepEqual(order, ['other write', 'flush']);
        const rows = await store.consoles.list();
        assert.equal(rows.length, 2000);
        assert.deepEqual(
          rows.filter((r) => r.lastSeenAt !== T0 + 1000).map((r) => r.id),
          [],
          'every sighting is written',
        );
        const revoked = rows.find((r) => r.id === 'c1999');
        assert.equal(revoked?.revokedAt, T0 + 2000);
        // A time never moves back: an older sighting written later leaves the newer one.
        await store.consoles.touchMany([{ id: 'c0000', at: T0 + 500 }]);
        assert.equal((await store.consoles.get('c0000'))?.lastSeenAt, T0 + 1000);
      } finally {
        await store.close();
      }
    });
  }
});

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('PostgreSQL last-seen flush beside an ack group', { skip: pgSkip }, () => {
  it('writes the rows nobody holds at once, lets a transaction that locks every row in ascending id through, then writes the rows it held', async () => {
    const url = await createDatabase(server!.url, `touch_${process.pid}`, { migrated: true });
    const store = await openPostgresStore({ url });
    const other = new pg.Client({ connectionString: url });
    await other.connect();
    try {
      const ids = Array.from({ length: 600 }, (_, i) => `c${String(i).padStart(4, '0')}`);
      for (const id of ids) {
        await store.consoles.insert(consoleRow(id, T0));
      }
      const seen = async () =>
        Number(
          (await other.query<{ n: string }>('SELECT count(*) AS n FROM consoles WHERE last_seen_at = $1', [T0 + 1000]))
            .rows[0]?.n,
        );
      // Another transaction (an ack group) holds one console row.
      await other.query('BEGIN');
      await other.query("SELECT id FROM consoles WHERE id = 'c0100' FOR UPDATE");
      let flushed = false;
      const flush = store.consoles.touchMany(ids.map((id) => ({ id, at: T0 + 1000 }))).then(() => {
        flushed = true;
      });
      // The rows nobody holds are written (committed) while that transaction is still open.
      // (Read in the other transaction: READ COMMITTED, each statement sees what is committed.)
      await waitUntil('the free rows are written', async () => (await seen()) === 599);
      assert.equal(flushed, false, 'the held row is still to be written');
      // The ack group goes on to lock every console in ascending id: the flush holds none of them
      // (before, the flush held every row but the one it waited for: a deadlock, one side aborted).
      const { rows } = await other.query("SELECT id FROM consoles WHERE id LIKE 'c%' ORDER BY id FOR UPDATE");
      assert.equal(rows.length, 600);
      await other.query(`UPDATE consoles SET revocation_epoch = 7 WHERE id LIKE 'c%'`);
      await other.query('COMMIT');
      await flush;
      assert.equal(await seen(), 600, 'every sighting written, the held row after the transaction ended');
      assert.equal((await store.consoles.get('c0100'))?.revocationEpoch, 7, "the other transaction's write stands");
      // A time never moves back.
      await store.consoles.touchMany([{ id: 'c0100', at: T0 + 500 }]);
      assert.equal((await store.consoles.get('c0100'))?.lastSeenAt, T0 + 1000);
    } finally {
      await other.end().catch(() => undefined);
      await store.close();
    }
  });
});
