import { BatonError } from '../../shared/errors.js';
import type { EventDraft } from '../../shared/events.js';
import { BREAK_GLASS_REASON } from '../break-glass/break-glass.js';
import { STALE_NODE_REASON } from '../cluster/freshness.js';
import type { EventLog } from '../services/event-log.js';
import { activeSessions } from './active-sessions.js';

/** At most this many events in one unit of work. */
const MAX_BATCH = 256;

/** The refusal an issuance becomes when its session stopped being active before it committed. */
const CLOSED_CODE = 'SESSION_NOT_ACTIVE';

/**
 * Records the token exchange's events (issuances and refusals) durably before the answer leaves,
 * with a group commit: the events of exchanges arriving together are appended in one unit of work
 * (one transaction, one chain-head lock), the next group gathering while one commits. A failed
 * commit rejects every exchange of its group (none of them is answered with a token).
 *
 * An issuance (`action-token-issued` naming a session) commits only if its session is still active
 * in that unit of work: its sessions are read there first, locked (PostgreSQL; SQLite serialises the
 * unit whole), so a revocation of the session, its operator, passkey or console that committed after
 * the exchange read the session (while the token was being signed) wins. That issuance is then
 * recorded as an `action-token-refused` (SESSION_NOT_ACTIVE) and its exchange rejected: the token
 * already signed never leaves. A revocation committing later waits for the unit, and app servers
 * refuse the token by its `iat` (RevocationList's clock-skew margin covers the revocation's `at`
 * being stamped before it took the session's lock).
 */
export class IssuanceJournal {
  private queue: { draft: EventDraft; resolve: () => void; reject: (error: unknown) => void }[] = [];
  private flushing: Promise<void> | undefined;

  constructor(private readonly events: EventLog) {}

  record(draft: EventDraft): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ draft, resolve, reject });
      this.flushing ??= this.flush();
    });
  }

  private async flush(): Promise<void> {
    // Let the exchanges of this turn of the event loop join the group.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, MAX_BATCH);
      try {
        const closed = await this.events.atomically(async (uow) => {
          // Sessions before the chain head (lock order, repositories.ts), in ascending id, in one statement.
          const guarded = guardedSessions(batch);
          const active = await activeSessions(uow.store, guarded);
          const ended = new Set(guarded.filter((id) => !active.has(id)));
          // Each exchange is its own cause: none is linked to another's (detail.causeEventId).
          uow.separateCauses();
          for (const { draft } of batch) {
            const session = issuedFor(draft);
            await uow.record(session !== undefined && ended.has(session) ? refusedInstead(draft) : draft);
          }
          return ended;
        });
        for (const item of batch) {
          const session = issuedFor(item.draft);
          if (session !== undefined && closed.has(session)) {
            item.reject(new BatonError(CLOSED_CODE, `Session "${session}" ended while the token was being issued`));
          } else item.resolve();
        }
      } catch (error) {
        for (const item of batch) item.reject(error);
      }
    }
    this.flushing = undefined;
  }
}

/** The session an issuance event rests on (undefined for any other event). */
function issuedFor(draft: EventDraft): string | undefined {
  return draft.type === 'action-token-issued' ? draft.subject.session : undefined;
}

/** The distinct sessions of the batch's issuances, in ascending id (the order PostgreSQL locks them in). */
function guardedSessions(batch: readonly { draft: EventDraft }[]): string[] {
  const ids = new Set<string>();
  for (const { draft } of batch) {
    const session = issuedFor(draft);
    if (session !== undefined) ids.add(session);
  }
  return [...ids].sort();
}

/** The `action-token-refused` an issuance becomes when its session ended before it committed. */
function refusedInstead(issued: EventDraft): EventDraft {
  const detail = issued.detail ?? {};
  return {
    type: 'action-token-refused',
    subject: issued.subject,
    ...(issued.assurance === undefined ? {} : { assurance: issued.assurance }),
    outcome: 'failure',
    // The break-glass and stale-node marks, if any, go with the refusal too (decided on the same view).
    reasons: [
      'session-not-active',
      ...issued.reasons.filter((reason) => reason === BREAK_GLASS_REASON || reason === STALE_NODE_REASON),
    ],
    detail: {
      action: detail.action ?? null,
      audience: detail.audience ?? null,
      code: CLOSED_CODE,
      policyVersion: detail.policyVersion ?? null,
      ...('staleSince' in detail ? { staleSince: detail.staleSince, staleCause: detail.staleCause ?? null } : {}),
    },
  };
}
