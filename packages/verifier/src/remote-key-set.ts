import { errors, importJWK, type CryptoKey, type JWK, type JWSHeaderParameters } from 'jose';

export interface RemoteKeySetOptions {
  /** How long a fetched JWKS is used before it is fetched again (default 10 minutes). */
  cacheMaxAgeMs?: number;
  /** A `kid` not in the cache fetches the JWKS again at once, but at most this often (default 1 s). */
  cooldownMs?: number;
  /** How long one fetch may take (default 5 s). */
  timeoutMs?: number;
  clock?: () => number;
}

/**
 * Baton's JWKS, cached: keys are imported once and looked up by `kid`. Rotation is followed without
 * configuration: a token signed with a `kid` the cache lacks fetches the JWKS again (at most once
 * per cooldown, so a flood of forged kids cannot hammer Baton), and a key Baton stopped publishing
 * disappears at the next fetch. Concurrent misses share one fetch.
 */
export class RemoteKeySet {
  private keys = new Map<string, CryptoKey>();
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private fetching: Promise<void> | undefined;
  private readonly clock: () => number;

  constructor(
    private readonly url: URL,
    private readonly options: RemoteKeySetOptions = {},
  ) {
    this.clock = options.clock ?? Date.now;
  }

  /** A `JWTVerifyGetKey` for jose's `jwtVerify`. */
  readonly getKey = async (header: JWSHeaderParameters): Promise<CryptoKey> => {
    const kid = header.kid ?? '';
    const now = this.clock();
    if (now - this.fetchedAt > (this.options.cacheMaxAgeMs ?? 600_000)) await this.refresh();
    let key = this.keys.get(kid);
    if (key === undefined && this.clock() - this.fetchedAt >= (this.options.cooldownMs ?? 1000)) {
      await this.refresh();
      key = this.keys.get(kid);
    }
    if (key === undefined) throw new errors.JWKSNoMatchingKey();
    return key;
  };

  /** Fetches the JWKS now (joins a fetch in flight). */
  refresh(): Promise<void> {
    this.fetching ??= this.load().finally(() => (this.fetching = undefined));
    return this.fetching;
  }

  private async load(): Promise<void> {
    const response = await fetch(this.url, {
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(this.options.timeoutMs ?? 5000),
    });
    if (!response.ok) throw new errors.JWKSInvalid(`Baton's JWKS answered ${response.status}`);
    const body = (await response.json()) as { keys?: unknown };
    if (!Array.isArray(body.keys)) throw new errors.JWKSInvalid("Baton's JWKS has no keys array");
    const keys = new Map<string, CryptoKey>();
    for (const jwk of body.keys as JWK[]) {
      if (typeof jwk.kid !== 'string' || jwk.kty !== 'EC' || jwk.crv !== 'P-256') continue;
      if (jwk.use !== undefined && jwk.use !== 'sig') continue;
      keys.set(jwk.kid, (await importJWK({ ...jwk, alg: 'ES256' }, 'ES256')) as CryptoKey);
    }
    this.keys = keys;
    this.fetchedAt = this.clock();
  }
}
