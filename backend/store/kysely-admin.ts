/** The admin console's records (Kysely, both dialects). */
import { sql } from 'kysely';
import {
  CODE_ID_LENGTH,
  type AdminRepository,
  type AdminSessionRecord,
  type EnrolmentCodeView,
  type OutboxReport,
} from './admin-repositories.js';
import { greatest } from './kysely-consoles.js';
import { atomic, changed, num, optNum, optStr, str, type KyselyContext, type Row } from './kysely-schema.js';

function sessionFrom(row: Row): AdminSessionRecord {
  return {
    id: str(row, 'id'),
    tokenHash: str(row, 'token_hash'),
    operatorId: str(row, 'operator_id'),
    credentialId: str(row, 'credential_id'),
    createdAt: num(row, 'created_at'),
    lastSeenAt: num(row, 'last_seen_at'),
    expiresAt: num(row, 'expires_at'),
    stepUpAt: optNum(row, 'step_up_at'),
    endedAt: optNum(row, 'ended_at'),
    endReason: optStr(row, 'end_reason'),
  };
}

export class KyselyAdmin implements AdminRepository {
  constructor(private readonly ctx: KyselyContext) {}

  /** `operators.roles` (a JSON array of strings) contains 'admin'. */
  private holdsAdmin(alias: string) {
    const roles = sql.ref(`${alias}.roles`);
    return this.ctx.dialect === 'postgres'
      ? sql<boolean>`EXISTS (SELECT 1 FROM json_array_elements_text(${roles}::json) AS r(value) WHERE r.value = 'admin')`
      : sql<boolean>`EXISTS (SELECT 1 FROM json_each(${roles}) WHERE json_each.value = 'admin')`;
  }

