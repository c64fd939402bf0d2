import type { SessionView } from '../../shared/http-api.js';
import { levelRank, type AssuranceLevel } from '../../shared/levels.js';
import type { ChannelPolicy } from '../../shared/policy.js';
import type { RevocationItem } from '../../shared/protocol.js';
import type { Clock, Timer } from './clock.js';
import { IdleLock } from './idle-lock.js';
import { OfflineCap } from './offline-cap.js';
import { sessionFromSignIn, snapshotOf } from './session-records.js';
import { TokenTimer, clearToken, setToken, usableToken } from './session-tokens.js';
import {
  LIVE,
  TOKEN_RETRY_MS,
  assuranceOf,
  type AgentSession,
  type EndedSession,
  type FinalState,
  type LockReason,
  type SessionHooks,
  type SessionSnapshot,
  type SignInOutcome,
} from './session-types.js';

export * from './session-types.js';

/**
 * Every operator session on this console and which one is in front. Time comes from the injected
 * clock; one timer covers idle lock and one covers the next expiry (lifetime or continuity window).
 */
export class SessionManager {
  private readonly sessions = new Map<string, AgentSession>();
  /** The last session that left the console (for the UI; never a token). */
  lastEnded: EndedSession | undefined;
  private frontId: string | undefined;
  /** The idle timer of the session in front, with its warning (`idle.warning`) before the lock. */
  readonly idle: IdleLock;
  private readonly offlineCap: OfflineCap;
  private expiryTimer: Timer | undefined;
  private readonly tokenTimer: TokenTimer;
  /** Break-glass sessions seen, kept after they end: the events of their end carry the mark too. */
  private readonly breakGlassIds = new Set<string>();

  constructor(
    private readonly consoleId: string,
    private readonly clock: Clock,
    private readonly channel: () => ChannelPolicy | undefined,
    private readonly hooks: SessionHooks,
  ) {
    this.idle = new IdleLock(clock, channel, {
      running: () => this.front?.state === 'active' || this.front?.state === 'stepped-up',
      lock: () => this.lock('idle-timeout'),
      changed: () => hooks.changed(),
    });
    this.tokenTimer = new TokenTimer(
      clock,
      () => this.front,
      (session) => hooks.tokenDue(session),
    );
    this.offlineCap = new OfflineCap(clock, channel, () => {
      this.lock('offline-limit-reached');
      this.hooks.changed();
    });
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

  /** Whether the session (live or ended) was started by break-glass (its events are marked: Agent.record). */
  isBreakGlass(id: string): boolean {
    return this.breakGlassIds.has(id);
  }

  snapshot(): SessionSnapshot[] {
    return this.all.sort((a, b) => a.startedAt - b.startedAt).map((s) => snapshotOf(s, s.id === this.frontId));
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
    this.offlineCap.lost();
  }

  /** The console is online again (caught up, not a bare welcome): the offline cap starts over at the next loss. */
  connectionRestored(): void {
    this.offlineCap.restored();
  }

  /** True once the console has been offline for the channel's `maxOfflineSeconds` without a break. */
  get offlineLimitReached(): boolean {
    return this.offlineCap.reached;
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
    if (outcome.breakGlass !== undefined) this.breakGlassIds.add(view.id);
    // Another session of the same operator that the backend closed (window elapsed) goes too.
    for (const s of this.all) {
      if (s.operatorId === view.operatorId && s.id !== view.id) this.finish(s.id, 'expired', 'superseded', false);
    }
    const previous = this.front;
    const existing = this.sessions.get(view.id);
    const session = sessionFromSignIn(outcome, elapsed);
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
    return usableToken(this.front, this.clock.monotonic());
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
    clearToken(session);
    this.scheduleToken();
    this.hooks.changed();
  }

  /** The refresh timer follows the session in front; called again when the backend is back. */
  scheduleToken(): void {
    this.tokenTimer.follow(this.front);
  }

  /** Locks the session in front (idle, OS lock, or the operator stepping away). */
  lock(reason: LockReason): boolean {
    const front = this.front;
    if (front === undefined || (front.state !== 'active' && front.state !== 'stepped-up')) return false;
    front.state = 'locked';
    front.lockedBecause = reason;
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
    this.scheduleIdle();
    this.scheduleToken();
    this.hooks.changed();
    return true;
  }

  /** Input from the operator: the idle timer starts again. */
  noteActivity(): void {
    this.idle.activity();
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
    this.offlineCap.schedule();
  }

  /** Removes every session (console revoked or agent stopping); no events. */
  clear(): void {
    this.idle.cancel();
    this.expiryTimer?.cancel();
    this.offlineCap.cancel();
    this.tokenTimer.cancel();
    this.sessions.clear();
    this.breakGlassIds.clear();
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
    this.idle.schedule();
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
