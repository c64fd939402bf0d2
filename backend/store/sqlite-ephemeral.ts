/**
 * The embedded engine's challenges and nonces, hand-written (they are on every sign-in and every
 * signed request; measured against Kysely on the same file: docs/adr/0005-cluster-storage.md).
 */
import type Database from 'better-sqlite3';
import type { EphemeralRepository, Sync } from './repositories.js';
import type { SyncRunner } from './kysely-store.js';
import type { KyselyContext } from './kysely-schema.js';
import { KyselyEphemeral } from './kysely-revocations.js';
import type { RelaxedCommit } from './sqlite-wal-sync.js';

type Row = { owner: string; value: string; expires_at: number };

/**
 * The hand-written statements, synchronous, on the store's one better-sqlite3 connection: `put` and
 * `take` on `ephemeral` (migration 9), the claims on `ephemeral_claims` (migration 29, one b-tree).
 *
 * **Commits without an fsync.** With `durability: 'full'` every other commit of the store waits for
 * the disk, and a sign-in made six of these (a nonce per signed request, the challenge put and its
 * take): the disk flushes were most of a sign-in's cost. A statement of this class run outside a
 * unit of work commits through `relaxed` instead, without waiting for a flush (WAL mode: atomic and
 * consistent, survives a killed process; only a power loss or an OS crash may roll it back): the
 * store's connection is at synchronous = NORMAL and the write is simply not counted as one to flush
 * (WalSync.relaxed, sqlite-wal-sync.ts), or, with SQLite's fsync on the loop
 * (BATON_SQLITE_SYNC_ON_LOOP=1), NORMAL is set around it and FULL again after. The WAL is
 * sequential: the next durable commit (the sign-in's own unit of work, a failure event) makes these
 * writes durable with it. What a power loss can still take back is a challenge or a nonce written
 * after the last durable commit: a challenge lost is a sign-in to
 * retry; a challenge taken and then restored belonged to a ceremony that committed nothing (a
 * refusal records its event durably, which makes the take durable too); a nonce restored lets a
 * captured signed request be replayed only inside its freshness window and across a power loss, and
 * that request still passes every other check (challenge single use, counter CAS). Inside a unit
 * of work nothing changes: the unit's commit is durable. So a claim whose withdrawal must survive a
 * power loss is taken in a unit (the Shared Signals receiver's release of a `jti` it did not act on,
 * receiver-service.ts: a restored claim would refuse the transmitter's retry as a replay).
 */
export class SqliteEphemeral implements Pick<Sync<EphemeralRepository>, 'put' | 'take' | 'claimOnce' | 'claimMany'> {
  private readonly stmts;
  constructor(
    private readonly db: Database.Database,
    /** With durability 'full', how this class's own commits skip the disk's flush (see above). */
    private readonly relaxed: RelaxedCommit | undefined = undefined,
  ) {
    this.stmts = {
      insert: db.prepare(
        `INSERT INTO ephemeral (kind, key, owner, value, expires_at, created_seq)
         VALUES (?, ?, ?, ?, ?, (SELECT COALESCE(MAX(created_seq), 0) + 1 FROM ephemeral))`,
      ),
      // Everything at or below the owner's (max + 1)-th newest entry: an index seek on
      // (kind, owner, created_seq) that finds nothing while the owner is under the cap (the usual
      // case: 2.7 µs against 17 µs for the NOT IN form, which walked every entry of the owner).
      evict: db.prepare(
        `DELETE FROM ephemeral WHERE kind = ? AND owner = ? AND created_seq <=
           (SELECT created_seq FROM ephemeral WHERE kind = ? AND owner = ? ORDER BY created_seq DESC LIMIT 1 OFFSET ?)`,
      ),
      take: db.prepare('DELETE FROM ephemeral WHERE kind = ? AND key = ? RETURNING owner, value, expires_at'),
      takeClaim: db.prepare(
        `DELETE FROM ephemeral_claims WHERE kind = ? AND key = ? RETURNING '' AS owner, '' AS value, expires_at`,
      ),
      // One b-tree (migration 29): the row is its primary key's entry, no other index to write.
      claim: db.prepare(
        `INSERT INTO ephemeral_claims (kind, key, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (kind, key) DO UPDATE SET expires_at = excluded.expires_at WHERE ephemeral_claims.expires_at <= ?`,
      ),
    };
  }

