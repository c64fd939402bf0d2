/**
 * WAL checkpoints off the event loop (issue 14's exchange p99, issue 10's ingest; ADR 0009).
 *
 * SQLite's automatic checkpoint runs inside the COMMIT that crosses `wal_autocheckpoint` pages, on
 * the committing connection: with better-sqlite3 that is the event loop, which then copies the WAL's
 * pages into the database file and syncs both files while every request of the process waits. Here a
 * second connection to the same file, in a worker thread, runs `PRAGMA wal_checkpoint(PASSIVE)` every
 * `intervalMs`: a PASSIVE checkpoint never blocks the writer (it copies the frames committed when it
 * starts, without waiting for readers or writers) and keeps its own syncs (the WAL before copying, the
 * database after), so no frame it copies is durable any later than with SQLite's own checkpoint.
 *
 * The store's connection keeps an automatic checkpoint, at a higher threshold (SAFETY_PAGES), only as
 * a bound: a WAL restarts from its start only when a write begins after a checkpoint has copied every
 * frame, which a writer that never pauses may not give the worker. When the WAL reaches that bound the
 * event loop checkpoints what the worker has not copied yet (little) and the WAL restarts.
 *
 * A failed checkpoint (busy, damaged file) is only counted and reported through `onError`: nothing
 * committed depends on it, the next one retries, and the store's own reads report a damaged file.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** The store connection's `wal_autocheckpoint` while the worker checkpoints: a bound, not the schedule. */
export const SAFETY_PAGES = 8000;

/** What the worker runs: plain CommonJS (no loader in a worker started from `eval`). */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
let db;
try {
  db = new Database(workerData.file, { fileMustExist: true, timeout: 0 });
} catch (error) {
  parentPort.postMessage({ kind: 'error', message: String(error && error.message) });
}
let timer;
function checkpoint() {
  if (db === undefined) return parentPort.postMessage({ kind: 'error', message: 'no connection to the database' });
  try {
    const [row] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ kind: 'done', busy: row.busy, log: row.log, checkpointed: row.checkpointed });
  } catch (error) {
    parentPort.postMessage({ kind: 'error', message: String(error && error.message) });
  }
}
parentPort.on('message', (message) => {
  if (message === 'now') return checkpoint();
  if (message === 'close') {
    clearInterval(timer);
    try { if (db !== undefined) db.close(); } catch {}
    parentPort.close();
  }
});
if (db !== undefined) timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.postMessage({ kind: 'ready' });
`;

export interface CheckpointReport {
  /** Frames in the WAL when the checkpoint ran, and how many of them are now in the database file. */
  log: number;
  checkpointed: number;
  busy: number;
}

export interface WalCheckpointerOptions {
  /** How often the worker checkpoints (default 200 ms). */
  intervalMs?: number;
  onError?: (message: string) => void;
  onCheckpoint?: (report: CheckpointReport) => void;
}

export class WalCheckpointer {
  private readonly worker: Worker;
  private closed: Promise<void> | undefined;
  private exited = false;
  /** Checkpoints run and failed by the worker (for tests and benchmarks). */
  runs = 0;
  failures = 0;
  private waiters: ((report: CheckpointReport | Error) => void)[] = [];

  constructor(file: string, options: WalCheckpointerOptions = {}) {
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        file,
        driver: createRequire(import.meta.url).resolve('better-sqlite3'),
        intervalMs: options.intervalMs ?? 200,
      },
      // The worker is tiny: its own heap stays small.
      resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 4 },
    });
    // Not what keeps a process alive while it runs; close() holds it (ref) only while it waits for the thread to end.
    this.worker.unref();
    this.worker.on('message', (message: { kind: string } & Partial<CheckpointReport> & { message?: string }) => {
      if (message.kind === 'done') {
        this.runs++;
        const report = { log: message.log ?? 0, checkpointed: message.checkpointed ?? 0, busy: message.busy ?? 0 };
        options.onCheckpoint?.(report);
        for (const waiter of this.waiters.splice(0)) waiter(report);
      } else if (message.kind === 'error') {
        this.failures++;
        options.onError?.(message.message ?? 'checkpoint failed');
        for (const waiter of this.waiters.splice(0)) waiter(new Error(message.message));
      }
    });
    this.worker.once('exit', () => {
      this.exited = true;
      for (const waiter of this.waiters.splice(0)) waiter(new Error('the checkpointer has stopped'));
    });
    this.worker.on('error', (error) => {
      this.failures++;
      options.onError?.(error.message);
    });
  }

  /** Runs a checkpoint now (besides the schedule) and resolves with its report: tests and benchmarks. */
  checkpointNow(): Promise<CheckpointReport> {
    return new Promise((resolve, reject) => {
      if (this.exited) return reject(new Error('the checkpointer has stopped'));
      this.waiters.push((report) => (report instanceof Error ? reject(report) : resolve(report)));
      this.worker.postMessage('now');
    });
  }

  /** Stops the schedule, closes the worker's connection and waits for the thread to end. */
  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      if (this.exited) return resolve();
      this.worker.ref(); // what is awaited keeps the process alive until the thread has ended
      // A worker that does not end by itself (stuck in a statement) is stopped: a store's close never hangs on it.
      const stop = setTimeout(() => void this.worker.terminate(), 5_000);
      this.worker.once('exit', () => {
        clearTimeout(stop);
        resolve();
      });
      this.worker.postMessage('close');
    });
    return this.closed;
  }
}
