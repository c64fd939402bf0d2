import { randomBytes, randomUUID } from 'node:crypto';
import { CompiledQuery } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import { z } from 'zod';
import { lagAwareTimer } from '../lag-aware-timer.js';
import { NOTIFY_WITH_COMMIT } from '../store/postgres-store.js';
import { lagAwareClient, waitForClient, withReadTimeout } from '../store/read-timeout.js';

/**
 * The cluster bus: how one node tells every node (itself included) that something changed in the
 * store. It carries only small pointers (an epoch, a policy version, an id); a subscriber reads the
 * rest from the store. Notifications are a hint, never the state: a node that missed some (its
 * connection dropped, it restarted) is told to catch up from the store through `onResync`.
 *
 * Two implementations of one port:
 * - `InProcessBus` for embedded SQLite (one process): delivery on a microtask.
 * - `PostgresBus` for a cluster on PostgreSQL: `LISTEN`/`NOTIFY` on one channel, one dedicated
 *   connection per node for `LISTEN`, reconnect with backoff and jitter, resync after each connect.
 *
 * PostgreSQL semantics this relies on (NOTIFY reference): a NOTIFY inside a transaction is sent at
 * COMMIT and never on ROLLBACK; notifications of one transaction arrive in the order sent and
 * transactions' notifications in commit order; identical (channel, payload) pairs within one
 * transaction may be folded into one; the payload must be shorter than 8000 bytes; a session that is
 * not connected (or has not yet run LISTEN) receives nothing and nothing is kept for it.
 */

/** The one PostgreSQL channel every node listens on. */
export const BUS_CHANNEL = 'baton_cluster';
/** PostgreSQL refuses payloads of 8000 bytes or more; pointers are far below, this guards the rest. */
export const MAX_PAYLOAD_BYTES = 7900;
const WIRE_VERSION = 1;

const Id = z.string().min(1).max(200);
const Count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** Every topic and the pointer it carries. Closed: a topic not listed here is refused, sent or received. */
export const TOPIC_POINTERS = {
  /** A revocation was stored: its epoch (consoles catch up from the store's revocations since theirs). */
  revocation: z.strictObject({ epoch: Count }),
  /** A policy version was published: reload the current policy from the store. */
  policy: z.strictObject({ version: z.number().int().positive().max(Number.MAX_SAFE_INTEGER) }),
  /** A command (end-session) was stored for a console: deliver it if that console is connected here. */
  command: z.strictObject({ consoleId: Id, id: Id }),
  /**
   * A console connected to `nodeId`: any older socket of that console on another node is closed (newest
   * wins). `helloAt` (ms, the announcing node's clock) only on an announcement sent again after a
   * reconnect, whose first copy may never have gone out: it closes only a socket whose hello was earlier.
   */
  'console-connected': z.strictObject({ consoleId: Id, nodeId: Id, connectionId: Id, helloAt: Count.optional() }),
  /**
   * Several consoles connected to `nodeId`, in the order they connected: `console-connected` for
   * each, in one notification (a burst of reconnects after a failover). [consoleId, connectionId]
   * pairs, or [consoleId, connectionId, helloAt] for announcements sent again.
   */
  'consoles-connected': z.strictObject({
    nodeId: Id,
    connections: z
      .array(z.union([z.tuple([Id, Id]), z.tuple([Id, Id, Count])]))
      .min(1)
      .max(1_000),
  }),
  /** Events were stored up to `cursor`: live followers read from their last cursor. */
  'admin-stream': z.strictObject({ cursor: Count }),
  /** The authenticator metadata (models, FIDO MDS) changed: reload it. */
  authenticators: z.strictObject({}),
  /**
   * An admin session ended (sign-out, revocation, expiry, role removed, its passkey suspended as a possible
   * copy), an admin API token was revoked (`api-token:<id>`), or the bootstrap token was retired
   * (`admin:bootstrap`): every node closes the live streams it holds for it at once.
   */
  'admin-session-ended': z.strictObject({ sessionId: Id }),
} as const;

export type Topic = keyof typeof TOPIC_POINTERS;
export type Pointer<T extends Topic> = z.infer<(typeof TOPIC_POINTERS)[T]>;
export const TOPICS = Object.keys(TOPIC_POINTERS) as Topic[];

export interface Delivery {
  /**
   * The bus that published it: a random id per bus instance (so per process), never the configured
   * node id, which two processes may share by mistake (`ClusterBus.origin`).
   */
  origin: string;
  /** The publisher's node id, for people (logs); absent from an older node. */
  node?: string;
  /** True when `origin` is this bus: this process published it. */
  local: boolean;
}

