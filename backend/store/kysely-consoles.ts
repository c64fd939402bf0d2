/** Consoles and their enrolment tokens (Kysely, both dialects). */
import { CompiledQuery, sql } from 'kysely';
import type { ConsoleRecord, ConsoleRepository, ConsoleTokenRecord } from './repositories.js';
import { atomic, changed, inIds, num, optNum, optStr, str, type KyselyContext, type Row } from './kysely-schema.js';

/** A `consoles` row as a ConsoleRecord (also the admin lists' rows: admin-tables.ts). */
export function consoleFrom(row: Row): ConsoleRecord {
  return {
    id: str(row, 'id'),
    name: optStr(row, 'name'),
    channel: str(row, 'channel'),
    site: optStr(row, 'site'),
    publicJwk: str(row, 'public_jwk'),
    jkt: str(row, 'jkt'),
    enrolledAt: num(row, 'enrolled_at'),
    lastSeenAt: optNum(row, 'last_seen_at'),
    policyVersion: num(row, 'policy_version'),
    revocationEpoch: num(row, 'revocation_epoch'),
    revokedAt: optNum(row, 'revoked_at'),
    revokedReason: optStr(row, 'revoked_reason'),
  };
}

/** The larger of a column and a value: MAX(a, b) in SQLite, GREATEST(a, b) in PostgreSQL. */
export function greatest(ctx: KyselyContext, column: string, value: number) {
  return ctx.dialect === 'postgres'
    ? sql<number>`GREATEST(${sql.ref(column)}, ${value})`
    : sql<number>`MAX(${sql.ref(column)}, ${value})`;
}

/** The SQLite last-seen write of one console (a time never moves back). */
const SQLITE_TOUCH = 'update "consoles" set "last_seen_at" = MAX(COALESCE(last_seen_at, 0), ?) where "id" = ?';
/** Rows per unit of the SQLite last-seen flush outside a unit of work (`touchMany`): about 2 ms of the event loop. */
const SQLITE_TOUCH_CHUNK = 100;
/** Rows per statement of the PostgreSQL last-seen flush (`touchMany`). */
const TOUCH_CHUNK = 250;
/** Passes of that flush that skip the rows another transaction holds, before one that waits for them. */
const TOUCH_SKIP_PASSES = 4;
/** The pause before the second pass (doubled before each further one: 25, 50, 100, 200 ms). */
const TOUCH_RETRY_MS = 25;

export class KyselyConsoles implements ConsoleRepository {
  constructor(private readonly ctx: KyselyContext) {}

