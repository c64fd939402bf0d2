import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { BatonError } from '../../shared/errors.js';
import type { Store } from '../store/repositories.js';

const NONCE_BYTES = 16;
const EXPIRY_BYTES = 8;
const MAC_BYTES = 16;
const CHALLENGE_BYTES = NONCE_BYTES + EXPIRY_BYTES + MAC_BYTES;
const KEY_BYTES = 32;
/** A signed challenge's length in base64url (40 bytes): stored challenges (16 bytes) are 22. */
const SIGNED_CHALLENGE_CHARS = Math.ceil((CHALLENGE_BYTES * 4) / 3);
const UNKNOWN_MESSAGE = 'The challenge was not issued for an admin sign-in by this backend';

/** How long one node may hold the right to create a shared value before another may try. */
const CREATE_CLAIM_MS = 15_000;
/** How often a node waiting for another to create a shared value looks again, and for how long in all. */
const CREATE_POLL_MS = 50;
const CREATE_WAIT_MS = 2 * CREATE_CLAIM_MS;

/**
 * A value every node of the cluster must agree on, created once: the first node to need it creates
 * it and the others read the same. `read` says whether it exists (and what it is); `create` makes it
 * through the transaction it is given (`tx`), and nothing else.
 *
 * Exactly one creation ever commits. The right to create is claimed with `ephemeral.claimOnce`
 * (single use across nodes), so nodes starting together on a fresh database do not all try; the
 * claim lapses after `CREATE_CLAIM_MS`, so a node that dies holding it does not block the rest for
 * good. A lapsed claim does not make two creators: `create` runs in one transaction with the meta row
 * `create-once:<name>`, inserted only if absent. A node that stalled past its claim while another
 * took over finds that row there, creates nothing, and returns what the store holds (`read`), as
 * every other node does.
 */
export async function createOnce<T>(
  store: Store,
  name: string,
  clock: () => number,
  read: () => Promise<T | undefined>,
  create: (tx: Store) => Promise<T>,
): Promise<T> {
  const started = Date.now();
  for (;;) {
    const existing = await read();
    if (existing !== undefined) return existing;
    const now = clock();
    if (await store.ephemeral.claimOnce('create-once', name, now + CREATE_CLAIM_MS, now)) {
      // Read again under the claim: another node may have created it between our read and our claim.
      const stored = await read();
      if (stored !== undefined) return stored;
      const created = await store.transaction(async (tx) =>
        (await tx.meta.insertIfAbsent(`create-once:${name}`, String(now))) ? { value: await create(tx) } : undefined,
      );
      if (created !== undefined) return created.value;
      // Another node created it (our claim had lapsed): its creation has committed, with the marker.
      const theirs = await read();
      if (theirs !== undefined) return theirs;
      throw new BatonError('INTERNAL', `"${name}" is marked as created but the store does not hold it`);
    }
    if (Date.now() - started > CREATE_WAIT_MS) {
      throw new BatonError('INTERNAL', `Another node claimed to create "${name}" and has not done so`);
    }
    await sleep(CREATE_POLL_MS);
  }
}

/** The meta key holding the HMAC key of one purpose's signed challenges. */
export function challengeKeyName(purpose: string): string {
  return `signed-challenges:${purpose}:key`;
}

/**
 * WebAuthn challenges that cost the backend nothing until they come back: each is a random nonce,
 * its expiry and an HMAC over both. Issuing one stores nothing, so no number of requests for
 * challenges can push out anyone else's.
 *
 * Across a cluster: the HMAC key is in the store's meta table, created once by whichever node needs
 * it first (`createOnce`) and read by every other, so a challenge issued by node A verifies on node B.
 * It is kept in the database rather than derived from something the nodes share (a configured
 * secret, the data directory): the database is the one thing every node is sure to share, and anyone
 * who can read it can already act as the backend. A challenge is single use: its nonce is claimed in
 * `store.ephemeral` (`claimOnce`) when it is presented, until it expires, so a challenge replayed to
 * another node is refused there too. Presenting needs a valid, unexpired challenge (and passes the
 * per-client limits first), so the claimed nonces are bounded by what callers can present within one
 * lifetime; expired ones are swept with the other claims (`ephemeral_claims`, migration 29).
 */
