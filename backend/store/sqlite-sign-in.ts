/**
 * The embedded engine's sign-in path, hand-written: the reads and writes every sign-in makes on the
 * credential, its operator, the console and the console's live sessions. Through Kysely each of
 * these statements is built as an operation tree, compiled to SQL, looked up in the statement cache
 * and its rows copied: 2.7 ms per sign-in verify against 1.6 ms for the same statements written by
 * hand (CPU profile, docs/benchmarks.md §7), which is what issue 10 allows hand-written SQL for on a
 * hot path. Same statements, same rows, same mappers as the Kysely repositories (kysely-operators.ts,
 * kysely-sessions.ts, kysely-consoles.ts), on the store's one connection, in the unit of work's
 * transaction (SyncRunner); every other method stays Kysely's.
 */
import type Database from 'better-sqlite3';
import {
  counterNotAdvanced,
  type AssertionRowsState,
  type AssertionUseInput,
  type ConsoleRecord,
  type CredentialRecord,
  type OperatorRecord,
  type SessionRecord,
} from './repositories.js';
import type { SyncRunner } from './kysely-store.js';
import { optNum, type KyselyContext, type Row } from './kysely-schema.js';
import { KyselyOperators, credentialWithOperatorFrom } from './kysely-operators.js';
import { KyselySessions, LIVE_STATES, sessionChanges, sessionFrom } from './kysely-sessions.js';
import { KyselyConsoles, consoleFrom } from './kysely-consoles.js';

const SESSION_INSERT_COLUMNS = [
  'id',
  'operator_id',
  'console_id',
  'channel',
  'credential_id',
  'level',
  'auth_time',
  'started_at',
  'expires_at',
  'state',
  'suspended_at',
  'ended_at',
  'end_reason',
] as const;

/** The prepared statements (synchronous, better-sqlite3), made once per store. */
export class SqliteSignInStatements {
  private readonly stmts;
  /** `UPDATE sessions SET <these columns>`, one prepared statement per set of columns changed. */
  private readonly sessionUpdates = new Map<string, Database.Statement>();

  constructor(private readonly db: Database.Database) {
    this.stmts = {
      credentialWithOperator: db.prepare(
        `SELECT c.*, o.display_name AS o_display_name, o.roles AS o_roles, o.webauthn_user_id AS o_webauthn_user_id,
           o.created_at AS o_created_at, o.failed_attempts AS o_failed_attempts, o.revoked_at AS o_revoked_at,
           o.revoked_reason AS o_revoked_reason
         FROM credentials AS c INNER JOIN operators AS o ON o.id = c.operator_id WHERE c.id = ?`,
      ),
      useCredential: db.prepare(
        'UPDATE credentials SET counter = ?, last_used_at = ? WHERE id = ? AND counter < ? RETURNING revoked_at, suspended_at',
      ),
      useCredentialNoCounter: db.prepare(
        'UPDATE credentials SET counter = ?, last_used_at = ? WHERE id = ? AND counter = 0 RETURNING revoked_at, suspended_at',
      ),
      resetFailures: db.prepare('UPDATE operators SET failed_attempts = 0 WHERE id = ? RETURNING revoked_at'),
      seeConsole: db.prepare('UPDATE consoles SET last_seen_at = ? WHERE id = ? RETURNING revoked_at'),
      console: db.prepare('SELECT * FROM consoles WHERE id = ?'),
      liveOnConsole: db.prepare(
        `SELECT * FROM sessions WHERE console_id = ? AND state IN (${LIVE_STATES.map(() => '?').join(', ')})
         ORDER BY started_at, id`,
      ),
      insertSession: db.prepare(
        `INSERT INTO sessions (${SESSION_INSERT_COLUMNS.join(', ')}) VALUES (${SESSION_INSERT_COLUMNS.map(() => '?').join(', ')})`,
      ),
    };
  }

  credentialWithOperator(id: string): { credential: CredentialRecord; operator: OperatorRecord } | undefined {
    const r = this.stmts.credentialWithOperator.get(id) as Row | undefined;
    if (r === undefined) return undefined;
    return credentialWithOperatorFrom(r);
  }

