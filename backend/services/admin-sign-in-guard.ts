import { BatonError } from '../../shared/errors.js';
import { clientLimitKey } from '../http/client-address.js';
import { EventCap } from '../http/event-cap.js';
import { TokenBuckets } from '../http/rate-limit.js';
import type { EventLog } from './event-log.js';

/**
 * Limits for the admin console's unauthenticated ceremonies (sign-in and passkey registration):
 * each client (an IPv4 address or an IPv6 /64) may make `burst` requests at once and `perMinute`
 * a minute after that. A person signing in makes two (options, verify).
 */
export const ADMIN_SIGN_IN_LIMITS = {
  burst: 20,
  perMinute: 20,
  /** Clients remembered at once (least recently seen forgotten first). */
  maxClients: 10_000,
  /** A client being refused is recorded once per window, not once per request. */
  floodWindowMs: 60_000,
  /** At most this many flood events a window for all clients together; the rest are counted. */
  maxFloodEventsPerWindow: 100,
  /** Failed assertions with one passkey from one client before each further try must wait. */
  freeFailures: 5,
  /** The wait doubles with each further failure, from 1 s up to this. */
  maxBackoffMs: 15 * 60_000,
} as const;

function retryAfter(ms: number): { retryAfterSeconds: number } {
  return { retryAfterSeconds: Math.max(1, Math.ceil(ms / 1000)) };
}

/**
 * What stands between anyone who can reach the backend and the admins' way in. Per-client token
 * buckets limit floods (`ADMIN_SIGN_IN_RATE_LIMITED`, recorded once per client per window); failed
 * assertions back off per (passkey, client) instead of locking the admin out
 * (`ADMIN_SIGN_IN_THROTTLED`): failures from one address never slow the admin down at another.
 *
 * State is in this node's memory, on purpose, and a restart forgets it: it is a rate limit, not
 * trust state. Nothing here decides whether a challenge, a passkey or a session is valid (the store
 * does that, the same on every node); it only slows a client down. In a cluster each node keeps its
 * own buckets and back-offs, so a client spreading its requests over N nodes gets up to N times the
 * rate: the bounds above are per node, and the load balancer's own per-client limit is the one that
 * holds cluster-wide.
 */
export class AdminSignInGuard {
  private readonly buckets: TokenBuckets;
  private readonly floods = new Map<string, { windowStart: number; refused: number }>();
  private readonly floodEvents: EventCap;
  private readonly failures = new Map<string, { count: number; last: number }>();

  constructor(private readonly deps: { events: EventLog; clock: () => number }) {
    this.buckets = new TokenBuckets({
      capacity: ADMIN_SIGN_IN_LIMITS.burst,
      refillPerMinute: ADMIN_SIGN_IN_LIMITS.perMinute,
      maxKeys: ADMIN_SIGN_IN_LIMITS.maxClients,
      clock: deps.clock,
    });
    this.floodEvents = new EventCap({
      max: ADMIN_SIGN_IN_LIMITS.maxFloodEventsPerWindow,
      windowMs: ADMIN_SIGN_IN_LIMITS.floodWindowMs,
      clock: deps.clock,
    });
  }

  /** Spends one of the client's requests, or refuses (429) and records the flood once per window. */
  async admit(client: string): Promise<void> {
    const key = clientLimitKey(client);
    const waitMs = this.buckets.take(key);
    if (waitMs === 0) return;
    await this.recordFlood(key, client);
    throw new BatonError(
      'ADMIN_SIGN_IN_RATE_LIMITED',
      `Too many admin sign-in requests from ${client}: at most ${ADMIN_SIGN_IN_LIMITS.burst} at once and ${ADMIN_SIGN_IN_LIMITS.perMinute} a minute`,
      { extra: retryAfter(waitMs) },
    );
  }

  /** Refuses a try with this passkey from this client while its back-off after failures lasts. */
  checkBackoff(credentialId: string, client: string): void {
    const entry = this.failures.get(this.failureKey(credentialId, client));
    if (entry === undefined || entry.count < ADMIN_SIGN_IN_LIMITS.freeFailures) return;
    const waitMs = this.backoffMs(entry.count) - (this.deps.clock() - entry.last);
    if (waitMs <= 0) return;
    throw new BatonError(
      'ADMIN_SIGN_IN_THROTTLED',
      `${entry.count} failed attempts with this passkey from ${client}: try again in ${Math.ceil(waitMs / 1000)} s`,
      { extra: retryAfter(waitMs) },
    );
  }

  recordFailure(credentialId: string, client: string): void {
    const key = this.failureKey(credentialId, client);
    const entry = this.failures.get(key) ?? { count: 0, last: 0 };
    this.failures.delete(key);
    this.failures.set(key, { count: entry.count + 1, last: this.deps.clock() });
    for (const oldest of this.failures.keys()) {
      if (this.failures.size <= ADMIN_SIGN_IN_LIMITS.maxClients) break;
      this.failures.delete(oldest);
    }
  }

  recordSuccess(credentialId: string, client: string): void {
    this.failures.delete(this.failureKey(credentialId, client));
  }

  private failureKey(credentialId: string, client: string): string {
    return `${credentialId} ${clientLimitKey(client)}`;
  }

  private backoffMs(count: number): number {
    const doublings = Math.min(30, count - ADMIN_SIGN_IN_LIMITS.freeFailures);
    return Math.min(ADMIN_SIGN_IN_LIMITS.maxBackoffMs, 1000 * 2 ** doublings);
  }

  private async recordFlood(key: string, client: string): Promise<void> {
    const now = this.deps.clock();
    const window = ADMIN_SIGN_IN_LIMITS.floodWindowMs;
    const flood = this.floods.get(key);
    if (flood !== undefined && now - flood.windowStart < window) {
      flood.refused++;
      return;
    }
    this.floods.delete(key);
    this.floods.set(key, { windowStart: now, refused: 1 });
    for (const oldest of this.floods.keys()) {
      if (this.floods.size <= ADMIN_SIGN_IN_LIMITS.maxClients) break;
      this.floods.delete(oldest);
    }
    const suppressed = this.floodEvents.take();
    if (suppressed === undefined) return;
    await this.deps.events.record({
      type: 'sign-in-failed',
      subject: {},
      outcome: 'failure',
      reasons: ['admin-sign-in-rate-limited'],
      detail: {
        surface: 'admin-console',
        client,
        clientKey: key,
        // Refusals this client had in its previous window (0 if it had none): the size of a flood.
        refusedPreviousWindow: flood?.refused ?? 0,
        windowSeconds: window / 1000,
        // Other clients refused while the event cap held their own events back.
        unrecordedClients: suppressed,
      },
    });
  }
}
