import type { ServerResponse } from 'node:http';
import type { StoredEvent } from '../../shared/events.js';
import type { EventFilter, EventLog } from '../services/event-log.js';
import { SECURITY_HEADERS } from './http-kit.js';
import type { RouteContext } from './router.js';

/** A follower further behind than this is dropped; it reconnects with Last-Event-ID and loses nothing. */
const MAX_FOLLOWER_BUFFER_BYTES = 4 * 1024 * 1024;
/** How many stall-check periods (each a quarter of the stall limit) a reader may stay full. */
const STALL_SAMPLES = 4;
/** A stream told to end gets this long to flush its last line before its socket is destroyed. */
const END_GRACE_MS = 1000;
/** Live events held while the backfill pages are read; beyond this they are dropped and read as a page. */
const MAX_HELD_DURING_BACKFILL = 5000;

/**
 * Ends a live stream with a comment, and destroys it if the reader has not taken the rest within a
 * second: a reader that stopped reading never lets `end()` complete, and would hold the socket and
 * its buffer until TCP gives up.
 */
export function endStream(res: ServerResponse, comment: string): void {
  if (res.destroyed) return;
  res.end(`${comment}\n\n`);
  const timer = setTimeout(() => res.destroy(), END_GRACE_MS);
  timer.unref();
  res.once('close', () => clearTimeout(timer));
}

/**
 * Server-sent events: what is stored after `after`, paged and paced by the socket, then every new
 * matching event as it lands. Live events that land during the backfill are held (they may commit
 * after a page was read, while its answer is on its way) and sent after the last (short) page, in
 * the same turn as the switch to live delivery, so nothing falls between; events a page already
 * carried are not sent twice. When too many land meanwhile, they are dropped and read as pages
 * instead. A reader more than 4 MiB behind, or whose socket takes nothing for `stallMs`, is
 * disconnected; it resumes with Last-Event-ID and loses nothing.
 *
 * The stream ends at once when the admin session that opened it ends, on whichever node (the caller
 * registers it with AdminAuth.holdStream: the unit that ends a session publishes a pointer on the
 * cluster bus, and every node closes its streams of that session when it arrives). `stillAllowed`
 * is asked again on every keep-alive (it reads the store) as the safety net behind that.
 */
export async function streamEvents(
  ctx: RouteContext,
  events: EventLog,
  filter: EventFilter,
  after: number | undefined,
  outcome: string | undefined,
  stillAllowed: () => Promise<boolean>,
  stallMs: number,
  keepAliveMs: number,
): Promise<void> {
  const { res } = ctx;
  res.writeHead(200, {
    ...SECURITY_HEADERS,
    'content-type': 'text/event-stream; charset=utf-8',
    connection: 'keep-alive',
  });
  let lastCursor = after ?? 0;
  let closed = false;
  let backfilling = after !== undefined;
  const drop = () => {
    closed = true;
    res.destroy();
  };
  const send = (event: StoredEvent) => {
    if (closed || event.cursor <= lastCursor) return;
    lastCursor = event.cursor;
    if (outcome !== undefined && event.outcome !== outcome) return;
    res.write(`id: ${event.cursor}\nevent: assurance-event\ndata: ${JSON.stringify(event)}\n\n`);
    if (res.writableLength > MAX_FOLLOWER_BUFFER_BYTES) drop();
  };
  let held: StoredEvent[] = [];
  let heldOverflow = false;
  const unsubscribe = events.subscribe(filter, (event) => {
    if (!backfilling) send(event);
    else if (held.length < MAX_HELD_DURING_BACKFILL) held.push(event);
    else heldOverflow = true;
  });
  // A reader whose socket stays full (no 'drain') for stallMs is dropped, during the backfill or after it.
  // Counted in samples, not read off the clock, so a busy event loop (which also delays reading) is not
  // taken for a stalled reader: the loop must have run STALL_SAMPLES sample periods without a drain.
  let quietSamples = 0;
  const stallCheck = setInterval(
    () => {
      if (!res.writableNeedDrain) quietSamples = 0;
      else if (++quietSamples > STALL_SAMPLES) drop();
    },
    Math.max(10, Math.floor(stallMs / STALL_SAMPLES)),
  );
  stallCheck.unref();
  res.on('drain', () => (quietSamples = 0));
  let checking = false;
  const keepAlive = setInterval(() => {
    if (checking) return;
    checking = true;
    stillAllowed()
      .then((allowed) => {
        if (closed) return;
        if (allowed) res.write(': keep-alive\n\n');
        else endStream(res, ': admin session ended');
      })
      // Not knowing (the store unreachable) is not a yes: the reader reconnects and is checked again.
      .catch(() => endStream(res, ': admin session could not be checked'))
      .finally(() => (checking = false));
  }, keepAliveMs);
  const close = () => {
    closed = true;
    clearInterval(keepAlive);
    clearInterval(stallCheck);
    unsubscribe();
  };
  // Not req 'close': the request body was already read, so req has closed before we get here.
  res.on('close', close);
  res.on('error', close);
  while (backfilling && !closed) {
    const page = await events.query({ ...filter, afterCursor: lastCursor, limit: 500 });
    page.forEach(send);
    if (closed) break;
    if (page.length < 500) {
      if (!heldOverflow) break;
      // Too many landed to hold: read them as pages, and hold what lands from now on.
      heldOverflow = false;
      held = [];
      continue;
    }
    if (res.writableNeedDrain) {
      // The stall check above drops a reader that never drains, which ends this wait too.
      if (!(await drained(res))) break;
    } else {
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  backfilling = false;
  const landed = held;
  held = [];
  landed.forEach(send);
  if (!closed) res.write(': connected\n\n');
}

/** Resolves true on 'drain', false when the response closes first. */
function drained(res: ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (value: boolean) => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(value);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}
