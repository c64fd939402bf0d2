import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { z } from 'zod';
import { BatonError } from '../../../shared/errors.js';
import type { StoredEvent } from '../../../shared/events.js';
import { newSecretToken, sha256Hex } from '../../crypto/secrets.js';
import type { EventLog } from '../../services/event-log.js';
import type { Store } from '../../store/repositories.js';
import { kyselyOf } from '../../store/kysely-store.js';
import {
  SSF_STREAM_UPDATED_EVENT,
  SSF_VERIFICATION_EVENT,
  SetErrorBodySchema,
  SubjectIdSchema,
  buildSet,
  resignSet,
  setClaimsEncoder,
  signSetJson,
  subjectKey,
  subjectMatches,
  type SetAlgorithm,
  type SetSigningKey,
  type SubjectId,
  type signSet,
} from '../set.js';
import type { DefaultSubjects, SsfTransmitterConfig } from './config.js';
import { DeliverySigner } from './delivery-signer.js';
import type { TransmitterKeys } from './keys.js';
import { EVENTS_SUPPORTED, mapEvent, txnOf } from './mapper.js';
import { PushClient, pushEndpoint, type PushEndpoint } from './push-client.js';
import {
  LATENCY_BOUNDS_MS,
  STREAM_STATUSES,
  TransmitterRepository,
  type LatencyMinute,
  type QueueInsert,
  type QueueRow,
  type ReceiverRecord,
  type SsfScope,
  type StreamRecord,
  type StreamStatus,
} from './repository.js';

export const PUSH_METHOD = 'urn:ietf:rfc:8935';
export const POLL_METHOD = 'urn:ietf:rfc:8936';
/** Where the fan-out has mapped the event log up to (meta row). */
const CURSOR_KEY = 'ssf:fanout-cursor';
/** The fan-out lease (ssf_leases): the one node that maps the event log to SETs. */
const FANOUT_LEASE = 'ssf:fanout';
/** Latency histograms are kept this long (the admin's picture shows the last hour). */
const LATENCY_KEEP_MS = 24 * 3600 * 1000;
/** How often every node looks for streams with SETs due (a node's own enqueues kick at once). */
const SWEEP_MS = 1000;
/** The actor of a status change the transmitter made itself (a receiver down past the limit). */
export const AUTOMATIC = 'automatic';
/** Streams (config, status, subjects) are re-read this often: another node may have changed them. */
const STREAMS_REFRESH_MS = 2000;
const HEAD_BATCH = 200;
const FANOUT_BATCH = 1000;
/** A push round that could not read the signing key ring tries again after this (or the stream's longest retry). */
const RING_RETRY_MS = 5000;
/** The fan-out lets the event loop run between slices of this many signatures (about 10 ms of RS256). */
const SIGN_SLICE = 32;
/** With no SET to queue, the fan-out cursor is written at most this often. */
const CURSOR_LAZY_MS = 5000;

/** The fan-out lease was found taken by another node in the unit that was to queue SETs: nothing was committed. */
class FanoutLeaseLost extends Error {
  constructor() {
    super('another node holds the Shared Signals fan-out lease');
  }
}

// ---- stream configuration (SSF 1.0 §8.1.1) ----

const DeliverySchema = z.discriminatedUnion('method', [
  z.strictObject({
    method: z.literal(PUSH_METHOD),
    endpoint_url: z.url({ protocol: /^https?$/ }).max(2048),
    authorization_header: z.string().min(1).max(4096).optional(),
  }),
  z.strictObject({ method: z.literal(POLL_METHOD), endpoint_url: z.string().optional() }),
]);
const ReceiverSupplied = {
  events_requested: z.array(z.string().min(1).max(512)).max(100).optional(),
  delivery: DeliverySchema.optional(),
  description: z.string().max(500).optional(),
};
/** Transmitter-supplied members a receiver may echo back (read-modify-write); they are ignored. */
const Echoed = {
  iss: z.unknown().optional(),
  aud: z.unknown().optional(),
  events_supported: z.unknown().optional(),
  events_delivered: z.unknown().optional(),
  min_verification_interval: z.unknown().optional(),
  inactivity_timeout: z.unknown().optional(),
};
export const CreateStreamSchema = z.strictObject({ ...ReceiverSupplied, ...Echoed });
export const UpdateStreamSchema = z.strictObject({
  stream_id: z.string().min(1).max(128),
  ...ReceiverSupplied,
  ...Echoed,
});
export const StatusUpdateSchema = z.strictObject({
  stream_id: z.string().min(1).max(128),
  status: z.enum(STREAM_STATUSES),
  reason: z.string().max(500).optional(),
});
export const SubjectRequestSchema = z.strictObject({
  stream_id: z.string().min(1).max(128),
  subject: SubjectIdSchema,
  verified: z.boolean().optional(),
});
export const VerificationRequestSchema = z.strictObject({
  stream_id: z.string().min(1).max(128),
  state: z.string().max(1000).optional(),
});
export const PollRequestSchema = z.strictObject({
  ack: z.array(z.string().min(1).max(256)).max(10_000).optional(),
  setErrs: z.record(z.string().min(1).max(256), SetErrorBodySchema).optional(),
  maxEvents: z.int().min(0).max(1000).optional(),
  returnImmediately: z.boolean().optional(),
});

interface StreamConfig {
  aud: string;
  events_requested: string[];
  delivery: z.infer<typeof DeliverySchema>;
  description?: string;
  /** ALL: every subject except those removed; NONE: only those added. Fixed when the stream is created. */
  default_subjects: DefaultSubjects;
}

interface CachedStream {
  record: StreamRecord;
  config: StreamConfig;
  delivered: Set<string>;
  included: SubjectId[];
  excluded: SubjectId[];
}

export interface SsfTransmitterDeps {
  store: Store;
  events: EventLog;
  keys: TransmitterKeys;
  config: SsfTransmitterConfig;
  clock: () => number;
  logger: Logger;
  nodeId: string;
  issuer: () => string;
}

export interface ReceiverView {
  id: string;
  name: string;
  audience: string;
  scopes: SsfScope[];
  createdAt: number;
  createdBy: string;
  revokedAt: number | null;
  lastUsedAt: number | null;
}

/**
 * The OpenID Shared Signals transmitter (docs/shared-signals.md, ADR 0007): receivers' tokens and
 * streams, the fan-out from the event log to each stream's durable queue, push delivery (RFC 8935)
 * and poll delivery (RFC 8936).
 *
 * Fan-out: every node follows the event log after commit (`EventLog.subscribe`), maps each event to a
 * CAEP/SSF SET per stream that asked for its type and subject, signs it, and inserts it into
 * `ssf_queue` with the stream and the Baton event as a unique key, in one transaction with the
 * fan-out cursor (meta `ssf:fanout-cursor`). Two nodes mapping the same event insert it once; a node
 * that starts reads from the cursor, so an event committed while none was running is not lost.
 *
 * Push: a node takes the stream's lease (one node delivers a stream at a time), reads the queue head,
 * posts each subject's SETs in order (subjects in parallel), deletes what the receiver accepted (202),
 * and schedules the rest with exponential backoff and jitter. A receiver failing for longer than
 * `pauseAfterSeconds` pauses the stream (status `paused`, reason given); events keep queueing.
 */
