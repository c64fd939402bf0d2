/**
 * Named prepared statements on the PostgreSQL pool (postgres-store.ts): what a node sees when the
 * table under a prepared statement changes (another node of the cluster migrated it during a rolling
 * upgrade), and the switch for poolers that cannot keep prepared statements.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { sql } from 'kysely';
import { kyselyOf } from './kysely-store.js';
import { openPostgresStore } from './postgres-store.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from './postgres-throwaway.js';

const pgSkip = postgresSkip();
let server: PostgresServer | undefined;
let databases = 0;

before(async () => {
  if (pgSkip === false) server = await startPostgres();
});
after(async () => {
  await server?.stop();
});

async function raw(url: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

async function freshUrl(): Promise<string> {
  const url = await createDatabase(server!.url, `prepared_${process.pid}_${databases++}`, { migrated: true });
  await raw(
    url,
    `create table teller_notes (id int primary key, note text not null);
                  insert into teller_notes values (1, 'cash drawer'), (2, 'vault')`,
  );
  return url;
}

describe('PostgreSQL pool: named prepared statements', { skip: pgSkip }, () => {
  it('a table changed under a prepared statement (another node migrated it): the store answers with the new shape, in and out of a transaction', async () => {
    const url = await freshUrl();
    const store = await openPostgresStore({ url, poolSize: 1 });
    try {
      const db = kyselyOf(store)!;
      const note = async (id: number) =>
        (await sql<Record<string, unknown>>`select * from teller_notes where id = ${id}`.execute(db)).rows[0];
      for (let i = 0; i < 3; i++) assert.deepEqual(await note(1), { id: 1, note: 'cash drawer' });
      const prepared = await sql<{ n: number }>`select count(*)::int as n from pg_prepared_statements`.execute(db);
      assert.ok(prepared.rows[0]!.n >= 1, 'the repeated statement runs as a prepared statement');

      await raw(url, `alter table teller_notes add column branch text not null default 'HQ'`);
      // Outside a transaction: answered at once, with the column the other node added.
      assert.deepEqual(await note(2), { id: 2, note: 'vault', branch: 'HQ' });
      assert.deepEqual(await note(1), { id: 1, note: 'cash drawer', branch: 'HQ' });

      for (let i = 0; i < 3; i++) await note(1); // prepared again on the fresh connection
      await raw(url, `alter table teller_notes add column till int`);
      // Inside a transaction the unit fails at most once; the next unit runs on a fresh connection.
      const unit = () =>
        db.transaction().execute(async (trx) => {
          return (await sql<Record<string, unknown>>`select * from teller_notes where id = ${1}`.execute(trx)).rows[0];
        });
      let answer: Record<string, unknown> | undefined;
      let failures = 0;
      for (let attempt = 0; attempt < 2 && answer === undefined; attempt++) {
        try {
          answer = await unit();
        } catch (error) {
          failures++;
          assert.equal((error as { code?: string }).code, '0A000');
        }
      }
      assert.ok(failures <= 1, 'at most one unit fails');
      assert.deepEqual(answer, { id: 1, note: 'cash drawer', branch: 'HQ', till: null });
      assert.deepEqual(await note(2), { id: 2, note: 'vault', branch: 'HQ', till: null });
    } finally {
      await store.close();
    }
  });

  it('preparedStatements: false (a pooler that cannot keep them): nothing is prepared on the server', async () => {
    const url = await freshUrl();
    const store = await openPostgresStore({ url, poolSize: 1, preparedStatements: false });
    try {
      const db = kyselyOf(store)!;
      for (let i = 0; i < 4; i++) {
        const row = (await sql<{ note: string }>`select note from teller_notes where id = ${2}`.execute(db)).rows[0];
        assert.equal(row?.note, 'vault');
      }
      const prepared = await sql<{ n: number }>`select count(*)::int as n from pg_prepared_statements`.execute(db);
      assert.equal(prepared.rows[0]!.n, 0);
    } finally {
      await store.close();
    }
  });
});
