/** The event store and the chain-head checkpoints (Kysely, both dialects). */
import { sql } from 'kysely';
import { AssuranceEventSchema, GENESIS_HASH, type StoredEvent } from '../../shared/events.js';
import type {
  CheckpointRepository,
  CheckpointRow,
  EventQuery,
  EventRepository,
  EventRow,
  RawEventRow,
  StreamHead,
} from './repositories.js';
import { inIds, num, optStr, str, type KyselyContext, type Row } from './kysely-schema.js';

function integrityOf(row: Row): string[] {
  const value = optStr(row, 'integrity');
  return value !== null && value !== '' ? value.split(',') : [];
}

/** A stored row as followers and readers get it: the body parsed and checked against the event schema. */
export function toStoredEvent(row: Row): StoredEvent {
  const event = AssuranceEventSchema.parse(JSON.parse(str(row, 'body')));
  return {
    ...event,
    origin: str(row, 'origin'),
    hash: str(row, 'hash'),
    receivedAt: num(row, 'received_at'),
    integrity: integrityOf(row),
    cursor: num(row, 'cursor'),
  };
}

const INSERT_CHUNK = 1000;
const ARRAY_INSERT_CHUNK = 5000;

/** Cursors a PostgreSQL array insert wrote, ascending (the rows' order when all were inserted). */
type InsertedCursors = number[];

/** Between the values of a text column sent as one string (`insertArrays`, `chr(31)` there); JSON text never holds it raw. */
const SEPARATOR = '\u001f';
/** A NULL among those values (`chr(30)`). */
const NULL_MARKER = '\u001e';

/** Whether a text value goes through `string_to_array(joined, SEPARATOR, NULL_MARKER)` unchanged. */
function separableText(value: string | null, count: number): boolean {
  if (value === null) return true;
  if (value === '') return count > 1; // one empty text alone: '' splits into no element at all
  return value !== NULL_MARKER && !value.includes(SEPARATOR);
}

/** A bigint[] literal. */
function numbers(values: readonly number[]): string {
  return `{${values.join(',')}}`;
}

/** A nullable text column joined by SEPARATOR, NULL as NULL_MARKER. */
function nullable(values: readonly (string | null)[]): string {
  return values.map((value) => value ?? NULL_MARKER).join(SEPARATOR);
}

function eventValues(row: EventRow) {
  return {
    origin: row.origin,
    seq: row.seq,
    id: row.id,
    time: row.time,
    received_at: row.receivedAt,
    type: row.type,
    outcome: row.outcome,
    operator_id: row.operatorId,
    console_id: row.consoleId,
    session_id: row.sessionId,
    body: row.body,
    hash: row.hash,
    integrity: row.integrity.length > 0 ? row.integrity.join(',') : null,
    service_id: row.serviceId,
  };
}

function headFrom(row: Row | undefined): StreamHead | undefined {
  return row && { lastSeq: num(row, 'last_seq'), lastHash: str(row, 'last_hash') };
}

export class KyselyEvents implements EventRepository {
  /**
   * PostgreSQL, inside a unit of work: heads that `insert` already moved to the row it wrote (same
   * statement), so `setHead` with that same head has nothing left to write. Per unit: a store bound
   * to a transaction gets its own repository.
   */
  private readonly headsWritten = new Map<string, StreamHead>();

  constructor(private readonly ctx: KyselyContext) {}

  async head(origin: string): Promise<StreamHead | undefined> {
    const row = await this.ctx.db
      .selectFrom('event_streams')
      .select(['last_seq', 'last_hash'])
      .where('origin', '=', origin)
      .executeTakeFirst();
    return headFrom(row);
  }

  async heads(origins: readonly string[]): Promise<Map<string, StreamHead>> {
    const found = new Map<string, StreamHead>();
    if (origins.length === 0) return found;
    const rows = await this.ctx.db
      .selectFrom('event_streams')
      .select(['origin', 'last_seq', 'last_hash'])
      .where(inIds(this.ctx, 'origin', origins))
      .execute();
    for (const row of rows)
      found.set(str(row, 'origin'), { lastSeq: num(row, 'last_seq'), lastHash: str(row, 'last_hash') });
    return found;
  }