  /** The three writes of KyselyOperators.recordAssertionUse on SQLite, in the same order, as one commit. */
  recordAssertionUse(input: AssertionUseInput): AssertionRowsState {
    const run = (): AssertionRowsState => {
      const { credentialId, counter, at, operatorId, consoleId } = input;
      // Zero means the authenticator keeps no counter: accepted only while the stored one is zero too.
      const credential = (
        counter === 0
          ? this.stmts.useCredentialNoCounter.get(counter, at, credentialId)
          : this.stmts.useCredential.get(counter, at, credentialId, counter)
      ) as Row | undefined;
      if (credential === undefined) throw counterNotAdvanced(credentialId, counter);
      const operator = this.stmts.resetFailures.get(operatorId) as Row | undefined;
      const console =
        consoleId === undefined ? undefined : (this.stmts.seeConsole.get(at, consoleId) as Row | undefined);
      return {
        credential: { revokedAt: optNum(credential, 'revoked_at'), suspendedAt: optNum(credential, 'suspended_at') },
        operatorRevokedAt: operator === undefined ? undefined : optNum(operator, 'revoked_at'),
        consoleRevokedAt: console === undefined ? undefined : optNum(console, 'revoked_at'),
      };
    };
    return this.db.inTransaction ? run() : this.db.transaction(run).immediate();
  }

  console(id: string): ConsoleRecord | undefined {
    const row = this.stmts.console.get(id) as Row | undefined;
    return row && consoleFrom(row);
  }

  liveOnConsole(consoleId: string): SessionRecord[] {
    return (this.stmts.liveOnConsole.all(consoleId, ...LIVE_STATES) as Row[]).map(sessionFrom);
  }

  insertSession(r: SessionRecord): void {
    this.stmts.insertSession.run(
      r.id,
      r.operatorId,
      r.consoleId,
      r.channel,
      r.credentialId,
      r.level,
      r.authTime,
      r.startedAt,
      r.expiresAt,
      r.state,
      r.suspendedAt,
      r.endedAt,
      r.endReason,
    );
  }

  updateSession(id: string, changes: Partial<Omit<SessionRecord, 'id'>>): void {
    const set = sessionChanges(changes);
    const columns = Object.keys(set);
    if (columns.length === 0) return;
    // Column names come from sessionChanges' fixed map (an unknown field throws there), never from input.
    const key = columns.join(',');
    let statement = this.sessionUpdates.get(key);
    if (statement === undefined) {
      statement = this.db.prepare(`UPDATE sessions SET ${columns.map((c) => `${c} = ?`).join(', ')} WHERE id = ?`);
      this.sessionUpdates.set(key, statement);
    }
    statement.run(...columns.map((c) => set[c]), id);
  }
}

/** KyselyOperators with the sign-in's credential read and its use recorded by the statements above. */
export class HandWrittenSqliteOperators extends KyselyOperators {
  constructor(
    private readonly sync: SqliteSignInStatements,
    private readonly runner: SyncRunner,
    ctx: KyselyContext,
  ) {
    super(ctx);
  }

  override getCredentialWithOperator(
    id: string,
  ): Promise<{ credential: CredentialRecord; operator: OperatorRecord } | undefined> {
    return this.runner.run(() => this.sync.credentialWithOperator(id));
  }

  override recordAssertionUse(input: AssertionUseInput): Promise<AssertionRowsState> {
    return this.runner.run(() => this.sync.recordAssertionUse(input));
  }
}

/** KyselySessions with the console's live sessions, a new session and a session's changes hand-written. */
export class HandWrittenSqliteSessions extends KyselySessions {
  constructor(
    private readonly sync: SqliteSignInStatements,
    private readonly runner: SyncRunner,
    ctx: KyselyContext,
  ) {
    super(ctx);
  }

  // SQLite has no row locks (forUpdate): BEGIN IMMEDIATE already serialises every writing unit.
  override liveOnConsole(consoleId: string): Promise<SessionRecord[]> {
    return this.runner.run(() => this.sync.liveOnConsole(consoleId));
  }

  override insert(r: SessionRecord): Promise<void> {
    return this.runner.run(() => this.sync.insertSession(r));
  }

  override update(id: string, changes: Partial<Omit<SessionRecord, 'id'>>): Promise<void> {
    return this.runner.run(() => this.sync.updateSession(id, changes));
  }
}

/** KyselyConsoles with the console read (every signed request authenticates its console) hand-written. */
export class HandWrittenSqliteConsoles extends KyselyConsoles {
  constructor(
    private readonly sync: SqliteSignInStatements,
    private readonly runner: SyncRunner,
    ctx: KyselyContext,
  ) {
    super(ctx);
  }

  // SQLite has no row locks (forUpdate): BEGIN IMMEDIATE already serialises every writing unit.
  override get(id: string): Promise<ConsoleRecord | undefined> {
    return this.runner.run(() => this.sync.console(id));
  }
}
