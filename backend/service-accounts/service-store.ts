/**
 * The service accounts' tables (migration 15), over the same Kysely handle as the rest of the store
 * (both dialects): `serviceStore(store)` binds to a store or to a unit of work's `tx`, so a service
 * change and the event that records it commit together.
 */
import { sql } from 'kysely';
import { kyselyOf } from '../store/kysely-store.js';
import {
  changed,
  num,
  optNum,
  optStr,
  str,
  stringArray,
  type KyselyContext,
  type Row,
} from '../store/kysely-schema.js';
import type { Store } from '../store/repositories.js';

export interface ServiceRecord {
  id: string;
  name: string;
  /** The actions it was enrolled for (its scope; the policy's `service.actions` must allow each as well). */
  actions: string[];
  enrolledAt: number;
  enrolledBy: string;
  lastUsedAt: number | null;
  revokedAt: number | null;
  revokedBy: string | null;
  revokedReason: string | null;
}

export interface ServiceKeyRecord {
  /** The RFC 7638 thumbprint of the public JWK: the `kid` a client assertion names. */
  kid: string;
  serviceId: string;
  publicJwk: string;
  createdAt: number;
  retiredAt: number | null;
}

export interface ServiceEnrolmentTokenRecord {
  hash: string;
  name: string;
  actions: string[];
  issuedBy: string;
  issuedAt: number;
  expiresAt: number;
  usedAt: number | null;
  serviceId: string | null;
}

export interface ServiceTokenCount {
  serviceId: string;
  action: string;
  issued: number;
  refused: number;
  lastIssuedAt: number | null;
}

export interface ServiceTokenRecord {
  jti: string;
  serviceId: string;
  action: string;
  audience: string;
  issuedAt: number;
  expiresAt: number;
}

export function serviceFrom(row: Row): ServiceRecord {
  return {
    id: str(row, 'id'),
    name: str(row, 'name'),
    actions: stringArray(row, 'actions'),
    enrolledAt: num(row, 'enrolled_at'),
    enrolledBy: str(row, 'enrolled_by'),
    lastUsedAt: optNum(row, 'last_used_at'),
    revokedAt: optNum(row, 'revoked_at'),
    revokedBy: optStr(row, 'revoked_by'),
    revokedReason: optStr(row, 'revoked_reason'),
  };
}

function keyFrom(row: Row): ServiceKeyRecord {
  return {
    kid: str(row, 'kid'),
    serviceId: str(row, 'service_id'),
    publicJwk: str(row, 'public_jwk'),
    createdAt: num(row, 'created_at'),
    retiredAt: optNum(row, 'retired_at'),
  };
}

/** The service tables bound to `store` (the pool) or to a unit of work's `tx` (its transaction). */
export function serviceStore(store: Store): ServiceStore {
  const db = kyselyOf(store);
  if (db === undefined) throw new Error('service accounts need a Kysely store (SQLite or PostgreSQL)');
  return new ServiceStore({ db, dialect: store.engine, inTransaction: false });
}

export class ServiceStore {
  constructor(private readonly ctx: KyselyContext) {}

  async insertEnrolmentToken(r: ServiceEnrolmentTokenRecord): Promise<void> {
    await this.ctx.db
      .insertInto('service_enrolment_tokens')
      .values({
        token_hash: r.hash,
        name: r.name,
        actions: JSON.stringify(r.actions),
        issued_by: r.issuedBy,
        issued_at: r.issuedAt,
        expires_at: r.expiresAt,
        used_at: r.usedAt,
        service_id: r.serviceId,
      })
      .execute();
  }

  async getEnrolmentToken(hash: string): Promise<ServiceEnrolmentTokenRecord | undefined> {
    const row = await this.ctx.db
      .selectFrom('service_enrolment_tokens')
      .selectAll()
      .where('token_hash', '=', hash)
      .executeTakeFirst();
    if (row === undefined) return undefined;
    return {
      hash: str(row, 'token_hash'),
      name: str(row, 'name'),
      actions: stringArray(row, 'actions'),
      issuedBy: str(row, 'issued_by'),
      issuedAt: num(row, 'issued_at'),
      expiresAt: num(row, 'expires_at'),
      usedAt: optNum(row, 'used_at'),
      serviceId: optStr(row, 'service_id'),
    };
  }

  /** Marks the token used by `serviceId`; false if it was already used (single use, on any node). */
  async useEnrolmentToken(hash: string, at: number, serviceId: string): Promise<boolean> {
    const result = await this.ctx.db
      .updateTable('service_enrolment_tokens')
      .set({ used_at: at, service_id: serviceId })
      .where('token_hash', '=', hash)
      .where('used_at', 'is', null)
      .executeTakeFirst();
    return changed(result) === 1;
  }

  async insertService(r: ServiceRecord): Promise<void> {
    await this.ctx.db
      .insertInto('services')
      .values({
        id: r.id,
        name: r.name,
        actions: JSON.stringify(r.actions),
        enrolled_at: r.enrolledAt,
        enrolled_by: r.enrolledBy,
        last_used_at: r.lastUsedAt,
        revoked_at: r.revokedAt,
        revoked_by: r.revokedBy,
        revoked_reason: r.revokedReason,
      })
      .execute();
  }

  async getService(id: string): Promise<ServiceRecord | undefined> {
    const row = await this.ctx.db.selectFrom('services').selectAll().where('id', '=', id).executeTakeFirst();
    return row && serviceFrom(row);
  }

