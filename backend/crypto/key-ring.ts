import { createPrivateKey, createPublicKey, generateKeyPairSync, type JsonWebKey, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, renameSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { z } from 'zod';
import { BatonError } from '../../shared/errors.js';
import type { Store } from '../store/repositories.js';
import { KeyEncryptionKey, keyEncryptionKeyPath } from './key-encryption-key.js';

/**
 * A ring of ES256 (P-256) signing keys: one active key that signs, and retired keys whose public
 * halves stay to verify what they signed (a retired key's private half is deleted when it is
 * retired). Each key is named by its RFC 7638 thumbprint (`kid`).
 *
 * The cluster holds one ring per purpose (`token`, `checkpoint`) in the database (`meta`, key
 * `key-ring:<name>`), sealed with AES-256-GCM under the key-encryption key, a file outside the
 * database that every node holds (`key-encryption-key.ts`, ADR 0006). `SharedKeyRing` reads it,
 * changes it in a unit of work with optimistic concurrency, and re-reads it when another node
 * changed it. `KeyRing` is one version of it, immutable.
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

/** The key files of the releases before ADR 0006 (`token-signing-key.json`, `checkpoint-signing-keys.json`). */
const RingFileSchema = z.strictObject({
  version: z.literal(1),
  keys: z.array(RingEntrySchema).min(1),
});

/** What is sealed in the database: the ring, its name and its generation (bumped by every change). */
const SealedRingSchema = z.strictObject({
  version: z.literal(1),
  name: z.string().min(1),
  generation: z.int().positive(),
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

/** One version of a ring: the keys, the active private key. Never changed: a change makes another. */
export class KeyRing {
  readonly privateKey: KeyObject;
  private readonly keys = new Map<string, RingKey>();

  private constructor(
    readonly entries: readonly RingEntry[],
    source: string,
  ) {
    let privateKey: KeyObject | undefined;
    const active = entries.filter((e) => e.retiredAt === null);
    for (const entry of entries) {
      const { d, ...pub } = entry.jwk;
      this.keys.set(entry.kid, {
        kid: entry.kid,
        createdAt: entry.createdAt,
        retiredAt: entry.retiredAt,
        publicJwk: { ...pub, kid: entry.kid } as JWK,
        publicKey: createPublicKey({ key: pub as JsonWebKey, format: 'jwk' }),
      });
      if (entry.retiredAt === null && d !== undefined) {
        privateKey = createPrivateKey({ key: entry.jwk as JsonWebKey, format: 'jwk' });
      }
    }
    if (active.length !== 1 || privateKey === undefined) {
      throw new BatonError('KEY_FILE_INVALID', `${source} must hold exactly one active private key`);
    }
    this.privateKey = privateKey;
  }

  /** A ring of one fresh key. */
  static async fresh(now: number): Promise<KeyRing> {
    return new KeyRing([await newEntry(now)], 'a fresh ring');
  }

  /** A ring of these entries (checked: exactly one active key, with its private half). */
  static of(entries: readonly RingEntry[], source: string): KeyRing {
    return new KeyRing(entries, source);
  }

  /**
   * The entries of a key file of the releases before ADR 0006, in either of its formats (a ring, or
   * the first releases' one private JWK). KEY_FILE_INVALID when it is neither.
   */
  static async readFile(file: string): Promise<RingEntry[]> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (cause) {
      throw new BatonError('KEY_FILE_INVALID', `The key file ${file} cannot be read as JSON`, { cause });
    }
    const legacy = EcJwkSchema.safeParse(parsed);
    if (legacy.success && legacy.data.d !== undefined && !('keys' in (parsed as object))) {
      const jwk = legacy.data;
      const kid = await calculateJwkThumbprint({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y });
      return [{ kid, createdAt: Math.floor(statSync(file).mtimeMs), retiredAt: null, jwk: { ...jwk, kid } }];
    }
    const result = RingFileSchema.safeParse(parsed);
    if (!result.success) {
      throw new BatonError('KEY_FILE_INVALID', `The key file ${file} is not a key ring: ${result.error.message}`);
    }
    KeyRing.of(result.data.keys, `The key file ${file}`);
    return result.data.keys;
  }

  /** The key that signs now. */
  get active(): RingKey {
    const entry = this.entries.find((e) => e.retiredAt === null);
    return this.keys.get(entry?.kid ?? '') as RingKey;
  }

  /** Every key kept (active first, then the most recently retired). */
  list(): RingKey[] {
    return [...this.keys.values()].sort((a, b) => (b.retiredAt ?? Infinity) - (a.retiredAt ?? Infinity));
  }

  get(kid: string): RingKey | undefined {
    return this.keys.get(kid);
  }

  /** Whether the active key is at least `maxAgeMs` old at `now`. */
  isDue(maxAgeMs: number, now: number): boolean {
    return now - this.active.createdAt >= maxAgeMs;
  }

  /**
   * The ring with a new key signing from `now`: the old one retired (its private half deleted) and
   * kept to verify what it signed; retired keys past `keepRetiredMs` dropped.
   */
  async rotated(now: number, keepRetiredMs: number | undefined): Promise<KeyRing> {
    const entries = [
      await newEntry(now),
      ...this.entries.map((e) => {
        if (e.retiredAt !== null) return e;
        const { d: _d, ...publicJwk } = e.jwk;
        return { ...e, retiredAt: now, jwk: publicJwk };
      }),
    ];
    return new KeyRing(keptAt(entries, now, keepRetiredMs), 'the rotated ring');
  }

  /** The ring without retired keys past `keepRetiredMs`, or undefined when none is. */
  pruned(now: number, keepRetiredMs: number | undefined): KeyRing | undefined {
    const entries = keptAt(this.entries, now, keepRetiredMs);
    return entries.length === this.entries.length ? undefined : new KeyRing(entries, 'the pruned ring');
  }

  /**
   * The ring with the public halves of `others` it lacks, as retired keys (retired `now` if they
   * were active), or undefined when it lacks none: what another key file signed stays verifiable.
   */
  withPublicKeysOf(others: readonly RingEntry[], now: number): KeyRing | undefined {
    const missing = others.filter((o) => !this.keys.has(o.kid));
    if (missing.length === 0) return undefined;
    const added = missing.map((o) => {
      const { d: _d, ...publicJwk } = o.jwk;
      return { ...o, retiredAt: o.retiredAt ?? now, jwk: publicJwk };
    });
    return new KeyRing([...this.entries, ...added], 'the merged ring');
  }
}

function keptAt(entries: readonly RingEntry[], now: number, keep: number | undefined): RingEntry[] {
  return keep === undefined ? [...entries] : entries.filter((e) => e.retiredAt === null || now - e.retiredAt < keep);
}

async function newEntry(now: number): Promise<RingEntry> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = EcJwkSchema.parse(privateKey.export({ format: 'jwk' }));
  const kid = await calculateJwkThumbprint({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y });
  return { kid, createdAt: now, retiredAt: null, jwk: { ...jwk, kid } };
}

/** The meta key of a sealed ring. */
export function keyRingMetaKey(name: string): string {
  return `key-ring:${name}`;
}

/** How often a change to the ring is retried when another node changed it first. */
const UPDATE_ATTEMPTS = 20;
/** How long a generation number stays claimed (its row is written long before). */
const GENERATION_CLAIM_MS = 24 * 3600 * 1000;
/** A kid unknown here makes the ring be read again at most this often. */
const UNKNOWN_KID_RELOAD_MS = 1000;

interface KeyRingLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface SharedKeyRingOptions {
  store: Store;
  /** `token` or `checkpoint`: the ring's name in the database (and in its sealed record). */
  name: string;
  dataDir: string;
  clock: () => number;
  logger: KeyRingLogger;
  /** How long a retired key is kept after it was retired (`undefined`: for ever). */
  keepRetiredMs?: number | undefined;
  /** The key file of the releases before ADR 0006 in the data directory, imported once. */
  legacyFile?: string | undefined;
  /** The KEK file (default: $BATON_KEY_ENCRYPTION_KEY_FILE or `<dataDir>/key-encryption-key`). */
  kekFile?: string | undefined;
}

/**
 * The cluster's ring of one purpose, sealed in the database. Every node reads the same record; a
 * change (rotation, pruning) is a unit of work on the ring as the database has it then, claiming
 * the next generation number (`ephemeral.claimOnce`), so two nodes changing it at once never lose a
 * key: the second finds its number taken, reads the first's ring and applies its change to that.
 */
export class SharedKeyRing {
  private lastUnknownReload = 0;
  private loadedAt: number;
  private reloading: Promise<void> | undefined;

  private constructor(
    private readonly options: SharedKeyRingOptions,
    private readonly kek: KeyEncryptionKey,
    private ring: KeyRing,
    private generation: number,
  ) {
    this.loadedAt = options.clock();
  }

  /**
   * Reads the ring from the database. On an empty database the first node creates the KEK file (if
   * it has none) and the ring (from the legacy key file when there is one, said in the log). A node
   * without the KEK file while the database holds a sealed ring refuses to start
   * (KEY_ENCRYPTION_KEY_MISSING) rather than make keys of its own; a wrong KEK is
   * KEY_ENCRYPTION_KEY_MISMATCH; a record that does not authenticate, KEY_RING_TAMPERED.
   */
  static async open(options: SharedKeyRingOptions): Promise<SharedKeyRing> {
    const { store, name, dataDir, logger } = options;
    const kekFile = options.kekFile ?? keyEncryptionKeyPath(dataDir);
    let kek = KeyEncryptionKey.read(kekFile);
    if (kek === undefined && (await store.meta.get(keyRingMetaKey(name))) !== undefined) {
      // Another worker of this host may have created both since this one looked at the file.
      kek = KeyEncryptionKey.read(kekFile);
      if (kek === undefined) {
        throw new BatonError(
          'KEY_ENCRYPTION_KEY_MISSING',
          `The database holds the cluster's sealed ${name} signing keys but ${kekFile} does not exist: copy the key-encryption-key file of another node of this cluster there (mode 0600); this node makes no keys of its own`,
        );
      }
    }
    if (kek === undefined) {
      kek = KeyEncryptionKey.create(kekFile);
      logger.warn(
        { file: kekFile, kek: kek.id },
        'created the key-encryption key: copy this file to every node of the cluster and back it up apart from the database',
      );
    }
    const shared = new SharedKeyRing(options, kek, undefined as unknown as KeyRing, 0);
    let imported: RingEntry[] | undefined;
    const legacy = options.legacyFile;
    const fileEntries = legacy !== undefined && existsSync(legacy) ? await KeyRing.readFile(legacy) : undefined;
    await shared.update(async (ring, now) => {
      imported = undefined;
      if (ring === undefined) {
        imported = fileEntries;
        return fileEntries === undefined ? KeyRing.fresh(now) : KeyRing.of(fileEntries, `The key file ${legacy}`);
      }
      // Another node created the ring: what this node's old key file signed stays verifiable.
      const merged = fileEntries === undefined ? undefined : ring.withPublicKeysOf(fileEntries, now);
      if (merged !== undefined) imported = fileEntries;
      return merged;
    });
    if (legacy !== undefined && fileEntries !== undefined) {
      const kept = `${legacy}.imported`;
      try {
        renameSync(legacy, kept);
      } catch (error) {
        // Another worker of this host renamed it first.
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
      logger.info(
        { file: legacy, keptAs: kept, kids: fileEntries.map((e) => e.kid), imported: imported !== undefined },
        `the ${name} signing key file was imported into the database's sealed key ring (once): it is no longer read; keep ${kept} with your backups or delete it`,
      );
    }
    return shared;
  }

  /** The ring as this node last read it. */
  get current(): KeyRing {
    return this.ring;
  }

  /** Reads the ring again from the database (one read at a time; a failure keeps the ring held). */
  reload(): Promise<void> {
    this.reloading ??= (async () => {
      try {
        const read = await this.read(this.options.store);
        if (read !== undefined && read.generation >= this.generation) {
          this.ring = read.ring;
          this.generation = read.generation;
        } else if (read !== undefined) {
          this.options.logger.error(
            { ring: this.options.name, generation: read.generation, held: this.generation },
            'the sealed key ring in the database is older than the one this node holds: kept the newer one',
          );
        } else {
          this.options.logger.error(
            { ring: this.options.name, held: this.generation },
            'the sealed key ring is gone from the database: this node keeps the keys it holds (restore the meta row from a backup)',
          );
        }
      } finally {
        // Tried again after the period, not on every call, when it failed.
        this.loadedAt = this.options.clock();
        this.reloading = undefined;
      }
    })();
    return this.reloading;
  }

  /**
   * Reads the ring again when this node read it more than `maxAgeMs` ago. A failure (the database
   * unreachable, a sealed ring changed in it: KEY_RING_TAMPERED) is logged and the ring this node
   * holds kept: it goes on signing and verifying with the keys it knows.
   */
  async refreshIfOlder(maxAgeMs: number): Promise<void> {
    if (this.options.clock() - this.loadedAt < maxAgeMs) return;
    try {
      await this.reload();
    } catch (error) {
      this.logFailure(error);
    }
  }

  /**
   * The key `kid`, reading the ring again first when this node does not know it (another node may
   * have rotated), at most once a second whatever the number of unknown kids presented.
   */
  async find(kid: string): Promise<RingKey | undefined> {
    const known = this.ring.get(kid);
    if (known !== undefined) return known;
    const now = Date.now();
    if (now - this.lastUnknownReload < UNKNOWN_KID_RELOAD_MS) {
      await this.reloading;
      return this.ring.get(kid);
    }
    this.lastUnknownReload = now;
    try {
      await this.reload();
    } catch (error) {
      this.logFailure(error);
    }
    return this.ring.get(kid);
  }

  /**
   * Changes the ring in one unit of work: `change` gets the ring as the database has it (undefined:
   * none yet) and returns the next one (undefined: no change). The next generation number is claimed
   * in the same transaction; if another node took it, this reads again and retries.
   */
  async update(change: (ring: KeyRing | undefined, now: number) => Promise<KeyRing | undefined>): Promise<KeyRing> {
    const { store, name, clock } = this.options;
    for (let attempt = 1; ; attempt++) {
      const outcome = await store.transaction(async (tx) => {
        const read = await this.read(tx);
        const now = clock();
        const next = await change(read?.ring, now);
        if (next === undefined) return read as { ring: KeyRing; generation: number };
        const generation = (read?.generation ?? 0) + 1;
        if (!(await tx.ephemeral.claimOnce(`key-ring:${name}`, String(generation), now + GENERATION_CLAIM_MS, now))) {
          return 'taken' as const;
        }
        const plain = JSON.stringify({ version: 1, name, generation, keys: next.entries });
        await tx.meta.set(keyRingMetaKey(name), this.kek.seal(plain, keyRingMetaKey(name)));
        return { ring: next, generation };
      });
      if (outcome !== 'taken') {
        this.ring = outcome.ring;
        this.generation = outcome.generation;
        this.loadedAt = clock();
        return outcome.ring;
      }
      if (attempt === UPDATE_ATTEMPTS) {
        throw new BatonError('INTERNAL', `The ${name} key ring kept being changed by other nodes; try again`);
      }
      await sleep(5 + Math.floor(Math.random() * 20));
    }
  }

  private logFailure(error: unknown): void {
    const code = error instanceof BatonError ? error.code : undefined;
    this.options.logger.error(
      { err: error, code, ring: this.options.name },
      'reading the sealed key ring failed: this node keeps the keys it holds',
    );
  }

  private async read(store: Store): Promise<{ ring: KeyRing; generation: number } | undefined> {
    const { name } = this.options;
    const sealed = await store.meta.get(keyRingMetaKey(name));
    if (sealed === undefined) return undefined;
    const plain = this.kek.open(sealed, keyRingMetaKey(name));
    const parsed = SealedRingSchema.safeParse(safeJson(plain));
    if (!parsed.success || parsed.data.name !== name) {
      // Authenticated under our KEK yet not a ring of this name: not Baton's making either.
      throw new BatonError('KEY_RING_TAMPERED', `The sealed ${name} key ring in the database is not a key ring`);
    }
    return {
      ring: KeyRing.of(parsed.data.keys, `The sealed ${name} key ring`),
      generation: parsed.data.generation,
    };
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
