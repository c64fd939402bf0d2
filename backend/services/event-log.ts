import { AsyncLocalStorage } from 'node:async_hooks';
import * as nodeCrypto from 'node:crypto';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { canonicalJson } from '../../shared/canonical-json.js';
import {
  AssuranceEventSchema,
  EVENT_CLOCK_SKEW_MS,
  EVENT_FLAGS,
  EVENT_OUTCOMES,
  EVENT_TYPES,
  GENESIS_HASH,
  chainEvent,
  isTakenAsFact,
  mayEmit,
  type AssuranceEvent,
  type EventDraft,
  type StoredEvent,
} from '../../shared/events.js';
import { BatonError, type ErrorCode } from '../../shared/errors.js';
import { ASSURANCE_LEVELS } from '../../shared/levels.js';
import { sha256Hex } from '../crypto/secrets.js';
import type { EventQuery, EventRow, StreamHead, Store } from '../store/repositories.js';
import { CompiledQuery } from 'kysely';
import {
  afterCommitTransaction,
  kyselyTransaction,
  type ClusterBus,
  type Pointer,
  type Topic,
} from '../cluster/bus.js';
import { StreamCursorPublisher } from '../cluster/stream-publisher.js';
import { kyselyOf } from '../store/kysely-store.js';
import { toStoredEvent } from '../store/kysely-events.js';
import type { Row } from '../store/kysely-schema.js';
import { sessionsChangedBy } from './session-service.js';

export const BACKEND_ORIGIN = 'backend';

/**
 * Most console events committed in one group commit. On embedded SQLite a commit runs without
 * yielding, so this bounds how long ingest holds the event loop (sign-ins, revocation pushes) when
 * many consoles upload at once; whatever is left is committed on the next turn.
 */
export const MAX_EVENTS_PER_COMMIT = 2000;

/**
 * Flags that say nothing about the chain or the event's own trustworthiness, so verify does not
 * list them: a late event filled a gap already reported; `refused` comes with the flag saying why;
 * a refused session change is the backend's decision, not a problem with the event.
 */
const NOT_REPORTED_BY_VERIFY: ReadonlySet<string> = new Set<string>([
  EVENT_FLAGS.late,
  EVENT_FLAGS.refused,
  EVENT_FLAGS.sessionChangeRefused,
]);

export type IngestFindingCode = Extract<
  ErrorCode,
  | 'EVENT_SEQUENCE_GAP'
  | 'EVENT_SEQUENCE_CONFLICT'
  | 'EVENT_CHAIN_BROKEN'
  | 'EVENT_TYPE_NOT_ALLOWED'
  | 'EVENT_TIME_IN_FUTURE'
  | 'EVENT_TIME_BACKDATED'
  | 'EVENT_SUBJECT_NOT_WITNESSED'
  | 'EVENT_SESSION_CHANGE_REFUSED'
>;

export interface IngestFinding {
  code: IngestFindingCode;
  seq: number;
}

/**
 * A unit of work: what runs inside it commits (or rolls back) together. Inside, read and write only
 * through `store` (bound to the transaction) and record backend facts through `record`.
 */
export interface UnitOfWork {
  /** The transaction-bound store: every read and write of the unit. */
  readonly store: Store;
  /** Appends a backend fact to the backend's chain in this transaction; live followers get it after the commit. */
  record(draft: EventDraft): Promise<StoredEvent>;
  /** Runs `fn` once the unit has committed (never on rollback); a hook that throws is logged. */
  afterCommit(fn: () => void): void;
  /**
   * This unit records events of several independent causes (a group commit of many requests): none is linked to
   * another (`detail.causeEventId`, docs/events.md). By default the events of one unit are one cause.
   */
  separateCauses(): void;
  /**
   * Tells every node (this one included) through the cluster bus, if and only if this unit commits:
   * PostgreSQL sends the NOTIFY with the unit's COMMIT, embedded SQLite delivers in process after it.
   * Throws when the event log was built without a bus (a wiring mistake, never a silent no-op).
   */
  publish<T extends Topic>(topic: T, pointer: Pointer<T>): Promise<void>;
}

/** The reason of the backend fact that says the authenticator metadata changed (authenticator-metadata.ts). */
const METADATA_LOADED_REASON = 'authenticator-metadata-loaded';
/**
 * A hole in the cursors the live feed has read (PostgreSQL) is waited for until every transaction
 * that was running when it was seen has ended; a transaction that stays open longer than this (not
 * one of ours: units are short) no longer holds the followers back, and the hole is skipped.
 */
const FEED_GAP_MAX_WAIT_MS = 10_000;
/** How soon the feed looks again at a hole it waits for. */
const FEED_GAP_RETRY_MS = 20;
const FEED_PAGE = 1000;
/**
 * Events this node committed and still to hand to its followers, kept by cursor so the live feed
 * does not read back (and parse again) what this node just checked and wrote; beyond this many
 * (followers far behind), the rest are read from the store as other nodes' events are.
 */
const FEED_OWN_MAX = 20_000;

/**
 * What a stored console event does to the backend's state, decided in the ingest unit of work just
 * before the event is written and applied right after it: the state change and the events that
 * record it commit (or roll back) together with the batch.
 */
export interface ConsoleEventEffect {
  /** The backend declines the change the event asks for: the event is stored flagged `session-change-refused`. */
  refused?: boolean;
  /** Makes the change (through the unit of work it was decided in); runs once the console's event is written. */
  apply?: () => void | Promise<void>;
}

/**
 * Called for each console event that is stored and taken as a fact, in `seq` order, inside the
 * ingest unit of work (read and write through `uow` only). `late` events (filling an earlier gap)
 * arrive after later ones were applied.
 */
export type ConsoleEventEffects = (
  uow: UnitOfWork,
  event: AssuranceEvent,
  stored: { late: boolean },
) => ConsoleEventEffect | undefined | Promise<ConsoleEventEffect | undefined>;

export interface IngestResult {
  /** Highest sequence stored durably for the console. */
  upToSeq: number;
  inserted: number;
  findings: IngestFinding[];
}

export interface ChainProblem {
  seq: number;
  problem: string;
}

export interface ChainReport {
  origin: string;
  checked: number;
  lastSeq: number;
  intact: boolean;
  problemCount: number;
  /** True when more problems exist than are listed (at most 100 are). */
  truncated: boolean;
  problems: ChainProblem[];
}

export type EventFilter = Omit<EventQuery, 'limit' | 'afterCursor'>;
export type EventListener = (event: StoredEvent) => void;

/**
 * One ordered stream of a console's batches: a connection, on which the agent sends its journal in
 * `seq` order with several batches in flight. Once one of its batches fails, no later batch of the
 * stream is stored: stored, it would move the console's head past the failed batch's events (an
 * `integrity-sequence-gap` the console never caused), and the next welcome's `ackedSeq` would have the
 * agent drop those events from its journal for good. The console sends them all again on its next
 * connection (a new stream), from the head the store holds.
 */
export class IngestStream {
  /** The failure that ended the stream; every batch of it queued since, or queued later, is refused with it. */
  failure: { error: unknown } | undefined = undefined;
}

interface PendingBatch {
  origin: string;
  events: AssuranceEvent[];
  effects: ConsoleEventEffects | undefined;
  stream: IngestStream | undefined;
  resolve: (result: IngestResult) => void;
  reject: (error: unknown) => void;
}

/**
 * The meta key under which a console's time floor is kept: the latest `time` among its stored
 * events not flagged for their time, below which (less the clock skew) its next event is backdated.
 */
const TIME_FLOOR_KEY = 'event-time-floor:';

/** One unit of work's state: nothing of it outlives the transaction, nothing is shared with another unit. */
class Unit implements UnitOfWork {
  open = true;
  /**
   * The lowest cursor this unit has written (-Infinity while its first write is on its way: its
   * cursor is not known yet but may be lower than one committed meanwhile).
   */
  firstCursor: number | undefined;
  /** Chain heads read (and locked) in this unit, and whether this unit moved them. */
  readonly heads = new Map<string, { head: StreamHead; dirty: boolean }>();
  /** Console time floors read in this unit, and whether this unit raised them. */
  readonly floors = new Map<string, { time: number; dirty: boolean }>();
  readonly unpublished: StoredEvent[] = [];
  readonly after: (() => void)[] = [];
  /** The highest cursor this unit wrote (0: none), offered to the cluster's live followers after the commit. */
  lastCursor = 0;
  /**
   * Console events checked and chained but not yet written: written together (one round trip on
   * PostgreSQL) before anything else is written after them, so cursors keep the order of the checks.
   */
  readonly rows: { row: EventRow; event: AssuranceEvent }[] = [];
  /** `record` calls run one at a time even when the caller does not await each (one chain, one head). */
  private tail: Promise<unknown> = Promise.resolve();
  /**
   * The id of the first event this unit recorded, which opens its cause. Every later backend event of the
   * unit carries it as `detail.causeEventId`, so the events of one cause are linked (a Shared Signals SET's
   * `txn`, docs/shared-signals.md). Not in a unit that commits many requests' events together (`linksCause`
   * false: an ingest group, where a backend event names the console event that caused it in
   * `detail.consoleEventId`; the token journal, `separateCauses`).
   */
  cause: string | undefined;
  linksCause = true;

