import type { Sync } from './repositories.js';
import type Database from 'better-sqlite3';
import { PolicySchema, type PolicyVersion } from '../../shared/policy.js';
import { REVOCATION_KINDS } from '../../shared/protocol.js';
import { ASSURANCE_LEVELS } from '../../shared/levels.js';
import type {
  AdminTokenRepository,
  CommandRecord,
  CommandRepository,
  ConsoleRecord,
  ConsoleRepository,
  ConsoleTokenRecord,
  CredentialRecord,
  EnrolmentCodeRecord,
  MetaRepository,
  OperatorRecord,
  OperatorRepository,
  PolicyRepository,
  RevocationRecord,
  RevocationRepository,
  SessionRecord,
  SessionRepository,
  SessionState,
} from './repositories.js';

type Row = Record<string, unknown>;

/** Values read back from the database are checked like any other input before they are trusted. */
function str(row: Row, key: string): string {
  const v = row[key];
  if (typeof v !== 'string') throw new Error(`database: ${key} is not text`);
  return v;
}
function optStr(row: Row, key: string): string | null {
  const v = row[key];
  return typeof v === 'string' ? v : null;
}
function num(row: Row, key: string): number {
  const v = row[key];
  if (typeof v !== 'number') throw new Error(`database: ${key} is not a number`);
  return v;
}
function optNum(row: Row, key: string): number | null {
  const v = row[key];
  return typeof v === 'number' ? v : null;
}
function stringArray(row: Row, key: string): string[] {
  const parsed: unknown = JSON.parse(str(row, key));
  if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string')) {
    throw new Error(`database: ${key} is not a string array`);
  }
  return parsed;
}
function oneOf<T extends string>(allowed: readonly T[], value: string, key: string): T {
  if (!(allowed as readonly string[]).includes(value)) throw new Error(`database: ${key} has unknown value`);
  return value as T;
}

