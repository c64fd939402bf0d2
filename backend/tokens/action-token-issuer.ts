import { randomUUID } from 'node:crypto';
import { jwtVerify, decodeProtectedHeader, type JWK, type JWTPayload } from 'jose';
import { LEVEL_PROFILES, type AssuranceLevel } from '../../shared/levels.js';
import { SharedKeyRing } from '../crypto/key-ring.js';
import { RotatingSigningKeys } from '../crypto/rotating-signing-keys.js';
import { DEFAULT_TOKEN_KEY_ROTATION_DAYS, TOKEN_ISSUER } from '../crypto/token-issuer.js';
import type { Store } from '../store/repositories.js';
import { signEs256 } from './compact-jws.js';

/** The JWS `typ` of an action token (RFC 9068 access token). */
export const ACTION_TOKEN_TYPE = 'at+jwt';
/** No action token lives longer than this, whatever the policy says (the policy caps it lower). */
export const MAX_ACTION_TOKEN_TTL_SECONDS = 600;
/** App servers' clocks may run this far behind ours. */
const CLOCK_SKEW_SECONDS = 60;
/** A retired key stays in the JWKS until every action token it signed has expired. */
export const RETIRED_ACTION_KEY_KEPT_MS = (MAX_ACTION_TOKEN_TTL_SECONDS + CLOCK_SKEW_SECONDS) * 1000;
/** `sign` runs the ring's upkeep at most this often. */
const MAINTAIN_EVERY_MS = 1000;
/** The ring's name in the database (`meta` key `key-ring:action-token`). */
export const ACTION_TOKEN_RING = 'action-token';

/** What one action token says. The issuer signs what it is given: the caller decided under the policy. */
export interface ActionTokenClaims {
  /** `sub`: the operator (or a service) the token acts for. */
  subject: string;
  /** `aud`: the app server (`apps[].audience`). */
  audience: string;
  /** `action` and `scope`. */
  action: string;
  /** Capped to MAX_ACTION_TOKEN_TTL_SECONDS. */
  ttlSeconds: number;
  /**
   * Epoch ms: `exp` is never later than this (whatever `ttlSeconds` says), e.g. the end of the token a
   * service acts on. `expiresIn` is then what is left.
   */
  notAfter?: number | undefined;
  channel: string;
  policyVersion: number;
  /** `sid`: the human session it rests on (revocations are pushed by session). */
  sessionId?: string | undefined;
  /** With `authTime`: `level`, `acr`, `amr`, `auth_time`. */
  level?: AssuranceLevel | undefined;
  /** Epoch ms. */
  authTime?: number | undefined;
  /** `console`: the console it was asked at. */
  consoleId?: string | undefined;
  /**
   * RFC 8693 `act`: who acts on behalf of `sub` (or on whose behalf a service acts): the operator, their
   * session and the console it was opened at (app servers refuse the token with any of them revoked).
   */
  act?: { sub: string; sid?: string; console?: string } | undefined;
  /** Further top-level claims (they never override the ones above). */
  extra?: Record<string, unknown> | undefined;
}

export interface IssuedActionToken {
  token: string;
  jti: string;
  /** Epoch ms. */
  expiresAt: number;
  /** Seconds. */
  expiresIn: number;
}

export interface ActionTokenPayload extends JWTPayload {
  action: string;
  scope: string;
  channel: string;
  policy_version: number;
  sid?: string;
  level?: AssuranceLevel;
  acr?: string;
  amr?: string[];
  auth_time?: number;
  console?: string;
  act?: { sub: string; sid?: string; console?: string };
}

export interface ActionTokenIssuerOptions {
  store: Store;
  logger: {
    info(obj: object, msg: string): void;
    warn(obj: object, msg: string): void;
    error(obj: object, msg: string): void;
  };
  rotationDays?: number | undefined;
  kekFile?: string | undefined;
}

/**
 * Signs action tokens (ES256) with the cluster's `action-token` key ring, sealed in the database
 * under the key-encryption key like the assurance tokens' ring (ADR 0006) but apart from it: an app
 * server trusts these keys only, so an assurance token can never pass for an action token. Rotation
 * with overlap as in `TokenIssuer`: the retired key stays in the JWKS until its tokens have expired.
 */
export class ActionTokenIssuer {
  private readonly keys: RotatingSigningKeys;
  private maintainedAt = Number.NEGATIVE_INFINITY;