export type BusHandler<T extends Topic> = (pointer: Pointer<T>, delivery: Delivery) => void | Promise<void>;

export interface ResyncInfo {
  /**
   * `connected` the first time, `reconnected` after a drop (notifications may have been missed),
   * `periodic` with `resyncEveryMs` (the safety net for a pointer published after a commit by a node
   * that died before it could send it).
   */
  reason: 'connected' | 'reconnected' | 'periodic';
  /** How long the bus was not listening, for a reconnect. */
  downMs?: number;
}
export type ResyncHandler = (info: ResyncInfo) => void | Promise<void>;

export interface BusStatus {
  /** Listening and caught up (the resync after the last connect finished): a notification published now reaches this node. */
  connected: boolean;
  /** Since when `connected` has had its current value (bus clock, ms). */
  since: number;
  /** The last connection error, while disconnected. */
  lastError?: string;
}

/**
 * The caller's open transaction, for a publish that must happen only if it commits.
 * `pg`: the transaction's PostgreSQL connection (the NOTIFY is sent by COMMIT and dropped by ROLLBACK).
 * `after-commit`: a hook that runs a callback once the transaction committed (never on rollback).
 */
export type BusTransaction =
  | { readonly kind: 'pg'; query(text: string, values: unknown[]): Promise<unknown> }
  | { readonly kind: 'after-commit'; afterCommit(fn: () => void): void };

/** The transaction's own connection: `publish` sends `pg_notify` on it, so COMMIT delivers and ROLLBACK drops. */
export function pgTransaction(client: { query(text: string, values: unknown[]): Promise<unknown> }): BusTransaction {
  return { kind: 'pg', query: (text, values) => client.query(text, values) };
}

/**
 * A Kysely transaction on PostgreSQL (`db.transaction().execute((trx) => …)`): the NOTIFY runs in it,
 * so it is sent by COMMIT and dropped by ROLLBACK.
 */
export function kyselyTransaction(trx: { executeQuery(query: CompiledQuery): Promise<unknown> }): BusTransaction {
  return { kind: 'pg', query: (text, values) => trx.executeQuery(CompiledQuery.raw(text, values)) };
}

/** A transaction that can run a callback after it commits (the SQLite unit of work). */
export function afterCommitTransaction(afterCommit: (fn: () => void) => void): BusTransaction {
  return { kind: 'after-commit', afterCommit };
}

export interface ClusterBus {
  readonly kind: 'in-process' | 'postgres';
  /** This node's id as configured: the name operators see (logs, the node list). Sent with each message. */
  readonly nodeId: string;
  /**
   * This bus's own id, random per instance: the `origin` of what it publishes, and what "this came
   * from me" is decided on. Two processes given the same node id still tell their messages apart
   * (each logs NODE_ID_DUPLICATE on hearing the other).
   */
  readonly origin: string;
  /**
   * Starts listening. Resolves once the bus listens for the first time (PostgreSQL: retrying with
   * backoff meanwhile) and the first resync ran; `close()` before then rejects it.
   */
  start(): Promise<void>;
  /**
   * Publishes a pointer to every node, this one included. Refuses (throws) an unknown topic or an
   * invalid pointer: that is a bug in the caller. With `tx`, delivered only if `tx` commits.
   */
  publish<T extends Topic>(topic: T, pointer: Pointer<T>, tx?: BusTransaction): Promise<void>;
  /** Returns the unsubscribe function. A handler that throws or rejects is logged; the bus goes on. */
  subscribe<T extends Topic>(topic: T, handler: BusHandler<T>): () => void;
  /**
   * Runs after every (re)connect: catch up from the store, never from memory. Returns the unsubscribe
   * function. A handler that rejects fails the resync: the bus stays not connected (so the node goes
   * stale after its bound) and resyncs again with backoff until every handler succeeds.
   */
  onResync(handler: ResyncHandler): () => void;
  /** Called when `status().connected` changes. */
  onStatus(handler: (status: BusStatus) => void): () => void;
  status(): BusStatus;
  /** Malformed notifications dropped (and logged) since start: another process wrote off-contract payloads. */
  readonly dropped: number;
  /**
   * A round trip through the bus (publish a private ping, wait until this node's listener receives
   * it): the proof that a notification published now reaches this node. PostgreSQL: sent on the
   * listening connection itself, never through the store's pool (which a burst of requests may hold).
   * Resolves with the round trip in ms; rejects on timeout or when disconnected.
   */
  ping(timeoutMs: number): Promise<number>;
  /**
   * Catches up from the store again, not connected meanwhile: for when a ping did not come back
   * although the bus believes it listens (a half-open connection), or a subscriber could not apply a
   * pointer (its read of the store failed). PostgreSQL: drops the listening connection, which
   * reconnects and resyncs. In process: resyncs. Either way retried with backoff until a resync succeeds.
   */
  recycle(why: string): void;
  close(): Promise<void>;
}

