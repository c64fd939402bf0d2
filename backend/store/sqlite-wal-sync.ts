/**
 * Durable commits of the embedded store with the disk's flush off the event loop, shared by the commits
 * made while one is in flight (group commit; ADR 0009 and its amendments).
 *
 * better-sqlite3 is synchronous: SQLite's own fsync inside COMMIT (synchronous = FULL) stops the whole
 * process for as long as the disk takes. With `durability: 'full'` the store's connection instead stays
 * at synchronous = NORMAL for its whole life (a commit writes its WAL frames and does not flush them:
 * in WAL mode that sync is the only difference with FULL, sqlite.org/pragma.html#pragma_synchronous),
 * and everything that must be durable before its caller continues waits here for an `fdatasync` of the
 * WAL file on libuv's thread pool that **started after its commit**: a unit of work, and a write outside
 * one (a Kysely statement in autocommit, a hand-written statement run by the driver's `run`). The WAL
 * is sequential, so a flush covers every frame written before it started.
 *
 * At most one flush is in flight; the commits made meanwhile wait together for the next one, which
 * starts when it ends. Flushes end in the order they started, so callers resume in commit order.
 *
 * The connection is not held during the flush: the next unit or statement runs meanwhile, and may read
 * rows committed and not yet flushed. So nothing that read them resumes before they are on disk: a
 * caller told a write committed was told so only after a flush covering it and every commit before
 * it, and a hold that wrote nothing (a read outside a unit) waits for the flush due for every commit
 * made so far (`pending`, which starts none). Two holds do not wait: a relaxed commit (a challenge or
 * nonce: it reads and writes only its own single-use rows, which no flush is asked for anyway; the
 * durable work its caller goes on to do waits for its own flush) and a hold that failed or rolled back
 * (its caller gets its own error, not the disk's). Without that wait a console's `hello`
 * could be answered with an event head (`ackedSeq`) whose ingest was not yet on disk, and the console
 * would drop those events from its journal; an export to the SIEM or a Shared Signals head likewise.
 * What a power loss can take back is what nobody was told had committed: the commits whose flush had
 * not finished.
 *
 * A failed flush fails every caller it covered (`INTERNAL`, "A commit could not be flushed to disk").
 * Their rows are committed (the file is consistent, later statements read them): like a connection
 * lost at COMMIT, the caller cannot tell whether they survive a power loss. A commit made while the
 * failed flush was in flight waits for the next flush, its own. A failed fdatasync is the disk
 * failing: on Linux a later flush that succeeds does not prove that pages whose write-back failed
 * reached the disk (and a WAL frame after a lost one is not replayed), so the operator treats it as a
 * disk failure (docs/operations.md).
 *
 * Which holds of the connection wrote is told by SQLite's `total_changes()` (rows changed by the
 * connection since it opened, 50 ns to read): what changed since the last look and was not absorbed
 * by a relaxed commit (`relaxed`) or a rollback must be flushed. Checkpoints keep their own syncs
 * (NORMAL syncs the WAL before a checkpoint and the database after it), on the worker's connection as
 * on this one.
 */
import { closeSync, fdatasync, fsyncSync, openSync } from 'node:fs';
import type Database from 'better-sqlite3';
import { BatonError } from '../../shared/errors.js';

/** Runs one commit outside a unit of work that need not wait for the disk (the challenges and nonces). */
export type RelaxedCommit = <T>(commit: () => T) => T;

/** Flushes a file's data to the disk (fs.fdatasync on libuv's thread pool by default). */
export type SyncWal = (fd: number) => Promise<void>;

const fdatasyncOnPool: SyncWal = (fd) =>
  new Promise((resolve, reject) => fdatasync(fd, (error) => (error === null ? resolve() : reject(error))));

