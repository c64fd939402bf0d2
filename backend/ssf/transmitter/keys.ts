import { createPrivateKey, createPublicKey, generateKeyPairSync, type JsonWebKey, type KeyObject } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { z } from 'zod';
import { BatonError } from '../../../shared/errors.js';
import { KeyEncryptionKey, keyEncryptionKeyPath } from '../../crypto/key-encryption-key.js';
import { keyRingMetaKey } from '../../crypto/key-ring.js';
import { JWKS_READ_MS } from '../../crypto/rotating-signing-keys.js';
import type { Store } from '../../store/repositories.js';
import type { SetAlgorithm, SetSigningKey } from '../set.js';

/**
 * The transmitter's SET signing keys: one ring for the cluster, sealed in the database exactly as
 * the token and checkpoint rings are (ADR 0006: a `meta` row `key-ring:ssf`, AES-256-GCM under the
 * key-encryption key outside the database, every change a unit of work claiming the next generation
 * with `ephemeral.claimOnce`). Its own ring type because the CAEP interop profile wants RS256
 * (2048-bit RSA) where `KeyRing` holds P-256 keys only; ES256 is selectable (`ssfSigningAlgorithm`).
 *
 * Rotation keeps the retired key's public half in the JWKS for `overlapMs` (default 7 days), so a
 * SET signed just before a rotation and delivered (or retried) after it still verifies. A SET that waits longer (a
 * stream paused, a receiver down) is signed again when it is handed out (`verifiable`, backend/ssf/transmitter/
 * delivery-signer.ts).
 *
 * A node signs, and judges a queued SET's key, only with the ring as read from the store at most 5 s before
 * (`fresh`, awaited by the fan-out, each delivery round and poll, and the JWKS): a node idle for days does not sign
 * with the key it held then, which another node may have retired (and unpublished) since.
 */

export const SSF_RING_NAME = 'ssf';
/** Retired keys stay published this long (a SET may wait in the queue while its receiver is down). */
export const DEFAULT_SSF_KEY_OVERLAP_MS = 7 * 24 * 3600 * 1000;
/** A node signs with the ring as it read it at most this long ago. */
const REFRESH_MS = 5000;
/**
 * A queued SET is handed out as queued only if its key stays published at least this much longer: the receiver then
 * has this long to fetch the JWKS (a poller to process its answer), and nodes' clocks may differ by some seconds.
 */
export const DELIVERY_MARGIN_MS = 60_000;
const UPDATE_ATTEMPTS = 20;
const GENERATION_CLAIM_MS = 24 * 3600 * 1000;

const JwkSchema = z.looseObject({ kty: z.enum(['RSA', 'EC']) });
const EntrySchema = z.strictObject({
  kid: z.string().min(1),
  alg: z.enum(['RS256', 'ES256']),
  createdAt: z.int().nonnegative(),
  retiredAt: z.int().nonnegative().nullable(),
  jwk: JwkSchema,
});
const SealedSchema = z.strictObject({
  version: z.literal(1),
  name: z.literal(SSF_RING_NAME),
  generation: z.int().positive(),
  keys: z.array(EntrySchema).min(1),
});
type Entry = z.infer<typeof EntrySchema>;

interface Ring {
  generation: number;
  entries: Entry[];
  byKid: Map<string, Entry>;
  active: SetSigningKey;
}

async function newEntry(alg: SetAlgorithm, now: number): Promise<Entry> {
  const { privateKey } =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' }) as Record<string, string>;
  const pub = alg === 'RS256' ? { kty: 'RSA', n: jwk.n, e: jwk.e } : { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y };
  const kid = await calculateJwkThumbprint(pub as JWK);
  return { kid, alg, createdAt: now, retiredAt: null, jwk: { ...jwk, kid } as unknown as z.infer<typeof JwkSchema> };
}

function publicOf(entry: Entry): Record<string, unknown> {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = entry.jwk as Record<string, unknown>;
  return pub;
}

function toRing(generation: number, entries: Entry[]): Ring {
  const active = entries.filter((e) => e.retiredAt === null);
  const first = active[0];
  if (active.length !== 1 || first === undefined || !('d' in first.jwk)) {
    throw new BatonError('KEY_RING_TAMPERED', 'The sealed ssf key ring must hold exactly one active private key');
  }
  const privateKey: KeyObject = createPrivateKey({ key: first.jwk as JsonWebKey, format: 'jwk' });
  return {
    generation,
    entries,
    byKid: new Map(entries.map((e) => [e.kid, e])),
    active: { kid: first.kid, alg: first.alg, privateKey },
  };
}

