import { sql, type Kysely } from 'kysely';
import type { BatonDatabase } from '../store/kysely-schema.js';
import { kyselyOf } from '../store/kysely-store.js';
import type { Store } from '../store/repositories.js';

/**
 * Where each SIEM sink's export stands, in the store every node shares (migration 19): the cursor of
 * the last event the sink acknowledged, counters for the admin console, and a lease so that one node
 * at a time delivers a sink. Every write is fenced by the lease holder (and an advance by the cursor
 * it started from), so a node that lost its lease while a batch was in flight cannot move the cursor.
 */
export interface SinkCursor {
  sink: string;
  cursor: number;
  delivered: number;
  lastDeliveredAt: number | null;
  lastError: string | null;
  lastErrorAt: number | null;
  failures: number;
  leaseOwner: string | null;
  leaseUntil: number;
}

interface Row {
  sink: string;
  cursor: string | number;
  delivered: string | number;
  last_delivered_at: string | number | null;
  last_error: string | null;
  last_error_at: string | number | null;
  failures: string | number;
  lease_owner: string | null;
  lease_until: string | number;
}

const optNumber = (value: string | number | null): number | null => (value === null ? null : Number(value));

function affected(result: { numAffectedRows?: bigint }): number {
  return Number(result.numAffectedRows ?? 0n);
}

export class SinkCursors {
  private readonly db: Kysely<BatonDatabase>;

  constructor(store: Store) {
    const db = kyselyOf(store);
    if (db === undefined) throw new Error('The SIEM export needs a Kysely store (embedded SQLite or PostgreSQL)');
    this.db = db;
  }

  /** Creates the sink's row at `cursor` unless it exists (a sink keeps its place across restarts). */
  async ensure(sink: string, cursor: number, now: number): Promise<void> {
    await sql`INSERT INTO siem_cursors (sink, cursor, delivered, failures, lease_until, updated_at)
      VALUES (${sink}, ${cursor}, 0, 0, 0, ${now}) ON CONFLICT (sink) DO NOTHING`.execute(this.db);
  }

  /** Takes or renews the lease: true when `owner` holds it until `now + ttlMs`. */
  async lease(sink: string, owner: string, now: number, ttlMs: number): Promise<boolean> {
    const result = await sql`UPDATE siem_cursors SET lease_owner = ${owner}, lease_until = ${now + ttlMs}
      WHERE sink = ${sink} AND (lease_owner = ${owner} OR lease_owner IS NULL OR lease_until < ${now})`.execute(
      this.db,
    );
    return affected(result) === 1;
  }

  /** Moves the cursor from `from` to `to` after `count` records were acknowledged; false if fenced off. */
  async advance(sink: string, owner: string, from: number, to: number, count: number, now: number): Promise<boolean> {
    const result = await sql`UPDATE siem_cursors SET cursor = ${to}, delivered = delivered + ${count},
        last_delivered_at = ${now}, failures = 0, updated_at = ${now}
      WHERE sink = ${sink} AND lease_owner = ${owner} AND cursor = ${from}`.execute(this.db);
    return affected(result) === 1;
  }

  /** Records a failed attempt (the message is the transport's, never a secret). */
  async failed(sink: string, owner: string, message: string, now: number): Promise<void> {
    await sql`UPDATE siem_cursors SET last_error = ${message.slice(0, 500)}, last_error_at = ${now},
        failures = failures + 1, updated_at = ${now}
      WHERE sink = ${sink} AND lease_owner = ${owner}`.execute(this.db);
  }

  /** Gives the lease up (shutdown), so another node takes the sink at once. */
  async release(sink: string, owner: string): Promise<void> {
    await sql`UPDATE siem_cursors SET lease_owner = NULL, lease_until = 0
      WHERE sink = ${sink} AND lease_owner = ${owner}`.execute(this.db);
  }

  async get(sink: string): Promise<SinkCursor | undefined> {
    const result = await sql<Row>`SELECT * FROM siem_cursors WHERE sink = ${sink}`.execute(this.db);
    const row = result.rows[0];
    return row === undefined ? undefined : toCursor(row);
  }

  async list(): Promise<SinkCursor[]> {
    const result = await sql<Row>`SELECT * FROM siem_cursors ORDER BY sink`.execute(this.db);
    return result.rows.map(toCursor);
  }

  /** The newest event's cursor (the lag is this minus a sink's cursor). */
  async head(): Promise<number> {
    const result = await sql<{ max: string | number | null }>`SELECT MAX(cursor) AS max FROM events`.execute(this.db);
    return Number(result.rows[0]?.max ?? 0);
  }

  /**
   * PostgreSQL: the current snapshot's xmin and xmax. Cursors come from a sequence, so a hole may be an
   * event still being committed; once every transaction that was running when the hole was seen has
   * ended (xmin has passed the xmax seen then), the hole is a rolled-back number and stays empty.
   */
  async snapshot(): Promise<{ xmin: bigint; xmax: bigint }> {
    const result = await sql<{ xmin: string; xmax: string }>`SELECT
      pg_snapshot_xmin(pg_current_snapshot())::text AS xmin, pg_snapshot_xmax(pg_current_snapshot())::text AS xmax`.execute(
      this.db,
    );
    const row = result.rows[0];
    if (row === undefined) throw new Error('no snapshot');
    return { xmin: BigInt(row.xmin), xmax: BigInt(row.xmax) };
  }
}

function toCursor(row: Row): SinkCursor {
  return {
    sink: row.sink,
    cursor: Number(row.cursor),
    delivered: Number(row.delivered),
    lastDeliveredAt: optNumber(row.last_delivered_at),
    lastError: row.last_error,
    lastErrorAt: optNumber(row.last_error_at),
    failures: Number(row.failures),
    leaseOwner: row.lease_owner,
    leaseUntil: Number(row.lease_until),
  };
}
