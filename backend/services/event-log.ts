import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { canonicalJson } from '../../shared/canonical-json.js';
import {
  AssuranceEventSchema,
  GENESIS_HASH,
  chainEvent,
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

export interface IngestFinding {
  code: Extract<ErrorCode, 'EVENT_SEQUENCE_GAP' | 'EVENT_SEQUENCE_CONFLICT' | 'EVENT_CHAIN_BROKEN'>;
  seq: number;
}

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

  /** Queues a console's batch for the next group commit; resolves once it is durable. */
  ingest(origin: string, events: AssuranceEvent[]): Promise<IngestResult> {
    return new Promise((resolve, reject) => {
      this.pending.push({ origin, events, resolve, reject });
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
        for (const finding of row.integrity) if (finding !== 'late') report(row.seq, `recorded:${finding}`);
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
      results = this.atomically(() => batches.map((b) => this.ingestOne(b.origin, b.events)));
    } catch (error) {
      this.logger.error({ err: error }, 'event ingest transaction failed');
      for (const b of batches) b.reject(error);
      return;
    }
    batches.forEach((b, i) => b.resolve(results[i] as IngestResult));
  }

  private ingestOne(origin: string, events: AssuranceEvent[]): IngestResult {
    const findings: IngestFinding[] = [];
    let inserted = 0;
    const sorted = [...events].sort((a, b) => a.seq - b.seq);
    for (const event of sorted) {
      const head = this.head(origin);
      const integrity: string[] = [];
      if (event.subject.console !== undefined && event.subject.console !== origin) {
        integrity.push('subject-console-mismatch');
      }
      if (event.seq <= head.lastSeq) {
        const body = canonicalJson(event);
        const hash = sha256Hex(body);
        const result = this.store.events.insert(this.row(origin, event, body, hash, [...integrity, 'late'], origin));
        if (result.inserted) {
          inserted++;
          if (this.listeners.size > 0) {
            this.unpublished.push(this.toStored(origin, event, hash, [...integrity, 'late'], result.cursor));
          }
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
        integrity.push('sequence-gap');
        findings.push({ code: 'EVENT_SEQUENCE_GAP', seq: event.seq });
        this.record({
          type: 'integrity-sequence-gap',
          subject: { console: origin },
          outcome: 'failure',
          reasons: ['sequence-skipped'],
          detail: { missingFrom: head.lastSeq + 1, missingTo: event.seq - 1 },
        });
      } else if (event.prevHash !== head.lastHash) {
        integrity.push('chain-broken');
        findings.push({ code: 'EVENT_CHAIN_BROKEN', seq: event.seq });
        this.record({
          type: 'integrity-chain-broken',
          subject: { console: origin },
          outcome: 'failure',
          reasons: ['previous-hash-mismatch'],
          detail: { seq: event.seq, expectedPrevHash: head.lastHash, receivedPrevHash: event.prevHash },
        });
      }
      this.write(origin, event, integrity, origin, false);
      inserted++;
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

  private publish(events: StoredEvent[]): void {
    if (this.listeners.size === 0) return;
    for (const event of events) {
      for (const { filter, listener } of this.listeners) {
        if (matches(filter, event)) listener(event);
      }
    }
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
