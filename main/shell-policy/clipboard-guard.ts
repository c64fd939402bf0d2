import type { AgentStatusView } from '../../shared/ipc.js';

/**
 * The system clipboard outlives the operator who filled it: customer data operator A copied could
 * be pasted by operator B. It is cleared whenever what is on screen stops being that operator's to
 * see: the screen locks, another operator comes to the front, the session in front ends, and when
 * Baton starts or quits. Electron-free: the shell passes Electron's `clipboard`.
 */
export type ClipboardClearReason = 'started' | 'locked' | 'operator-switched' | 'session-ended' | 'quitting';

type StatusLike = Pick<AgentStatusView, 'locked' | 'sessions'> & {
  front?: Pick<NonNullable<AgentStatusView['front']>, 'id' | 'operatorId'> | undefined;
};

/** Why the clipboard must be cleared between two successive statuses, or undefined to leave it. */
export function clipboardClearReason(
  previous: StatusLike | undefined,
  next: StatusLike,
): ClipboardClearReason | undefined {
  if (previous === undefined) return 'started';
  const before = previous.front;
  if (before !== undefined && before.id !== next.front?.id) {
    return next.sessions.some((s) => s.id === before.id) ? 'operator-switched' : 'session-ended';
  }
  if (!previous.locked && next.locked) return 'locked';
  return undefined;
}

/** Follows the agent's status and clears the clipboard at each transition above. */
export class ClipboardGuard {
  private previous: StatusLike | undefined;

  constructor(
    private readonly clipboard: { clear(): void },
    private readonly onCleared: (reason: ClipboardClearReason) => void = () => undefined,
  ) {}

  apply(status: StatusLike): ClipboardClearReason | undefined {
    const reason = clipboardClearReason(this.previous, status);
    this.previous = status;
    if (reason !== undefined) this.clear(reason);
    return reason;
  }

  clear(reason: ClipboardClearReason): void {
    this.clipboard.clear();
    this.onCleared(reason);
  }
}