export interface BusCommonOptions {
  nodeId: string;
  logger: Logger;
  clock?: () => number;
  /** Backoff between reconnect (or resync) attempts: jitter in [initialMs/2, min(maxMs, initialMs·2^attempt)]. */
  reconnect?: { initialMs?: number; maxMs?: number };
  random?: () => number;
}

interface Envelope {
  v: typeof WIRE_VERSION;
  /** A topic, or `ping` (private to the bus). */
  t: string;
  p?: unknown;
  /** The publishing bus (`ClusterBus.origin`). */
  o: string;
  /** The publishing node's configured id. */
  n?: string;
}

const EnvelopeSchema = z.object({
  v: z.literal(WIRE_VERSION),
  t: z.string().max(64),
  p: z.unknown().optional(),
  o: Id,
  n: Id.optional(),
});
const PingSchema = z.strictObject({ n: z.string().max(64) });

/** Validates a pointer on the way out; a bad one is the caller's bug. */
export function validatePointer<T extends Topic>(topic: T, pointer: unknown): Pointer<T> {
  const schema = (TOPIC_POINTERS as Record<string, z.ZodType>)[topic];
  if (schema === undefined) throw new Error(`Unknown cluster bus topic "${String(topic)}"`);
  const parsed = schema.safeParse(pointer);
  if (!parsed.success) {
    throw new Error(
      `Invalid pointer for cluster bus topic "${topic}": ${parsed.error.issues[0]?.message ?? 'invalid'}`,
    );
  }
  return parsed.data as Pointer<T>;
}

/** Encodes a message for the wire; throws if it would not fit in a NOTIFY payload. */
export function encodeEnvelope(topic: string, pointer: unknown, origin: string, node?: string): string {
  const envelope: Envelope = {
    v: WIRE_VERSION,
    t: topic,
    p: pointer,
    o: origin,
    ...(node === undefined ? {} : { n: node }),
  };
  const text = JSON.stringify(envelope);
  if (Buffer.byteLength(text) > MAX_PAYLOAD_BYTES) {
    throw new Error(
      `Cluster bus payload for "${topic}" is ${Buffer.byteLength(text)} bytes (max ${MAX_PAYLOAD_BYTES})`,
    );
  }
  return text;
}

type Decoded =
  | { kind: 'message'; topic: Topic; pointer: unknown; origin: string; node?: string }
  | { kind: 'ping'; nonce: string; origin: string; node?: string }
  | { kind: 'malformed'; why: string };

/** Decodes what another process wrote: anything off-contract is `malformed`, never thrown. */
export function decodeEnvelope(payload: string | undefined): Decoded {
  if (payload === undefined || payload === '') return { kind: 'malformed', why: 'empty payload' };
  let raw: unknown;
  try {
    raw = JSON.parse(payload);
  } catch {
    return { kind: 'malformed', why: 'not JSON' };
  }
  const envelope = EnvelopeSchema.safeParse(raw);
  if (!envelope.success) return { kind: 'malformed', why: `bad envelope: ${issue(envelope.error)}` };
  const { t, p, o, n } = envelope.data;
  const node = n === undefined ? {} : { node: n };
  if (t === 'ping') {
    const ping = PingSchema.safeParse(p);
    return ping.success
      ? { kind: 'ping', nonce: ping.data.n, origin: o, ...node }
      : { kind: 'malformed', why: 'bad ping' };
  }
  const schema = Object.hasOwn(TOPIC_POINTERS, t) ? (TOPIC_POINTERS as Record<string, z.ZodType>)[t] : undefined;
  if (schema === undefined) return { kind: 'malformed', why: `unknown topic "${t.slice(0, 64)}"` };
  const pointer = schema.safeParse(p);
  if (!pointer.success) return { kind: 'malformed', why: `bad pointer for "${t}": ${issue(pointer.error)}` };
  return { kind: 'message', topic: t as Topic, pointer: pointer.data, origin: o, ...node };
}

function issue(error: z.ZodError): string {
  const first = error.issues[0];
  return first === undefined ? 'invalid' : `${first.path.join('.') || '(root)'}: ${first.message}`;
}

