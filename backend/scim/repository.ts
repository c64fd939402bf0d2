/**
 * Storage of SCIM 2.0 provisioning (migration 13): the directories an admin issued a token to, and
 * the Users and Groups each directory provisioned. A SCIM user is linked to the Baton operator it
 * created; the operator row keeps Baton's own state (passkeys, revocation).
 */
import { sql } from 'kysely';
import { changed, num, optNum, optStr, str, type KyselyContext, type Row } from '../store/kysely-schema.js';

export interface DirectoryRecord {
  id: string;
  name: string;
  tokenHash: string;
  /** Group displayName → Baton roles its members get. */
  groupRoles: Record<string, string[]>;
  createdAt: number;
  createdBy: string;
  revokedAt: number | null;
  lastUsedAt: number | null;
}

export interface ScimUserRecord {
  id: string;
  directoryId: string;
  operatorId: string;
  userName: string;
  externalId: string | null;
  active: boolean;
  /** The attributes the directory sent (everything but id, meta, schemas, userName, externalId, active). */
  resource: Record<string, unknown>;
  version: number;
  createdAt: number;
  updatedAt: number;
}

export interface ScimGroupRecord {
  id: string;
  directoryId: string;
  displayName: string;
  externalId: string | null;
  /** SCIM user ids of this directory. */
  members: string[];
  version: number;
  createdAt: number;
  updatedAt: number;
}

export interface ScimQuery {
  /** `attribute eq value`, the attribute one of the indexed ones. */
  eq?: { attribute: 'userName' | 'externalId' | 'displayName' | 'id'; value: string };
  offset: number;
  limit: number;
}

export interface ScimRepository {
  insertDirectory(record: DirectoryRecord): Promise<void>;
  directoryByTokenHash(hash: string): Promise<DirectoryRecord | undefined>;
  directory(id: string): Promise<DirectoryRecord | undefined>;
  directories(): Promise<DirectoryRecord[]>;
  setGroupRoles(id: string, groupRoles: Record<string, string[]>): Promise<void>;
  revokeDirectory(id: string, at: number): Promise<boolean>;
  touchDirectory(id: string, at: number): Promise<void>;

  insertUser(record: ScimUserRecord): Promise<boolean>;
  user(directoryId: string, id: string): Promise<ScimUserRecord | undefined>;
  /**
   * The User read for a change (PostgreSQL: `FOR UPDATE`, held until the unit ends, so a concurrent
   * change of the same User waits and then reads what this one committed). The User row is the first
   * lock a User change takes, before the directory's role lock and the operator rows.
   */
  userForUpdate(directoryId: string, id: string): Promise<ScimUserRecord | undefined>;
  userByName(directoryId: string, userName: string): Promise<ScimUserRecord | undefined>;
  users(directoryId: string, query: ScimQuery): Promise<{ total: number; rows: ScimUserRecord[] }>;
  /** Writes `record` if the stored version is `record.version - 1`; false otherwise (a concurrent change). */
  updateUser(record: ScimUserRecord): Promise<boolean>;
  deleteUser(directoryId: string, id: string): Promise<boolean>;

  insertGroup(record: ScimGroupRecord): Promise<boolean>;
  group(directoryId: string, id: string): Promise<ScimGroupRecord | undefined>;
  groupByName(directoryId: string, displayName: string): Promise<ScimGroupRecord | undefined>;
  groups(directoryId: string, query: ScimQuery): Promise<{ total: number; rows: ScimGroupRecord[] }>;
  allGroups(directoryId: string): Promise<ScimGroupRecord[]>;
  updateGroup(record: ScimGroupRecord): Promise<boolean>;
  deleteGroup(directoryId: string, id: string): Promise<boolean>;

  /**
   * Serialises the group→role computation of one directory until the unit ends (PostgreSQL: a
   * transaction-scoped advisory lock; SQLite serialises writing units whole). Taken after the User or
   * Group row the unit changes and before any operator row (repositories.ts lock order: before 3).
   */
  lockRoles(directoryId: string): Promise<void>;

  /** Sets the operator's display name and roles (what the directory decides of a provisioned operator). */
  updateOperator(operatorId: string, displayName: string, roles: string[]): Promise<void>;
}

const key = (value: string) => value.toLowerCase();
/** First key of the directory role locks (`lockRoles`): "SCIM" in ASCII. */
const SCIM_ROLES_LOCK = 0x5343494d;

function directory(row: Row): DirectoryRecord {
  return {
    id: str(row, 'id'),
    name: str(row, 'name'),
    tokenHash: str(row, 'token_hash'),
    groupRoles: JSON.parse(str(row, 'group_roles')) as Record<string, string[]>,
    createdAt: num(row, 'created_at'),
    createdBy: str(row, 'created_by'),
    revokedAt: optNum(row, 'revoked_at'),
    lastUsedAt: optNum(row, 'last_used_at'),
  };
}

