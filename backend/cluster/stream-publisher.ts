import type { Logger } from 'pino';
import type { ClusterBus } from './bus.js';

/**
 * Tells the cluster that events were stored, without one NOTIFY per commit. Durable ingest commits
 * thousands of batches a second, and PostgreSQL serialises the commits of notifying transactions
 * (one cluster-wide lock on the notification queue), so the admin live stream is published after
 * commit, coalesced: at most one publish in flight, and the next one carries the highest cursor
 * offered meanwhile. A follower reads from its own last cursor, so a skipped cursor loses nothing.
 */
export class StreamCursorPublisher {
  private sent = 0;
  private wanted = 0;
  private inFlight: Promise<void> | undefined;

  constructor(
    private readonly bus: ClusterBus,
    private readonly logger: Logger,
  ) {}

  /** Events up to `cursor` are committed. Never throws; a failed publish is retried with the next offer. */
  offer(cursor: number): void {
    if (cursor <= this.wanted) return;
    this.wanted = cursor;
    this.inFlight ??= this.drain();
  }

  /** Resolves once everything offered so far was published (or failed). */
  async flush(): Promise<void> {
    while (this.inFlight !== undefined) await this.inFlight;
  }

  private async drain(): Promise<void> {
    try {
      while (this.wanted > this.sent) {
        const cursor = this.wanted;
        try {
          await this.bus.publish('admin-stream', { cursor });
          this.sent = cursor;
        } catch (error) {
          this.logger.warn(
            { err: error, cursor },
            'cluster bus: admin-stream publish failed (followers catch up later)',
          );
          return;
        }
      }
    } finally {
      this.inFlight = undefined;
    }
  }
}
