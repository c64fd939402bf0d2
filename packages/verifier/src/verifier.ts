import { VerificationError } from './errors.js';
import type { KeyObject } from 'node:crypto';
import { parseJws, verifyEs256, type ParsedJws } from './jws.js';
import { JwksUnavailableError, LocalKeySet, RemoteKeySet, type KeyResolver, type PublicJwk } from './remote-key-set.js';
import { LEVEL_ACR, acrValuesFor, isLevel, meets, type Level } from './levels.js';
import type { RevocableToken } from './revocation-list.js';

/** Baton's `iss` for the tokens it signs. */
export const BATON_ISSUER = 'urn:baton:backend';
/** The JWS `typ` of an action token (RFC 9068). */
export const ACTION_TOKEN_TYPE = 'at+jwt';

/** What the app requires for one action: at least this level, authenticated at most `maxAgeSeconds` ago. */
export interface ActionRequirement {
  level: Level;
  /** Absent: any age (the token's own short lifetime still bounds it). */
  maxAgeSeconds?: number;
  /**
   * Whether a service account's token (`channel: "service"`, issued on a signed client assertion,
   * RFC 7523) may perform the action; default false. A service token carries no user level: Baton's
   * policy decided whether the service may act (and for which human, `act`).
   */
  allowServices?: boolean;
}

/** The channel of tokens Baton issues to service accounts. */
export const SERVICE_CHANNEL = 'service';

/** Where revocations come from (a `RevocationSubscription`, or a `RevocationList` you feed yourself). */
export interface RevocationSource {
  refuses(token: RevocableToken): string | undefined;
  /** How long the source has been unable to hear of revocations (0 when it is live); optional. */
  downForMs?(): number;
}

export interface VerifierOptions {
  /** This app server's identifier: the `aud` its tokens must carry (`apps[].audience` in Baton's policy). */
  audience: string;
  /** Baton's action-token JWKS, e.g. `https://baton.bank.example/v1/tokens/jwks.json`. */
  jwksUrl?: string | URL;
  /** Or a fixed JWKS document (tests, keys distributed by other means). One of the two is required. */
  jwks?: { keys: readonly PublicJwk[] };
  /** The actions this server performs and what each requires. */
  actions: Readonly<Record<string, ActionRequirement>>;
  /** Default `urn:baton:backend`. */
  issuer?: string;
  /** Clock skew accepted on `exp`, `iat` and `auth_time`, in seconds (default 30). */
  clockToleranceSeconds?: number;
  revocations?: RevocationSource;
  /**
   * Refuse every token (REVOCATIONS_UNAVAILABLE) once the revocation source has been down this long
   * (default: never; tokens then stay valid until they expire, a few minutes at most).
   */
  maxRevocationLagMs?: number;
  /** JWKS cache lifetime in ms (default 10 minutes; an unknown `kid` refetches at once, at most once a second). */
  jwksCacheMaxAgeMs?: number;
  /**
   * How many tokens whose ES256 signature has verified are remembered, so that the same token
   * presented again (an app checking one token at several steps of one action, retries) skips the
   * signature check: default 4096, 0 to turn it off. Only the signature's outcome is remembered, with
   * the key that verified it: every call still decodes the token and re-checks `typ`, `iss`, `aud`,
   * `exp`, `iat`/`nbf`, the action, the revocations, the level and the age, and the key must still be
   * the one Baton publishes under that `kid` (a JWKS fetch imports keys anew, so it empties the cache in
   * effect). An expired token is dropped when presented; when the cache is full the oldest entry goes.
   */
  signatureCacheSize?: number;
  clock?: () => number;
}

/** An action token's claims (RFC 7519 registered ones typed; Baton's read with care). */
export interface Claims {
  iss?: unknown;
  aud?: unknown;
  sub?: string;
  jti?: string;
  iat?: number;
  exp?: number;
  nbf?: unknown;
  [claim: string]: unknown;
}

/** A verified action token: who, what, how strongly, and since when. */
export interface VerifiedAction {
  /** `sub`: the operator (or, for a service token, the service id). */
  operator: string;
  action: string;
  /** The operator's level; undefined for a service token. */
  level: Level | undefined;
  acr: string | undefined;
  /** Epoch ms of the authentication the level comes from; undefined for a service token. */
  authTime: number | undefined;
  session: string | undefined;
  console: string | undefined;
  channel: string | undefined;
  jti: string;
  /** Epoch ms. */
  expiresAt: number;
  policyVersion: number | undefined;
  /**
   * RFC 8693 `act`: for a service acting for a human, that human (`sub`), their session (`sid`) and the
   * console it was opened at (`console`; absent from tokens signed before Baton put it there).
   */
  actor: { sub: string; sid?: string; console?: string } | undefined;
  /**
   * `break_glass`: the token comes from a session started without the operator's key (a supervisor's
   * tap or an IT code); it only ever carries the policy's `breakGlass.actions`.
   */
  breakGlass: boolean;
  /** Every claim, as signed. */
  claims: Claims;
}