  /**
   * The head, locked for the rest of this transaction (call it inside `Store.transaction`); an origin
   * with no events yet is `{ lastSeq: 0, lastHash: GENESIS_HASH }`. PostgreSQL: the head row is created
   * at 0 if missing (INSERT … ON CONFLICT DO NOTHING: a concurrent creator waits for the first), then
   * read FOR UPDATE, which every other transaction locking or setting this head waits for, on any node.
   * SQLite: the plain read, since BEGIN IMMEDIATE already serialises writers.
   */
  async lockHead(origin: string): Promise<StreamHead> {
    const genesis: StreamHead = { lastSeq: 0, lastHash: GENESIS_HASH };
    if (this.ctx.dialect === 'sqlite') return (await this.head(origin)) ?? genesis;
    // One statement: created at 0 if missing, else updated to itself, which locks the row (a
    // concurrent locker waits, then reads the version committed before it) and returns it.
    const row = await this.ctx.db
      .insertInto('event_streams')
      .values({ origin, last_seq: 0, last_hash: GENESIS_HASH })
      .onConflict((oc) => oc.column('origin').doUpdateSet({ last_seq: sql`event_streams.last_seq` }))
      .returning(['last_seq', 'last_hash'])
      .executeTakeFirst();
    return headFrom(row) ?? genesis;
  }

  async setHead(origin: string, head: StreamHead): Promise<void> {
    const written = this.headsWritten.get(origin);
    if (written !== undefined && written.lastSeq === head.lastSeq && written.lastHash === head.lastHash) return;
    await this.ctx.db
      .insertInto('event_streams')
      .values({ origin, last_seq: head.lastSeq, last_hash: head.lastHash })
      .onConflict((oc) => oc.column('origin').doUpdateSet({ last_seq: head.lastSeq, last_hash: head.lastHash }))
      .execute();
  }

  async insert(row: EventRow): Promise<{ inserted: true; cursor: number } | { inserted: false; existingHash: string }> {
    if (this.ctx.dialect === 'postgres' && this.ctx.inTransaction) {
      // The row and, when it extends the chain by one, the head in one statement (one round trip
      // fewer while the unit holds the head's lock); `setHead` then skips that same head.
      const values = eventValues(row);
      const result = await sql<Row>`
        WITH e AS (
          INSERT INTO events (origin, seq, id, time, received_at, type, outcome, operator_id, console_id,
            session_id, body, hash, integrity, service_id)
          VALUES (${values.origin}, ${values.seq}, ${values.id}, ${values.time}, ${values.received_at},
            ${values.type}, ${values.outcome}, ${values.operator_id}, ${values.console_id},
            ${values.session_id}, ${values.body}, ${values.hash}, ${values.integrity}, ${values.service_id})
          ON CONFLICT (origin, seq) DO NOTHING
          RETURNING cursor
        ), h AS (
          UPDATE event_streams SET last_seq = ${row.seq}, last_hash = ${row.hash}
          WHERE origin = ${row.origin} AND last_seq = ${row.seq - 1} AND EXISTS (SELECT 1 FROM e)
          RETURNING 1
        )
        SELECT (SELECT cursor FROM e) AS cursor, (SELECT count(*)::int FROM h) AS head_moved`.execute(this.ctx.db);
      const first = result.rows[0];
      if (first !== undefined && first.cursor !== null && first.cursor !== undefined) {
        if (num(first, 'head_moved') === 1) this.headsWritten.set(row.origin, { lastSeq: row.seq, lastHash: row.hash });
        return { inserted: true, cursor: num(first, 'cursor') };
      }
    } else {
      const inserted = await this.ctx.db
        .insertInto('events')
        .values(eventValues(row))
        .onConflict((oc) => oc.columns(['origin', 'seq']).doNothing())
        .returning('cursor')
        .executeTakeFirst();
      if (inserted) return { inserted: true, cursor: num(inserted, 'cursor') };
    }
    const existing = await this.ctx.db
      .selectFrom('events')
      .select('hash')
      .where('origin', '=', row.origin)
      .where('seq', '=', row.seq)
      .executeTakeFirstOrThrow();
    return { inserted: false, existingHash: str(existing, 'hash') };
  }