  private constructor(
    ring: SharedKeyRing,
    private readonly clock: () => number,
    rotationMs: number,
  ) {
    this.keys = new RotatingSigningKeys(ring, clock, rotationMs, RETIRED_ACTION_KEY_KEPT_MS, 'action-token');
  }

  static async open(
    dataDir: string,
    clock: () => number,
    options: ActionTokenIssuerOptions,
  ): Promise<ActionTokenIssuer> {
    const ring = await SharedKeyRing.open({
      store: options.store,
      name: ACTION_TOKEN_RING,
      dataDir,
      clock,
      logger: options.logger,
      keepRetiredMs: RETIRED_ACTION_KEY_KEPT_MS,
      kekFile: options.kekFile,
    });
    const days = options.rotationDays ?? DEFAULT_TOKEN_KEY_ROTATION_DAYS;
    const issuer = new ActionTokenIssuer(ring, clock, days * 24 * 3600 * 1000);
    await issuer.maintain();
    return issuer;
  }

  /** The public keys an action token may be signed with (served as `GET /v1/tokens/jwks.json`). */
  jwks(): { keys: JWK[] } {
    return this.keys.jwks();
  }

  /** The JWKS as served over HTTP: from a ring read at most JWKS_READ_MS ago (another node may have rotated). */
  servedJwks(): Promise<{ keys: JWK[] }> {
    return this.keys.servedJwks();
  }

  get activeKid(): string {
    return this.keys.activeKid;
  }

  /** A new key signs from now on, on every node; the old one stays published until its tokens expired. */
  rotate(): Promise<{ previous: string; current: string }> {
    return this.keys.rotate();
  }

  /** Rotates when the active key is due and drops retired keys whose tokens have all expired. */
  maintain(): Promise<void> {
    return this.keys.maintain();
  }

  async sign(claims: ActionTokenClaims): Promise<IssuedActionToken> {
    // The ring's upkeep (re-read, rotation when due, pruning) at most once a second, not per token.
    const at = this.clock();
    if (at - this.maintainedAt >= MAINTAIN_EVERY_MS || at < this.maintainedAt) {
      await this.maintain();
      this.maintainedAt = at;
    }
    const now = Math.floor(this.clock() / 1000);
    let ttl = Math.max(1, Math.min(Math.floor(claims.ttlSeconds), MAX_ACTION_TOKEN_TTL_SECONDS));
    if (claims.notAfter !== undefined) ttl = Math.min(ttl, Math.floor(claims.notAfter / 1000) - now);
    const exp = now + ttl;
    const jti = randomUUID();
    const payload: Record<string, unknown> = {
      ...claims.extra,
      action: claims.action,
      scope: claims.action,
      channel: claims.channel,
      policy_version: claims.policyVersion,
    };
    if (claims.sessionId !== undefined) payload.sid = claims.sessionId;
    if (claims.consoleId !== undefined) payload.console = claims.consoleId;
    if (claims.level !== undefined && claims.authTime !== undefined) {
      const profile = LEVEL_PROFILES[claims.level];
      payload.level = claims.level;
      payload.acr = profile.acr;
      payload.amr = [...profile.amr];
      payload.auth_time = Math.floor(claims.authTime / 1000);
    }
    if (claims.act !== undefined) payload.act = claims.act;
    payload.iss = TOKEN_ISSUER;
    payload.aud = claims.audience;
    payload.sub = claims.subject;
    payload.jti = jti;
    payload.iat = now;
    payload.exp = exp;
    const ring = this.keys.ring.current;
    // node:crypto directly (compact-jws.ts), the ring's private KeyObject as imported once per ring read.
    const token = signEs256({ alg: 'ES256', typ: ACTION_TOKEN_TYPE, kid: ring.active.kid }, payload, ring.privateKey);
    return { token, jti, expiresAt: exp * 1000, expiresIn: ttl };
  }

  /** Verifies an action token for `audience` with any key still in the JWKS (tests and tools; apps use @baton/verifier). */
  async verify(token: string, audience: string): Promise<ActionTokenPayload> {
    const { kid, typ } = decodeProtectedHeader(token);
    if (typ !== ACTION_TOKEN_TYPE) throw new Error(`Not an action token (typ "${typ ?? ''}")`);
    const key = await this.keys.published(kid ?? '');
    if (key === undefined) throw new Error(`No action-token key "${kid ?? ''}" in the JWKS`);
    const { payload } = await jwtVerify(token, key.publicKey, {
      issuer: TOKEN_ISSUER,
      audience,
      algorithms: ['ES256'],
      currentDate: new Date(this.clock()),
    });
    return payload as ActionTokenPayload;
  }
}
