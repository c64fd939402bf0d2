/**
 * The embedded engine's ingest path, hand-written: the chain head and the event inserts as
 * better-sqlite3 statements (measured against Kysely on the same file: docs/adr/0005-cluster-storage.md).
 * Everything else of the event store is the Kysely repository (kysely-events.ts).
 */
import type Database from 'better-sqlite3';
import { GENESIS_HASH } from '../../shared/events.js';
import type { EventRow, StreamHead } from './repositories.js';
import type { SyncRunner } from './kysely-store.js';
import type { KyselyContext } from './kysely-schema.js';
import { KyselyEvents } from './kysely-events.js';

type InsertResult = { inserted: true; cursor: number } | { inserted: false; existingHash: string };

/** The hand-written statements, synchronous, on the store's one better-sqlite3 connection. */
export class SqliteEvents {
  private readonly stmts;
  constructor(private readonly db: Database.Database) {
    this.stmts = {
      head: db.prepare('SELECT last_seq, last_hash FROM event_streams WHERE origin = ?'),
      setHead: db.prepare(
        `INSERT INTO event_streams (origin, last_seq, last_hash) VALUES (?, ?, ?)
         ON CONFLICT(origin) DO UPDATE SET last_seq = excluded.last_seq, last_hash = excluded.last_hash`,
      ),
      // Positional parameters: bound from the row's members directly (no copy of the row per event).
      insert: db.prepare(
        `INSERT OR IGNORE INTO events (origin, seq, id, time, received_at, type, outcome, operator_id, console_id, session_id, body, hash, integrity)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      existingHash: db.prepare('SELECT hash FROM events WHERE origin = ? AND seq = ?'),
    };
  }

  /** SQLite: the plain read; the caller's `BEGIN IMMEDIATE` already keeps every other writer out. */
  lockHead(origin: string): StreamHead {
    const row = this.stmts.head.get(origin) as { last_seq: number; last_hash: string } | undefined;
    return row === undefined
      ? { lastSeq: 0, lastHash: GENESIS_HASH }
      : { lastSeq: row.last_seq, lastHash: row.last_hash };
  }

  setHead(origin: string, head: StreamHead): void {
    this.stmts.setHead.run(origin, head.lastSeq, head.lastHash);
  }

  insert(row: EventRow): InsertResult {
    const result = this.stmts.insert.run(
      row.origin,
      row.seq,
      row.id,
      row.time,
      row.receivedAt,
      row.type,
      row.outcome,
      row.operatorId,
      row.consoleId,
      row.sessionId,
      row.body,
      row.hash,
      row.integrity.length > 0 ? row.integrity.join(',') : null,
    );
    if (result.changes === 1) return { inserted: true, cursor: Number(result.lastInsertRowid) };
    const existing = this.stmts.existingHash.get(row.origin, row.seq) as { hash: string };
    return { inserted: false, existingHash: existing.hash };
  }

  /** SQLite: one statement per row, all in one call (no round trip to save in-process). */
  insertMany(rows: readonly EventRow[]): InsertResult[] {
    return rows.map((row) => this.insert(row));
  }
}

/**
 * The event store of the embedded engine: the Kysely repository with its hot-path methods replaced by
 * the hand-written statements above, run on the same better-sqlite3 connection, in the unit of work's
 * transaction (or holding the connection outside one), through `runner` (kysely-store.ts).
 */
export class HandWrittenSqliteEvents extends KyselyEvents {
  constructor(
    private readonly sync: SqliteEvents,
    private readonly runner: SyncRunner,
    ctx: KyselyContext,
  ) {
    super(ctx);
  }

  override lockHead(origin: string): Promise<StreamHead> {
    return this.runner.run(() => this.sync.lockHead(origin));
  }

  override setHead(origin: string, head: StreamHead): Promise<void> {
    return this.runner.run(() => this.sync.setHead(origin, head));
  }

  override insert(row: EventRow): Promise<InsertResult> {
    return this.runner.run(() => this.sync.insert(row));
  }

  override insertMany(rows: readonly EventRow[]): Promise<InsertResult[]> {
    return this.runner.run(() => this.sync.insertMany(rows));
  }
}
