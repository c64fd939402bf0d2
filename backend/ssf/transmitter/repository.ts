import { CompiledQuery, type Kysely } from 'kysely';
import type { Store } from '../../store/repositories.js';
import { kyselyOf } from '../../store/kysely-store.js';
import type { BatonDatabase } from '../../store/kysely-schema.js';

/**
 * The transmitter's tables (migration 12) over the store's Kysely instance, on either engine: the
 * pool (PostgreSQL) or the one SQLite connection. Every statement is one atomic statement, or runs
 * in the caller's `store.transaction` (pass the `tx` store).
 */

export const SSF_SCOPES = ['ssf.manage', 'ssf.read'] as const;
export type SsfScope = (typeof SSF_SCOPES)[number];
export const STREAM_STATUSES = ['enabled', 'paused', 'disabled'] as const;
export type StreamStatus = (typeof STREAM_STATUSES)[number];

export interface ReceiverRecord {
  id: string;
  name: string;
  audience: string;
  scopes: SsfScope[];
  createdAt: number;
  createdBy: string;
  revokedAt: number | null;
  lastUsedAt: number | null;
}

export interface StreamRecord {
  id: string;
  receiverId: string;
  config: Record<string, unknown>;
  status: StreamStatus;
  statusReason: string | null;
  createdAt: number;
  updatedAt: number;
  leaseOwner: string | null;
  leaseUntil: number | null;
  failingSince: number | null;
  lastError: string | null;
  lastDeliveredAt: number | null;
  deliveredCount: number;
  /** The last verification event asked for: its jti, when, and when the receiver accepted it (null: not yet). */
  verifyJti: string | null;
  verifyRequestedAt: number | null;
  verifyAcceptedAt: number | null;
}

export interface QueueRow {
  seq: number;
  streamId: string;
  jti: string;
  subjectKey: string;
  setJwt: string;
  createdAt: number;
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  /** When the Baton event was recorded (the start of the delivery latency); null for rows queued before migration 21. */
  recordedAt: number | null;
}

export interface QueueInsert {
  streamId: string;
  /** Dedup key: the same Baton event is queued once per stream, whichever node (or restart) maps it. */
  source: string;
  jti: string;
  subjectKey: string;
  setJwt: string;
  /** When the Baton event was recorded (default: when queued). */
  recordedAt?: number;
}

/**
 * Delivery latency histogram buckets (upper bounds, ms; the last is everything slower): roughly
 * ×1.5 steps, fine around the 50 ms target. A percentile read from them is "at most this bucket's bound".
 */
export const LATENCY_BOUNDS_MS = [
  1,
  2,
  3,
  5,
  7,
  10,
  15,
  20,
  30,
  50,
  70,
  100,
  150,
  200,
  300,
  500,
  700,
  1000,
  1500,
  2000,
  3000,
  5000,
  10_000,
  30_000,
  60_000,
  300_000,
  Number.POSITIVE_INFINITY,
] as const;

export function latencyBucket(ms: number): number {
  const index = LATENCY_BOUNDS_MS.findIndex((bound) => ms <= bound);
  return index === -1 ? LATENCY_BOUNDS_MS.length - 1 : index;
}

/** A minute's latency histogram: counts per bucket index. */
export interface LatencyMinute {
  minute: number;
  counts: Map<number, number>;
}

const n = (v: unknown): number => Number(v);
const nn = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function db(store: Store): Kysely<BatonDatabase> {
  const handle = kyselyOf(store);
  if (handle === undefined) throw new Error('The Shared Signals transmitter needs a Kysely store');
  return handle;
}

function toReceiver(r: BatonDatabase['ssf_receivers']): ReceiverRecord {
  return {
    id: r.id,
    name: r.name,
    audience: r.audience,
    scopes: JSON.parse(r.scopes) as SsfScope[],
    createdAt: n(r.created_at),
    createdBy: r.created_by,
    revokedAt: nn(r.revoked_at),
    lastUsedAt: nn(r.last_used_at),
  };
}

