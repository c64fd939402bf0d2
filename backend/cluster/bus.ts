import { randomUUID } from 'node:crypto';
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
  /** A console connected to `nodeId`: any older socket of that console on another node is closed (newest wins). */
  'console-connected': z.strictObject({ consoleId: Id, nodeId: Id, connectionId: Id }),
  /**
   * Several consoles connected to `nodeId`, in the order they connected: `console-connected` for
   * each, in one notification (a burst of reconnects after a failover). [consoleId, connectionId] pairs.
   */
  'consoles-connected': z.strictObject({
    nodeId: Id,
    connections: z
      .array(z.tuple([Id, Id]))
      .min(1)
      .max(1_000),
  }),
  /** Events were stored up to `cursor`: live followers read from their last cursor. */
  'admin-stream': z.strictObject({ cursor: Count }),
  /** The authenticator metadata (models, FIDO MDS) changed: reload it. */
  authenticators: z.strictObject({}),
  /**
   * An admin session ended (sign-out, revocation, expiry, role removed), or the bootstrap token was
   * retired (`admin:bootstrap`): every node closes the live streams it holds for it at once.
   */
  'admin-session-ended': z.strictObject({ sessionId: Id }),
} as const;

export type Topic = keyof typeof TOPIC_POINTERS;
export type Pointer<T extends Topic> = z.infer<(typeof TOPIC_POINTERS)[T]>;
export const TOPICS = Object.keys(TOPIC_POINTERS) as Topic[];

export interface Delivery {
  /** The node that published it. */
  origin: string;
  /** True when `origin` is this node. */
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
  /** This node's id, the `origin` of what it publishes. */
  readonly nodeId: string;
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
  /** Runs after every (re)connect: catch up from the store, never from memory. Returns the unsubscribe function. */
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
   * Drops the listening connection so that it reconnects and resyncs: for when a ping did not come
   * back although the bus believes it listens (a half-open connection). No-op in process.
   */
  recycle(why: string): void;
  close(): Promise<void>;
}

export interface BusCommonOptions {
  nodeId: string;
  logger: Logger;
  clock?: () => number;
}

interface Envelope {
  v: typeof WIRE_VERSION;
  /** A topic, or `ping` (private to the bus). */
  t: string;
  p?: unknown;
  o: string;
}