  constructor(
    readonly store: Store,
    private readonly append: (unit: Unit, draft: EventDraft) => Promise<StoredEvent>,
    private readonly bus: ClusterBus | undefined,
  ) {}

  publish<T extends Topic>(topic: T, pointer: Pointer<T>): Promise<void> {
    if (!this.open) return Promise.reject(new Error('publish() on a unit of work that has already ended'));
    if (this.bus === undefined) {
      return Promise.reject(
        new Error(`EventLog built without a cluster bus: cannot publish "${topic}" (a wiring mistake)`),
      );
    }
    if (this.bus.kind === 'postgres') {
      const trx = kyselyOf(this.store);
      if (trx === undefined) return Promise.reject(new Error('A PostgreSQL bus needs a Kysely (PostgreSQL) store'));
      return this.bus.publish(topic, pointer, kyselyTransaction(trx));
    }
    return this.bus.publish(
      topic,
      pointer,
      afterCommitTransaction((fn) => this.afterCommit(fn)),
    );
  }

  record(draft: EventDraft): Promise<StoredEvent> {
    if (!this.open) return Promise.reject(new Error('record() on a unit of work that has already ended'));
    const run = this.tail.then(() => this.append(this, draft));
    this.tail = run.catch(() => undefined);
    return run;
  }

  separateCauses(): void {
    this.linksCause = false;
  }

  afterCommit(fn: () => void): void {
    if (!this.open) throw new Error('afterCommit() on a unit of work that has already ended');
    this.after.push(fn);
  }

  /** Settles once every `record` issued so far has. */
  settled(): Promise<unknown> {
    return this.tail;
  }
}

/**
 * SHA-256 of an event's canonical JSON, hex: node:crypto's one-shot `hash` (Node ≥ 20.12; not in this
 * @types/node) rather than a Hash object per event, about half the CPU for a body this size, and
 * every ingested event is hashed once.
 */
const bodyHash: (body: string) => string = (() => {
  const hash = (nodeCrypto as unknown as { hash?: (algorithm: string, data: string, encoding: 'hex') => string }).hash;
  // BATON_EVENT_HASH_OBJECT=1: a Hash object per event, as before (benchmarks' A/B only).
  if (hash === undefined || process.env.BATON_EVENT_HASH_OBJECT === '1') return sha256Hex;
  return (body: string) => hash('sha256', body, 'hex');
})();

export function eventHash(event: AssuranceEvent): string {
  return bodyHash(eventCanonicalJson(event));
}

const EVENT_MEMBERS: ReadonlySet<string> = new Set([
  'assurance',
  'detail',
  'id',
  'outcome',
  'prevHash',
  'reasons',
  'seq',
  'subject',
  'time',
  'type',
]);

/** A finite number as canonical JSON writes it (canonicalJson refuses the others). */
function canonicalNumber(n: number): string {
  if (!Number.isFinite(n)) throw new TypeError('canonicalJson: non-finite number');
  return JSON.stringify(n);
}

/**
 * canonicalJson of an event's member, byte for byte, without the key-sorting replacer when the value
 * is flat (an array of strings, or a plain object whose members are strings, finite numbers,
 * booleans, null or arrays of strings): what a subject, the reasons, an assurance and most details
 * are. Anything else goes to canonicalJson. Ingest hashes every event, so this is per event (about
 * 2× as fast as the replacer).
 */
function flatCanonicalJson(value: unknown): string {
  if (Array.isArray(value)) {
    for (const item of value) if (typeof item !== 'string') return canonicalJson(value);
    return JSON.stringify(value);
  }
  if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) !== Object.prototype) {
    return canonicalJson(value);
  }
  const record = value as Record<string, unknown>;
  let out = '{';
  const keys = Object.keys(record);
  if (keys.length > 16) keys.sort();
  else {
    // A member's few keys (a subject, an assurance, a detail), often in order already: an insertion
    // sort in place, by code unit as sort() compares, allocates nothing (Array.prototype.sort copies).
    for (let i = 1; i < keys.length; i++) {
      const key = keys[i] as string;
      let j = i - 1;
      while (j >= 0 && (keys[j] as string) > key) {
        keys[j + 1] = keys[j] as string;
        j--;
      }
      keys[j + 1] = key;
    }
  }
  for (const key of keys) {
    // An array-index key ("9", "10") is written where the engine puts it, first: canonicalJson's
    // order, not the code-unit order above (no schema-valid event has one: detail keys start with a letter).
    const first = key.charCodeAt(0);
    if (first >= 48 && first <= 57) return canonicalJson(value);
    const member = record[key];
    let text: string;
    switch (typeof member) {
      case 'string':
      case 'boolean':
        text = JSON.stringify(member);
        break;
      case 'number':
        if (!Number.isFinite(member)) return canonicalJson(value); // which refuses it
        text = JSON.stringify(member);
        break;
      case 'undefined':
        continue; // dropped, as JSON.stringify does
      case 'object':
        if (member === null) {
          text = 'null';
          break;
        }
        // An array of strings (an assurance's `amr`): JSON.stringify writes it as canonicalJson does.
        if (!Array.isArray(member)) return canonicalJson(value);
        for (const item of member as unknown[]) if (typeof item !== 'string') return canonicalJson(value);
        text = JSON.stringify(member);
        break;
      case 'bigint':
      case 'symbol':
      case 'function':
        return canonicalJson(value); // which refuses them
    }
    out += (out.length === 1 ? '' : ',') + JSON.stringify(key) + ':' + text;
  }
  return out + '}';
}

/**
 * `canonicalJson(event)` for an assurance event, byte for byte, without sorting its ten members at
 * run time: they are written in code-unit order (assurance, detail, id, outcome, prevHash, reasons,
 * seq, subject, time, type), the nested values through `canonicalJson`. Every stored event is
 * serialised once for its body and hash; this is the generic walk's top level, which was most of it.
 * Anything not of the schema's shape (a member more, a missing or mistyped one, a member set to
 * undefined) takes the generic `canonicalJson`, so the output never differs.
 */
export function eventCanonicalJson(event: AssuranceEvent): string {
  const e = event as Partial<Record<keyof AssuranceEvent, unknown>>;
  const { assurance, detail } = e;
  if (
    typeof e.id !== 'string' ||
    typeof e.outcome !== 'string' ||
    typeof e.prevHash !== 'string' ||
    typeof e.type !== 'string' ||
    typeof e.seq !== 'number' ||
    typeof e.time !== 'number' ||
    !Array.isArray(e.reasons) ||
    typeof e.subject !== 'object' ||
    e.subject === null ||
    Array.isArray(e.subject)
  ) {
    return canonicalJson(event);
  }
  // Only the schema's members, each its own (not inherited), none set to undefined.
  let members = 0;
  for (const key in e) {
    if (!Object.hasOwn(e, key)) continue;
    if (!EVENT_MEMBERS.has(key)) return canonicalJson(event);
    members++;
  }
  if (members !== 8 + (assurance === undefined ? 0 : 1) + (detail === undefined ? 0 : 1)) return canonicalJson(event);
  return (
    '{' +
    (assurance === undefined ? '' : `"assurance":${flatCanonicalJson(assurance)},`) +
    (detail === undefined ? '' : `"detail":${flatCanonicalJson(detail)},`) +
    `"id":${JSON.stringify(e.id)},"outcome":${JSON.stringify(e.outcome)},"prevHash":${JSON.stringify(e.prevHash)},` +
    `"reasons":${flatCanonicalJson(e.reasons)},"seq":${canonicalNumber(e.seq)},"subject":${flatCanonicalJson(e.subject)},` +
    `"time":${canonicalNumber(e.time)},"type":${JSON.stringify(e.type)}}`
  );
}

const BACKEND_EVENT_TYPES: ReadonlySet<string> = new Set(EVENT_TYPES);
const BACKEND_EVENT_OUTCOMES: ReadonlySet<string> = new Set(EVENT_OUTCOMES);
const BACKEND_EVENT_LEVELS: ReadonlySet<string> = new Set(ASSURANCE_LEVELS);
const SUBJECT_MEMBERS: ReadonlySet<string> = new Set(['operator', 'console', 'session', 'service', 'credential']);
const ASSURANCE_MEMBERS: ReadonlySet<string> = new Set(['level', 'aal', 'acr', 'amr', 'authTime']);
/** The patterns of shared/events.ts (IdSchema, HashSchema, reasons, detail keys, `credential`) and zod's `z.uuid()`. */
const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
const HASH_PATTERN = /^[0-9a-f]{64}$/;
const REASON_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const DETAIL_KEY_PATTERN = /^[A-Za-z][A-Za-z0-9_]{0,39}$/;
const CREDENTIAL_PATTERN = /^[A-Za-z0-9_-]{1,1024}$/;
const UUID_PATTERN =
  /^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}|00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-ffffffffffff)$/;

