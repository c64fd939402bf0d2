import type { JWK } from 'jose';
import type { RingKey, SharedKeyRing } from './key-ring.js';

/** A node signs with the ring as it read it at most this long ago (another node may have rotated). */
export const SIGNING_RING_REFRESH_MS = 5000;

/**
 * A JWKS *served* (the HTTP routes) comes from a ring read at most this long before the request:
 * an app or receiver that meets a kid another node started signing with gets it from any node
 * within this bound of the rotation's commit, not up to SIGNING_RING_REFRESH_MS later (it caches
 * what it gets and waits its own cooldown before asking again). It is also the most often a flood
 * of JWKS requests makes a node read the ring.
 */
export const JWKS_READ_MS = 100;

/**
 * The life cycle every token-signing ring of the cluster shares (assurance tokens, action tokens):
 * the JWKS as published, rotation with overlap, and scheduled upkeep. A retired key stays published
 * (and verifies) for `keepRetiredMs`, until every token it signed has expired. Every change is a unit
 * of work on the ring as the database has it, re-checked there, so two nodes never overwrite each
 * other's keys and a rotation that falls due on every node at once happens once.
 */
export class RotatingSigningKeys {
  constructor(
    readonly ring: SharedKeyRing,
    private readonly clock: () => number,
    /** The active key is replaced once it is this old (0: only when an admin rotates it). */
    private readonly rotationMs: number,
    private readonly keepRetiredMs: number,
    /** What the ring signs, for errors: "token", "action-token". */
    private readonly label: string,
  ) {}

  /**
   * The public keys a token may be signed with: the active one and the retired ones still kept.
   * Synchronous (served as it is): when this node read the ring more than SIGNING_RING_REFRESH_MS
   * ago, it reads it again in the background for the next call.
   */
  jwks(): { keys: JWK[] } {
    const now = this.clock();
    this.ring.refreshIfOlder(SIGNING_RING_REFRESH_MS).catch(() => undefined);
    const keys = this.ring.current
      .list()
      .filter((k) => k.retiredAt === null || now - k.retiredAt < this.keepRetiredMs)
      .map((k) => ({ ...k.publicJwk, alg: 'ES256', use: 'sig' }));
    return { keys };
  }

  /**
   * The JWKS as the routes serve it: `jwks()` from a ring read at most JWKS_READ_MS ago (read again
   * first otherwise). When the ring cannot be read, the keys held (the failure is logged).
   */
  async servedJwks(): Promise<{ keys: JWK[] }> {
    await this.ring.refreshIfOlder(JWKS_READ_MS);
    return this.jwks();
  }

  /** The key that signs now, as this node last read the ring. */
  get activeKid(): string {
    return this.ring.current.active.kid;
  }

  /** The key `kid` while it is still published (read again for an unknown kid); undefined otherwise. */
  async published(kid: string): Promise<RingKey | undefined> {
    const key = await this.ring.find(kid);
    if (key === undefined || (key.retiredAt !== null && this.clock() - key.retiredAt >= this.keepRetiredMs)) {
      return undefined;
    }
    return key;
  }

  /** A new key signs from now on, on every node; the old one stays published until its tokens have expired. */
  async rotate(): Promise<{ previous: string; current: string }> {
    let previous = '';
    const next = await this.ring.update(async (ring, now) => {
      if (ring === undefined) throw new Error(`the ${this.label} key ring is gone from the database`);
      previous = ring.active.kid;
      return ring.rotated(now, this.keepRetiredMs);
    });
    return { previous, current: next.active.kid };
  }

  /** Rotates when the active key is due and drops retired keys whose tokens have all expired. */
  async maintain(): Promise<void> {
    await this.ring.refreshIfOlder(SIGNING_RING_REFRESH_MS);
    const now = this.clock();
    const due = this.rotationMs > 0 && this.ring.current.isDue(this.rotationMs, now);
    if (!due && this.ring.current.pruned(now, this.keepRetiredMs) === undefined) return;
    await this.ring.update(async (ring, at) => {
      if (ring === undefined) throw new Error(`the ${this.label} key ring is gone from the database`);
      // Re-checked on the ring as the database has it: another node may have done it already.
      if (this.rotationMs > 0 && ring.isDue(this.rotationMs, at)) return ring.rotated(at, this.keepRetiredMs);
      return ring.pruned(at, this.keepRetiredMs);
    });
  }
}
