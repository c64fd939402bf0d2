import { isTakenAsFact, type EventType, type StoredEvent } from '../../shared/events.js';
import type { Store } from '../store/repositories.js';
import { deliverySummaries, propagationSamples, revocationsBetween } from '../store/admin-tables.js';
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

/** The nearest-rank percentile of sorted values (null when there are none). */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? null;
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

  // The revocations of the range (the newest 50), each with how far it got and how fast.
  const recent = await revocationsBetween(deps.store, from, to, 50);
  const summaries = await deliverySummaries(
    deps.store,
    recent.map((r) => r.epoch),
  );
  const revocations = recent.map((r) => {
    const d = summaries.get(r.epoch);
    return {
      epoch: r.epoch,
      kind: r.kind,
      targetId: r.targetId,
      at: r.at,
      deliveries: d?.sent ?? 0,
      acknowledged: d?.acknowledged ?? 0,
      maxAckMs: d?.maxAckMs ?? null,
    };
  });
  // Propagation over time: per bucket, the acknowledgements of the revocations made in it, as p50 / p99 / slowest.
  const { samples, truncated: samplesTruncated } = await propagationSamples(deps.store, from, to);
  truncated ||= samplesTruncated;
  const perBucket: number[][] = buckets.map(() => []);
  for (const sample of samples)
    perBucket[Math.min(count - 1, Math.floor((sample.at - from) / bucketMs))]?.push(sample.ms);
  const propagation = buckets.map((b, i) => {
    const ms = (perBucket[i] ?? []).sort((x, y) => x - y);
    return {
      start: b.start,
      acknowledgements: ms.length,
      p50Ms: percentile(ms, 0.5),
      p99Ms: percentile(ms, 0.99),
      maxMs: ms.length === 0 ? null : (ms.at(-1) ?? null),
    };
  });

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
    propagation,
    consoles,
    truncated,
  };
}
