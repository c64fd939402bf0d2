/**
 * Storage of the Shared Signals receiver (migrations 13, 27 and 28): the upstream transmitters an admin
 * registered (with their status, the upstream's last answer about it, their last verification), the
 * SETs held while one is paused (and their claims while a resume applies them), the refusals counted per
 * transmitter and code, and the subject
 * identifiers linked to operators. Kysely, both engines. Replay protection of `jti` is not here: it is the store's
 * single-use `ephemeral.claimOnce` (shared by every node).
 */
import { sql, type ExpressionBuilder } from 'kysely';
import {
  changed,
  num,
  oneOf,
  optNum,
  optStr,
  str,
  type BatonDatabase,
  type KyselyContext,
  type Row,
} from '../../store/kysely-schema.js';

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
  /** enabled: SETs act; paused: valid SETs are held until resumed; disabled: pushes refused, nothing held. */
  status: SourceStatus;
  statusReason: string | null;
  statusChangedAt: number | null;
  statusChangedBy: string | null;
  /** What the upstream last said about its stream's status (JSON: `UpstreamStatus`). */
  upstreamStatus: string | null;
  /** The last verification Baton asked the upstream for: its `state`, when, and when the SET carrying it came. */
  verifyState: string | null;
  verifyRequestedAt: number | null;
  verifyReceivedAt: number | null;
  verifyJti: string | null;
  verifyError: string | null;
}

export const SOURCE_STATUSES = ['enabled', 'paused', 'disabled'] as const;
export type SourceStatus = (typeof SOURCE_STATUSES)[number];

/** A valid SET held while its source is paused. */
export interface HeldSet {
  jti: string;
  receivedAt: number;
  /** The validated SET (`ValidSet`) as JSON. */
  set: string;
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
  /**
   * Locks the transmitter's row for the rest of the unit of work (PostgreSQL; SQLite's writer lock does
   * it): a status change and a SET being held are serialised. False when there is no such transmitter.
   */
  lockTransmitter(id: string): Promise<boolean>;
  setStatus(id: string, status: SourceStatus, reason: string | null, at: number, by: string): Promise<void>;
  setUpstreamStatus(id: string, answer: string): Promise<void>;
  /** A verification asked for: the state Baton expects back; the previous one is forgotten. */
  setVerifyRequested(id: string, state: string, at: number): Promise<void>;
  setVerifyError(id: string, state: string, error: string): Promise<void>;
  /** The verification SET carrying `state` arrived: false when that state is not (or no longer) the one awaited. */
  markVerified(id: string, state: string, at: number, jti: string): Promise<boolean>;
  holdSet(id: string, held: HeldSet): Promise<void>;
  /** The SETs the transmitter holds, claimed ones included. */
  heldCount(id: string): Promise<number>;
  /** The oldest held SETs a resume may claim at `now` (unclaimed, or their claim's lease over) first, at most `limit`. */
  heldSets(id: string, limit: number, now: number): Promise<HeldSet[]>;
  /**
   * Claims one held SET for a resume (`claim`, until `until`) if nobody holds it at `now` (never claimed, released,
   * or its claimant's lease ran out: a node that died); the revocations already applied for it ('kind:epoch …', or
   * null), or undefined when it is not there or claimed by a live resume.
   */
  claimHeld(
    id: string,
    jti: string,
    claim: string,
    until: number,
    now: number,
  ): Promise<{ applied: string | null } | undefined>;
  /**
   * In the unit of work of a revocation applied for a claimed SET, first: the row locked, its lease moved to `until`;
   * false when the SET is no longer claimed by `claim` (taken over by another resume, or dropped).
   */
  fenceHeld(id: string, jti: string, claim: string, until: number): Promise<boolean>;
  /** In that unit, once the revocation is stored: adds `mark` ('kind:epoch') to the revocations applied for the SET. */
  markHeldApplied(id: string, jti: string, mark: string): Promise<void>;
  /**
   * Removes a claimed SET once it is applied (with the event that records it): the revocations applied for it, or
   * undefined when `claim` no longer holds it (another resume took it over and records it).
   */
  finishHeld(id: string, jti: string, claim: string): Promise<{ applied: string | null } | undefined>;
  /** Gives up a claim (applying failed): the SET is held again in its place, with what was applied for it. */
  releaseHeld(id: string, jti: string, claim: string): Promise<{ applied: string | null } | undefined>;
  /** Deletes one held SET; false when it was not there. */
  deleteHeld(id: string, jti: string): Promise<boolean>;
  /**
   * Drops the held SETs of the transmitter that nothing was applied for and no resume is applying at `now`
   * (unclaimed, or their claimant's lease over); returns their jtis. A SET claimed by a live resume, or one a
   * revocation was applied for, stays: it is applied to the end (by the next resume if its claimant died).
   */
  dropHeld(id: string, now: number): Promise<string[]>;
  setStream(id: string, streamId: string, pushTokenHash: string): Promise<void>;
  /** One accepted SET: counters and the last SET's jti and action (`count` false: a held SET applied, counted when it was held). */
  recordAccepted(id: string, at: number, jti: string, action: string, count?: boolean): Promise<void>;
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
    status: oneOf(SOURCE_STATUSES, str(row, 'status'), 'status'),
    statusReason: optStr(row, 'status_reason'),
    statusChangedAt: optNum(row, 'status_changed_at'),
    statusChangedBy: optStr(row, 'status_changed_by'),
    upstreamStatus: optStr(row, 'upstream_status'),
    verifyState: optStr(row, 'verify_state'),
    verifyRequestedAt: optNum(row, 'verify_requested_at'),
    verifyReceivedAt: optNum(row, 'verify_received_at'),
    verifyJti: optStr(row, 'verify_jti'),
    verifyError: optStr(row, 'verify_error'),
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
        status: r.status,
        status_reason: r.statusReason,
        status_changed_at: r.statusChangedAt,
        status_changed_by: r.statusChangedBy,
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