type StreamRow = Omit<BatonDatabase['ssf_streams'], 'delivered_count'> & { delivered_count: number | string };

function toStream(r: StreamRow): StreamRecord {
  return {
    id: r.id,
    receiverId: r.receiver_id,
    config: JSON.parse(r.config) as Record<string, unknown>,
    status: r.status as StreamStatus,
    statusReason: r.status_reason,
    createdAt: n(r.created_at),
    updatedAt: n(r.updated_at),
    leaseOwner: r.lease_owner,
    leaseUntil: nn(r.lease_until),
    failingSince: nn(r.failing_since),
    lastError: r.last_error,
    lastDeliveredAt: nn(r.last_delivered_at),
    deliveredCount: n(r.delivered_count),
    verifyJti: r.verify_jti ?? null,
    verifyRequestedAt: nn(r.verify_requested_at),
    verifyAcceptedAt: nn(r.verify_accepted_at),
  };
}

/** `streamsVersion`'s statement text per Kysely instance. */
const streamsVersionSql = new WeakMap<Kysely<BatonDatabase>, string>();

/** The columns a queued SET is read with (`QueueRow`). */
const QUEUE_COLUMNS = [
  'seq',
  'jti',
  'subject_key',
  'set_jwt',
  'created_at',
  'attempts',
  'next_attempt_at',
  'last_error',
  'recorded_at',
] as const;

export class TransmitterRepository {
  constructor(private readonly store: Store) {}

  /** The same repository bound to a unit of work's store. */
  in(tx: Store): TransmitterRepository {
    return new TransmitterRepository(tx);
  }

  private get db(): Kysely<BatonDatabase> {
    return db(this.store);
  }

  // ---- receivers ----

  async insertReceiver(r: ReceiverRecord, tokenHash: string): Promise<void> {
    await this.db
      .insertInto('ssf_receivers')
      .values({
        id: r.id,
        name: r.name,
        audience: r.audience,
        token_hash: tokenHash,
        scopes: JSON.stringify(r.scopes),
        created_at: r.createdAt,
        created_by: r.createdBy,
        revoked_at: null,
        last_used_at: null,
      })
      .execute();
  }

  async receiverByTokenHash(hash: string): Promise<ReceiverRecord | undefined> {
    const row = await this.db.selectFrom('ssf_receivers').selectAll().where('token_hash', '=', hash).executeTakeFirst();
    return row === undefined ? undefined : toReceiver(row);
  }

  async listReceivers(): Promise<ReceiverRecord[]> {
    const rows = await this.db.selectFrom('ssf_receivers').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map(toReceiver);
  }