export class SqliteConsoles implements Sync<ConsoleRepository> {
  private readonly stmts;
  constructor(db: Database.Database) {
    this.stmts = {
      insert: db.prepare(
        `INSERT INTO consoles (id, name, channel, site, public_jwk, jkt, enrolled_at, last_seen_at, policy_version, revocation_epoch, revoked_at, revoked_reason)
         VALUES (@id, @name, @channel, @site, @publicJwk, @jkt, @enrolledAt, @lastSeenAt, @policyVersion, @revocationEpoch, @revokedAt, @revokedReason)`,
      ),
      get: db.prepare('SELECT * FROM consoles WHERE id = ?'),
      list: db.prepare('SELECT * FROM consoles ORDER BY enrolled_at'),
      touch: db.prepare('UPDATE consoles SET last_seen_at = ? WHERE id = ?'),
      setPolicy: db.prepare('UPDATE consoles SET policy_version = ? WHERE id = ?'),
      setEpoch: db.prepare('UPDATE consoles SET revocation_epoch = MAX(revocation_epoch, ?) WHERE id = ?'),
      revoke: db.prepare('UPDATE consoles SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL'),
      insertToken: db.prepare(
        `INSERT INTO console_enrolment_tokens (token_hash, channel, site, issued_by, issued_at, expires_at)
         VALUES (@hash, @channel, @site, @issuedBy, @issuedAt, @expiresAt)`,
      ),
      getToken: db.prepare('SELECT * FROM console_enrolment_tokens WHERE token_hash = ?'),
      useToken: db.prepare(
        'UPDATE console_enrolment_tokens SET used_at = ?, console_id = ? WHERE token_hash = ? AND used_at IS NULL',
      ),
    };
  }
  private map(row: Row): ConsoleRecord {
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
  insert(record: ConsoleRecord): void {
    this.stmts.insert.run(record);
  }
  get(id: string): ConsoleRecord | undefined {
    const row = this.stmts.get.get(id) as Row | undefined;
    return row && this.map(row);
  }
  list(): ConsoleRecord[] {
    return (this.stmts.list.all() as Row[]).map((r) => this.map(r));
  }
  touch(id: string, at: number): void {
    this.stmts.touch.run(at, id);
  }
  setSyncState(id: string, state: { policyVersion?: number; revocationEpoch?: number }): void {
    if (state.policyVersion !== undefined) this.stmts.setPolicy.run(state.policyVersion, id);
    if (state.revocationEpoch !== undefined) this.stmts.setEpoch.run(state.revocationEpoch, id);
  }
  revoke(id: string, at: number, reason: string): boolean {
    return this.stmts.revoke.run(at, reason, id).changes === 1;
  }
  insertToken(record: ConsoleTokenRecord): void {
    this.stmts.insertToken.run({ ...record });
  }
  getToken(hash: string): ConsoleTokenRecord | undefined {
    const row = this.stmts.getToken.get(hash) as Row | undefined;
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
  useToken(hash: string, at: number, consoleId: string): boolean {
    return this.stmts.useToken.run(at, consoleId, hash).changes === 1;
  }
}

export class SqliteOperators implements Sync<OperatorRepository> {
  private readonly stmts;
  constructor(db: Database.Database) {
    this.stmts = {
      insert: db.prepare(
        `INSERT INTO operators (id, display_name, roles, webauthn_user_id, created_at, failed_attempts, revoked_at, revoked_reason)
         VALUES (@id, @displayName, @roles, @webauthnUserId, @createdAt, @failedAttempts, @revokedAt, @revokedReason)`,
      ),
      get: db.prepare('SELECT * FROM operators WHERE id = ?'),
      getByUser: db.prepare('SELECT * FROM operators WHERE webauthn_user_id = ?'),
      list: db.prepare('SELECT * FROM operators ORDER BY created_at'),
      revoke: db.prepare('UPDATE operators SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL'),
      fail: db.prepare(
        'UPDATE operators SET failed_attempts = failed_attempts + 1 WHERE id = ? RETURNING failed_attempts',
      ),
      reset: db.prepare('UPDATE operators SET failed_attempts = 0 WHERE id = ? AND failed_attempts <> 0'),
      insertCode: db.prepare(
        `INSERT INTO operator_enrolment_codes (code_hash, operator_id, issued_by, issued_at, expires_at)
         VALUES (@hash, @operatorId, @issuedBy, @issuedAt, @expiresAt)`,
      ),
      getCode: db.prepare('SELECT * FROM operator_enrolment_codes WHERE code_hash = ?'),
      useCode: db.prepare(
        'UPDATE operator_enrolment_codes SET used_at = ?, credential_id = ? WHERE code_hash = ? AND used_at IS NULL',
      ),
      insertCredential: db.prepare(
        `INSERT INTO credentials (id, operator_id, public_key, counter, transports, device_bound, backed_up, aaguid, attestation_fmt, attestation_trust, registered_on_console, created_at, last_used_at, revoked_at, revoked_reason, suspended_at, suspended_reason)
         VALUES (@id, @operatorId, @publicKey, @counter, @transports, @deviceBound, @backedUp, @aaguid, @attestationFmt, @attestationTrust, @registeredOnConsole, @createdAt, @lastUsedAt, @revokedAt, @revokedReason, @suspendedAt, @suspendedReason)`,
      ),
      getCredential: db.prepare('SELECT * FROM credentials WHERE id = ?'),
      listCredentials: db.prepare('SELECT * FROM credentials WHERE operator_id = ? ORDER BY created_at'),
      useCredential: db.prepare('UPDATE credentials SET counter = ?, last_used_at = ? WHERE id = ?'),
      revokeCredential: db.prepare(
        'UPDATE credentials SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL',
      ),
      suspendCredential: db.prepare(
        'UPDATE credentials SET suspended_at = ?, suspended_reason = ? WHERE id = ? AND revoked_at IS NULL AND suspended_at IS NULL',
      ),
      listSuspended: db.prepare(
        'SELECT * FROM credentials WHERE suspended_at IS NOT NULL AND revoked_at IS NULL ORDER BY suspended_at',
      ),
      reinstateCredential: db.prepare(
        'UPDATE credentials SET suspended_at = NULL, suspended_reason = NULL WHERE id = ? AND suspended_at IS NOT NULL',
      ),
    };
  }
  private map(row: Row): OperatorRecord {
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
  private mapCredential(row: Row): CredentialRecord {
    const key = row.public_key;
    if (!(key instanceof Uint8Array)) throw new Error('database: public_key is not a blob');
    return {
      id: str(row, 'id'),
      operatorId: str(row, 'operator_id'),
      publicKey: new Uint8Array(key),
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
  insert(record: OperatorRecord): void {
    this.stmts.insert.run({ ...record, roles: JSON.stringify(record.roles) });
  }
  get(id: string): OperatorRecord | undefined {
    const row = this.stmts.get.get(id) as Row | undefined;
    return row && this.map(row);
  }
  getByWebauthnUserId(userId: string): OperatorRecord | undefined {
    const row = this.stmts.getByUser.get(userId) as Row | undefined;
    return row && this.map(row);
  }
  list(): OperatorRecord[] {
    return (this.stmts.list.all() as Row[]).map((r) => this.map(r));
  }
  revoke(id: string, at: number, reason: string): boolean {
    return this.stmts.revoke.run(at, reason, id).changes === 1;
  }
  recordFailure(id: string): number {
    const row = this.stmts.fail.get(id) as Row | undefined;
    return row ? num(row, 'failed_attempts') : 0;
  }
  resetFailures(id: string): void {
    this.stmts.reset.run(id);
  }
  insertCode(record: EnrolmentCodeRecord): void {
    this.stmts.insertCode.run({ ...record });
  }
  getCode(hash: string): EnrolmentCodeRecord | undefined {
    const row = this.stmts.getCode.get(hash) as Row | undefined;
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
  useCode(hash: string, at: number, credentialId: string): boolean {
    return this.stmts.useCode.run(at, credentialId, hash).changes === 1;
  }
  insertCredential(record: CredentialRecord): void {
    this.stmts.insertCredential.run({
      ...record,
      publicKey: Buffer.from(record.publicKey),
      transports: JSON.stringify(record.transports),
      deviceBound: record.deviceBound ? 1 : 0,
      backedUp: record.backedUp ? 1 : 0,
    });
  }
  getCredential(id: string): CredentialRecord | undefined {
    const row = this.stmts.getCredential.get(id) as Row | undefined;
    return row && this.mapCredential(row);
  }
  listCredentials(operatorId: string): CredentialRecord[] {
    return (this.stmts.listCredentials.all(operatorId) as Row[]).map((r) => this.mapCredential(r));
  }
  recordCredentialUse(id: string, counter: number, at: number): void {
    this.stmts.useCredential.run(counter, at, id);
  }
  revokeCredential(id: string, at: number, reason: string): boolean {
    return this.stmts.revokeCredential.run(at, reason, id).changes === 1;
  }
  suspendCredential(id: string, at: number, reason: string): boolean {
    return this.stmts.suspendCredential.run(at, reason, id).changes === 1;
  }
  reinstateCredential(id: string): boolean {
    return this.stmts.reinstateCredential.run(id).changes === 1;
  }
  listSuspendedCredentials(): CredentialRecord[] {
    return (this.stmts.listSuspended.all() as Row[]).map((r) => this.mapCredential(r));
  }
}

const SESSION_STATES: readonly SessionState[] = ['active', 'suspended', 'ended', 'revoked', 'expired'];
const SESSION_COLUMNS: Record<keyof Omit<SessionRecord, 'id'>, string> = {
  operatorId: 'operator_id',
  consoleId: 'console_id',
  channel: 'channel',
  credentialId: 'credential_id',
  level: 'level',
  authTime: 'auth_time',
  startedAt: 'started_at',
  expiresAt: 'expires_at',
  state: 'state',
  suspendedAt: 'suspended_at',
  endedAt: 'ended_at',
  endReason: 'end_reason',
};

export class SqliteSessions implements Sync<SessionRepository> {
  private readonly stmts;
  /** Prepared UPDATEs by the set of columns they change (preparing costs more than running). */
  private readonly updates = new Map<string, Database.Statement>();
  constructor(private readonly db: Database.Database) {
    this.stmts = {
      insert: db.prepare(
        `INSERT INTO sessions (id, operator_id, console_id, channel, credential_id, level, auth_time, started_at, expires_at, state, suspended_at, ended_at, end_reason)
         VALUES (@id, @operatorId, @consoleId, @channel, @credentialId, @level, @authTime, @startedAt, @expiresAt, @state, @suspendedAt, @endedAt, @endReason)`,
      ),
      get: db.prepare('SELECT * FROM sessions WHERE id = ?'),
      liveOnConsole: db.prepare(
        "SELECT * FROM sessions WHERE console_id = ? AND state IN ('active','suspended') ORDER BY started_at, id",
      ),
      liveForOperator: db.prepare(
        "SELECT * FROM sessions WHERE operator_id = ? AND state IN ('active','suspended') ORDER BY started_at, id",
      ),
    };
  }
  private map(row: Row): SessionRecord {
    return {
      id: str(row, 'id'),
      operatorId: str(row, 'operator_id'),
      consoleId: str(row, 'console_id'),
      channel: str(row, 'channel'),
      credentialId: str(row, 'credential_id'),
      level: oneOf(ASSURANCE_LEVELS, str(row, 'level'), 'level'),
      authTime: num(row, 'auth_time'),
      startedAt: num(row, 'started_at'),
      expiresAt: num(row, 'expires_at'),
      state: oneOf(SESSION_STATES, str(row, 'state'), 'state'),
      suspendedAt: optNum(row, 'suspended_at'),
      endedAt: optNum(row, 'ended_at'),
      endReason: optStr(row, 'end_reason'),
    };
  }
  insert(record: SessionRecord): void {
    this.stmts.insert.run(record);
  }
  get(id: string): SessionRecord | undefined {
    const row = this.stmts.get.get(id) as Row | undefined;
    return row && this.map(row);
  }
  /** BEGIN IMMEDIATE already serialises every writing unit of work: a plain read. */
  getForUpdate(id: string): SessionRecord | undefined {
    return this.get(id);
  }
  /** `forUpdate` needs nothing here: BEGIN IMMEDIATE already serialises every writing unit of work. */
  liveOnConsole(consoleId: string, _options?: { forUpdate?: boolean }): SessionRecord[] {
    return (this.stmts.liveOnConsole.all(consoleId) as Row[]).map((r) => this.map(r));
  }
  liveForOperator(operatorId: string): SessionRecord[] {
    return (this.stmts.liveForOperator.all(operatorId) as Row[]).map((r) => this.map(r));
  }
  list(filter: { state?: SessionState | undefined; consoleId?: string | undefined; limit: number }): SessionRecord[] {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.state !== undefined) {
      where.push('state = ?');
      params.push(filter.state);
    }
    if (filter.consoleId !== undefined) {
      where.push('console_id = ?');
      params.push(filter.consoleId);
    }
    const sql = `SELECT * FROM sessions ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY started_at DESC LIMIT ?`;
    return (this.db.prepare(sql).all(...params, filter.limit) as Row[]).map((r) => this.map(r));
  }
  update(id: string, changes: Partial<Omit<SessionRecord, 'id'>>): void {
    const keys = (Object.keys(changes) as (keyof typeof SESSION_COLUMNS)[]).sort();
    if (keys.length === 0) return;
    const cacheKey = keys.join(',');
    let statement = this.updates.get(cacheKey);
    if (statement === undefined) {
      const sets = keys.map((k) => `${SESSION_COLUMNS[k]} = @${k}`).join(', ');
      statement = this.db.prepare(`UPDATE sessions SET ${sets} WHERE id = @id`);
      this.updates.set(cacheKey, statement);
    }
    statement.run({ ...changes, id });
  }
}

export class SqlitePolicies implements Sync<PolicyRepository> {
  private readonly stmts;
  constructor(db: Database.Database) {
    this.stmts = {
      latest: db.prepare('SELECT * FROM policy_versions ORDER BY version DESC LIMIT 1'),
      get: db.prepare('SELECT * FROM policy_versions WHERE version = ?'),
      list: db.prepare('SELECT * FROM policy_versions ORDER BY version'),
      insert: db.prepare(
        'INSERT INTO policy_versions (version, document, published_at, published_by) VALUES (?, ?, ?, ?)',
      ),
    };
  }
  private map(row: Row): PolicyVersion {
    return {
      version: num(row, 'version'),
      policy: PolicySchema.parse(JSON.parse(str(row, 'document'))),
      publishedAt: num(row, 'published_at'),
      publishedBy: str(row, 'published_by'),
    };
  }
  latest(): PolicyVersion | undefined {
    const row = this.stmts.latest.get() as Row | undefined;
    return row && this.map(row);
  }
  get(version: number): PolicyVersion | undefined {
    const row = this.stmts.get.get(version) as Row | undefined;
    return row && this.map(row);
  }
  list(): PolicyVersion[] {
    return (this.stmts.list.all() as Row[]).map((r) => this.map(r));
  }
  insert(version: PolicyVersion): void {
    this.stmts.insert.run(version.version, JSON.stringify(version.policy), version.publishedAt, version.publishedBy);
  }
}

export class SqliteRevocations implements Sync<RevocationRepository> {
  private readonly stmts;
  constructor(private readonly db: Database.Database) {
    this.stmts = {
      insert: db.prepare(
        `INSERT INTO revocations (kind, target_id, operator_id, console_id, reason, actor, created_at)
         VALUES (@kind, @targetId, @operatorId, @consoleId, @reason, @actor, @at) RETURNING epoch`,
      ),
      epoch: db.prepare('SELECT COALESCE(MAX(epoch), 0) AS epoch FROM revocations'),
      since: db.prepare('SELECT * FROM revocations WHERE epoch > ? ORDER BY epoch'),
      delivery: db.prepare('INSERT OR IGNORE INTO revocation_deliveries (epoch, console_id, sent_at) VALUES (?, ?, ?)'),
      ack: db.prepare(
        'UPDATE revocation_deliveries SET acked_at = ? WHERE console_id = ? AND epoch <= ? AND acked_at IS NULL',
      ),
      deliveries: db.prepare('SELECT * FROM revocation_deliveries WHERE epoch = ? ORDER BY sent_at'),
    };
  }
  insert(record: Omit<RevocationRecord, 'epoch'>): RevocationRecord {
    const row = this.stmts.insert.get({ ...record }) as Row;
    return { ...record, epoch: num(row, 'epoch') };
  }
  currentEpoch(): number {
    return num(this.stmts.epoch.get() as Row, 'epoch');
  }
  since(epoch: number): RevocationRecord[] {
    return (this.stmts.since.all(epoch) as Row[]).map((row) => ({
      epoch: num(row, 'epoch'),
      kind: oneOf(REVOCATION_KINDS, str(row, 'kind'), 'kind'),
      targetId: str(row, 'target_id'),
      operatorId: optStr(row, 'operator_id'),
      consoleId: optStr(row, 'console_id'),
      reason: str(row, 'reason'),
      actor: str(row, 'actor'),
      at: num(row, 'created_at'),
    }));
  }
  recordDeliveries(epoch: number, consoleIds: string[], at: number): void {
    this.db.transaction(() => {
      for (const id of consoleIds) this.stmts.delivery.run(epoch, id, at);
    })();
  }
  recordAck(consoleId: string, epoch: number, at: number): void {
    this.stmts.ack.run(at, consoleId, epoch);
  }
  deliveries(epoch: number): { consoleId: string; sentAt: number; ackedAt: number | null }[] {
    return (this.stmts.deliveries.all(epoch) as Row[]).map((row) => ({
      consoleId: str(row, 'console_id'),
      sentAt: num(row, 'sent_at'),
      ackedAt: optNum(row, 'acked_at'),
    }));
  }
}

export class SqliteAdminTokens implements Sync<AdminTokenRepository> {
  private readonly stmts;
  constructor(db: Database.Database) {
    this.stmts = {
      insert: db.prepare('INSERT INTO admin_tokens (token_hash, label, created_at) VALUES (?, ?, ?)'),
      valid: db.prepare('SELECT 1 FROM admin_tokens WHERE token_hash = ? AND disabled_at IS NULL'),
      any: db.prepare('SELECT 1 FROM admin_tokens LIMIT 1'),
    };
  }
  insert(hash: string, label: string, at: number): void {
    this.stmts.insert.run(hash, label, at);
  }
  isValid(hash: string): boolean {
    return this.stmts.valid.get(hash) !== undefined;
  }
  any(): boolean {
    return this.stmts.any.get() !== undefined;
  }
}

export class SqliteMeta implements Sync<MetaRepository> {
  private readonly stmts;
  constructor(db: Database.Database) {
    this.stmts = {
      get: db.prepare('SELECT value FROM meta WHERE key = ?'),
      set: db.prepare(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      ),
    };
  }
  get(key: string): string | undefined {
    const row = this.stmts.get.get(key) as Row | undefined;
    return row ? str(row, 'value') : undefined;
  }
  set(key: string, value: string): void {
    this.stmts.set.run(key, value);
  }
}

export class SqliteCommands implements Sync<CommandRepository> {
  private readonly stmts;
  constructor(db: Database.Database) {
    this.stmts = {
      insert: db.prepare(
        'INSERT INTO console_commands (id, console_id, session_id, reason, created_at) VALUES (@id, @consoleId, @sessionId, @reason, @createdAt)',
      ),
      pending: db.prepare(
        'SELECT * FROM console_commands WHERE console_id = ? AND acked_at IS NULL ORDER BY created_at, id',
      ),
      ack: db.prepare('UPDATE console_commands SET acked_at = ? WHERE console_id = ? AND id = ? AND acked_at IS NULL'),
    };
  }
  insert(record: CommandRecord): void {
    this.stmts.insert.run(record);
  }
  pending(consoleId: string): CommandRecord[] {
    return (this.stmts.pending.all(consoleId) as Row[]).map((row) => ({
      id: str(row, 'id'),
      consoleId: str(row, 'console_id'),
      sessionId: str(row, 'session_id'),
      reason: str(row, 'reason'),
      createdAt: num(row, 'created_at'),
    }));
  }
  acknowledge(consoleId: string, id: string, at: number): boolean {
    return this.stmts.ack.run(at, consoleId, id).changes === 1;
  }
}