export interface TransmitterKeysOptions {
  store: Store;
  dataDir: string;
  clock: () => number;
  /** The algorithm of the next key made (a fresh ring, a rotation): RS256 unless configured. */
  algorithm: SetAlgorithm;
  overlapMs?: number;
  kekFile?: string | undefined;
  logger: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
}

export class TransmitterKeys {
  /** When a background re-read was last tried (`refresh`: at most one per REFRESH_MS, failed or not). */
  private loadedAt = 0;
  /** When the ring held was read from (or written to) the store. */
  private readAt = 0;
  private reloading: Promise<void> | undefined;

  private constructor(
    private readonly options: TransmitterKeysOptions,
    private readonly kek: KeyEncryptionKey,
    private ring: Ring,
  ) {}

  /**
   * Reads (or, on a database without it, creates) the ring. The KEK is the one the token ring
   * already made or read at start (compose-services opens that first); a node without it while the
   * database holds the sealed ring refuses, like the other rings (KEY_ENCRYPTION_KEY_MISSING).
   */
  static async open(options: TransmitterKeysOptions): Promise<TransmitterKeys> {
    const kekFile = options.kekFile ?? keyEncryptionKeyPath(options.dataDir);
    const kek = KeyEncryptionKey.read(kekFile);
    if (kek === undefined) {
      throw new BatonError(
        'KEY_ENCRYPTION_KEY_MISSING',
        `The Shared Signals key ring is sealed under the key-encryption key ${kekFile}, which does not exist: copy it from another node of this cluster`,
      );
    }
    const keys = new TransmitterKeys(options, kek, undefined as unknown as Ring);
    await keys.update(async (ring, now) => (ring === undefined ? [await newEntry(options.algorithm, now)] : undefined));
    return keys;
  }

  /**
   * The key that signs now, as the ring was last read: await `fresh()` first (a re-read also starts in the
   * background when the ring is older than 5 s).
   */
  signingKey(): SetSigningKey {
    this.refresh();
    return this.ring.active;
  }

  /**
   * Makes sure the ring held was read from the store at most `maxAgeMs` ago (default 5 s), reading it again if not
   * (one read shared by the callers meanwhile). Rejects when it cannot be read (the store unreachable, the sealed
   * ring not opening): then nothing should be signed with the ring held, which may be older than a rotation.
   */
  fresh(maxAgeMs = REFRESH_MS): Promise<void> {
    const age = this.options.clock() - this.readAt;
    if (age >= 0 && age < maxAgeMs) return Promise.resolve();
    return this.reread();
  }

  /**
   * Whether a SET signed under `kid` verifies against the JWKS now and for at least DELIVERY_MARGIN_MS more: `kid`
   * is the active key, or one retired less than the overlap (minus the margin) ago. As the ring was last read: await
   * `fresh()` first. One map lookup: the delivery asks it for every SET it hands out.
   */
  verifiable(kid: string | undefined): boolean {
    const entry = kid === undefined ? undefined : this.ring.byKid.get(kid);
    if (entry === undefined) return false;
    if (entry.retiredAt === null) return true;
    const overlap = this.options.overlapMs ?? DEFAULT_SSF_KEY_OVERLAP_MS;
    return this.options.clock() + DELIVERY_MARGIN_MS - entry.retiredAt < overlap;
  }

  /** The public keys: the active one and those retired within the overlap (as the ring was last read). */
  jwks(): { keys: JWK[] } {
    this.refresh();
    const now = this.options.clock();
    const overlap = this.options.overlapMs ?? DEFAULT_SSF_KEY_OVERLAP_MS;
    return {
      keys: this.ring.entries
        .filter((e) => e.retiredAt === null || now - e.retiredAt < overlap)
        .map((e) => ({ ...publicOf(e), kid: e.kid, alg: e.alg, use: 'sig' }) as JWK),
    };
  }

  /**
   * The JWKS as published (`/ssf/jwks.json`): from a ring read at most JWKS_READ_MS (100 ms) ago, so no node hands
   * a receiver (which caches it) a list without the key another node started signing with. When the ring cannot be
   * read, the keys held (logged).
   */
  async publishedJwks(): Promise<{ keys: JWK[] }> {
    await this.fresh(JWKS_READ_MS).catch((error: unknown) =>
      this.options.logger.error({ err: error }, 'reading the Shared Signals key ring failed: publishing the keys held'),
    );
    return this.jwks();
  }