export class SignedChallenges {
  private key: Promise<Buffer> | undefined;

  constructor(
    private readonly options: {
      purpose: string;
      ttlMs: () => number;
      clock: () => number;
      store: Store;
      /** The CHALLENGE_UNKNOWN message for a challenge this class did not issue (default: the admin sign-in's). */
      unknownMessage?: string;
    },
  ) {}

  /**
   * `binding` (e.g. the console a challenge is issued to) is covered by the MAC: the challenge verifies
   * only when presented with the same binding, so anyone else presenting it neither uses nor burns it.
   */
  async issue(binding = ''): Promise<string> {
    const key = await this.sharedKey();
    const nonce = randomBytes(NONCE_BYTES);
    const expiry = Buffer.alloc(EXPIRY_BYTES);
    expiry.writeBigUInt64BE(BigInt(this.options.clock() + this.options.ttlMs()));
    return Buffer.concat([nonce, expiry, this.mac(key, nonce, expiry, binding)]).toString('base64url');
  }

  /** Whether `challenge` has this class's shape (a caller that also holds stored challenges tells them apart). */
  static isSigned(challenge: string): boolean {
    return challenge.length === SIGNED_CHALLENGE_CHARS;
  }

  /**
   * Accepts a challenge a node of this backend issued (with the same `binding`), once (cluster-wide),
   * before it expires. The MAC and the expiry are checked before the nonce is claimed: a challenge
   * that is not valid for this binding claims nothing.
   */
  async consume(challenge: string, binding = ''): Promise<void> {
    const key = await this.sharedKey();
    const raw = Buffer.from(challenge, 'base64url');
    const nonce = raw.subarray(0, NONCE_BYTES);
    const expiry = raw.subarray(NONCE_BYTES, NONCE_BYTES + EXPIRY_BYTES);
    if (
      raw.length !== CHALLENGE_BYTES ||
      raw.toString('base64url') !== challenge ||
      !timingSafeEqual(raw.subarray(NONCE_BYTES + EXPIRY_BYTES), this.mac(key, nonce, expiry, binding))
    ) {
      throw new BatonError('CHALLENGE_UNKNOWN', this.options.unknownMessage ?? UNKNOWN_MESSAGE);
    }
    const now = this.options.clock();
    const expiresAt = Number(expiry.readBigUInt64BE());
    if (expiresAt <= now) throw new BatonError('CHALLENGE_EXPIRED', 'The challenge has expired');
    const kind = `signed-challenge:${this.options.purpose}`;
    if (!(await this.options.store.ephemeral.claimOnce(kind, nonce.toString('base64url'), expiresAt, now))) {
      throw new BatonError('CHALLENGE_UNKNOWN', 'The challenge was already used');
    }
  }

  /** The cluster's key for this purpose, read (or created) once and then kept: it never changes. */
  private sharedKey(): Promise<Buffer> {
    if (this.key === undefined) {
      const { store, clock, purpose } = this.options;
      const name = challengeKeyName(purpose);
      const read = async () => {
        const value = await store.meta.get(name);
        return value === undefined ? undefined : Buffer.from(value, 'base64url');
      };
      const create = async (tx: Store) => {
        const key = randomBytes(KEY_BYTES);
        await tx.meta.set(name, key.toString('base64url'));
        return key;
      };
      this.key = createOnce(store, name, clock, read, create).then((key) => {
        if (key.length !== KEY_BYTES) throw new Error(`the stored ${name} is not a ${KEY_BYTES}-byte key`);
        return key;
      });
      // A failure (the database unreachable) is not kept: the next call tries again.
      void this.key.catch(() => (this.key = undefined));
    }
    return this.key;
  }

  /** The binding comes last, after the fixed-length nonce and expiry: no two inputs are read alike. */
  private mac(key: Buffer, nonce: Buffer, expiry: Buffer, binding: string): Buffer {
    return createHmac('sha256', key)
      .update(this.options.purpose)
      .update(nonce)
      .update(expiry)
      .update(binding)
      .digest()
      .subarray(0, MAC_BYTES);
  }
}
