import { join } from 'node:path';
import { sign, type KeyObject } from 'node:crypto';
import { jwtVerify, decodeProtectedHeader, type JWK, type JWTPayload } from 'jose';
import { LEVEL_PROFILES, type AssuranceLevel } from '../../shared/levels.js';
import type { Store } from '../store/repositories.js';
import { SharedKeyRing } from './key-ring.js';
import { RotatingSigningKeys } from './rotating-signing-keys.js';

/** The token key file of the releases before ADR 0006: imported into the database once, then renamed. */
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
  /**
   * A break-glass session (issue 14 item 7: started on a supervisor's tap or IT's one-time code,
   * resting on its grant, not on a passkey): the token says so (`break_glass: true`), as the action
   * tokens and the events of that session do.
   */
  breakGlass?: boolean;
}

export interface AssuranceTokenPayload extends JWTPayload {
  sid: string;
  acr: string;
  amr: string[];
  auth_time: number;
  cnf: { jkt: string };
  baton: { level: AssuranceLevel; aal: number; console: string; channel: string };
  /** Present (true) only on the token of a break-glass session. */
  break_glass?: true;
}

export interface TokenIssuerOptions {
  /** Where the cluster's sealed key ring is (required: the ring is shared through the database). */
  store: Store;
  logger: {
    info(obj: object, msg: string): void;
    warn(obj: object, msg: string): void;
    error(obj: object, msg: string): void;
  };
  /** The active key is replaced once it is this old (0: only when an admin rotates it). */
  rotationDays?: number | undefined;
  /** The KEK file (default: $BATON_KEY_ENCRYPTION_KEY_FILE or `<dataDir>/key-encryption-key`). */
  kekFile?: string | undefined;
}

export { SIGNING_RING_REFRESH_MS } from './rotating-signing-keys.js';

/**
 * Issues short-lived ES256 assurance tokens bound to the console key (RFC 7800 `cnf.jkt`).
 * The signing keys are the cluster's one ring, sealed in the database under the key-encryption key
 * (ADR 0006). The key is rotated with overlap: a new key signs, and the old one stays in the JWKS
 * (and is accepted by `verify`) until every token it signed has expired.
 *
 * A rotation on any node reaches the others without a restart: a token carrying a kid this node
 * does not know makes it read the ring again (at most once a second), and a node signs and publishes
 * the ring as read at most SIGNING_RING_REFRESH_MS ago. Every change (rotation, dropping expired
 * retired keys) is a unit of work on the ring as the database has it, so two nodes never overwrite
 * each other's keys, and a rotation that falls due on every node at once happens once.
 */
export class TokenIssuer {
  private readonly keys: RotatingSigningKeys;

  private constructor(
    ring: SharedKeyRing,
    private readonly clock: () => number,
    rotationMs: number,
  ) {
    this.keys = new RotatingSigningKeys(ring, clock, rotationMs, RETIRED_TOKEN_KEY_KEPT_MS, 'token');
  }

  static async open(dataDir: string, clock: () => number, options: TokenIssuerOptions): Promise<TokenIssuer> {
    const days = options.rotationDays ?? DEFAULT_TOKEN_KEY_ROTATION_DAYS;
    const ring = await SharedKeyRing.open({
      store: options.store,
      name: 'token',
      dataDir,
      clock,
      logger: options.logger,
      keepRetiredMs: RETIRED_TOKEN_KEY_KEPT_MS,
      legacyFile: join(dataDir, SIGNING_KEY_FILE),
      kekFile: options.kekFile,
    });
    const issuer = new TokenIssuer(ring, clock, days * 24 * 3600 * 1000);
    await issuer.maintain();
    return issuer;
  }

  /** The public keys a token may be signed with: the active one and those retired less than an hour ago. */
  jwks(): { keys: JWK[] } {
    return this.keys.jwks();
  }

  /** The JWKS as served over HTTP: from a ring read at most JWKS_READ_MS ago (another node may have rotated). */
  servedJwks(): Promise<{ keys: JWK[] }> {
    return this.keys.servedJwks();
  }

  /** The key that signs now, as this node last read the ring. */
  get activeKid(): string {
    return this.keys.activeKid;
  }

  /** A new key signs from now on, on every node; the old one stays published until its tokens have expired. */
  rotate(): Promise<{ previous: string; current: string }> {
    return this.keys.rotate();
  }

  /** Rotates when the active key is due and drops retired keys whose tokens have all expired. */
  maintain(): Promise<void> {
    return this.keys.maintain();
  }

  async issue(claims: AssuranceClaims): Promise<{ token: string; expiresAt: number }> {
    await this.maintain();
    const profile = LEVEL_PROFILES[claims.level];
    const now = Math.floor(this.clock() / 1000);
    const exp = now + claims.ttlSeconds;
    const ring = this.keys.ring.current;
    const signer = ring.active;
    const payload: AssuranceTokenPayload = {
      sid: claims.sessionId,
      acr: profile.acr,
      amr: [...profile.amr],
      auth_time: Math.floor(claims.authTime / 1000),
      cnf: { jkt: claims.consoleJkt },
      baton: { level: claims.level, aal: profile.aal, console: claims.consoleId, channel: claims.channel },
      ...(claims.breakGlass === true ? { break_glass: true as const } : {}),
      iss: TOKEN_ISSUER,
      aud: TOKEN_AUDIENCE,
      sub: claims.operatorId,
      iat: now,
      exp,
    };
    const token = await signEs256JwtOnPool({ alg: 'ES256', typ: 'at+jwt', kid: signer.kid }, payload, ring.privateKey);
    return { token, expiresAt: exp * 1000 };
  }

  /** Verifies a token signed by any key of the cluster's ring still in the JWKS (read again for an unknown kid). */
  async verify(token: string): Promise<AssuranceTokenPayload> {
    const { kid } = decodeProtectedHeader(token);
    const key = await this.keys.published(kid ?? '');
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

/**
 * A compact JWS (RFC 7515) signed with ES256 by node:crypto on the calling thread: the same token
 * jose's SignJWT makes (header and claims as given, base64url, the P-256 signature as r‖s), without
 * WebCrypto's key conversion and job per token: 43–59 µs of CPU per token against 97–136 µs through
 * SignJWT (same claims, 2,000 per round, three alternating rounds, load 5). `jose.jwtVerify` (and
 * every verifier) reads it.
 */
export function signEs256Jwt(
  header: { alg: 'ES256'; typ: string; kid: string },
  payload: object,
  key: KeyObject,
): string {
  const input = `${base64urlJson(header)}.${base64urlJson(payload)}`;
  const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

/**
 * `signEs256Jwt` with the signature made on libuv's thread pool (`sign` with a callback): the event loop
 * only builds the input and dispatches the job. Same token. Used where the caller awaits anyway (every
 * sign-in's assurance token).
 */
export function signEs256JwtOnPool(
  header: { alg: 'ES256'; typ: string; kid: string },
  payload: object,
  key: KeyObject,
): Promise<string> {
  const input = `${base64urlJson(header)}.${base64urlJson(payload)}`;
  return new Promise((resolve, reject) => {
    sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }, (error, signature) =>
      error === null ? resolve(`${input}.${signature.toString('base64url')}`) : reject(error),
    );
  });
}

function base64urlJson(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}