/** A plain object (Object.prototype or none) whose own keys are all in `allowed`; its members, or undefined. */
function plainMembers(value: unknown, allowed: ReadonlySet<string> | undefined): Record<string, unknown> | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return undefined;
  if (Object.getOwnPropertySymbols(value).length > 0) return undefined;
  if (allowed !== undefined) for (const key in value) if (!allowed.has(key)) return undefined;
  return value as Record<string, unknown>;
}

const safeInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const idOrAbsent = (v: unknown): boolean => v === undefined || (typeof v === 'string' && ID_PATTERN.test(v));

/**
 * What is wrong with an event the backend built itself, by AssuranceEventSchema's rules (undefined: nothing),
 * without zod: parsing builds a copy and issue lists, which was half of what recording one event allocated.
 * It accepts no event the schema refuses (plain objects only, no symbol keys: stricter where they differ);
 * event-log.test.ts holds it to the schema on every member's malformed forms. Events from outside (ingest)
 * are still parsed by the routes' schemas.
 */
export function backendEventProblem(event: unknown): string | undefined {
  const e = plainMembers(event, EVENT_MEMBERS);
  if (e === undefined) return 'not a plain object of the event members';
  if (typeof e.id !== 'string' || !UUID_PATTERN.test(e.id)) return 'id';
  if (!safeInt(e.seq) || e.seq < 1) return 'seq';
  if (!safeInt(e.time) || e.time < 0) return 'time';
  if (typeof e.type !== 'string' || !BACKEND_EVENT_TYPES.has(e.type)) return 'type';
  if (typeof e.outcome !== 'string' || !BACKEND_EVENT_OUTCOMES.has(e.outcome)) return 'outcome';
  if (typeof e.prevHash !== 'string' || !HASH_PATTERN.test(e.prevHash)) return 'prevHash';
  const subject = plainMembers(e.subject, SUBJECT_MEMBERS);
  if (
    subject === undefined ||
    !idOrAbsent(subject.operator) ||
    !idOrAbsent(subject.console) ||
    !idOrAbsent(subject.session) ||
    !idOrAbsent(subject.service) ||
    !(
      subject.credential === undefined ||
      (typeof subject.credential === 'string' && CREDENTIAL_PATTERN.test(subject.credential))
    )
  ) {
    return 'subject';
  }
  if (e.assurance !== undefined) {
    const a = plainMembers(e.assurance, ASSURANCE_MEMBERS);
    if (
      a === undefined ||
      typeof a.level !== 'string' ||
      !BACKEND_EVENT_LEVELS.has(a.level) ||
      !safeInt(a.aal) ||
      a.aal < 1 ||
      a.aal > 3 ||
      typeof a.acr !== 'string' ||
      a.acr.length > 100 ||
      !Array.isArray(a.amr) ||
      a.amr.length > 10 ||
      !safeInt(a.authTime) ||
      a.authTime < 0
    ) {
      return 'assurance';
    }
    for (const m of a.amr as unknown[]) if (typeof m !== 'string' || m.length > 20) return 'assurance';
  }
  if (!Array.isArray(e.reasons) || e.reasons.length > 16) return 'reasons';
  for (const r of e.reasons as unknown[]) if (typeof r !== 'string' || !REASON_PATTERN.test(r)) return 'reasons';
  if (e.detail !== undefined) {
    const d = plainMembers(e.detail, undefined);
    if (d === undefined) return 'detail';
    for (const key of Object.keys(d)) {
      if (!DETAIL_KEY_PATTERN.test(key)) return 'detail';
      const v = d[key];
      if (
        !(
          v === null ||
          typeof v === 'boolean' ||
          (typeof v === 'number' && Number.isFinite(v)) ||
          (typeof v === 'string' && v.length <= 500)
        )
      ) {
        return 'detail';
      }
    }
  }
  return undefined;
}

/**
 * The audit trail. Records the backend's own facts on its own hash chain, ingests consoles'
 * batches idempotently on (console, seq) with gap and chain checks, and feeds live followers.
 * Console batches arriving together are committed in one unit of work (group commit): the
 * acknowledgement is sent only after that commit returns.
 *
 * Nothing it decides on depends on what only this process knows: every chain head and time floor
 * is read from the store inside the unit of work that uses it (another node may have moved it),
 * and the units of work of concurrent callers interleave freely.
 */
export class EventLog {
  private readonly listeners = new Set<{
    filter: EventFilter;
    listener: EventListener;
    active: (() => boolean) | undefined;
  }>();
  private pending: PendingBatch[] = [];
  private flushScheduled = false;
  /** The group commit in progress, if any: one at a time, the next group gathers meanwhile. */
  private flushing: Promise<void> | undefined;
  /** The unit of work the current async flow runs in: catches a nested unit, which would deadlock on SQLite. */
  private readonly context = new AsyncLocalStorage<Unit>();
  /**
   * Consoles' enrolment times (they never change) and (console, operator) pairs whose
   * `session-established` the store holds (events are never deleted): caches of committed,
   * immutable facts, so a miss just reads the store again.
   */
  private readonly enrolledAt = new Map<string, number>();
  private readonly operatorsSeen = new Set<string>();
  private listenerFailureCount = 0;
  /** Units of work that have written events and not ended: what they wrote may precede what committed. */
  private readonly writing = new Set<Unit>();
  /** Committed events waiting for a unit that wrote a lower cursor to end (followers get cursors in order). */
  private held: StoredEvent[] = [];

  /** The cluster's live feed (PostgreSQL): followers get events read back from the store, in cursor order. */
  private readonly feed:
    | {
        publisher: StreamCursorPublisher;
        /** Highest cursor delivered to (or skipped for) followers. -1: not known yet. */
        cursor: number;
        /** Highest cursor known committed somewhere in the cluster. */
        known: number;
        running: Promise<void> | undefined;
        /** A read was asked for during the running one: read again after it. */
        again: boolean;
        /**
         * Highest cursor a commit or a notification announced during the running read: read again
         * only if that read did not get that far (the node's own NOTIFY echoes the cursor its own
         * commit's read has usually delivered already: no second read for it).
         */
        againUpTo: number;
        gap: { at: number; cursor: number; xmax: bigint } | undefined;
        timer: NodeJS.Timeout | undefined;
        stopped: boolean;
        /**
         * Events committed by this node's units above `cursor`, as they were written (the row's
         * body is their canonical JSON): handed to followers from here instead of read back.
         */
        own: Map<number, StoredEvent>;
        /**
         * Committed cursors above `cursor` listed by the last look, the first of them after a hole
         * the feed could not pass yet (ascending; empty when the feed did not stop at a hole).
         */
        listed: { cursor: number; origin: string }[];
      }
    | undefined;
  private readonly unsubscribeBus: (() => void)[] = [];

  constructor(
    private readonly store: Store,
    private readonly clock: () => number,
    private readonly logger: Logger,
    /**
     * The cluster bus: what units of work `publish`, the admin live stream across nodes and the
     * authenticator-metadata pointer. Absent only for compositions that never publish (tools, tests).
     */
    private readonly bus?: ClusterBus,
  ) {
    if (bus?.kind === 'postgres') {
      // Cursors are not in commit order across transactions (and nodes): followers are fed from the
      // store behind a horizon no open transaction can still fall under (see `pullFeed`).
      this.feed = {
        publisher: new StreamCursorPublisher(bus, logger),
        cursor: -1,
        known: 0,
        running: undefined,
        again: false,
        againUpTo: 0,
        gap: undefined,
        timer: undefined,
        stopped: false,
        own: new Map(),
        listed: [],
      };
      this.unsubscribeBus.push(
        bus.subscribe('admin-stream', ({ cursor }) => {
          if (this.feed !== undefined && cursor > this.feed.known) this.feed.known = cursor;
          this.pullFeed(cursor);
        }),
        // The first resync (at start, before any follower) also fixes where the feed starts.
        bus.onResync(async () => {
          this.pullFeed();
          await this.feed?.running;
        }),
      );
    }
  }

  /** Stops the cluster feed (its timers and subscriptions); the log itself stays usable. */
  stopFeed(): void {
    for (const unsubscribe of this.unsubscribeBus.splice(0)) unsubscribe();
    if (this.feed !== undefined) {
      this.feed.stopped = true;
      clearTimeout(this.feed.timer);
      this.feed.own.clear();
      this.feed.listed = [];
    }
  }

