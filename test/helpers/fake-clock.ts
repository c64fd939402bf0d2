import type { Clock, Timer } from '../../main/core/clock.js';

interface Pending {
  at: number;
  order: number;
  fn: () => void;
  cancelled: boolean;
}

/**
 * A clock tests move by hand: `advance(ms)` runs every timer that falls due, in time order, with
 * `now()` reading the timer's own due time while it runs (as a real clock would).
 * It models both readings of `Clock`: `advance` moves elapsed and wall time together, while
 * `setWallTime` / `shiftWall` move only the wall clock, as someone changing the system time would.
 */
export class FakeClock implements Clock {
  /** Elapsed time; timers fall due on it. */
  private current: number;
  /** Wall time minus elapsed time. */
  private wallOffset = 0;
  private order = 0;
  private timers: Pending[] = [];

  constructor(start = Date.UTC(2026, 10, 23, 9, 0, 0)) {
    this.current = start;
  }

  now(): number {
    return this.current + this.wallOffset;
  }

  monotonic(): number {
    return this.current;
  }

  /** Sets the wall clock (someone changed the system time); elapsed time and timers do not move. */
  setWallTime(epochMs: number): void {
    this.wallOffset = epochMs - this.current;
  }

  /** Moves only the wall clock by `ms` (negative: back). */
  shiftWall(ms: number): void {
    this.wallOffset += ms;
  }

  setTimer(ms: number, fn: () => void): Timer {
    // Whole milliseconds, as setTimeout and Date.now() have them.
    const pending: Pending = {
      at: this.current + Math.ceil(Math.max(0, ms)),
      order: this.order++,
      fn,
      cancelled: false,
    };
    this.timers.push(pending);
    return {
      cancel: () => {
        pending.cancelled = true;
      },
    };
  }

  /** Moves time forward, running due timers; awaits between them so promise chains they start can settle. */
  async advance(ms: number): Promise<void> {
    const target = this.current + ms;
    for (;;) {
      this.timers = this.timers.filter((t) => !t.cancelled);
      const due = this.timers.filter((t) => t.at <= target).sort((a, b) => a.at - b.at || a.order - b.order)[0];
      if (due === undefined) break;
      this.timers.splice(this.timers.indexOf(due), 1);
      this.current = Math.max(this.current, due.at);
      due.fn();
      await settle();
    }
    this.current = target;
    await settle();
  }

  /** Timers still waiting (for assertions on what is scheduled). */
  get pendingTimers(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
