import type { KeyObject } from 'node:crypto';
import { ENROLMENT_CONSOLE_ID } from '../../shared/console-auth.js';
import { BatonError } from '../../shared/errors.js';
import type { P256PublicJwk } from '../../shared/http-api.js';
import type { Policy } from '../../shared/policy.js';
import {
  ReplayGuard,
  importConsoleKey,
  jwkThumbprint,
  readSignatureHeaders,
  verifySignedRequest,
  type SignedRequest,
} from '../crypto/console-signature.js';
import { newId, newSecretToken, sha256Hex } from '../crypto/secrets.js';
import { GroupedReads } from '../store/grouped-reads.js';
import type { ConsoleRecord, Store } from '../store/repositories.js';
import type { EventLog } from './event-log.js';

export interface EnrolInput {
  token: string;
  publicKey: P256PublicJwk;
  channel: string;
  name?: string | undefined;
}

/**
 * Consoles: enrolment tokens, enrolment, and proof of the console key on every request. Request
 * nonces are claimed in the store every node shares (a request replayed to another node is
 * refused). In memory only: the parsed keys (a console's key never changes) and the last-seen
 * times waiting for their batched write (a hint for the admin console, never a decision).
 */
export class ConsoleRegistry {
  private readonly keys = new Map<string, KeyObject>();
  private lastSeen = new Map<string, number>();
  private flushing: Promise<void> | undefined;
  /** The last-seen write under way (flushes run one after the other). */
  private lastSeenWriting: Promise<unknown> = Promise.resolve();
  private flushAgain = false;
  private readonly replay: ReplayGuard;
  /** Console records read for signed requests, grouped under load (`GroupedReads`). */
  private readonly records: GroupedReads<ConsoleRecord>;

  constructor(
    private readonly store: Store,
    private readonly events: EventLog,
    private readonly clock: () => number,
    private readonly currentPolicy: () => Policy,
    private readonly tokenTtlSeconds: number,
  ) {
    this.replay = new ReplayGuard(store.ephemeral, clock);
    this.records = new GroupedReads(
      (id) => store.consoles.get(id),
      (ids) => store.consoles.getMany(ids),
    );
  }

  async issueToken(
    input: { channel?: string | undefined; site?: string | undefined; ttlSeconds?: number | undefined },
    actor: string,
  ): Promise<{ token: string; expiresAt: number }> {
    if (input.channel !== undefined && !Object.hasOwn(this.currentPolicy().channels, input.channel)) {
      throw new BatonError('CHANNEL_UNKNOWN', `The policy has no channel "${input.channel}"`);
    }
    const token = newSecretToken('bct');
    const now = this.clock();
    const expiresAt = now + (input.ttlSeconds ?? this.tokenTtlSeconds) * 1000;
    await this.events.atomically(async (uow) => {
      await uow.store.consoles.insertToken({
        hash: sha256Hex(token),
        channel: input.channel ?? null,
        site: input.site ?? null,
        issuedBy: actor,
        issuedAt: now,
        expiresAt,
        usedAt: null,
      });
      await uow.record({
        type: 'console-enrolment-token-issued',
        subject: {},
        outcome: 'success',
        reasons: [],
        detail: { actor, channel: input.channel ?? null, site: input.site ?? null, expiresAt },
      });
    });
    return { token, expiresAt };
  }

  /** Enrols a console. The request must be signed with the key being enrolled (proof of possession). */
  async enrol(input: EnrolInput, request: SignedRequest): Promise<ConsoleRecord> {
    const now = this.clock();
    // The token first (a hash lookup): nobody without one gets the signature check or a stored nonce.
    const parsed = readSignatureHeaders(request.headers);
    const tokenHash = sha256Hex(input.token);
    const token = await this.store.consoles.getToken(tokenHash);
    if (token === undefined)
      throw new BatonError('ENROLMENT_TOKEN_INVALID', 'The console enrolment token is not known');
    if (token.usedAt !== null)
      throw new BatonError('ENROLMENT_TOKEN_USED', 'The console enrolment token was already used');
    if (token.expiresAt <= now)
      throw new BatonError('ENROLMENT_TOKEN_EXPIRED', 'The console enrolment token has expired');
    if (token.channel !== null && token.channel !== input.channel) {
      throw new BatonError(
        'ENROLMENT_TOKEN_CHANNEL_MISMATCH',
        `This token enrols a "${token.channel}" console, not "${input.channel}"`,
      );
    }
    const key = importConsoleKey(input.publicKey);
    await verifySignedRequest(request, parsed, ENROLMENT_CONSOLE_ID, key, this.replay, now);
    if (!Object.hasOwn(this.currentPolicy().channels, input.channel)) {
      throw new BatonError('CHANNEL_UNKNOWN', `The policy has no channel "${input.channel}"`);
    }
    const jkt = await jwkThumbprint(input.publicKey);
    const record: ConsoleRecord = {
      id: newId('con'),
      name: input.name ?? null,
      channel: input.channel,
      site: token.site,
      publicJwk: JSON.stringify(input.publicKey),
      jkt,
      enrolledAt: now,
      lastSeenAt: now,
      policyVersion: 0,
      revocationEpoch: 0,
      revokedAt: null,
      revokedReason: null,
    };
    await this.events.atomically(async (uow) => {
      // Single use under concurrency, on any node: the store marks the token used once.
      if (!(await uow.store.consoles.useToken(tokenHash, now, record.id))) {
        throw new BatonError('ENROLMENT_TOKEN_USED', 'The console enrolment token was already used');
      }
      await uow.store.consoles.insert(record);
      await uow.record({
        type: 'console-enrolled',
        subject: { console: record.id },
        outcome: 'success',
        reasons: [],
        detail: { channel: record.channel, site: record.site, name: record.name, jkt: record.jkt },
      });
    });
    this.keys.set(record.id, key);
    return record;
  }

