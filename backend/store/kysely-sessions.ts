/** Sessions, policy versions, end-session commands, admin tokens and meta (Kysely, both dialects). */
import { ASSURANCE_LEVELS } from '../../shared/levels.js';
import { PolicySchema, type PolicyVersion } from '../../shared/policy.js';
import type {
  AdminTokenRepository,
  CommandRecord,
  CommandRepository,
  MetaRepository,
  PolicyRepository,
  SessionRecord,
  SessionRepository,
  SessionState,
} from './repositories.js';
import { changed, inIds, num, oneOf, optNum, optStr, str, type KyselyContext, type Row } from './kysely-schema.js';

const SESSION_STATES: readonly SessionState[] = ['active', 'suspended', 'ended', 'revoked', 'expired'];
export const LIVE_STATES: SessionState[] = ['active', 'suspended'];
const SESSION_COLUMNS = {
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
} as const satisfies Record<keyof Omit<SessionRecord, 'id'>, string>;

/** A `sessions` row as a SessionRecord (also the admin lists' rows: admin-tables.ts). */
export function sessionFrom(row: Row): SessionRecord {
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

export class KyselySessions implements SessionRepository {
  constructor(private readonly ctx: KyselyContext) {}

  async insert(r: SessionRecord): Promise<void> {
    await this.ctx.db
      .insertInto('sessions')
      .values({
        id: r.id,
        operator_id: r.operatorId,
        console_id: r.consoleId,
        channel: r.channel,
        credential_id: r.credentialId,
        level: r.level,
        auth_time: r.authTime,
        started_at: r.startedAt,
        expires_at: r.expiresAt,
        state: r.state,
        suspended_at: r.suspendedAt,
        ended_at: r.endedAt,
        end_reason: r.endReason,
      })
      .execute();
  }
  async get(id: string): Promise<SessionRecord | undefined> {
    const row = await this.ctx.db.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirst();
    return row && sessionFrom(row);
  }
  async getForUpdate(id: string): Promise<SessionRecord | undefined> {
    const query = this.ctx.db.selectFrom('sessions').selectAll().where('id', '=', id);
    // SQLite has no row locks: BEGIN IMMEDIATE already serialises every writing unit.
    const row = await (this.ctx.dialect === 'postgres' ? query.forUpdate() : query).executeTakeFirst();
    return row && sessionFrom(row);
  }
  async liveOnConsole(consoleId: string, options?: { forUpdate?: boolean }): Promise<SessionRecord[]> {
    return this.live('console_id', consoleId, options?.forUpdate === true);
  }
  async liveForOperator(operatorId: string, options?: { forUpdate?: boolean }): Promise<SessionRecord[]> {
    return this.live('operator_id', operatorId, options?.forUpdate === true);
  }
  /**
   * Live sessions by console or operator, oldest first. Locked (PostgreSQL): rows are locked in the
   * order they are read, so they are read in ascending id (the lock order of repositories.ts) and
   * sorted oldest first afterwards. SQLite has no row locks: BEGIN IMMEDIATE serialises writing units.
   */
  private async live(column: 'console_id' | 'operator_id', value: string, forUpdate: boolean) {
    const query = this.ctx.db
      .selectFrom('sessions')
      .selectAll()
      .where(column, '=', value)
      .where('state', 'in', LIVE_STATES);
    if (!forUpdate || this.ctx.dialect !== 'postgres') {
      return (await query.orderBy('started_at').orderBy('id').execute()).map(sessionFrom);
    }
    const sessions = (await query.orderBy('id').forUpdate().execute()).map(sessionFrom);
    return sessions.sort((a, b) => a.startedAt - b.startedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
  async list(filter: {
    state?: SessionState | undefined;
    consoleId?: string | undefined;
    limit: number;
  }): Promise<SessionRecord[]> {
    let query = this.ctx.db.selectFrom('sessions').selectAll();
    if (filter.state !== undefined) query = query.where('state', '=', filter.state);
    if (filter.consoleId !== undefined) query = query.where('console_id', '=', filter.consoleId);
    const rows = await query.orderBy('started_at', 'desc').orderBy('id', 'desc').limit(filter.limit).execute();
    return rows.map(sessionFrom);
  }
  async update(id: string, changes: Partial<Omit<SessionRecord, 'id'>>): Promise<void> {
    const set = sessionChanges(changes);
    if (Object.keys(set).length === 0) return;
    await this.ctx.db.updateTable('sessions').set(set).where('id', '=', id).execute();
  }
  async updateAndGet(id: string, changes: Partial<Omit<SessionRecord, 'id'>>): Promise<SessionRecord | undefined> {
    const set = sessionChanges(changes);
    if (Object.keys(set).length === 0) return this.get(id);
    const row = await this.ctx.db
      .updateTable('sessions')
      .set(set)
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    return row && sessionFrom(row);
  }
}

/** A session's changed fields as its columns (undefined left out); an unknown field throws. */
export function sessionChanges(changes: Partial<Omit<SessionRecord, 'id'>>): Record<string, unknown> {
  const set: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(changes)) {
    const column = SESSION_COLUMNS[key as keyof typeof SESSION_COLUMNS] as string | undefined;
    if (column === undefined) throw new Error(`sessions.update: unknown field ${key}`);
    if (value !== undefined) set[column] = value;
  }
  return set;
}

function policyFrom(row: Row): PolicyVersion {
  return {
    version: num(row, 'version'),
    policy: PolicySchema.parse(JSON.parse(str(row, 'document'))),
    publishedAt: num(row, 'published_at'),
    publishedBy: str(row, 'published_by'),
  };
}

export class KyselyPolicies implements PolicyRepository {
  constructor(private readonly ctx: KyselyContext) {}

  async latest(): Promise<PolicyVersion | undefined> {
    const row = await this.ctx.db
      .selectFrom('policy_versions')
      .selectAll()
      .orderBy('version', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row && policyFrom(row);
  }
  async get(version: number): Promise<PolicyVersion | undefined> {
    const row = await this.ctx.db
      .selectFrom('policy_versions')
      .selectAll()
      .where('version', '=', version)
      .executeTakeFirst();
    return row && policyFrom(row);
  }
  async list(): Promise<PolicyVersion[]> {
    const rows = await this.ctx.db.selectFrom('policy_versions').selectAll().orderBy('version').execute();
    return rows.map(policyFrom);
  }
  async insert(version: PolicyVersion): Promise<void> {
    await this.ctx.db
      .insertInto('policy_versions')
      .values({
        version: version.version,
        document: JSON.stringify(version.policy),
        published_at: version.publishedAt,
        published_by: version.publishedBy,
      })
      .execute();
  }
}

function commandFrom(row: Row): CommandRecord {
  return {
    id: str(row, 'id'),
    consoleId: str(row, 'console_id'),
    sessionId: str(row, 'session_id'),
    reason: str(row, 'reason'),
    createdAt: num(row, 'created_at'),
  };
}

export class KyselyCommands implements CommandRepository {
  constructor(private readonly ctx: KyselyContext) {}

  async insert(r: CommandRecord): Promise<void> {
    await this.ctx.db
      .insertInto('console_commands')
      .values({
        id: r.id,
        console_id: r.consoleId,
        session_id: r.sessionId,
        reason: r.reason,
        created_at: r.createdAt,
      })
      .execute();
  }
  async pending(consoleId: string): Promise<CommandRecord[]> {
    const rows = await this.ctx.db
      .selectFrom('console_commands')
      .selectAll()
      .where('console_id', '=', consoleId)
      .where('acked_at', 'is', null)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(commandFrom);
  }
  async pendingFor(consoleIds: readonly string[]): Promise<Map<string, CommandRecord[]>> {
    const found = new Map<string, CommandRecord[]>();
    if (consoleIds.length === 0) return found;
    const rows = await this.ctx.db
      .selectFrom('console_commands')
      .selectAll()
      .where(inIds(this.ctx, 'console_id', consoleIds))
      .where('acked_at', 'is', null)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    for (const row of rows) {
      const command = commandFrom(row);
      const list = found.get(command.consoleId);
      if (list === undefined) found.set(command.consoleId, [command]);
      else list.push(command);
    }
    return found;
  }
  async pendingAll(): Promise<CommandRecord[]> {
    const rows = await this.ctx.db
      .selectFrom('console_commands')
      .selectAll()
      .where('acked_at', 'is', null)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(commandFrom);
  }
  async acknowledge(consoleId: string, id: string, at: number): Promise<boolean> {
    const result = await this.ctx.db
      .updateTable('console_commands')
      .set({ acked_at: at })
      .where('console_id', '=', consoleId)
      .where('id', '=', id)
      .where('acked_at', 'is', null)
      .executeTakeFirst();
    return changed(result) === 1;
  }
}

export class KyselyAdminTokens implements AdminTokenRepository {
  constructor(private readonly ctx: KyselyContext) {}

  async insert(hash: string, label: string, at: number): Promise<void> {
    await this.ctx.db.insertInto('admin_tokens').values({ token_hash: hash, label, created_at: at }).execute();
  }
  async isValid(hash: string): Promise<boolean> {
    const row = await this.ctx.db
      .selectFrom('admin_tokens')
      .select('token_hash')
      .where('token_hash', '=', hash)
      .where('disabled_at', 'is', null)
      .executeTakeFirst();
    return row !== undefined;
  }
  async any(): Promise<boolean> {
    const row = await this.ctx.db.selectFrom('admin_tokens').select('token_hash').limit(1).executeTakeFirst();
    return row !== undefined;
  }
}

export class KyselyMeta implements MetaRepository {
  constructor(private readonly ctx: KyselyContext) {}

  async get(key: string): Promise<string | undefined> {
    const row = await this.ctx.db.selectFrom('meta').select('value').where('key', '=', key).executeTakeFirst();
    return row ? str(row, 'value') : undefined;
  }
  async set(key: string, value: string): Promise<void> {
    await this.ctx.db
      .insertInto('meta')
      .values({ key, value })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
      .execute();
  }
  async insertIfAbsent(key: string, value: string): Promise<boolean> {
    const inserted = await this.ctx.db
      .insertInto('meta')
      .values({ key, value })
      .onConflict((oc) => oc.column('key').doNothing())
      .returning('key')
      .executeTakeFirst();
    return inserted !== undefined;
  }
}
