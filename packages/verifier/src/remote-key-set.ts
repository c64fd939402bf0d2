import { createPublicKey, type KeyObject } from 'node:crypto';

/** A JSON Web Key as a JWKS lists it (only EC P-256 signing keys are used). */
export interface PublicJwk {
  kty?: string;
  crv?: string;
  x?: string;
  y?: string;
  kid?: string;
  use?: string;
  alg?: string;
  [member: string]: unknown;
}

/** Where a verifier finds the key of a `kid`: undefined when there is none. */
export interface KeyResolver {
  key(kid: string): Promise<KeyObject | undefined>;
  /** The key of `kid` when it is known and fresh now, without a fetch (no promise: the verifier's fast path). */
  known?(kid: string): KeyObject | undefined;
}

/** The EC P-256 signing keys of a JWKS document, by `kid`. */
export function keysOf(jwks: { keys?: unknown }): Map<string, KeyObject> {
  const keys = new Map<string, KeyObject>();
  if (!Array.isArray(jwks.keys)) return keys;
  for (const jwk of jwks.keys as PublicJwk[]) {
    if (typeof jwk.kid !== 'string' || jwk.kty !== 'EC' || jwk.crv !== 'P-256') continue;
    if (jwk.use !== undefined && jwk.use !== 'sig') continue;
    if (jwk.alg !== undefined && jwk.alg !== 'ES256') continue;
    const { kty, crv, x, y } = jwk;
    try {
      keys.set(jwk.kid, createPublicKey({ key: { kty, crv, x, y }, format: 'jwk' }));
    } catch {
      // A malformed key is skipped: tokens naming it are refused as signed with an unknown key.
    }
  }
  return keys;
}

/** A fixed JWKS (tests, or keys distributed by other means). */
export class LocalKeySet implements KeyResolver {
  private readonly keys: Map<string, KeyObject>;
  constructor(jwks: { keys: readonly PublicJwk[] }) {
    this.keys = keysOf(jwks);
  }
  key(kid: string): Promise<KeyObject | undefined> {
    return Promise.resolve(this.keys.get(kid));
  }
  known(kid: string): KeyObject | undefined {
    return this.keys.get(kid);
  }
}

/** Thrown when Baton's JWKS cannot be fetched or read. */
export class JwksUnavailableError extends Error {
  override readonly name = 'JwksUnavailableError';
}

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
export class RemoteKeySet implements KeyResolver {
  private keys = new Map<string, KeyObject>();
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private fetching: Promise<void> | undefined;
  private readonly clock: () => number;

  constructor(
    private readonly url: URL,
    private readonly options: RemoteKeySetOptions = {},
  ) {
    this.clock = options.clock ?? Date.now;
  }

  known(kid: string): KeyObject | undefined {
    if (this.clock() - this.fetchedAt > (this.options.cacheMaxAgeMs ?? 600_000)) return undefined;
    return this.keys.get(kid);
  }

  async key(kid: string): Promise<KeyObject | undefined> {
    if (this.clock() - this.fetchedAt > (this.options.cacheMaxAgeMs ?? 600_000)) await this.refresh();
    const key = this.keys.get(kid);
    if (key !== undefined || this.clock() - this.fetchedAt < (this.options.cooldownMs ?? 1000)) return key;
    await this.refresh();
    return this.keys.get(kid);
  }

  /** Fetches the JWKS now (joins a fetch in flight). */
  refresh(): Promise<void> {
    this.fetching ??= this.load().finally(() => (this.fetching = undefined));
    return this.fetching;
  }

  private async load(): Promise<void> {
    let body: { keys?: unknown };
    try {
      const response = await fetch(this.url, {
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 5000),
      });
      if (!response.ok) throw new Error(`answered ${response.status}`);
      body = (await response.json()) as { keys?: unknown };
    } catch (cause) {
      throw new JwksUnavailableError(`Baton's JWKS at ${this.url.href} cannot be fetched`, { cause });
    }
    if (!Array.isArray(body.keys)) throw new JwksUnavailableError("Baton's JWKS has no keys array");
    this.keys = keysOf(body);
    this.fetchedAt = this.clock();
  }
}
