import type { Sync } from './repositories.js';
import type Database from 'better-sqlite3';

/** One signed-in admin in the admin console. The cookie holds a secret; only its hash is stored. */
export interface AdminSessionRecord {
  id: string;
  tokenHash: string;
  operatorId: string;
  credentialId: string;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  /** When the admin last proved user verification for a destructive action (null: never in this session). */
  stepUpAt: number | null;
  endedAt: number | null;
  endReason: string | null;
}

/** The outbox backlog a console reported in its last `hello`. */
export interface OutboxReport {
  consoleId: string;
  pending: number;
  max: number;
  reportedAt: number;
}

/** An operator enrolment code as admins see it: never the code, only a short id derived from its hash. */
export interface EnrolmentCodeView {
  id: string;
  operatorId: string;
  issuedBy: string;
  issuedAt: number;
  expiresAt: number;
  usedAt: number | null;
  revokedAt: number | null;
}

/** Length of the hash prefix that names an enrolment code (64 bits: unique enough, says nothing of the code). */
export const CODE_ID_LENGTH = 16;

export interface AdminRepository {
  insertSession(record: AdminSessionRecord): Promise<void>;
  sessionByTokenHash(hash: string): Promise<AdminSessionRecord | undefined>;
  touchSession(id: string, at: number): Promise<void>;
  recordStepUp(id: string, at: number): Promise<void>;
  endSession(id: string, at: number, reason: string): Promise<boolean>;
  /** Ends every live admin session; returns the ids that were live. */
  endAllSessions(at: number, reason: string, operatorId?: string): Promise<string[]>;
  liveSessions(): Promise<AdminSessionRecord[]>;
  recordOutbox(report: OutboxReport): Promise<void>;
  outboxReports(): Promise<OutboxReport[]>;
  listCodes(operatorId: string): Promise<EnrolmentCodeView[]>;
  /**
   * Revokes an unused code. It is also marked used, so every path that redeems codes refuses it
   * (atomically against a concurrent redemption).
   */
  revokeCode(operatorId: string, codeId: string, at: number): Promise<boolean>;
  /** Whether any operator holding the `admin` role has ever registered a passkey. */
  adminPasskeyExists(): Promise<boolean>;
  /** Whether `hash` is a bootstrap token, and whether it is still enabled. */
  bootstrapToken(hash: string): Promise<'enabled' | 'disabled' | undefined>;
  /**
   * Retires the bootstrap token for good: disables it and revokes every unused enrolment code it
   * issued to an operator holding the `admin` role (a code minted with the token must not outlive
   * it as a second way in). Returns how many tokens and codes changed; idempotent.
   */
  retireBootstrap(at: number): Promise<{ tokensDisabled: number; codesRevoked: number }>;
  setRoles(operatorId: string, roles: string[]): Promise<boolean>;
}

type Row = Record<string, unknown>;

function text(row: Row, key: string): string {
  const v = row[key];
  if (typeof v !== 'string') throw new Error(`database: ${key} is not text`);
  return v;
}
function int(row: Row, key: string): number {
  const v = row[key];
  if (typeof v !== 'number') throw new Error(`database: ${key} is not a number`);
  return v;
}
function optInt(row: Row, key: string): number | null {
  const v = row[key];
  return typeof v === 'number' ? v : null;
}

function sessionFrom(row: Row): AdminSessionRecord {
  return {
    id: text(row, 'id'),
    tokenHash: text(row, 'token_hash'),
    operatorId: text(row, 'operator_id'),
    credentialId: text(row, 'credential_id'),
    createdAt: int(row, 'created_at'),
    lastSeenAt: int(row, 'last_seen_at'),
    expiresAt: int(row, 'expires_at'),
    stepUpAt: optInt(row, 'step_up_at'),
    endedAt: optInt(row, 'ended_at'),
    endReason: typeof row.end_reason === 'string' ? row.end_reason : null,
  };
}

