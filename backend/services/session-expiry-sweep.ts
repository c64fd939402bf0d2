import { sql } from 'kysely';
import { kyselyOf } from '../store/kysely-store.js';
import type { Store } from '../store/repositories.js';
import type { EventLog } from './event-log.js';
import type { SessionService } from './session-service.js';

/** Sessions closed per sweep at most (the next sweep takes the rest). */
const SWEEP_BATCH = 200;

/**
 * No silent ends: a session past its lifetime whose console never said so (switched off, gone for
 * good) is closed by the backend with `session-expired` (`lifetime-exceeded`), like every other end,
 * so the audit trail, the SIEM and Shared Signals receivers see it end. Any node may sweep: each
 * session is re-read locked in its own unit and closed only if still live, so two nodes never close
 * it twice. Returns how many it closed.
 */
export async function sweepExpiredSessions(
  store: Store,
  events: EventLog,
  sessions: SessionService,
  now: number,
): Promise<number> {
  const db = kyselyOf(store);
  if (db === undefined) return 0;
  // The partial index sessions_live_expiry (migration 19) holds only live sessions, by expiry.
  const due = await sql<{ id: string }>`SELECT id FROM sessions
    WHERE state IN ('active', 'suspended') AND expires_at <= ${now}
    ORDER BY expires_at LIMIT ${SWEEP_BATCH}`.execute(db);
  let closed = 0;
  for (const { id } of due.rows) {
    const ended = await events.atomically(async (uow) => {
      const session = await uow.store.sessions.getForUpdate(id);
      if (session === undefined || (session.state !== 'active' && session.state !== 'suspended')) return false;
      if (session.expiresAt > now) return false;
      await sessions.close(uow, session, 'expired', 'lifetime-exceeded');
      return true;
    });
    if (ended) closed++;
  }
  return closed;
}