  /**
   * `insert` for many rows in a few statements (a multi-row INSERT … ON CONFLICT DO NOTHING per 1000
   * rows on SQLite, one array statement per 5000 on PostgreSQL, then one read of the hashes already
   * stored): results in the order of `rows`, as if each row had been inserted in turn (a row
   * repeating an earlier (origin, seq) of the batch is not inserted).
   */
  async insertMany(
    rows: readonly EventRow[],
  ): Promise<({ inserted: true; cursor: number } | { inserted: false; existingHash: string })[]> {
    const key = (origin: string, seq: number) => `${seq}:${origin}`;
    const cursors = new Map<string, number>();
    if (this.ctx.dialect === 'postgres') {
      // The arrays' size is not bound by a parameter count (one statement for a group commit).
      const written: number[] = [];
      let all = true;
      for (let i = 0; i < rows.length; i += ARRAY_INSERT_CHUNK) {
        const chunk = rows.length <= ARRAY_INSERT_CHUNK ? rows : rows.slice(i, i + ARRAY_INSERT_CHUNK);
        const inserted = await this.insertArrays(chunk);
        if (inserted.length !== chunk.length) all = false;
        for (const cursor of inserted) written.push(cursor);
      }
      // Every row inserted (no conflict, so no repeated key either): the cursors, ascending, are the rows'.
      if (all) return rows.map((_, i) => ({ inserted: true as const, cursor: written[i] as number }));
      // Otherwise which row each cursor is: the rows' keys read back, a cursor this call wrote is theirs.
      const mine = new Set(written);
      for (const row of await this.lookUp(rows, 'cursor')) {
        const cursor = num(row, 'cursor');
        if (mine.has(cursor)) cursors.set(key(str(row, 'origin'), num(row, 'seq')), cursor);
      }
    } else {
      for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
        const chunk = rows.length <= INSERT_CHUNK ? rows : rows.slice(i, i + INSERT_CHUNK);
        const inserted = await this.ctx.db
          .insertInto('events')
          .values(chunk.map(eventValues))
          .onConflict((oc) => oc.columns(['origin', 'seq']).doNothing())
          .returning(['origin', 'seq', 'cursor'])
          .execute();
        for (const row of inserted) cursors.set(key(str(row, 'origin'), num(row, 'seq')), num(row, 'cursor'));
      }
    }
    const claimed = new Set<string>();
    const missing: EventRow[] = [];
    for (const row of rows) {
      const k = key(row.origin, row.seq);
      if (cursors.has(k) && !claimed.has(k)) claimed.add(k);
      else missing.push(row);
    }
    const hashes = new Map<string, string>();
    for (const row of await this.lookUp(missing, 'hash')) {
      hashes.set(key(str(row, 'origin'), num(row, 'seq')), str(row, 'hash'));
    }
    const given = new Set<string>();
    return rows.map((row) => {
      const k = key(row.origin, row.seq);
      const cursor = cursors.get(k);
      if (cursor !== undefined && !given.has(k)) {
        given.add(k);
        return { inserted: true as const, cursor };
      }
      const existingHash = hashes.get(k);
      if (existingHash === undefined) throw new Error(`events: (${row.origin}, ${row.seq}) neither inserted nor found`);
      return { inserted: false as const, existingHash };
    });
  }

  /** The stored rows with these rows' (origin, seq): origin, seq and `column`, 1000 keys a statement. */
  private async lookUp(rows: readonly EventRow[], column: 'cursor' | 'hash'): Promise<Row[]> {
    const out: Row[] = [];
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      const chunk = rows.slice(i, i + INSERT_CHUNK);
      const found = await this.ctx.db
        .selectFrom('events')
        .select(['origin', 'seq', column])
        .where((eb) => eb.or(chunk.map((r) => eb.and([eb('origin', '=', r.origin), eb('seq', '=', r.seq)]))))
        .execute();
      for (const row of found) out.push(row);
    }
    return out;
  }

  /**
   * PostgreSQL: the rows as one array per column, one statement whatever their number (the same text
   * every time, so a prepared statement; a multi-row VALUES has a text, a parse and a plan per
   * batch size, with 14 parameters a row). Cursors are taken in the rows' order (`ORDER BY ord`).
   *
   * Each text column goes as one string split by the server (`string_to_array` on a separator no
   * value holds, a marker for NULL) and each number column as an array literal written here, not
   * as a JS array that `pg` turns into a `text[]` literal (two regular-expression replacements per
   * element, a rope of concatenations flattened again to be measured and copied). The answer is one
   * row: how many rows were inserted and their cursors, ascending, as one string; when every row was
   * inserted (a group commit's chained rows always are) they are the rows' cursors in order,
   * otherwise the rows are looked up (`insertMany`). A value that cannot go through the separators
   * (one holding the separator, equal to the NULL marker, or the empty text alone in its array)
   * sends the batch as `text[]` arrays instead.
   */
  private async insertArrays(rows: readonly EventRow[]): Promise<InsertedCursors> {
    const n = rows.length;
    const origin = new Array<string>(n);
    const seq = new Array<number>(n);
    const id = new Array<string>(n);
    const time = new Array<number>(n);
    const receivedAt = new Array<number>(n);
    const type = new Array<string>(n);
    const outcome = new Array<string>(n);
    const operatorId = new Array<string | null>(n);
    const consoleId = new Array<string | null>(n);
    const sessionId = new Array<string | null>(n);
    const body = new Array<string>(n);
    const hash = new Array<string>(n);
    const integrity = new Array<string | null>(n);
    const serviceId = new Array<string | null>(n);
    let separable = true;
    for (let i = 0; i < n; i++) {
      const row = rows[i] as EventRow;
      origin[i] = row.origin;
      seq[i] = row.seq;
      id[i] = row.id;
      time[i] = row.time;
      receivedAt[i] = row.receivedAt;
      type[i] = row.type;
      outcome[i] = row.outcome;
      operatorId[i] = row.operatorId;
      consoleId[i] = row.consoleId;
      sessionId[i] = row.sessionId;
      body[i] = row.body;
      hash[i] = row.hash;
      const flags = row.integrity.length > 0 ? row.integrity.join(',') : null;
      integrity[i] = flags;
      serviceId[i] = row.serviceId;
      if (
        separable &&
        !(
          separableText(row.origin, n) &&
          separableText(row.id, n) &&
          separableText(row.type, n) &&
          separableText(row.outcome, n) &&
          separableText(row.operatorId, n) &&
          separableText(row.consoleId, n) &&
          separableText(row.sessionId, n) &&
          separableText(row.body, n) &&
          separableText(row.hash, n) &&
          separableText(flags, n) &&
          separableText(row.serviceId, n)
        )
      ) {
        separable = false;
      }
    }
    if (!separable) {
      const result = await sql<Row>`
        INSERT INTO events (origin, seq, id, time, received_at, type, outcome, operator_id, console_id,
          session_id, body, hash, integrity, service_id)
        SELECT origin, seq, id, time, received_at, type, outcome, operator_id, console_id, session_id, body,
          hash, integrity, service_id
        FROM unnest(${origin}::text[], ${seq}::bigint[], ${id}::text[], ${time}::bigint[], ${receivedAt}::bigint[],
          ${type}::text[], ${outcome}::text[], ${operatorId}::text[], ${consoleId}::text[], ${sessionId}::text[],
          ${body}::text[], ${hash}::text[], ${integrity}::text[], ${serviceId}::text[])
          WITH ORDINALITY AS r(origin, seq, id, time, received_at, type, outcome, operator_id, console_id,
            session_id, body, hash, integrity, service_id, ord)
        ORDER BY ord
        ON CONFLICT (origin, seq) DO NOTHING
        RETURNING cursor`.execute(this.ctx.db);
      return result.rows.map((row) => num(row, 'cursor')).sort((a, b) => a - b);
    }
    const result = await sql<Row>`
      WITH inserted AS (
        INSERT INTO events (origin, seq, id, time, received_at, type, outcome, operator_id, console_id,
          session_id, body, hash, integrity, service_id)
        SELECT origin, seq, id, time, received_at, type, outcome, operator_id, console_id, session_id, body,
          hash, integrity, service_id
        FROM unnest(string_to_array(${origin.join(SEPARATOR)}, chr(31)), ${numbers(seq)}::bigint[],
          string_to_array(${id.join(SEPARATOR)}, chr(31)), ${numbers(time)}::bigint[],
          ${numbers(receivedAt)}::bigint[], string_to_array(${type.join(SEPARATOR)}, chr(31)),
          string_to_array(${outcome.join(SEPARATOR)}, chr(31)),
          string_to_array(${nullable(operatorId)}, chr(31), chr(30)),
          string_to_array(${nullable(consoleId)}, chr(31), chr(30)),
          string_to_array(${nullable(sessionId)}, chr(31), chr(30)),
          string_to_array(${body.join(SEPARATOR)}, chr(31)), string_to_array(${hash.join(SEPARATOR)}, chr(31)),
          string_to_array(${nullable(integrity)}, chr(31), chr(30)),
          string_to_array(${nullable(serviceId)}, chr(31), chr(30)))
          WITH ORDINALITY AS r(origin, seq, id, time, received_at, type, outcome, operator_id, console_id,
            session_id, body, hash, integrity, service_id, ord)
        ORDER BY ord
        ON CONFLICT (origin, seq) DO NOTHING
        RETURNING cursor
      )
      SELECT count(*)::int AS n, string_agg(cursor::text, ',' ORDER BY cursor) AS cursors FROM inserted`.execute(
      this.ctx.db,
    );
    const first = result.rows[0];
    const cursors = first === undefined ? null : optStr(first, 'cursors');
    return cursors === null || cursors === '' ? [] : cursors.split(',').map(Number);
  }

  async query(query: EventQuery): Promise<StoredEvent[]> {
    let q = this.ctx.db.selectFrom('events').selectAll();
    if (query.operator !== undefined) q = q.where('operator_id', '=', query.operator);
    if (query.console !== undefined) q = q.where('console_id', '=', query.console);
    if (query.session !== undefined) q = q.where('session_id', '=', query.session);
    if (query.service !== undefined) q = q.where('service_id', '=', query.service);
    if (query.type !== undefined) q = q.where('type', '=', query.type);
    if (query.origin !== undefined) q = q.where('origin', '=', query.origin);
    if (query.from !== undefined) q = q.where('time', '>=', query.from);
    if (query.to !== undefined) q = q.where('time', '<', query.to);
    if (query.afterCursor !== undefined) q = q.where('cursor', '>', query.afterCursor);
    if (query.afterSeq !== undefined) q = q.where('seq', '>', query.afterSeq);
    const rows = await q
      .orderBy(query.afterSeq === undefined ? 'cursor' : 'seq')
      .limit(query.limit)
      .execute();
    return rows.map(toStoredEvent);
  }

  async rawChain(origin: string, afterSeq: number, limit: number): Promise<RawEventRow[]> {
    const rows = await this.ctx.db
      .selectFrom('events')
      .select(['seq', 'body', 'hash', 'integrity'])
      .where('origin', '=', origin)
      .where('seq', '>', afterSeq)
      .orderBy('seq')
      .limit(limit)
      .execute();
    return rows.map((row) => ({
      seq: num(row, 'seq'),
      body: str(row, 'body'),
      hash: str(row, 'hash'),
      integrity: integrityOf(row),
    }));
  }

  async count(): Promise<number> {
    const row = await this.ctx.db
      .selectFrom('events')
      .select(sql<number>`COUNT(*)`.as('n'))
      .executeTakeFirstOrThrow();
    return num(row, 'n');
  }
}

