import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import { TOKEN_AUDIENCE, TOKEN_ISSUER, type AssuranceTokenPayload, type TokenIssuer } from '../crypto/token-issuer.js';
import { JwsRejected, parseEs256, verifyEs256 } from './compact-jws.js';

/** How long one reading of the assurance JWKS serves (see `publishedKey`). */
const JWKS_REUSE_MS = 1000;

/**
 * Verifies the assurance token a console presents as an exchange's `subject_token` with OpenSSL
 * directly (compact-jws.ts) against the assurance ring's published keys, imported once per `kid`.
 * The checks are `TokenIssuer.verify`'s (alg ES256 only, `iss`, `aud`, `exp`, `nbf`), plus `typ`
 * `at+jwt`, no `crit`, and the claims the exchange reads (`sub`, `sid`, `cnf.jkt`, `baton.console`).
 * A `kid` this node does not publish goes to `TokenIssuer.verify`, which reads the ring again (another
 * node may have rotated) and refuses it if it is still unknown.
 */
export class SubjectTokenVerifier {
  private readonly imported = new Map<string, { x: unknown; y: unknown; key: KeyObject }>();
  private published: { at: number; keys: JWK[] } | undefined;

  constructor(
    private readonly assurance: TokenIssuer,
    private readonly clock: () => number,
  ) {}

  async verify(token: string): Promise<AssuranceTokenPayload> {
    const jws = parseEs256(token, 'at+jwt');
    const key = this.publishedKey(jws.kid);
    if (key === undefined) return this.checked(await this.assurance.verify(token));
    if (!verifyEs256(jws, key)) throw new JwsRejected('the signature does not verify');
    const payload = jws.payload;
    if (payload.iss !== TOKEN_ISSUER) throw new JwsRejected('unexpected iss');
    const aud = payload.aud;
    if (!(aud === TOKEN_AUDIENCE || (Array.isArray(aud) && aud.includes(TOKEN_AUDIENCE)))) {
      throw new JwsRejected('unexpected aud');
    }
    // jose's rule (no tolerance, as TokenIssuer.verify): expired once now ≥ exp, seconds.
    const now = Math.floor(this.clock() / 1000);
    if (typeof payload.exp !== 'number' || payload.exp <= now) throw new JwsRejected('expired');
    if (payload.nbf !== undefined && (typeof payload.nbf !== 'number' || payload.nbf > now)) {
      throw new JwsRejected('not yet valid');
    }
    if (payload.iat !== undefined && typeof payload.iat !== 'number') throw new JwsRejected('iat is not a number');
    return this.checked(payload as AssuranceTokenPayload);
  }

  /**
   * The public key of `kid` while the assurance ring publishes it. The published list is taken from
   * `TokenIssuer.jwks()` at most once per JWKS_REUSE_MS: the ring itself is re-read every
   * SIGNING_RING_REFRESH_MS, a new kid goes to `TokenIssuer.verify` at once, and a key leaves the list
   * only once every token it signed has expired (so the list used a moment longer accepts nothing more).
   */
  private publishedKey(kid: string): KeyObject | undefined {
    const now = this.clock();
    if (this.published === undefined || now - this.published.at >= JWKS_REUSE_MS || now < this.published.at) {
      this.published = { at: now, keys: this.assurance.jwks().keys };
    }
    const jwk = this.published.keys.find((k) => k.kid === kid);
    if (jwk === undefined) return undefined;
    const known = this.imported.get(kid);
    if (known !== undefined && known.x === jwk.x && known.y === jwk.y) return known.key;
    const key = createPublicKey({
      key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y } as JsonWebKey,
      format: 'jwk',
    });
    // Only the ring's few keys: the map holds what the JWKS holds, forgetting kids it no longer lists.
    for (const old of this.imported.keys())
      if (old !== kid && !this.assurance.jwks().keys.some((k) => k.kid === old)) this.imported.delete(old);
    this.imported.set(kid, { x: jwk.x, y: jwk.y, key });
    return key;
  }

  private checked(payload: AssuranceTokenPayload): AssuranceTokenPayload {
    const { sub, sid, cnf, baton } = payload as Partial<AssuranceTokenPayload>;
    if (
      typeof sub !== 'string' ||
      typeof sid !== 'string' ||
      typeof cnf?.jkt !== 'string' ||
      typeof baton !== 'object' ||
      baton === null ||
      typeof baton.console !== 'string'
    ) {
      throw new JwsRejected('the token lacks sub, sid, cnf.jkt or baton.console');
    }
    return payload;
  }
}
