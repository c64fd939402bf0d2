import { createHash, randomUUID } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  copyFileSync,
  ftruncateSync,
} from 'node:fs';
import { join } from 'node:path';
import { JournalWriter, type JournalPart } from './journal-writer.js';
import { canonicalJson } from '../../shared/canonical-json.js';
import { BatonError } from '../../shared/errors.js';
import {
  AssuranceEventSchema,
  GENESIS_HASH,
  chainEvent,
  type AssuranceEvent,
  type EventDraft,
} from '../../shared/events.js';

/** Events per journal segment; a segment is deleted once every event in it is acknowledged. */
export const SEGMENT_EVENTS = 5000;
/** Share of the cap at which the outbox reports itself near full. */
export const NEAR_FULL_RATIO = 0.9;
/** Journal lines kept in memory for their first send (about 0.5 KiB each). */
export const UNSENT_LINE_CACHE = 4096;

const SEGMENT = /^segment-(\d{16})\.jsonl$/;
const ACKED_FILE = 'acked';

export interface OutboxStatus {
  /** Events written and not yet acknowledged by the backend. */
  pending: number;
  max: number;
  nearFull: boolean;
  lastSeq: number;
  ackedSeq: number;
}

export interface RecoveryReport {
  /** Events found in the journal and not yet acknowledged. */
  recovered: number;
  /** A torn last line (a write cut short by a crash) that was dropped: it never counted as emitted. */
  tornTail: boolean;
  /** Lines that could not be read; their segment was copied to `quarantine/` for IT. */
  corrupt: { file: string; line: number; reason: string }[];
}

export function hashEvent(event: AssuranceEvent): string {
  return createHash('sha256').update(canonicalJson(event)).digest('hex');
}

/**
 * An emitted event and its caller's promise, until the writer has fsync'd it. A class, not an
 * object literal: a whole group of these is alive whenever V8 scavenges while the main thread waits
 * for the writer, and V8 would then pretenure a literal's allocation site — every later waiter born
 * in the old space and dying there, between the queued events it holds (see docs/benchmarks.md §6).
 */
class Waiter {
  constructor(
    readonly event: AssuranceEvent,
    readonly resolve: (event: AssuranceEvent) => void,
    readonly reject: (error: unknown) => void,
  ) {}
}

export interface OutboxOptions {
  max: number;
  clock?: () => number;
  /**
   * Writing the `acked` file or dropping acknowledged segments failed (in the background). Nothing is
   * lost: the journal keeps more than it needs and the backend's next `welcome` says again what it holds.
   */
  onAckError?: (error: BatonError) => void;
}

/**
 * The agent's durable event outbox: an append-only journal of JSON lines in segment files. `emit`
 * resolves only once the event's line is on disk; events emitted while a write is on its way share
 * the next one. The disk work goes through `JournalWriter` (libuv's thread pool), in order. Events
 * leave the journal only when the backend acknowledges them. Past `max` pending events `emit` refuses
 * with OUTBOX_FULL; it never drops an event silently.
 */
