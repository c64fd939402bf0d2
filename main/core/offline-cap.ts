import { maxOfflineSeconds, type ChannelPolicy } from '../../shared/policy.js';
import type { Clock, Timer } from './clock.js';

/**
 * The cap on continuous time offline (the channel's `maxOfflineSeconds`): counted on the monotonic
 * clock from the first loss of the backend, reset only once the console is caught up again. At the
 * cap `onReached` runs (the session in front locks); from then on nothing resumes offline.
 */
export class OfflineCap {
  /** Monotonic time the backend was last lost, while it still is. */
  private since: number | undefined;
  private timer: Timer | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly channel: () => ChannelPolicy | undefined,
    private readonly onReached: () => void,
  ) {}

  /** The backend became unreachable: continuous time offline counts from the first loss. */
  lost(): void {
    if (this.since !== undefined) return;
    this.since = this.clock.monotonic();
    this.schedule();
  }

  /** The console is online again: the cap starts over at the next loss. */
  restored(): void {
    this.since = undefined;
    this.cancel();
  }

  /** True once the console has been offline for the channel's `maxOfflineSeconds` without a break. */
  get reached(): boolean {
    const channel = this.channel();
    if (this.since === undefined || channel === undefined) return false;
    return this.clock.monotonic() - this.since >= maxOfflineSeconds(channel) * 1000;
  }

  /** Follows a changed policy (the channel's cap may have moved). */
  schedule(): void {
    this.cancel();
    const channel = this.channel();
    if (this.since === undefined || channel === undefined) return;
    const due = this.since + maxOfflineSeconds(channel) * 1000;
    this.timer = this.clock.setTimer(due - this.clock.monotonic(), () => {
      this.timer = undefined;
      if (!this.reached) {
        this.schedule();
        return;
      }
      this.onReached();
    });
  }

  cancel(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }
}