export class SsfTransmitter {
  readonly repo: TransmitterRepository;
  private streams = new Map<string, CachedStream>();
  private streamsReadAt = 0;
  /** `repo.streamsVersion()` when the streams were last read. */
  private streamsVersion = '';
  private readonly sites = new Map<string, string | null>();
  private processed = 0;
  private cursorWrittenAt = 0;
  private pending: StoredEvent[] = [];
  private flushing: Promise<void> | undefined;
  private flushScheduled = false;
  private backfilling = true;
  /** This node holds the fan-out lease: it maps events to SETs (the others only deliver). */
  private fanoutHolder = false;
  private prunedAt = 0;
  private readonly delivering = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  private readonly wakeups = new Map<string, NodeJS.Timeout>();
  private readonly pollWaiters = new EventEmitter();
  private unsubscribe: (() => void) | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  /** The sweep in progress: one at a time (a slow database must not gather one waiting sweep per second). */
  private sweeping: Promise<void> | undefined;
  private stopped = false;
  /** Kept-alive connections to receivers, pushes ended after `pushTimeoutMs` (push-client.ts). */
  private readonly client: PushClient;
  /** Measured: how long signing took, for the benchmark (ns, count). */
  readonly signing = { ns: 0n, count: 0 };
  /** SETs this node pushed and the receiver accepted (202), since it started. */
  private pushed = 0;
  /** Queued SETs this node signed again as it handed them out (their key no longer published), since it started. */
  private resigned = 0;

  constructor(private readonly deps: SsfTransmitterDeps) {
    this.repo = new TransmitterRepository(deps.store);
    this.client = new PushClient(deps.config.pushTimeoutMs);
    this.pollWaiters.setMaxListeners(0);
  }

  private get leaseMs(): number {
    return this.deps.config.leaseSeconds * 1000;
  }

  get issuer(): string {
    return this.deps.issuer().replace(/\/$/, '');
  }

  // ---- lifecycle ----

  /**
   * Follows the event log and starts delivering. One node of a cluster maps events to SETs (it holds
   * the fan-out lease, so each SET is signed once); it maps from the stored cursor (or from now on a
   * fresh database). The others deliver, and take the fan-out over when its holder stops renewing.
   */
  async start(): Promise<void> {
    await this.refreshStreams(true);
    // Only the fan-out holder maps events: on the other nodes the live feed need not read (and parse) the
    // events other nodes wrote for it. A node that takes the lease over maps from the stored cursor up to
    // where its feed stands (holdFanout), and the feed hands it everything above, read then if need be.
    this.unsubscribe = this.deps.events.subscribe(
      {},
      (event) => {
        if (!this.fanoutHolder || event.cursor <= this.processed) return;
        this.pending.push(event);
        if (!this.backfilling) this.scheduleFlush();
      },
      { active: () => this.fanoutHolder },
    );
    // A failed catch-up (the store unreachable, a damaged page among the events it reads) must not stop the
    // backend's start: the rest of the backend serves (and /healthz reports the damage); the lease is given
    // back and the next sweep, here or on another node, maps again from the stored cursor.
    await this.holdFanout().catch((error: unknown) =>
      this.deps.logger.error(
        { err: error, code: 'SSF_FANOUT_FAILED' },
        'catching the Shared Signals fan-out up failed at start; the next sweep tries again',
      ),
    );
    this.sweepTimer = setInterval(() => void this.sweepOnce(), SWEEP_MS);
    this.sweepTimer.unref();
    void this.sweepOnce();
  }

  /** Takes or renews the fan-out lease; a node that just took it maps what its predecessor had not. */
  private async holdFanout(): Promise<void> {
    const now = this.deps.clock();
    const held = await this.repo.takeNamedLease(FANOUT_LEASE, this.deps.nodeId, now, now + this.leaseMs);
    if (!held) {
      if (this.fanoutHolder) this.loseFanout();
      return;
    }
    if (this.fanoutHolder) return;
    this.fanoutHolder = true;
    this.backfilling = true;
    this.pending = [];
    try {
      // On a PostgreSQL cluster the store is read directly only up to where the live feed stands: above it a
      // cursor may belong to a unit still open on another node, which would land below what was mapped and be
      // dropped. What comes after it, the feed hands to the subscription above (into `pending`), in order.
      // Read in the same turn as the lease was taken, so every event above it reaches `pending`.
      const bound = this.deps.events.liveFeedCursor;
      const stored = await this.deps.store.meta.get(CURSOR_KEY);
      if (stored === undefined) {
        // A fresh transmitter starts at the log's end: receivers get what happens from now on.
        const last = bound ?? (await this.lastCursor());
        this.processed = last;
        await this.deps.store.meta.set(CURSOR_KEY, String(last));
      } else {
        this.processed = Number(stored);
        // A node stopping ends its catch-up after the page in hand (stop() writes the cursor as far as it mapped).
        while (!this.stopped) {
          const page = await this.deps.events.query({ afterCursor: this.processed, limit: FANOUT_BATCH });
          const within = bound === undefined ? page : page.filter((e) => e.cursor <= bound);
          if (within.length > 0) await this.process(within);
          if (within.length < FANOUT_BATCH) break;
        }
      }
    } catch (error) {
      // Not mapped: give the lease back, the next sweep (here or on another node) starts again from the cursor.
      this.fanoutHolder = false;
      await this.repo.releaseNamedLease(FANOUT_LEASE, this.deps.nodeId).catch(() => undefined);
      throw error;
    } finally {
      this.backfilling = false;
    }
    this.pending = this.pending.filter((e) => e.cursor > this.processed);
    this.scheduleFlush();
  }

  private loseFanout(): void {
    this.deps.logger.warn({ code: 'SSF_FANOUT_LEASE_LOST' }, 'another node took the Shared Signals fan-out over');
    this.fanoutHolder = false;
    this.pending = [];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    clearInterval(this.sweepTimer);
    // A sweep still waiting for the database could take the fan-out lease again after it is given back below.
    await this.sweeping;
    for (const timer of this.wakeups.values()) clearTimeout(timer);
    this.pollWaiters.emit('stop');
    await this.flushing?.catch(() => undefined);
    if (this.fanoutHolder) {
      // The cursor as far as this node mapped (written lazily while nothing was queued), then the lease goes.
      await this.unit(async (tx) => {
        const stored = Number((await tx.meta.get(CURSOR_KEY)) ?? 0);
        if (this.processed > stored) await tx.meta.set(CURSOR_KEY, String(this.processed));
        // Only while still the holder (fenced as in `process`): another's cursor is not moved past what it mapped.
        const now = this.deps.clock();
        if (!(await this.repo.in(tx).renewNamedLease(FANOUT_LEASE, this.deps.nodeId, now))) throw new FanoutLeaseLost();
      }).catch((error: unknown) => this.deps.logger.warn({ err: error }, 'writing the Shared Signals cursor failed'));
      await this.repo.releaseNamedLease(FANOUT_LEASE, this.deps.nodeId).catch(() => undefined);
    }
    await Promise.allSettled([...this.delivering.values()]);
    this.client.destroy();
    for (const id of this.streams.keys()) await this.repo.releaseLease(id, this.deps.nodeId).catch(() => undefined);
  }

