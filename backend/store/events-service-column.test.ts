/**
 * Migration 26 (issue 14): `events.service_id`, on both engines. The events stored before it get the
 * service a backend event is about from its body (a console's event, one that only mentions a
 * service elsewhere, and a damaged body get none, and the migration does not fail on the last), and
 * "the newest events of this service" is a walk of the service's own index, as for an operator.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import { canonicalJson } from '../../shared/canonical-json.js';
import { GENESIS_HASH } from '../../shared/events.js';
import { MIGRATIONS } from './migrations.js';
import { migratePostgres, POSTGRES_MIGRATIONS } from './postgres-migrations.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from './postgres-throwaway.js';
import { migrate } from './sqlite-store.js';

const VERSION = 26;
const T0 = 1_700_000_000_000;

/** A stored body as the backend writes it (canonical JSON). */
function body(seq: number, type: string, subject: Record<string, string>, detail?: Record<string, string>): string {
  return canonicalJson({
    id: randomUUID(),
    seq,
    time: T0 + seq,
    type,
    subject,
    outcome: 'success',
    reasons: [],
    ...(detail === undefined ? {} : { detail }),
    prevHash: GENESIS_HASH,
  });
}

/** Rows stored before migration 26, and the service each must have after it. */
const BEFORE: { origin: string; seq: number; body: string; service: string | null }[] = [
  { origin: 'backend', seq: 1, body: body(1, 'service-enrolled', { service: 'svc_a' }), service: 'svc_a' },
  {
    origin: 'backend',
    seq: 2,
    body: body(2, 'service-token-issued', { operator: 'op1', service: 'svc_b.x:1-2', session: 's1' }),
    service: 'svc_b.x:1-2',
  },
  // A service named elsewhere than in the subject is not the subject.
  {
    origin: 'backend',
    seq: 3,
    body: body(3, 'admin-action', { operator: 'op1' }, { service: 'svc_a' }),
    service: null,
  },
  {
    origin: 'backend',
    seq: 4,
    body: body(4, 'session-established', { console: 'c1', operator: 'op1' }),
    service: null,
  },
  // A damaged body (the chain check reports it): left alone, and the migration still runs.
  { origin: 'backend', seq: 5, body: '{not json "service":"svc_a"', service: null },
  // A console's event cannot speak for a service.
  { origin: 'c1', seq: 1, body: body(1, 'session-locked', { console: 'c1', service: 'svc_a' }), service: null },
];

const COLUMNS = 'origin, seq, id, time, received_at, type, outcome, operator_id, console_id, session_id, body, hash';

function values(row: (typeof BEFORE)[number]): unknown[] {
  return [
    row.origin,
    row.seq,
    `${row.origin}-${row.seq}`,
    T0,
    T0,
    'admin-action',
    'success',
    null,
    null,
    null,
    row.body,
    'h',
  ];
}

/** The keyset page of one service's newest events, as backend/store/admin-tables.ts asks for it. */
const NEWEST_OF_SERVICE = `SELECT *, cursor AS page_key, cursor AS page_id FROM events
  WHERE service_id IN ('svc_a') AND cursor < 1000000 ORDER BY cursor DESC LIMIT 26`;

describe('events.service_id on SQLite (migration 26)', () => {
  it('is filled from a backend event’s subject.service when migrating, and from nothing else', () => {
    const db = new Database(':memory:');
    try {
      migrate(
        db,
        MIGRATIONS.filter((m) => m.version < VERSION),
      );
      const insert = db.prepare(
        `INSERT INTO events (${COLUMNS}) VALUES (${COLUMNS.split(',')
          .map(() => '?')
          .join(', ')})`,
      );
      for (const row of BEFORE) insert.run(...values(row));
      migrate(db);
      const stored = db.prepare('SELECT origin, seq, service_id FROM events ORDER BY cursor').all();
      assert.deepEqual(
        stored,
        BEFORE.map((r) => ({ origin: r.origin, seq: r.seq, service_id: r.service })),
      );
    } finally {
      db.close();
    }
  });

  it('walks the service’s own index for its newest events', () => {
    const db = new Database(':memory:');
    try {
      migrate(db);
      const plan = (db.prepare(`EXPLAIN QUERY PLAN ${NEWEST_OF_SERVICE}`).all() as { detail: string }[])
        .map((p) => p.detail)
        .join('; ');
      assert.match(plan, /USING (COVERING )?INDEX events_service \(service_id=\? AND cursor<\?\)/);
      assert.doesNotMatch(plan, /TEMP B-TREE/, 'no sort: the index is in cursor order');
    } finally {
      db.close();
    }
  });
});

const pgSkip = postgresSkip();

describe('events.service_id on PostgreSQL (migration 26)', { skip: pgSkip }, () => {
  let server: PostgresServer | undefined;
  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await server?.stop();
  });

  async function onDatabase<T>(name: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
    if (server === undefined) throw new Error('no PostgreSQL server');
    const client = new pg.Client({ connectionString: await createDatabase(server.url, name) });
    await client.connect();
    try {
      return await run(client);
    } finally {
      await client.end();
    }
  }

  it('is filled from a backend event’s subject.service when migrating, and from nothing else', async () => {
    await onDatabase('service_backfill', async (client) => {
      await migratePostgres(
        client,
        POSTGRES_MIGRATIONS.filter((m) => m.version < VERSION),
      );
      for (const row of BEFORE) {
        await client.query(
          `INSERT INTO events (${COLUMNS}) VALUES (${COLUMNS.split(',')
            .map((_, i) => `$${i + 1}`)
            .join(', ')})`,
          values(row),
        );
      }
      await migratePostgres(client);
      const stored = await client.query('SELECT origin, seq::int AS seq, service_id FROM events ORDER BY cursor');
      assert.deepEqual(
        stored.rows,
        BEFORE.map((r) => ({ origin: r.origin, seq: r.seq, service_id: r.service })),
      );
    });
  });

  it('walks the service’s own index for its newest events', async () => {
    await onDatabase('service_index', async (client) => {
      await migratePostgres(client);
      // An estate's worth of console events (no service) and a few events about services.
      await client.query(`INSERT INTO events (${COLUMNS})
        SELECT 'c' || (g % 50), g, 'e' || g, ${T0} + g, ${T0} + g, 'session-locked', 'success', NULL, 'c' || (g % 50), NULL, '{}', 'h'
        FROM generate_series(1, 50000) AS g`);
      await client.query(`INSERT INTO events (${COLUMNS}, service_id)
        SELECT 'backend', g, 'b' || g, ${T0} + g, ${T0} + g, 'service-token-issued', 'success', NULL, NULL, NULL, '{}', 'h',
          CASE WHEN g % 2 = 0 THEN 'svc_a' ELSE 'svc_b' END
        FROM generate_series(1, 200) AS g`);
      await client.query('ANALYZE events');
      const plan = (await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${NEWEST_OF_SERVICE}`)).rows
        .map((r) => r['QUERY PLAN'])
        .join('\n');
      assert.match(plan, /Index Scan Backward using events_service on events/, plan);
      assert.doesNotMatch(plan, /Sort/, plan);
    });
  });
});