  /**
   * Runs `fn` as one unit of work (one store transaction). Events recorded through `uow.record`
   * reach live followers only after the commit, and `uow.afterCommit` hooks run then; on rollback
   * nothing of the unit remains. Inside `fn`, use only `uow.store` and `uow.record`: calling this
   * event log's `atomically`, `record`, `head` or `query` there throws (it would deadlock on SQLite).
   *
   * `fn` may run more than once: on PostgreSQL a unit rolled back by a deadlock or a serialization
   * failure is re-run (kysely-store.ts). So its only side effects are through `uow` (`record`,
   * `afterCommit`, `publish`): what a rolled-back attempt collected is dropped.
   */
  atomically<T>(fn: (uow: UnitOfWork) => Promise<T>): Promise<T> {
    return this.runUnit((unit) => fn(unit), 'atomically');
  }

  /** Records a backend fact in a unit of work of its own (inside one, use `uow.record`). */
  record(draft: EventDraft): Promise<StoredEvent> {
    return this.runUnit((unit) => unit.record(draft), 'record');
  }

  /**
   * Queues a console's batch for the next group commit; resolves once it is durable. `effects`
   * turns the events actually stored into state changes inside the same unit of work; a failure
   * anywhere (storage or effect) rolls the whole batch back and rejects. `stream`: the batch's place
   * in an ordered stream (its connection): when a batch of the stream fails, this one and every later
   * one are refused with the same error, none stored (`IngestStream`).
   */
  ingest(
    origin: string,
    events: AssuranceEvent[],
    effects?: ConsoleEventEffects,
    stream?: IngestStream,
  ): Promise<IngestResult> {
    return new Promise((resolve, reject) => {
      const batch: PendingBatch = { origin, events, effects, stream, resolve, reject };
      // Refused as the failed batch was (the failure is whatever its unit of work threw).
      if (stream?.failure !== undefined) return batch.reject(stream.failure.error);
      this.pending.push(batch);
      this.scheduleFlush();
    });
  }

  /** Highest stored sequence and hash for an origin, as the store has it now. */
  async head(origin: string): Promise<StreamHead> {
    this.outsideUnit('head');
    return (await this.store.events.head(origin)) ?? { lastSeq: 0, lastHash: GENESIS_HASH };
  }

  /** `head` of several origins in one statement: every origin asked for, by origin. */
  async heads(origins: readonly string[]): Promise<Map<string, StreamHead>> {
    this.outsideUnit('heads');
    const stored = await this.store.events.heads(origins);
    return new Map(origins.map((o) => [o, stored.get(o) ?? { lastSeq: 0, lastHash: GENESIS_HASH }]));
  }

  query(query: EventQuery): Promise<StoredEvent[]> {
    this.outsideUnit('query');
    return this.store.events.query(query);
  }

  /**
   * Re-walks an origin's stored chain: recomputes each event's hash from its stored body and checks
   * it against the stored hash and the next event's `prevHash`. An edit or a deletion in the
   * database shows as the first problem found. Findings recorded at ingest are reported too.
   */
  async verifyChain(origin: string): Promise<ChainReport> {
    this.outsideUnit('verifyChain');
    const MAX_PROBLEMS = 100;
    let expectedPrev = GENESIS_HASH;
    let expectedSeq = 1;
    let checked = 0;
    let problemCount = 0;
    const problems: ChainProblem[] = [];
    const report = (seq: number, problem: string) => {
      problemCount++;
      if (problems.length < MAX_PROBLEMS) problems.push({ seq, problem });
    };
    let after = 0;
    for (;;) {
      const page = await this.store.events.rawChain(origin, after, 1000);
      for (const row of page) {
        // The stored body is the canonical JSON that was hashed: re-hash it as it is now.
        if (bodyHash(row.body) !== row.hash) report(row.seq, 'hash-mismatch');
        let prevHash: unknown;
        try {
          prevHash = (JSON.parse(row.body) as { prevHash?: unknown }).prevHash;
        } catch {
          report(row.seq, 'body-unreadable');
        }
        if (row.seq !== expectedSeq) report(row.seq, 'sequence-gap');
        else if (prevHash !== expectedPrev) report(row.seq, 'chain-broken');
        for (const finding of row.integrity)
          if (!NOT_REPORTED_BY_VERIFY.has(finding)) report(row.seq, `recorded:${finding}`);
        expectedPrev = row.hash;
        expectedSeq = row.seq + 1;
        checked++;
      }
      if (page.length < 1000) break;
      after = page.at(-1)?.seq ?? after;
    }
    const stored = await this.store.events.head(origin);
    // A head row at 0 (PostgreSQL creates one when it locks a new chain) is no stream yet.
    const head = stored === undefined || stored.lastSeq === 0 ? undefined : stored;
    if (head === undefined && checked === 0 && origin !== BACKEND_ORIGIN) {
      throw new BatonError('NOT_FOUND', `No event stream from "${origin}"`);
    }
    if (head !== undefined && (head.lastHash !== expectedPrev || head.lastSeq !== expectedSeq - 1)) {
      report(head.lastSeq, 'head-mismatch');
    }
    return {
      origin,
      checked,
      lastSeq: head?.lastSeq ?? 0,
      intact: problemCount === 0,
      problemCount,
      truncated: problemCount > problems.length,
      problems,
    };
  }

  /**
   * Hands `listener` every committed event matching `filter`, in cursor order. `options.active`: a
   * listener that uses events only some of the time (the Shared Signals fan-out, on the one node
   * holding its lease) says when. While it returns false the listener is handed nothing, and a
   * PostgreSQL node's live feed does not read and parse other nodes' events for it. It is asked for
   * each event as the event is handed over: once it returns true, every event above where the feed
   * stood then (`liveFeedCursor`) is read if need be and handed over, none skipped.
   */
  subscribe(filter: EventFilter, listener: EventListener, options: { active?: () => boolean } = {}): () => void {
    const entry = { filter, listener, active: options.active };
    this.listeners.add(entry);
    return () => this.listeners.delete(entry);
  }

  /**
   * The live feed of a PostgreSQL cluster: reads what was committed after the last cursor handed to
   * followers (by any node) and hands it over in cursor order. A hole in the cursors is a unit still
   * open (its events come later, and must not be skipped) or one that rolled back: the feed waits
   * until every transaction running when it saw the hole has ended, reads again, and only then
   * passes a hole that is still there. Never rejects; one pull at a time, a request meanwhile runs
   * another after it.
   */
  private pullFeed(upTo?: number): void {
    const feed = this.feed;
    if (feed === undefined || feed.stopped) return;
    // `upTo`: a commit or notification of everything up to that cursor. Already delivered (or
    // skipped) up to it: nothing to read. Without it (resync, gap timer): always read.
    if (upTo !== undefined && feed.cursor >= 0 && upTo <= feed.cursor) return;
    if (feed.running !== undefined) {
      if (upTo === undefined) feed.again = true;
      else if (upTo > feed.againUpTo) feed.againUpTo = upTo;
      return;
    }
    feed.running = (async () => {
      try {
        do {
          feed.again = false;
          feed.againUpTo = 0;
          await this.pullOnce(feed);
        } while ((feed.again || feed.againUpTo > feed.cursor) && !feed.stopped);
      } catch (error) {
        // Read again at the next commit, notification or resync (the bus resyncs periodically).
        this.logger.warn({ err: error, code: 'EVENT_FEED_READ_FAILED' }, 'reading the live event feed failed');
      } finally {
        feed.running = undefined;
      }
    })();
  }

  private scheduleFeed(feed: NonNullable<EventLog['feed']>, ms: number): void {
    if (feed.timer !== undefined || feed.stopped) return;
    feed.timer = setTimeout(() => {
      feed.timer = undefined;
      this.pullFeed();
    }, ms);
    feed.timer.unref();
  }

