/**
 * At most `max` events per fixed window of `windowMs`, for all clients together: a bound on how
 * much of the audit trail anyone who can reach an endpoint may write. An event the cap holds back is
 * counted, and the count goes with the next event let through, so the trail says what it lacks. The
 * window starts at the first event after the previous window ended.
 */
export class EventCap {
  private window = { start: 0, recorded: 0 };
  private heldBack = 0;

  constructor(private readonly options: { max: number; windowMs: number; clock: () => number }) {}

  /**
   * One more event now: the number the cap held back since the last one it let through (0 if none),
   * or `undefined` when the cap holds this one back too (and counts it).
   */
  take(): number | undefined {
    const now = this.options.clock();
    if (now - this.window.start >= this.options.windowMs) this.window = { start: now, recorded: 0 };
    if (this.window.recorded >= this.options.max) {
      this.heldBack++;
      return undefined;
    }
    this.window.recorded++;
    const heldBack = this.heldBack;
    this.heldBack = 0;
    return heldBack;
  }
}
