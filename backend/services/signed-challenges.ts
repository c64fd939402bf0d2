import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { BatonError } from '../../shared/errors.js';

const NONCE_BYTES = 16;
const EXPIRY_BYTES = 8;
const MAC_BYTES = 16;
const CHALLENGE_BYTES = NONCE_BYTES + EXPIRY_BYTES + MAC_BYTES;

/**
 * WebAuthn challenges that cost the backend nothing until they come back: each is a random nonce,
 * its expiry and an HMAC over both (with a key that lives as long as the process). Issuing one
 * stores nothing, so no number of requests for challenges can push out anyone else's. A challenge
 * is single use: its nonce is remembered from when it is presented until it expires; presenting
 * needs a valid, unexpired challenge, so that memory is bounded by what the callers can present
 * within one lifetime, and capped at `maxInFlight` (beyond it new presentations are refused with
 * `ADMIN_SIGN_IN_RATE_LIMITED` until older ones expire, rather than forgetting a used one).
 */
export class SignedChallenges {
  private readonly key = randomBytes(32);
  /** Nonces presented and not yet expired, in the order they were presented. */
  private readonly used = new Map<string, number>();

  constructor(
    private readonly options: { purpose: string; ttlMs: () => number; clock: () => number; maxInFlight: number },
  ) {}

  issue(): string {
    const nonce = randomBytes(NONCE_BYTES);
    const expiry = Buffer.alloc(EXPIRY_BYTES);
    expiry.writeBigUInt64BE(BigInt(this.options.clock() + this.options.ttlMs()));
    return Buffer.concat([nonce, expiry, this.mac(nonce, expiry)]).toString('base64url');
  }

  /** Accepts a challenge this process issued, once, before it expires. */
  consume(challenge: string): void {
    const raw = Buffer.from(challenge, 'base64url');
    const nonce = raw.subarray(0, NONCE_BYTES);
    const expiry = raw.subarray(NONCE_BYTES, NONCE_BYTES + EXPIRY_BYTES);
    if (
      raw.length !== CHALLENGE_BYTES ||
      raw.toString('base64url') !== challenge ||
      !timingSafeEqual(raw.subarray(NONCE_BYTES + EXPIRY_BYTES), this.mac(nonce, expiry))
    ) {
      throw new BatonError('CHALLENGE_UNKNOWN', 'The challenge was not issued for an admin sign-in by this backend');
    }
    const now = this.options.clock();
    const expiresAt = Number(expiry.readBigUInt64BE());
    if (expiresAt <= now) throw new BatonError('CHALLENGE_EXPIRED', 'The challenge has expired');
    const id = nonce.toString('base64url');
    if (this.used.has(id)) throw new BatonError('CHALLENGE_UNKNOWN', 'The challenge was already used');
    this.sweep(now, this.used.size >= this.options.maxInFlight);
    if (this.used.size >= this.options.maxInFlight) {
      throw new BatonError(
        'ADMIN_SIGN_IN_RATE_LIMITED',
        `${this.used.size} admin sign-ins are in progress; try again in a minute`,
        { extra: { retryAfterSeconds: 60 } },
      );
    }
    this.used.set(id, expiresAt);
  }

  private mac(nonce: Buffer, expiry: Buffer): Buffer {
    return createHmac('sha256', this.key)
      .update(this.options.purpose)
      .update(nonce)
      .update(expiry)
      .digest()
      .subarray(0, MAC_BYTES);
  }

  /** Forgets expired nonces: the oldest presented first, or all of them when `full`. */
  private sweep(now: number, full: boolean): void {
    for (const [id, expiresAt] of this.used) {
      if (expiresAt <= now) this.used.delete(id);
      else if (!full) return;
    }
  }
}
