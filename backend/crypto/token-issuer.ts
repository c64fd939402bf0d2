import { join } from 'node:path';
import { SignJWT, jwtVerify, decodeProtectedHeader, type JWK, type JWTPayload } from 'jose';
import { LEVEL_PROFILES, type AssuranceLevel } from '../../shared/levels.js';
import { KeyRing } from './key-ring.js';

export const SIGNING_KEY_FILE = 'token-signing-key.json';
export const TOKEN_ISSUER = 'urn:baton:backend';
export const TOKEN_AUDIENCE = 'urn:baton:console';

/** The longest an assurance token lives (the policy's `tokenTtlSeconds` upper bound). */
export const MAX_TOKEN_TTL_SECONDS = 3600;
/** Verifiers' clocks may run this far behind ours. */
const CLOCK_SKEW_SECONDS = 300;
/** A retired key stays in the JWKS until every token it signed has expired. */
export const RETIRED_TOKEN_KEY_KEPT_MS = (MAX_TOKEN_TTL_SECONDS + CLOCK_SKEW_SECONDS) * 1000;
export const DEFAULT_TOKEN_KEY_ROTATION_DAYS = 30;

export interface AssuranceClaims {
  operatorId: string;
  sessionId: string;
  level: AssuranceLevel;
  authTime: number;
  consoleId: string;
  consoleJkt: string;
  channel: string;
  ttlSeconds: number;
}

export interface AssuranceTokenPayload extends JWTPayload {
  sid: string;
  acr: string;
  amr: string[];
  auth_time: number;
  cnf: { jkt: string };
  baton: { level: AssuranceLevel; aal: number; console: string; channel: string };
}

export interface TokenIssuerOptions {
  /** The active key is replaced once it is this old (0: only when an admin rotates it). */
  rotationDays?: number | undefined;
}

/**
 * Issues short-lived ES256 assurance tokens bound to the console key (RFC 7800 `cnf.jkt`).
 * The signing keys live in the data directory (mode 0600), outside the database. The key is rotated
 * with overlap: a new key signs, and the old one stays in the JWKS (and is accepted by `verify`)
 * until every token it signed has expired.
 */
export class TokenIssuer {
  private rotating: Promise<unknown> | undefined;

  private constructor(
    private readonly ring: KeyRing,
    private readonly clock: () => number,
    private readonly rotationMs: number,
  ) {}

  static async open(dataDir: string, clock: () => number, options: TokenIssuerOptions = {}): Promise<TokenIssuer> {
    const ring = await KeyRing.open({
      file: join(dataDir, SIGNING_KEY_FILE),
      clock,
      keepRetiredMs: RETIRED_TOKEN_KEY_KEPT_MS,
    });
    const days = options.rotationDays ?? DEFAULT_TOKEN_KEY_ROTATION_DAYS;
    const issuer = new TokenIssuer(ring, clock, days * 24 * 3600 * 1000);
    await issuer.maintain();
    return issuer;
  }

  /** The public keys a token may be signed with: the active one and those retired less than an hour ago. */
  jwks(): { keys: JWK[] } {
    this.ring.prune();
    return { keys: this.ring.list().map((k) => ({ ...k.publicJwk, alg: 'ES256', use: 'sig' })) };
  }

  get activeKid(): string {
    return this.ring.active.kid;
  }

  /** A new key signs from now on; the old one stays published until its tokens have expired. */
  async rotate(): Promise<{ previous: string; current: string }> {
    return this.ring.rotate();
  }

  /** Rotates when the active key is due and drops retired keys whose tokens have all expired. */
  async maintain(): Promise<void> {
    this.ring.prune();
    if (this.rotationMs > 0 && this.ring.isDue(this.rotationMs)) {
      this.rotating ??= this.rotate().finally(() => (this.rotating = undefined));
      await this.rotating;
    }
  }

  async issue(claims: AssuranceClaims): Promise<{ token: string; expiresAt: number }> {
    await this.maintain();
    const profile = LEVEL_PROFILES[claims.level];
    const now = Math.floor(this.clock() / 1000);
    const exp = now + claims.ttlSeconds;
    const signer = this.ring.active;
    const token = await new SignJWT({
      sid: claims.sessionId,
      acr: profile.acr,
      amr: [...profile.amr],
      auth_time: Math.floor(claims.authTime / 1000),
      cnf: { jkt: claims.consoleJkt },
      baton: { level: claims.level, aal: profile.aal, console: claims.consoleId, channel: claims.channel },
    })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: signer.kid })
      .setIssuer(TOKEN_ISSUER)
      .setAudience(TOKEN_AUDIENCE)
      .setSubject(claims.operatorId)
      .setIssuedAt(now)
      .setExpirationTime(exp)
      .sign(this.ring.privateKey);
    return { token, expiresAt: exp * 1000 };
  }

  /** Verifies a token signed by any key still in the JWKS. */
  async verify(token: string): Promise<AssuranceTokenPayload> {
    const { kid } = decodeProtectedHeader(token);
    const key = this.ring.get(kid ?? '');
    if (key === undefined) throw new Error(`No signing key "${kid ?? ''}" in the JWKS`);
    const { payload } = await jwtVerify(token, key.publicKey, {
      issuer: TOKEN_ISSUER,
      audience: TOKEN_AUDIENCE,
      algorithms: ['ES256'],
      currentDate: new Date(this.clock()),
    });
    return payload as AssuranceTokenPayload;
  }
}