  async insert(r: ConsoleRecord): Promise<void> {
    await this.ctx.db
      .insertInto('consoles')
      .values({
        id: r.id,
        name: r.name,
        channel: r.channel,
        site: r.site,
        public_jwk: r.publicJwk,
        jkt: r.jkt,
        enrolled_at: r.enrolledAt,
        last_seen_at: r.lastSeenAt,
        policy_version: r.policyVersion,
        revocation_epoch: r.revocationEpoch,
        revoked_at: r.revokedAt,
        revoked_reason: r.revokedReason,
      })
      .execute();
  }
  async get(id: string, options?: { forUpdate?: boolean }): Promise<ConsoleRecord | undefined> {
    const query = this.ctx.db.selectFrom('consoles').selectAll().where('id', '=', id);
    // The lock the UPDATE that revokes it takes (SQLite has no row locks: BEGIN IMMEDIATE serialises writing units).
    const locked = options?.forUpdate === true && this.ctx.dialect === 'postgres';
    const row = await (locked ? query.forNoKeyUpdate() : query).executeTakeFirst();
    return row && consoleFrom(row);
  }
  async getMany(ids: readonly string[]): Promise<Map<string, ConsoleRecord>> {
    const found = new Map<string, ConsoleRecord>();
    if (ids.length === 0) return found;
    const rows = await this.ctx.db
      .selectFrom('consoles')
      .selectAll()
      .where(inIds(this.ctx, 'id', ids))
      .execute();
    for (const row of rows) found.set(str(row, 'id'), consoleFrom(row));
    return found;
  }
  async list(): Promise<ConsoleRecord[]> {
    const rows = await this.ctx.db.selectFrom('consoles').selectAll().orderBy('enrolled_at').orderBy('id').execute();
    return rows.map(consoleFrom);
  }
  async touch(id: string, at: number): Promise<void> {
    await this.ctx.db.updateTable('consoles').set({ last_seen_at: at }).where('id', '=', id).execute();
  }
  async touchMany(sightings: readonly { id: string; at: number }[]): Promise<void> {
    if (sightings.length === 0) return;
    // One time per console (the latest), in ascending id.
    const latest = new Map<string, number>();
    for (const { id, at } of sightings) latest.set(id, Math.max(at, latest.get(id) ?? at));
    const sorted = [...latest].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    if (this.ctx.dialect === 'postgres') {
      if (this.ctx.inTransaction) {
        await this.touchLocking(this.ctx.db, sorted);
        return;
      }
      await this.touchYielding(sorted);
      return;
    }
    // SQLite: one statement per console, compiled once (CompiledQuery, not built by Kysely per console). The
    // driver is synchronous, so a unit's statements run back to back in one turn of the event loop: outside
    // a unit, the sightings are written SQLITE_TOUCH_CHUNK to a unit, with a turn of the loop between two
    // units, so that a revocation (or a sign-in) arriving during the flush of thousands of consoles waits
    // for one chunk, not for all of them (1,000 consoles in one unit held the loop for about 17 ms). A time
    // never moves back, so the chunks need not commit together. Not one `UPDATE … FROM json_each` for all:
    // that was slower for inbound revocations (docs/benchmarks.md); nor better-sqlite3 prepared statements
    // (not shown better).
    const write = (rows: readonly (readonly [string, number])[]) =>
      atomic(this.ctx, async (db) => {
        for (const [id, at] of rows) await db.executeQuery(CompiledQuery.raw(SQLITE_TOUCH, [at, id]));
      });
    if (this.ctx.inTransaction) {
      await write(sorted);
      return;
    }
    for (let i = 0; i < sorted.length; i += SQLITE_TOUCH_CHUNK) {
      if (i > 0) await new Promise((resolve) => setImmediate(resolve));
      await write(sorted.slice(i, i + SQLITE_TOUCH_CHUNK));
    }
  }

  /** PostgreSQL, one statement: the rows locked in ascending id (the cluster's lock order), waiting for any held. */
  private async touchLocking(db: KyselyContext['db'], sorted: readonly (readonly [string, number])[]): Promise<void> {
    const ids = sorted.map(([id]) => id);
    const ats = sorted.map(([, at]) => at);
    await sql`WITH l AS (SELECT id FROM consoles WHERE id = ANY(${ids}::text[]) ORDER BY id FOR UPDATE)
      UPDATE consoles c SET last_seen_at = GREATEST(COALESCE(c.last_seen_at, 0), s.at)
      FROM unnest(${ids}::text[], ${ats}::bigint[]) AS s(id, at)
      WHERE c.id = s.id AND c.id IN (SELECT id FROM l)`.execute(db);
  }