function user(row: Row): ScimUserRecord {
  return {
    id: str(row, 'id'),
    directoryId: str(row, 'directory_id'),
    operatorId: str(row, 'operator_id'),
    userName: str(row, 'user_name'),
    externalId: optStr(row, 'external_id'),
    active: num(row, 'active') === 1,
    resource: JSON.parse(str(row, 'resource')) as Record<string, unknown>,
    version: num(row, 'version'),
    createdAt: num(row, 'created_at'),
    updatedAt: num(row, 'updated_at'),
  };
}

function group(row: Row): ScimGroupRecord {
  const members: unknown = JSON.parse(str(row, 'members'));
  if (!Array.isArray(members) || !members.every((m) => typeof m === 'string')) {
    throw new Error('database: members is not a string array');
  }
  return {
    id: str(row, 'id'),
    directoryId: str(row, 'directory_id'),
    displayName: str(row, 'display_name'),
    externalId: optStr(row, 'external_id'),
    members,
    version: num(row, 'version'),
    createdAt: num(row, 'created_at'),
    updatedAt: num(row, 'updated_at'),
  };
}

export class KyselyScim implements ScimRepository {
  constructor(private readonly ctx: KyselyContext) {}

  async insertDirectory(r: DirectoryRecord): Promise<void> {
    await this.ctx.db
      .insertInto('scim_directories')
      .values({
        id: r.id,
        name: r.name,
        token_hash: r.tokenHash,
        group_roles: JSON.stringify(r.groupRoles),
        created_at: r.createdAt,
        created_by: r.createdBy,
        revoked_at: r.revokedAt,
        last_used_at: r.lastUsedAt,
      })
      .execute();
  }

  async directoryByTokenHash(hash: string): Promise<DirectoryRecord | undefined> {
    const row = await this.ctx.db
      .selectFrom('scim_directories')
      .selectAll()
      .where('token_hash', '=', hash)
      .executeTakeFirst();
    return row && directory(row);
  }

  async directory(id: string): Promise<DirectoryRecord | undefined> {
    const row = await this.ctx.db.selectFrom('scim_directories').selectAll().where('id', '=', id).executeTakeFirst();
    return row && directory(row);
  }

  async directories(): Promise<DirectoryRecord[]> {
    const rows = await this.ctx.db
      .selectFrom('scim_directories')
      .selectAll()
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(directory);
  }

  async setGroupRoles(id: string, groupRoles: Record<string, string[]>): Promise<void> {
    await this.ctx.db
      .updateTable('scim_directories')
      .set({ group_roles: JSON.stringify(groupRoles) })
      .where('id', '=', id)
      .execute();
  }

  async revokeDirectory(id: string, at: number): Promise<boolean> {
    const result = await this.ctx.db
      .updateTable('scim_directories')
      .set({ revoked_at: at })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return changed(result) > 0;
  }

  async touchDirectory(id: string, at: number): Promise<void> {
    await this.ctx.db.updateTable('scim_directories').set({ last_used_at: at }).where('id', '=', id).execute();
  }

  async insertUser(r: ScimUserRecord): Promise<boolean> {
    const result = await this.ctx.db
      .insertInto('scim_users')
      .values({
        id: r.id,
        directory_id: r.directoryId,
        operator_id: r.operatorId,
        user_name: r.userName,
        user_name_key: key(r.userName),
        external_id: r.externalId,
        active: r.active ? 1 : 0,
        resource: JSON.stringify(r.resource),
        version: r.version,
        created_at: r.createdAt,
        updated_at: r.updatedAt,
      })
      .onConflict((oc) => oc.columns(['directory_id', 'user_name_key']).doNothing())
      .executeTakeFirst();
    return changed(result) > 0;
  }

  async user(directoryId: string, id: string): Promise<ScimUserRecord | undefined> {
    const row = await this.ctx.db
      .selectFrom('scim_users')
      .selectAll()
      .where('directory_id', '=', directoryId)
      .where('id', '=', id)
      .executeTakeFirst();
    return row && user(row);
  }

  async userForUpdate(directoryId: string, id: string): Promise<ScimUserRecord | undefined> {
    const query = this.ctx.db
      .selectFrom('scim_users')
      .selectAll()
      .where('directory_id', '=', directoryId)
      .where('id', '=', id);
    const row = await (this.ctx.dialect === 'postgres' ? query.forUpdate() : query).executeTakeFirst();
    return row && user(row);
  }

  async lockRoles(directoryId: string): Promise<void> {
    if (this.ctx.dialect !== 'postgres') return;
    // The two-key form (its own key space, apart from PG_LOCKS' one-key locks): "SCIM", the directory.
    await sql`SELECT pg_advisory_xact_lock(${sql.lit(SCIM_ROLES_LOCK)}, hashtext(${directoryId}))`.execute(this.ctx.db);
  }

  async userByName(directoryId: string, userName: string): Promise<ScimUserRecord | undefined> {
    const row = await this.ctx.db
      .selectFrom('scim_users')
      .selectAll()
      .where('directory_id', '=', directoryId)
      .where('user_name_key', '=', key(userName))
      .executeTakeFirst();
    return row && user(row);
  }

