import assert from 'node:assert/strict';
import { GENESIS_HASH, type StoredEvent } from '../../shared/events.js';
import type { AdminClient, Json } from './backend-harness.js';

/** Every event the backend stored from one console (its origin), in store order, paging on `after`. */
export async function consoleStream(admin: AdminClient, origin: string): Promise<StoredEvent[]> {
  const out: StoredEvent[] = [];
  let after = 0;
  for (;;) {
    const query = new URLSearchParams({ origin, after: String(after), limit: '1000' });
    const page = (await admin.ok('GET', `/v1/admin/events?${query.toString()}`)) as {
      events: StoredEvent[];
      nextCursor: number;
    };
    out.push(...page.events);
    if (page.events.length < 1000) return out;
    after = page.nextCursor;
  }
}

/** The backend's own integrity events (gap, conflict, broken chain) about one console. */
export async function integrityEvents(admin: AdminClient, consoleId: string): Promise<StoredEvent[]> {
  const out: StoredEvent[] = [];
  let after = 0;
  for (;;) {
    const query = new URLSearchParams({ origin: 'backend', console: consoleId, after: String(after), limit: '1000' });
    const page = (await admin.ok('GET', `/v1/admin/events?${query.toString()}`)) as {
      events: StoredEvent[];
      nextCursor: number;
    };
    out.push(...page.events.filter((e) => e.type.startsWith('integrity-')));
    if (page.events.length < 1000) return out;
    after = page.nextCursor;
  }
}

/** The first place where `actual` differs from 1..n, said in words (a 10,000-line diff helps nobody). */
function firstDeparture(actual: number[], n: number): string | undefined {
  for (let i = 0; i < Math.max(actual.length, n); i++) {
    if (actual[i] !== i + 1) {
      return `at position ${i}: expected seq ${i + 1 <= n ? i + 1 : '(nothing)'}, stored ${actual[i] ?? '(nothing)'} (stored ${actual.length}, expected ${n})`;
    }
  }
  return undefined;
}

/**
 * What an auditor checks after a fault: the backend holds the console's events 1..n exactly once,
 * in order, each linked to the one before, with no integrity finding at ingest, an intact chain on
 * re-verification, and no integrity event raised about the console.
 */
export async function assertIntactStream(admin: AdminClient, origin: string, n: number): Promise<StoredEvent[]> {
  const events = await consoleStream(admin, origin);
  const departure = firstDeparture(
    events.map((e) => e.seq),
    n,
  );
  assert.equal(departure, undefined, `the backend holds every event exactly once, in order: ${departure ?? ''}`);
  assert.equal(new Set(events.map((e) => e.id)).size, n, 'no event was stored twice under another number');
  let prev = GENESIS_HASH;
  for (const event of events) {
    assert.equal(event.prevHash, prev, `event ${event.seq} links to the event before it`);
    prev = event.hash;
  }
  assert.deepEqual(
    events.filter((e) => e.integrity.length > 0).map((e) => ({ seq: e.seq, integrity: e.integrity })),
    [],
    'no integrity finding on any stored event',
  );
  const report = (await admin.ok('GET', `/v1/admin/events/verify?origin=${encodeURIComponent(origin)}`)) as Json;
  assert.equal(report.intact, true, `the chain re-verifies: ${JSON.stringify(report.problems)}`);
  assert.equal(report.checked, n);
  assert.equal(report.lastSeq, n);
  assert.deepEqual(
    (await integrityEvents(admin, origin)).map((e) => ({ type: e.type, detail: e.detail })),
    [],
    'the backend raised no gap, conflict or broken-chain event about this console',
  );
  return events;
}

/** Polls `test` (real time) until it holds; fails with `what` at the deadline. */
export async function eventually<T>(
  test: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  ms = 15_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await test();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
