import { sign, verify } from 'node:crypto';
import { closeSync, existsSync, fstatSync, fsyncSync, openSync, readSync, writeSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { canonicalJson } from '../../shared/canonical-json.js';
import { GENESIS_HASH } from '../../shared/events.js';
import { SharedKeyRing } from '../crypto/key-ring.js';
import { sha256Hex } from '../crypto/secrets.js';
import type { CheckpointRow, StreamHead, Store } from '../store/repositories.js';
import type { ChainProblem } from './event-log.js';

/** The checkpoint key file of the releases before ADR 0006: imported into the database once, then renamed. */
export const CHECKPOINT_KEY_FILE = 'checkpoint-signing-keys.json';
export const CHECKPOINT_LOG_FILE = 'chain-checkpoints.jsonl';
export const DEFAULT_CHECKPOINT_INTERVAL_SECONDS = 60;
export const DEFAULT_CHECKPOINT_KEY_ROTATION_DAYS = 90;
/** How many of the newest stored checkpoints `check` re-verifies on each call. */
const RECHECKED_CHECKPOINTS = 100;
/** How long a checkpoint number stays claimed (its row is stored long before the claim lapses). */
const CHECKPOINT_CLAIM_MS = 24 * 3600 * 1000;
/** The checkpoints file is read backwards at most this far at start for its last line. */
const MAX_TAIL_BYTES = 16 * 1024 * 1024;
/** A node signs with the ring as it read it at most this long ago (another node may have rotated). */
const RING_REFRESH_MS = 5000;

const HeadSchema = z.strictObject({ lastSeq: z.int().nonnegative(), lastHash: z.string().regex(/^[0-9a-f]{64}$/) });
const CheckpointBodySchema = z.strictObject({
  v: z.literal(1),
  seq: z.int().positive(),
  at: z.int().nonnegative(),
  kid: z.string().min(1),
  /** SHA-256 of the previous checkpoint's body: deleting one from the sequence shows. */
  prev: z.string().regex(/^[0-9a-f]{64}$/),
  reason: z.enum(['interval', 'shutdown', 'key-rotated', 'export']),
  heads: z.record(z.string(), HeadSchema),
});
export type CheckpointBody = z.infer<typeof CheckpointBodySchema>;
export type CheckpointReason = CheckpointBody['reason'];

/** A checkpoint as exported: the signed body's fields, the signature, and whether it verifies here. */
export interface CheckpointView extends CheckpointBody {
  sig: string;
  valid: boolean;
}

export interface CheckpointCheck {
  /** The checkpoint the chain was compared with (null: none yet, or the origin is newer than it). */
  checkpoint: { seq: number; at: number; kid: string; lastSeq: number; lastHash: string } | null;
  problems: ChainProblem[];
}

interface Signed {
  body: CheckpointBody;
  text: string;
  sig: string;
}

export interface ChainCheckpointsOptions {
  /** Where the events, their chain heads (what a checkpoint signs) and the checkpoints are stored. */
  store: Store;
  dataDir: string;
  clock: () => number;
  logger: Logger;
  intervalSeconds?: number | undefined;
  /** The checkpoint key is replaced once it is this old (0: only when an admin rotates it). */
  keyRotationDays?: number | undefined;
  /** The KEK file (default: $BATON_KEY_ENCRYPTION_KEY_FILE or `<dataDir>/key-encryption-key`). */
  kekFile?: string | undefined;
}

/**
 * Signed checkpoints of every event chain head. At an interval (only when a head moved), on key
 * rotation and on shutdown, the heads (each origin's lastSeq and lastHash) are signed with an ES256
 * key of the cluster's checkpoint key ring, appended to an append-only file in the data directory and
 * stored in the database for export. The ring is in the database sealed (AES-256-GCM) under the
 * key-encryption key, a file outside the database (ADR 0006): someone who can write the database but
 * not read that file can neither read the key nor put in one of their own. They can still edit an
 * event and recompute every later hash and the stored head; the signed checkpoint then no longer
 * matches, and `check` (used by `GET /v1/admin/events/verify`) says so.
 *
 * The heads signed are read from the store, never from a node's memory. A checkpoint takes the next
 * number after the newest stored one, in one unit of work with its own write, so nodes signing at
 * once never overwrite each other's rows. Every node signs with the same ring; a checkpoint signed
 * with a key this node does not know yet (rotated on another node) makes it read the ring again.
 */
export class ChainCheckpoints {
  private last: Signed | undefined;
  private timer: NodeJS.Timeout | undefined;
  private rotating: Promise<unknown> | undefined;
  /** The interval's checkpoint under way, if any (the next tick skips while it runs). */
  private ticking: Promise<void> | undefined;
  /** Origins whose stored history no longer matches a signed head (kept out of later checkpoints). */
  private readonly diverged = new Set<string>();
  private readonly logFile: string;
  private readonly intervalMs: number;
  private readonly rotationMs: number;

  private constructor(
    private readonly options: ChainCheckpointsOptions,
    private readonly ring: SharedKeyRing,
  ) {
    this.logFile = join(options.dataDir, CHECKPOINT_LOG_FILE);
    this.intervalMs = (options.intervalSeconds ?? DEFAULT_CHECKPOINT_INTERVAL_SECONDS) * 1000;
    this.rotationMs = (options.keyRotationDays ?? DEFAULT_CHECKPOINT_KEY_ROTATION_DAYS) * 24 * 3600 * 1000;
  }

  static async open(options: ChainCheckpointsOptions): Promise<ChainCheckpoints> {
    const ring = await SharedKeyRing.open({
      store: options.store,
      name: 'checkpoint',
      dataDir: options.dataDir,
      clock: options.clock,
      logger: options.logger,
      // Kept for ever: they verify checkpoints an auditor may hold.
      keepRetiredMs: undefined,
      legacyFile: join(options.dataDir, CHECKPOINT_KEY_FILE),
      kekFile: options.kekFile,
    });
    const checkpoints = new ChainCheckpoints(options, ring);
    await checkpoints.loadLatest();
    return checkpoints;
  }

  /** Starts the interval. */
  start(): void {
    this.timer ??= setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  /** Stops the interval and signs the heads one last time (if one moved). Call before the store closes. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.rotating;
    await this.ticking;
    await this.safely(() => this.checkpoint('shutdown'));
  }

  get latest(): CheckpointBody | undefined {
    return this.last?.body;
  }

  /** The checkpoint key's public halves (active first), to verify exported checkpoints elsewhere. */
  publicKeys(): { keys: object[] } {
    return { keys: this.ring.current.list().map((k) => ({ ...k.publicJwk, alg: 'ES256', use: 'sig' })) };
  }

  /** A new key signs from now on; the old public key is kept. A checkpoint is signed with the new key at once. */
  async rotateKey(): Promise<{ previous: string; current: string; checkpoint: number | undefined }> {
    let previous = '';
    const next = await this.ring.update(async (ring, now) => {
      if (ring === undefined) throw new Error('the checkpoint key ring is gone from the database');
      previous = ring.active.kid;
      return ring.rotated(now, undefined);
    });
    const signed = await this.checkpoint('key-rotated');
    return { previous, current: next.active.kid, checkpoint: signed?.seq };
  }

  /**
   * Signs the current heads when one moved since the last checkpoint (always for `key-rotated`).
   * A head whose signed history was rewritten in the database is not signed again: the origin keeps
   * its last signed head, so the rewrite stays visible.
   */
  async checkpoint(reason: CheckpointReason): Promise<CheckpointBody | undefined> {
    // Signs with the ring as the cluster has it, and knows the key of the newest stored checkpoint
    // (read outside the unit of work: the embedded engine has one connection).
    await this.ring.refreshIfOlder(RING_REFRESH_MS);
    await this.knowKeys(await this.options.store.checkpoints.latest(1));
    // Another node that took the same number first has committed by the next attempt.
    for (let attempt = 1; ; attempt++) {
      const signed = await this.tryCheckpoint(reason);
      if (signed !== 'taken') return signed;
      if (attempt === 3) return undefined;
    }
  }

  /** One attempt: `taken` when another node claimed the number this one would have used. */
  private async tryCheckpoint(reason: CheckpointReason): Promise<CheckpointBody | undefined | 'taken'> {
    const { store, clock } = this.options;
    return store.transaction(async (tx): Promise<CheckpointBody | undefined | 'taken'> => {
      const previous = this.last?.body.heads ?? {};
      const heads: Record<string, StreamHead> = { ...previous };
      let moved = false;
      for (const head of await tx.checkpoints.heads()) {
        const { origin } = head;
        const before = previous[origin];
        if (before !== undefined && before.lastSeq === head.lastSeq && before.lastHash === head.lastHash) continue;
        if (before !== undefined && !(await this.extends(tx, origin, before, head))) {
          this.reportDiverged(origin, before);
          continue;
        }
        heads[origin] = { lastSeq: head.lastSeq, lastHash: head.lastHash };
        moved = true;
      }
      if (!moved && reason !== 'key-rotated') return undefined;
      // The next number after both this node's latest and the newest stored checkpoint (another
      // node's), so nodes signing at once never write the same number; chained to the newer of the
      // two if it verifies here (a row that does not is reported by `check`, never built upon).
      const [newest] = await tx.checkpoints.latest(1);
      const mine = this.last === undefined ? undefined : { seq: this.last.body.seq, text: this.last.text };
      const theirs =
        newest !== undefined && newest.seq > (mine?.seq ?? 0) && this.parseValid(newest) !== undefined
          ? { seq: newest.seq, text: newest.body }
          : undefined;
      const after = theirs ?? mine;
      const body: CheckpointBody = {
        v: 1,
        seq: Math.max(mine?.seq ?? 0, newest?.seq ?? 0) + 1,
        at: clock(),
        kid: this.ring.current.active.kid,
        prev: after === undefined ? GENESIS_HASH : sha256Hex(after.text),
        reason,
        heads,
      };
      // The number is claimed in this transaction: a node reading the same newest checkpoint waits
      // for this commit and then finds it taken (rolled back, the claim goes with it).
      const now = clock();
      if (!(await tx.ephemeral.claimOnce('chain-checkpoint', String(body.seq), now + CHECKPOINT_CLAIM_MS, now))) {
        return 'taken';
      }
      const text = canonicalJson(body);
      const sig = sign('sha256', Buffer.from(text), {
        key: this.ring.current.privateKey,
        dsaEncoding: 'ieee-p1363',
      }).toString('base64url');
      // The file first: it is outside the database, so it still holds the checkpoint if the database
      // loses it. (One small append and fsync a minute, inside the unit of work on purpose.)
      this.append(`${canonicalJson({ ...body, sig })}\n`);
      await tx.checkpoints.put({ seq: body.seq, at: body.at, kid: body.kid, body: text, sig });
      this.last = { body, text, sig };
      return body;
    });
  }

  private reportDiverged(origin: string, before: StreamHead): void {
    if (!this.diverged.has(origin)) {
      this.options.logger.error(
        { origin, signedSeq: before.lastSeq, signedHash: before.lastHash, checkpoint: this.last?.body.seq },
        'audit trail rewritten: the stored chain no longer contains the signed checkpoint head',
      );
    }
    this.diverged.add(origin);
  }

  /**
   * Compares an origin's stored chain with the latest checkpoint signed by this backend, and checks the
   * newest stored checkpoints' signatures: `checkpoint-mismatch` (the stored event at the signed head
   * differs or is gone: history before the checkpoint was rewritten), `checkpoint-invalid` (a stored
   * checkpoint that is forged, unsigned or altered), `checkpoint-missing` (the latest signed checkpoint
   * was deleted from the database).
   */
  async check(origin: string): Promise<CheckpointCheck> {
    const { store } = this.options;
    const problems: ChainProblem[] = [];
    const stored = await store.checkpoints.latest(RECHECKED_CHECKPOINTS);
    await this.knowKeys(stored);
    for (const row of stored) {
      if (this.parseValid(row) === undefined) problems.push({ seq: row.seq, problem: 'checkpoint-invalid' });
    }
    const ref = this.last;
    if (ref === undefined) return { checkpoint: null, problems };
    const mine = stored.find((row) => row.seq === ref.body.seq);
    if (mine === undefined) {
      problems.push({ seq: ref.body.seq, problem: 'checkpoint-missing' });
    }
    const head = ref.body.heads[origin];
    if (head === undefined) return { checkpoint: null, problems };
    if ((await store.checkpoints.hashAt(origin, head.lastSeq)) !== head.lastHash) {
      problems.push({ seq: head.lastSeq, problem: 'checkpoint-mismatch' });
    }
    return {
      checkpoint: { seq: ref.body.seq, at: ref.body.at, kid: ref.body.kid, ...head },
      problems,
    };
  }

  /** The latest checkpoint this backend signed (or loaded at start), as exported. */
  latestView(): CheckpointView | null {
    return this.last === undefined ? null : { ...this.last.body, sig: this.last.sig, valid: true };
  }

  /** Whether the latest checkpoint names this origin (its stream existed when it was signed). */
  knows(origin: string): boolean {
    return this.last?.body.heads[origin] !== undefined;
  }

  /** Stored checkpoints after `afterSeq`, oldest first, each with whether its signature verifies. */
  async list(afterSeq: number, limit: number): Promise<CheckpointView[]> {
    const rows = await this.options.store.checkpoints.list(afterSeq, limit);
    await this.knowKeys(rows);
    return rows.map((row) => {
      const body = this.parseValid(row);
      if (body !== undefined) return { ...body, sig: row.sig, valid: true };
      const loose = safeJson(row.body) as Partial<CheckpointBody> | undefined;
      return {
        v: 1,
        seq: row.seq,
        at: row.at,
        kid: row.kid,
        prev: typeof loose?.prev === 'string' ? loose.prev : '',
        reason: loose?.reason ?? 'interval',
        heads: typeof loose?.heads === 'object' ? loose.heads : {},
        sig: row.sig,
        valid: false,
      };
    });
  }

  private tick(): void {
    if (this.rotating !== undefined || this.ticking !== undefined) return;
    if (this.rotationMs > 0 && this.ring.current.isDue(this.rotationMs, this.options.clock())) {
      this.rotating = this.rotateKey()
        .then(({ previous, current }) => this.options.logger.info({ previous, current }, 'checkpoint key rotated'))
        .catch((error: unknown) => this.options.logger.error({ err: error }, 'checkpoint key rotation failed'))
        .finally(() => (this.rotating = undefined));
      return;
    }
    this.ticking = this.safely(() => this.checkpoint('interval')).finally(() => (this.ticking = undefined));
  }

  /** Runs `fn`, logging (not throwing) a failure: a checkpoint missed is signed at the next one. */
  private async safely(fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn();
    } catch (error) {
      this.options.logger.error({ err: error }, 'signing a chain checkpoint failed');
    }
  }

  /** Whether the stored chain still holds `before` at its place (and has not gone back past it). */
  private async extends(tx: Store, origin: string, before: StreamHead, now: StreamHead): Promise<boolean> {
    if (now.lastSeq < before.lastSeq) return false;
    return (await tx.checkpoints.hashAt(origin, before.lastSeq)) === before.lastHash;
  }

  /** Reads the ring again (rate-limited) when a row names a key this node does not know: rotated elsewhere. */
  private async knowKeys(rows: CheckpointRow[]): Promise<void> {
    const unknown = new Set(rows.map((r) => r.kid).filter((kid) => this.ring.current.get(kid) === undefined));
    for (const kid of unknown) if ((await this.ring.find(kid)) === undefined) return;
  }

  private parseValid(row: CheckpointRow): CheckpointBody | undefined {
    const key = this.ring.current.get(row.kid);
    if (key === undefined) return undefined;
    let ok = false;
    try {
      ok = verify(
        'sha256',
        Buffer.from(row.body),
        { key: key.publicKey, dsaEncoding: 'ieee-p1363' },
        Buffer.from(row.sig, 'base64url'),
      );
    } catch {
      ok = false;
    }
    if (!ok) return undefined;
    const parsed = CheckpointBodySchema.safeParse(safeJson(row.body));
    if (!parsed.success || parsed.data.seq !== row.seq || parsed.data.kid !== row.kid) return undefined;
    return parsed.data;
  }

  /**
   * The newest valid checkpoint of the database and of the file, whichever is newer. A database that
   * lacks the file's latest checkpoint is left as it is, so `check` keeps reporting it.
   */
  private async loadLatest(): Promise<void> {
    const { store, logger } = this.options;
    let fromDb: Signed | undefined;
    const stored = await store.checkpoints.latest(RECHECKED_CHECKPOINTS);
    await this.knowKeys(stored);
    for (const row of stored) {
      const body = this.parseValid(row);
      if (body !== undefined) {
        fromDb = { body, text: row.body, sig: row.sig };
        break;
      }
      logger.error({ checkpoint: row.seq }, 'a stored chain checkpoint is not validly signed');
    }
    const fromFile = this.lastInFile();
    if (fromFile !== undefined && fromFile.body.seq > (fromDb?.body.seq ?? 0)) {
      logger.error(
        { fileCheckpoint: fromFile.body.seq, databaseCheckpoint: fromDb?.body.seq ?? null },
        `the database lacks the latest chain checkpoint recorded in ${CHECKPOINT_LOG_FILE}`,
      );
    }
    this.last = fromFile !== undefined && fromFile.body.seq > (fromDb?.body.seq ?? 0) ? fromFile : fromDb;
    // The backend's own chain head is reloaded from the database: compare every signed head now.
    for (const [origin, head] of Object.entries(this.last?.body.heads ?? {})) {
      if ((await store.checkpoints.hashAt(origin, head.lastSeq)) === head.lastHash) continue;
      this.diverged.add(origin);
      logger.error(
        { origin, signedSeq: head.lastSeq, checkpoint: this.last?.body.seq },
        'audit trail rewritten: the stored chain no longer contains the signed checkpoint head',
      );
    }
  }

  private lastInFile(): Signed | undefined {
    if (!existsSync(this.logFile)) return undefined;
    const fd = openSync(this.logFile, 'r');
    try {
      const size = fstatSync(fd).size;
      const length = Math.min(size, MAX_TAIL_BYTES);
      const buffer = Buffer.alloc(length);
      readSync(fd, buffer, 0, length, size - length);
      const lines = buffer.toString('utf8').split('\n').filter(Boolean);
      for (let i = lines.length - 1; i >= 0; i--) {
        const record = safeJson(lines[i] ?? '') as { sig?: unknown } | undefined;
        if (record === undefined || typeof record.sig !== 'string') continue;
        const { sig, ...body } = record;
        const text = canonicalJson(body);
        const parsed = CheckpointBodySchema.safeParse(body);
        if (!parsed.success) continue;
        const row = { seq: parsed.data.seq, at: parsed.data.at, kid: parsed.data.kid, body: text, sig };
        const valid = this.parseValid(row);
        if (valid !== undefined) return { body: valid, text, sig };
      }
      return undefined;
    } finally {
      closeSync(fd);
    }
  }

  private append(line: string): void {
    const fd = openSync(this.logFile, 'a', 0o600);
    try {
      writeSync(fd, line);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(this.logFile, 0o600);
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