const EnvelopeSchema = z.object({
  v: z.literal(WIRE_VERSION),
  t: z.string().max(64),
  p: z.unknown().optional(),
  o: Id,
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
export function encodeEnvelope(topic: string, pointer: unknown, origin: string): string {
  const envelope: Envelope = { v: WIRE_VERSION, t: topic, p: pointer, o: origin };
  const text = JSON.stringify(envelope);
  if (Buffer.byteLength(text) > MAX_PAYLOAD_BYTES) {
    throw new Error(
      `Cluster bus payload for "${topic}" is ${Buffer.byteLength(text)} bytes (max ${MAX_PAYLOAD_BYTES})`,
    );
  }
  return text;
}

type Decoded =
  | { kind: 'message'; topic: Topic; pointer: unknown; origin: string }
  | { kind: 'ping'; nonce: string; origin: string }
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
  const { t, p, o } = envelope.data;
  if (t === 'ping') {
    const ping = PingSchema.safeParse(p);
    return ping.success ? { kind: 'ping', nonce: ping.data.n, origin: o } : { kind: 'malformed', why: 'bad ping' };
  }
  const schema = Object.hasOwn(TOPIC_POINTERS, t) ? (TOPIC_POINTERS as Record<string, z.ZodType>)[t] : undefined;
  if (schema === undefined) return { kind: 'malformed', why: `unknown topic "${t.slice(0, 64)}"` };
  const pointer = schema.safeParse(p);
  if (!pointer.success) return { kind: 'malformed', why: `bad pointer for "${t}": ${issue(pointer.error)}` };
  return { kind: 'message', topic: t as Topic, pointer: pointer.data, origin: o };
}

function issue(error: z.ZodError): string {
  const first = error.issues[0];
  return first === undefined ? 'invalid' : `${first.path.join('.') || '(root)'}: ${first.message}`;
}

/** Subscribers, resync handlers, status listeners and pings: what both implementations share. */
abstract class BaseBus implements ClusterBus {
  abstract readonly kind: 'in-process' | 'postgres';
  readonly nodeId: string;
  protected readonly logger: Logger;
  protected readonly clock: () => number;
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
    this.current = { connected: false, since: this.clock() };
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
      await Promise.race([this.sendPing(encodeEnvelope('ping', { n: nonce }, this.nodeId)), arrived]);
      const receivedAt = await arrived;
      return receivedAt - sentAt;
    } finally {
      clearTimeout(timer);
      this.pings.delete(nonce);
    }
  }

  /** Handles one payload from the wire (or from this process): validated, then dispatched. */
  protected receive(payload: string | undefined): void {
    const decoded = decodeEnvelope(payload);
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
        if (decoded.origin === this.nodeId) this.pings.get(decoded.nonce)?.(this.clock());
        return;
      case 'message':
        this.dispatch(decoded.topic, decoded.pointer as Pointer<Topic>, decoded.origin);
    }
  }

  protected dispatch(topic: Topic, pointer: Pointer<Topic>, origin: string): void {
    const set = this.handlers.get(topic);
    if (set === undefined) return;
    const delivery: Delivery = { origin, local: origin === this.nodeId };
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

  /** Runs every resync handler (concurrently) and waits for all; a failure is logged, not thrown. */
  protected async resync(info: ResyncInfo): Promise<void> {
    const results = await Promise.allSettled([...this.resyncHandlers].map(async (handler) => handler(info)));
    for (const result of results) {
      if (result.status === 'rejected') {
        this.logger.error({ err: result.reason, node: this.nodeId }, 'cluster bus: resync handler failed');
      }
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

  constructor(options: BusCommonOptions) {
    super(options);
  }

  async start(): Promise<void> {
    if (this.closed) throw new Error('cluster bus is closed');
    if (this.current.connected) return;
    await this.resync({ reason: 'connected' });
    this.setStatus(true);
  }

  publish<T extends Topic>(topic: T, pointer: Pointer<T>, tx?: BusTransaction): Promise<void> {
    const valid = validatePointer(topic, pointer);
    // Encoded as on the wire so both buses refuse the same messages (size, shape).
    const payload = encodeEnvelope(topic, valid, this.nodeId);
    const send = () => {
      if (!this.closed) queueMicrotask(() => this.receive(payload));
    };
    if (tx === undefined) send();
    else if (tx.kind === 'after-commit') tx.afterCommit(send);
    else throw new Error('The in-process bus was given a PostgreSQL transaction (a wiring mistake)');
    return Promise.resolve();
  }

  recycle(): void {
    // Nothing to recycle: delivery is a function call.
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
  /** Backoff between reconnect attempts: full jitter in [min, min(maxMs, initialMs·2^attempt)]. */
  reconnect?: { initialMs?: number; maxMs?: number };
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
   * how long such a loss can go unnoticed.
   */
  resyncEveryMs?: number;
  random?: () => number;
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
  private readonly random: () => number;
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
    this.random = options.random ?? Math.random;
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
    } finally {
      this.periodicRunning = false;
    }
  }

  async publish<T extends Topic>(topic: T, pointer: Pointer<T>, tx?: BusTransaction): Promise<void> {
    const payload = encodeEnvelope(topic, validatePointer(topic, pointer), this.nodeId);
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
    let timer: { clear(): void } | undefined;
    const finished = await Promise.race([
      this.resync(downMs === undefined ? { reason } : { reason, downMs }).then(() => true),
      new Promise<false>((resolve) => (timer = lagAwareTimer(resyncTimeoutMs, () => resolve(false)))),
    ]);
    timer?.clear();
    if (!finished) {
      this.logger.error({ node: this.nodeId, resyncTimeoutMs }, 'cluster bus: resync timed out, reconnecting');
      if (this.client === client) {
        this.client = undefined;
        this.droppedAt ??= this.clock();
        await client.end().catch(() => undefined);
      }
      return `resync did not finish within ${resyncTimeoutMs} ms`;
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

  private backoff(attempt: number): number {
    const initial = this.options.reconnect?.initialMs ?? 100;
    const max = this.options.reconnect?.maxMs ?? 10_000;
    const ceiling = Math.min(max, initial * 2 ** Math.min(attempt, 30));
    return Math.round(initial / 2 + this.random() * (ceiling - initial / 2));
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message || error.name : String(error);
}