  /**
   * The service read for a change of its keys (PostgreSQL: `FOR UPDATE`, held until the unit ends): a
   * concurrent rotation of the same service waits here, then reads the keys the first one committed.
   * Taken before the backend's event-chain head (repositories.ts lock order), as the token endpoint's
   * `touchLive` and the revocation take this row.
   */
  async getServiceForUpdate(id: string): Promise<ServiceRecord | undefined> {
    const query = this.ctx.db.selectFrom('services').selectAll().where('id', '=', id);
    const row = await (this.ctx.dialect === 'postgres' ? query.forUpdate() : query).executeTakeFirst();
    return row && serviceFrom(row);
  }

  async listServices(): Promise<ServiceRecord[]> {
    const rows = await this.ctx.db.selectFrom('services').selectAll().orderBy('enrolled_at').orderBy('id').execute();
    return rows.map(serviceFrom);
  }

  /** Revokes a live service; false if it was already revoked. */
  async revokeService(id: string, at: number, by: string, reason: string): Promise<boolean> {
    const result = await this.ctx.db
      .updateTable('services')
      .set({ revoked_at: at, revoked_by: by, revoked_reason: reason })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return changed(result) === 1;
  }

  async insertKey(r: ServiceKeyRecord): Promise<void> {
    await this.ctx.db
      .insertInto('service_keys')
      .values({
        kid: r.kid,
        service_id: r.serviceId,
        public_jwk: r.publicJwk,
        created_at: r.createdAt,
        retired_at: r.retiredAt,
      })
      .execute();
  }

  async getKey(kid: string): Promise<ServiceKeyRecord | undefined> {
    const row = await this.ctx.db.selectFrom('service_keys').selectAll().where('kid', '=', kid).executeTakeFirst();
    return row && keyFrom(row);
  }

  /** A service's keys, newest first (`currentOnly`: those not retired). */
  async keysOf(serviceId: string, currentOnly: boolean): Promise<ServiceKeyRecord[]> {
    let query = this.ctx.db.selectFrom('service_keys').selectAll().where('service_id', '=', serviceId);
    if (currentOnly) query = query.where('retired_at', 'is', null);
    const rows = await query.orderBy('created_at', 'desc').orderBy('kid').execute();
    return rows.map(keyFrom);
  }

  /** Retires every current key of the service but `keep`; how many. */
  async retireKeys(serviceId: string, keep: string, at: number): Promise<number> {
    const result = await this.ctx.db
      .updateTable('service_keys')
      .set({ retired_at: at })
      .where('service_id', '=', serviceId)
      .where('kid', '!=', keep)
      .where('retired_at', 'is', null)
      .executeTakeFirst();
    return changed(result);
  }

  /** Counts one issuance (or refusal) of `action` to the service. */
  async count(serviceId: string, action: string, outcome: 'issued' | 'refused', at: number): Promise<void> {
    await this.ctx.db
      .insertInto('service_token_counts')
      .values({
        service_id: serviceId,
        action,
        issued: outcome === 'issued' ? 1 : 0,
        refused: outcome === 'refused' ? 1 : 0,
        last_issued_at: outcome === 'issued' ? at : null,
      })
      .onConflict((oc) =>
        oc
          .columns(['service_id', 'action'])
          .doUpdateSet(
            outcome === 'issued'
              ? { issued: sql<number>`service_token_counts.issued + 1`, last_issued_at: at }
              : { refused: sql<number>`service_token_counts.refused + 1` },
          ),
      )
      .execute();
  }

  /**
   * Notes the service's use, only while it is not revoked: false if it is (or was meanwhile). On
   * PostgreSQL the row stays locked until the unit ends, so a revocation waits for an issuance in
   * flight, and an issuance after the revocation sees it (the WHERE is re-checked on the new row).
   */
  async touchLive(serviceId: string, at: number): Promise<boolean> {
    const result = await this.ctx.db
      .updateTable('services')
      .set({ last_used_at: at })
      .where('id', '=', serviceId)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return changed(result) === 1;
  }

  async counts(): Promise<ServiceTokenCount[]> {
    const rows = await this.ctx.db
      .selectFrom('service_token_counts')
      .selectAll()
      .orderBy('service_id')
      .orderBy('action')
      .execute();
    return rows.map((row) => ({
      serviceId: str(row, 'service_id'),
      action: str(row, 'action'),
      issued: num(row, 'issued'),
      refused: num(row, 'refused'),
      lastIssuedAt: optNum(row, 'last_issued_at'),
    }));
  }

  async insertToken(r: ServiceTokenRecord): Promise<void> {
    await this.ctx.db
      .insertInto('service_tokens')
      .values({
        jti: r.jti,
        service_id: r.serviceId,
        action: r.action,
        audience: r.audience,
        issued_at: r.issuedAt,
        expires_at: r.expiresAt,
      })
      .execute();
  }

  /** The service's tokens not yet expired at `now`: what a revocation reports revoked. */
  async liveTokens(serviceId: string, now: number): Promise<ServiceTokenRecord[]> {
    const rows = await this.ctx.db
      .selectFrom('service_tokens')
      .selectAll()
      .where('service_id', '=', serviceId)
      .where('expires_at', '>', now)
      .orderBy('expires_at')
      .limit(10_000)
      .execute();
    return rows.map((row) => ({
      jti: str(row, 'jti'),
      serviceId: str(row, 'service_id'),
      action: str(row, 'action'),
      audience: str(row, 'audience'),
      issuedAt: num(row, 'issued_at'),
      expiresAt: num(row, 'expires_at'),
    }));
  }

  /** Forgets tokens expired before `before`; how many. */
  async sweepTokens(before: number): Promise<number> {
    const result = await this.ctx.db.deleteFrom('service_tokens').where('expires_at', '<', before).executeTakeFirst();
    return changed(result);
  }
}
