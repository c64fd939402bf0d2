import { isTakenAsFact, type EventType, type StoredEvent } from '../../shared/events.js';
import type { Store } from '../store/repositories.js';
import type { EventFilter, EventLog } from './event-log.js';

/** At most this many events go into one export; the last line then says where to continue. */
export const MAX_EXPORT_EVENTS = 100_000;
/** At most this many events of one type are read to draw one picture. */
const MAX_STATS_EVENTS = 50_000;
const PAGE = 1000;

export const CSV_COLUMNS = [
  'cursor',
  'time',
  'id',
  'origin',
  'seq',
  'type',
  'outcome',
  'operator',
  'console',
  'session',
  'credential',
  'level',
  'reasons',
  'detail',
  'integrity',
  'hash',
] as const;

/**
 * One CSV field (RFC 4180): always quoted, quotes doubled. A text that a spreadsheet would run as a
 * formula (starting with = + - @, a tab or a carriage return) gets a leading apostrophe (OWASP's
 * advice on CSV injection), so opening an export never executes anything an event carried.
 */
export function csvField(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return '""';
  let text = String(value);
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return `"${text.replace(/"/g, '""')}"`;
}

export function csvHeader(): string {
  return `${CSV_COLUMNS.map(csvField).join(',')}\r\n`;
}

export function csvRow(event: StoredEvent): string {
  const cells: (string | number | null | undefined)[] = [
    event.cursor,
    new Date(event.time).toISOString(),
    event.id,
    event.origin,
    event.seq,
    event.type,
    event.outcome,
    event.subject.operator,
    event.subject.console,
    event.subject.session,
    event.subject.credential,
    event.assurance?.level,
    event.reasons.join(' '),
    event.detail === undefined ? '' : JSON.stringify(event.detail),
    event.integrity.join(' '),
    event.hash,
  ];
  return `${cells.map(csvField).join(',')}\r\n`;
}

/** Reads matching events page by page (bounded), for exports and pictures. */
export async function* eventPages(
  events: EventLog,
  filter: EventFilter,
  max: number,
  afterCursor = 0,
): AsyncGenerator<StoredEvent[], { truncated: boolean; lastCursor: number }> {
  let after = afterCursor;
  let seen = 0;
  for (;;) {
    const page = await events.query({ ...filter, afterCursor: after, limit: Math.min(PAGE, max - seen) });
    if (page.length === 0) return { truncated: false, lastCursor: after };
    seen += page.length;
    after = page.at(-1)?.cursor ?? after;
    yield page;
    if (seen >= max) {
      const more = (await events.query({ ...filter, afterCursor: after, limit: 1 })).length > 0;
      return { truncated: more, lastCursor: after };
    }
  }
}

export interface TimeBucket {
  start: number;
  success: number;
  failure: number;
}

/** What the pictures show, computed from the audit trail and the revocation records. */
export async function adminStats(
  deps: { store: Store; events: EventLog; isConnected: (id: string) => boolean },
  range: { from: number; to: number; bucketMs: number },
) {
  const { from, to, bucketMs } = range;
  const count = Math.max(1, Math.ceil((to - from) / bucketMs));
  const buckets: TimeBucket[] = Array.from({ length: count }, (_, i) => ({
    start: from + i * bucketMs,
    success: 0,
    failure: 0,
  }));
  let truncated = false;
  const each = async (type: EventType, visit: (event: StoredEvent) => void) => {
    const pages = eventPages(deps.events, { type, from, to }, MAX_STATS_EVENTS);
    for (;;) {
      const next = await pages.next();
      if (next.done === true) {
        truncated ||= next.value.truncated;
        return;
      }
      // Refused and marked console events (a backdated or forged "sign-in") are evidence, not facts.
      next.value.filter(isTakenAsFact).forEach(visit);
    }
  };
  const bucketOf = (time: number) => buckets[Math.min(count - 1, Math.floor((time - from) / bucketMs))];
  await each('session-established', (e) => {
    // Only the backend establishes sessions (events stored before consoles were refused this type included).
    if (e.origin !== 'backend') return;
    const b = bucketOf(e.time);
    if (b !== undefined) b.success++;
  });
  await each('session-resumed', (e) => {
    // The backend records every resume it applied, offline ones included: count its events only.
    if (e.origin !== 'backend') return;
    const b = bucketOf(e.time);
    if (b !== undefined) b.success++;
  });
  await each('sign-in-failed', (e) => {
    const b = bucketOf(e.time);
    if (b !== undefined) b.failure++;
  });
  const stepUps = new Map<string, { action: string; success: number; failure: number }>();
  const countStepUp = (e: StoredEvent, key: 'success' | 'failure') => {
    const action = typeof e.detail?.action === 'string' ? e.detail.action : '(unknown)';
    const entry = stepUps.get(action) ?? { action, success: 0, failure: 0 };
    entry[key]++;
    stepUps.set(action, entry);
  };
  await each('session-stepped-up', (e) => countStepUp(e, 'success'));
  await each('step-up-failed', (e) => countStepUp(e, 'failure'));

  const revocations = [];
  for (const r of (await deps.store.revocations.since(0)).filter((r) => r.at >= from && r.at < to).slice(-50)) {
    const deliveries = await deps.store.revocations.deliveries(r.epoch);
    const acked = deliveries.filter((d) => d.ackedAt !== null).map((d) => (d.ackedAt ?? 0) - d.sentAt);
    revocations.push({
      epoch: r.epoch,
      kind: r.kind,
      targetId: r.targetId,
      at: r.at,
      deliveries: deliveries.length,
      acknowledged: acked.length,
      maxAckMs: acked.length > 0 ? Math.max(...acked) : null,
    });
  }

  const consoles = { online: 0, offline: 0, revoked: 0 };
  for (const c of await deps.store.consoles.list()) {
    if (c.revokedAt !== null) consoles.revoked++;
    else if (deps.isConnected(c.id)) consoles.online++;
    else consoles.offline++;
  }
  return {
    from,
    to,
    bucketMs,
    signIns: buckets,
    stepUpsByAction: [...stepUps.values()].sort((a, b) => b.success + b.failure - (a.success + a.failure)),
    revocations,
    consoles,
    truncated,
  };
}