  /** Waits until every event committed so far is queued (tests, benchmarks). */
  async settled(): Promise<void> {
    while (this.flushing !== undefined || this.pending.length > 0 || this.flushScheduled) {
      if (this.flushing !== undefined) await this.flushing.catch(() => undefined);
      else await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** The newest event's cursor (one indexed read: the primary key's maximum). */
  private async lastCursor(): Promise<number> {
    const db = kyselyOf(this.deps.store);
    if (db === undefined) return 0;
    const row = await db
      .selectFrom('events')
      .select((eb) => eb.fn.max('cursor').as('last'))
      .executeTakeFirst();
    return Number(row?.last ?? 0);
  }

  // ---- receivers (admin) ----

  async issueReceiver(
    input: { name: string; scopes: SsfScope[]; audience?: string | undefined },
    actor: string,
  ): Promise<{ receiver: ReceiverView; token: string }> {
    const token = newSecretToken('ssf');
    const id = `rcv_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
    const audience = input.audience ?? `${this.issuer}/ssf/receivers/${id}`;
    const record: ReceiverRecord = {
      id,
      name: input.name,
      audience,
      scopes: [...new Set(input.scopes)],
      createdAt: this.deps.clock(),
      createdBy: actor,
      revokedAt: null,
      lastUsedAt: null,
    };
    await this.deps.events.atomically(async (uow) => {
      await this.repo.in(uow.store).insertReceiver(record, sha256Hex(token));
      await uow.record({
        type: 'admin-action',
        subject: {},
        outcome: 'success',
        reasons: ['ssf-receiver-issued'],
        detail: { actor, receiver: id, name: input.name, scopes: record.scopes.join(' ') },
      });
    });
    return { receiver: record, token };
  }

  listReceivers(): Promise<ReceiverView[]> {
    return this.repo.listReceivers();
  }

  async revokeReceiver(id: string, actor: string): Promise<ReceiverView> {
    await this.deps.events.atomically(async (uow) => {
      const repo = this.repo.in(uow.store);
      if (!(await repo.revokeReceiver(id, this.deps.clock()))) {
        const known = (await repo.listReceivers()).some((r) => r.id === id);
        throw new BatonError(
          known ? 'SSF_RECEIVER_REVOKED' : 'SSF_RECEIVER_NOT_FOUND',
          `Receiver "${id}" ${known ? 'is already revoked' : 'does not exist'}`,
        );
      }
      await uow.record({
        type: 'admin-action',
        subject: {},
        outcome: 'success',
        reasons: ['ssf-receiver-revoked'],
        detail: { actor, receiver: id },
      });
    });
    const receiver = (await this.repo.listReceivers()).find((r) => r.id === id);
    return receiver as ReceiverView;
  }

  /**
   * The receiver a request's bearer token names, holding `scope` (`ssf.manage` implies `ssf.read`).
   * SSF_TOKEN_MISSING / SSF_TOKEN_INVALID (401, with `WWW-Authenticate: Bearer`), SSF_SCOPE_INSUFFICIENT (403).
   */
  async authenticate(req: IncomingMessage, scope: SsfScope): Promise<ReceiverView> {
    const header = req.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer ([A-Za-z0-9._~+/-]+=*)$/i.exec(header.trim()) : null;
    if (match?.[1] === undefined) {
      throw new BatonError('SSF_TOKEN_MISSING', 'This endpoint needs `Authorization: Bearer <receiver token>`');
    }
    const receiver = await this.repo.receiverByTokenHash(sha256Hex(match[1]));
    if (receiver === undefined || receiver.revokedAt !== null) {
      throw new BatonError('SSF_TOKEN_INVALID', 'The receiver token is unknown or revoked');
    }
    const held = new Set(receiver.scopes);
    if (!(held.has(scope) || (scope === 'ssf.read' && held.has('ssf.manage')))) {
      throw new BatonError('SSF_SCOPE_INSUFFICIENT', `This endpoint needs the scope ${scope}`);
    }
    const now = this.deps.clock();
    if (receiver.lastUsedAt === null || now - receiver.lastUsedAt > 60_000) {
      void this.repo.touchReceiver(receiver.id, now).catch(() => undefined);
    }
    return receiver;
  }

  // ---- metadata ----

  configuration(): Record<string, unknown> {
    const base = this.issuer;
    return {
      spec_version: '1_0',
      issuer: base,
      jwks_uri: `${base}/ssf/jwks.json`,
      delivery_methods_supported: [PUSH_METHOD, POLL_METHOD],
      configuration_endpoint: `${base}/ssf/streams`,
      status_endpoint: `${base}/ssf/status`,
      add_subject_endpoint: `${base}/ssf/subjects/add`,
      remove_subject_endpoint: `${base}/ssf/subjects/remove`,
      verification_endpoint: `${base}/ssf/verify`,
      authorization_schemes: [{ spec_urn: 'urn:ietf:rfc:6749' }, { spec_urn: 'urn:ietf:rfc:6750' }],
      // SSF 1.0 §7.1.1: what a stream created from now on starts with (`ssf.defaultSubjects`).
      default_subjects: this.deps.config.defaultSubjects,
      critical_subject_members: [],
    };
  }

  // ---- streams ----

  private view(stream: StreamRecord): Record<string, unknown> {
    const config = stream.config as unknown as StreamConfig;
    const requested = config.events_requested;
    const { authorization_header: _secret, ...delivery } = config.delivery as Record<string, unknown>;
    return {
      stream_id: stream.id,
      iss: this.issuer,
      aud: config.aud,
      events_supported: EVENTS_SUPPORTED,
      events_requested: requested,
      events_delivered: deliveredOf(requested),
      delivery:
        config.delivery.method === POLL_METHOD ? { ...delivery, endpoint_url: this.pollUrl(stream.id) } : delivery,
      ...(config.description === undefined ? {} : { description: config.description }),
      min_verification_interval: 0,
    };
  }

  private pollUrl(id: string): string {
    return `${this.issuer}/ssf/poll/${encodeURIComponent(id)}`;
  }

  private async owned(receiver: ReceiverView, streamId: string): Promise<StreamRecord> {
    const stream = await this.repo.stream(streamId);
    // Another receiver's stream is as unknown as a missing one: ids are not an oracle.
    if (stream === undefined || stream.receiverId !== receiver.id) {
      throw new BatonError('SSF_STREAM_NOT_FOUND', `No stream "${streamId}"`);
    }
    return stream;
  }

  async createStream(
    receiver: ReceiverView,
    body: z.infer<typeof CreateStreamSchema>,
  ): Promise<Record<string, unknown>> {
    // SSF 1.0 §8.1.1.1: a request without `delivery` is poll (RFC 8936), the endpoint_url Baton's (in the answer).
    const delivery = body.delivery ?? { method: POLL_METHOD };
    checkDelivery(delivery);
    const existing = await this.repo.streams(receiver.id);
    if (existing.length >= this.deps.config.maxStreamsPerReceiver) {
      throw new BatonError(
        'SSF_STREAM_LIMIT',
        `A receiver has at most ${this.deps.config.maxStreamsPerReceiver} streams`,
      );
    }
    const id = `str_${randomUUID().replace(/-/g, '').slice(0, 20)}`;
    const config: StreamConfig = {
      aud: receiver.audience,
      events_requested: body.events_requested ?? [],
      delivery: delivery.method === POLL_METHOD ? { method: POLL_METHOD } : delivery,
      ...(body.description === undefined ? {} : { description: body.description }),
      // Fixed at creation: a stream keeps it when the setting changes (the admin streams API shows it).
      default_subjects: this.deps.config.defaultSubjects,
    };
    const now = this.deps.clock();
    await this.repo.insertStream({
      id,
      receiverId: receiver.id,
      config: config as unknown as Record<string, unknown>,
      status: 'enabled',
      createdAt: now,
    });
    await this.refreshStreams(true);
    return this.view((await this.repo.stream(id)) as StreamRecord);
  }

  async readStreams(receiver: ReceiverView, streamId: string | null): Promise<unknown> {
    if (streamId !== null) return this.view(await this.owned(receiver, streamId));
    return (await this.repo.streams(receiver.id)).map((s) => this.view(s));
  }

  /** PATCH (`replace` false: members absent are kept) or PUT (`replace` true: members absent are reset). */
  async updateStream(
    receiver: ReceiverView,
    body: z.infer<typeof UpdateStreamSchema>,
    replace: boolean,
  ): Promise<Record<string, unknown>> {
    const stream = await this.owned(receiver, body.stream_id);
    const current = stream.config as unknown as StreamConfig;
    if (replace && body.delivery === undefined) throw invalid('delivery', 'a replacement (PUT) must carry delivery');
    if (body.delivery !== undefined) {
      checkDelivery(body.delivery);
      if (body.delivery.method !== current.delivery.method) {
        throw invalid('delivery.method', 'the delivery method of a stream cannot change: create another stream');
      }
    }
    const next: StreamConfig = {
      ...current,
      events_requested: body.events_requested ?? (replace ? [] : current.events_requested),
      delivery:
        body.delivery === undefined
          ? current.delivery
          : body.delivery.method === POLL_METHOD
            ? { method: POLL_METHOD }
            : body.delivery,
    };
    if (body.description !== undefined) next.description = body.description;
    else if (replace) delete next.description;
    await this.repo.updateConfig(stream.id, next as unknown as Record<string, unknown>, this.deps.clock());
    await this.refreshStreams(true);
    return this.view((await this.repo.stream(stream.id)) as StreamRecord);
  }

  async deleteStream(receiver: ReceiverView, streamId: string): Promise<void> {
    await this.owned(receiver, streamId);
    await this.repo.deleteStream(streamId);
    await this.refreshStreams(true);
  }

  async status(receiver: ReceiverView, streamId: string): Promise<Record<string, unknown>> {
    const stream = await this.owned(receiver, streamId);
    return statusView(stream);
  }

  /**
   * Sets a stream's status; a change is announced to the receiver with a `stream-updated` SET, and recorded in the
   * event log in the same unit of work (`admin-action`, reason `ssf-stream-<status>`, docs/events.md) with who
   * changed it: `actor` (an admin, `receiver:<id>` for the receiver's own request, `automatic` for the transmitter).
   */
  async setStatus(
    streamId: string,
    status: StreamStatus,
    reason: string | undefined,
    actor: string,
    receiver?: ReceiverView,
  ): Promise<Record<string, unknown>> {
    const stream = receiver === undefined ? await this.repo.stream(streamId) : await this.owned(receiver, streamId);
    if (stream === undefined) throw new BatonError('SSF_STREAM_NOT_FOUND', `No stream "${streamId}"`);
    if (stream.status !== status || (stream.statusReason ?? undefined) !== reason) {
      // The unit signs a stream-updated SET: with the ring as the store has it (read outside the unit). A disable
      // signs nothing (it drops the queue): an emergency disable does not wait for a readable ring.
      if (status !== 'disabled') await this.deps.keys.fresh();
      const now = this.deps.clock();
      await this.deps.events.atomically(async (uow) => {
        const repo = this.repo.in(uow.store);
        await repo.boundIdleInUnit(this.leaseMs);
        // Locked, then read again in the unit: of two changes at once (an admin and the automatic pause, on
        // two nodes), the second sees the first's status; the status recorded as previous is the one replaced.
        const current = (await repo.lockStream(stream.id)) ? await repo.stream(stream.id) : undefined;
        if (current === undefined) throw new BatonError('SSF_STREAM_NOT_FOUND', `No stream "${streamId}"`);
        if (current.status === status && (current.statusReason ?? undefined) === reason) return;
        // The automatic pause pauses only an enabled stream: an admin's pause or disable meanwhile stands.
        if (actor === AUTOMATIC && current.status !== 'enabled') return;
        await repo.setStatus(stream.id, status, reason ?? null, now);
        let dropped: number | undefined;
        // Disabled: the transmitter neither sends nor holds events for it (SSF 1.0 §8.1.2.1).
        if (status === 'disabled') {
          dropped = await repo.deleteStreamQueue(stream.id);
        } else if (current.status !== status) {
          const update = { status, ...(reason === undefined ? {} : { reason }) };
          await repo.enqueue([this.streamEvent(current, SSF_STREAM_UPDATED_EVENT, update)], now);
        }
        // Resumed: what waited out a backoff goes now.
        if (status === 'enabled') await repo.dueNow(stream.id, now);
        await uow.record({
          type: 'admin-action',
          subject: {},
          outcome: 'success',
          reasons: [`ssf-stream-${status}`, ...(actor === AUTOMATIC ? ['receiver-down-past-limit'] : [])],
          detail: {
            actor,
            stream: stream.id,
            receiver: stream.receiverId,
            previousStatus: current.status,
            status,
            reason: reason ?? null,
            ...(dropped === undefined ? {} : { droppedSets: dropped }),
          },
        });
      });
      await this.refreshStreams(true);
      this.kick(stream.id);
    }
    return statusView((await this.repo.stream(stream.id)) as StreamRecord);
  }

  /** An admin rotated the SET signing key (`TransmitterKeys.rotate`): recorded like Baton's other key rotations. */
  async rotateKeys(algorithm: SetAlgorithm | undefined, actor: string): Promise<{ previous: string; current: string }> {
    const rotated = await this.deps.keys.rotate(algorithm);
    const alg = this.deps.keys.list().find((k) => k.kid === rotated.current)?.alg;
    await this.deps.events.record({
      type: 'admin-action',
      subject: {},
      outcome: 'success',
      reasons: ['signing-key-rotated'],
      detail: { actor, key: 'ssf', previousKid: rotated.previous, kid: rotated.current, alg: alg ?? null },
    });
    return rotated;
  }

  async verify(receiver: ReceiverView, streamId: string, state: string | undefined): Promise<void> {
    await this.sendVerification(await this.owned(receiver, streamId), state);
  }

  /**
   * An admin asks for a verification event (the console's Verify button): queued like any SET; the
   * admin view shows when the receiver accepted it (`verification.acceptedAt`).
   */
  async adminVerify(streamId: string, actor: string): Promise<{ jti: string; state: string; requestedAt: number }> {
    const stream = await this.repo.stream(streamId);
    if (stream === undefined) throw new BatonError('SSF_STREAM_NOT_FOUND', `No stream "${streamId}"`);
    const state = `baton-admin-${randomUUID()}`;
    const sent = await this.sendVerification(stream, state);
    this.deps.logger.info({ stream: streamId, jti: sent.jti, actor }, 'Shared Signals verification asked by an admin');
    return { ...sent, state };
  }

  private async sendVerification(
    stream: StreamRecord,
    state: string | undefined,
  ): Promise<{ jti: string; requestedAt: number }> {
    if (stream.status === 'disabled') throw new BatonError('SSF_STREAM_DISABLED', `Stream "${stream.id}" is disabled`);
    await this.deps.keys.fresh();
    const row = this.streamEvent(stream, SSF_VERIFICATION_EVENT, state === undefined ? {} : { state });
    const now = this.deps.clock();
    await this.unit(async (tx) => {
      const repo = this.repo.in(tx);
      await repo.enqueue([row], now);
      await repo.setVerifyRequested(stream.id, row.jti, now);
    });
    this.kick(stream.id);
    return { jti: row.jti, requestedAt: now };
  }

  async addSubject(receiver: ReceiverView, streamId: string, subject: SubjectId): Promise<void> {
    await this.owned(receiver, streamId);
    const key = subjectKey(subject);
    // ALL: adding a subject takes it off the removed list.
    await this.repo.removeSubject(streamId, `-${key}`);
    await this.repo.addSubject(streamId, `+${key}`, subject, this.deps.clock());
    await this.refreshStreams(true);
  }

  async removeSubject(receiver: ReceiverView, streamId: string, subject: SubjectId): Promise<void> {
    await this.owned(receiver, streamId);
    const key = subjectKey(subject);
    await this.repo.removeSubject(streamId, `+${key}`);
    await this.repo.addSubject(streamId, `-${key}`, subject, this.deps.clock());
    await this.refreshStreams(true);
  }

  /**
   * This node's share (the admin view answers from whichever node it reached): whether it maps the
   * event log to SETs (the fan-out lease), the SETs it signed (and the wall time signing took) and
   * pushed since it started.
   */
  nodeView(): { id: string; fanout: boolean; signed: number; signingMs: number; pushed: number; resigned: number } {
    return {
      id: this.deps.nodeId,
      fanout: this.fanoutHolder,
      signed: this.signing.count,
      signingMs: Number(this.signing.ns / 1000n) / 1000,
      pushed: this.pushed,
      resigned: this.resigned,
    };
  }

  /** For the admin API and console: every stream with its delivery state. */
  async adminStreams(): Promise<Record<string, unknown>[]> {
    const streams = await this.repo.streams();
    return Promise.all(
      streams.map(async (s) => {
        const config = s.config as unknown as StreamConfig;
        const backlog = await this.repo.backlog(s.id);
        const now = this.deps.clock();
        const latency = latencySummary(await this.repo.latency(s.id, now - 3600_000));
        return {
          id: s.id,
          receiverId: s.receiverId,
          audience: config.aud,
          method: config.delivery.method === PUSH_METHOD ? 'push' : 'poll',
          // ALL or NONE, as when the stream was created (`ssf.defaultSubjects` then; SSF 1.0 §7.1.1).
          defaultSubjects: config.default_subjects,
          endpointUrl: config.delivery.method === PUSH_METHOD ? config.delivery.endpoint_url : this.pollUrl(s.id),
          eventsDelivered: deliveredOf(config.events_requested),
          status: s.status,
          statusReason: s.statusReason,
          backlog: backlog.count,
          lagMs: backlog.oldest === null ? 0 : Math.max(0, now - backlog.oldest),
          lastError: s.lastError,
          failingSince: s.failingSince,
          // Push retries: the most attempts a waiting SET has had, and when the next failed one is tried again.
          attempts: backlog.attempts,
          nextAttemptAt: backlog.nextAttemptAt,
          lastDeliveredAt: s.lastDeliveredAt,
          deliveredCount: s.deliveredCount,
          createdAt: s.createdAt,
          // The node delivering it now (its delivery lease), if any: one at a time in a cluster.
          deliveringNode: s.leaseOwner !== null && (s.leaseUntil ?? 0) > now ? s.leaseOwner : null,
          verification:
            s.verifyRequestedAt === null
              ? null
              : {
                  jti: s.verifyJti,
                  requestedAt: s.verifyRequestedAt,
                  acceptedAt: s.verifyAcceptedAt,
                  tookMs: s.verifyAcceptedAt === null ? null : s.verifyAcceptedAt - s.verifyRequestedAt,
                },
          latency,
        };
      }),
    );
  }

  private streamEvent(stream: StreamRecord, type: string, event: Record<string, unknown>): QueueInsert {
    const config = stream.config as unknown as StreamConfig;
    const subject: SubjectId = { format: 'opaque', id: stream.id };
    const jti = randomUUID();
    const claims = buildSet({ iss: this.issuer, aud: config.aud, type, event, subject, jti });
    return {
      streamId: stream.id,
      source: `ssf:${jti}`,
      jti,
      subjectKey: subjectKey(subject),
      setJwt: this.sign(claims),
    };
  }

  private sign(claims: Parameters<typeof signSet>[0]): string {
    return this.signJson(JSON.stringify(claims), this.deps.keys.signingKey());
  }

  private signJson(claimsJson: string, key: SetSigningKey): string {
    const started = process.hrtime.bigint();
    const jwt = signSetJson(claimsJson, key);
    this.signing.ns += process.hrtime.bigint() - started;
    this.signing.count++;
    return jwt;
  }

  /** A signer for one delivery round or poll answer: queued SETs whose key left the JWKS are signed again. */
  private deliverySigner(): DeliverySigner {
    return new DeliverySigner(this.deps.keys, (jwt, key) => {
      const started = process.hrtime.bigint();
      const signed = resignSet(jwt, key);
      this.signing.ns += process.hrtime.bigint() - started;
      this.signing.count++;
      this.resigned++;
      return signed;
    });
  }

  private loggedResigned(streamId: string, signer: DeliverySigner): void {
    if (signer.resigned === 0) return;
    this.deps.logger.info(
      { stream: streamId, resigned: signer.resigned, kid: this.deps.keys.signingKey().kid, code: 'SSF_SET_RESIGNED' },
      'queued SETs whose key is no longer published were signed again with the current key',
    );
  }

  private async refreshStreams(force = false): Promise<void> {
    const now = this.deps.clock();
    if (!force && now - this.streamsReadAt < STREAMS_REFRESH_MS) return;
    this.streamsReadAt = now;
    this.streamsVersion = await this.repo.streamsVersion();
    const records = await this.repo.streams();
    const next = new Map<string, CachedStream>();
    for (const record of records) {
      const config = record.config as unknown as StreamConfig;
      const subjects = await this.repo.subjectRows(record.id);
      next.set(record.id, {
        record,
        config,
        delivered: new Set(deliveredOf(config.events_requested)),
        included: subjects.filter((s) => s.key.startsWith('+')).map((s) => s.subject as SubjectId),
        excluded: subjects.filter((s) => s.key.startsWith('-')).map((s) => s.subject as SubjectId),
      });
    }
    this.streams = next;
  }

  // ---- fan-out ----

  private scheduleFlush(): void {
    if (this.flushScheduled || this.stopped) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      if (this.flushing !== undefined || this.pending.length === 0) return;
      this.flushing = (async () => {
        try {
          while (this.pending.length > 0 && !this.stopped) {
            const batch = this.pending.splice(0, FANOUT_BATCH).filter((e) => e.cursor > this.processed);
            await this.process(batch);
          }
        } catch (error) {
          if (error instanceof FanoutLeaseLost) {
            // Another node maps from the stored cursor now: this one drops what it had not queued.
            this.loseFanout();
          } else {
            // Nothing of the unit was committed (e.g. PostgreSQL ended its session: idle in it past the lease, see
            // `unit`). The events stay in the log and the cursor did not move, but the batch left `pending`:
            // mapping the next batch would write the cursor past it. So this node stops mapping and drops what it
            // had not queued; its next sweep, if it still holds the lease, maps again from the stored cursor (as a
            // node taking the lease over does), else the holder does.
            this.deps.logger.error({ err: error, code: 'SSF_FANOUT_FAILED' }, 'queueing Shared Signals events failed');
            this.fanoutHolder = false;
            this.pending = [];
          }
        } finally {
          this.flushing = undefined;
          if (this.pending.length > 0) this.scheduleFlush();
        }
      })();
    });
  }

  /**
   * A unit of work of the transmitter: the fan-out's (the SETs and the cursor, fenced on the lease), a delivery
   * round's commit (queue rows removed, the stream's lease renewed), a stream's status or verification change. On
   * PostgreSQL it first bounds how long it may stay idle: a node frozen while the unit is open (a pause, a stopped
   * VM) holds the rows it wrote — the cursor's row, the queued rows' keys and the fan-out lease's row; a stream's
   * row, its lease and queue rows — and the other nodes' units wait for them. The server ends the session after
   * `leaseSeconds` idle in the unit (`idle_in_transaction_session_timeout`; the pool's own bound, twice the statement
   * timeout, if that is shorter), by when a lease the unit renews (fan-out, delivery) has expired: the node taking
   * over proceeds within about the lease plus the sweep (before, after the pool's bound, then 30 s). A healthy unit never idles that long (its statements run back to back; the
   * signing and the pushes are done before it). The node that wakes finds its connection ended (the unit's next
   * statement or COMMIT fails; pg's pool drops that client) and nothing of the unit committed; a fan-out unit
   * then stops mapping (scheduleFlush) and maps no event twice (the fence). SQLite: one writer in one process,
   * nobody else waits.
   */
  private unit<T>(fn: (tx: Store) => Promise<T>): Promise<T> {
    return this.deps.store.transaction(async (tx) => {
      await this.repo.in(tx).boundIdleInUnit(this.leaseMs);
      return fn(tx);
    });
  }

  private async siteOf(consoleId: string): Promise<void> {
    if (this.sites.has(consoleId)) return;
    const console = await this.deps.store.consoles.get(consoleId);
    this.sites.set(consoleId, console?.site ?? null);
  }

  private async process(batch: StoredEvent[]): Promise<void> {
    if (batch.length === 0) return;
    // A stream created (or changed) on another node since the last read: read the streams again before
    // mapping, or the events after its creation would pass it by (the cursor moves on). One small read.
    await this.refreshStreams((await this.repo.streamsVersion()) !== this.streamsVersion);
    const streams = [...this.streams.values()].filter((s) => s.record.status !== 'disabled' && s.delivered.size > 0);
    const rows: QueueInsert[] = [];
    const touched = new Set<string>();
    if (streams.length > 0) {
      for (const event of batch) if (event.subject.console !== undefined) await this.siteOf(event.subject.console);
      // The ring as the store has it (read at most 5 s ago): not the key a node idle for days held then.
      await this.deps.keys.fresh();
      const issuer = this.issuer;
      const signingKey = this.deps.keys.signingKey();
      const ctx = { issuer, siteOf: (id: string) => this.sites.get(id) ?? undefined };
      for (const event of batch) {
        const mapped = mapEvent(event, ctx);
        if (mapped === undefined) continue;
        // The SETs of one event to several streams differ only in `aud` and `jti`: built, checked and
        // serialised once (the first stream that takes it), each stream's claims then one string.
        let encoder: ReturnType<typeof setClaimsEncoder> | undefined;
        let key: string | undefined;
        for (const stream of streams) {
          if (!stream.delivered.has(mapped.type)) continue;
          if (event.receivedAt < stream.record.createdAt) continue;
          if (!this.allows(stream, mapped.subject)) continue;
          encoder ??= setClaimsEncoder({
            iss: issuer,
            aud: stream.config.aud,
            type: mapped.type,
            event: mapped.event,
            subject: mapped.subject,
            txn: txnOf(event),
          });
          key ??= subjectKey(mapped.subject);
          // A burst (a batch of 1,000 events to 4 streams is 4,000 RS256 signatures, over a second of CPU) must
          // not hold the event loop: the consoles' sockets and the other requests of this node go on between.
          if (rows.length % SIGN_SLICE === SIGN_SLICE - 1) await new Promise((resolve) => setImmediate(resolve));
          const jti = randomUUID();
          rows.push({
            streamId: stream.record.id,
            source: event.id,
            jti,
            subjectKey: key,
            setJwt: this.signJson(encoder.encode(stream.config.aud, jti), signingKey),
            recordedAt: event.receivedAt,
          });
          touched.add(stream.record.id);
        }
      }
    }
    const last = batch[batch.length - 1]?.cursor ?? this.processed;
    const now = this.deps.clock();
    // Nothing to queue: the cursor is written at most every CURSOR_LAZY_MS (no extra transaction per commit of
    // the backend; after a crash the next start maps those events again, which queues nothing either).
    if (rows.length > 0 || now - this.cursorWrittenAt >= CURSOR_LAZY_MS || this.stopped) {
      // Inserted stream by stream (each stream's rows in event order; the order across streams means
      // nothing): a delivery round deletes one stream's SETs, which then fill whole pages of the queue
      // table rather than a quarter of each page (4 streams), so the round's commit writes a quarter of the
      // pages to the WAL and empty pages are freed rather than rewritten.
      if (touched.size > 1) rows.sort((a, b) => (a.streamId < b.streamId ? -1 : a.streamId > b.streamId ? 1 : 0));
      await this.unit(async (tx) => {
        const repo = this.repo.in(tx);
        await repo.enqueue(rows, now);
        const stored = Number((await tx.meta.get(CURSOR_KEY)) ?? 0);
        if (last > stored) await tx.meta.set(CURSOR_KEY, String(last));
        // Fenced: a node that stalled past its lease (a pause, a frozen VM) while another took the fan-out over
        // would otherwise queue, when it wakes, a second SET (another jti) for events the new holder mapped and
        // delivered already, after the later ones of the same subject. Last, so the lease row is locked only
        // until the commit; it renews the lease too.
        if (!(await repo.renewNamedLease(FANOUT_LEASE, this.deps.nodeId, now + this.leaseMs))) {
          throw new FanoutLeaseLost();
        }
      });
      this.cursorWrittenAt = now;
    }
    if (last > this.processed) this.processed = last;
    for (const id of touched) this.kick(id);
  }

  private allows(stream: CachedStream, subject: SubjectId): boolean {
    if (stream.excluded.some((f) => subjectMatches(subject, f))) return false;
    if (stream.config.default_subjects === 'NONE') return stream.included.some((f) => subjectMatches(subject, f));
    return true;
  }

  // ---- push delivery ----

  /** Delivers a stream's queue now (push) or wakes its long polls (poll). */
  kick(streamId: string): void {
    if (this.stopped) return;
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    if (stream.config.delivery.method === POLL_METHOD) {
      this.pollWaiters.emit(streamId);
      return;
    }
    if (stream.record.status !== 'enabled') return;
    if (this.delivering.has(streamId)) {
      this.again.add(streamId);
      return;
    }
    const run = this.deliver(stream)
      .catch((error: unknown) =>
        this.deps.logger.warn(
          { err: error, stream: streamId, code: 'SSF_DELIVERY_FAILED' },
          'Shared Signals delivery round failed',
        ),
      )
      .finally(() => {
        this.delivering.delete(streamId);
        if (this.again.delete(streamId)) this.kick(streamId);
      });
    this.delivering.set(streamId, run);
  }

  /**
   * Starts a sweep unless one is still running. Each sweep's statements wait for a connection and for the lease's
   * row: while another session holds that row (a node frozen inside its fan-out unit, up to `leaseSeconds`), a
   * sweep a second would hold one more of the pool's connections each second, until the statement timeout, and
   * starve the node's sign-ins and batches.
   */
  private sweepOnce(): Promise<void> {
    this.sweeping ??= this.sweep().finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  private async sweep(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.holdFanout();
      await this.refreshStreams();
      const now = this.deps.clock();
      if (now - this.prunedAt > 3600_000) {
        this.prunedAt = now;
        await this.repo.pruneLatency(now - LATENCY_KEEP_MS);
      }
      for (const stream of this.streams.values()) {
        if (stream.config.delivery.method === PUSH_METHOD && stream.record.status === 'enabled')
          this.kick(stream.record.id);
      }
    } catch (error) {
      this.deps.logger.warn({ err: error }, 'Shared Signals sweep failed');
    }
  }

  private async deliver(stream: CachedStream): Promise<void> {
    const { clock, nodeId, config } = this.deps;
    const id = stream.record.id;
    const delivery = stream.config.delivery;
    if (delivery.method !== PUSH_METHOD) return;
    /** When the last round's commit renewed the lease (the next round then needs no statement of its own). */
    let renewedAt = Number.NEGATIVE_INFINITY;
    while (!this.stopped) {
      const now = clock();
      const fresh = now >= renewedAt && now - renewedAt < this.leaseMs / 3;
      if (!fresh && !(await this.repo.takeLease(id, nodeId, now, now + this.leaseMs))) return;
      const rows = await this.repo.head(id, HEAD_BATCH);
      if (rows.length === 0) {
        await this.repo.releaseLease(id, nodeId);
        return;
      }
      // Which keys are published, as the store has the ring (read at most 5 s ago). Unreadable: nothing is sent (a
      // SET is judged and signed only against the ring the store has); the round gives its lease back, says why on
      // the stream, and tries again shortly.
      try {
        await this.deps.keys.fresh();
      } catch (cause) {
        await this.repo.releaseLease(id, nodeId);
        await this.repo.recordFailing(
          id,
          clock(),
          `signing key ring unreadable: ${(cause as Error).message}`.slice(0, 300),
        );
        this.wakeAt(id, clock() + Math.min(config.retryMaxMs, RING_RETRY_MS));
        return;
      }
      const signer = this.deliverySigner();
      // A slow receiver may hold a round longer than the lease: renew it meanwhile; if another node took it
      // (this one stalled), post nothing more: the other delivers from the queue head.
      // One renewal at a time, as the sweep: a renewal waiting for the stream's row holds a connection. The round
      // waits for one still in flight when it ends, so that it cannot take the lease again after it is given back.
      let lost = false;
      let renewing: Promise<void> | undefined;
      const renewal = setInterval(() => {
        if (renewing !== undefined) return;
        const at = clock();
        renewing = this.repo
          .takeLease(id, nodeId, at, at + this.leaseMs)
          .then((held) => void (lost ||= !held))
          .catch(() => undefined)
          .finally(() => (renewing = undefined));
      }, this.leaseMs / 3);
      renewal.unref();
      // Each subject's SETs in queue order, from its head, stopping at its first failure or a SET not yet due.
      const bySubject = new Map<string, QueueRow[]>();
      for (const row of rows) {
        const list = bySubject.get(row.subjectKey) ?? [];
        list.push(row);
        bySubject.set(row.subjectKey, list);
      }
      const delivered: QueueRow[] = [];
      const latencies: number[] = [];
      let failed = false;
      let nextDue = Infinity;
      const lanes = [...bySubject.values()];
      const work = async () => {
        for (let lane = lanes.shift(); lane !== undefined && !lost; lane = lanes.shift()) {
          for (const row of lane) {
            if (lost || this.stopped) break;
            if (row.nextAttemptAt > clock()) {
              nextDue = Math.min(nextDue, row.nextAttemptAt);
              break;
            }
            // As queued, unless its key has left the JWKS (a stream paused past the overlap): then signed again.
            let jwt = row.setJwt;
            let error: string | undefined;
            if (!signer.asQueued(jwt)) {
              try {
                jwt = await signer.resign(jwt);
              } catch (cause) {
                error = `not signed again: ${(cause as Error).message}`.slice(0, 300);
              }
            }
            error ??= await this.push(delivery, jwt);
            if (error === undefined) {
              this.pushed++;
              delivered.push(row);
              latencies.push(Math.max(0, clock() - (row.recordedAt ?? row.createdAt)));
              continue;
            }
            failed = true;
            const attempts = row.attempts + 1;
            const backoff = Math.min(config.retryMaxMs, config.retryBaseMs * 2 ** Math.min(attempts - 1, 30));
            const at = clock() + Math.round(backoff * (0.5 + Math.random() * 0.5));
            nextDue = Math.min(nextDue, at);
            // A SET signed again is kept so (its retry does not sign it again).
            await this.repo.retryLater(row.seq, attempts, at, error, jwt === row.setJwt ? undefined : jwt);
            await this.repo.recordFailing(id, clock(), `${row.jti}: ${error}`);
            break;
          }
        }
      };
      try {
        await Promise.all(Array.from({ length: Math.min(config.pushConcurrency, lanes.length) }, work));
      } finally {
        clearInterval(renewal);
        await renewing;
        this.loggedResigned(id, signer);
      }
      if (delivered.length > 0) {
        // One unit: the admin view never shows an empty queue with the last error still on it.
        const at = clock();
        await this.unit(async (tx) => {
          const repo = this.repo.in(tx);
          await repo.remove(
            id,
            delivered.map((r) => r.seq),
          );
          await repo.recordDelivered(id, delivered.length, at);
          await repo.recordLatency(id, latencies, at);
          // The lease renewed in the same commit: the next round starts without a statement (and a flush) of its own.
          if (await repo.takeLease(id, nodeId, at, at + this.leaseMs)) renewedAt = at;
          else lost = true;
          const own = this.streamSubjectKey(id);
          if (delivered.some((r) => r.subjectKey === own)) {
            await repo.markVerified(
              id,
              delivered.map((r) => r.jti),
              at,
            );
          }
        });
      }
      if (lost) return;
      if (failed) await this.pauseIfDownTooLong(id);
      if (delivered.length === 0 || failed || nextDue !== Infinity) {
        // Nothing more can go now: come back when the first retry is due.
        await this.repo.releaseLease(id, nodeId);
        if (nextDue !== Infinity) this.wakeAt(id, nextDue);
        return;
      }
    }
  }

  /** The subject key of a stream's own events (verification, stream-updated). */
  private streamSubjectKey(id: string): string {
    return subjectKey({ format: 'opaque', id });
  }

  private wakeAt(id: string, at: number): void {
    clearTimeout(this.wakeups.get(id));
    const timer = setTimeout(
      () => {
        this.wakeups.delete(id);
        this.kick(id);
      },
      Math.max(0, at - this.deps.clock()),
    );
    timer.unref();
    this.wakeups.set(id, timer);
  }

  private async pauseIfDownTooLong(id: string): Promise<void> {
    const record = await this.repo.stream(id);
    if (record === undefined || record.status !== 'enabled' || record.failingSince === null) return;
    const limit = this.deps.config.pauseAfterSeconds * 1000;
    if (this.deps.clock() - record.failingSince < limit) return;
    const reason =
      `receiver unreachable or refusing since ${new Date(record.failingSince).toISOString()}: ${record.lastError ?? ''}`.slice(
        0,
        500,
      );
    this.deps.logger.warn(
      { stream: id, code: 'SSF_STREAM_PAUSED' },
      'a Shared Signals receiver failed past the limit: stream paused',
    );
    await this.setStatus(id, 'paused', reason, AUTOMATIC);
  }

  /** One RFC 8935 push; undefined when the receiver accepted it (202), else why not. */
  private async push(
    delivery: Extract<StreamConfig['delivery'], { method: typeof PUSH_METHOD }>,
    jwt: string,
  ): Promise<string | undefined> {
    try {
      const { status, text } = await this.client.post(endpointOf(delivery), jwt);
      if (status === 202) return undefined;
      if (status === 400) {
        const parsed = SetErrorBodySchema.safeParse(safeJson(text));
        if (parsed.success) {
          const description = parsed.data.description === undefined ? '' : `: ${parsed.data.description}`;
          return `400 ${parsed.data.err}${description}`.slice(0, 300);
        }
      }
      return `HTTP ${status}`;
    } catch (error) {
      return `unreachable: ${(error as Error).message}`.slice(0, 300);
    }
  }

  // ---- poll delivery (RFC 8936) ----

  /** SETs handed out to a poll whose answer could not be sent: handed out again at the next poll. */
  async unhand(streamId: string, jtis: string[]): Promise<void> {
    await this.repo.unmarkPolled(streamId, jtis);
  }

  /**
   * `gone`: the poller hung up (a long poll abandoned): nothing is handed out to it (else what it took
   * would wait `pollRedeliverSeconds` before the receiver's next poll got it).
   */
  async poll(
    receiver: ReceiverView,
    streamId: string,
    body: z.infer<typeof PollRequestSchema>,
    gone?: AbortSignal,
  ): Promise<Record<string, unknown>> {
    const stream = await this.owned(receiver, streamId);
    const config = stream.config as unknown as StreamConfig;
    if (config.delivery.method !== POLL_METHOD) {
      throw new BatonError('SSF_STREAM_INVALID', `Stream "${streamId}" is delivered by push, not poll`);
    }
    if (body.ack !== undefined && body.ack.length > 0) {
      await this.repo.ack(stream.id, body.ack);
      if (stream.verifyJti !== null && stream.verifyAcceptedAt === null) {
        await this.repo.markVerified(stream.id, body.ack, this.deps.clock());
      }
    }
    if (body.setErrs !== undefined) {
      const jtis = Object.keys(body.setErrs);
      for (const [jti, err] of Object.entries(body.setErrs)) {
        this.deps.logger.warn(
          { stream: stream.id, jti, err: err.err, description: err.description },
          'a poll receiver refused a SET',
        );
        await this.repo.recordFailing(
          stream.id,
          this.deps.clock(),
          `${jti}: ${err.err}${err.description === undefined ? '' : `: ${err.description}`}`,
        );
      }
      // Reported as not processable: not handed out again (RFC 8936 §2.4.2); the error stays on the stream.
      await this.repo.ack(stream.id, jtis);
    }
    const max = body.maxEvents ?? 100;
    const redeliverMs = this.deps.config.pollRedeliverSeconds * 1000;
    const deadline = this.deps.clock() + this.deps.config.pollWaitSeconds * 1000;
    // A paused or disabled stream hands out nothing (SSF 1.0 §8.1.2.1). A long poll on it is held like an empty one,
    // until its deadline or the stream is enabled again (then it gets what was held), instead of answered at once: a
    // receiver looping on long polls would otherwise ask again and again without pause.
    const held =
      max !== 0 &&
      stream.status !== 'enabled' &&
      body.returnImmediately === false &&
      (await this.pausedPollWait(stream.id, deadline, gone));
    if (max === 0 || (stream.status !== 'enabled' && !held)) {
      return {
        sets: {},
        moreAvailable:
          stream.status === 'enabled' && (await this.repo.hasPollable(stream.id, this.deps.clock(), redeliverMs)),
      };
    }
    for (;;) {
      if (gone?.aborted === true) return { sets: {}, moreAvailable: false };
      // Which keys are published, as the store has the ring (read at most 5 s ago).
      await this.deps.keys.fresh();
      const polledAt = this.deps.clock();
      const rows = await this.repo.takeForPoll(stream.id, max, polledAt, redeliverMs, this.leaseMs);
      if (rows.length > 0 || body.returnImmediately !== false || this.stopped) {
        const sets = rows.length === 0 ? [] : await this.handOut(stream.id, rows, polledAt);
        if (rows.length > 0) await this.repo.recordDelivered(stream.id, 0, this.deps.clock());
        return {
          sets: Object.fromEntries(sets),
          moreAvailable:
            rows.length === max && (await this.repo.hasPollable(stream.id, this.deps.clock(), redeliverMs)),
        };
      }
      const left = deadline - this.deps.clock();
      if (left <= 0) return { sets: {}, moreAvailable: false };
      // Woken by this node's own fan-out (every node maps every event), or every second for another's.
      await this.pollWake(stream.id, Math.min(left, 1000), gone);
      // Paused or disabled meanwhile (on any node): what is queued from now on is held, not handed out to this poll.
      const now = await this.repo.stream(stream.id);
      if (now === undefined || now.status !== 'enabled') return { sets: {}, moreAvailable: false };
    }
  }

  /** Resolves after `ms`, or sooner when the stream is kicked (an event, a change of status), Baton stops or the poller hangs up. */
  private pollWake(streamId: string, ms: number, gone: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.pollWaiters.off(streamId, done);
        this.pollWaiters.off('stop', done);
        gone?.removeEventListener('abort', done);
        resolve();
      };
      gone?.addEventListener('abort', done);
      const timer = setTimeout(done, ms);
      this.pollWaiters.on(streamId, done);
      this.pollWaiters.on('stop', done);
    });
  }

  /**
   * Holds a long poll on a stream that is not enabled until `deadline` (false), until it is enabled again (true: a
   * kick on this node, or the stored status read again every second for another node's change), or until Baton stops
   * or the poller hangs up (false).
   */
  private async pausedPollWait(streamId: string, deadline: number, gone: AbortSignal | undefined): Promise<boolean> {
    const over = (): boolean => gone?.aborted === true || this.stopped;
    for (;;) {
      const left = deadline - this.deps.clock();
      if (left <= 0 || over()) return false;
      await this.pollWake(streamId, Math.min(left, 1000), gone);
      const now = await this.repo.stream(streamId);
      if (now === undefined) return false;
      if (now.status === 'enabled') return !over();
    }
  }

  /**
   * The SETs of a poll's answer, `[jti, SET]` in queue order: each as queued, or signed again if its key has left the
   * JWKS (then written back, so its redelivery is not signed again). A ring that cannot be read fails the poll, and
   * its SETs are due at the next poll at once.
   */
  private async handOut(streamId: string, rows: QueueRow[], polledAt: number): Promise<[string, string][]> {
    const signer = this.deliverySigner();
    const sets: [string, string][] = [];
    const replaced: { seq: number; setJwt: string }[] = [];
    try {
      for (const row of rows) {
        const jwt = signer.asQueued(row.setJwt) ? row.setJwt : await signer.resign(row.setJwt);
        if (jwt !== row.setJwt) replaced.push({ seq: row.seq, setJwt: jwt });
        sets.push([row.jti, jwt]);
      }
    } catch (error) {
      // Only this poll's marks (another node may have handed the same rows out since): due again at the next poll.
      await this.repo
        .unmarkPolled(
          streamId,
          rows.map((r) => r.jti),
          polledAt,
        )
        .catch(() => undefined);
      throw error;
    }
    if (replaced.length > 0) {
      this.loggedResigned(streamId, signer);
      await this.repo
        .replaceSetJwts(streamId, replaced)
        .catch((error: unknown) =>
          this.deps.logger.warn({ err: error, stream: streamId }, 'keeping SETs signed again in the queue failed'),
        );
    }
    return sets;
  }
}

/** The percentile `p` (0–1) of a histogram, as its bucket's upper bound (ms); null when empty. */
function percentile(counts: Map<number, number>, p: number): number | null {
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = Math.ceil(p * total);
  let seen = 0;
  for (let bucket = 0; bucket < LATENCY_BOUNDS_MS.length; bucket++) {
    seen += counts.get(bucket) ?? 0;
    if (seen >= rank) {
      const bound = LATENCY_BOUNDS_MS[bucket] ?? Number.POSITIVE_INFINITY;
      // The last bucket has no upper bound: its lower one, as "more than".
      return Number.isFinite(bound) ? bound : (LATENCY_BOUNDS_MS[bucket - 1] ?? 0);
    }
  }
  return null;
}

/**
 * Delivery latency (event recorded → SET accepted by the receiver) for the admin's picture: p50 and
 * p99 per minute, and over the whole span. Percentiles are histogram bucket bounds ("at most").
 */
function latencySummary(minutes: LatencyMinute[]): Record<string, unknown> {
  const all = new Map<number, number>();
  for (const m of minutes) for (const [b, c] of m.counts) all.set(b, (all.get(b) ?? 0) + c);
  const countOf = (counts: Map<number, number>) => [...counts.values()].reduce((a, b) => a + b, 0);
  return {
    windowMinutes: 60,
    count: countOf(all),
    p50Ms: percentile(all, 0.5),
    p99Ms: percentile(all, 0.99),
    minutes: minutes.map((m) => ({
      minute: m.minute,
      count: countOf(m.counts),
      p50Ms: percentile(m.counts, 0.5),
      p99Ms: percentile(m.counts, 0.99),
    })),
  };
}

function deliveredOf(requested: readonly string[]): string[] {
  const supported = new Set(EVENTS_SUPPORTED);
  return [...new Set(requested.filter((t) => supported.has(t)))];
}

function statusView(stream: StreamRecord): Record<string, unknown> {
  return {
    stream_id: stream.id,
    status: stream.status,
    ...(stream.statusReason === null ? {} : { reason: stream.statusReason }),
  };
}

function invalid(path: string, message: string): BatonError {
  return new BatonError('SSF_STREAM_INVALID', message, { issues: [{ path, message }] });
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

function checkDelivery(delivery: z.infer<typeof DeliverySchema>): void {
  if (delivery.method !== PUSH_METHOD) return;
  const url = new URL(delivery.endpoint_url);
  if (url.protocol !== 'https:' && !LOOPBACK.has(url.hostname)) {
    throw invalid('delivery.endpoint_url', 'a push endpoint must be https (http only on loopback)');
  }
  if (url.username !== '' || url.password !== '') {
    throw invalid('delivery.endpoint_url', 'credentials go in authorization_header, not in the URL');
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** A stream's push endpoint, parsed once (not per SET). */
const endpoints = new WeakMap<object, PushEndpoint>();

function endpointOf(delivery: { endpoint_url: string; authorization_header?: string | undefined }): PushEndpoint {
  let endpoint = endpoints.get(delivery);
  if (endpoint === undefined) {
    endpoint = pushEndpoint(delivery.endpoint_url, delivery.authorization_header);
    endpoints.set(delivery, endpoint);
  }
  return endpoint;
}
