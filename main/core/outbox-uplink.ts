import type { AssuranceEvent, EventDraft } from '../../shared/events.js';
import { MAX_BATCHES_IN_FLIGHT, MAX_EVENTS_PER_BATCH, MAX_MESSAGE_BYTES } from '../../shared/protocol.js';
import type { AgentLogger } from './agent-types.js';
import type { EventOutbox } from './event-outbox.js';

/** Batches awaiting `events-ack` at once: the protocol's window (the backend reads no further ahead). */
export { MAX_BATCHES_IN_FLIGHT };

/** What the uplink needs of the journal (main/core/event-outbox.ts). */
export type UplinkOutbox = Pick<
  EventOutbox,
  'status' | 'emit' | 'takeLine' | 'pendingAfter' | 'acknowledge' | 'adoptHead'
>;

export interface UplinkDeps {
  outbox: UplinkOutbox;
  /** Sends one text frame on the current connection; false when it cannot. */
  send(text: string): boolean;
  consoleId: string;
  logger: AgentLogger;
  /** An event could not be journaled (full or failing disk): shown, never silently lost from view. */
  onJournalError(error: unknown): void;
  /** Runs `fn` once the current turn is over (so a burst of events goes in few batches). */
  defer?: (fn: () => void) => void;
}

/** Per connection: nothing may be sent before the welcome, and at most MAX_BATCHES_IN_FLIGHT unacknowledged. */
type SendWindow = { kind: 'closed' } | { kind: 'open'; sentUpTo: number; inFlight: number };

/**
 * The outbox's way to the backend: journals events, sends them in batches that fit one frame,
 * keeps a bounded window in flight, drops what the backend acknowledged, and reports a journal
 * close to full once per filling.
 */
export class OutboxUplink {
  private window: SendWindow = { kind: 'closed' };
  private pumpScheduled = false;
  private nearFullReported = false;
  /** Events the journal refused. */
  journalFailures = 0;
  private readonly defer: (fn: () => void) => void;

  constructor(private readonly deps: UplinkDeps) {
    this.defer = deps.defer ?? ((fn) => void setImmediate(fn));
  }

  /** Journals an event; resolves once it is durable (or its failure is reported). Never rejects. */
  record(draft: EventDraft): Promise<void> {
    return this.deps.outbox.emit(draft).then(
      () => {
        this.checkNearFull();
        this.schedulePump();
      },
      (error: unknown) => {
        this.journalFailures++;
        this.deps.logger.error({ type: draft.type, err: error }, 'event could not be journaled');
        this.deps.onJournalError(error);
      },
    );
  }

  /**
   * The backend's welcome says what it holds. Drops that from the journal (or continues the chain
   * from the backend's head when this journal was lost) and opens the send window after it.
   * Returns the journal's last sequence number: the backlog to flush before the console is caught up.
   */
  welcomed(ackedSeq: number, lastHash: string): number {
    const outbox = this.deps.outbox;
    const status = outbox.status;
    if (ackedSeq > status.lastSeq) {
      if (!outbox.adoptHead(ackedSeq, lastHash)) {
        this.deps.logger.error(
          { backendSeq: ackedSeq, localSeq: status.lastSeq },
          'the backend holds more events than this journal; continuing (the backend will flag the conflict)',
        );
      }
    } else {
      outbox.acknowledge(ackedSeq);
    }
    this.window = { kind: 'open', sentUpTo: outbox.status.ackedSeq, inFlight: 0 };
    return outbox.status.lastSeq;
  }

  /** The connection closed: nothing more is sent until the next welcome. */
  closed(): void {
    this.window = { kind: 'closed' };
  }

  /**
   * The backend stored a batch. Only what was sent on this connection can be acknowledged: a backend
   * claiming more (before welcome, or past the last event sent) must not make the journal drop events.
   * False when ignored.
   */
  acknowledged(upToSeq: number, findings: readonly unknown[]): boolean {
    const window = this.window;
    if (window.kind !== 'open') return false;
    this.deps.outbox.acknowledge(Math.min(upToSeq, window.sentUpTo));
    window.inFlight = Math.max(0, window.inFlight - 1);
    if (findings.length > 0) this.deps.logger.warn({ findings }, 'backend event findings');
    this.checkNearFull();
    this.pump();
    return true;
  }

  /** Sends the next batches past those in flight, keeping at most MAX_BATCHES_IN_FLIGHT unacknowledged. */
  pump(): void {
    const window = this.window;
    if (window.kind !== 'open') return;
    const outbox = this.deps.outbox;
    while (window.inFlight < MAX_BATCHES_IN_FLIGHT) {
      const frame = eventsFrame(outbox, outbox.pendingAfter(window.sentUpTo, MAX_EVENTS_PER_BATCH));
      if (frame === undefined) return;
      if (!this.deps.send(frame.text)) return;
      window.sentUpTo = frame.lastSeq;
      window.inFlight++;
    }
  }

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    this.defer(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Reports `outbox-near-full` once per filling; re-armed when the journal drains below half. */
  private checkNearFull(): void {
    const status = this.deps.outbox.status;
    if (status.nearFull && !this.nearFullReported) {
      this.nearFullReported = true;
      this.deps.logger.error({ pending: status.pending, max: status.max }, 'event outbox near full');
      // Journaled directly (not through record) so the report itself cannot recurse.
      this.deps.outbox
        .emit({
          type: 'outbox-near-full',
          subject: { console: this.deps.consoleId },
          outcome: 'info',
          reasons: ['outbox-near-full'],
          detail: { pending: status.pending, max: status.max },
        })
        .catch(() => undefined);
    } else if (!status.nearFull && status.pending < status.max * 0.5) {
      this.nearFullReported = false;
    }
  }
}

const EVENTS_PREFIX = '{"type":"events","events":[';
const EVENTS_SUFFIX = ']}';

/**
 * The `events` message for the longest prefix of `batch` that fits in one frame (the backend closes
 * the socket with 1009 on a larger one, and a backlog that never fits would never flush), built from
 * the journal's own JSON lines so nothing is serialised twice. At least one event; none → undefined.
 */
export function eventsFrame(
  outbox: Pick<EventOutbox, 'takeLine'>,
  batch: readonly AssuranceEvent[],
): { text: string; lastSeq: number } | undefined {
  let bytes = EVENTS_PREFIX.length + EVENTS_SUFFIX.length;
  const lines: string[] = [];
  let lastSeq = 0;
  for (const event of batch) {
    const line = outbox.takeLine(event);
    bytes += Buffer.byteLength(line) + 1;
    if (bytes > MAX_MESSAGE_BYTES && lines.length > 0) break;
    lines.push(line);
    lastSeq = event.seq;
  }
  if (lines.length === 0) return undefined;
  return { text: `${EVENTS_PREFIX}${lines.join(',')}${EVENTS_SUFFIX}`, lastSeq };
}
