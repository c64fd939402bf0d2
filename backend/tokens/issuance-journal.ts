import type { EventDraft } from '../../shared/events.js';
import type { EventLog } from '../services/event-log.js';

/** At most this many events in one unit of work. */
const MAX_BATCH = 256;

/**
 * Records the token exchange's events (issuances and refusals) durably before the answer leaves,
 * with a group commit: the events of exchanges arriving together are appended in one unit of work
 * (one transaction, one chain-head lock), the next group gathering while one commits. A failed
 * commit rejects every exchange of its group (none of them is answered with a token).
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
        await this.events.atomically(async (uow) => {
          // Each exchange is its own cause: none is linked to another's (detail.causeEventId).
          uow.separateCauses();
          for (const item of batch) await uow.record(item.draft);
        });
        for (const item of batch) item.resolve();
      } catch (error) {
        for (const item of batch) item.reject(error);
      }
    }
    this.flushing = undefined;
  }
}