  private async pullOnce(feed: NonNullable<EventLog['feed']>): Promise<void> {
    const db = kyselyOf(this.store);
    if (db === undefined) return;
    if (feed.cursor < 0) {
      // Followers backfill what is already stored themselves: the feed starts at the store's end now.
      const result = await db.executeQuery<{ max: string | number | null }>(
        CompiledQuery.raw('SELECT MAX(cursor) AS max FROM events', []),
      );
      feed.cursor = Number(result.rows[0]?.max ?? 0);
      return;
    }
    if (this.listeners.size === 0) {
      // Nobody follows: nothing to read, only where the stream is now.
      if (feed.known > feed.cursor) feed.cursor = feed.known;
      feed.gap = undefined;
      feed.own.clear();
      feed.listed = [];
      return;
    }
    try {
      for (;;) {
        // While the feed waits at a hole: a snapshot taken before this listing. A transaction it shows
        // ended had committed (or rolled back) before the listing started, so the listing holds its cursors.
        const waitingAt = feed.gap?.cursor === feed.cursor ? feed.cursor : undefined;
        const before = waitingAt === undefined ? undefined : await this.snapshot(db);
        // The cursors first, with their origin. Cursors listed by an earlier pull that the feed could
        // not pass yet (a hole before them) are kept: only the hole before the first of them is listed
        // again, instead of the whole page at every look at the hole.
        let cursors: { cursor: number; origin: string }[];
        const kept = feed.listed;
        const first = kept[0];
        if (first !== undefined) {
          const hole = await db.executeQuery<{ cursor: number; origin: string }>(
            CompiledQuery.raw('SELECT cursor, origin FROM events WHERE cursor > $1 AND cursor < $2 ORDER BY cursor', [
              feed.cursor,
              first.cursor,
            ]),
          );
          cursors = hole.rows.length === 0 ? kept : [...hole.rows.map(listedOf), ...kept];
        } else {
          const listed = await db.executeQuery<{ cursor: number; origin: string }>(
            CompiledQuery.raw('SELECT cursor, origin FROM events WHERE cursor > $1 ORDER BY cursor LIMIT $2', [
              feed.cursor,
              FEED_PAGE,
            ]),
          );
          cursors = listed.rows.map(listedOf);
        }
        feed.listed = [];
        // Whole rows only for what another node wrote and a listener wants now, each read once: this
        // node's own events are handed over as they were written, and rows read before a hole stopped
        // the feed are kept (both in `feed.own`), not read and parsed again at the next look.
        let wants = this.wantedOrigins();
        await this.readInto(
          feed,
          db,
          cursors.filter((c) => !feed.own.has(c.cursor) && wants(c.origin)).map((c) => c.cursor),
        );
        // Asked again after every wait: a listener's `active` may have turned true meanwhile.
        wants = this.wantedOrigins();
        let blocked = -1;
        for (let i = 0; i < cursors.length; i++) {
          const { cursor, origin } = cursors[i] as { cursor: number; origin: string };
          if (cursor !== feed.cursor + 1) {
            if (!(await this.passGap(feed, db, cursor, before, waitingAt))) {
              blocked = i;
              break;
            }
            wants = this.wantedOrigins();
          }
          feed.gap = undefined;
          feed.cursor = cursor;
          // Not read because no listener wanted it then; one may now (an `active` turned true).
          if (!feed.own.has(cursor) && wants(origin)) {
            await this.readInto(feed, db, [cursor]);
            wants = this.wantedOrigins();
          }
          const event = feed.own.get(cursor);
          feed.own.delete(cursor);
          // Listed, so committed; events are never deleted: always found, but a missing one is never invented.
          if (event !== undefined) this.publish([event]);
        }
        if (blocked >= 0) {
          feed.listed = cursors.slice(blocked);
          this.scheduleFeed(feed, FEED_GAP_RETRY_MS);
          return;
        }
        if (first === undefined && cursors.length < FEED_PAGE) return;
      }
    } finally {
      // Whatever the feed passed (delivered, or a hole given up on) is not kept.
      if (feed.own.size > 0) for (const cursor of feed.own.keys()) if (cursor <= feed.cursor) feed.own.delete(cursor);
    }
  }

  /**
   * Which origins' events some listener may want now (an active listener whose filter names no other
   * origin): the live feed reads other nodes' rows only for those. The rest of a filter is checked
   * on the event itself when it is handed over, as for every event.
   */
  private wantedOrigins(): (origin: string) => boolean {
    let all = false;
    const origins = new Set<string>();
    for (const { filter, active } of this.listeners) {
      if (active !== undefined && !active()) continue;
      if (filter.origin === undefined) {
        all = true;
        break;
      }
      origins.add(filter.origin);
    }
    return all ? () => true : (origin) => origins.has(origin);
  }

  /** Reads, checks and keeps (in `feed.own`) the events at these cursors. */
  private async readInto(
    feed: NonNullable<EventLog['feed']>,
    db: NonNullable<ReturnType<typeof kyselyOf>>,
    cursors: number[],
  ): Promise<void> {
    if (cursors.length === 0) return;
    const rows = await db.executeQuery<Row>(
      CompiledQuery.raw('SELECT * FROM events WHERE cursor = ANY($1::bigint[])', [cursors]),
    );
    for (const row of rows.rows) {
      const event = toStoredEvent(row);
      feed.own.set(event.cursor, event);
    }
  }

  private async snapshot(db: NonNullable<ReturnType<typeof kyselyOf>>): Promise<{ xmin: bigint; xmax: bigint }> {
    const snapshot = await db.executeQuery<{ xmin: string; xmax: string }>(
      CompiledQuery.raw(
        'SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin, pg_snapshot_xmax(pg_current_snapshot())::text AS xmax',
        [],
      ),
    );
    const row = snapshot.rows[0];
    if (row === undefined) throw new Error('pg_current_snapshot() returned no row');
    return { xmin: BigInt(row.xmin), xmax: BigInt(row.xmax) };
  }

  /**
   * Whether the feed may pass the hole before `next`: every transaction running when the hole was
   * first seen had ended before this look's listing (`before`, the snapshot taken before it while the
   * feed waited at this same hole, `waitingAt`), so the listing would hold any cursor they committed
   * in the hole; or it waited too long.
   */
  private async passGap(
    feed: NonNullable<EventLog['feed']>,
    db: NonNullable<ReturnType<typeof kyselyOf>>,
    next: number,
    before: { xmin: bigint } | undefined,
    waitingAt: number | undefined,
  ): Promise<boolean> {
    const now = Date.now();
    if (feed.gap === undefined || feed.gap.cursor !== feed.cursor) {
      // Read after the listing: whatever transaction holds a cursor in the hole was already running then.
      feed.gap = { at: now, cursor: feed.cursor, xmax: (await this.snapshot(db)).xmax };
      return false;
    }
    if (before !== undefined && waitingAt === feed.cursor && before.xmin >= feed.gap.xmax) return true;
    if (now - feed.gap.at > FEED_GAP_MAX_WAIT_MS) {
      this.logger.warn(
        { from: feed.cursor + 1, to: next - 1, code: 'EVENT_FEED_GAP_SKIPPED' },
        'a transaction stayed open too long: live followers skip the cursors it may still commit (they stay in the store)',
      );
      return true;
    }
    return false;
  }

  /**
   * On a PostgreSQL cluster, the cursor up to which the live feed has handed events to followers: every
   * event at or below it that will ever be there is stored now (holes are passed only once no open
   * unit can fill them). A follower that reads the store directly to catch up reads only up to it; the
   * feed hands over what comes after, in order. Undefined on the embedded engine (units commit one at a
   * time) or before the feed knows where it starts.
   */
  get liveFeedCursor(): number | undefined {
    return this.feed !== undefined && this.feed.cursor >= 0 ? this.feed.cursor : undefined;
  }

  get followerCount(): number {
    return this.listeners.size;
  }

  /** Live followers that threw while being handed a committed event (logged; the commit stands). */
  get listenerFailures(): number {
    return this.listenerFailureCount;
  }

  /** Commits whatever is queued now, and waits for a group commit in progress (used on shutdown). */
  async drain(): Promise<void> {
    for (;;) {
      if (this.flushing !== undefined) await this.flushing;
      else if (this.pending.length > 0) await this.flush();
      else return;
    }
  }

  /** The unit-of-work machinery: one transaction, a fresh `Unit`, publication after the commit. */
  private async runUnit<T>(fn: (unit: Unit) => Promise<T>, method: string): Promise<T> {
    this.outsideUnit(method);
    let unit: Unit | undefined;
    let result: T;
    let committed = false;
    try {
      result = await this.store.transaction(async (tx) => {
        // A unit of work may run more than once (the store re-runs one rolled back by a deadlock or a
        // serialization failure): a fresh unit per attempt, so the events it recorded, its
        // afterCommit hooks and its publications are those of the attempt that commits, never of a
        // rolled-back one.
        const current = new Unit(tx, (u, draft) => this.append(u, draft), this.bus);
        unit = current;
        try {
          const value = await this.context.run(current, () => fn(current));
          await current.settled();
          await this.persist(current);
          return value;
        } catch (error) {
          // No record may still be writing once the transaction rolls back.
          current.open = false;
          await current.settled();
          // What this attempt wrote is rolled back: it no longer holds back what others committed.
          this.writing.delete(current);
          throw error;
        }
      });
      committed = true;
    } finally {
      if (unit !== undefined) {
        unit.open = false;
        this.writing.delete(unit);
        // On PostgreSQL followers are fed from the store (`pullFeed`), not from what this unit wrote.
        if (committed && this.feed === undefined) for (const event of unit.unpublished) this.held.push(event);
      }
      this.release();
    }
    if (committed && this.feed !== undefined && unit !== undefined && unit.lastCursor > 0) {
      const cursor = unit.lastCursor;
      const feed = this.feed;
      if (this.listeners.size > 0 && feed.cursor >= 0) {
        for (const event of unit.unpublished) {
          if (feed.own.size >= FEED_OWN_MAX) break;
          if (event.cursor > feed.cursor) feed.own.set(event.cursor, event);
        }
      }
      if (cursor > this.feed.known) this.feed.known = cursor;
      // Other nodes' followers read from their own cursor; this node's read now, without waiting for the NOTIFY.
      this.feed.publisher.offer(cursor);
      this.pullFeed(cursor);
    }
    if (unit !== undefined) {
      for (const hook of unit.after) {
        try {
          hook();
        } catch (error) {
          this.logger.error(
            { err: error, code: 'AFTER_COMMIT_HOOK_FAILED' },
            'an after-commit hook failed; the unit of work stands',
          );
        }
      }
    }
    return result;
  }

