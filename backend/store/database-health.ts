import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

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
