import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { canonicalJson } from '../../shared/canonical-json.js';
import {
  AssuranceEventSchema,
  EVENT_CLOCK_SKEW_MS,
  EVENT_FLAGS,
  GENESIS_HASH,
  chainEvent,
  isTakenAsFact,
  mayEmit,
  type AssuranceEvent,
  type EventDraft,
  type StoredEvent,
} from '../../shared/events.js';
import { BatonError, type ErrorCode } from '../../shared/errors.js';
import { sha256Hex } from '../crypto/secrets.js';
import type { EventQuery, EventRow, StreamHead, Store } from '../store/repositories.js';

export const BACKEND_ORIGIN = 'backend';

/**
 * Most console events committed in one group commit. A commit runs synchronously, so this bounds
 * how long ingest holds the event loop (sign-ins, revocation pushes) when many consoles upload at
 * once; whatever is left is committed on the next turn.
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
 * What a stored console event does to the backend's state, decided in the ingest transaction just
 * before the event is written and applied right after it: the state change and the events that
 * record it commit (or roll back) together with the batch.
 */
export interface ConsoleEventEffect {
  /** The backend declines the change the event asks for: the event is stored flagged `session-change-refused`. */
  refused?: boolean;
  /** Makes the change (and records the backend's event naming it); runs once the console's event is written. */
  apply?: () => void;
}

/**
 * Called for each console event that is stored and taken as a fact, in `seq` order. `late` events
 * (filling an earlier gap) arrive after later ones were applied.
 */
export type ConsoleEventEffects = (event: AssuranceEvent, stored: { late: boolean }) => ConsoleEventEffect | undefined;

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

interface PendingBatch {
  origin: string;
  events: AssuranceEvent[];
  effects: ConsoleEventEffects | undefined;
  resolve: (result: IngestResult) => void;
  reject: (error: unknown) => void;
}

export function eventHash(event: AssuranceEvent): string {
  return sha256Hex(canonicalJson(event));
}

/**
 * The audit trail. Records the backend's own facts on its own hash chain, ingests consoles'
 * batches idempotently on (console, seq) with gap and chain checks, and feeds live followers.
 * Console batches arriving together are committed in one transaction (group commit): the
 * acknowledgement is sent only after that commit returns.
 */
export class EventLog {
  private readonly heads = new Map<string, StreamHead>();
  private readonly listeners = new Set<{ filter: EventFilter; listener: EventListener }>();
  private pending: PendingBatch[] = [];
  private flushScheduled = false;
  private depth = 0;
  private unpublished: StoredEvent[] = [];
  /** Per origin, the latest `time` of a stored event not marked for its time: the floor for the next one. */
  private readonly lastTimes = new Map<string, number>();
  /** (console, operator) pairs known to have had a session on that console. */
  private readonly operatorsSeen = new Set<string>();
  private listenerFailureCount = 0;

  constructor(
    private readonly store: Store,
    private readonly clock: () => number,
    private readonly logger: Logger,
  ) {}

  /**
   * Runs `fn` in one store transaction. Events recorded inside reach live followers only after the
   * commit; on rollback the cached chain heads are dropped and reloaded from the store.
   */
  atomically<T>(fn: () => T): T {
    this.depth++;
    let result: T;
    try {
      result = this.store.transaction(fn);
    } catch (error) {
      this.depth--;
      if (this.depth === 0) {
        this.heads.clear();
        this.lastTimes.clear();
        this.unpublished = [];
      }
      throw error;
    }
    this.depth--;
    if (this.depth === 0 && this.unpublished.length > 0) {
      const events = this.unpublished;
      this.unpublished = [];
      this.publish(events);
    }
    return result;
  }

  /** Records a backend fact, in the caller's transaction when there is one. */
  record(draft: EventDraft): StoredEvent {
    if (!mayEmit('backend', draft.type)) throw new Error(`the backend does not record "${draft.type}" events`);
    if (this.depth === 0) return this.atomically(() => this.record(draft));
    const head = this.head(BACKEND_ORIGIN);
    const event = chainEvent(draft, {
      id: randomUUID(),
      seq: head.lastSeq + 1,
      prevHash: head.lastHash,
      now: this.clock(),
    });
    const checked = AssuranceEventSchema.safeParse(event);
    if (!checked.success) throw new Error(`backend event ${event.type} fails its schema: ${checked.error.message}`);
    const { hash, cursor } = this.write(BACKEND_ORIGIN, event, [], draft.subject.console ?? null);
    return this.toStored(BACKEND_ORIGIN, event, hash, [], cursor);
  }

