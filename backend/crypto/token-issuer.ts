import { closeSync, openSync, readFileSync, statSync, unlinkSync } from 'node:fs';
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

/** A lock this old is left by a process that died holding it. */
const STALE_LOCK_MS = 30_000;
const LOCK_RETRY_MS = 20;

/**
 * Issues short-lived ES256 assurance tokens bound to the console key (RFC 7800 `cnf.jkt`).
 * The signing keys live in the data directory (mode 0600), outside the database. The key is rotated
 * with overlap: a new key signs, and the old one stays in the JWKS (and is accepted by `verify`)
 * until every token it signed has expired.
 *
 * The workers of one host share the data directory, so the ring file is the truth, not this
 * process's copy of it: each use re-reads the file when another process replaced it (a rename: a
 * new inode), and every change to it (rotation, dropping expired retired keys) is made under a lock
 * file beside it, on a freshly read ring, so two workers never overwrite each other's keys and a
 * rotation that falls due on every worker at once happens once. Nodes on several hosts do not share
 * a data directory: each would keep a ring of its own, so this is for the workers of one host only.
 */
export class TokenIssuer {
  private changing: Promise<unknown> | undefined;
  private loaded: string;

  private constructor(
    private ring: KeyRing,
    private readonly file: string,
    private readonly clock: () => number,
    private readonly rotationMs: number,
  ) {
    this.loaded = fileVersion(file);
  }

  static async open(dataDir: string, clock: () => number, options: TokenIssuerOptions = {}): Promise<TokenIssuer> {
    const file = join(dataDir, SIGNING_KEY_FILE);
    const days = options.rotationDays ?? DEFAULT_TOKEN_KEY_ROTATION_DAYS;
    // Created (or converted from the first releases' format) under the lock: workers start together.
    const ring = await withFileLock(file, () => openRing(file, clock));
    const issuer = new TokenIssuer(ring, file, clock, days * 24 * 3600 * 1000);
    await issuer.maintain();
    return issuer;
  }

  /**
   * The public keys a token may be signed with: the active one and those retired less than an hour
   * ago, as the ring file has them now (read again when another worker replaced it).
   */
  jwks(): { keys: JWK[] } {
    const now = this.clock();
    const ring =
      fileVersion(this.file) === this.loaded ? this.ring.list() : (readPublicRing(this.file) ?? this.ring.list());
    const keys = ring
      .filter((k) => k.retiredAt === null || now - k.retiredAt < RETIRED_TOKEN_KEY_KEPT_MS)
      .map((k) => ({ ...k.publicJwk, alg: 'ES256', use: 'sig' }));
    return { keys };
  }

  /** The key that signs now, as this process last read the ring. */
  get activeKid(): string {
    return this.ring.active.kid;
  }

  /** A new key signs from now on; the old one stays published until its tokens have expired. */
  async rotate(): Promise<{ previous: string; current: string }> {
    return this.change(async (ring) => ring.rotate());
  }

  /** Rotates when the active key is due and drops retired keys whose tokens have all expired. */
  async maintain(): Promise<void> {
    await this.refresh();
    const due = this.rotationMs > 0 && this.ring.isDue(this.rotationMs);
    if (!due && !this.hasExpiredKeys()) return;
    await this.change(async (ring) => {
      // Re-checked on the ring as the file has it: another worker may have done it already.
      if (this.rotationMs > 0 && ring.isDue(this.rotationMs)) await ring.rotate();
      else ring.prune();
    });
  }

  async issue(claims: AssuranceClaims): Promise<{ token: string; expiresAt: number }> {
    await this.maintain();
    const profile = LEVEL_PROFILES[claims.level];
    const now = Math.floor(this.clock() / 1000);
    const exp = now + claims.ttlSeconds;
    const ring = this.ring;
    const signer = ring.active;
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
      .sign(ring.privateKey);
    return { token, expiresAt: exp * 1000 };
  }

