import type { ChannelPolicy } from '../../shared/policy.js';
import type { Clock, Timer } from './clock.js';

/** The warning before an idle lock: this long before it, or a quarter of the idle delay if that is shorter. */
export const IDLE_WARNING_SECONDS = 30;

/** How long before the idle lock the console warns, for a channel's idle delay (seconds). */
export function idleWarningSeconds(idleLockSeconds: number): number {
  return Math.min(IDLE_WARNING_SECONDS, Math.floor(idleLockSeconds / 4));
}

/**
 * The idle timer of the session in front: a warning first (the UI offers to stay), then the lock.
 * Input starts it again and takes the warning away. Windows on the monotonic clock; the warning's
 * `locksAt` is wall time, for display only.
 */
export class IdleLock {
  /** Monotonic time of the last input. */
  private lastActivity: number;
  private timer: Timer | undefined;
  /** Set while the warning is up: when the lock falls (wall time). */
  warning: { locksAt: number } | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly channel: () => ChannelPolicy | undefined,
    /** `running`: an active session is in front (the timer runs only then). */
    private readonly hooks: { running(): boolean; lock(): void; changed(): void },
  ) {
    this.lastActivity = clock.monotonic();
  }

  /** Input from the operator: the timer starts again, and a warning on screen goes. */
  activity(): void {
    this.lastActivity = this.clock.monotonic();
    const warned = this.warning !== undefined;
    this.schedule();
    if (warned) this.hooks.changed();
  }

  /** (Re)arms the timer for the session in front. */
  schedule(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.warning = undefined;
    const channel = this.channel();
    if (channel === undefined || !this.hooks.running()) return;
    const idleMs = channel.idleLockSeconds * 1000;
    const warnMs = idleWarningSeconds(channel.idleLockSeconds) * 1000;
    const due = this.lastActivity + idleMs;
    const now = this.clock.monotonic();
    if (warnMs > 0 && now < due - warnMs) {
      this.timer = this.clock.setTimer(due - warnMs - now, () => this.schedule());
      return;
    }
    if (now >= due) {
      this.hooks.lock();
      return;
    }
    this.warning = { locksAt: this.clock.now() + (due - now) };
    this.timer = this.clock.setTimer(due - now, () => this.schedule());
    this.hooks.changed();
  }

  cancel(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.warning = undefined;
  }
}
