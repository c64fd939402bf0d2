import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomUUID,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { z } from 'zod';
import { BatonError } from '../../shared/errors.js';

/**
 * A file of ES256 (P-256) signing keys kept in the data directory, outside the database (mode 0600):
 * one active key that signs, and retired keys whose public halves stay to verify what they signed.
 * A retired key's private half is deleted when it is retired. Each key is named by its RFC 7638
 * thumbprint (`kid`). Rewritten through a fresh file and a rename, so a crash leaves the old or the
 * new ring, never half of one.
 */

const EcJwkSchema = z.looseObject({
  kty: z.literal('EC'),
  crv: z.literal('P-256'),
  x: z.string().min(1),
  y: z.string().min(1),
  d: z.string().min(1).optional(),
});

const RingEntrySchema = z.strictObject({
  kid: z.string().min(1),
  createdAt: z.int().nonnegative(),
  retiredAt: z.int().nonnegative().nullable(),
  jwk: EcJwkSchema,
});

const RingFileSchema = z.strictObject({
  version: z.literal(1),
  keys: z.array(RingEntrySchema).min(1),
});

export interface RingKey {
  kid: string;
  createdAt: number;
  /** When a newer key took over signing; null for the active key. */
  retiredAt: number | null;
  /** The public JWK (no `d`), with its `kid`. */
  publicJwk: JWK;
  publicKey: KeyObject;
}

type RingEntry = z.infer<typeof RingEntrySchema>;

export interface KeyRingOptions {
  file: string;
  clock: () => number;
  /**
   * How long a retired key is kept after it was retired, in ms (`undefined`: for ever). Token keys
   * go once every token they signed has expired; checkpoint keys stay to verify old checkpoints.
   */
  keepRetiredMs?: number | undefined;
}

export class KeyRing {
  private entries: RingEntry[];
  private activePrivate: KeyObject;
  private keys = new Map<string, RingKey>();

  private constructor(
    private readonly options: KeyRingOptions,
    entries: RingEntry[],
  ) {
    this.entries = entries;
    this.activePrivate = this.load();
  }

  /** Opens the ring file, creating it with one fresh key when it does not exist. */
  static async open(options: KeyRingOptions): Promise<KeyRing> {
    const { file, clock } = options;
    if (!existsSync(file)) {
      const ring = new KeyRing(options, [await newEntry(clock())]);
      // Several workers starting together on one data directory: one creates the file, the others
      // read what it created (complete: the file appears with its content, by a hard link).
      if (ring.persist(true)) return ring;
    }
    chmodSync(file, 0o600);
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (cause) {
      throw new BatonError('KEY_FILE_INVALID', `The key file ${file} cannot be read as JSON`, { cause });
    }
    // The first releases kept one private JWK in the token key file: it becomes a ring of one.
    const legacy = EcJwkSchema.safeParse(parsed);
    if (legacy.success && legacy.data.d !== undefined && !('keys' in (parsed as object))) {
      const jwk = legacy.data;
      const kid = await calculateJwkThumbprint({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y });
      const ring = new KeyRing(options, [
        { kid, createdAt: Math.floor(statSync(file).mtimeMs), retiredAt: null, jwk: { ...jwk, kid } },
      ]);
      ring.persist(false);
      return ring;
    }
    const result = RingFileSchema.safeParse(parsed);
    if (!result.success) {
      throw new BatonError('KEY_FILE_INVALID', `The key file ${file} is not a key ring: ${result.error.message}`);
    }
    const active = result.data.keys.filter((k) => k.retiredAt === null);
    if (active.length !== 1 || active[0]?.jwk.d === undefined) {
      throw new BatonError('KEY_FILE_INVALID', `The key file ${file} must hold exactly one active private key`);
    }
    return new KeyRing(options, result.data.keys);
  }

  /** The key that signs now. */
  get active(): RingKey {
    const entry = this.entries.find((e) => e.retiredAt === null);
    return this.keys.get(entry?.kid ?? '') as RingKey;
  }

  get privateKey(): KeyObject {
    return this.activePrivate;
  }

  /** Every key still kept (active first), for a JWKS or to verify old signatures. */
  list(): RingKey[] {
    return [...this.keys.values()].sort((a, b) => (a.retiredAt ?? Infinity) - (b.retiredAt ?? Infinity)).reverse();
  }

  get(kid: string): RingKey | undefined {
    return this.keys.get(kid);
  }

  /** Whether the active key is older than `maxAgeMs`. */
  isDue(maxAgeMs: number): boolean {
    return this.options.clock() - this.active.createdAt >= maxAgeMs;
  }

  /**
   * A new key signs from now on; the old one is retired (its private half deleted) and kept to
   * verify what it signed. Retired keys past `keepRetiredMs` are dropped.
   */
  async rotate(): Promise<{ previous: string; current: string }> {
    const now = this.options.clock();
    const previous = this.active.kid;
    const fresh = await newEntry(now);
    this.entries = [
      fresh,
      ...this.entries.map((e) => {
        if (e.retiredAt !== null) return e;
        const { d: _d, ...publicJwk } = e.jwk;
        return { ...e, retiredAt: now, jwk: publicJwk };
      }),
    ];
    this.prune();
    this.activePrivate = this.load();
    this.persist(false);
    return { previous, current: fresh.kid };
  }

  /** Drops retired keys older than `keepRetiredMs`; returns whether any went. */
  prune(): boolean {
    const keep = this.options.keepRetiredMs;
    if (keep === undefined) return false;
    const now = this.options.clock();
    const before = this.entries.length;
    this.entries = this.entries.filter((e) => e.retiredAt === null || now - e.retiredAt < keep);
    if (this.entries.length === before) return false;
    this.activePrivate = this.load();
    this.persist(false);
    return true;
  }

  private load(): KeyObject {
    this.keys = new Map();
    let privateKey: KeyObject | undefined;
    for (const entry of this.entries) {
      const { d, ...pub } = entry.jwk;
      const publicJwk = { ...pub, kid: entry.kid } as JWK;
      this.keys.set(entry.kid, {
        kid: entry.kid,
        createdAt: entry.createdAt,
        retiredAt: entry.retiredAt,
        publicJwk,
        publicKey: createPublicKey({ key: pub as JsonWebKey, format: 'jwk' }),
      });
      if (entry.retiredAt === null && d !== undefined) {
        privateKey = createPrivateKey({ key: entry.jwk as JsonWebKey, format: 'jwk' });
      }
    }
    if (privateKey === undefined) throw new BatonError('KEY_FILE_INVALID', `No active key in ${this.options.file}`);
    return privateKey;
  }

  /**
   * Writes the ring through a temporary file: renamed over the file, or (`fresh`) hard-linked to its
   * name, which fails if another process created it first; then this returns false and writes nothing.
   */
  private persist(fresh: boolean): boolean {
    const { file } = this.options;
    const text = `${JSON.stringify({ version: 1, keys: this.entries }, null, 2)}\n`;
    const target = `${file}.${randomUUID()}.tmp`;
    const fd = openSync(target, 'wx', 0o600);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (fresh) {
      try {
        linkSync(target, file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw error;
      } finally {
        unlinkSync(target);
      }
    } else {
      renameSync(target, file);
    }
    chmodSync(file, 0o600);
    return true;
  }
}

async function newEntry(now: number): Promise<RingEntry> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = EcJwkSchema.parse(privateKey.export({ format: 'jwk' }));
  const kid = await calculateJwkThumbprint({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y });
  return { kid, createdAt: now, retiredAt: null, jwk: { ...jwk, kid } };
}