/** Subscribers, resync handlers, status listeners and pings: what both implementations share. */
abstract class BaseBus implements ClusterBus {
  abstract readonly kind: 'in-process' | 'postgres';
  readonly nodeId: string;
  readonly origin = randomBytes(9).toString('base64url');
  protected readonly logger: Logger;
  protected readonly clock: () => number;
  private readonly backoffOptions: BusCommonOptions['reconnect'];
  private readonly random: () => number;
  /** Other buses heard using this node id (each logged once). */
  private readonly twins = new Set<string>();
  private readonly handlers = new Map<Topic, Set<BusHandler<Topic>>>();
  private readonly resyncHandlers = new Set<ResyncHandler>();
  private readonly statusHandlers = new Set<(status: BusStatus) => void>();
  private readonly pings = new Map<string, (receivedAt: number) => void>();
  protected current: BusStatus;
  /** Notifications dropped as malformed since start (for metrics and tests). */
  dropped = 0;

  protected constructor(options: BusCommonOptions) {
    if (Id.safeParse(options.nodeId).success === false) throw new Error('A cluster bus needs a node id');
    this.nodeId = options.nodeId;
    this.logger = options.logger;
    this.clock = options.clock ?? Date.now;
    this.backoffOptions = options.reconnect;
    this.random = options.random ?? Math.random;
    this.current = { connected: false, since: this.clock() };
  }

  /** The pause before retry number `attempt` (from 0): full jitter, doubling up to `reconnect.maxMs`. */
  protected backoff(attempt: number): number {
    const initial = this.backoffOptions?.initialMs ?? 100;
    const max = this.backoffOptions?.maxMs ?? 10_000;
    const ceiling = Math.min(max, initial * 2 ** Math.min(attempt, 30));
    return Math.round(initial / 2 + this.random() * (ceiling - initial / 2));
  }

  abstract start(): Promise<void>;
  abstract publish<T extends Topic>(topic: T, pointer: Pointer<T>, tx?: BusTransaction): Promise<void>;
  abstract close(): Promise<void>;
  abstract recycle(why: string): void;
  protected abstract sendPing(payload: string): Promise<void>;

  subscribe<T extends Topic>(topic: T, handler: BusHandler<T>): () => void {
    if (!Object.hasOwn(TOPIC_POINTERS, topic)) throw new Error(`Unknown cluster bus topic "${String(topic)}"`);
    let set = this.handlers.get(topic);
    if (set === undefined) this.handlers.set(topic, (set = new Set()));
    const h = handler as unknown as BusHandler<Topic>;
    set.add(h);
    return () => void set.delete(h);
  }

  onResync(handler: ResyncHandler): () => void {
    this.resyncHandlers.add(handler);
    return () => void this.resyncHandlers.delete(handler);
  }

  onStatus(handler: (status: BusStatus) => void): () => void {
    this.statusHandlers.add(handler);
    return () => void this.statusHandlers.delete(handler);
  }

  status(): BusStatus {
    return { ...this.current };
  }

  async ping(timeoutMs: number): Promise<number> {
    if (!this.current.connected) throw new Error(`cluster bus not connected${suffix(this.current.lastError)}`);
    const nonce = randomUUID();
    const sentAt = this.clock();
    let timer: NodeJS.Timeout | undefined;
    const arrived = new Promise<number>((resolve, reject) => {
      this.pings.set(nonce, resolve);
      // The verdict waits for one more turn of the loop's I/O: after this process was frozen, the timer runs before
      // the notification that came back meanwhile is read (a settled promise ignores the late reject).
      timer = setTimeout(
        () => setImmediate(() => reject(new Error(`cluster bus ping not received within ${timeoutMs} ms`))),
        timeoutMs,
      );
    });
    try {
      await Promise.race([this.sendPing(encodeEnvelope('ping', { n: nonce }, this.origin, this.nodeId)), arrived]);
      const receivedAt = await arrived;
      return receivedAt - sentAt;
    } finally {
      clearTimeout(timer);
      this.pings.delete(nonce);
    }
  }

  /** The payload this bus publishes for `topic` (validated): the same on both buses, so both refuse the same messages. */
  protected envelope<T extends Topic>(topic: T, pointer: Pointer<T>): string {
    return encodeEnvelope(topic, validatePointer(topic, pointer), this.origin, this.nodeId);
  }

  /** Handles one payload from the wire (or from this process): validated, then dispatched. */
  protected receive(payload: string | undefined): void {
    const decoded = decodeEnvelope(payload);
    if (decoded.kind !== 'malformed' && decoded.node === this.nodeId && decoded.origin !== this.origin) {
      this.twinHeard(decoded.origin);
    }
    switch (decoded.kind) {
      case 'malformed':
        this.dropped++;
        this.logger.warn(
          { node: this.nodeId, why: decoded.why, payload: payload?.slice(0, 200) },
          'cluster bus: malformed notification dropped',
        );
        return;
      case 'ping':
        // Another node's heartbeat is not for us; ours resolves the waiting ping.
        if (decoded.origin === this.origin) this.pings.get(decoded.nonce)?.(this.clock());
        return;
      case 'message':
        this.dispatch(decoded.topic, decoded.pointer as Pointer<Topic>, decoded.origin, decoded.node);
    }
  }

