/**
 * Named prepared statements on the PostgreSQL pool (postgres-store.ts): what a node sees when the
 * table under a prepared statement changes (another node of the cluster migrated it during a rolling
 * upgrade), the switch for poolers that cannot keep prepared statements, and the events' array insert
 * (one prepared statement whatever the batch) with the values its separators cannot carry. And a
 * pooled connection that must not be handed out again (its statements went stale, its server
 * stopped answering, or it was given back inside a transaction) is destroyed when released.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { sql } from 'kysely';
import { kyselyOf } from './kysely-store.js';
import { openPostgresStore } from './postgres-store.js';
import type { EventRow } from './repositories.js';
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

      const backendPid = async () =>
        (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(db)).rows[0]!.pid;
      const before = await backendPid();
      await raw(url, `alter table teller_notes add column branch text not null default 'HQ'`);
      // Outside a transaction: answered at once, with the column the other node added.
      assert.deepEqual(await note(2), { id: 2, note: 'vault', branch: 'HQ' });
      // The connection whose statements went stale was destroyed when released: the next one is fresh.
      assert.notEqual(await backendPid(), before, 'a fresh connection after the stale one');
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

  it('events.insertMany: values holding the separators of the array insert, NULL markers, a lone empty text, are stored byte for byte', async () => {
    const url = await freshUrl();
    const store = await openPostgresStore({ url, poolSize: 1 });
    const row = (origin: string, seq: number, over: Partial<EventRow> = {}): EventRow => ({
      origin,
      seq,
      id: `${origin}-${seq}`,
      time: 1_000 + seq,
      receivedAt: 2_000 + seq,
      type: 'agent-online',
      outcome: 'info',
      operatorId: null,
      consoleId: origin,
      sessionId: null,
      serviceId: null,
      body: `{"seq":${seq}}`,
      hash: seq.toString(16).padStart(64, '0'),
      integrity: [],
      ...over,
    });
    try {
      const batches: EventRow[][] = [
        // the separators themselves in a body, a NULL marker as a nullable value
        [
          row('k1', 1, { body: 'a\u001fb', serviceId: 's\u001fv' }),
          row('k1', 2, { operatorId: '\u001e', sessionId: 'x\u001ey' }),
        ],
        // one row, an empty text: '' alone would split into no element
        [row('k2', 1, { body: '', integrity: ['late'] })],
        // an ordinary batch with empty texts and NULLs beside values
        [
          row('k3', 1, { body: '' }),
          row('k3', 2, { operatorId: 'op', serviceId: 'svc_k3', integrity: ['late', 'refused'] }),
        ],
      ];
      for (const batch of batches) {
        const results = await store.events.insertMany(batch);
        const cursors = results.map((r) => (r.inserted ? r.cursor : -1));
        assert.ok(
          cursors.every((c, i) => c > 0 && (i === 0 || c > (cursors[i - 1] ?? 0))),
          "cursors in the rows' order",
        );
        // sent again: nothing inserted, each answered with the stored hash
        const again = await store.events.insertMany(batch);
        assert.deepEqual(
          again,
          batch.map((r) => ({ inserted: false, existingHash: r.hash })),
        );
      }
      const db = kyselyOf(store)!;
      const stored = (
        await sql<
          Record<string, unknown>
        >`select origin, seq, body, operator_id, session_id, integrity, service_id from events order by cursor`.execute(
          db,
        )
      ).rows;
      assert.deepEqual(
        stored,
        batches.flat().map((r) => ({
          origin: r.origin,
          seq: r.seq,
          body: r.body,
          operator_id: r.operatorId,
          session_id: r.sessionId,
          integrity: r.integrity.length > 0 ? r.integrity.join(',') : null,
          service_id: r.serviceId,
        })),
      );
    } finally {
      await store.close();
    }
  });
});

describe('PostgreSQL pool: a connection that stopped answering', { skip: pgSkip }, () => {
  it('outside a transaction: the statement fails within its bound, and the next one runs on a fresh connection', async () => {
    const url = await freshUrl();
    // Statement timeout 300 ms: the client gives up on an answer 1.3 s after sending.
    const store = await openPostgresStore({ url, poolSize: 1, statementTimeoutMs: 300 });
    const db = kyselyOf(store)!;
    const backendPid = async () =>
      (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(db)).rows[0]!.pid;
    const stopped = await backendPid();
    try {
      // The server process of the pool's one connection stops (a frozen host, a dropped network): no answer.
      process.kill(stopped, 'SIGSTOP');
      await assert.rejects(sql`select note from teller_notes where id = ${1}`.execute(db), {
        message: /^Query read timeout/,
      });
    } finally {
      process.kill(stopped, 'SIGCONT');
    }
    try {
      // Not handed out again (it would refuse every statement at once): the next statement gets a new one.
      const fresh = await backendPid();
      assert.notEqual(fresh, stopped);
      assert.deepEqual((await sql`select note from teller_notes where id = ${1}`.execute(db)).rows, [
        { note: 'cash drawer' },
      ]);
    } finally {
      await store.close();
    }
  });
});

describe('PostgreSQL pool: a connection released inside a transaction', { skip: pgSkip }, () => {
  it('is not handed out again: the next statement runs on a fresh connection, outside that transaction, and commits', async () => {
    const url = await freshUrl();
    const store = await openPostgresStore({ url, poolSize: 1 });
    const db = kyselyOf(store)!;
    const backendPid = async () =>
      (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(db)).rows[0]!.pid;
    try {
      // A borrower that opens a transaction and gives the connection back without ending it.
      const leaked = await db.connection().execute(async (conn) => {
        await sql`begin`.execute(conn);
        await sql`insert into teller_notes values (3, 'never committed')`.execute(conn);
        return (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(conn)).rows[0]!.pid;
      });
      // The pool's one connection is a new one, and what the next borrower writes is committed at once.
      assert.notEqual(await backendPid(), leaked);
      await sql`insert into teller_notes values (4, 'night safe')`.execute(db);
      const other = new pg.Client({ connectionString: url });
      await other.connect();
      try {
        const rows = (await other.query<{ id: number }>('select id from teller_notes order by id')).rows;
        assert.deepEqual(
          rows.map((r) => r.id),
          [1, 2, 4],
        );
      } finally {
        await other.end();
      }
    } finally {
      await store.close();
    }
  });
});