  /** Marks that `unit` is about to write events: until their cursors are known, nothing committed is published. */
  private beforeWrite(unit: Unit): void {
    if (unit.firstCursor !== undefined) return;
    unit.firstCursor = Number.NEGATIVE_INFINITY;
    this.writing.add(unit);
  }

  /** The first cursor `unit` wrote is known (undefined: nothing was written): what committed below it may go to followers. */
  private afterWrite(unit: Unit, cursor: number | undefined): void {
    if (unit.firstCursor !== Number.NEGATIVE_INFINITY) return;
    unit.firstCursor = cursor;
    if (cursor === undefined) this.writing.delete(unit);
    this.release();
  }

  /**
   * Hands live followers the committed events no open unit can still precede, in cursor order. On
   * PostgreSQL units interleave: one may commit cursors above those of a unit still open, which a
   * follower tracking its last cursor would otherwise skip. (On SQLite units run one at a time.)
   */
  private release(): void {
    if (this.held.length === 0) return;
    let bound = Number.POSITIVE_INFINITY;
    for (const unit of this.writing)
      if (unit.firstCursor !== undefined && unit.firstCursor < bound) bound = unit.firstCursor;
    let ready: StoredEvent[];
    if (bound === Number.POSITIVE_INFINITY) {
      ready = this.held;
      this.held = [];
    } else {
      ready = this.held.filter((e) => e.cursor < bound);
      if (ready.length === 0) return;
      this.held = this.held.filter((e) => e.cursor >= bound);
    }
    ready.sort((a, b) => a.cursor - b.cursor);
    this.publish(ready);
  }

  /** Refuses, loudly, a call that would open a second unit (or use the outer store) inside an open one. */
  private outsideUnit(method: string): void {
    if (this.context.getStore()?.open === true) {
      throw new Error(
        `EventLog.${method}() was called inside a unit of work: use the UnitOfWork given to you (uow.store, uow.record)`,
      );
    }
  }

  /** Writes what the unit moved, once per origin: chain heads and console time floors. */
  private async persist(unit: Unit): Promise<void> {
    await this.writeRows(unit);
    for (const [origin, entry] of unit.heads) if (entry.dirty) await unit.store.events.setHead(origin, entry.head);
    for (const [origin, floor] of unit.floors)
      if (floor.dirty) await unit.store.meta.set(TIME_FLOOR_KEY + origin, String(floor.time));
  }

  /** The origin's head in this unit: read and locked from the store the first time the unit needs it. */
  private async lockedHead(unit: Unit, origin: string): Promise<StreamHead> {
    let entry = unit.heads.get(origin);
    if (entry === undefined) {
      entry = { head: await unit.store.events.lockHead(origin), dirty: false };
      unit.heads.set(origin, entry);
    }
    return entry.head;
  }