  /**
   * Another process publishes under this node id (a config copied to two hosts, two containers on one
   * host with host networking): the bus tells their messages apart by origin, but logs, the node list
   * and the registry row mix the two. Logged once per other process, at error level, for the operator.
   */
  private twinHeard(origin: string): void {
    if (this.twins.has(origin)) return;
    this.twins.add(origin);
    this.logger.error(
      { code: 'NODE_ID_DUPLICATE', node: this.nodeId, origin: this.origin, otherOrigin: origin },
      'cluster bus: another process uses this node id; give each node its own (nodeId in the config)',
    );
  }

  protected dispatch(topic: Topic, pointer: Pointer<Topic>, origin: string, node?: string): void {
    const set = this.handlers.get(topic);
    if (set === undefined) return;
    const delivery: Delivery = { origin, local: origin === this.origin, ...(node === undefined ? {} : { node }) };
    for (const handler of [...set]) {
      try {
        const result = handler(pointer, delivery);
        if (result instanceof Promise) {
          result.catch((error: unknown) => this.handlerFailed(topic, error));
        }
      } catch (error) {
        this.handlerFailed(topic, error);
      }
    }
  }

  private handlerFailed(topic: Topic, error: unknown): void {
    this.logger.error({ err: error, node: this.nodeId, topic }, 'cluster bus: subscriber failed');
  }

  protected setStatus(connected: boolean, lastError?: string): void {
    if (this.current.connected === connected && this.current.lastError === lastError) return;
    const changed = this.current.connected !== connected;
    this.current = {
      connected,
      since: changed ? this.clock() : this.current.since,
      ...(lastError === undefined ? {} : { lastError }),
    };
    if (!changed) return;
    for (const handler of [...this.statusHandlers]) {
      try {
        handler(this.status());
      } catch (error) {
        this.logger.error({ err: error, node: this.nodeId }, 'cluster bus: status listener failed');
      }
    }
  }

  /**
   * Runs every resync handler (concurrently) and waits for all. Rejects when any rejected (each is
   * logged): what it should have read may be missing here, so the caller stays not connected and retries.
   */
  protected async resync(info: ResyncInfo): Promise<void> {
    const handlers = [...this.resyncHandlers];
    const results = await Promise.allSettled(handlers.map(async (handler) => handler(info)));
    const failed = results.filter((result): result is PromiseRejectedResult => result.status === 'rejected');
    for (const result of failed) {
      this.logger.error({ err: result.reason, node: this.nodeId }, 'cluster bus: resync handler failed');
    }
    if (failed.length > 0) {
      throw new Error(`resync failed (${failed.length} of ${handlers.length} handlers): ${message(failed[0]!.reason)}`);
    }
  }
}

function suffix(error: string | undefined): string {
  return error === undefined ? '' : `: ${error}`;
}

/**
 * The bus of embedded SQLite mode: one process, so delivery is a call on a microtask (never inside
 * the publisher's stack). The contract is the PostgreSQL bus's: validated pointers, delivery only
 * after the transaction commits, resync on start.
 */
export class InProcessBus extends BaseBus {
  readonly kind = 'in-process' as const;
  private closed = false;
  private catchingUp: Promise<void> | undefined;
  private wakeRetry: (() => void) | undefined;

  constructor(options: BusCommonOptions) {
    super(options);
  }

  async start(): Promise<void> {
    if (this.closed) throw new Error('cluster bus is closed');
    if (this.current.connected) return;
    await this.catchUp('connected');
    if (!this.current.connected) throw new Error('cluster bus closed before it connected');
  }

