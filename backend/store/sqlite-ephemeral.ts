/**
 * The embedded engine's challenges and nonces, hand-written (they are on every sign-in and every
 * signed request; measured against Kysely on the same file: docs/adr/0005-cluster-storage.md).
 */
import type Database from 'better-sqlite3';
import type { EphemeralRepository, Sync } from './repositories.js';
import type { SyncRunner } from './kysely-store.js';
import type { KyselyContext } from './kysely-schema.js';
import { KyselyEphemeral } from './kysely-revocations.js';

type Row = { owner: string; value: string; expires_at: number };

/** The hand-written statements, synchronous, on the store's one better-sqlite3 connection (migration 9). */
export class SqliteEphemeral implements Pick<Sync<EphemeralRepository>, 'put' | 'take' | 'claimOnce'> {
  private readonly stmts;
  constructor(private readonly db: Database.Database) {
    this.stmts = {
      insert: db.prepare(
        `INSERT INTO ephemeral (kind, key, owner, value, expires_at, created_seq)
         VALUES (?, ?, ?, ?, ?, (SELECT COALESCE(MAX(created_seq), 0) + 1 FROM ephemeral))`,
      ),
      evict: db.prepare(
        `DELETE FROM ephemeral WHERE kind = ? AND owner = ? AND created_seq NOT IN
           (SELECT created_seq FROM ephemeral WHERE kind = ? AND owner = ? ORDER BY created_seq DESC LIMIT ?)`,
      ),
      take: db.prepare('DELETE FROM ephemeral WHERE kind = ? AND key = ? RETURNING owner, value, expires_at'),
      claim: db.prepare(
        `INSERT INTO ephemeral (kind, key, owner, value, expires_at, created_seq)
         VALUES (?, ?, '', '', ?, (SELECT COALESCE(MAX(created_seq), 0) + 1 FROM ephemeral))
         ON CONFLICT (kind, key) DO UPDATE SET expires_at = excluded.expires_at, created_seq = excluded.created_seq
         WHERE ephemeral.expires_at <= ?`,
      ),
    };
  }

  put(entry: { kind: string; key: string; owner: string; value: string; expiresAt: number }, maxPerOwner?: number) {
    this.stmts.insert.run(entry.kind, entry.key, entry.owner, entry.value, entry.expiresAt);
    if (maxPerOwner !== undefined) {
      this.stmts.evict.run(entry.kind, entry.owner, entry.kind, entry.owner, maxPerOwner);
    }
  }

  take(kind: string, key: string) {
    const row = this.stmts.take.get(kind, key) as Row | undefined;
    return row && { owner: row.owner, value: row.value, expiresAt: row.expires_at };
  }

  claimOnce(kind: string, key: string, expiresAt: number, now: number): boolean {
    return this.stmts.claim.run(kind, key, expiresAt, now).changes === 1;
  }
}

/**
 * The Kysely repository with put, take and claimOnce replaced by the statements above, run on
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
}
