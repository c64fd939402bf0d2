import type { AssuranceContext, EventDraft } from '../../shared/events.js';
import type { SessionView, SignInResult } from '../../shared/http-api.js';
import { LEVEL_PROFILES, levelRank, type AssuranceLevel } from '../../shared/levels.js';
import { maxOfflineSeconds, type ChannelPolicy } from '../../shared/policy.js';
import type { RevocationItem } from '../../shared/protocol.js';
import type { Clock, Timer } from './clock.js';

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
/** Why the session in front locked; `offline-limit-reached`: the channel's `maxOfflineSeconds` ran out. */
export type LockReason = 'idle-timeout' | 'os-lock' | 'operator-locked' | 'offline-limit-reached';
const LIVE: ReadonlySet<SessionState> = new Set(['active', 'stepped-up', 'locked', 'suspended']);

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
  /** The same moment on the monotonic clock: the continuity window and offline grace run from here. */
  sinceElapsed: number | undefined;
  token: string | undefined;
  /** The token's `exp` (wall, from the backend) and the same deadline on the monotonic clock. */
  tokenExpiresAt: number | undefined;
  tokenExpiresAtElapsed: number | undefined;
  /** When (monotonic) the agent asks the backend for a fresh token: two thirds into its lifetime. */
  tokenRefreshAtElapsed: number | undefined;
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
  inFront: boolean;
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
export type SignInOutcome = SignInResult;

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

/**
 * Every operator session on this console and which one is in front. Time comes from the injected
 * clock; one timer covers idle lock and one covers the next expiry (lifetime or continuity window).
 */
export class SessionManager {
  private readonly sessions = new Map<string, AgentSession>();
  /** The last session that left the console (for the UI; never a token). */
  lastEnded: EndedSession | undefined;
  private frontId: string | undefined;
  /** Monotonic time of the last input. */
  private lastActivity: number;
  /** Monotonic time the backend was last lost, while it still is (continuous time offline). */
  private offlineSince: number | undefined;
  private idleTimer: Timer | undefined;
  private expiryTimer: Timer | undefined;
  private offlineTimer: Timer | undefined;
  private tokenTimer: Timer | undefined;

  constructor(
    private readonly consoleId: string,
    private readonly clock: Clock,
    private readonly channel: () => ChannelPolicy | undefined,
    private readonly hooks: SessionHooks,
  ) {
    this.lastActivity = clock.monotonic();
  }

  get front(): AgentSession | undefined {
    return this.frontId === undefined ? undefined : this.sessions.get(this.frontId);
  }

  get(id: string): AgentSession | undefined {
    return this.sessions.get(id);
  }

  get all(): AgentSession[] {
    return [...this.sessions.values()];
  }

  snapshot(): SessionSnapshot[] {
    return this.all
      .sort((a, b) => a.startedAt - b.startedAt)
      .map((s) => ({
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
        inFront: s.id === this.frontId,
      }));
  }

  /**
   * Sessions that may be resumed without the backend now: locked or suspended, inside both windows,
   * and only while the console has been offline for less than the channel's `maxOfflineSeconds`.
   */
  resumableOffline(): AgentSession[] {
    const channel = this.channel();
    if (channel === undefined || this.offlineLimitReached) return [];
    const now = this.clock.monotonic();
    const window = Math.min(channel.offlineGraceSeconds, channel.continuitySeconds) * 1000;
    return this.all.filter(
      (s) =>
        (s.state === 'locked' || s.state === 'suspended') &&
        s.sinceElapsed !== undefined &&
        now - s.sinceElapsed <= window &&
        now < s.endsAtElapsed,
    );
  }

  /** The backend became unreachable: continuous time offline counts from the first loss. */
  connectionLost(): void {
    if (this.offlineSince !== undefined) return;
    this.offlineSince = this.clock.monotonic();
    this.scheduleOfflineLimit();
  }

  /** The console is online again (caught up, not a bare welcome): the offline cap starts over at the next loss. */
  connectionRestored(): void {
    this.offlineSince = undefined;
    this.offlineTimer?.cancel();
    this.offlineTimer = undefined;
  }

  /** True once the console has been offline for the channel's `maxOfflineSeconds` without a break. */
  get offlineLimitReached(): boolean {
    const channel = this.channel();
    if (this.offlineSince === undefined || channel === undefined) return false;
    return this.clock.monotonic() - this.offlineSince >= maxOfflineSeconds(channel) * 1000;
  }