  /** The kids kept, newest first, with their algorithm and state (for the admin API). */
  list(): { kid: string; alg: SetAlgorithm; createdAt: number; retiredAt: number | null }[] {
    return this.ring.entries.map(({ kid, alg, createdAt, retiredAt }) => ({ kid, alg, createdAt, retiredAt }));
  }

  /**
   * A new key signs from now on, on every node (within 5 s); the old one stays published for the
   * overlap. `algorithm` changes the algorithm from this key on (default: the configured one).
   */
  async rotate(algorithm?: SetAlgorithm): Promise<{ previous: string; current: string }> {
    // The key retired is the one the store has active (this node's copy may be older than another node's rotation).
    let previous = this.ring.active.kid;
    const overlap = this.options.overlapMs ?? DEFAULT_SSF_KEY_OVERLAP_MS;
    await this.update(async (ring, now) => {
      previous = ring?.active.kid ?? previous;
      const entries = ring?.entries ?? [];
      const retired = entries
        .map((e) => (e.retiredAt === null ? { ...e, retiredAt: now, jwk: publicOf(e) as Entry['jwk'] } : e))
        .filter((e) => now - (e.retiredAt ?? now) < overlap);
      return [await newEntry(algorithm ?? this.options.algorithm, now), ...retired];
    });
    return { previous, current: this.ring.active.kid };
  }

  /** A background re-read (at most one per 5 s, failed or not) for the callers that cannot wait for one. */
  private refresh(): void {
    const now = this.options.clock();
    const age = now - this.readAt;
    if ((age >= 0 && age < REFRESH_MS) || now - this.loadedAt < REFRESH_MS || this.reloading !== undefined) return;
    this.loadedAt = now;
    this.reread().catch((error: unknown) =>
      this.options.logger.error({ err: error }, 'reading the Shared Signals key ring failed: keeping the keys held'),
    );
  }

  /** Reads the ring from the store (one read at a time: a caller meanwhile shares it). */
  private reread(): Promise<void> {
    this.reloading ??= (async () => {
      const startedAt = this.options.clock();
      const read = await this.read(this.options.store);
      if (read !== undefined && read.generation >= this.ring.generation) this.ring = read;
      this.readAt = Math.max(this.readAt, startedAt);
    })().finally(() => (this.reloading = undefined));
    return this.reloading;
  }

  private async update(change: (ring: Ring | undefined, now: number) => Promise<Entry[] | undefined>): Promise<void> {
    const { store, clock } = this.options;
    const metaKey = keyRingMetaKey(SSF_RING_NAME);
    for (let attempt = 1; ; attempt++) {
      const outcome = await store.transaction(async (tx) => {
        const read = await this.read(tx);
        const now = clock();
        const next = await change(read, now);
        if (next === undefined) return read as Ring;
        const generation = (read?.generation ?? 0) + 1;
        if (!(await tx.ephemeral.claimOnce(metaKey, String(generation), now + GENERATION_CLAIM_MS, now))) {
          return 'taken' as const;
        }
        const plain = JSON.stringify({ version: 1, name: SSF_RING_NAME, generation, keys: next });
        await tx.meta.set(metaKey, this.kek.seal(plain, metaKey));
        return toRing(generation, next);
      });
      if (outcome !== 'taken') {
        this.ring = outcome;
        this.readAt = clock();
        return;
      }
      if (attempt === UPDATE_ATTEMPTS)
        throw new BatonError('INTERNAL', 'The ssf key ring kept being changed; try again');
      await sleep(5 + Math.floor(Math.random() * 20));
    }
  }

  private async read(store: Store): Promise<Ring | undefined> {
    const metaKey = keyRingMetaKey(SSF_RING_NAME);
    const sealed = await store.meta.get(metaKey);
    if (sealed === undefined) return undefined;
    let parsed;
    try {
      parsed = SealedSchema.safeParse(JSON.parse(this.kek.open(sealed, metaKey)));
    } catch (error) {
      if (error instanceof BatonError) throw error;
      parsed = undefined;
    }
    if (parsed?.success !== true) {
      throw new BatonError('KEY_RING_TAMPERED', 'The sealed ssf key ring in the database is not a key ring');
    }
    return toRing(parsed.data.generation, parsed.data.keys);
  }

  /** The public key of `kid` (tests, tools). */
  publicKey(kid: string): KeyObject | undefined {
    const entry = this.ring.entries.find((e) => e.kid === kid);
    return entry === undefined ? undefined : createPublicKey({ key: publicOf(entry) as JsonWebKey, format: 'jwk' });
  }
}
