import type { EventDraft } from '../../shared/events.js';
import { LEVEL_PROFILES } from '../../shared/levels.js';
import { setToken } from './session-tokens.js';
import type { AgentSession, SessionSnapshot, SignInOutcome } from './session-types.js';

/** The console's record of a session the backend just signed in, with its deadlines on the monotonic clock. */
export function sessionFromSignIn(outcome: SignInOutcome, elapsed: number): AgentSession {
  const view = outcome.session;
  const session: AgentSession = {
    id: view.id,
    operatorId: view.operatorId,
    operatorName: view.operatorName,
    credentialId: outcome.credential.id,
    publicKey: outcome.credential.publicKey,
    counter: outcome.credential.counter,
    level: view.level,
    authTime: view.authTime,
    startedAt: view.startedAt,
    expiresAt: view.expiresAt,
    // Both deadlines are the backend's, measured from its own `authTime` (the tap): a console
    // clock set back cannot stretch them.
    endsAtElapsed: elapsed + (view.expiresAt - view.authTime),
    state: 'active',
    since: undefined,
    sinceElapsed: undefined,
    token: undefined,
    tokenExpiresAt: undefined,
    tokenExpiresAtElapsed: undefined,
    tokenRefreshAtElapsed: undefined,
    ...(outcome.breakGlass === undefined ? {} : { breakGlass: outcome.breakGlass }),
  };
  // The token was issued just after the tap: its lifetime is measured from the backend's authTime.
  setToken(session, outcome.token, outcome.tokenExpiresAt, outcome.tokenExpiresAt - view.authTime, elapsed);
  return session;
}

/** What the UI may see of a session: never its token or key. */
export function snapshotOf(s: AgentSession, inFront: boolean): SessionSnapshot {
  return {
    id: s.id,
    operatorId: s.operatorId,
    operatorName: s.operatorName,
    level: s.level,
    aal: LEVEL_PROFILES[s.level].aal,
    authTime: s.authTime,
    startedAt: s.startedAt,
    expiresAt: s.expiresAt,
    state: s.state,
    since: s.since,
    ...(s.state === 'locked' && s.lockedBecause !== undefined ? { lockedBecause: s.lockedBecause } : {}),
    inFront,
    ...(s.breakGlass === undefined ? {} : { breakGlass: s.breakGlass }),
  };
}

/** The reason every event about a break-glass session carries (the backend's `BREAK_GLASS_REASON`). */
export const BREAK_GLASS_REASON = 'break-glass';

/**
 * The agent's one funnel for the mark (Agent.record): an event whose session, or the session a
 * switch left (`detail.fromSession`), is a break-glass one gets the reason `break-glass`, after its
 * own reasons (the backend reads the first as the cause). Any other event is returned as it is.
 */
export function markBreakGlass(draft: EventDraft, isBreakGlass: (sessionId: string) => boolean): EventDraft {
  const from = draft.detail?.fromSession;
  const about = [draft.subject.session, typeof from === 'string' ? from : undefined];
  if (draft.reasons.includes(BREAK_GLASS_REASON) || !about.some((id) => id !== undefined && isBreakGlass(id))) {
    return draft;
  }
  return { ...draft, reasons: [...draft.reasons.slice(0, 15), BREAK_GLASS_REASON] };
}