  async insertSession(r: AdminSessionRecord): Promise<void> {
    await this.ctx.db
      .insertInto('admin_sessions')
      .values({
        id: r.id,
        token_hash: r.tokenHash,
        operator_id: r.operatorId,
        credential_id: r.credentialId,
        created_at: r.createdAt,
        last_seen_at: r.lastSeenAt,
        expires_at: r.expiresAt,
        step_up_at: r.stepUpAt,
        ended_at: r.endedAt,
        end_reason: r.endReason,
      })
      .execute();
  }
  async sessionByTokenHash(hash: string): Promise<AdminSessionRecord | undefined> {
    const row = await this.ctx.db
      .selectFrom('admin_sessions')
      .selectAll()
      .where('token_hash', '=', hash)
      .executeTakeFirst();
    return row && sessionFrom(row);
  }
  async touchSession(id: string, at: number): Promise<void> {
    await this.ctx.db
      .updateTable('admin_sessions')
      .set({ last_seen_at: greatest(this.ctx, 'last_seen_at', at) })
      .where('id', '=', id)
      .execute();
  }
  async recordStepUp(id: string, at: number): Promise<void> {
    await this.ctx.db
      .updateTable('admin_sessions')
      .set({ step_up_at: at })
      .where('id', '=', id)
      .where('ended_at', 'is', null)
      .execute();
  }
  async endSession(id: string, at: number, reason: string): Promise<boolean> {
    const result = await this.ctx.db
      .updateTable('admin_sessions')
      .set({ ended_at: at, end_reason: reason })
      .where('id', '=', id)
      .where('ended_at', 'is', null)
      .executeTakeFirst();
    return changed(result) > 0;
  }
  async endAllSessions(at: number, reason: string, operatorId?: string): Promise<string[]> {
    let query = this.ctx.db
      .updateTable('admin_sessions')
      .set({ ended_at: at, end_reason: reason })
      .where('ended_at', 'is', null);
    if (operatorId !== undefined) query = query.where('operator_id', '=', operatorId);
    const rows = await query.returning('id').execute();
    return rows.map((row) => str(row, 'id'));
  }
  async liveSessions(): Promise<AdminSessionRecord[]> {
    const rows = await this.ctx.db
      .selectFrom('admin_sessions')
      .selectAll()
      .where('ended_at', 'is', null)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(sessionFrom);
  }
  async recordOutbox(report: OutboxReport): Promise<void> {
    const values = { pending: report.pending, max: report.max, reported_at: report.reportedAt };
    await this.ctx.db
      .insertInto('console_outbox_reports')
      .values({ console_id: report.consoleId, ...values })
      .onConflict((oc) => oc.column('console_id').doUpdateSet(values))
      .execute();
  }
  async recordOutboxMany(reports: readonly OutboxReport[]): Promise<void> {
    if (reports.length === 0) return;
    if (new Set(reports.map((r) => r.consoleId)).size !== reports.length) {
      throw new Error('recordOutboxMany: one report per console');
    }
    // One statement text whatever the number of reports: arrays (PostgreSQL) or one JSON parameter (SQLite).
    // A console that no longer exists is skipped (one such report does not fail the others').
    const update = sql`ON CONFLICT (console_id) DO UPDATE SET pending = excluded.pending, max = excluded.max,
      reported_at = excluded.reported_at`;
    if (this.ctx.dialect === 'postgres') {
      await sql`INSERT INTO console_outbox_reports (console_id, pending, max, reported_at)
        SELECT u.* FROM unnest(${reports.map((r) => r.consoleId)}::text[], ${reports.map((r) => r.pending)}::bigint[],
          ${reports.map((r) => r.max)}::bigint[], ${reports.map((r) => r.reportedAt)}::bigint[])
          AS u(console_id, pending, max, reported_at)
        WHERE EXISTS (SELECT 1 FROM consoles c WHERE c.id = u.console_id)
        ${update}`.execute(this.ctx.db);
      return;
    }
    const rows = JSON.stringify(reports.map((r) => [r.consoleId, r.pending, r.max, r.reportedAt]));
    await sql`INSERT INTO console_outbox_reports (console_id, pending, max, reported_at)
      SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each(${rows})
      WHERE EXISTS (SELECT 1 FROM consoles c WHERE c.id = value ->> 0)
      ${update}`.execute(this.ctx.db);
  }
  async outboxReports(): Promise<OutboxReport[]> {
    const rows = await this.ctx.db.selectFrom('console_outbox_reports').selectAll().orderBy('console_id').execute();
    return rows.map((row) => ({
      consoleId: str(row, 'console_id'),
      pending: num(row, 'pending'),
      max: num(row, 'max'),
      reportedAt: num(row, 'reported_at'),
    }));
  }
  async listCodes(operatorId: string): Promise<EnrolmentCodeView[]> {
    const rows = await this.ctx.db
      .selectFrom('operator_enrolment_codes')
      .selectAll()
      .where('operator_id', '=', operatorId)
      .orderBy('issued_at', 'desc')
      .orderBy('code_hash')
      .limit(200)
      .execute();
    return rows.map(enrolmentCodeFrom);
  }
  async revokeCode(operatorId: string, codeId: string, at: number): Promise<boolean> {
    const result = await this.ctx.db
      .updateTable('operator_enrolment_codes')
      .set({ used_at: at, revoked_at: at })
      .where('operator_id', '=', operatorId)
      .where(sql<string>`substr(code_hash, 1, ${sql.lit(CODE_ID_LENGTH)})`, '=', codeId)
      .where('used_at', 'is', null)
      .executeTakeFirst();
    return changed(result) > 0;
  }
  /**
   * From the operators, not the passkeys: a text match on the stored roles first (no JSON parsed for a
   * teller), the exact role check on what it keeps, then the admin's passkey by the operator index. The
   * join from every passkey cost 160–220 ms per call on PostgreSQL with 100,000 passkeys and no admin
   * (bench/admin-estate.ts), and the sign-in page's unauthenticated status asks it.
   */
  async adminPasskeyExists(): Promise<boolean> {
    const row = await this.ctx.db
      .selectFrom('operators as o')
      .select('o.id')
      .where('o.roles', 'like', '%admin%')
      .where(this.holdsAdmin('o'))
      .where((eb) => eb.exists(eb.selectFrom('credentials as c').select('c.id').whereRef('c.operator_id', '=', 'o.id')))
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }
  async bootstrapToken(hash: string): Promise<'enabled' | 'disabled' | undefined> {
    const row = await this.ctx.db
      .selectFrom('admin_tokens')
      .select('disabled_at')
      .where('token_hash', '=', hash)
      .where('label', '=', 'bootstrap')
      .executeTakeFirst();
    if (row === undefined) return undefined;
    return optNum(row, 'disabled_at') === null ? 'enabled' : 'disabled';
  }
  async retireBootstrap(at: number): Promise<{ tokensDisabled: number; codesRevoked: number }> {
    return atomic(this.ctx, async (db) => {
      const tokens = await db
        .updateTable('admin_tokens')
        .set({ disabled_at: at })
        .where('label', '=', 'bootstrap')
        .where('disabled_at', 'is', null)
        .executeTakeFirst();
      const codes = await db
        .updateTable('operator_enrolment_codes')
        .set({ used_at: at, revoked_at: at })
        .where('issued_by', '=', 'admin:bootstrap')
        .where('used_at', 'is', null)
        .where('operator_id', 'in', (eb) => eb.selectFrom('operators as o').select('o.id').where(this.holdsAdmin('o')))
        .executeTakeFirst();
      return { tokensDisabled: changed(tokens), codesRevoked: changed(codes) };
    });
  }
  async setRoles(operatorId: string, roles: string[]): Promise<boolean> {
    const result = await this.ctx.db
      .updateTable('operators')
      .set({ roles: JSON.stringify(roles) })
      .where('id', '=', operatorId)
      .executeTakeFirst();
    return changed(result) > 0;
  }
}

/** An enrolment code as the admin sees it: its public id (a prefix of the hash), never the hash. */
export function enrolmentCodeFrom(row: Row): EnrolmentCodeView {
  return {
    id: str(row, 'code_hash').slice(0, CODE_ID_LENGTH),
    operatorId: str(row, 'operator_id'),
    issuedBy: str(row, 'issued_by'),
    issuedAt: num(row, 'issued_at'),
    expiresAt: num(row, 'expires_at'),
    revokedAt: optNum(row, 'revoked_at'),
    usedAt: optNum(row, 'revoked_at') === null ? optNum(row, 'used_at') : null,
  };
}
