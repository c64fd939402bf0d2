/**
 * Storage of the Shared Signals receiver (migration 13): the upstream transmitters an admin
 * registered, the refusals counted per transmitter and code, and the subject identifiers linked to
 * operators. Kysely, both engines. Replay protection of `jti` is not here: it is the store's
 * single-use `ephemeral.claimOnce` (shared by every node).
 */
import { sql } from 'kysely';
import { changed, num, optNum, optStr, str, type KyselyContext, type Row } from '../../store/kysely-schema.js';

export interface TransmitterRecord {
  id: string;
  name: string;
  issuer: string;
  audience: string;
  configurationUrl: string | null;
  jwksUri: string | null;
  /** A JWKS document pinned by the admin (offline sites); when set, `jwksUri` is not used. */
  pinnedJwks: string | null;
  pushTokenHash: string;
  maxAgeSeconds: number;
  streamId: string | null;
  createdAt: number;
  createdBy: string;
  disabledAt: number | null;
  accepted: number;
  lastSetAt: number | null;
  lastJti: string | null;
  lastAction: string | null;
}

export interface RejectionCount {
  code: string;
  count: number;
  lastAt: number;
  lastDescription: string;
}

export interface IdentityRecord {
  id: string;
  operatorId: string;
  format: 'email' | 'iss_sub' | 'opaque';
  /** The canonical key the subject is matched by (lower-cased email; `iss` and `sub` as JSON; the opaque id). */
  identifier: string;
  /** The subject identifier as the admin gave it (RFC 9493 JSON). */
  subject: Record<string, string>;
  createdAt: number;
  createdBy: string;
}

export interface SsfInboundRepository {
  insertTransmitter(record: TransmitterRecord): Promise<void>;
  getTransmitter(id: string): Promise<TransmitterRecord | undefined>;
  listTransmitters(): Promise<TransmitterRecord[]>;
  disableTransmitter(id: string, at: number): Promise<boolean>;
  setStream(id: string, streamId: string, pushTokenHash: string): Promise<void>;
  /** One accepted SET: counters and the last SET's jti and action. */
  recordAccepted(id: string, at: number, jti: string, action: string): Promise<void>;
  /** Adds `count` (default 1) refusals of `code`. */
  recordRejection(id: string, code: string, at: number, description: string, count?: number): Promise<void>;
  rejections(id: string): Promise<RejectionCount[]>;
  insertIdentity(record: IdentityRecord): Promise<boolean>;
  findIdentity(format: string, identifier: string): Promise<IdentityRecord | undefined>;
  identitiesOf(operatorId: string): Promise<IdentityRecord[]>;
  deleteIdentity(operatorId: string, id: string): Promise<IdentityRecord | undefined>;
}

function transmitter(row: Row): TransmitterRecord {
  return {
    id: str(row, 'id'),
    name: str(row, 'name'),
    issuer: str(row, 'issuer'),
    audience: str(row, 'audience'),
    configurationUrl: optStr(row, 'configuration_url'),
    jwksUri: optStr(row, 'jwks_uri'),
    pinnedJwks: optStr(row, 'pinned_jwks'),
    pushTokenHash: str(row, 'push_token_hash'),
    maxAgeSeconds: num(row, 'max_age_seconds'),
    streamId: optStr(row, 'stream_id'),
    createdAt: num(row, 'created_at'),
    createdBy: str(row, 'created_by'),
    disabledAt: optNum(row, 'disabled_at'),
    accepted: num(row, 'accepted'),
    lastSetAt: optNum(row, 'last_set_at'),
    lastJti: optStr(row, 'last_jti'),
    lastAction: optStr(row, 'last_action'),
  };
}

function identity(row: Row): IdentityRecord {
  const format = str(row, 'format');
  if (format !== 'email' && format !== 'iss_sub' && format !== 'opaque')
    throw new Error('database: format has unknown value');
  const subject: unknown = JSON.parse(str(row, 'subject'));
  if (typeof subject !== 'object' || subject === null) throw new Error('database: subject is not an object');
  return {
    id: str(row, 'id'),
    operatorId: str(row, 'operator_id'),
    format,
    identifier: str(row, 'identifier'),
    subject: subject as Record<string, string>,
    createdAt: num(row, 'created_at'),
    createdBy: str(row, 'created_by'),
  };
}

export class KyselySsfInbound implements SsfInboundRepository {
  constructor(private readonly ctx: KyselyContext) {}

