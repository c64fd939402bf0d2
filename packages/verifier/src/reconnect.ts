/** How a revocation follower retries: the first delay, doubled after each failure up to the cap. */
export interface BackoffOptions {
  /** Delay before the first retry (default 250 ms). */
  retryMs?: number;
  /** Longest delay between retries (default 5 s). */
  maxRetryMs?: number;
  /** Called on every failed attempt (the loop retries by itself). */
  onError?: (error: Error) => void;
}

/**
 * The reconnect loop and the up/down state that Baton's revocation feed (`RevocationSubscription`,
 * server-sent events) and the Shared Signals poll (`SsfSubscription`, RFC 8936) share: `run` repeats
 * one attempt (a connection, a poll) until `close()`; an attempt that returns is followed by the next
 * at once, one that throws is reported and retried after a delay that doubles up to `maxRetryMs`, and
 * starts over at `retryMs` once `accepted()` or `up()` says the connection works again.
 * `downForMs()` is what a verifier's `maxRevocationLagMs` is measured against.
 */
export class ReconnectLoop {
  private connectedNow = false;
  private downSince: number;
  private closedNow = false;
  private delay: number;
  private readonly firstDelay: number;

  constructor(
    private readonly clock: () => number,
    private readonly options: BackoffOptions = {},
  ) {
    this.downSince = clock();
    this.firstDelay = options.retryMs ?? 250;
    this.delay = this.firstDelay;
  }

  get connected(): boolean {
    return this.connectedNow;
  }

  get closed(): boolean {
    return this.closedNow;
  }

  /** 0 while connected; otherwise how long since the last connection ended or the loop was closed (or since the start). */
  downForMs(): number {
    return this.connectedNow ? 0 : this.clock() - this.downSince;
  }

  /** The server accepted the attempt: the next failure waits the first delay again. */
  accepted(): void {
    this.delay = this.firstDelay;
  }

  /**
   * Revocations are being heard (the stream's hello, a poll answered): connected, and the backoff starts over. Not once
   * closed: an answer that lands after `close()` does not make a closed follower look connected again.
   */
  up(): void {
    if (this.closedNow) return;
    this.connectedNow = true;
    this.accepted();
  }

  /**
   * Stops the loop. A closed follower hears no more revocations: it is down from this moment, so a verifier still
   * using it refuses tokens once `maxRevocationLagMs` has passed (it never reads 0 again).
   */
  close(): void {
    if (this.connectedNow) this.downSince = this.clock();
    this.connectedNow = false;
    this.closedNow = true;
  }

  async run(attempt: () => Promise<void>): Promise<void> {
    while (!this.closedNow) {
      try {
        await attempt();
        continue;
      } catch (error) {
        if (this.closedNow) break;
        this.options.onError?.(error instanceof Error ? error : new Error(String(error)));
      }
      if (this.connectedNow) this.downSince = this.clock();
      this.connectedNow = false;
      if (this.closedNow) break;
      await new Promise((resolve) => setTimeout(resolve, this.delay).unref());
      this.delay = Math.min(this.delay * 2, this.options.maxRetryMs ?? 5000);
    }
  }
}