  async users(directoryId: string, query: ScimQuery): Promise<{ total: number; rows: ScimUserRecord[] }> {
    let base = this.ctx.db.selectFrom('scim_users').where('directory_id', '=', directoryId);
    if (query.eq !== undefined) {
      const { attribute, value } = query.eq;
      if (attribute === 'userName') base = base.where('user_name_key', '=', key(value));
      else if (attribute === 'externalId') base = base.where('external_id', '=', value);
      else if (attribute === 'id') base = base.where('id', '=', value);
      else base = base.where(sql<boolean>`1 = 0`);
    }
    const count = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst();
    const rows =
      query.limit === 0
        ? []
        : await base.selectAll().orderBy('created_at').orderBy('id').limit(query.limit).offset(query.offset).execute();
    return { total: Number(count?.n ?? 0), rows: rows.map(user) };
  }

  async updateUser(r: ScimUserRecord): Promise<boolean> {
    const result = await this.ctx.db
      .updateTable('scim_users')
      .set({
        operator_id: r.operatorId,
        user_name: r.userName,
        user_name_key: key(r.userName),
        external_id: r.externalId,
        active: r.active ? 1 : 0,
        resource: JSON.stringify(r.resource),
        version: r.version,
        updated_at: r.updatedAt,
      })
      .where('id', '=', r.id)
      .where('directory_id', '=', r.directoryId)
      .where('version', '=', r.version - 1)
      .executeTakeFirst();
    return changed(result) > 0;
  }

  async deleteUser(directoryId: string, id: string): Promise<boolean> {
    const result = await this.ctx.db
      .deleteFrom('scim_users')
      .where('directory_id', '=', directoryId)
      .where('id', '=', id)
      .executeTakeFirst();
    return changed(result) > 0;
  }

  async insertGroup(r: ScimGroupRecord): Promise<boolean> {
    const result = await this.ctx.db
      .insertInto('scim_groups')
      .values({
        id: r.id,
        directory_id: r.directoryId,
        display_name: r.displayName,
        display_name_key: key(r.displayName),
        external_id: r.externalId,
        members: JSON.stringify(r.members),
        version: r.version,
        created_at: r.createdAt,
        updated_at: r.updatedAt,
      })
      .onConflict((oc) => oc.columns(['directory_id', 'display_name_key']).doNothing())
      .executeTakeFirst();
    return changed(result) > 0;
  }

  async group(directoryId: string, id: string): Promise<ScimGroupRecord | undefined> {
    const row = await this.ctx.db
      .selectFrom('scim_groups')
      .selectAll()
      .where('directory_id', '=', directoryId)
      .where('id', '=', id)
      .executeTakeFirst();
    return row && group(row);
  }

  async groupByName(directoryId: string, displayName: string): Promise<ScimGroupRecord | undefined> {
    const row = await this.ctx.db
      .selectFrom('scim_groups')
      .selectAll()
      .where('directory_id', '=', directoryId)
      .where('display_name_key', '=', key(displayName))
      .executeTakeFirst();
    return row && group(row);
  }

  async groups(directoryId: string, query: ScimQuery): Promise<{ total: number; rows: ScimGroupRecord[] }> {
    let base = this.ctx.db.selectFrom('scim_groups').where('directory_id', '=', directoryId);
    if (query.eq !== undefined) {
      const { attribute, value } = query.eq;
      if (attribute === 'displayName') base = base.where('display_name_key', '=', key(value));
      else if (attribute === 'externalId') base = base.where('external_id', '=', value);
      else if (attribute === 'id') base = base.where('id', '=', value);
      else base = base.where(sql<boolean>`1 = 0`);
    }
    const count = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst();
    const rows =
      query.limit === 0
        ? []
        : await base.selectAll().orderBy('created_at').orderBy('id').limit(query.limit).offset(query.offset).execute();
    return { total: Number(count?.n ?? 0), rows: rows.map(group) };
  }

  async allGroups(directoryId: string): Promise<ScimGroupRecord[]> {
    const rows = await this.ctx.db
      .selectFrom('scim_groups')
      .selectAll()
      .where('directory_id', '=', directoryId)
      .execute();
    return rows.map(group);
  }

  async updateGroup(r: ScimGroupRecord): Promise<boolean> {
    const result = await this.ctx.db
      .updateTable('scim_groups')
      .set({
        display_name: r.displayName,
        display_name_key: key(r.displayName),
        external_id: r.externalId,
        members: JSON.stringify(r.members),
        version: r.version,
        updated_at: r.updatedAt,
      })
      .where('id', '=', r.id)
      .where('directory_id', '=', r.directoryId)
      .where('version', '=', r.version - 1)
      .executeTakeFirst();
    return changed(result) > 0;
  }

  async deleteGroup(directoryId: string, id: string): Promise<boolean> {
    const result = await this.ctx.db
      .deleteFrom('scim_groups')
      .where('directory_id', '=', directoryId)
      .where('id', '=', id)
      .executeTakeFirst();
    return changed(result) > 0;
  }

  async updateOperator(operatorId: string, displayName: string, roles: string[]): Promise<void> {
    await this.ctx.db
      .updateTable('operators')
      .set({ display_name: displayName, roles: JSON.stringify(roles) })
      .where('id', '=', operatorId)
      .execute();
  }
}