  async lockTransmitter(id: string): Promise<boolean> {
    const result = await this.ctx.db
      .updateTable('ssf_transmitters')
      .set((eb) => ({ status: eb.ref('status') }))
      .where('id', '=', id)
      .executeTakeFirst();
    return changed(result) > 0;
  }

  async setStatus(id: string, status: SourceStatus, reason: string | null, at: number, by: string): Promise<void> {
    await this.ctx.db
      .updateTable('ssf_transmitters')
      .set({
        status,
        status_reason: reason,
        status_changed_at: at,
        status_changed_by: by,
        // disabled_at stays what it always meant: disabled since (null while enabled or paused).
        disabled_at: status === 'disabled' ? at : null,
      })
      .where('id', '=', id)
      .execute();
  }

  async setUpstreamStatus(id: string, answer: string): Promise<void> {
    await this.ctx.db.updateTable('ssf_transmitters').set({ upstream_status: answer }).where('id', '=', id).execute();
  }

  async setVerifyRequested(id: string, state: string, at: number): Promise<void> {
    await this.ctx.db
      .updateTable('ssf_transmitters')
      .set({
        verify_state: state,
        verify_requested_at: at,
        verify_received_at: null,
        verify_jti: null,
        verify_error: null,
      })
      .where('id', '=', id)
      .execute();
  }

  async setVerifyError(id: string, state: string, error: string): Promise<void> {
    await this.ctx.db
      .updateTable('ssf_transmitters')
      .set({ verify_error: error.slice(0, 500) })
      .where('id', '=', id)
      .where('verify_state', '=', state)
      .execute();
  }

  async markVerified(id: string, state: string, at: number, jti: string): Promise<boolean> {
    const result = await this.ctx.db
      .updateTable('ssf_transmitters')
      .set({ verify_received_at: at, verify_jti: jti, verify_error: null })
      .where('id', '=', id)
      .where('verify_state', '=', state)
      .where('verify_received_at', 'is', null)
      .executeTakeFirst();
    return changed(result) > 0;
  }

  async holdSet(id: string, held: HeldSet): Promise<void> {
    await this.ctx.db
      .insertInto('ssf_held_sets')
      .values({ transmitter_id: id, jti: held.jti, received_at: held.receivedAt, set_json: held.set })
      .execute();
  }

