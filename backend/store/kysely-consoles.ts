/** Consoles and their enrolment tokens (Kysely, both dialects). */
import { sql } from 'kysely';
import type { ConsoleRecord, ConsoleRepository, ConsoleTokenRecord } from './repositories.js';
import { atomic, changed, num, optNum, optStr, str, type KyselyContext, type Row } from './kysely-schema.js';

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
  async get(id: string): Promise<ConsoleRecord | undefined> {
    const row = await this.ctx.db.selectFrom('consoles').selectAll().where('id', '=', id).executeTakeFirst();
    return row && consoleFrom(row);
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
    const sorted = [...sightings].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    await atomic(this.ctx, async (db) => {
      if (this.ctx.dialect === 'postgres') {
        const ids = sorted.map((s) => s.id);
        const ats = sorted.map((s) => s.at);
        await sql`SELECT id FROM consoles WHERE id = ANY(${ids}::text[]) ORDER BY id FOR UPDATE`.execute(db);
        await sql`UPDATE consoles c SET last_seen_at = GREATEST(COALESCE(c.last_seen_at, 0), s.at)
          FROM unnest(${ids}::text[], ${ats}::bigint[]) AS s(id, at) WHERE c.id = s.id`.execute(db);
        return;
      }
      for (const { id, at } of sorted) {
        await db
          .updateTable('consoles')
          .set({ last_seen_at: sql<number>`MAX(COALESCE(last_seen_at, 0), ${at})` })
          .where('id', '=', id)
          .execute();
      }
    });
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
