/** One revocation as Baton's stream carries it (`event: revocation`). */
export interface Revocation {
  epoch: number;
  kind: 'session' | 'console' | 'operator' | 'credential' | 'service' | (string & {});
  targetId: string;
  operatorId: string | null;
  /** Epoch ms. */
  at: number;
}

/** What of a token a revocation can concern. */
export interface RevocableToken {
  sub?: string | undefined;
  sid?: string | undefined;
  console?: string | undefined;
  /** Seconds. */
  iat?: number | undefined;
  /**
   * RFC 8693 `act` of a service token acting for a human session: that operator (`sub`), their session
   * (`sid`) and the console it was opened at (`console`; tokens Baton signed before it carried it lack it).
   * Every revocation that refuses the human's own token refuses this one too.
   */
  actor?: { sub?: string | undefined; sid?: string | undefined; console?: string | undefined } | undefined;
}

export interface RevocationListOptions {
  /**
   * How far the clock of the Baton node that signed a token may run ahead of the one that recorded a
   * revocation, in seconds (default 5: Baton's nodes keep time by NTP, well within a second of each other; the
   * margin also covers `iat`'s one-second grain). A console,
   * operator, passkey or service revocation refuses the tokens of its target issued up to this long
   * after its `at`: a token signed just before the revocation committed, by a node whose clock runs
   * ahead (or in the next second of `iat`'s one-second grain), is refused all the same. The price: for
   * that long after a passkey's revocation, the operator's tokens from their other sessions are refused
   * too (their agent's next exchange after it works).
   */
  clockToleranceSeconds?: number;
}

/** Tokens live at most 10 minutes (Baton's cap), plus clock skew: older revocations concern no live token. */
export const TOKEN_HORIZON_MS = 11 * 60 * 1000;
const KEEP_MS = TOKEN_HORIZON_MS;
/**
 * The default of `clockToleranceSeconds`: the skew between two Baton nodes (not between an app server and Baton, which
 * the verifier's own 30 s tolerance is for), plus `iat`'s one-second grain. Kept small: it is also how long a
 * passkey's revocation refuses the operator's tokens from their other sessions.
 */
export const DEFAULT_REVOCATION_SKEW_SECONDS = 5;

/**
 * The revocations an app server has heard of, and which tokens they refuse:
 * - a session: every token of that `sid`;
 * - a console: its tokens issued up to the revocation (`console` claim, `iat`);
 * - an operator or one of their passkeys: the operator's tokens issued up to the revocation (a
 *   passkey's sessions are not named in the revocation, so all of that operator's tokens of that
 *   moment go; the agent simply exchanges again for a session that still stands);
 * - a service: its tokens issued up to then (`sub`).
 * "Up to the revocation" is up to `clockToleranceSeconds` after its `at` (see the option). A service
 * token acting for a human (`act`) is refused by every revocation that refuses that human's own
 * token: of their session (`act.sid`), of them or a passkey of theirs (`act.sub`), of their console
 * (`act.console`). Entries are forgotten once no token they could concern is still alive.
 */
export class RevocationList {
  private readonly sessions = new Map<string, number>();
  private readonly consoles = new Map<string, number>();
  private readonly subjects = new Map<string, number>();
  /** The highest epoch applied (the stream's `Last-Event-ID`). */
  epoch = 0;

  /** Milliseconds after a revocation's `at` up to which a token's `iat` still counts as before it. */
  private readonly skewMs: number;

  constructor(
    private readonly clock: () => number = Date.now,
    options: RevocationListOptions = {},
  ) {
    const skew = options.clockToleranceSeconds ?? DEFAULT_REVOCATION_SKEW_SECONDS;
    if (!Number.isFinite(skew) || skew < 0) {
      throw new TypeError('RevocationList: clockToleranceSeconds must be a number ≥ 0');
    }
    this.skewMs = skew * 1000;
  }

  apply(revocation: Revocation): void {
    this.prune();
    if (revocation.epoch > this.epoch) this.epoch = revocation.epoch;
    const at = revocation.at;
    switch (revocation.kind) {
      case 'session':
        this.sessions.set(revocation.targetId, at);
        break;
      case 'console':
        this.consoles.set(revocation.targetId, at);
        break;
      case 'operator':
      case 'service':
        this.subjects.set(revocation.targetId, at);
        break;
      case 'credential':
        if (revocation.operatorId !== null) this.subjects.set(revocation.operatorId, at);
        break;
      default:
        // A kind this version does not know: refuse nothing rather than guess.
        break;
    }
  }

  /** The reason a token is refused, or undefined when no revocation concerns it. */
  refuses(token: RevocableToken): 'session' | 'console' | 'subject' | 'actor' | undefined {
    const actor = token.actor;
    if (this.sessionRevoked(token.sid) || this.sessionRevoked(actor?.sid)) return 'session';
    // `iat` has a one-second grain (a token of the revocation's own second counts as issued before
    // it), and the node that signed it may run ahead of the one that revoked: the skew margin.
    const issuedMs = (token.iat ?? 0) * 1000 - this.skewMs;
    if (revokedBy(this.consoles, token.console, issuedMs) || revokedBy(this.consoles, actor?.console, issuedMs)) {
      return 'console';
    }
    if (revokedBy(this.subjects, token.sub, issuedMs)) return 'subject';
    if (revokedBy(this.subjects, actor?.sub, issuedMs)) return 'actor';
    return undefined;
  }

  private sessionRevoked(sid: string | undefined): boolean {
    return sid !== undefined && this.sessions.has(sid);
  }

  get size(): number {
    return this.sessions.size + this.consoles.size + this.subjects.size;
  }

  private prune(): void {
    const horizon = this.clock() - KEEP_MS - this.skewMs;
    for (const map of [this.sessions, this.consoles, this.subjects]) {
      for (const [key, at] of map) if (at < horizon) map.delete(key);
    }
  }
}

/** Whether `map` holds a revocation of `id` at or after `issuedMs`. */
function revokedBy(map: Map<string, number>, id: string | undefined, issuedMs: number): boolean {
  if (id === undefined) return false;
  const at = map.get(id);
  return at !== undefined && issuedMs <= at;
}
