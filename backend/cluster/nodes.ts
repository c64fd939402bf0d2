import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

/**
 * The nodes registry: each backend node upserts one heartbeat row, so the admin console can show
 * which nodes are alive and which are stale. A node that lost the database cannot write "I am stale",
 * so a reader judges staleness from the row's age as well (`nodeView`).
 *
 * The table is created by the migrations (the lead adds the DDL below to both migration sets), never
 * by a node at run time.
 */

export interface NodeRecord {
  nodeId: string;
  host: string;
  pid: number;
  /** ms since the epoch. */
  startedAt: number;
  /** The node's last heartbeat (ms since the epoch, its own clock). */
  lastBeat: number;
  /** The node's own judgement at its last beat (freshness.ts). */
  stale: boolean;
  staleSince: number | null;
  staleReason: string | null;
}

export interface NodeRegistry {
  /**
   * Inserts or updates this node's row. Resolves with the database's clock at the write (ms since the
   * epoch), which the node compares with its own (freshness.ts, MAX_CLOCK_SKEW_MS); undefined where the
   * registry has no clock of its own (embedded mode: the database is this process).
   */
  beat(record: NodeRecord): Promise<number | undefined>;
  /** Every row, oldest start first. */
  list(): Promise<NodeRecord[]>;
  /** A node that shuts down cleanly removes its row. */
  remove(nodeId: string): Promise<void>;
  /** Removes rows with no beat since `before` (ms): nodes gone for good. Returns how many. */
  prune(before: number): Promise<number>;
}

/** PostgreSQL DDL for the registry (for the PostgreSQL migration set). */
export const CLUSTER_NODES_DDL_POSTGRES = `CREATE TABLE IF NOT EXISTS cluster_nodes (
  node_id TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  started_at BIGINT NOT NULL,
  last_beat BIGINT NOT NULL,
  stale BOOLEAN NOT NULL DEFAULT FALSE,
  stale_since BIGINT,
  stale_reason TEXT
)`;

/** SQLite DDL for the registry (for the SQLite migration set: one row, the embedded node). */
export const CLUSTER_NODES_DDL_SQLITE = `CREATE TABLE IF NOT EXISTS cluster_nodes (
  node_id TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  started_at INTEGER NOT NULL,
  last_beat INTEGER NOT NULL,
  stale INTEGER NOT NULL DEFAULT 0 CHECK (stale IN (0, 1)),
  stale_since INTEGER,
  stale_reason TEXT
) STRICT`;

/** What a node needs to know about itself to beat. */
export interface NodeIdentity {
  nodeId: string;
  host: string;
  pid: number;
  startedAt: number;
}

/** A node id unique across restarts and hosts: host, pid and a random suffix (a restarted node is a new node). */
export function newNodeId(host = hostname(), pid = process.pid): string {
  const safeHost = host.replace(/[^A-Za-z0-9.-]/g, '-').slice(0, 100) || 'host';
  return `${safeHost}-${pid}-${randomBytes(4).toString('hex')}`;
}

export function thisNode(nodeId: string, startedAt: number): NodeIdentity {
  return { nodeId, host: hostname(), pid: process.pid, startedAt };
}

interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
}

interface NodeRow {
  node_id: string;
  host: string;
  pid: number;
  started_at: string | number;
  last_beat: string | number;
  stale: boolean;
  stale_since: string | number | null;
  stale_reason: string | null;
}

/** The registry on PostgreSQL through `pg` (a Pool or a Client). */
export class PostgresNodeRegistry implements NodeRegistry {
  constructor(private readonly db: Queryable) {}

  async beat(record: NodeRecord): Promise<number | undefined> {
    const result = await this.db.query(
      `INSERT INTO cluster_nodes (node_id, host, pid, started_at, last_beat, stale, stale_since, stale_reason)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (node_id) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid, started_at = EXCLUDED.started_at,
         last_beat = EXCLUDED.last_beat, stale = EXCLUDED.stale, stale_since = EXCLUDED.stale_since,
         stale_reason = EXCLUDED.stale_reason
       RETURNING (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS database_now`,
      [
        record.nodeId,
        record.host,
        record.pid,
        record.startedAt,
        record.lastBeat,
        record.stale,
        record.staleSince,
        record.staleReason,
      ],
    );
    const row = result.rows[0] as { database_now: number | string } | undefined;
    return row === undefined ? undefined : Number(row.database_now);
  }

  async list(): Promise<NodeRecord[]> {
    const result = await this.db.query(
      `SELECT node_id, host, pid, started_at, last_beat, stale, stale_since, stale_reason
       FROM cluster_nodes ORDER BY started_at, node_id`,
    );
    return (result.rows as NodeRow[]).map((row) => ({
      nodeId: row.node_id,
      host: row.host,
      pid: Number(row.pid),
      startedAt: Number(row.started_at),
      lastBeat: Number(row.last_beat),
      stale: row.stale,
      staleSince: row.stale_since === null ? null : Number(row.stale_since),
      staleReason: row.stale_reason,
    }));
  }

  async remove(nodeId: string): Promise<void> {
    await this.db.query('DELETE FROM cluster_nodes WHERE node_id = $1', [nodeId]);
  }

  async prune(before: number): Promise<number> {
    const result = (await this.db.query('DELETE FROM cluster_nodes WHERE last_beat < $1', [before])) as {
      rowCount?: number | null;
    };
    return result.rowCount ?? 0;
  }
}

/** The registry of embedded mode: one process, one node, nothing to share. */
export class MemoryNodeRegistry implements NodeRegistry {
  private readonly rows = new Map<string, NodeRecord>();

  beat(record: NodeRecord): Promise<number | undefined> {
    this.rows.set(record.nodeId, { ...record });
    return Promise.resolve(undefined);
  }

  list(): Promise<NodeRecord[]> {
    return Promise.resolve(
      [...this.rows.values()]
        .sort((a, b) => a.startedAt - b.startedAt || a.nodeId.localeCompare(b.nodeId))
        .map((row) => ({ ...row })),
    );
  }

  remove(nodeId: string): Promise<void> {
    this.rows.delete(nodeId);
    return Promise.resolve();
  }

  prune(before: number): Promise<number> {
    let removed = 0;
    for (const [id, row] of this.rows) {
      if (row.lastBeat < before) {
        this.rows.delete(id);
        removed++;
      }
    }
    return Promise.resolve(removed);
  }
}

export type NodeState = 'live' | 'stale' | 'silent';

export interface NodeView extends NodeRecord {
  /** `live`; `stale` (the node said so); `silent` (no beat for longer than the bound: down, or cut off from the database). */
  state: NodeState;
  /** ms since its last beat, by the reader's clock. */
  silentMs: number;
}

/** How the admin console shows a row: a node that stopped beating is as stale as one that says it is. */
export function nodeView(record: NodeRecord, now: number, staleAfterMs: number): NodeView {
  const silentMs = Math.max(0, now - record.lastBeat);
  const state: NodeState = silentMs > staleAfterMs ? 'silent' : record.stale ? 'stale' : 'live';
  return { ...record, state, silentMs };
}