  /** Resyncs until a resync succeeds (then connected), with backoff between failures; one run at a time. */
  private catchUp(reason: ResyncInfo['reason']): Promise<void> {
    this.catchingUp ??= (async () => {
      for (let attempt = 0; !this.closed; attempt++) {
        try {
          await this.resync({ reason });
          if (!this.closed) this.setStatus(true);
          return;
        } catch (error) {
          if (this.closed) return;
          this.setStatus(false, message(error));
          const wait = this.backoff(attempt);
          this.logger.warn(
            { node: this.nodeId, attempt: attempt + 1, retryInMs: wait, err: message(error) },
            'cluster bus: resync failed, retrying',
          );
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, wait);
            this.wakeRetry = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          this.wakeRetry = undefined;
        }
      }
    })().finally(() => (this.catchingUp = undefined));
    return this.catchingUp;
  }

  publish<T extends Topic>(topic: T, pointer: Pointer<T>, tx?: BusTransaction): Promise<void> {
    // Encoded as on the wire so both buses refuse the same messages (size, shape).
    const payload = this.envelope(topic, pointer);
    const send = () => {
      if (!this.closed) queueMicrotask(() => this.receive(payload));
    };
    if (tx === undefined) send();
    else if (tx.kind === 'after-commit') tx.afterCommit(send);
    else throw new Error('The in-process bus was given a PostgreSQL transaction (a wiring mistake)');
    return Promise.resolve();
  }

  /** Nothing to reconnect (delivery is a function call): resyncs, not connected until one succeeds. */
  recycle(why: string): void {
    if (this.closed || this.catchingUp !== undefined || !this.current.connected) return;
    this.logger.warn({ node: this.nodeId, why }, 'cluster bus: resyncing from the store again');
    this.setStatus(false, why);
    void this.catchUp('reconnected');
  }

  /** Test seam: delivers a raw payload as if another process had written it. */
  injectRaw(payload: string): void {
    queueMicrotask(() => this.receive(payload));
  }

  protected sendPing(payload: string): Promise<void> {
    queueMicrotask(() => this.receive(payload));
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.closed = true;
    this.wakeRetry?.();
    this.setStatus(false, 'closed');
    return Promise.resolve();
  }
}

export interface PostgresBusOptions extends BusCommonOptions {
  /** The database (a `postgres://` URL or a `pg` client config) for the dedicated LISTEN connection. */
  connection: string | pg.ClientConfig;
  /**
   * Where a publish without a transaction runs its `pg_notify` (the store's pool). When absent, the
   * bus opens a small pool of its own on `connection` and closes it in `close()`.
   */
  pool?: { query(text: string, values: unknown[]): Promise<unknown> };
  channel?: string;
  /** Bounds the connect and LISTEN of one attempt, and each publish on the bus's own pool (ms; default 5 s). */
  connectTimeoutMs?: number;
  /**
   * Bounds the resync after a connect (ms; default 30 s). A resync that takes longer (the store
   * hangs) is abandoned: the bus drops the connection and tries again, and stays "not connected"
   * (so the node goes stale) meanwhile.
   */
  resyncTimeoutMs?: number;
  /**
   * Also resync every so often while connected (ms; off when absent). Pointers published after a
   * commit (not inside the transaction) are lost if the publishing node dies in between; this bounds
   * how long such a loss can go unnoticed. One that fails drops the connection (`recycle`).
   */
  resyncEveryMs?: number;
}

/**
 * The cluster bus on PostgreSQL. One dedicated connection runs `LISTEN` on one channel; publishes go
 * through the pool (or the caller's transaction). When the listening connection drops it reconnects
 * with exponential backoff and full jitter, re-runs `LISTEN`, then runs every resync handler: what
 * was notified while it was away is lost by PostgreSQL's design and must be read from the store.
 */
export class PostgresBus extends BaseBus {
  readonly kind = 'postgres' as const;
  readonly channel: string;
  private readonly options: PostgresBusOptions;
  private readonly pool: { query(text: string, values: unknown[]): Promise<unknown> };
  private readonly ownPool: pg.Pool | undefined;
  private client: pg.Client | undefined;
  private closed = false;
  private started: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private wakeRetry: (() => void) | undefined;
  private connecting = false;
  private everConnected = false;
  private droppedAt: number | undefined;
  private periodic: NodeJS.Timeout | undefined;
  private periodicRunning = false;
  /** Successful (re)connects since start, for tests and metrics. */
  connects = 0;

