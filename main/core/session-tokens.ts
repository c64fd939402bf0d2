import type { Clock, Timer } from './clock.js';
import { TOKEN_EXPIRY_MARGIN_MS, type AgentSession } from './session-types.js';

/** Stores a token and its deadlines on the monotonic clock; `ttlMs` is its lifetime as the backend counted it. */
export function setToken(
  session: AgentSession,
  token: string,
  expiresAt: number,
  ttlMs: number,
  elapsed: number,
): void {
  const ttl = Math.max(0, ttlMs);
  session.token = token;
  session.tokenExpiresAt = expiresAt;
  session.tokenExpiresAtElapsed = elapsed + ttl;
  session.tokenRefreshAtElapsed = elapsed + Math.floor((ttl * 2) / 3);
}

/** The backend refused a fresh token: none is kept, and none is refreshed. */
export function clearToken(session: AgentSession): void {
  session.token = undefined;
  session.tokenExpiresAt = undefined;
  session.tokenExpiresAtElapsed = undefined;
  session.tokenRefreshAtElapsed = undefined;
}

/**
 * The token the workspace may use: the front session's, only while it is active and its token has
 * more than `TOKEN_EXPIRY_MARGIN_MS` left on the monotonic clock. An expired token is never handed out.
 */
export function usableToken(front: AgentSession | undefined, elapsed: number): string | undefined {
  if (front === undefined || (front.state !== 'active' && front.state !== 'stepped-up')) return undefined;
  if (front.token === undefined || front.tokenExpiresAtElapsed === undefined) return undefined;
  return elapsed < front.tokenExpiresAtElapsed - TOKEN_EXPIRY_MARGIN_MS ? front.token : undefined;
}

/** The refresh timer: it follows the session in front and fires when its token is due for a refresh. */
export class TokenTimer {
  private timer: Timer | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly front: () => AgentSession | undefined,
    private readonly due: (session: AgentSession) => void,
  ) {}

  follow(front: AgentSession | undefined): void {
    this.cancel();
    if (front === undefined || (front.state !== 'active' && front.state !== 'stepped-up')) return;
    // No token (refused by the backend): the next sign-in or step-up brings one. Past the session's
    // lifetime there is nothing to refresh for.
    const due = front.tokenRefreshAtElapsed;
    if (due === undefined || due >= front.endsAtElapsed) return;
    this.timer = this.clock.setTimer(due - this.clock.monotonic(), () => {
      this.timer = undefined;
      const current = this.front();
      if (current === undefined || current.id !== front.id) return;
      if (current.state === 'active' || current.state === 'stepped-up') this.due(current);
    });
  }

  cancel(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }
}