export class SqliteAdminRepository implements Sync<AdminRepository> {
  private readonly stmts;
  constructor(db: Database.Database) {
    this.stmts = {
      insertSession: db.prepare(
        `INSERT INTO admin_sessions (id, token_hash, operator_id, credential_id, created_at, last_seen_at, expires_at, step_up_at, ended_at, end_reason)
         VALUES (@id, @tokenHash, @operatorId, @credentialId, @createdAt, @lastSeenAt, @expiresAt, @stepUpAt, @endedAt, @endReason)`,
      ),
      byHash: db.prepare('SELECT * FROM admin_sessions WHERE token_hash = ?'),
      touch: db.prepare('UPDATE admin_sessions SET last_seen_at = MAX(last_seen_at, ?) WHERE id = ?'),
      stepUp: db.prepare('UPDATE admin_sessions SET step_up_at = ? WHERE id = ? AND ended_at IS NULL'),
      end: db.prepare('UPDATE admin_sessions SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL'),
      live: db.prepare('SELECT * FROM admin_sessions WHERE ended_at IS NULL ORDER BY created_at'),
      liveOf: db.prepare('SELECT id FROM admin_sessions WHERE ended_at IS NULL AND operator_id = ?'),
      liveAll: db.prepare('SELECT id FROM admin_sessions WHERE ended_at IS NULL'),
      outbox: db.prepare(
        `INSERT INTO console_outbox_reports (console_id, pending, max, reported_at) VALUES (@consoleId, @pending, @max, @reportedAt)
         ON CONFLICT(console_id) DO UPDATE SET pending = excluded.pending, max = excluded.max, reported_at = excluded.reported_at`,
      ),
      outboxAll: db.prepare('SELECT * FROM console_outbox_reports'),
      codes: db.prepare(
        'SELECT * FROM operator_enrolment_codes WHERE operator_id = ? ORDER BY issued_at DESC, code_hash LIMIT 200',
      ),
      revokeCode: db.prepare(
        `UPDATE operator_enrolment_codes SET used_at = @at, revoked_at = @at
         WHERE operator_id = @operatorId AND substr(code_hash, 1, ${CODE_ID_LENGTH}) = @codeId AND used_at IS NULL`,
      ),
      adminPasskey: db.prepare(
        `SELECT 1 FROM credentials c JOIN operators o ON o.id = c.operator_id
         WHERE EXISTS (SELECT 1 FROM json_each(o.roles) WHERE json_each.value = 'admin') LIMIT 1`,
      ),
      bootstrap: db.prepare("SELECT disabled_at FROM admin_tokens WHERE token_hash = ? AND label = 'bootstrap'"),
      disableBootstrap: db.prepare(
        "UPDATE admin_tokens SET disabled_at = ? WHERE label = 'bootstrap' AND disabled_at IS NULL",
      ),
      revokeBootstrapAdminCodes: db.prepare(
        `UPDATE operator_enrolment_codes SET used_at = @at, revoked_at = @at
         WHERE issued_by = 'admin:bootstrap' AND used_at IS NULL AND operator_id IN (
           SELECT o.id FROM operators o WHERE EXISTS (SELECT 1 FROM json_each(o.roles) WHERE json_each.value = 'admin'))`,
      ),
      setRoles: db.prepare('UPDATE operators SET roles = ? WHERE id = ?'),
    };
  }
  insertSession(record: AdminSessionRecord): void {
    this.stmts.insertSession.run(record);
  }
  sessionByTokenHash(hash: string): AdminSessionRecord | undefined {
    const row = this.stmts.byHash.get(hash) as Row | undefined;
    return row === undefined ? undefined : sessionFrom(row);
  }
  touchSession(id: string, at: number): void {
    this.stmts.touch.run(at, id);
  }
  recordStepUp(id: string, at: number): void {
    this.stmts.stepUp.run(at, id);
  }
  endSession(id: string, at: number, reason: string): boolean {
    return this.stmts.end.run(at, reason, id).changes > 0;
  }
  endAllSessions(at: number, reason: string, operatorId?: string): string[] {
    const rows = (operatorId === undefined ? this.stmts.liveAll.all() : this.stmts.liveOf.all(operatorId)) as Row[];
    const ids = rows.map((r) => text(r, 'id'));
    for (const id of ids) this.stmts.end.run(at, reason, id);
    return ids;
  }
  liveSessions(): AdminSessionRecord[] {
    return (this.stmts.live.all() as Row[]).map(sessionFrom);
  }
  recordOutbox(report: OutboxReport): void {
    this.stmts.outbox.run(report);
  }
  outboxReports(): OutboxReport[] {
    return (this.stmts.outboxAll.all() as Row[]).map((row) => ({
      consoleId: text(row, 'console_id'),
      pending: int(row, 'pending'),
      max: int(row, 'max'),
      reportedAt: int(row, 'reported_at'),
    }));
  }
  listCodes(operatorId: string): EnrolmentCodeView[] {
    return (this.stmts.codes.all(operatorId) as Row[]).map((row) => ({
      id: text(row, 'code_hash').slice(0, CODE_ID_LENGTH),
      operatorId: text(row, 'operator_id'),
      issuedBy: text(row, 'issued_by'),
      issuedAt: int(row, 'issued_at'),
      expiresAt: int(row, 'expires_at'),
      revokedAt: optInt(row, 'revoked_at'),
      usedAt: optInt(row, 'revoked_at') === null ? optInt(row, 'used_at') : null,
    }));
  }
  revokeCode(operatorId: string, codeId: string, at: number): boolean {
    return this.stmts.revokeCode.run({ operatorId, codeId, at }).changes > 0;
  }
  adminPasskeyExists(): boolean {
    return this.stmts.adminPasskey.get() !== undefined;
  }
  bootstrapToken(hash: string): 'enabled' | 'disabled' | undefined {
    const row = this.stmts.bootstrap.get(hash) as Row | undefined;
    if (row === undefined) return undefined;
    return optInt(row, 'disabled_at') === null ? 'enabled' : 'disabled';
  }
  retireBootstrap(at: number): { tokensDisabled: number; codesRevoked: number } {
    const tokensDisabled = this.stmts.disableBootstrap.run(at).changes;
    const codesRevoked = this.stmts.revokeBootstrapAdminCodes.run({ at }).changes;
    return { tokensDisabled, codesRevoked };
  }
  setRoles(operatorId: string, roles: string[]): boolean {
    return this.stmts.setRoles.run(JSON.stringify(roles), operatorId).changes > 0;
  }
}
