import type { Sync } from './repositories.js';
import type Database from 'better-sqlite3';
import type { CheckpointRepository, CheckpointRow } from './repositories.js';

type Row = Record<string, unknown>;

function toRow(row: Row): CheckpointRow {
  return {
    seq: Number(row.seq),
    at: Number(row.at),
    kid: String(row.kid),
    body: String(row.body),
    sig: String(row.sig),
  };
}

/** Signed chain-head checkpoints, and the chain heads and event hashes they are compared with. */
export class SqliteCheckpoints implements Sync<CheckpointRepository> {
  private readonly stmts;
  constructor(db: Database.Database) {
    this.stmts = {
      put: db.prepare('INSERT OR REPLACE INTO chain_checkpoints (seq, at, kid, body, sig) VALUES (?, ?, ?, ?, ?)'),
      latest: db.prepare('SELECT * FROM chain_checkpoints ORDER BY seq DESC LIMIT ?'),
      list: db.prepare('SELECT * FROM chain_checkpoints WHERE seq > ? ORDER BY seq LIMIT ?'),
      heads: db.prepare('SELECT origin, last_seq, last_hash FROM event_streams ORDER BY origin'),
      hashAt: db.prepare('SELECT hash FROM events WHERE origin = ? AND seq = ?'),
    };
  }

  put(row: CheckpointRow): void {
    this.stmts.put.run(row.seq, row.at, row.kid, row.body, row.sig);
  }

  latest(limit: number): CheckpointRow[] {
    return (this.stmts.latest.all(limit) as Row[]).map(toRow);
  }

  list(afterSeq: number, limit: number): CheckpointRow[] {
    return (this.stmts.list.all(afterSeq, limit) as Row[]).map(toRow);
  }

  heads(): { origin: string; lastSeq: number; lastHash: string }[] {
    return (this.stmts.heads.all() as Row[]).map((row) => ({
      origin: String(row.origin),
      lastSeq: Number(row.last_seq),
      lastHash: String(row.last_hash),
    }));
  }

  hashAt(origin: string, seq: number): string | undefined {
    const row = this.stmts.hashAt.get(origin, seq) as { hash: unknown } | undefined;
    return row === undefined ? undefined : String(row.hash);
  }
}