  async heldCount(id: string): Promise<number> {
    const row = await this.ctx.db
      .selectFrom('ssf_held_sets')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('transmitter_id', '=', id)
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  async heldSets(id: string, limit: number, now: number): Promise<HeldSet[]> {
    const rows = await this.ctx.db
      .selectFrom('ssf_held_sets')
      .select(['jti', 'received_at', 'set_json'])
      .where('transmitter_id', '=', id)
      .where((eb) => eb.or([eb('claimed_until', 'is', null), eb('claimed_until', '<', now)]))
      .orderBy('received_at')
      .orderBy('jti')
      .limit(limit)
      .execute();
    return rows.map((row) => ({
      jti: str(row, 'jti'),
      receivedAt: num(row, 'received_at'),
      set: str(row, 'set_json'),
    }));
  }

  async claimHeld(
    id: string,
    jti: string,
    claim: string,
    until: number,
    now: number,
  ): Promise<{ applied: string | null } | undefined> {
    const row = await this.ctx.db
      .updateTable('ssf_held_sets')
      .set({ claimed_by: claim, claimed_until: until })
      .where('transmitter_id', '=', id)
      .where('jti', '=', jti)
      .where((eb) => eb.or([eb('claimed_until', 'is', null), eb('claimed_until', '<', now)]))
      .returning('applied')
      .executeTakeFirst();
    return row && { applied: optStr(row, 'applied') };
  }

  async fenceHeld(id: string, jti: string, claim: string, until: number): Promise<boolean> {
    const result = await this.ctx.db
      .updateTable('ssf_held_sets')
      .set({ claimed_until: until })
      .where('transmitter_id', '=', id)
      .where('jti', '=', jti)
      .where('claimed_by', '=', claim)
      .executeTakeFirst();
    return changed(result) > 0;
  }

  async markHeldApplied(id: string, jti: string, mark: string): Promise<void> {
    await this.ctx.db
      .updateTable('ssf_held_sets')
      .set({ applied: sql<string>`CASE WHEN applied IS NULL THEN ${mark} ELSE applied || ' ' || ${mark} END` })
      .where('transmitter_id', '=', id)
      .where('jti', '=', jti)
      .execute();
  }

  async finishHeld(id: string, jti: string, claim: string): Promise<{ applied: string | null } | undefined> {
    const row = await this.ctx.db
      .deleteFrom('ssf_held_sets')
      .where((eb) => heldByClaim(eb, id, jti, claim))
      .returning('applied')
      .executeTakeFirst();
    return row && { applied: optStr(row, 'applied') };
  }

  async releaseHeld(id: string, jti: string, claim: string): Promise<{ applied: string | null } | undefined> {
    const row = await this.ctx.db
      .updateTable('ssf_held_sets')
      .set({ claimed_by: null, claimed_until: null })
      .where((eb) => heldByClaim(eb, id, jti, claim))
      .returning('applied')
      .executeTakeFirst();
    return row && { applied: optStr(row, 'applied') };
  }

  async deleteHeld(id: string, jti: string): Promise<boolean> {
    const result = await this.ctx.db
      .deleteFrom('ssf_held_sets')
      .where('transmitter_id', '=', id)
      .where('jti', '=', jti)
      .executeTakeFirst();
    return changed(result) > 0;
  }

  async dropHeld(id: string, now: number): Promise<string[]> {
    const rows = await this.ctx.db
      .deleteFrom('ssf_held_sets')
      .where('transmitter_id', '=', id)
      .where('applied', 'is', null)
      .where((eb) => eb.or([eb('claimed_until', 'is', null), eb('claimed_until', '<', now)]))
      .returning(['jti', 'received_at'])
      .execute();
    return rows
      .map((row) => ({ jti: str(row, 'jti'), at: num(row, 'received_at') }))
      .sort((a, b) => a.at - b.at || (a.jti < b.jti ? -1 : 1))
      .map((r) => r.jti);
  }

  async setStream(id: string, streamId: string, pushTokenHash: string): Promise<void> {
    await this.ctx.db
      .updateTable('ssf_transmitters')
      .set({ stream_id: streamId, push_token_hash: pushTokenHash })
      .where('id', '=', id)
      .execute();
  }

  async recordAccepted(id: string, at: number, jti: string, action: string, count = true): Promise<void> {
    if (!count) {
      // A held SET applied: it was counted (and was the last SET, perhaps) when it arrived; if it still is the
      // last SET, its action is now what it did.
      await this.ctx.db
        .updateTable('ssf_transmitters')
        .set({ last_action: action })
        .where('id', '=', id)
        .where('last_jti', '=', jti)
        .execute();
      return;
    }
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

/** The held SET `jti` of transmitter `id`, only while claim `claim` holds it (finishing or releasing a claim). */
function heldByClaim(eb: ExpressionBuilder<BatonDatabase, 'ssf_held_sets'>, id: string, jti: string, claim: string) {
  return eb.and([eb('transmitter_id', '=', id), eb('jti', '=', jti), eb('claimed_by', '=', claim)]);
}