  constructor(options: PostgresBusOptions) {
    super(options);
    this.options = options;
    this.channel = options.channel ?? BUS_CHANNEL;
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(this.channel)) throw new Error(`Invalid bus channel name "${this.channel}"`);
    if (options.pool !== undefined) {
      this.pool = options.pool;
    } else {
      const config =
        typeof options.connection === 'string' ? { connectionString: options.connection } : options.connection;
      const timeout = options.connectTimeoutMs ?? 5_000;
      // The timeouts are ours (read-timeout.ts), not pg's `query_timeout` and `connectionTimeoutMillis`, which would
      // fail a publish the server had answered, or a connection it had opened, while this process was frozen.
      const ownPool = new pg.Pool({ ...config, max: 2, connectionTimeoutMillis: 0, Client: lagAwareClient(timeout) });
      this.ownPool = ownPool;
      // An idle pooled connection that dies emits 'error' on the pool: without a listener it would crash the process.
      this.ownPool.on('error', (error) =>
        this.logger.warn({ err: error, node: this.nodeId }, 'cluster bus: pool connection lost'),
      );
      // pg-pool listens only on idle clients: one checked out below that dies mid-query would emit 'error' with no
      // listener and crash the process (its query fails all the same).
      this.ownPool.on('connect', (client) =>
        client.on('error', (error) =>
          this.logger.warn({ err: error, node: this.nodeId }, 'cluster bus: pool connection lost'),
        ),
      );
      this.pool = {
        // The read timeout counts from the query, not from the wait for a connection (bounded on its own); a
        // connection that failed a query is destroyed, never reused.
        query: async (text, values) => {
          const client = await waitForClient(ownPool, timeout);
          let failed: Error | undefined;
          try {
            return await withReadTimeout(client.query(text, values), timeout);
          } catch (error) {
            failed = error as Error;
            throw error;
          } finally {
            client.release(failed);
          }
        },
      };
    }
  }

  start(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('cluster bus is closed'));
    if (this.started === undefined && this.options.resyncEveryMs !== undefined) {
      this.periodic = setInterval(() => void this.periodicResync(), this.options.resyncEveryMs);
      this.periodic.unref();
    }
    this.started ??= this.connectLoop();
    return this.started;
  }

  private async periodicResync(): Promise<void> {
    if (!this.current.connected || this.periodicRunning) return;
    this.periodicRunning = true;
    try {
      await this.resync({ reason: 'periodic' });
    } catch (error) {
      // Something this node should have read may be missing: not connected until a resync succeeds.
      this.recycle(`periodic ${message(error)}`);
    } finally {
      this.periodicRunning = false;
    }
  }

  async publish<T extends Topic>(topic: T, pointer: Pointer<T>, tx?: BusTransaction): Promise<void> {
    const payload = this.envelope(topic, pointer);
    if (tx === undefined) {
      await this.notify(this.pool, payload);
    } else if (tx.kind === 'pg') {
      // Sent with the transaction's COMMIT, in its round trip, on the store's pool (NOTIFY_WITH_COMMIT).
      await tx.query(NOTIFY_WITH_COMMIT, [this.channel, payload]);
    } else {
      tx.afterCommit(() => {
        this.notify(this.pool, payload).catch((error: unknown) =>
          // The change is committed; a node that misses this pointer catches up at its next resync.
          this.logger.error({ err: error, node: this.nodeId, topic }, 'cluster bus: publish after commit failed'),
        );
      });
    }
  }

  /** Test seam: sends a raw payload on the channel, as another (buggy) process could. */
  async publishRaw(payload: string): Promise<void> {
    await this.notify(this.pool, payload);
  }

  /**
   * The heartbeat rides the listening connection itself: NOTIFY sent on it comes back to it (a
   * session receives its own notifications). It never waits for the store's pool, so a node busy
   * with a burst of work on that pool is not taken for one that lost its database or its
   * notifications; only a dead connection or a notification path that stopped fails it.
   */
  protected async sendPing(payload: string): Promise<void> {
    const client = this.client;
    if (client === undefined) throw new Error('cluster bus not connected');
    await withReadTimeout(this.notify(client, payload), this.options.connectTimeoutMs ?? 5_000);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.periodic);
    clearTimeout(this.retryTimer);
    this.wakeRetry?.();
    const client = this.client;
    this.client = undefined;
    this.setStatus(false, 'closed');
    if (client !== undefined) await client.end().catch(() => undefined);
    if (this.ownPool !== undefined) await this.ownPool.end().catch(() => undefined);
  }

  private async notify(target: { query(text: string, values: unknown[]): Promise<unknown> }, payload: string) {
    await target.query('SELECT pg_notify($1, $2)', [this.channel, payload]);
  }

  /**
   * Connects, retrying with backoff until it listens or the bus is closed; then resyncs. If the
   * connection drops again during the resync, the same loop reconnects (one loop at a time).
   */
  private async connectLoop(): Promise<void> {
    if (this.connecting) return;
    this.connecting = true;
    try {
      let attempt = 0;
      while (!this.closed && this.client === undefined) {
        const error = await this.connectOnce();
        if (error === undefined) {
          attempt = 0;
          continue;
        }
        this.setStatus(false, error);
        const wait = this.backoff(attempt++);
        this.logger.warn(
          { node: this.nodeId, attempt, retryInMs: wait, err: error },
          'cluster bus: cannot listen, retrying',
        );
        await new Promise<void>((resolve) => {
          this.wakeRetry = resolve;
          this.retryTimer = setTimeout(resolve, wait);
        });
        this.wakeRetry = undefined;
      }
      if (this.closed && !this.everConnected) throw new Error('cluster bus closed before it connected');
    } finally {
      this.connecting = false;
    }
  }

  /** One attempt: connect, LISTEN, then resync. Returns the error message, or undefined once listening. */
  private async connectOnce(): Promise<string | undefined> {
    const config =
      typeof this.options.connection === 'string'
        ? { connectionString: this.options.connection }
        : this.options.connection;
    const timeout = this.options.connectTimeoutMs ?? 5_000;
    const Client = lagAwareClient(timeout);
    const client = new Client({
      ...config,
      connectionTimeoutMillis: 0, // bounded by lagAwareClient, never by pg's first-tick timer
      keepAlive: true,
      application_name: `baton-bus:${this.nodeId}`.slice(0, 63),
    });
    let lost = false;
    const onLost = (error?: Error) => {
      if (lost) return;
      lost = true;
      this.connectionLost(client, error);
    };
    client.on('error', (error) => onLost(error));
    client.on('end', () => onLost());
    client.on('notification', (message) => {
      if (message.channel === this.channel && this.client === client) this.receive(message.payload);
    });
    try {
      await client.connect();
      // Only LISTEN and the heartbeat's NOTIFY run on this connection: a server that accepts but never answers
      // fails them (read-timeout.ts: not pg's `query_timeout`, which judges before reading what arrived while
      // this process was frozen).
      await withReadTimeout(client.query(`LISTEN ${this.channel}`), timeout);
    } catch (error) {
      lost = true;
      client.removeAllListeners('end');
      client.on('error', () => undefined);
      await client.end().catch(() => undefined);
      return message(error);
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return undefined;
    }
    if (lost) return 'connection lost right after LISTEN';
    this.client = client;
    this.connects++;
    const reason = this.everConnected ? 'reconnected' : 'connected';
    const downMs = this.droppedAt === undefined ? undefined : this.clock() - this.droppedAt;
    this.everConnected = true;
    this.logger.info({ node: this.nodeId, reason, downMs }, 'cluster bus: listening, resyncing from the store');
    // LISTEN first, then read the store: whatever commits after LISTEN is notified, whatever before is read.
    // Connected (and so fresh, for freshness.ts) only once the resync is done.
    // The bound counts only the time this node ran (lag-aware-timer.ts): a resync whose reads the store answered
    // while the node was stopped finishes when it wakes, instead of being abandoned and run again on a new connection.
    const resyncTimeoutMs = this.options.resyncTimeoutMs ?? 30_000;
    // A resync that fails (a store read refused during a failover) is treated as one that timed out: what it should
    // have read may be missing here, so the node stays not connected and tries again, with backoff.
    let timer: { clear(): void } | undefined;
    const outcome = await Promise.race([
      this.resync(downMs === undefined ? { reason } : { reason, downMs }).then(
        () => undefined,
        (error: unknown) => message(error),
      ),
      new Promise<string>(
        (resolve) =>
          (timer = lagAwareTimer(resyncTimeoutMs, () => resolve(`resync did not finish within ${resyncTimeoutMs} ms`))),
      ),
    ]);
    timer?.clear();
    if (outcome !== undefined) {
      this.logger.error(
        { node: this.nodeId, resyncTimeoutMs, err: outcome },
        outcome.startsWith('resync failed')
          ? 'cluster bus: resync failed, reconnecting'
          : 'cluster bus: resync timed out, reconnecting',
      );
      if (this.client === client) {
        this.client = undefined;
        this.droppedAt ??= this.clock();
        await client.end().catch(() => undefined);
      }
      return outcome;
    }
    if (this.client !== client) return 'connection lost during the resync';
    this.droppedAt = undefined;
    this.setStatus(true);
    return undefined;
  }

  private connectionLost(client: pg.Client, error?: Error): void {
    if (this.client !== client) return;
    this.client = undefined;
    client.end().catch(() => undefined);
    if (this.closed) return;
    this.droppedAt ??= this.clock();
    const why = error === undefined ? 'connection ended' : message(error);
    this.logger.warn({ node: this.nodeId, err: why }, 'cluster bus: listening connection lost, reconnecting');
    this.setStatus(false, why);
    this.connectLoop().catch(() => undefined);
  }

  recycle(why: string): void {
    const client = this.client;
    if (client === undefined) return;
    this.logger.warn({ node: this.nodeId, why }, 'cluster bus: recycling the listening connection');
    this.connectionLost(client, new Error(why));
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message || error.name : String(error);
}
