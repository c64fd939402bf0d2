import type Database from 'better-sqlite3';
import type { EphemeralRepository, Sync } from './repositories.js';

type Row = { owner: string; value: string; expires_at: number };

/** Challenges and nonces in the embedded store (migration 9). */
export class SqliteEphemeral implements Sync<EphemeralRepository> {
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
      sweep: db.prepare('DELETE FROM ephemeral WHERE expires_at <= ?'),
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

  sweep(now: number): number {
    return this.stmts.sweep.run(now).changes;
  }
}