  /** Appends a backend fact to the backend's chain (`UnitOfWork.record`; calls are serialised per unit). */
  private async append(unit: Unit, draft: EventDraft): Promise<StoredEvent> {
    if (!mayEmit('backend', draft.type)) throw new Error(`the backend does not record "${draft.type}" events`);
    // Console events checked before this fact are written before it.
    // Neither awaited when there is nothing to do (most records of a unit): no promise each.
    if (unit.rows.length > 0) await this.writeRows(unit);
    const head = unit.heads.get(BACKEND_ORIGIN)?.head ?? (await this.lockedHead(unit, BACKEND_ORIGIN));
    const id = randomUUID();
    if (unit.linksCause && unit.cause !== undefined) {
      draft = { ...draft, detail: { ...draft.detail, causeEventId: unit.cause } };
    }
    const event = chainEvent(draft, {
      id,
      seq: head.lastSeq + 1,
      prevHash: head.lastHash,
      now: this.clock(),
    });
    if (backendEventProblem(event) !== undefined) {
      // The schema's own words for what is wrong.
      const checked = AssuranceEventSchema.safeParse(event);
      throw new Error(
        `backend event ${event.type} fails its schema: ${checked.error?.message ?? backendEventProblem(event)}`,
      );
    }
    const stored = await this.write(unit, BACKEND_ORIGIN, event, [], draft.subject.console ?? null);
    // Only an event written opens the cause (a record refused above, and caught by its caller, does not).
    if (unit.linksCause) unit.cause ??= id;
    if (draft.outcome === 'success' && draft.reasons.includes(METADATA_LOADED_REASON) && this.bus !== undefined) {
      // Every other node reloads the authenticator models this unit replaced, once it commits.
      await unit.publish('authenticators', {});
    }
    return stored;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.flushing !== undefined) return;
    this.flushScheduled = true;
    // Outside whatever async context queued the batch: the group commit is nobody's nested unit.
    setImmediate(() => {
      this.context.exit(() => {
        void this.flush();
      });
    });
  }

  /** Commits the next group of queued batches; never rejects (each batch's promise carries its outcome). */
  private flush(): Promise<void> {
    this.flushScheduled = false;
    if (this.flushing !== undefined) return this.flushing;
    let take = 0;
    let events = 0;
    for (const batch of this.pending) {
      if (take > 0 && events + batch.events.length > MAX_EVENTS_PER_COMMIT) break;
      events += batch.events.length;
      take++;
    }
    const batches = this.pending.splice(0, take);
    if (batches.length === 0) return Promise.resolve();
    const flushing = this.commitGroup(batches)
      .catch((error: unknown) => {
        // commitGroup settles every batch itself; this is a last guard against a bug there.
        this.logger.error({ err: error, code: 'EVENT_INGEST_FLUSH_FAILED' }, 'event group commit failed');
        for (const b of batches) this.refuse(b, error);
      })
      .finally(() => {
        this.flushing = undefined;
        // What arrived meanwhile is committed on the next turn, so ingest never holds the event loop for long.
        if (this.pending.length > 0) this.scheduleFlush();
      });
    this.flushing = flushing;
    return flushing;
  }

  private async commitGroup(batches: PendingBatch[]): Promise<void> {
    let results: IngestResult[];
    try {
      results = await this.runUnit((unit) => this.ingestGroup(unit, batches), 'ingest');
    } catch (error) {
      if (batches.length === 1) {
        this.fail(batches[0] as PendingBatch, error);
        return;
      }
      // One batch's fault (its session update failing, say) must not refuse the others it was
      // grouped with: commit each on its own, so only the batches that fail are refused (and the
      // later batches of their streams, which are not tried).
      for (const b of batches) {
        if (b.stream?.failure !== undefined) {
          b.reject(b.stream.failure.error);
          continue;
        }
        let result: IngestResult[];
        try {
          result = await this.runUnit((unit) => this.ingestGroup(unit, [b]), 'ingest');
        } catch (own) {
          this.fail(b, own);
          continue;
        }
        b.resolve(result[0] as IngestResult);
      }
      return;
    }
    batches.forEach((b, i) => b.resolve(results[i] as IngestResult));
  }

  /** A batch's unit of work failed: logged, and refused with its stream's later batches. */
  private fail(batch: PendingBatch, error: unknown): void {
    this.logger.error(
      { err: error, origin: batch.origin, code: 'EVENT_INGEST_FAILED' },
      'event ingest transaction failed',
    );
    this.refuse(batch, error);
  }

  /**
   * Refuses a batch, and ends its stream in the same step: every later batch of it waiting in the
   * queue is refused now with the same error, and one queued later at once (`ingest`), so none is
   * committed after this failure (those of the failing group still to be retried are skipped by
   * `commitGroup`). Stored, any of them would leave a gap the next welcome acknowledges past.
   */
  private refuse(batch: PendingBatch, error: unknown): void {
    batch.reject(error);
    const stream = batch.stream;
    if (stream === undefined || stream.failure !== undefined) return;
    stream.failure = { error };
    if (!this.pending.some((p) => p.stream === stream)) return;
    const later = this.pending.filter((p) => p.stream === stream);
    this.pending = this.pending.filter((p) => p.stream !== stream);
    for (const p of later) p.reject(error);
  }

  private async ingestGroup(unit: Unit, batches: PendingBatch[]): Promise<IngestResult[]> {
    // Many consoles' batches, many causes: a backend event here names its console event instead.
    unit.linksCause = false;
    // Every console head of the group is locked first, in one order (sorted), the backend's own
    // head only when a finding or an effect records: two nodes' groups cannot wait on each other.
    for (const origin of [...new Set(batches.map((b) => b.origin))].sort()) await this.lockedHead(unit, origin);
    // Then the sessions the group's events may change, ascending id, before anything records (the
    // backend head): a finding recorded before a later event's effect would otherwise lock head →
    // session, where sign-in and revocation lock session → head (repositories.ts, lock order).
    const changed = sessionsChangedBy(batches.filter((b) => b.effects !== undefined).flatMap((b) => b.events));
    for (const id of changed) await unit.store.sessions.getForUpdate(id);
    const results: IngestResult[] = [];
    for (const b of batches) results.push(await this.ingestOne(unit, b.origin, b.events, b.effects));
    await this.writeRows(unit);
    return results;
  }

  private async ingestOne(
    unit: Unit,
    origin: string,
    events: AssuranceEvent[],
    effects: ConsoleEventEffects | undefined,
  ): Promise<IngestResult> {
    const findings: IngestFinding[] = [];
    let inserted = 0;
    const checks = await this.consoleChecks(unit, origin);
    const sorted = [...events].sort((a, b) => a.seq - b.seq);
    for (const event of sorted) {
      // Per event, nothing is awaited that is already known (the head was locked by `ingestGroup`,
      // most checks need no read): a busy stream does not pay a promise per step.
      const head = unit.heads.get(origin)?.head ?? (await this.lockedHead(unit, origin));
      const late = event.seq <= head.lastSeq;
      const flagged = checks.flags(event, late);
      const integrity = Array.isArray(flagged) ? flagged : await flagged;
      if (late) {
        await this.writeRows(unit);
        const body = eventCanonicalJson(event);
        const hash = bodyHash(body);
        integrity.push(EVENT_FLAGS.late);
        this.beforeWrite(unit);
        const row = this.row(origin, event, body, hash, integrity, origin);
        const result = await unit.store.events.insert(row);
        this.afterWrite(unit, result.inserted ? result.cursor : undefined);
        if (result.inserted) {
          inserted++;
          if (result.cursor > unit.lastCursor) unit.lastCursor = result.cursor;
          checks.report(event.seq, integrity, findings);
          if (this.listeners.size > 0) unit.unpublished.push(this.toStored(row, event, result.cursor));
          // Applied after later events were: only an end (which can only take access away) is.
          if (effects !== undefined && isTakenAsFact({ integrity })) {
            const effect = await effects(unit, event, { late: true });
            if (effect?.apply !== undefined) await effect.apply();
          }
        } else if (result.existingHash !== hash) {
          findings.push({ code: 'EVENT_SEQUENCE_CONFLICT', seq: event.seq });
          await unit.record({
            type: 'integrity-sequence-conflict',
            subject: { console: origin },
            outcome: 'failure',
            reasons: ['sequence-reused-with-different-content'],
            detail: { seq: event.seq, storedHash: result.existingHash, receivedHash: hash },
          });
        }
        continue;
      }
      if (event.seq > head.lastSeq + 1) {
        integrity.push(EVENT_FLAGS.sequenceGap);
        findings.push({ code: 'EVENT_SEQUENCE_GAP', seq: event.seq });
        await unit.record({
          type: 'integrity-sequence-gap',
          subject: { console: origin },
          outcome: 'failure',
          reasons: ['sequence-skipped'],
          detail: { missingFrom: head.lastSeq + 1, missingTo: event.seq - 1 },
        });
      } else if (event.prevHash !== head.lastHash) {
        integrity.push(EVENT_FLAGS.chainBroken);
        findings.push({ code: 'EVENT_CHAIN_BROKEN', seq: event.seq });
        await unit.record({
          type: 'integrity-chain-broken',
          subject: { console: origin },
          outcome: 'failure',
          reasons: ['previous-hash-mismatch'],
          detail: { seq: event.seq, expectedPrevHash: head.lastHash, receivedPrevHash: event.prevHash },
        });
      }
      const asked =
        effects !== undefined && isTakenAsFact({ integrity }) ? effects(unit, event, { late: false }) : undefined;
      const effect = asked instanceof Promise ? await asked : asked;
      if (effect?.refused === true) integrity.push(EVENT_FLAGS.sessionChangeRefused);
      checks.report(event.seq, integrity, findings);
      this.chain(unit, origin, event, integrity);
      inserted++;
      checks.stored(event, integrity);
      if (effect?.apply !== undefined) {
        // The change applies once the event that asks for it is written.
        await this.writeRows(unit);
        await effect.apply();
      }
    }
    // The head row is written once per unit of work (see `persist`), not once per event.
    const head = await this.lockedHead(unit, origin);
    return { upToSeq: head.lastSeq, inserted, findings };
  }

  /**
   * Appends the next event of an origin's chain and moves the unit's head for it (written to the
   * store once, when the unit ends). The canonical JSON is computed once, for both the stored body
   * and the hash. Returns the event as stored (the caller of `record` gets it; followers too, if any).
   */
  private async write(
    unit: Unit,
    origin: string,
    event: AssuranceEvent,
    integrity: string[],
    consoleId: string | null,
  ): Promise<StoredEvent> {
    const body = eventCanonicalJson(event);
    const hash = bodyHash(body);
    this.beforeWrite(unit);
    const row = this.row(origin, event, body, hash, integrity, consoleId);
    const result = await unit.store.events.insert(row);
    this.afterWrite(unit, result.inserted ? result.cursor : undefined);
    if (!result.inserted) throw new Error(`event ${origin}#${event.seq} already stored`);
    if (result.cursor > unit.lastCursor) unit.lastCursor = result.cursor;
    unit.heads.set(origin, { head: { lastSeq: event.seq, lastHash: hash }, dirty: true });
    const stored = this.toStored(row, event, result.cursor);
    if (this.listeners.size > 0) unit.unpublished.push(stored);
    return stored;
  }

  /**
   * Chains a console's (non-late) event into the unit: the head moves now, the row is written with
   * the others by `writeRows`. No other writer can take its (origin, seq): the unit holds the head.
   */
  private chain(unit: Unit, origin: string, event: AssuranceEvent, integrity: string[]): void {
    const body = eventCanonicalJson(event);
    const hash = bodyHash(body);
    unit.rows.push({ row: this.row(origin, event, body, hash, integrity, origin), event });
    unit.heads.set(origin, { head: { lastSeq: event.seq, lastHash: hash }, dirty: true });
  }

  /** Writes the console events the unit has chained so far, in one call. */
  private async writeRows(unit: Unit): Promise<void> {
    if (unit.rows.length === 0) return;
    const pending = unit.rows.splice(0);
    this.beforeWrite(unit);
    const results = await unit.store.events.insertMany(pending.map((p) => p.row));
    const first = results.find((r) => r.inserted);
    this.afterWrite(unit, first?.inserted === true ? first.cursor : undefined);
    const publish = this.listeners.size > 0;
    pending.forEach(({ row, event }, i) => {
      const result = results[i];
      if (result?.inserted !== true) throw new Error(`event ${row.origin}#${row.seq} already stored`);
      if (result.cursor > unit.lastCursor) unit.lastCursor = result.cursor;
      if (publish) unit.unpublished.push(this.toStored(row, event, result.cursor));
    });
  }

  private row(
    origin: string,
    event: AssuranceEvent,
    body: string,
    hash: string,
    integrity: string[],
    consoleId: string | null,
  ): EventRow {
    return {
      origin,
      seq: event.seq,
      id: event.id,
      time: event.time,
      receivedAt: this.clock(),
      type: event.type,
      outcome: event.outcome,
      operatorId: event.subject.operator ?? null,
      consoleId,
      sessionId: event.subject.session ?? null,
      // Only the backend's own events are about a service: a console's `subject.service` is its claim.
      serviceId: origin === BACKEND_ORIGIN ? (event.subject.service ?? null) : null,
      body,
      hash,
      integrity,
    };
  }

  /**
   * The event as followers get it, from the row just written (the same `receivedAt`, hash and flags
   * the store holds, so a follower sees what a later read of the store returns). Built member by
   * member in one shape (an AssuranceEvent has exactly these members: the schema is strict) rather
   * than spread: one per stored event when anyone follows.
   */
  private toStored(row: EventRow, event: AssuranceEvent, cursor: number): StoredEvent {
    const stored: StoredEvent = {
      id: event.id,
      seq: event.seq,
      time: event.time,
      type: event.type,
      subject: event.subject,
      outcome: event.outcome,
      reasons: event.reasons,
      prevHash: event.prevHash,
      origin: row.origin,
      hash: row.hash,
      receivedAt: row.receivedAt,
      integrity: row.integrity,
      cursor,
    };
    if (event.assurance !== undefined) stored.assurance = event.assurance;
    if (event.detail !== undefined) stored.detail = event.detail;
    return stored;
  }

  /**
   * Hands committed events to live followers. The commit has happened: a follower that throws is
   * logged and counted, never allowed to make a durable batch (or a `record()`) look failed.
   */
  private publish(events: StoredEvent[]): void {
    if (this.listeners.size === 0) return;
    for (const event of events) {
      for (const { filter, listener, active } of this.listeners) {
        if (!matches(filter, event) || (active !== undefined && !active())) continue;
        try {
          listener(event);
        } catch (error) {
          this.listenerFailureCount++;
          this.logger.error(
            { err: error, cursor: event.cursor, code: 'EVENT_FOLLOWER_FAILED' },
            'a live event follower failed; the event is stored',
          );
        }
      }
    }
  }

  /**
   * The checks a console's events get before they are stored (docs/events.md, "What a console may
   * send"): the types a console may send, `time` against the backend's receive time and the
   * console's previous event, and subjects the console could have witnessed. The backend's own
   * origin gets none. Everything they compare against is read from the store in `unit`.
   */
  private async consoleChecks(unit: Unit, origin: string) {
    const findings = new Map<string, IngestFindingCode>([
      [EVENT_FLAGS.typeNotAllowed, 'EVENT_TYPE_NOT_ALLOWED'],
      [EVENT_FLAGS.timeInFuture, 'EVENT_TIME_IN_FUTURE'],
      [EVENT_FLAGS.timeBeforePrevious, 'EVENT_TIME_BACKDATED'],
      [EVENT_FLAGS.subjectNotWitnessed, 'EVENT_SUBJECT_NOT_WITNESSED'],
      [EVENT_FLAGS.sessionChangeRefused, 'EVENT_SESSION_CHANGE_REFUSED'],
    ]);
    const report = (seq: number, integrity: readonly string[], out: IngestFinding[]) => {
      for (const flag of integrity) {
        const code = findings.get(flag);
        if (code !== undefined) out.push({ code, seq });
      }
    };
    if (origin === BACKEND_ORIGIN) {
      return {
        flags: (): string[] => [],
        report: () => undefined,
        stored: () => undefined,
      };
    }
    const receivedAt = this.clock();
    const enrolledAt = await this.enrolmentTime(unit, origin);
    const floor = await this.timeFloor(unit, origin);
    // Looked up once per batch: a session's console and operator never change.
    const sessions = new Map<string, { consoleId: string; operatorId: string } | null>();
    const operators = new Map<string, boolean>();
    const sessionOf = async (id: string) => {
      let known = sessions.get(id);
      if (known === undefined) {
        const record = await unit.store.sessions.get(id);
        known = record === undefined ? null : { consoleId: record.consoleId, operatorId: record.operatorId };
        sessions.set(id, known);
      }
      return known;
    };
    /** Whether the subject was witnessed, from what this batch already read (undefined: a read is needed). */
    const witnessedKnown = (subject: AssuranceEvent['subject']): boolean | undefined => {
      if (subject.session !== undefined) {
        const session = sessions.get(subject.session);
        if (session === undefined) return undefined;
        if (session === null || session.consoleId !== origin) return false;
        return subject.operator === undefined || subject.operator === session.operatorId;
      }
      if (subject.operator !== undefined) return operators.get(subject.operator);
      return true;
    };
    const witnessed = async (subject: AssuranceEvent['subject']): Promise<boolean> => {
      if (subject.session !== undefined) {
        const session = await sessionOf(subject.session);
        if (session === null || session.consoleId !== origin) return false;
        return subject.operator === undefined || subject.operator === session.operatorId;
      }
      if (subject.operator !== undefined) {
        let seen = operators.get(subject.operator);
        if (seen === undefined) {
          seen = await this.operatorSignedInOn(unit, origin, subject.operator);
          operators.set(subject.operator, seen);
        }
        return seen;
      }
      return true;
    };
    return {
      /** The event's flags; a promise only when a session or an operator must be read first. */
      flags: (event: AssuranceEvent, late: boolean): string[] | Promise<string[]> => {
        const flags: string[] = [];
        if (event.subject.console !== undefined && event.subject.console !== origin) {
          flags.push(EVENT_FLAGS.subjectConsoleMismatch);
        }
        if (!mayEmit('console', event.type)) flags.push(EVENT_FLAGS.typeNotAllowed, EVENT_FLAGS.refused);
        if (event.time > receivedAt + EVENT_CLOCK_SKEW_MS) {
          flags.push(EVENT_FLAGS.timeInFuture);
          if (!flags.includes(EVENT_FLAGS.refused)) flags.push(EVENT_FLAGS.refused);
        } else if (!late && event.time < Math.max(enrolledAt, floor.time) - EVENT_CLOCK_SKEW_MS) {
          flags.push(EVENT_FLAGS.timeBeforePrevious);
        }
        const known = witnessedKnown(event.subject);
        if (known !== undefined) {
          if (!known) flags.push(EVENT_FLAGS.subjectNotWitnessed);
          return flags;
        }
        return witnessed(event.subject).then((seen) => {
          if (!seen) flags.push(EVENT_FLAGS.subjectNotWitnessed);
          return flags;
        });
      },
      report,
      stored: (event: AssuranceEvent, integrity: readonly string[]) => {
        if (integrity.includes(EVENT_FLAGS.timeInFuture) || integrity.includes(EVENT_FLAGS.timeBeforePrevious)) return;
        if (event.time > floor.time) {
          floor.time = event.time;
          floor.dirty = true;
        }
      },
    };
  }

  /** When the console was enrolled (0 if the store does not know it). */
  private async enrolmentTime(unit: Unit, origin: string): Promise<number> {
    const cached = this.enrolledAt.get(origin);
    if (cached !== undefined) return cached;
    const record = await unit.store.consoles.get(origin);
    if (record === undefined) return 0;
    if (this.enrolledAt.size >= 10_000) this.enrolledAt.clear();
    this.enrolledAt.set(origin, record.enrolledAt);
    return record.enrolledAt;
  }

  /**
   * The console's time floor in this unit: the latest `time` among its stored events not flagged
   * for their time, as the store keeps it (written when a unit raises it). A chain stored before the
   * floor was kept starts from its head event's time.
   */
  private async timeFloor(unit: Unit, origin: string): Promise<{ time: number; dirty: boolean }> {
    let floor = unit.floors.get(origin);
    if (floor === undefined) {
      const kept = await unit.store.meta.get(TIME_FLOOR_KEY + origin);
      let time = kept === undefined ? Number.NaN : Number(kept);
      if (!Number.isFinite(time)) {
        const head = await this.lockedHead(unit, origin);
        const [row] = head.lastSeq === 0 ? [] : await unit.store.events.rawChain(origin, head.lastSeq - 1, 1);
        time = row === undefined ? 0 : readTime(row.body);
      }
      floor = { time, dirty: false };
      unit.floors.set(origin, floor);
    }
    return floor;
  }

  /** Whether the operator ever had a session on this console (so the console could have seen them). */
  private async operatorSignedInOn(unit: Unit, consoleId: string, operatorId: string): Promise<boolean> {
    const key = `${consoleId}\u0000${operatorId}`;
    if (this.operatorsSeen.has(key)) return true;
    const seen =
      (
        await unit.store.events.query({
          origin: BACKEND_ORIGIN,
          console: consoleId,
          operator: operatorId,
          type: 'session-established',
          limit: 1,
        })
      ).length > 0;
    if (seen) {
      // Remembered once this unit commits: what a rolled-back unit read is not taken as known.
      unit.afterCommit(() => {
        if (this.operatorsSeen.size >= 10_000) this.operatorsSeen.clear();
        this.operatorsSeen.add(key);
      });
    }
    return seen;
  }
}