  /**
   * Runs `fn` (one or more statements) as one commit: inside a unit of work, in its transaction;
   * outside one, in a transaction of its own when it has several statements, committed without an
   * fsync when the store's durability is FULL (see the class comment).
   */
  private commit<T>(fn: () => T, statements: number): T {
    if (this.db.inTransaction) return fn();
    const body = statements > 1 ? this.db.transaction(fn) : fn;
    return this.relaxed === undefined ? body() : this.relaxed(body);
  }

  put(entry: { kind: string; key: string; owner: string; value: string; expiresAt: number }, maxPerOwner?: number) {
    this.commit(
      () => {
        this.stmts.insert.run(entry.kind, entry.key, entry.owner, entry.value, entry.expiresAt);
        if (maxPerOwner !== undefined) {
          this.stmts.evict.run(entry.kind, entry.owner, entry.kind, entry.owner, maxPerOwner);
        }
      },
      maxPerOwner === undefined ? 1 : 2,
    );
  }

  /** A key `put` stored, else one claimed (withdrawing the claim): see KyselyEphemeral.take. */
  take(kind: string, key: string) {
    const row = this.commit(
      () => (this.stmts.take.get(kind, key) ?? this.stmts.takeClaim.get(kind, key)) as Row | undefined,
      2,
    );
    return row && { owner: row.owner, value: row.value, expiresAt: row.expires_at };
  }

  claimOnce(kind: string, key: string, expiresAt: number, now: number): boolean {
    return this.commit(() => this.stmts.claim.run(kind, key, expiresAt, now).changes === 1, 1);
  }

  /** One statement per key, all in one commit. */
  claimMany(kind: string, entries: readonly { key: string; expiresAt: number }[], now: number): Set<string> {
    const distinct = [...new Map(entries.map((e) => [e.key, e])).values()];
    const claimed = new Set<string>();
    if (distinct.length === 0) return claimed;
    this.commit(() => {
      for (const e of distinct)
        if (this.stmts.claim.run(kind, e.key, e.expiresAt, now).changes === 1) claimed.add(e.key);
    }, distinct.length);
    return claimed;
  }
}

/**
 * The Kysely repository with put, take, claimOnce and claimMany replaced by the statements above, run on
 * the same connection, in the unit of work's transaction or holding the connection outside one.
 */
export class HandWrittenSqliteEphemeral extends KyselyEphemeral {
  constructor(
    private readonly sync: SqliteEphemeral,
    private readonly runner: SyncRunner,
    ctx: KyselyContext,
  ) {
    super(ctx);
  }

  override put(
    entry: { kind: string; key: string; owner: string; value: string; expiresAt: number },
    maxPerOwner?: number,
  ): Promise<void> {
    return this.runner.run(() => this.sync.put(entry, maxPerOwner));
  }

  override take(kind: string, key: string): Promise<{ owner: string; value: string; expiresAt: number } | undefined> {
    return this.runner.run(() => this.sync.take(kind, key));
  }

  override claimOnce(kind: string, key: string, expiresAt: number, now: number): Promise<boolean> {
    return this.runner.run(() => this.sync.claimOnce(kind, key, expiresAt, now));
  }

  override claimMany(
    kind: string,
    entries: readonly { key: string; expiresAt: number }[],
    now: number,
  ): Promise<Set<string>> {
    return this.runner.run(() => this.sync.claimMany(kind, entries, now));
  }
}
