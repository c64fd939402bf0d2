import type { Sync } from './repositories.js';
import type Database from 'better-sqlite3';
import { AssuranceEventSchema, GENESIS_HASH, type StoredEvent } from '../../shared/events.js';
import type { EventQuery, EventRepository, EventRow, RawEventRow, StreamHead } from './repositories.js';

type Row = Record<string, unknown>;

/** The event store: every assurance event, from consoles and from the backend, in one table. */
export class SqliteEvents implements Sync<EventRepository> {
  private readonly stmts;
  constructor(private readonly db: Database.Database) {
    this.stmts = {
      head: db.prepare('SELECT last_seq, last_hash FROM event_streams WHERE origin = ?'),
      setHead: db.prepare(
        `INSERT INTO event_streams (origin, last_seq, last_hash) VALUES (?, ?, ?)
         ON CONFLICT(origin) DO UPDATE SET last_seq = excluded.last_seq, last_hash = excluded.last_hash`,
      ),
      insert: db.prepare(
        `INSERT OR IGNORE INTO events (origin, seq, id, time, received_at, type, outcome, operator_id, console_id, session_id, body, hash, integrity)
         VALUES (@origin, @seq, @id, @time, @receivedAt, @type, @outcome, @operatorId, @consoleId, @sessionId, @body, @hash, @integrity)`,
      ),
      existingHash: db.prepare('SELECT hash FROM events WHERE origin = ? AND seq = ?'),
      count: db.prepare('SELECT COUNT(*) AS n FROM events'),
      rawChain: db.prepare(
        'SELECT seq, body, hash, integrity FROM events WHERE origin = ? AND seq > ? ORDER BY seq LIMIT ?',
      ),
    };
  }

  head(origin: string): StreamHead | undefined {
    const row = this.stmts.head.get(origin) as { last_seq: number; last_hash: string } | undefined;
    return row && { lastSeq: row.last_seq, lastHash: row.last_hash };
  }

  /** SQLite: the plain read; the caller's `BEGIN IMMEDIATE` already keeps every other writer out. */
  lockHead(origin: string): StreamHead {
    return this.head(origin) ?? { lastSeq: 0, lastHash: GENESIS_HASH };
  }

  setHead(origin: string, head: StreamHead): void {
    this.stmts.setHead.run(origin, head.lastSeq, head.lastHash);
  }

  insert(row: EventRow): { inserted: true; cursor: number } | { inserted: false; existingHash: string } {
    const result = this.stmts.insert.run({
      ...row,
      integrity: row.integrity.length > 0 ? row.integrity.join(',') : null,
    });
    if (result.changes === 1) return { inserted: true, cursor: Number(result.lastInsertRowid) };
    const existing = this.stmts.existingHash.get(row.origin, row.seq) as { hash: string };
    return { inserted: false, existingHash: existing.hash };
  }

  /** SQLite: one statement per row, all in one call (no round trip to save in-process). */
  insertMany(
    rows: readonly EventRow[],
  ): ({ inserted: true; cursor: number } | { inserted: false; existingHash: string })[] {
    return rows.map((row) => this.insert(row));
  }

  query(query: EventQuery): StoredEvent[] {
    const where: string[] = [];
    const params: Record<string, unknown> = { limit: query.limit };
    const add = (clause: string, key: string, value: unknown) => {
      if (value === undefined) return;
      where.push(clause);
      params[key] = value;
    };
    add('operator_id = @operator', 'operator', query.operator);
    add('console_id = @console', 'console', query.console);
    add('session_id = @session', 'session', query.session);
    add('type = @type', 'type', query.type);
    add('origin = @origin', 'origin', query.origin);
    add('time >= @from', 'from', query.from);
    add('time < @to', 'to', query.to);
    add('cursor > @after', 'after', query.afterCursor);
    add('seq > @afterSeq', 'afterSeq', query.afterSeq);
    const order = query.afterSeq === undefined ? 'cursor' : 'seq';
    const sql = `SELECT * FROM events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY ${order} LIMIT @limit`;
    return (this.db.prepare(sql).all(params) as Row[]).map((row) => toStoredEvent(row));
  }

  rawChain(origin: string, afterSeq: number, limit: number): RawEventRow[] {
    return (this.stmts.rawChain.all(origin, afterSeq, limit) as Row[]).map((row) => ({
      seq: Number(row.seq),
      body: String(row.body),
      hash: String(row.hash),
      integrity: typeof row.integrity === 'string' && row.integrity !== '' ? row.integrity.split(',') : [],
    }));
  }

  count(): number {
    return (this.stmts.count.get() as { n: number }).n;
  }
}

function toStoredEvent(row: Row): StoredEvent {
  const event = AssuranceEventSchema.parse(JSON.parse(String(row.body)));
  const integrity = typeof row.integrity === 'string' && row.integrity !== '' ? row.integrity.split(',') : [];
  return {
    ...event,
    origin: String(row.origin),
    hash: String(row.hash),
    receivedAt: Number(row.received_at),
    integrity,
    cursor: Number(row.cursor),
  };
}