function checkpointFrom(row: Row): CheckpointRow {
  return {
    seq: num(row, 'seq'),
    at: num(row, 'at'),
    kid: str(row, 'kid'),
    body: str(row, 'body'),
    sig: str(row, 'sig'),
  };
}

export class KyselyCheckpoints implements CheckpointRepository {
  constructor(private readonly ctx: KyselyContext) {}

  async put(row: CheckpointRow): Promise<void> {
    const values = { seq: row.seq, at: row.at, kid: row.kid, body: row.body, sig: row.sig };
    await this.ctx.db
      .insertInto('chain_checkpoints')
      .values(values)
      .onConflict((oc) => oc.column('seq').doUpdateSet({ at: row.at, kid: row.kid, body: row.body, sig: row.sig }))
      .execute();
  }
  async latest(limit: number): Promise<CheckpointRow[]> {
    const rows = await this.ctx.db
      .selectFrom('chain_checkpoints')
      .selectAll()
      .orderBy('seq', 'desc')
      .limit(limit)
      .execute();
    return rows.map(checkpointFrom);
  }
  async list(afterSeq: number, limit: number): Promise<CheckpointRow[]> {
    const rows = await this.ctx.db
      .selectFrom('chain_checkpoints')
      .selectAll()
      .where('seq', '>', afterSeq)
      .orderBy('seq')
      .limit(limit)
      .execute();
    return rows.map(checkpointFrom);
  }
  async heads(): Promise<{ origin: string; lastSeq: number; lastHash: string }[]> {
    const rows = await this.ctx.db
      .selectFrom('event_streams')
      .select(['origin', 'last_seq', 'last_hash'])
      .orderBy('origin')
      .execute();
    return rows.map((row) => ({
      origin: str(row, 'origin'),
      lastSeq: num(row, 'last_seq'),
      lastHash: str(row, 'last_hash'),
    }));
  }
  async hashAt(origin: string, seq: number): Promise<string | undefined> {
    const row = await this.ctx.db
      .selectFrom('events')
      .select('hash')
      .where('origin', '=', origin)
      .where('seq', '=', seq)
      .executeTakeFirst();
    return row === undefined ? undefined : str(row, 'hash');
  }
}
