import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { sql } from 'kysely';
import { kyselyOf } from './kysely-store.js';
import type { Store } from './repositories.js';

/** SQLite result codes that mean the file itself is damaged or is not a database. */
const DAMAGE_CODES = new Set(['SQLITE_CORRUPT', 'SQLITE_NOTADB', 'SQLITE_CORRUPT_INDEX', 'SQLITE_CORRUPT_VTAB']);

export function isDatabaseDamage(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && (DAMAGE_CODES.has(code) || code.startsWith('SQLITE_CORRUPT'));
}

export type DatabaseState = 'checking' | 'ok' | 'damaged' | 'unchecked';

/** What `/healthz` shows (public: no file path; the log has it). */
export interface DatabaseHealthView {
  state: DatabaseState;
  /** What the integrity check (or a failed read) reported, at most 20 lines. */
  problems: string[];
  checkedAt: number | null;
}

const MAX_PROBLEMS = 20;

// Runs in a worker thread so a large database does not hold up the start, and can be abandoned.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
let db;
try {
  db = new Database(workerData.file, { readonly: true, fileMustExist: true });
  const rows = db.pragma('quick_check(${MAX_PROBLEMS})');
  parentPort.postMessage({ problems: rows.map((r) => String(Object.values(r)[0])).filter((t) => t !== 'ok') });
} catch (error) {
  parentPort.postMessage({ problems: [String(error && error.code ? error.code + ': ' + error.message : error)] });
} finally {
  if (db) db.close();
}
`;

/**
 * What is known about the database file's integrity: the start-up `PRAGMA quick_check` (run in a
 * worker, abandoned after a time limit) and any damaged page a query ran into since.
 */
export class DatabaseHealth {
  private state: DatabaseState = 'unchecked';
  private problems: string[] = [];
  private checkedAt: number | null = null;
  private worker: Worker | undefined;

  constructor(
    readonly file: string,
    private readonly clock: () => number,
  ) {}

  /** Runs the integrity check; resolves with the state once it is known or abandoned. */
  check(timeoutMs: number): Promise<DatabaseState> {
    this.state = this.state === 'damaged' ? 'damaged' : 'checking';
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { file: this.file, driver } });
    this.worker = worker;
    worker.unref();
    return new Promise((resolve) => {
      const finish = (problems: string[] | undefined) => {
        clearTimeout(timer);
        this.worker = undefined;
        if (problems === undefined) {
          if (this.state === 'checking') this.state = 'unchecked';
        } else if (problems.length > 0) {
          this.markDamaged(problems);
        } else if (this.state === 'checking') {
          this.state = 'ok';
        }
        this.checkedAt = this.clock();
        void worker.terminate();
        resolve(this.state);
      };
      const timer = setTimeout(() => {
        this.problems = [...this.problems, `integrity check abandoned after ${timeoutMs} ms`].slice(0, MAX_PROBLEMS);
        finish(undefined);
      }, timeoutMs);
      timer.unref();
      worker.once('message', (message: { problems: string[] }) => finish(message.problems));
      worker.once('error', (error) => finish([`integrity check failed: ${error.message}`]));
    });
  }

  /** Records damage found by the check or by a query that read a damaged page. */
  markDamaged(problems: string[]): void {
    this.state = 'damaged';
    this.problems = [...new Set([...this.problems, ...problems])].slice(0, MAX_PROBLEMS);
  }

  get damaged(): boolean {
    return this.state === 'damaged';
  }

  view(): DatabaseHealthView {
    return { state: this.state, problems: [...this.problems], checkedAt: this.checkedAt };
  }

  close(): void {
    void this.worker?.terminate();
  }
}

/** Why a database that answers accepts no writes (PostgreSQL). */
export type ReadOnlyReason = 'standby' | 'read-only';

/** The health probe's refusal of a PostgreSQL that answers but accepts no writes (node-health.ts: `database-read-only`). */
export class DatabaseReadOnlyError extends Error {
  constructor(readonly reason: ReadOnlyReason) {
    super(
      reason === 'standby'
        ? 'the database is a standby in recovery (after a failover, does DNS still name the old primary?)'
        : 'the database accepts no writes (transaction_read_only is on: default_transaction_read_only?)',
    );
    this.name = 'DatabaseReadOnlyError';
  }
}

/**
 * The health check's round trip (`GET /healthz`, `/readyz`): one statement through the store (its pool,
 * its connection lock), the path requests take. On PostgreSQL the same statement asks whether the
 * server accepts writes: after a failover a node whose DNS still names the demoted primary (a standby,
 * in recovery), or a database set `default_transaction_read_only`, answers every read and refuses
 * every write (SQLSTATE 25006), so a plain read would keep the node in rotation while each write fails.
 * Rejects with DatabaseReadOnlyError then. (SQLite's file made read-only is not probed: an open file
 * stays writable after a chmod, and a read-only remount fails each write with STORAGE_UNAVAILABLE.)
 */
export async function probeDatabase(store: Store): Promise<void> {
  const db = store.engine === 'postgres' ? kyselyOf(store) : undefined;
  if (db === undefined) {
    await store.meta.get('node-health-probe');
    return;
  }
  const { rows } = await sql<{ standby: boolean; read_only: string }>`
    SELECT pg_is_in_recovery() AS standby, current_setting('transaction_read_only') AS read_only`.execute(db);
  if (rows[0]?.standby === true) throw new DatabaseReadOnlyError('standby');
  if (rows[0]?.read_only === 'on') throw new DatabaseReadOnlyError('read-only');
}