interface Waiting {
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export class WalSync {
  private fd: number | undefined;
  /** The flush in flight (never rejects: for close), if any. */
  private inFlight: Promise<void> | undefined;
  /** The same flush as it ends for its callers (rejects when it failed). */
  private current: Promise<void> | undefined;
  /** The commits made while a flush is in flight: the next flush, started when it ends. */
  private next: Waiting | undefined;
  private readonly totalChanges: Database.Statement;
  /** `total_changes()` when last looked at: what is above it is written and not yet accounted for. */
  private accounted: number;

  constructor(
    private readonly db: Database.Database,
    private readonly dir: string,
    private readonly walFile: string,
    private readonly syncWal: SyncWal = fdatasyncOnPool,
  ) {
    this.totalChanges = db.prepare('SELECT total_changes()').pluck();
    this.accounted = this.changes();
  }

  private changes(): number {
    return Number(this.totalChanges.get());
  }

  /** Whether the connection changed rows since the last look (and accounts for them): they must be flushed. */
  wrote(): boolean {
    const now = this.changes();
    if (now === this.accounted) return false;
    this.accounted = now;
    return true;
  }

  /** A rollback's changes, or a relaxed commit's: nothing to flush for them. */
  absorb(): void {
    this.accounted = this.changes();
  }

  /** A relaxed commit ran since the last look (`tookRelaxed`): its hold waits for no flush. */
  private relaxedRan = false;

  /** The challenges' and nonces' commits: no flush (sqlite-ephemeral.ts says what a power loss can take back). */
  readonly relaxed: RelaxedCommit = (commit) => {
    try {
      return commit();
    } finally {
      this.absorb();
      this.relaxedRan = true;
    }
  };

  /** Whether the hold that just ended was a relaxed commit (and forgets it). */
  tookRelaxed(): boolean {
    const ran = this.relaxedRan;
    this.relaxedRan = false;
    return ran;
  }

  /** Settled by a flush of the WAL that starts after this call, i.e. after the caller's commit. */
  flushed(): Promise<void> {
    if (this.inFlight === undefined) return this.start();
    if (this.next === undefined) {
      let resolve!: () => void;
      let reject!: (error: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.next = { promise, resolve, reject };
    }
    return this.next.promise;
  }

  /**
   * Settled once every commit made so far is flushed (the flush due next, or the one in flight), without
   * starting one: what a hold that wrote nothing waits for, since it may have read rows committed and not
   * yet flushed. Undefined when nothing is owed to the disk.
   */
  pending(): Promise<void> | undefined {
    return this.next?.promise ?? this.current;
  }

  private start(): Promise<void> {
    const flush = this.flushOnce().then(
      () => this.ended(),
      (cause: unknown) => {
        this.ended();
        throw new BatonError('INTERNAL', 'A commit could not be flushed to disk', { cause });
      },
    );
    this.current = flush;
    this.inFlight = flush.catch(() => undefined);
    return flush;
  }

  /** The flush in flight has ended: the commits made meanwhile get theirs. */
  private ended(): void {
    this.inFlight = undefined;
    this.current = undefined;
    const waiting = this.next;
    if (waiting === undefined) return;
    this.next = undefined;
    this.start().then(waiting.resolve, waiting.reject);
  }

  /** The directory is flushed once when the WAL file is first opened here (SQLite would on the WAL's first sync). */
  private flushOnce(): Promise<void> {
    try {
      if (this.fd === undefined) {
        this.fd = openSync(this.walFile, 'r');
        const dir = openSync(this.dir, 'r');
        try {
          fsyncSync(dir);
        } finally {
          closeSync(dir);
        }
      }
      return this.syncWal(this.fd);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** Waits for the flushes in flight and due, then closes the WAL file. */
  async close(): Promise<void> {
    while (this.inFlight !== undefined) await this.inFlight;
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/**
 * A relaxed commit on a connection left at synchronous = FULL (BATON_SQLITE_SYNC_ON_LOOP=1): NORMAL
 * around it, FULL again after (the safety level may not change inside a transaction).
 */
export function relaxedByPragma(db: Database.Database): RelaxedCommit {
  const normal = db.prepare('PRAGMA synchronous = NORMAL');
  const full = db.prepare('PRAGMA synchronous = FULL');
  return (commit) => {
    normal.run();
    try {
      return commit();
    } finally {
      full.run();
    }
  };
}
