import type { AssuranceContext, EventDraft } from '../../shared/events.js';
import type { SignInResult } from '../../shared/http-api.js';
import { LEVEL_PROFILES, type AssuranceLevel } from '../../shared/levels.js';

/**
 * Session states on the console:
 * - `active`: in front, the operator working; `stepped-up`: the same, after a step-up raised its level;
 * - `locked`: in front under the lock screen (idle, OS lock or the operator locked it), resumable by
 *   the same operator inside the continuity window;
 * - `suspended`: another operator is in front; resumable by its operator inside the window;
 * - `expired`, `revoked`, `ended`: final. The session leaves the console.
 * While a tap is being verified the console as a whole is `signing-in` (see AgentStatus.phase):
 * until the backend answers there is no session to attach that state to.
 */
export type SessionState = 'active' | 'stepped-up' | 'locked' | 'suspended' | 'expired' | 'revoked' | 'ended';
export type FinalState = 'expired' | 'revoked' | 'ended';
import type { BreakGlassMark, LockReason } from '../../shared/ipc.js';

/** Why the session in front locked; `offline-limit-reached`: the channel's `maxOfflineSeconds` ran out. */
export type { LockReason };
/** States in which a session is still on the console. */
export const LIVE: ReadonlySet<SessionState> = new Set(['active', 'stepped-up', 'locked', 'suspended']);

export interface AgentSession {
  id: string;
  operatorId: string;
  operatorName: string;
  credentialId: string;
  /** The credential's COSE public key (base64url) and last counter, for a resume while offline. */
  publicKey: string;
  counter: number;
  level: AssuranceLevel;
  /** Wall times (epoch ms) for display and events; windows are measured on `Clock.monotonic`. */
  authTime: number;
  startedAt: number;
  expiresAt: number;
  /** The maximum lifetime on the monotonic clock: the backend's `expiresAt - authTime` from the tap. */
  endsAtElapsed: number;
  state: SessionState;
  /** Wall time it was locked or suspended (display). */
  since: number | undefined;
  /** Why it was last locked (the lock screen says so). */
  lockedBecause?: LockReason | undefined;
  /** The same moment on the monotonic clock: the continuity window and offline grace run from here. */
  sinceElapsed: number | undefined;
  token: string | undefined;
  /** The token's `exp` (wall, from the backend) and the same deadline on the monotonic clock. */
  tokenExpiresAt: number | undefined;
  tokenExpiresAtElapsed: number | undefined;
  /** When (monotonic) the agent asks the backend for a fresh token: two thirds into its lifetime. */
  tokenRefreshAtElapsed: number | undefined;
  /** A break-glass session's terms (set by ceremonies/break-glass.ts): shown as such, never as a key's sign-in. */
  breakGlass?: BreakGlassMark | undefined;
}

/** A token is not handed out in its last seconds: the workspace's request must reach its API in time. */
export const TOKEN_EXPIRY_MARGIN_MS = 5000;
/** A refresh that failed for want of the backend is tried again this much later (while the token lasts). */
export const TOKEN_RETRY_MS = 10_000;

/** What the UI may see of a session: never the token or key material. */
export interface SessionSnapshot {
  id: string;
  operatorId: string;
  operatorName: string;
  level: AssuranceLevel;
  aal: number;
  authTime: number;
  startedAt: number;
  expiresAt: number;
  state: SessionState;
  since: number | undefined;
  /** While locked: why (idle, the OS locked, the operator locked it, offline too long). */
  lockedBecause?: LockReason;
  inFront: boolean;
  /** A break-glass session: temporary access without the operator's key, and its terms. */
  breakGlass?: BreakGlassMark;
}

/** The last session that left the console, and why: the UI explains it ("ended by IT", "signed out"). */
export interface EndedSession {
  sessionId: string;
  operatorName: string;
  state: FinalState;
  reason: string;
  at: number;
}

/** The backend's answer to a sign-in (shared/http-api.ts). */
/** A sign-in's answer; a break-glass start adds its terms, so the session is marked from its first status. */
export type SignInOutcome = SignInResult & { breakGlass?: BreakGlassMark };

export interface SessionHooks {
  /** Journals an event the console witnessed (the backend records the ones it decided). */
  record(draft: EventDraft): void;
  /**
   * A session ended on the console's own initiative (sign-out, idle timeout, expiry): the agent
   * tells the backend, or journals the event itself when the backend cannot be reached.
   */
  endedLocally(session: AgentSession, state: FinalState, reason: string): void;
  /** The token of the session in front is due for a refresh (the agent asks the backend). */
  tokenDue(session: AgentSession): void;
  changed(): void;
}

export function assuranceOf(level: AssuranceLevel, authTime: number): AssuranceContext {
  const profile = LEVEL_PROFILES[level];
  return { level, aal: profile.aal, acr: profile.acr, amr: [...profile.amr], authTime };
}
