/** Operators, their enrolment codes and their credentials (Kysely, both dialects). */
import { sql } from 'kysely';
import {
  counterNotAdvanced,
  type AssertionRowsState,
  type AssertionUseInput,
  type CredentialRecord,
  type EnrolmentCodeRecord,
  type OperatorRecord,
  type OperatorRepository,
} from './repositories.js';
import {
  blob,
  changed,
  num,
  oneOf,
  optNum,
  optStr,
  str,
  stringArray,
  type KyselyContext,
  type Row,
} from './kysely-schema.js';

/** An `operators` row as an OperatorRecord (also the admin lists' rows: admin-tables.ts). */
export function operatorFrom(row: Row): OperatorRecord {
  return {
    id: str(row, 'id'),
    displayName: str(row, 'display_name'),
    roles: stringArray(row, 'roles'),
    webauthnUserId: str(row, 'webauthn_user_id'),
    createdAt: num(row, 'created_at'),
    failedAttempts: num(row, 'failed_attempts'),
    revokedAt: optNum(row, 'revoked_at'),
    revokedReason: optStr(row, 'revoked_reason'),
  };
}

/** A `credentials` row as a CredentialRecord (also the embedded engine's hand-written sign-in reads). */
export function credentialFrom(row: Row): CredentialRecord {
  return {
    id: str(row, 'id'),
    operatorId: str(row, 'operator_id'),
    publicKey: blob(row, 'public_key'),
    counter: num(row, 'counter'),
    transports: stringArray(row, 'transports'),
    deviceBound: num(row, 'device_bound') === 1,
    backedUp: num(row, 'backed_up') === 1,
    aaguid: str(row, 'aaguid'),
    attestationFmt: str(row, 'attestation_fmt'),
    attestationTrust: oneOf(
      ['none', 'self', 'unverified-certificate', 'certificate'] as const,
      str(row, 'attestation_trust'),
      'attestation_trust',
    ),
    registeredOnConsole: str(row, 'registered_on_console'),
    createdAt: num(row, 'created_at'),
    lastUsedAt: optNum(row, 'last_used_at'),
    revokedAt: optNum(row, 'revoked_at'),
    revokedReason: optStr(row, 'revoked_reason'),
    suspendedAt: optNum(row, 'suspended_at'),
    suspendedReason: optStr(row, 'suspended_reason'),
  };
}

/** A credential row joined with its operator's columns (prefixed `o_`), as the sign-in read selects them. */
export function credentialWithOperatorFrom(r: Row): { credential: CredentialRecord; operator: OperatorRecord } {
  return {
    credential: credentialFrom(r),
    operator: operatorFrom({
      id: r.operator_id,
      display_name: r.o_display_name,
      roles: r.o_roles,
      webauthn_user_id: r.o_webauthn_user_id,
      created_at: r.o_created_at,
      failed_attempts: r.o_failed_attempts,
      revoked_at: r.o_revoked_at,
      revoked_reason: r.o_revoked_reason,
    }),
  };
}

export class KyselyOperators implements OperatorRepository {
  constructor(private readonly ctx: KyselyContext) {}