  async insertTransmitter(r: TransmitterRecord): Promise<void> {
    await this.ctx.db
      .insertInto('ssf_transmitters')
      .values({
        id: r.id,
        name: r.name,
        issuer: r.issuer,
        audience: r.audience,
        configuration_url: r.configurationUrl,
        jwks_uri: r.jwksUri,
        pinned_jwks: r.pinnedJwks,
        push_token_hash: r.pushTokenHash,
        max_age_seconds: r.maxAgeSeconds,
        stream_id: r.streamId,
        created_at: r.createdAt,
        created_by: r.createdBy,
        disabled_at: r.disabledAt,
        accepted: r.accepted,
        last_set_at: r.lastSetAt,
        last_jti: r.lastJti,
        last_action: r.lastAction,
      })
      .execute();
  }

  async getTransmitter(id: string): Promise<TransmitterRecord | undefined> {
    const row = await this.ctx.db.selectFrom('ssf_transmitters').selectAll().where('id', '=', id).executeTakeFirst();
    return row && transmitter(row);
  }

  async listTransmitters(): Promise<TransmitterRecord[]> {
    const rows = await this.ctx.db
      .selectFrom('ssf_transmitters')
      .selectAll()
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(transmitter);
  }

  async disableTransmitter(id: string, at: number): Promise<boolean> {
    const result = await this.ctx.db
      .updateTable('ssf_transmitters')
      .set({ disabled_at: at })
      .where('id', '=', id)
      .where('disabled_at', 'is', null)
      .executeTakeFirst();
    return changed(result) > 0;
  }

  async setStream(id: string, streamId: string, pushTokenHash: string): Promise<void> {
    await this.ctx.db
      .updateTable('ssf_transmitters')
      .set({ stream_id: streamId, push_token_hash: pushTokenHash })
      .where('id', '=', id)
      .execute();
  }

  async recordAccepted(id: string, at: number, jti: string, action: string): Promise<void> {
    await this.ctx.db
      .updateTable('ssf_transmitters')
      .set({ accepted: sql<number>`accepted + 1`, last_set_at: at, last_jti: jti, last_action: action })
      .where('id', '=', id)
      .execute();
  }

  async recordRejection(id: string, code: string, at: number, description: string, count = 1): Promise<void> {
    await this.ctx.db
      .insertInto('ssf_rejections')
      .values({ transmitter_id: id, code, count, last_at: at, last_description: description.slice(0, 500) })
      .onConflict((oc) =>
        oc.columns(['transmitter_id', 'code']).doUpdateSet({
          count: sql<number>`ssf_rejections.count + ${count}`,
          last_at: at,
          last_description: description.slice(0, 500),
        }),
      )
      .execute();
  }

  async rejections(id: string): Promise<RejectionCount[]> {
    const rows = await this.ctx.db
      .selectFrom('ssf_rejections')
      .selectAll()
      .where('transmitter_id', '=', id)
      .orderBy('code')
      .execute();
    return rows.map((row) => ({
      code: str(row, 'code'),
      count: num(row, 'count'),
      lastAt: num(row, 'last_at'),
      lastDescription: str(row, 'last_description'),
    }));
  }

  async insertIdentity(r: IdentityRecord): Promise<boolean> {
    const result = await this.ctx.db
      .insertInto('operator_identities')
      .values({
        id: r.id,
        operator_id: r.operatorId,
        format: r.format,
        identifier: r.identifier,
        subject: JSON.stringify(r.subject),
        created_at: r.createdAt,
        created_by: r.createdBy,
      })
      .onConflict((oc) => oc.columns(['format', 'identifier']).doNothing())
      .executeTakeFirst();
    return changed(result) > 0;
  }

  async findIdentity(format: string, identifier: string): Promise<IdentityRecord | undefined> {
    const row = await this.ctx.db
      .selectFrom('operator_identities')
      .selectAll()
      .where('format', '=', format)
      .where('identifier', '=', identifier)
      .executeTakeFirst();
    return row && identity(row);
  }

  async identitiesOf(operatorId: string): Promise<IdentityRecord[]> {
    const rows = await this.ctx.db
      .selectFrom('operator_identities')
      .selectAll()
      .where('operator_id', '=', operatorId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(identity);
  }

  async deleteIdentity(operatorId: string, id: string): Promise<IdentityRecord | undefined> {
    const row = await this.ctx.db
      .deleteFrom('operator_identities')
      .where('id', '=', id)
      .where('operator_id', '=', operatorId)
      .returningAll()
      .executeTakeFirst();
    return row && identity(row);
  }
}