  /**
   * Queues a console's batch for the next group commit; resolves once it is durable. `effects`
   * turns the events actually stored into state changes inside the same transaction; a failure
   * anywhere (storage or effect) rolls the whole batch back and rejects.
   */
  ingest(origin: string, events: AssuranceEvent[], effects?: ConsoleEventEffects): Promise<IngestResult> {
    return new Promise((resolve, reject) => {
      this.pending.push({ origin, events, effects, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Highest stored sequence and hash for an origin. */
  head(origin: string): StreamHead {
    let head = this.heads.get(origin);
    if (head === undefined) {
      head = this.store.events.head(origin) ?? { lastSeq: 0, lastHash: GENESIS_HASH };
      this.heads.set(origin, head);
    }
    return head;
  }

  query(query: EventQuery): StoredEvent[] {
    return this.store.events.query(query);
  }

  /**
   * Re-walks an origin's stored chain: recomputes each event's hash from its stored body and checks
   * it against the stored hash and the next event's `prevHash`. An edit or a deletion in the
   * database shows as the first problem found. Findings recorded at ingest are reported too.
   */
  verifyChain(origin: string): ChainReport {
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
      const page = this.store.events.rawChain(origin, after, 1000);
      for (const row of page) {
        // The stored body is the canonical JSON that was hashed: re-hash it as it is now.
        if (sha256Hex(row.body) !== row.hash) report(row.seq, 'hash-mismatch');
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
    const head = this.store.events.head(origin);
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

  subscribe(filter: EventFilter, listener: EventListener): () => void {
    const entry = { filter, listener };
    this.listeners.add(entry);
    return () => this.listeners.delete(entry);
  }

  get followerCount(): number {
    return this.listeners.size;
  }

  /** Live followers that threw while being handed a committed event (logged; the commit stands). */
  get listenerFailures(): number {
    return this.listenerFailureCount;
  }

  /** Commits whatever is queued now (used on shutdown). */
  drain(): void {
    while (this.pending.length > 0) this.flush();
  }

  private flush(): void {
    this.flushScheduled = false;
    let take = 0;
    let events = 0;
    for (const batch of this.pending) {
      if (take > 0 && events + batch.events.length > MAX_EVENTS_PER_COMMIT) break;
      events += batch.events.length;
      take++;
    }
    const batches = this.pending.splice(0, take);
    if (this.pending.length > 0) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    if (batches.length === 0) return;
    let results: IngestResult[];
    try {
      results = this.atomically(() => batches.map((b) => this.ingestOne(b.origin, b.events, b.effects)));
    } catch (error) {
      if (batches.length === 1) {
        this.logger.error({ err: error, origin: batches[0]?.origin }, 'event ingest transaction failed');
        batches[0]?.reject(error);
        return;
      }
      // One batch's fault (its session update failing, say) must not refuse the others it was
      // grouped with: commit each on its own, so only the batches that fail are refused.
      for (const b of batches) {
        let result: IngestResult;
        try {
          result = this.atomically(() => this.ingestOne(b.origin, b.events, b.effects));
        } catch (own) {
          this.logger.error({ err: own, origin: b.origin }, 'event ingest transaction failed');
          b.reject(own);
          continue;
        }
        b.resolve(result);
      }
      return;
    }
    batches.forEach((b, i) => b.resolve(results[i] as IngestResult));
  }

  private ingestOne(origin: string, events: AssuranceEvent[], effects: ConsoleEventEffects | undefined): IngestResult {
    const findings: IngestFinding[] = [];
    let inserted = 0;
    const checks = this.consoleChecks(origin);
    const sorted = [...events].sort((a, b) => a.seq - b.seq);
    for (const event of sorted) {
      const head = this.head(origin);
      const late = event.seq <= head.lastSeq;
      const integrity = checks.flags(event, late);
      if (late) {
        const body = canonicalJson(event);
        const hash = sha256Hex(body);
        integrity.push(EVENT_FLAGS.late);
        const result = this.store.events.insert(this.row(origin, event, body, hash, integrity, origin));
        if (result.inserted) {
          inserted++;
          checks.report(event.seq, integrity, findings);
          if (this.listeners.size > 0) {
            this.unpublished.push(this.toStored(origin, event, hash, integrity, result.cursor));
          }
          // Applied after later events were: only an end (which can only take access away) is.
          if (effects !== undefined && isTakenAsFact({ integrity })) effects(event, { late: true })?.apply?.();
        } else if (result.existingHash !== hash) {
          findings.push({ code: 'EVENT_SEQUENCE_CONFLICT', seq: event.seq });
          this.record({
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
        this.record({
          type: 'integrity-sequence-gap',
          subject: { console: origin },
          outcome: 'failure',
          reasons: ['sequence-skipped'],
          detail: { missingFrom: head.lastSeq + 1, missingTo: event.seq - 1 },
        });
      } else if (event.prevHash !== head.lastHash) {
        integrity.push(EVENT_FLAGS.chainBroken);
        findings.push({ code: 'EVENT_CHAIN_BROKEN', seq: event.seq });
        this.record({
          type: 'integrity-chain-broken',
          subject: { console: origin },
          outcome: 'failure',
          reasons: ['previous-hash-mismatch'],
          detail: { seq: event.seq, expectedPrevHash: head.lastHash, receivedPrevHash: event.prevHash },
        });
      }
      const effect =
        effects !== undefined && isTakenAsFact({ integrity }) ? effects(event, { late: false }) : undefined;
      if (effect?.refused === true) integrity.push(EVENT_FLAGS.sessionChangeRefused);
      checks.report(event.seq, integrity, findings);
      this.write(origin, event, integrity, origin, false);
      inserted++;
      checks.stored(event, integrity);
      effect?.apply?.();
    }
    // The head row is written once per batch (same transaction), not once per event.
    const head = this.head(origin);
    if (inserted > 0) this.store.events.setHead(origin, head);
    return { upToSeq: head.lastSeq, inserted, findings };
  }

  /**
   * Appends the next event of an origin's chain and moves the head (in the store too unless the
   * caller persists it once for a whole batch). The canonical JSON is computed once, for both the
   * stored body and the hash; the StoredEvent is built only when a live follower will receive it.
   */
  private write(
    origin: string,
    event: AssuranceEvent,
    integrity: string[],
    consoleId: string | null,
    persistHead = true,
  ): { hash: string; cursor: number } {
    const body = canonicalJson(event);
    const hash = sha256Hex(body);
    const result = this.store.events.insert(this.row(origin, event, body, hash, integrity, consoleId));
    if (!result.inserted) throw new Error(`event ${origin}#${event.seq} already stored`);
    const head = { lastSeq: event.seq, lastHash: hash };
    if (persistHead) this.store.events.setHead(origin, head);
    this.heads.set(origin, head);
    if (this.listeners.size > 0) this.unpublished.push(this.toStored(origin, event, hash, integrity, result.cursor));
    return { hash, cursor: result.cursor };
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
      body,
      hash,
      integrity,
    };
  }

  private toStored(
    origin: string,
    event: AssuranceEvent,
    hash: string,
    integrity: string[],
    cursor: number,
  ): StoredEvent {
    return { ...event, origin, hash, receivedAt: this.clock(), integrity, cursor };
  }

  /**
   * Hands committed events to live followers. The commit has happened: a follower that throws is
   * logged and counted, never allowed to make a durable batch (or a `record()`) look failed.
   */
  private publish(events: StoredEvent[]): void {
    if (this.listeners.size === 0) return;
    for (const event of events) {
      for (const { filter, listener } of this.listeners) {
        if (!matches(filter, event)) continue;
        try {
          listener(event);
        } catch (error) {
          this.listenerFailureCount++;
          this.logger.error({ err: error, cursor: event.cursor }, 'a live event follower failed; the event is stored');
        }
      }
    }
  }

  /**
   * The checks a console's events get before they are stored (docs/events.md, "What a console may
   * send"): the types a console may send, `time` against the backend's receive time and the
   * console's previous event, and subjects the console could have witnessed. The backend's own
   * origin gets none.
   */
  private consoleChecks(origin: string) {
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
      return { flags: () => [] as string[], report: () => undefined, stored: () => undefined };
    }
    const receivedAt = this.clock();
    const enrolledAt = this.store.consoles.get(origin)?.enrolledAt ?? 0;
    // Looked up once per batch: a session's console and operator never change.
    const sessions = new Map<string, { consoleId: string; operatorId: string } | null>();
    const operators = new Map<string, boolean>();
    const sessionOf = (id: string) => {
      let known = sessions.get(id);
      if (known === undefined) {
        const record = this.store.sessions.get(id);
        known = record === undefined ? null : { consoleId: record.consoleId, operatorId: record.operatorId };
        sessions.set(id, known);
      }
      return known;
    };
    const witnessed = (subject: AssuranceEvent['subject']): boolean => {
      if (subject.session !== undefined) {
        const session = sessionOf(subject.session);
        if (session === null || session.consoleId !== origin) return false;
        return subject.operator === undefined || subject.operator === session.operatorId;
      }
      if (subject.operator !== undefined) {
        let seen = operators.get(subject.operator);
        if (seen === undefined) {
          seen = this.operatorSignedInOn(origin, subject.operator);
          operators.set(subject.operator, seen);
        }
        return seen;
      }
      return true;
    };
    return {
      flags: (event: AssuranceEvent, late: boolean): string[] => {
        const flags: string[] = [];
        if (event.subject.console !== undefined && event.subject.console !== origin) {
          flags.push(EVENT_FLAGS.subjectConsoleMismatch);
        }
        if (!mayEmit('console', event.type)) flags.push(EVENT_FLAGS.typeNotAllowed, EVENT_FLAGS.refused);
        if (event.time > receivedAt + EVENT_CLOCK_SKEW_MS) {
          flags.push(EVENT_FLAGS.timeInFuture);
          if (!flags.includes(EVENT_FLAGS.refused)) flags.push(EVENT_FLAGS.refused);
        } else if (!late && event.time < Math.max(enrolledAt, this.lastTime(origin)) - EVENT_CLOCK_SKEW_MS) {
          flags.push(EVENT_FLAGS.timeBeforePrevious);
        }
        if (!witnessed(event.subject)) flags.push(EVENT_FLAGS.subjectNotWitnessed);
        return flags;
      },
      report,
      stored: (event: AssuranceEvent, integrity: readonly string[]) => {
        if (integrity.includes(EVENT_FLAGS.timeInFuture) || integrity.includes(EVENT_FLAGS.timeBeforePrevious)) return;
        if (event.time > this.lastTime(origin)) this.lastTimes.set(origin, event.time);
      },
    };
  }

  /** The latest `time` among an origin's stored events (the head's, when not cached). */
  private lastTime(origin: string): number {
    let time = this.lastTimes.get(origin);
    if (time === undefined) {
      const head = this.head(origin);
      time =
        head.lastSeq === 0
          ? 0
          : (this.store.events.query({ origin, afterSeq: head.lastSeq - 1, limit: 1 })[0]?.time ?? 0);
      this.lastTimes.set(origin, time);
    }
    return time;
  }

  /** Whether the operator ever had a session on this console (so the console could have seen them). */
  private operatorSignedInOn(consoleId: string, operatorId: string): boolean {
    const key = `${consoleId}\u0000${operatorId}`;
    if (this.operatorsSeen.has(key)) return true;
    const seen =
      this.store.events.query({
        origin: BACKEND_ORIGIN,
        console: consoleId,
        operator: operatorId,
        type: 'session-established',
        limit: 1,
      }).length > 0;
    if (seen) {
      if (this.operatorsSeen.size >= 10_000) this.operatorsSeen.clear();
      this.operatorsSeen.add(key);
    }
    return seen;
  }
}

export function matches(filter: EventFilter, event: StoredEvent): boolean {
  if (filter.operator !== undefined && event.subject.operator !== filter.operator) return false;
  // Same rule as the store's console column: a console's own events belong to it, backend events to their subject.
  const consoleId = event.origin === BACKEND_ORIGIN ? event.subject.console : event.origin;
  if (filter.console !== undefined && consoleId !== filter.console) return false;
  if (filter.session !== undefined && event.subject.session !== filter.session) return false;
  if (filter.type !== undefined && event.type !== filter.type) return false;
  if (filter.origin !== undefined && event.origin !== filter.origin) return false;
  if (filter.from !== undefined && event.time < filter.from) return false;
  if (filter.to !== undefined && event.time >= filter.to) return false;
  return true;
}