  /**
   * Verifies a console-signed request and returns the console; refuses unknown and revoked ones.
   * The console is read from the store on every request: a revocation committed on any node counts.
   */
  async authenticate(request: SignedRequest): Promise<ConsoleRecord> {
    const parsed = readSignatureHeaders(request.headers);
    const id = parsed.consoleId;
    if (id === undefined || id === ENROLMENT_CONSOLE_ID) {
      throw new BatonError('CONSOLE_AUTH_MISSING', 'Expected the x-baton-console header');
    }
    // Grouped with the other upgrades' reads while one runs (a burst of reconnects costs a few statements).
    const record = /^[A-Za-z0-9_]{1,64}$/.test(id) ? await this.records.read(id) : undefined;
    if (record === undefined) throw new BatonError('CONSOLE_UNKNOWN', 'No console is enrolled with this id');
    await verifySignedRequest(request, parsed, id, this.key(record), this.replay, this.clock());
    if (record.revokedAt !== null) throw new BatonError('CONSOLE_REVOKED', 'This console has been revoked');
    this.touch(record.id);
    return record;
  }

  get(id: string): Promise<ConsoleRecord | undefined> {
    return this.store.consoles.get(id);
  }

  /** Notes that a console was seen; written in batches by `flushLastSeen` (many consoles per statement). */
  touch(id: string): void {
    this.lastSeen.set(id, this.clock());
  }

  /**
   * Writes the last-seen times noted so far; on failure they are kept for the next flush. One flush at
   * a time (the 5 s timer, `flushSoon` and the one at shutdown): a flush is written in several units
   * (`touchMany`), so a later one, the last before the store closes above all, waits for the one
   * under way instead of running beside it.
   */
  flushLastSeen(): Promise<void> {
    const run = this.lastSeenWriting.then(() => this.writeLastSeen());
    this.lastSeenWriting = run.catch(() => undefined);
    return run;
  }

  private async writeLastSeen(): Promise<void> {
    if (this.lastSeen.size === 0) return;
    const seen = this.lastSeen;
    this.lastSeen = new Map();
    try {
      // Many consoles per statement (a node may hold thousands); console rows are locked in ascending id,
      // the cluster's lock order (repositories.ts), so two nodes flushing overlapping consoles (a console's
      // signed requests reach any node) never deadlock; a time never moves back.
      await this.store.consoles.touchMany([...seen].map(([id, at]) => ({ id, at })));
    } catch (error) {
      // Newer sightings noted meanwhile win over the ones that failed to be written.
      for (const [id, at] of seen) if (!this.lastSeen.has(id)) this.lastSeen.set(id, at);
      throw error;
    }
  }

  /**
   * Writes the sightings noted so far as soon as possible (one write at a time; calls meanwhile are
   * folded into the next one): when a console's socket closes, so that the node it reconnects to reads
   * its last contact from the store, not from this node's memory. A failure keeps them for the next
   * flush (the 5 s timer, which reports it).
   */
  flushSoon(): void {
    if (this.flushing !== undefined) {
      this.flushAgain = true;
      return;
    }
    this.flushing = this.flushLastSeen()
      .catch(() => undefined)
      .finally(() => {
        this.flushing = undefined;
        if (this.flushAgain) {
          this.flushAgain = false;
          this.flushSoon();
        }
      });
  }

  recordPolicyVersion(id: string, version: number): Promise<void> {
    return this.store.consoles.setSyncState(id, { policyVersion: version });
  }

  private key(record: ConsoleRecord): KeyObject {
    let key = this.keys.get(record.id);
    if (key === undefined) {
      key = importConsoleKey(JSON.parse(record.publicJwk) as P256PublicJwk);
      if (this.keys.size >= 100_000) this.keys.clear();
      this.keys.set(record.id, key);
    }
    return key;
  }
}