  /** Verifies a token signed by any key still in the JWKS (of any worker sharing the data directory). */
  async verify(token: string): Promise<AssuranceTokenPayload> {
    const { kid } = decodeProtectedHeader(token);
    await this.refresh();
    const key = this.ring.get(kid ?? '');
    if (key === undefined || (key.retiredAt !== null && this.clock() - key.retiredAt >= RETIRED_TOKEN_KEY_KEPT_MS)) {
      throw new Error(`No signing key "${kid ?? ''}" in the JWKS`);
    }
    const { payload } = await jwtVerify(token, key.publicKey, {
      issuer: TOKEN_ISSUER,
      audience: TOKEN_AUDIENCE,
      algorithms: ['ES256'],
      currentDate: new Date(this.clock()),
    });
    return payload as AssuranceTokenPayload;
  }

  private hasExpiredKeys(): boolean {
    const now = this.clock();
    return this.ring.list().some((k) => k.retiredAt !== null && now - k.retiredAt >= RETIRED_TOKEN_KEY_KEPT_MS);
  }

  /** Re-reads the ring when another process replaced the file since this one read it. */
  private async refresh(): Promise<void> {
    if (fileVersion(this.file) === this.loaded) return;
    await this.reload();
  }

  private async reload(): Promise<void> {
    const version = fileVersion(this.file);
    this.ring = await openRing(this.file, this.clock);
    this.loaded = version;
  }

  /** Changes the ring under the lock file, on the ring as the file has it now; one change at a time here. */
  private change<T>(fn: (ring: KeyRing) => Promise<T>): Promise<T> {
    const run = async () =>
      withFileLock(this.file, async () => {
        await this.reload();
        const result = await fn(this.ring);
        this.loaded = fileVersion(this.file);
        return result;
      });
    const next = (this.changing ?? Promise.resolve()).then(run, run);
    this.changing = next.catch(() => undefined);
    return next;
  }
}

/**
 * The public halves of a ring file another worker wrote, read synchronously for the JWKS (the full
 * ring, with the private key, is loaded by the next `issue`). Undefined when it cannot be read.
 */
function readPublicRing(file: string): { retiredAt: number | null; publicJwk: JWK }[] | undefined {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as {
      keys: { kid: string; retiredAt: number | null; jwk: JWK }[];
    };
    return parsed.keys
      .map(({ kid, retiredAt, jwk }) => {
        const { d: _d, ...publicJwk } = jwk;
        return { retiredAt, publicJwk: { ...publicJwk, kid } };
      })
      .sort((a, b) => (b.retiredAt ?? Infinity) - (a.retiredAt ?? Infinity));
  } catch {
    return undefined;
  }
}

function openRing(file: string, clock: () => number): Promise<KeyRing> {
  return KeyRing.open({ file, clock, keepRetiredMs: RETIRED_TOKEN_KEY_KEPT_MS });
}

/** What identifies one version of the ring file: it is only ever replaced by a rename (a new inode). */
function fileVersion(file: string): string {
  try {
    const stat = statSync(file);
    return `${stat.ino}:${stat.mtimeMs}:${stat.size}`;
  } catch {
    return 'absent';
  }
}

/**
 * Runs `fn` holding `<file>.lock` (created exclusively), so that of the processes sharing a data
 * directory one at a time writes the ring. A lock older than `STALE_LOCK_MS` was left by a process
 * that died: it is broken.
 */
async function withFileLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${file}.lock`;
  for (;;) {
    try {
      closeSync(openSync(lock, 'wx', 0o600));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      try {
        if (Date.now() - statSync(lock).mtimeMs > STALE_LOCK_MS) unlinkSync(lock);
      } catch {
        // Released (or broken by someone else) meanwhile: try again.
      }
      await new Promise((resolve) => setTimeout(resolve, LOCK_RETRY_MS));
    }
  }
  try {
    return await fn();
  } finally {
    try {
      unlinkSync(lock);
    } catch {
      // Broken as stale by another process: nothing to release.
    }
  }
}