export class ActionTokenVerifier {
  private readonly keys: KeyResolver;
  private readonly clock: () => number;
  private readonly tolerance: number;
  /** Token → the key its signature verified with; insertion order is age. */
  private readonly verifiedSignatures = new Map<string, KeyObject>();
  private readonly signatureCacheSize: number;

  constructor(private readonly options: VerifierOptions) {
    this.clock = options.clock ?? Date.now;
    if (options.jwks !== undefined) this.keys = new LocalKeySet(options.jwks);
    else if (options.jwksUrl !== undefined) {
      this.keys = new RemoteKeySet(new URL(options.jwksUrl), {
        cacheMaxAgeMs: options.jwksCacheMaxAgeMs ?? 10 * 60 * 1000,
        clock: this.clock,
      });
    } else throw new TypeError('ActionTokenVerifier: give jwksUrl or jwks');
    this.tolerance = options.clockToleranceSeconds ?? 30;
    const size = options.signatureCacheSize ?? 4096;
    if (!Number.isInteger(size) || size < 0)
      throw new TypeError('ActionTokenVerifier: signatureCacheSize must be an integer ≥ 0');
    this.signatureCacheSize = size;
  }

  /** How many verified signatures are remembered now (at most `signatureCacheSize`). */
  get cachedSignatures(): number {
    return this.verifiedSignatures.size;
  }

  /** Whether `token`'s signature verifies under `key`, remembering a success (see `signatureCacheSize`). */
  private signatureVerifies(token: string, jws: ParsedJws, key: KeyObject, now: number): boolean {
    const cache = this.verifiedSignatures;
    const known = cache.get(token);
    // Same token string, same key object: the same signature over the same bytes, so the same outcome.
    if (known === key) return true;
    if (!verifyEs256(jws, key)) return false;
    if (this.signatureCacheSize === 0) return true;
    const exp = jws.payload.exp;
    if (typeof exp !== 'number' || now - this.tolerance * 1000 >= exp * 1000) return true; // refused below anyway
    if (known !== undefined) cache.delete(token);
    else if (cache.size >= this.signatureCacheSize) {
      // The oldest goes (tokens are issued in order and live minutes, so it is also the likeliest expired).
      const oldest = cache.keys().next();
      if (oldest.done !== true) cache.delete(oldest.value);
    }
    cache.set(token, key);
    return true;
  }

  /** The token split and decoded, refused unless it says ES256 and `at+jwt`. */
  private parsed(token: string): ParsedJws {
    const jws = parseJws(token);
    if (jws.header.alg !== 'ES256') throw new VerificationError('TOKEN_MALFORMED', 'The token is not signed ES256');
    if (jws.header.typ !== ACTION_TOKEN_TYPE) {
      throw new VerificationError(
        'TOKEN_MALFORMED',
        `The token is not an action token (typ "${String(jws.header.typ)}")`,
      );
    }
    return jws;
  }

  /** The key of `kid` from the resolver (which may fetch the JWKS): JWKS_UNAVAILABLE, TOKEN_KEY_UNKNOWN. */
  private async resolvedKey(kid: string): Promise<KeyObject> {
    let key;
    try {
      key = await this.keys.key(kid);
    } catch (error) {
      if (error instanceof JwksUnavailableError) {
        throw new VerificationError('JWKS_UNAVAILABLE', "Baton's keys cannot be fetched right now; retry shortly", {
          cause: error,
        });
      }
      throw error;
    }
    if (key === undefined) {
      throw new VerificationError('TOKEN_KEY_UNKNOWN', 'The token is signed with a key Baton does not publish');
    }
    return key;
  }

  /**
   * The token's claims once its signature (ES256 under `key`), `iss`, `aud`, `exp`, `iat`/`nbf` and
   * required claims check out. Signature verification is OpenSSL's, synchronous: about twice jose's
   * WebCrypto rate on one core (bench/verifier.ts).
   */
  private checkedClaims(token: string, jws: ParsedJws, key: KeyObject, now: number): Claims {
    if (!this.signatureVerifies(token, jws, key, now)) {
      throw new VerificationError('TOKEN_SIGNATURE_INVALID', "The token's signature does not verify");
    }
    const claims = jws.payload as Claims;
    const { exp, iat, nbf, sub, jti, iss, aud } = claims;
    if (typeof exp !== 'number' || typeof iat !== 'number' || typeof sub !== 'string' || typeof jti !== 'string') {
      throw new VerificationError('TOKEN_MALFORMED', 'The token lacks exp, iat, sub or jti');
    }
    if (iss !== (this.options.issuer ?? BATON_ISSUER)) {
      throw new VerificationError('TOKEN_ISSUER_MISMATCH', "The token is not Baton's");
    }
    if (!(aud === this.options.audience || (Array.isArray(aud) && aud.includes(this.options.audience)))) {
      throw new VerificationError('TOKEN_AUDIENCE_MISMATCH', 'The token is for another app server');
    }
    const skew = this.tolerance * 1000;
    if (now - skew >= exp * 1000) {
      this.verifiedSignatures.delete(token);
      throw new VerificationError('TOKEN_EXPIRED', 'The token has expired');
    }
    if (iat * 1000 > now + skew || (typeof nbf === 'number' && nbf * 1000 > now + skew)) {
      throw new VerificationError('TOKEN_NOT_YET_VALID', 'The token is dated in the future');
    }
    return claims;
  }