  /**
   * PostgreSQL, outside a transaction: the last-seen flush gives way to the revocation writes. The
   * sightings are written in statements of TOUCH_CHUNK rows, each atomic on its own (its row locks
   * held only while it runs: `last_seen_at` is indexed, so each of these updates writes every index
   * entry of the row), the highest ids first, skipping the rows another transaction holds (an ack
   * group locks its consoles in ascending id: it meets this sweep once, and waits for one chunk at
   * most). The skipped rows are tried again after a pause, then, at the last pass, waited for in
   * ascending id.
   */
  private async touchYielding(sorted: readonly (readonly [string, number])[]): Promise<void> {
    let left = [...sorted].reverse();
    for (let pass = 0; left.length > 0; pass++) {
      if (pass > 0) await new Promise((resolve) => setTimeout(resolve, TOUCH_RETRY_MS * 2 ** (pass - 1)));
      if (pass === TOUCH_SKIP_PASSES) {
        const ascending = left.reverse();
        for (let i = 0; i < ascending.length; i += TOUCH_CHUNK) {
          await this.touchLocking(this.ctx.db, ascending.slice(i, i + TOUCH_CHUNK));
        }
        return;
      }
      const skipped: (readonly [string, number])[] = [];
      for (let i = 0; i < left.length; i += TOUCH_CHUNK) {
        const chunk = left.slice(i, i + TOUCH_CHUNK);
        const ids = chunk.map(([id]) => id);
        const ats = chunk.map(([, at]) => at);
        // The rows locked (`l`) are updated; what is returned are the existing rows another transaction holds.
        const { rows } = await sql<{ id: string }>`WITH l AS (
            SELECT id FROM consoles WHERE id = ANY(${ids}::text[]) FOR UPDATE SKIP LOCKED
          ), u AS (
            UPDATE consoles c SET last_seen_at = GREATEST(COALESCE(c.last_seen_at, 0), s.at)
            FROM unnest(${ids}::text[], ${ats}::bigint[]) AS s(id, at)
            WHERE c.id = s.id AND c.id IN (SELECT id FROM l)
          )
          SELECT id FROM consoles WHERE id = ANY(${ids}::text[]) AND id NOT IN (SELECT id FROM l)`.execute(this.ctx.db);
        if (rows.length === 0) continue;
        const held = new Set(rows.map((r) => r.id));
        for (const sighting of chunk) if (held.has(sighting[0])) skipped.push(sighting);
      }
      left = skipped;
    }
  }
  async setSyncState(id: string, state: { policyVersion?: number; revocationEpoch?: number }): Promise<void> {
    const { policyVersion, revocationEpoch } = state;
    if (policyVersion === undefined && revocationEpoch === undefined) return;
    await this.ctx.db
      .updateTable('consoles')
      .set({
        ...(policyVersion === undefined ? {} : { policy_version: policyVersion }),
        ...(revocationEpoch === undefined
          ? {}
          : { revocation_epoch: greatest(this.ctx, 'revocation_epoch', revocationEpoch) }),
      })
      .where('id', '=', id)
      .execute();
  }
  async revoke(id: string, at: number, reason: string): Promise<boolean> {
    const result = await this.ctx.db
      .updateTable('consoles')
      .set({ revoked_at: at, revoked_reason: reason })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return changed(result) === 1;
  }
  async insertToken(r: ConsoleTokenRecord): Promise<void> {
    await this.ctx.db
      .insertInto('console_enrolment_tokens')
      .values({
        token_hash: r.hash,
        channel: r.channel,
        site: r.site,
        issued_by: r.issuedBy,
        issued_at: r.issuedAt,
        expires_at: r.expiresAt,
      })
      .execute();
  }
  async getToken(hash: string): Promise<ConsoleTokenRecord | undefined> {
    const row = await this.ctx.db
      .selectFrom('console_enrolment_tokens')
      .selectAll()
      .where('token_hash', '=', hash)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      hash: str(row, 'token_hash'),
      channel: optStr(row, 'channel'),
      site: optStr(row, 'site'),
      issuedBy: str(row, 'issued_by'),
      issuedAt: num(row, 'issued_at'),
      expiresAt: num(row, 'expires_at'),
      usedAt: optNum(row, 'used_at'),
    };
  }
  /** One UPDATE … WHERE used_at IS NULL: of two nodes using the same token, one changes the row. */
  async useToken(hash: string, at: number, consoleId: string): Promise<boolean> {
    const result = await this.ctx.db
      .updateTable('console_enrolment_tokens')
      .set({ used_at: at, console_id: consoleId })
      .where('token_hash', '=', hash)
      .where('used_at', 'is', null)
      .executeTakeFirst();
    return changed(result) === 1;
  }
}