  /** Applies the backend's verdict on a tap: the operator's session comes to the front. */
  signedIn(outcome: SignInOutcome): AgentSession {
    const now = this.clock.now();
    const elapsed = this.clock.monotonic();
    for (const id of outcome.evicted) this.finish(id, 'ended', 'evicted-by-session-limit', false);
    for (const id of outcome.suspended) {
      const s = this.sessions.get(id);
      if (s !== undefined && (s.state === 'active' || s.state === 'stepped-up')) {
        s.state = 'suspended';
        s.since = now;
        s.sinceElapsed = elapsed;
      }
    }
    const view = outcome.session;
    // Another session of the same operator that the backend closed (window elapsed) goes too.
    for (const s of this.all) {
      if (s.operatorId === view.operatorId && s.id !== view.id) this.finish(s.id, 'expired', 'superseded', false);
    }
    const previous = this.front;
    const existing = this.sessions.get(view.id);
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
    };
    // The token was issued just after the tap: its lifetime is measured from the backend's authTime.
    setToken(session, outcome.token, outcome.tokenExpiresAt, outcome.tokenExpiresAt - view.authTime, elapsed);
    if (existing !== undefined) Object.assign(existing, session);
    else this.sessions.set(session.id, session);
    this.bringToFront(this.sessions.get(session.id) ?? session, previous, 'signed-in');
    return this.sessions.get(session.id) ?? session;
  }

  /** A resume verified on the console while the backend is unreachable. */
  resumedOffline(id: string, level: AssuranceLevel, counter: number): AgentSession {
    const session = this.sessions.get(id);
    if (session === undefined) throw new Error(`resumedOffline: no session ${id}`);
    const now = this.clock.now();
    const elapsed = this.clock.monotonic();
    const previous = this.front;
    session.level = levelRank(level) < levelRank(session.level) ? level : session.level;
    session.authTime = now;
    session.counter = counter;
    session.state = 'active';
    session.since = undefined;
    session.sinceElapsed = undefined;
    // The backend could not be asked: the console records the resume, and the backend applies it on arrival.
    this.hooks.record({
      type: 'session-resumed',
      subject: this.subject(session),
      assurance: assuranceOf(session.level, now),
      outcome: 'success',
      reasons: ['offline-grace'],
    });
    if (previous !== undefined && previous.id !== session.id && LIVE.has(previous.state)) {
      const wasActive = previous.state === 'active' || previous.state === 'stepped-up';
      previous.state = 'suspended';
      if (wasActive) {
        previous.since = now;
        previous.sinceElapsed = elapsed;
        this.hooks.record({
          type: 'session-suspended',
          subject: this.subject(previous),
          assurance: assuranceOf(previous.level, previous.authTime),
          outcome: 'info',
          reasons: ['another-operator-resumed'],
        });
      }
    }
    this.bringToFront(session, previous, 'resumed-offline');
    return session;
  }

  /** The backend accepted a step-up: the session's level and token are refreshed. */
  steppedUp(view: SessionView, token: string, tokenExpiresAt: number): void {
    const session = this.sessions.get(view.id);
    if (session === undefined) return;
    const elapsed = this.clock.monotonic();
    session.level = view.level;
    session.authTime = view.authTime;
    session.expiresAt = view.expiresAt;
    session.endsAtElapsed = elapsed + (view.expiresAt - view.authTime);
    setToken(session, token, tokenExpiresAt, tokenExpiresAt - view.authTime, elapsed);
    if (session.state === 'active') session.state = 'stepped-up';
    this.noteActivity();
    this.schedule();
    this.scheduleToken();
    this.hooks.changed();
  }

  /**
   * The token the workspace may use: the front session's, only while it is active and its token has
   * more than `TOKEN_EXPIRY_MARGIN_MS` left on the monotonic clock. An expired token is never handed out.
   */
  get frontToken(): string | undefined {
    const front = this.front;
    if (front === undefined || (front.state !== 'active' && front.state !== 'stepped-up')) return undefined;
    if (front.token === undefined || front.tokenExpiresAtElapsed === undefined) return undefined;
    return this.clock.monotonic() < front.tokenExpiresAtElapsed - TOKEN_EXPIRY_MARGIN_MS ? front.token : undefined;
  }

  /** The backend issued a fresh token for a session (`POST /v1/sessions/:id/token`). */
  tokenRefreshed(id: string, token: string, tokenExpiresAt: number, serverTime: number): void {
    const session = this.sessions.get(id);
    if (session === undefined || !LIVE.has(session.state)) return;
    setToken(session, token, tokenExpiresAt, tokenExpiresAt - serverTime, this.clock.monotonic());
    this.scheduleToken();
    this.hooks.changed();
  }

  /** A refresh failed because the backend could not be reached: try again soon, while the token lasts. */
  tokenRefreshFailed(id: string): void {
    const session = this.sessions.get(id);
    if (session === undefined) return;
    session.tokenRefreshAtElapsed = this.clock.monotonic() + TOKEN_RETRY_MS;
    this.scheduleToken();
  }

  /** The backend refused a fresh token (session not active there, operator or passkey revoked): none is kept. */
  tokenRefused(id: string): void {
    const session = this.sessions.get(id);
    if (session === undefined) return;
    session.token = undefined;
    session.tokenExpiresAt = undefined;
    session.tokenExpiresAtElapsed = undefined;
    session.tokenRefreshAtElapsed = undefined;
    this.scheduleToken();
    this.hooks.changed();
  }

  /** The refresh timer follows the session in front; called again when the backend is back. */
  scheduleToken(): void {
    this.tokenTimer?.cancel();
    this.tokenTimer = undefined;
    const front = this.front;
    if (front === undefined || (front.state !== 'active' && front.state !== 'stepped-up')) return;
    // No token (refused by the backend): the next sign-in or step-up brings one. Past the session's
    // lifetime there is nothing to refresh for.
    const due = front.tokenRefreshAtElapsed;
    if (due === undefined || due >= front.endsAtElapsed) return;
    this.tokenTimer = this.clock.setTimer(due - this.clock.monotonic(), () => {
      this.tokenTimer = undefined;
      const current = this.front;
      if (current === undefined || current.id !== front.id) return;
      if (current.state === 'active' || current.state === 'stepped-up') this.hooks.tokenDue(current);
    });
  }

  /** Locks the session in front (idle, OS lock, or the operator stepping away). */
  lock(reason: LockReason): boolean {
    const front = this.front;
    if (front === undefined || (front.state !== 'active' && front.state !== 'stepped-up')) return false;
    front.state = 'locked';
    front.since = this.clock.now();
    front.sinceElapsed = this.clock.monotonic();
    this.hooks.record({
      type: 'session-locked',
      subject: this.subject(front),
      assurance: assuranceOf(front.level, front.authTime),
      outcome: 'info',
      reasons: [reason],
    });
    this.schedule();
    this.scheduleToken();
    this.hooks.changed();
    return true;
  }

  /** Input from the operator: the idle timer starts again. */
  noteActivity(): void {
    this.lastActivity = this.clock.monotonic();
    this.scheduleIdle();
  }

  /** The OS reports how long the system has been idle (powerMonitor); past the policy's delay, lock. */
  reportSystemIdle(idleSeconds: number): void {
    const channel = this.channel();
    if (channel !== undefined && idleSeconds >= channel.idleLockSeconds) this.lock('idle-timeout');
  }

  /** The operator signs out: the session in front ends. */
  signOut(): AgentSession | undefined {
    const front = this.front;
    if (front === undefined) return undefined;
    this.finish(front.id, 'ended', 'sign-out', true);
    return front;
  }

  /** The backend ended a session (command or revocation): it goes at once, whichever is in front. */
  endedByBackend(id: string, state: 'ended' | 'revoked', reason: string): boolean {
    return this.finish(id, state, reason, false);
  }

  /** Applies revocation items; returns the sessions ended. A console revocation is handled by the agent. */
  applyRevocations(items: readonly RevocationItem[]): string[] {
    const ended: string[] = [];
    for (const item of items) {
      for (const s of this.all) {
        const hit =
          (item.kind === 'session' && s.id === item.targetId) ||
          (item.kind === 'operator' && s.operatorId === item.targetId) ||
          (item.kind === 'credential' && s.credentialId === item.targetId) ||
          (item.kind === 'console' && item.targetId === this.consoleId);
        if (hit && this.finish(s.id, 'revoked', `${item.kind}-revoked`, false)) ended.push(s.id);
      }
    }
    return ended;
  }

  /** The policy changed: timers follow the new delays. */
  policyChanged(): void {
    this.schedule();
    this.scheduleIdle();
    this.scheduleOfflineLimit();
  }

  /** Removes every session (console revoked or agent stopping); no events. */
  clear(): void {
    this.idleTimer?.cancel();
    this.expiryTimer?.cancel();
    this.offlineTimer?.cancel();
    this.tokenTimer?.cancel();
    this.sessions.clear();
    this.frontId = undefined;
  }

  private bringToFront(session: AgentSession, previous: AgentSession | undefined, why: string): void {
    this.frontId = session.id;
    if (previous !== undefined && previous.id !== session.id) {
      if (previous.state === 'locked') previous.state = 'suspended';
      this.hooks.record({
        type: 'session-switched',
        subject: this.subject(session),
        assurance: assuranceOf(session.level, session.authTime),
        outcome: 'info',
        reasons: [why],
        detail: { fromSession: previous.id, fromOperator: previous.operatorId },
      });
    }
    this.noteActivity();
    this.schedule();
    this.scheduleToken();
    this.hooks.changed();
  }

  private finish(id: string, state: FinalState, reason: string, local: boolean): boolean {
    const session = this.sessions.get(id);
    if (session === undefined || !LIVE.has(session.state)) return false;
    session.state = state;
    session.token = undefined;
    this.sessions.delete(id);
    this.lastEnded = { sessionId: id, operatorName: session.operatorName, state, reason, at: this.clock.now() };
    if (this.frontId === id) this.frontId = undefined;
    if (local) this.hooks.endedLocally(session, state, reason);
    this.schedule();
    this.scheduleIdle();
    this.scheduleToken();
    this.hooks.changed();
    return true;
  }

  private subject(session: AgentSession) {
    return {
      operator: session.operatorId,
      console: this.consoleId,
      session: session.id,
      credential: session.credentialId,
    };
  }

  private scheduleIdle(): void {
    this.idleTimer?.cancel();
    this.idleTimer = undefined;
    const front = this.front;
    const channel = this.channel();
    if (front === undefined || channel === undefined) return;
    if (front.state !== 'active' && front.state !== 'stepped-up') return;
    const due = this.lastActivity + channel.idleLockSeconds * 1000;
    this.idleTimer = this.clock.setTimer(due - this.clock.monotonic(), () => {
      if (this.clock.monotonic() >= this.lastActivity + channel.idleLockSeconds * 1000) this.lock('idle-timeout');
      else this.scheduleIdle();
    });
  }

  /** At the offline cap the session in front locks; from then on nothing resumes until the backend is back. */
  private scheduleOfflineLimit(): void {
    this.offlineTimer?.cancel();
    this.offlineTimer = undefined;
    const channel = this.channel();
    if (this.offlineSince === undefined || channel === undefined) return;
    const due = this.offlineSince + maxOfflineSeconds(channel) * 1000;
    this.offlineTimer = this.clock.setTimer(due - this.clock.monotonic(), () => {
      this.offlineTimer = undefined;
      if (!this.offlineLimitReached) {
        this.scheduleOfflineLimit();
        return;
      }
      this.lock('offline-limit-reached');
      this.hooks.changed();
    });
  }

  /** One timer for the next session to expire: its lifetime, or its continuity window once locked/suspended. */
  private schedule(): void {
    this.expiryTimer?.cancel();
    this.expiryTimer = undefined;
    let next = Infinity;
    for (const s of this.sessions.values()) next = Math.min(next, this.deadline(s).at);
    if (next === Infinity) return;
    this.expiryTimer = this.clock.setTimer(next - this.clock.monotonic(), () => this.expireDue());
  }

  private deadline(s: AgentSession): { at: number; reason: string } {
    const channel = this.channel();
    const lifetime = { at: s.endsAtElapsed, reason: 'lifetime-exceeded' };
    if ((s.state === 'locked' || s.state === 'suspended') && s.sinceElapsed !== undefined && channel !== undefined) {
      const window = s.sinceElapsed + channel.continuitySeconds * 1000;
      if (window < lifetime.at) return { at: window, reason: 'continuity-window-elapsed' };
    }
    return lifetime;
  }

  private expireDue(): void {
    const now = this.clock.monotonic();
    for (const s of this.all) {
      const { at, reason } = this.deadline(s);
      if (now >= at) this.finish(s.id, 'expired', reason, true);
    }
    this.schedule();
  }
}

/** Stores a token and its deadlines on the monotonic clock; `ttlMs` is its lifetime as the backend counted it. */
function setToken(session: AgentSession, token: string, expiresAt: number, ttlMs: number, elapsed: number): void {
  const ttl = Math.max(0, ttlMs);
  session.token = token;
  session.tokenExpiresAt = expiresAt;
  session.tokenExpiresAtElapsed = elapsed + ttl;
  session.tokenRefreshAtElapsed = elapsed + Math.floor((ttl * 2) / 3);
}
