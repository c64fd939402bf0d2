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

/** Rows per multi-row INSERT (14 parameters each: 896, under SQLite's 32,766). */
const MANY_ROWS = 64;
/** BATON_SQLITE_INGEST_ROW_BY_ROW=1: one statement per row, as before (benchmarks' A/B only). */
const ROW_BY_ROW = process.env.BATON_SQLITE_INGEST_ROW_BY_ROW === '1';

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
        `INSERT OR IGNORE INTO events (origin, seq, id, time, received_at, type, outcome, operator_id, console_id, session_id, body, hash, integrity, service_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      existingHash: db.prepare('SELECT hash FROM events WHERE origin = ? AND seq = ?'),
      existingRow: db.prepare('SELECT cursor, hash FROM events WHERE origin = ? AND seq = ?'),
      // The largest cursor ever given (AUTOINCREMENT's own record): every row inserted later gets a larger one.
      lastCursor: db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'events'").pluck(),
    };
  }

  /** `INSERT OR IGNORE … VALUES (…), (…)` for `n` rows, prepared once per size. */
  private many(n: number): Database.Statement {
    let statement = this.manyStatements.get(n);
    if (statement === undefined) {
      statement = this.db.prepare(
        `INSERT OR IGNORE INTO events (origin, seq, id, time, received_at, type, outcome, operator_id, console_id, session_id, body, hash, integrity, service_id)
         VALUES ${Array.from({ length: n }, () => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
      );
      this.manyStatements.set(n, statement);
    }
    return statement;
  }
  private readonly manyStatements = new Map<number, Database.Statement>();

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
      row.serviceId,
    );
    if (result.changes === 1) return { inserted: true, cursor: Number(result.lastInsertRowid) };
    const existing = this.stmts.existingHash.get(row.origin, row.seq) as { hash: string };
    return { inserted: false, existingHash: existing.hash };
  }

  /**
   * SQLite: up to MANY_ROWS rows per statement (one statement's set-up, one AUTOINCREMENT update and
   * one call into the driver for all of them, rather than one each: the ingest path's largest cost was
   * the per-row statement). The rows a statement inserts get consecutive cursors in their VALUES order
   * (AUTOINCREMENT: each new rowid is one more than the largest ever, and the unit holds the write
   * lock), the last being `lastInsertRowid`; when some row was ignored (its (origin, seq) is stored
   * already), each row of that statement is looked up: inserted by it iff its cursor is newer than the
   * largest before the statement (and it is that key's first row in the statement).
   */
  insertMany(rows: readonly EventRow[]): InsertResult[] {
    if (ROW_BY_ROW) return rows.map((row) => this.insert(row));
    const results: InsertResult[] = new Array<InsertResult>(rows.length);
    for (let start = 0; start < rows.length; start += MANY_ROWS) {
      const n = Math.min(MANY_ROWS, rows.length - start);
      if (n === 1) {
        results[start] = this.insert(rows[start] as EventRow);
        continue;
      }
      const params: unknown[] = new Array<unknown>(n * 14);
      for (let k = 0, p = 0; k < n; k++) {
        const row = rows[start + k] as EventRow;
        params[p++] = row.origin;
        params[p++] = row.seq;
        params[p++] = row.id;
        params[p++] = row.time;
        params[p++] = row.receivedAt;
        params[p++] = row.type;
        params[p++] = row.outcome;
        params[p++] = row.operatorId;
        params[p++] = row.consoleId;
        params[p++] = row.sessionId;
        params[p++] = row.body;
        params[p++] = row.hash;
        params[p++] = row.integrity.length > 0 ? row.integrity.join(',') : null;
        params[p++] = row.serviceId;
      }
      const before = Number((this.stmts.lastCursor.get() as number | bigint | undefined) ?? 0);
      const result = this.many(n).run(params);
      const last = Number(result.lastInsertRowid);
      if (result.changes === n) {
        for (let k = 0; k < n; k++) results[start + k] = { inserted: true, cursor: last - n + 1 + k };
        continue;
      }
      // Some row was ignored (it still used up a cursor): a row was inserted by this statement iff its
      // stored cursor is newer than `before`, and only its first occurrence in the statement was.
      const seen = new Set<string>();
      for (let k = 0; k < n; k++) {
        const row = rows[start + k] as EventRow;
        const stored = this.stmts.existingRow.get(row.origin, row.seq) as { cursor: number; hash: string };
        const key = `${row.origin}\u0000${row.seq}`;
        results[start + k] =
          stored.cursor > before && !seen.has(key)
            ? { inserted: true, cursor: stored.cursor }
            : { inserted: false, existingHash: stored.hash };
        seen.add(key);
      }
    }
    return results;
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
