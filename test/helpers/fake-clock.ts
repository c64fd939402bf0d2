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
 */
export class FakeClock implements Clock {
  private current: number;
  private order = 0;
  private timers: Pending[] = [];

  constructor(start = Date.UTC(2026, 10, 23, 9, 0, 0)) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimer(ms: number, fn: () => void): Timer {
    const pending: Pending = { at: this.current + Math.max(0, ms), order: this.order++, fn, cancelled: false };
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
