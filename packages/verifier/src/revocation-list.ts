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
}

/** Tokens live at most 10 minutes (Baton's cap), plus clock skew: older revocations concern no live token. */
const KEEP_MS = 11 * 60 * 1000;

/**
 * The revocations an app server has heard of, and which tokens they refuse:
 * - a session: every token of that `sid`;
 * - a console: its tokens issued up to the revocation (`console` claim, `iat`);
 * - an operator or one of their passkeys: the operator's tokens issued up to the revocation (a
 *   passkey's sessions are not named in the revocation, so all of that operator's tokens of that
 *   moment go; the agent simply exchanges again for a session that still stands);
 * - a service: its tokens issued up to then (`sub`).
 * Entries are forgotten once no token they could concern is still alive.
 */
export class RevocationList {
  private readonly sessions = new Map<string, number>();
  private readonly consoles = new Map<string, number>();
  private readonly subjects = new Map<string, number>();
  /** The highest epoch applied (the stream's `Last-Event-ID`). */
  epoch = 0;

  constructor(private readonly clock: () => number = Date.now) {}

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
  refuses(token: RevocableToken): 'session' | 'console' | 'subject' | undefined {
    if (token.sid !== undefined && this.sessions.has(token.sid)) return 'session';
    const issuedMs = (token.iat ?? 0) * 1000;
    const consoleAt = token.console === undefined ? undefined : this.consoles.get(token.console);
    // `iat` has a one-second grain: a token of the revocation's own second counts as issued before it.
    if (consoleAt !== undefined && issuedMs <= consoleAt) return 'console';
    const subjectAt = token.sub === undefined ? undefined : this.subjects.get(token.sub);
    if (subjectAt !== undefined && issuedMs <= subjectAt) return 'subject';
    return undefined;
  }

  get size(): number {
    return this.sessions.size + this.consoles.size + this.subjects.size;
  }

  private prune(): void {
    const horizon = this.clock() - KEEP_MS;
    for (const map of [this.sessions, this.consoles, this.subjects]) {
      for (const [key, at] of map) if (at < horizon) map.delete(key);
    }
  }
}