function listedOf(row: { cursor: number | string; origin: string }): { cursor: number; origin: string } {
  return { cursor: Number(row.cursor), origin: row.origin };
}

/** The `time` of a stored event body (0 when unreadable: no floor rather than a wrong one). */
function readTime(body: string): number {
  try {
    const time = (JSON.parse(body) as { time?: unknown }).time;
    return typeof time === 'number' && Number.isFinite(time) ? time : 0;
  } catch {
    return 0;
  }
}

export function matches(filter: EventFilter, event: StoredEvent): boolean {
  if (filter.operator !== undefined && event.subject.operator !== filter.operator) return false;
  // Same rule as the store's console column: a console's own events belong to it, backend events to their subject.
  const consoleId = event.origin === BACKEND_ORIGIN ? event.subject.console : event.origin;
  if (filter.console !== undefined && consoleId !== filter.console) return false;
  if (filter.session !== undefined && event.subject.session !== filter.session) return false;
  // Same rule as the store's service column: backend events only.
  if (filter.service !== undefined && (event.origin !== BACKEND_ORIGIN || event.subject.service !== filter.service)) {
    return false;
  }
  if (filter.type !== undefined && event.type !== filter.type) return false;
  if (filter.origin !== undefined && event.origin !== filter.origin) return false;
  if (filter.from !== undefined && event.time < filter.from) return false;
  if (filter.to !== undefined && event.time >= filter.to) return false;
  return true;
}