export class EventOutbox {
  private events: AssuranceEvent[] = [];
  private lastSeq = 0;
  private lastHash = GENESIS_HASH;
  private ackedSeq = 0;
  /** Emitted, waiting for the next write. */
  private queue: Waiter[] = [];
  /** Handed to the writer, waiting for its fsync. */
  private writing: Waiter[] = [];
  /** Journal lines of recently written events, kept (bounded) until they are sent once. */
  private readonly unsentLines = new Map<number, string>();
  private flushScheduled = false;
  private writer: JournalWriter | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly dir: string,
    private max: number,
    private readonly clock: () => number,
    private readonly onAckError: (error: BatonError) => void,
  ) {}

  /** Opens (and recovers) the journal in `dir`, then starts its writer. */
  static open(dir: string, options: OutboxOptions): { outbox: EventOutbox; report: RecoveryReport } {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700); // mkdir's mode does not apply to a directory that already existed
    const outbox = new EventOutbox(dir, options.max, options.clock ?? Date.now, options.onAckError ?? (() => {}));
    const report = outbox.recover();
    outbox.writer = JournalWriter.start(dir, { segmentPattern: SEGMENT, segmentEvents: SEGMENT_EVENTS });
    return { outbox, report };
  }

  /** Events emitted and not yet acknowledged: journaled, being written, or waiting to be. */
  private get held(): number {
    return this.events.length + this.writing.length + this.queue.length;
  }

  get status(): OutboxStatus {
    return {
      pending: this.held,
      max: this.max,
      nearFull: this.held >= this.max * NEAR_FULL_RATIO,
      lastSeq: this.lastSeq,
      ackedSeq: this.ackedSeq,
    };
  }

  /** The policy changed the cap. Lowering it below what is pending drops nothing: new events wait for acks. */
  setMax(max: number): void {
    this.max = max;
  }

  /**
   * Journals an event; resolves once it is on disk. Only the event's content is taken here (its id and
   * time); numbering, chaining, the schema check and hashing happen with the next write, in order, so
   * a caller that records an event while changing state (a switch) is not held up by them. An event
   * that fails its schema is refused then (EVENT_SCHEMA_INVALID) and takes no number.
   */
  emit(draft: EventDraft): Promise<AssuranceEvent> {
    if (this.closed) return Promise.reject(new BatonError('INTERNAL', 'The event outbox is closed'));
    if (this.held >= this.max) {
      return Promise.reject(
        new BatonError('OUTBOX_FULL', `The event outbox holds ${this.max} unacknowledged events; refusing to drop any`),
      );
    }
    // Numbered and chained in `chainQueued`; the fields exist now, so every event has one shape.
    const event = chainEvent(draft, { id: randomUUID(), seq: 0, prevHash: '', now: this.clock() });
    return new Promise((resolve, reject) => {
      this.queue.push(new Waiter(event, resolve, reject));
      this.scheduleFlush();
    });
  }

  /** Unacknowledged events in order, at most `limit`: the next batch to send. */
  pending(limit: number): AssuranceEvent[] {
    return this.events.slice(0, limit);
  }

  /**
   * The event's JSON line for sending. A recently written event's line is reused (and forgotten) so a
   * busy console serialises each event once; the cache is bounded so an offline backlog costs no more.
   */
  takeLine(event: AssuranceEvent): string {
    const line = this.unsentLines.get(event.seq);
    if (line === undefined) return JSON.stringify(event);
    this.unsentLines.delete(event.seq);
    return line;
  }

  /** Unacknowledged events after `seq`, in order, at most `limit`: the next batch past those in flight. */
  pendingAfter(seq: number, limit: number): AssuranceEvent[] {
    let lo = 0;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.events[mid]?.seq ?? Infinity) <= seq) lo = mid + 1;
      else hi = mid;
    }
    return this.events.slice(lo, lo + limit);
  }

  /** The backend stored everything up to `seq`: drop it from the journal. */
  acknowledge(seq: number): void {
    if (seq <= this.ackedSeq) return;
    this.ackedSeq = Math.min(seq, this.lastSeq);
    let drop = 0;
    while (drop < this.events.length && (this.events[drop]?.seq ?? Infinity) <= this.ackedSeq) drop++;
    this.events.splice(0, drop);
    for (const seq of this.unsentLines.keys()) if (seq <= this.ackedSeq) this.unsentLines.delete(seq);
    // A segment goes once all its events are acknowledged; the one holding the newest event stays,
    // because the chain continues from its hash after a restart.
    this.persistAck(`${this.ackedSeq}\n`);
  }

  /**
   * The backend already holds this console's events up to `seq` (its `welcome` said so) but this
   * journal has none of them: the data directory was lost or replaced while the console key was kept.
   * The chain continues from the backend's head, so the next event is `seq + 1` and links to `hash`.
   */
  adoptHead(seq: number, hash: string): boolean {
    if (seq <= this.lastSeq || this.held > 0) return false;
    this.lastSeq = seq;
    this.lastHash = hash;
    this.ackedSeq = seq;
    this.persistAck(`${seq} ${hash}\n`);
    return true;
  }

  /**
   * Hands every emitted event to the writer and resolves once it has written and fsync'd all of it
   * and finished every acknowledgement: a journal reopened after that, in this process or another,
   * finds everything. `emit` is refused from the moment `close` is called.
   */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.closed = true;
    this.write();
    this.closing = this.writer?.close() ?? Promise.resolve();
    return this.closing;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      // One write in flight at a time: what is emitted meanwhile goes together in the next one.
      if (this.writing.length === 0) this.write();
    });
  }

  /** Numbers, chains and checks the queued events in emit order (see `emit`); returns those that passed. */
  private chainQueued(): Waiter[] {
    const queued = this.queue;
    this.queue = [];
    const ready: Waiter[] = [];
    for (const w of queued) {
      const event = w.event as { seq: number; prevHash: string } & AssuranceEvent;
      event.seq = this.lastSeq + 1;
      event.prevHash = this.lastHash;
      const checked = AssuranceEventSchema.safeParse(event);
      if (!checked.success) {
        w.reject(
          new BatonError('EVENT_SCHEMA_INVALID', `Event ${event.type} fails its schema`, { cause: checked.error }),
        );
        continue;
      }
      this.lastSeq = event.seq;
      this.lastHash = hashEvent(event);
      ready.push(w);
    }
    return ready;
  }

  /** Hands the queued events to the writer; they count as journaled once it has fsync'd them. */
  private write(): void {
    if (this.queue.length === 0 || this.writer === undefined) return;
    const waiters = this.chainQueued();
    if (waiters.length === 0) return;
    this.writing.push(...waiters);
    const parts: JournalPart[] = [];
    let i = 0;
    while (i < waiters.length) {
      const start = segmentStartOf((waiters[i] as Waiter).event.seq);
      const chunk = waiters.slice(i, i + start + SEGMENT_EVENTS - (waiters[i] as Waiter).event.seq);
      const lines = chunk.map((w) => JSON.stringify(w.event));
      parts.push({ file: segmentName(start), text: lines.map((line) => `${line}\n`).join('') });
      for (const [n, w] of chunk.entries()) {
        if (this.unsentLines.size < UNSENT_LINE_CACHE) this.unsentLines.set(w.event.seq, lines[n] as string);
      }
      i += chunk.length;
    }
    void this.writer.append(parts).then(
      () => this.written(waiters, undefined),
      (cause: unknown) =>
        this.written(waiters, new BatonError('INTERNAL', 'The event outbox could not write to disk', { cause })),
    );
  }

  private written(waiters: Waiter[], error: BatonError | undefined): void {
    // Writes finish in the order they were handed over, so `writing` starts with these waiters.
    this.writing.splice(0, waiters.length);
    for (const w of waiters) {
      if (error !== undefined) {
        w.reject(error);
      } else {
        this.events.push(w.event);
        w.resolve(w.event);
      }
    }
    if (this.queue.length > 0 && !this.closed) this.scheduleFlush();
  }

  /** Records the acknowledgement on disk and drops wholly acknowledged segments, through the writer. */
  private persistAck(content: string): void {
    void this.writer
      ?.acknowledge({ content, ackedSeq: this.ackedSeq, headStart: segmentStartOf(this.lastSeq) })
      .catch((cause: unknown) =>
        this.onAckError(new BatonError('INTERNAL', 'The event outbox could not record an acknowledgement', { cause })),
      );
  }

  private segments(): { file: string; start: number }[] {
    return readdirSync(this.dir)
      .map((file) => ({ file, match: SEGMENT.exec(file) }))
      .filter((x): x is { file: string; match: RegExpExecArray } => x.match !== null)
      .map(({ file, match }) => ({ file, start: Number(match[1]) }))
      .sort((a, b) => a.start - b.start);
  }

  private recover(): RecoveryReport {
    const report: RecoveryReport = { recovered: 0, tornTail: false, corrupt: [] };
    const ackedPath = join(this.dir, ACKED_FILE);
    let ackedHash: string | undefined;
    if (existsSync(ackedPath)) {
      const [seqText, hash] = readFileSync(ackedPath, 'utf8').trim().split(' ');
      const value = Number(seqText);
      this.ackedSeq = Number.isSafeInteger(value) && value >= 0 ? value : 0;
      if (hash !== undefined && /^[0-9a-f]{64}$/.test(hash)) ackedHash = hash;
    }
    const segments = this.segments();
    // Unreadable lines after the last good one: each still used up a sequence number.
    let trailingCorrupt = 0;
    for (const [index, { file }] of segments.entries()) {
      const path = join(this.dir, file);
      const text = readFileSync(path, 'utf8');
      const lines = text.split('\n');
      const last = index === segments.length - 1;
      // A crash mid-write leaves at most one unterminated line, at the very end of the journal.
      if (last && !text.endsWith('\n') && text.length > 0) {
        report.tornTail = true;
        const keep = text.slice(0, text.lastIndexOf('\n') + 1);
        const fd = openSync(path, 'r+');
        ftruncateSync(fd, Buffer.byteLength(keep));
        fsyncSync(fd);
        closeSync(fd);
        lines.splice(-1, 1, '');
      }
      let quarantined = false;
      for (const [n, line] of lines.entries()) {
        if (line === '') continue;
        const parsed = parseLine(line);
        if (typeof parsed === 'string') {
          trailingCorrupt++;
          report.corrupt.push({ file, line: n + 1, reason: parsed });
          if (!quarantined) {
            mkdirSync(join(this.dir, 'quarantine'), { recursive: true, mode: 0o700 });
            copyFileSync(path, join(this.dir, 'quarantine', `${file}.${this.clock()}`));
            quarantined = true;
          }
          continue;
        }
        // The chain continues from the last good event; a skipped line shows as a gap on the backend.
        trailingCorrupt = 0;
        this.lastSeq = Math.max(this.lastSeq, parsed.seq);
        this.lastHash = hashEvent(parsed);
        if (parsed.seq > this.ackedSeq) this.events.push(parsed);
      }
    }
    this.events.sort((a, b) => a.seq - b.seq);
    // Numbering skips unreadable last lines, so no new event reuses their numbers: the backend sees
    // a gap (or, if it already had them, a broken link) instead of an unrelated event in their place.
    this.lastSeq += trailingCorrupt;
    if (this.lastSeq < this.ackedSeq) {
      // Everything was acknowledged and compacted, or the head was adopted from the backend.
      this.lastSeq = this.ackedSeq;
      if (ackedHash !== undefined) this.lastHash = ackedHash;
    }
    report.recovered = this.events.length;
    return report;
  }
}

function parseLine(line: string): AssuranceEvent | string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return 'not JSON';
  }
  const result = AssuranceEventSchema.safeParse(value);
  return result.success ? result.data : `not an assurance event (${result.error.issues[0]?.message ?? 'invalid'})`;
}

function segmentStartOf(seq: number): number {
  return Math.floor((Math.max(seq, 1) - 1) / SEGMENT_EVENTS) * SEGMENT_EVENTS + 1;
}

function segmentName(start: number): string {
  return `segment-${String(start).padStart(16, '0')}.jsonl`;
}