  /** What the app requires for `action` (undefined when it did not configure it). */
  requirement(action: string): ActionRequirement | undefined {
    return Object.hasOwn(this.options.actions, action) ? this.options.actions[action] : undefined;
  }

  /**
   * Verifies `token` for `action`: signature (a key of Baton's JWKS), `typ`, issuer, audience,
   * expiry, the action, revocations, then the level and age the action requires. Resolves to what
   * the token says; rejects with a `VerificationError` (its `challenge()` is the WWW-Authenticate value).
   */
  async verify(token: string | undefined, action: string): Promise<VerifiedAction> {
    const required = this.requirement(action);
    if (required === undefined) {
      throw new VerificationError('ACTION_NOT_CONFIGURED', `This server does not perform "${action}"`);
    }
    if (token === undefined || token === '')
      throw new VerificationError('TOKEN_MISSING', 'A Baton action token is required');
    const lag = this.options.revocations?.downForMs?.() ?? 0;
    const maxLag = this.options.maxRevocationLagMs;
    if (maxLag !== undefined && lag > maxLag) {
      throw new VerificationError('REVOCATIONS_UNAVAILABLE', 'Revocations cannot be heard right now; retry shortly');
    }
    const now = this.clock();
    const jws = this.parsed(token);
    const kid = typeof jws.header.kid === 'string' ? jws.header.kid : '';
    // A known, fresh key needs no promise (the usual case); otherwise the resolver may fetch the JWKS.
    const key = this.keys.known?.(kid) ?? (await this.resolvedKey(kid));
    const payload = this.checkedClaims(token, jws, key, now);
    if (payload.action !== action) {
      throw new VerificationError(
        'TOKEN_ACTION_MISMATCH',
        `The token is for "${String(payload.action)}", not "${action}"`,
      );
    }
    const revocations = this.options.revocations;
    if (revocations !== undefined) {
      const revoked = revocations.refuses({
        sub: payload.sub,
        sid: str(payload.sid),
        console: str(payload.console),
        iat: payload.iat,
        // A service acting for a human goes with every revocation of that human's (RFC 8693 `act`).
        actor: actorOf(payload.act),
      });
      if (revoked !== undefined) throw new VerificationError('TOKEN_REVOKED', `The token's ${revoked} was revoked`);
    }

    if (payload.channel === SERVICE_CHANNEL) {
      if (required.allowServices !== true) {
        throw new VerificationError('SERVICE_NOT_ALLOWED', `"${action}" is not open to service accounts here`);
      }
      return verifiedAction(payload, action, undefined, undefined);
    }
    const level = isLevel(payload.level) ? payload.level : undefined;
    const authTime = typeof payload.auth_time === 'number' ? payload.auth_time * 1000 : undefined;
    if (level === undefined || authTime === undefined) {
      throw stepUp(required, 'The token carries no authentication level');
    }
    if (!meets(level, required.level)) {
      throw stepUp(required, `"${action}" needs a "${required.level}" authentication; this one is "${level}"`);
    }
    if (required.maxAgeSeconds !== undefined && now - authTime > (required.maxAgeSeconds + this.tolerance) * 1000) {
      throw stepUp(required, `"${action}" needs an authentication of the last ${required.maxAgeSeconds} s`);
    }
    return verifiedAction(payload, action, level, authTime);
  }
}

/** The RFC 9470 step-up refusal for `required` (a function here, not a closure made on every call). */
function stepUp(required: ActionRequirement, message: string): VerificationError {
  return new VerificationError('INSUFFICIENT_USER_AUTHENTICATION', message, {
    acrValues: acrValuesFor(required.level).join(' '),
    ...(required.maxAgeSeconds === undefined ? {} : { maxAge: required.maxAgeSeconds }),
  });
}

function verifiedAction(
  payload: Claims,
  action: string,
  level: Level | undefined,
  authTime: number | undefined,
): VerifiedAction {
  return {
    operator: payload.sub ?? '',
    action,
    level,
    acr: typeof payload.acr === 'string' ? payload.acr : level === undefined ? undefined : LEVEL_ACR[level],
    authTime,
    session: str(payload.sid),
    console: str(payload.console),
    channel: str(payload.channel),
    jti: payload.jti ?? '',
    expiresAt: (payload.exp ?? 0) * 1000,
    policyVersion: typeof payload.policy_version === 'number' ? payload.policy_version : undefined,
    actor: actorOf(payload.act),
    breakGlass: payload.break_glass === true,
    claims: payload,
  };
}

/** The `act` claim's human (`sub`, and `sid`, `console` when they are strings); undefined without a `sub`. */
function actorOf(value: unknown): { sub: string; sid?: string; console?: string } | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { sub, sid, console } = value as Record<string, unknown>;
  if (typeof sub !== 'string') return undefined;
  return {
    sub,
    ...(typeof sid === 'string' ? { sid } : {}),
    ...(typeof console === 'string' ? { console } : {}),
  };
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