  async revokeReceiver(id: string, now: number): Promise<boolean> {
    const result = await this.db
      .updateTable('ssf_receivers')
      .set({ revoked_at: now })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async touchReceiver(id: string, now: number): Promise<void> {
    await this.db.updateTable('ssf_receivers').set({ last_used_at: now }).where('id', '=', id).execute();
  }

  // ---- streams ----

  async insertStream(s: Pick<StreamRecord, 'id' | 'receiverId' | 'config' | 'status' | 'createdAt'>): Promise<void> {
    await this.db
      .insertInto('ssf_streams')
      .values({
        id: s.id,
        receiver_id: s.receiverId,
        config: JSON.stringify(s.config),
        status: s.status,
        status_reason: null,
        created_at: s.createdAt,
        updated_at: s.createdAt,
        lease_owner: null,
        lease_until: null,
        failing_since: null,
        last_error: null,
        last_delivered_at: null,
        verify_jti: null,
        verify_requested_at: null,
        verify_accepted_at: null,
      })
      .execute();
  }

  /**
   * Locks a stream's row until the unit of work ends (a write that changes nothing: the same text on both
   * engines), so a change read after it sees every change committed before; false when there is no such stream.
   */
  async lockStream(id: string): Promise<boolean> {
    const result = await this.db
      .updateTable('ssf_streams')
      .set((eb) => ({ updated_at: eb.ref('updated_at') }))
      .where('id', '=', id)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async stream(id: string): Promise<StreamRecord | undefined> {
    const row = await this.db.selectFrom('ssf_streams').selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? undefined : toStream(row);
  }

  async streams(receiverId?: string): Promise<StreamRecord[]> {
    let q = this.db.selectFrom('ssf_streams').selectAll();
    if (receiverId !== undefined) q = q.where('receiver_id', '=', receiverId);
    return (await q.orderBy('created_at').orderBy('id').execute()).map(toStream);
  }

  /**
   * Changes when a stream is created, deleted or updated on any node (one small read: count and latest
   * times). The fan-out reads it before every batch, so the statement is built once per Kysely instance
   * (the dialect decides its text) and re-run as is.
   */
  async streamsVersion(): Promise<string> {
    const db = this.db;
    let sql = streamsVersionSql.get(db);
    if (sql === undefined) {
      sql = db
        .selectFrom('ssf_streams')
        .select((eb) => [
          eb.fn.countAll().as('n'),
          eb.fn.max('created_at').as('created'),
          eb.fn.max('updated_at').as('updated'),
        ])
        .compile().sql;
      streamsVersionSql.set(db, sql);
    }
    const row = (
      await db.executeQuery<Record<'n' | 'created' | 'updated', string | number | bigint | null>>(
        CompiledQuery.raw(sql, []),
      )
    ).rows[0];
    return `${String(row?.n ?? 0)}:${String(row?.created ?? '')}:${String(row?.updated ?? '')}`;
  }

  async updateConfig(id: string, config: Record<string, unknown>, now: number): Promise<void> {
    await this.db
      .updateTable('ssf_streams')
      .set({ config: JSON.stringify(config), updated_at: now })
      .where('id', '=', id)
      .execute();
  }

  async setStatus(id: string, status: StreamStatus, reason: string | null, now: number): Promise<void> {
    await this.db
      .updateTable('ssf_streams')
      .set({
        status,
        status_reason: reason,
        updated_at: now,
        ...(status === 'enabled' ? { failing_since: null } : {}),
      })
      .where('id', '=', id)
      .execute();
  }

  async deleteStream(id: string): Promise<void> {
    await this.db.deleteFrom('ssf_queue').where('stream_id', '=', id).execute();
    await this.db.deleteFrom('ssf_stream_subjects').where('stream_id', '=', id).execute();
    await this.db.deleteFrom('ssf_streams').where('id', '=', id).execute();
  }

  /**
   * Takes (or renews) the stream's delivery lease for `node` until `until`: only one node delivers a
   * stream's queue at a time (its order per subject is kept); a node that dies leaves a lease that
   * expires, and another takes over. One conditional UPDATE: atomic on both engines.
   */
  async takeLease(id: string, node: string, now: number, until: number): Promise<boolean> {
    const result = await this.db
      .updateTable('ssf_streams')
      .set({ lease_owner: node, lease_until: until })
      .where('id', '=', id)
      .where((eb) => eb.or([eb('lease_owner', 'is', null), eb('lease_until', '<', now), eb('lease_owner', '=', node)]))
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async releaseLease(id: string, node: string): Promise<void> {
    await this.db
      .updateTable('ssf_streams')
      .set({ lease_owner: null, lease_until: null })
      .where('id', '=', id)
      .where('lease_owner', '=', node)
      .execute();
  }

  async recordDelivered(id: string, count: number, now: number): Promise<void> {
    await this.db
      .updateTable('ssf_streams')
      .set((eb) => ({
        delivered_count: eb('delivered_count', '+', count),
        last_delivered_at: now,
        failing_since: null,
        last_error: null,
      }))
      .where('id', '=', id)
      .execute();
  }

  async recordFailing(id: string, since: number, error: string): Promise<void> {
    await this.db
      .updateTable('ssf_streams')
      .set((eb) => ({ failing_since: eb.fn.coalesce('failing_since', eb.val(since)), last_error: error.slice(0, 500) }))
      .where('id', '=', id)
      .execute();
  }

  // ---- subjects ----

  async addSubject(streamId: string, key: string, subject: unknown, now: number): Promise<void> {
    await this.db
      .insertInto('ssf_stream_subjects')
      .values({ stream_id: streamId, subject_key: key, subject: JSON.stringify(subject), added_at: now })
      .onConflict((oc) => oc.columns(['stream_id', 'subject_key']).doNothing())
      .execute();
  }

  async removeSubject(streamId: string, key: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('ssf_stream_subjects')
      .where('stream_id', '=', streamId)
      .where('subject_key', '=', key)
      .executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  /** A stream's subject rows: key `+<subject>` added, `-<subject>` removed. */
  async subjectRows(streamId: string): Promise<{ key: string; subject: unknown }[]> {
    const rows = await this.db
      .selectFrom('ssf_stream_subjects')
      .select(['subject_key', 'subject'])
      .where('stream_id', '=', streamId)
      .orderBy('added_at')
      .execute();
    return rows.map((r) => ({ key: r.subject_key, subject: JSON.parse(r.subject) as unknown }));
  }

  /** Every queued SET of a stream is due now (a stream resumed: no waiting out the backoff). */
  async dueNow(streamId: string, now: number): Promise<void> {
    await this.db.updateTable('ssf_queue').set({ next_attempt_at: now }).where('stream_id', '=', streamId).execute();
  }

  /** Drops a stream's queued SETs; how many. */
  async deleteStreamQueue(streamId: string): Promise<number> {
    const result = await this.db.deleteFrom('ssf_queue').where('stream_id', '=', streamId).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  // ---- queue ----

  /** Queues SETs; a (stream, source) already queued is left as it is (another node, or a re-run, mapped it). */
  async enqueue(rows: QueueInsert[], now: number): Promise<void> {
    if (rows.length === 0) return;
    for (let i = 0; i < rows.length; i += 200) {
      await this.db
        .insertInto('ssf_queue')
        .values(
          rows.slice(i, i + 200).map((r) => ({
            stream_id: r.streamId,
            source: r.source,
            jti: r.jti,
            subject_key: r.subjectKey,
            set_jwt: r.setJwt,
            created_at: now,
            next_attempt_at: now,
            last_error: null,
            polled_at: null,
            recorded_at: r.recordedAt ?? now,
          })),
        )
        .onConflict((oc) => oc.columns(['stream_id', 'source']).doNothing())
        .execute();
    }
  }

  /** The oldest queued SETs of a stream, in queue order. */
  async head(streamId: string, limit: number): Promise<QueueRow[]> {
    const rows = await this.db
      .selectFrom('ssf_queue')
      .select([...QUEUE_COLUMNS, 'stream_id'])
      .where('stream_id', '=', streamId)
      .orderBy('seq')
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      seq: n(r.seq),
      streamId: r.stream_id,
      jti: r.jti,
      subjectKey: r.subject_key,
      setJwt: r.set_jwt,
      createdAt: n(r.created_at),
      attempts: n(r.attempts),
      nextAttemptAt: n(r.next_attempt_at),
      lastError: r.last_error,
      recordedAt: nn(r.recorded_at),
    }));
  }

  async remove(streamId: string, seqs: number[]): Promise<void> {
    for (let i = 0; i < seqs.length; i += 500) {
      await this.db
        .deleteFrom('ssf_queue')
        .where('stream_id', '=', streamId)
        .where('seq', 'in', seqs.slice(i, i + 500))
        .execute();
    }
  }

  /** A failed push, tried again at `nextAttemptAt`; `setJwt`: the SET as it was signed again for this push (kept). */
  async retryLater(
    seq: number,
    attempts: number,
    nextAttemptAt: number,
    error: string,
    setJwt?: string,
  ): Promise<void> {
    await this.db
      .updateTable('ssf_queue')
      .set({
        attempts,
        next_attempt_at: nextAttemptAt,
        last_error: error.slice(0, 500),
        ...(setJwt === undefined ? {} : { set_jwt: setJwt }),
      })
      .where('seq', '=', seq)
      .execute();
  }

  /**
   * Queued SETs signed again (their key left the JWKS; the same claims): kept so, in one unit (one commit), so their
   * next hand-out is not signed again. A SET acknowledged meanwhile is gone and stays gone.
   */
  async replaceSetJwts(streamId: string, rows: readonly { seq: number; setJwt: string }[]): Promise<void> {
    if (rows.length === 0) return;
    await this.store.transaction(async (tx) => {
      const d = db(tx);
      for (const row of rows) {
        await d
          .updateTable('ssf_queue')
          .set({ set_jwt: row.setJwt })
          .where('stream_id', '=', streamId)
          .where('seq', '=', row.seq)
          .execute();
      }
    });
  }

  /**
   * Up to `max` SETs for a poll: those never handed out, and those handed out more than
   * `redeliverMs` ago without an acknowledgement, in queue order; marked handed out now. None unless the stream is
   * enabled (checked with its row locked). Once it has rows to
   * mark (and so to hold), the unit is bounded to `idleMs` idle (`boundIdleInUnit`): a node frozen before its
   * COMMIT does not hold them from the other nodes' polls for longer than that (or the pool's bound, if shorter).
   */
  async takeForPoll(
    streamId: string,
    max: number,
    now: number,
    redeliverMs: number,
    idleMs: number,
  ): Promise<QueueRow[]> {
    return this.store.transaction(async (tx) => {
      const d = db(tx);
      const due = () =>
        d
          .selectFrom('ssf_queue')
          .select(QUEUE_COLUMNS)
          .where('stream_id', '=', streamId)
          .where((eb) => eb.or([eb('polled_at', 'is', null), eb('polled_at', '<', now - redeliverMs)]))
          .orderBy('seq')
          .limit(max)
          .execute();
      let rows = await due();
      if (rows.length > 0) {
        // Handed out only while the stream is enabled, its row locked: a pause or disable committing meanwhile (on
        // any node) is seen here and nothing goes, or it waits for this unit (a hand-out before the pause).
        const repo = this.in(tx);
        await repo.boundIdleInUnit(idleMs);
        if (!(await repo.lockStream(streamId)) || (await repo.stream(streamId))?.status !== 'enabled') return [];
        // Read again under the lock: another poll of this stream that waited for it before this one has marked what
        // it took (committed), and those are not handed out twice.
        rows = await due();
        const seqs = rows.map((r) => n(r.seq));
        if (seqs.length > 0) {
          await d
            .updateTable('ssf_queue')
            .set((eb) => ({ polled_at: now, attempts: eb('attempts', '+', 1) }))
            .where('seq', 'in', seqs)
            .execute();
        }
      }
      return rows.map((r) => ({
        seq: n(r.seq),
        streamId,
        jti: r.jti,
        subjectKey: r.subject_key,
        setJwt: r.set_jwt,
        createdAt: n(r.created_at),
        attempts: n(r.attempts) + 1,
        nextAttemptAt: n(r.next_attempt_at),
        lastError: r.last_error,
        recordedAt: nn(r.recorded_at),
      }));
    });
  }

  /** SETs handed out to a poll that could not be answered: due for the next poll at once. */
  /** Un-marks SETs a poll took (with `polledAt`: only those it took then, not those another poll took since). */
  async unmarkPolled(streamId: string, jtis: string[], polledAt?: number): Promise<void> {
    for (let i = 0; i < jtis.length; i += 500) {
      let query = this.db
        .updateTable('ssf_queue')
        .set({ polled_at: null })
        .where('stream_id', '=', streamId)
        .where('jti', 'in', jtis.slice(i, i + 500));
      if (polledAt !== undefined) query = query.where('polled_at', '=', polledAt);
      await query.execute();
    }
  }

  /** Removes acknowledged SETs (by jti); returns how many were queued. */
  async ack(streamId: string, jtis: string[]): Promise<number> {
    let removed = 0;
    for (let i = 0; i < jtis.length; i += 500) {
      const result = await this.db
        .deleteFrom('ssf_queue')
        .where('stream_id', '=', streamId)
        .where('jti', 'in', jtis.slice(i, i + 500))
        .executeTakeFirst();
      removed += Number(result.numDeletedRows);
    }
    return removed;
  }

  async recordPollError(streamId: string, jti: string, error: string): Promise<void> {
    await this.db
      .updateTable('ssf_queue')
      .set({ last_error: error.slice(0, 500) })
      .where('stream_id', '=', streamId)
      .where('jti', '=', jti)
      .execute();
  }

  /**
   * How many SETs wait, since when the oldest, the most push attempts a waiting SET has had (0: none tried
   * yet) and the soonest next attempt of one that failed (null: none failed).
   */
  async backlog(
    streamId: string,
  ): Promise<{ count: number; oldest: number | null; attempts: number; nextAttemptAt: number | null }> {
    const row = await this.db
      .selectFrom('ssf_queue')
      .select((eb) => [
        eb.fn.countAll().as('count'),
        eb.fn.min('created_at').as('oldest'),
        eb.fn.max('attempts').as('attempts'),
        eb.fn.min(eb.case().when('attempts', '>', 0).then(eb.ref('next_attempt_at')).end()).as('next_attempt_at'),
      ])
      .where('stream_id', '=', streamId)
      .executeTakeFirst();
    return {
      count: n(row?.count ?? 0),
      oldest: nn(row?.oldest),
      attempts: n(row?.attempts ?? 0),
      nextAttemptAt: nn(row?.next_attempt_at),
    };
  }

  async hasPollable(streamId: string, now: number, redeliverMs: number): Promise<boolean> {
    const row = await this.db
      .selectFrom('ssf_queue')
      .select('seq')
      .where('stream_id', '=', streamId)
      .where((eb) => eb.or([eb('polled_at', 'is', null), eb('polled_at', '<', now - redeliverMs)]))
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  // ---- named leases (the fan-out: one node maps the event log to SETs) ----

  /**
   * Takes or renews the lease `name` for `owner` until `until`. An insert if nobody ever held it, then
   * one conditional UPDATE (free, expired, or already ours): atomic on both engines.
   */
  async takeNamedLease(name: string, owner: string, now: number, until: number): Promise<boolean> {
    const inserted = await this.db
      .insertInto('ssf_leases')
      .values({ name, owner, until })
      .onConflict((oc) => oc.column('name').doNothing())
      .executeTakeFirst();
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0) > 0) {
      // Inserted now, or (SQLite counts a no-op insert as 0) someone else's row: confirm it is ours.
      const row = await this.db.selectFrom('ssf_leases').select('owner').where('name', '=', name).executeTakeFirst();
      if (row?.owner === owner) return true;
    }
    const result = await this.db
      .updateTable('ssf_leases')
      .set({ owner, until })
      .where('name', '=', name)
      .where((eb) => eb.or([eb('owner', '=', owner), eb('until', '<', now)]))
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /**
   * Renews the lease `name` only if `owner` still holds it (expired or not: nobody took it since), and says
   * whether it did. In a unit of work, the fence of what the unit writes: a node that stalled past its lease
   * while another took it over commits nothing (the UPDATE waits for, then sees, the other's row).
   */
  async renewNamedLease(name: string, owner: string, until: number): Promise<boolean> {
    const result = await this.db
      .updateTable('ssf_leases')
      .set({ until })
      .where('name', '=', name)
      .where('owner', '=', owner)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /**
   * In a unit of work on PostgreSQL (`SET LOCAL`, this transaction only): the server ends the session, and so the
   * unit with its row locks, if the unit stays idle — no statement running — for longer than `ms`, or than the
   * session's own bound if that is shorter (`idle_in_transaction_session_timeout`, SQLSTATE 25P03; the pool's is
   * twice the statement timeout, 10 s by default): it only ever tightens. Nothing on SQLite: one process, one
   * writer, and no other node waits for its locks.
   */
  async boundIdleInUnit(ms: number): Promise<void> {
    if (this.store.engine !== 'postgres') return;
    const bound = Math.max(1, Math.round(ms));
    // The session's bound in ms (0: none), from pg_settings (current_setting would answer "10s").
    await this.db.executeQuery(
      CompiledQuery.raw(
        `select set_config('idle_in_transaction_session_timeout', (case when s.setting::bigint = 0 then ${bound}
           else least(s.setting::bigint, ${bound}) end)::text, true)
         from pg_settings s where s.name = 'idle_in_transaction_session_timeout'`,
        [],
      ),
    );
  }

  async releaseNamedLease(name: string, owner: string): Promise<void> {
    await this.db
      .updateTable('ssf_leases')
      .set({ until: 0 })
      .where('name', '=', name)
      .where('owner', '=', owner)
      .execute();
  }

  // ---- delivery latency and verification ----

  /** Adds latency samples (ms) to the stream's per-minute histograms (one upsert per bucket touched). */
  async recordLatency(streamId: string, samples: readonly number[], now: number): Promise<void> {
    if (samples.length === 0) return;
    const minute = Math.floor(now / 60_000) * 60_000;
    const counts = new Map<number, number>();
    for (const ms of samples) {
      const bucket = latencyBucket(ms);
      counts.set(bucket, (counts.get(bucket) ?? 0) + 1);
    }
    await this.db
      .insertInto('ssf_latency')
      .values([...counts].map(([bucket, count]) => ({ stream_id: streamId, minute, bucket, count })))
      .onConflict((oc) =>
        oc.columns(['stream_id', 'minute', 'bucket']).doUpdateSet((eb) => ({
          count: eb('ssf_latency.count', '+', eb.ref('excluded.count')),
        })),
      )
      .execute();
  }

  /** A stream's latency histograms from `since` (ms), oldest minute first. */
  async latency(streamId: string, since: number): Promise<LatencyMinute[]> {
    const rows = await this.db
      .selectFrom('ssf_latency')
      .select(['minute', 'bucket', 'count'])
      .where('stream_id', '=', streamId)
      .where('minute', '>=', since)
      .orderBy('minute')
      .execute();
    const minutes = new Map<number, LatencyMinute>();
    for (const r of rows) {
      const minute = n(r.minute);
      const entry = minutes.get(minute) ?? { minute, counts: new Map<number, number>() };
      entry.counts.set(n(r.bucket), (entry.counts.get(n(r.bucket)) ?? 0) + n(r.count));
      minutes.set(minute, entry);
    }
    return [...minutes.values()];
  }

  /** Histograms older than `before` go (kept: a day, for the admin's picture). */
  async pruneLatency(before: number): Promise<void> {
    await this.db.deleteFrom('ssf_latency').where('minute', '<', before).execute();
  }

  async setVerifyRequested(streamId: string, jti: string, now: number): Promise<void> {
    await this.db
      .updateTable('ssf_streams')
      .set({ verify_jti: jti, verify_requested_at: now, verify_accepted_at: null })
      .where('id', '=', streamId)
      .execute();
  }

  /** The receiver accepted one of `jtis`: if the stream's pending verification is among them, it is marked accepted. */
  async markVerified(streamId: string, jtis: readonly string[], now: number): Promise<void> {
    if (jtis.length === 0) return;
    for (let i = 0; i < jtis.length; i += 500) {
      await this.db
        .updateTable('ssf_streams')
        .set({ verify_accepted_at: now })
        .where('id', '=', streamId)
        .where('verify_accepted_at', 'is', null)
        .where('verify_jti', 'in', jtis.slice(i, i + 500))
        .execute();
    }
  }
}