  async insert(r: OperatorRecord): Promise<void> {
    await this.ctx.db
      .insertInto('operators')
      .values({
        id: r.id,
        display_name: r.displayName,
        roles: JSON.stringify(r.roles),
        webauthn_user_id: r.webauthnUserId,
        created_at: r.createdAt,
        failed_attempts: r.failedAttempts,
        revoked_at: r.revokedAt,
        revoked_reason: r.revokedReason,
      })
      .execute();
  }
  async get(id: string, options?: { forUpdate?: boolean }): Promise<OperatorRecord | undefined> {
    const query = this.ctx.db.selectFrom('operators').selectAll().where('id', '=', id);
    // The lock the UPDATE that revokes it takes (SQLite has no row locks: BEGIN IMMEDIATE serialises writing units).
    const locked = options?.forUpdate === true && this.ctx.dialect === 'postgres';
    const row = await (locked ? query.forNoKeyUpdate() : query).executeTakeFirst();
    return row && operatorFrom(row);
  }
  async getByWebauthnUserId(userId: string): Promise<OperatorRecord | undefined> {
    const row = await this.ctx.db
      .selectFrom('operators')
      .selectAll()
      .where('webauthn_user_id', '=', userId)
      .executeTakeFirst();
    return row && operatorFrom(row);
  }
  async list(): Promise<OperatorRecord[]> {
    const rows = await this.ctx.db.selectFrom('operators').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map(operatorFrom);
  }
  async revoke(id: string, at: number, reason: string): Promise<boolean> {
    const result = await this.ctx.db
      .updateTable('operators')
      .set({ revoked_at: at, revoked_reason: reason })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return changed(result) === 1;
  }
  async recordFailure(id: string): Promise<number> {
    const row = await this.ctx.db
      .updateTable('operators')
      .set((eb) => ({ failed_attempts: eb('failed_attempts', '+', 1) }))
      .where('id', '=', id)
      .returning('failed_attempts')
      .executeTakeFirst();
    return row ? num(row, 'failed_attempts') : 0;
  }
  async resetFailures(id: string): Promise<void> {
    await this.ctx.db
      .updateTable('operators')
      .set({ failed_attempts: 0 })
      .where('id', '=', id)
      .where('failed_attempts', '<>', 0)
      .execute();
  }
  async insertCode(r: EnrolmentCodeRecord): Promise<void> {
    await this.ctx.db
      .insertInto('operator_enrolment_codes')
      .values({
        code_hash: r.hash,
        operator_id: r.operatorId,
        issued_by: r.issuedBy,
        issued_at: r.issuedAt,
        expires_at: r.expiresAt,
      })
      .execute();
  }
  async getCode(hash: string): Promise<EnrolmentCodeRecord | undefined> {
    const row = await this.ctx.db
      .selectFrom('operator_enrolment_codes')
      .selectAll()
      .where('code_hash', '=', hash)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      hash: str(row, 'code_hash'),
      operatorId: str(row, 'operator_id'),
      issuedBy: str(row, 'issued_by'),
      issuedAt: num(row, 'issued_at'),
      expiresAt: num(row, 'expires_at'),
      usedAt: optNum(row, 'used_at'),
    };
  }
  /** Single use under concurrency, like `useToken`. */
  async useCode(hash: string, at: number, credentialId: string): Promise<boolean> {
    const result = await this.ctx.db
      .updateTable('operator_enrolment_codes')
      .set({ used_at: at, credential_id: credentialId })
      .where('code_hash', '=', hash)
      .where('used_at', 'is', null)
      .executeTakeFirst();
    return changed(result) === 1;
  }
  async insertCredential(r: CredentialRecord): Promise<void> {
    await this.ctx.db
      .insertInto('credentials')
      .values({
        id: r.id,
        operator_id: r.operatorId,
        public_key: Buffer.from(r.publicKey),
        counter: r.counter,
        transports: JSON.stringify(r.transports),
        device_bound: r.deviceBound ? 1 : 0,
        backed_up: r.backedUp ? 1 : 0,
        aaguid: r.aaguid,
        attestation_fmt: r.attestationFmt,
        attestation_trust: r.attestationTrust,
        registered_on_console: r.registeredOnConsole,
        created_at: r.createdAt,
        last_used_at: r.lastUsedAt,
        revoked_at: r.revokedAt,
        revoked_reason: r.revokedReason,
        suspended_at: r.suspendedAt,
        suspended_reason: r.suspendedReason,
      })
      .execute();
  }
  async getCredential(id: string, options?: { forUpdate?: boolean }): Promise<CredentialRecord | undefined> {
    const query = this.ctx.db.selectFrom('credentials').selectAll().where('id', '=', id);
    const locked = options?.forUpdate === true && this.ctx.dialect === 'postgres';
    const row = await (locked ? query.forNoKeyUpdate() : query).executeTakeFirst();
    return row && credentialFrom(row);
  }
  async listCredentials(operatorId: string): Promise<CredentialRecord[]> {
    const rows = await this.ctx.db
      .selectFrom('credentials')
      .selectAll()
      .where('operator_id', '=', operatorId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(credentialFrom);
  }
  /**
   * One conditional UPDATE whose row count decides (WebAuthn: a non-zero counter must strictly
   * increase): of two nodes advancing the same credential to the same counter, one changes the row
   * (the other waits for its row lock, re-reads the committed counter and changes nothing).
   */
  async recordCredentialUse(id: string, counter: number, at: number): Promise<void> {
    const result = await this.ctx.db
      .updateTable('credentials')
      .set({ counter, last_used_at: at })
      .where('id', '=', id)
      // Zero means the authenticator keeps no counter: accepted only while the stored one is zero too.
      .where('counter', counter === 0 ? '=' : '<', counter)
      .executeTakeFirst();
    if (changed(result) !== 1) throw counterNotAdvanced(id, counter);
  }
  /**
   * PostgreSQL: one statement, three data-modifying CTEs chained by `EXISTS` on the one before (an
   * uncorrelated EXISTS is a one-time filter evaluated before the UPDATE reads a row), so the rows
   * are locked credential → operator → console, the documented lock order, and nothing is locked
   * past a counter that did not advance. SQLite: three statements (no round trips to save).
   */
  async recordAssertionUse(input: AssertionUseInput): Promise<AssertionRowsState> {
    const { credentialId, counter, at, operatorId, consoleId } = input;
    // Zero means the authenticator keeps no counter: accepted only while the stored one is zero too.
    const advances = counter === 0 ? sql`counter = 0` : sql`counter < ${counter}`;
    if (this.ctx.dialect === 'postgres') {
      const console =
        consoleId === undefined
          ? sql`SELECT NULL::bigint AS revoked_at WHERE false`
          : sql`UPDATE consoles SET last_seen_at = ${at} WHERE id = ${consoleId} AND EXISTS (SELECT 1 FROM o) RETURNING revoked_at`;
      const result = await sql<Row>`
        WITH c AS (
          UPDATE credentials SET counter = ${counter}, last_used_at = ${at}
          WHERE id = ${credentialId} AND ${advances}
          RETURNING revoked_at, suspended_at
        ), o AS (
          UPDATE operators SET failed_attempts = 0
          WHERE id = ${operatorId} AND EXISTS (SELECT 1 FROM c)
          RETURNING revoked_at
        ), k AS (${console})
        SELECT c.revoked_at AS c_revoked, c.suspended_at AS c_suspended,
          (SELECT count(*)::int FROM o) AS o_n, (SELECT revoked_at FROM o) AS o_revoked,
          (SELECT count(*)::int FROM k) AS k_n, (SELECT revoked_at FROM k) AS k_revoked
        FROM c`.execute(this.ctx.db);
      const row = result.rows[0];
      if (row === undefined) throw counterNotAdvanced(credentialId, counter);
      return {
        credential: { revokedAt: optNum(row, 'c_revoked'), suspendedAt: optNum(row, 'c_suspended') },
        operatorRevokedAt: num(row, 'o_n') === 0 ? undefined : optNum(row, 'o_revoked'),
        consoleRevokedAt: num(row, 'k_n') === 0 ? undefined : optNum(row, 'k_revoked'),
      };
    }
    const { db } = this.ctx;
    const credential = await db
      .updateTable('credentials')
      .set({ counter, last_used_at: at })
      .where('id', '=', credentialId)
      .where('counter', counter === 0 ? '=' : '<', counter)
      .returning(['revoked_at', 'suspended_at'])
      .executeTakeFirst();
    if (credential === undefined) throw counterNotAdvanced(credentialId, counter);
    const operator = await db
      .updateTable('operators')
      .set({ failed_attempts: 0 })
      .where('id', '=', operatorId)
      .returning('revoked_at')
      .executeTakeFirst();
    const console =
      consoleId === undefined
        ? undefined
        : await db
            .updateTable('consoles')
            .set({ last_seen_at: at })
            .where('id', '=', consoleId)
            .returning('revoked_at')
            .executeTakeFirst();
    return {
      credential: { revokedAt: optNum(credential, 'revoked_at'), suspendedAt: optNum(credential, 'suspended_at') },
      operatorRevokedAt: operator === undefined ? undefined : optNum(operator, 'revoked_at'),
      consoleRevokedAt: console === undefined ? undefined : optNum(console, 'revoked_at'),
    };
  }

  async getCredentialWithOperator(
    id: string,
  ): Promise<{ credential: CredentialRecord; operator: OperatorRecord } | undefined> {
    const row = await this.ctx.db
      .selectFrom('credentials as c')
      .innerJoin('operators as o', 'o.id', 'c.operator_id')
      .selectAll('c')
      .select([
        'o.display_name as o_display_name',
        'o.roles as o_roles',
        'o.webauthn_user_id as o_webauthn_user_id',
        'o.created_at as o_created_at',
        'o.failed_attempts as o_failed_attempts',
        'o.revoked_at as o_revoked_at',
        'o.revoked_reason as o_revoked_reason',
      ])
      .where('c.id', '=', id)
      .executeTakeFirst();
    if (row === undefined) return undefined;
    const r = row as Row;
    return credentialWithOperatorFrom(r);
  }

  async revokeCredential(id: string, at: number, reason: string): Promise<boolean> {
    const result = await this.ctx.db
      .updateTable('credentials')
      .set({ revoked_at: at, revoked_reason: reason })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return changed(result) === 1;
  }
  async suspendCredential(id: string, at: number, reason: string): Promise<boolean> {
    const result = await this.ctx.db
      .updateTable('credentials')
      .set({ suspended_at: at, suspended_reason: reason })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .where('suspended_at', 'is', null)
      .executeTakeFirst();
    return changed(result) === 1;
  }
  async reinstateCredential(id: string): Promise<boolean> {
    const result = await this.ctx.db
      .updateTable('credentials')
      .set({ suspended_at: null, suspended_reason: null })
      .where('id', '=', id)
      .where('suspended_at', 'is not', null)
      .executeTakeFirst();
    return changed(result) === 1;
  }
  async listSuspendedCredentials(): Promise<CredentialRecord[]> {
    const rows = await this.ctx.db
      .selectFrom('credentials')
      .selectAll()
      .where('suspended_at', 'is not', null)
      .where('revoked_at', 'is', null)
      .orderBy('suspended_at')
      .orderBy('id')
      .execute();
    return rows.map(credentialFrom);
  }
}
