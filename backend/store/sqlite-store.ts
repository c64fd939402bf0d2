/**
 * The embedded engine (the default, what `npm start` runs): the Kysely repositories (the same ones
 * PostgreSQL runs) on one SQLite file through better-sqlite3, except two hot paths whose hand-written
 * statements measurably win: event ingest and the single-use challenges and nonces
 * (docs/adr/0005-cluster-storage.md).
 */
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  CompiledQuery,
  Kysely,
  SqliteAdapter,
  SqliteDriver,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type DatabaseConnection,
  type Dialect as KyselyDialect,
  type SqliteDatabase,
} from 'kysely';
import { MIGRATIONS, type Migration } from './migrations.js';
import type { Store } from './repositories.js';
import type { BatonDatabase } from './kysely-schema.js';
import { kyselyStore, type RepositoryOverrides, type SyncRunner } from './kysely-store.js';
import { HandWrittenSqliteEvents, SqliteEvents } from './sqlite-events.js';
import { HandWrittenSqliteEphemeral, SqliteEphemeral } from './sqlite-ephemeral.js';
import {
  HandWrittenSqliteConsoles,
  HandWrittenSqliteOperators,
  HandWrittenSqliteSessions,
  SqliteSignInStatements,
} from './sqlite-sign-in.js';
import { isDatabaseDamage } from './database-health.js';
import { SAFETY_PAGES, WalCheckpointer } from './sqlite-wal-sync-checkpointer.js';
import { relaxedByPragma, WalSync, type RelaxedCommit, type SyncWal } from './sqlite-wal-sync.js';
import { BatonError } from '../../shared/errors.js';

export const DATABASE_FILE = 'baton.db';

export interface SqliteStoreOptions {
  dataDir: string;
  /** FULL: a commit is on disk before it returns (survives power loss); NORMAL: survives kill -9. */
  durability: 'full' | 'normal';
  /**
   * With FULL, how a commit reaches the disk: by default the connection stays at synchronous = NORMAL
   * and whatever must be durable waits for an fdatasync of the WAL on libuv's thread pool (`syncWal`),
   * shared by the commits made meanwhile, with the connection free (sqlite-wal-sync.ts). A test passes
   * its own `syncWal`; BATON_SQLITE_SYNC_ON_LOOP=1 (benchmarks' A/B) keeps SQLite's own fsync inside
   * COMMIT, on the event loop.
   */
  syncWal?: SyncWal | undefined;
}

export function migrate(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): number {
  const current = db.pragma('user_version', { simple: true }) as number;
  const latest = migrations.at(-1)?.version ?? 0;
  if (current > latest) {
    throw new Error(`The database is at schema version ${current}, newer than this build knows (${latest})`);
  }
  for (const migration of migrations) {
    if (migration.version <= current) continue;
    db.transaction(() => {
      db.exec(migration.sql);
      db.pragma(`user_version = ${migration.version}`);
    })();
  }
  return latest;
}

/**
 * The embedded store: the Kysely repositories on the SQLite file in `dataDir`, with the ingest path
 * of the event store (SqliteEvents) and the challenges and nonces (SqliteEphemeral) hand-written, on
 * the same connection and in the same transactions.
 */
export function openSqliteStore(options: SqliteStoreOptions): Store {
  return openSqliteFile(options, (raw, relaxed, unit) => {
    const events = new SqliteEvents(raw);
    const ephemeral = new SqliteEphemeral(raw, relaxed);
    // The sign-in path's reads and writes (sqlite-sign-in.ts).
    const signIn = new SqliteSignInStatements(raw);
    // In a unit of work, each hand-written statement first checks that the unit's transaction is still open.
    const guard = (runner: SyncRunner): SyncRunner => (runner.inTransaction ? unit.guarded(runner) : runner);
    return {
      events: (runner, ctx) => new HandWrittenSqliteEvents(events, guard(runner), ctx),
      ephemeral: (runner, ctx) => new HandWrittenSqliteEphemeral(ephemeral, guard(runner), ctx),
      operators: (runner, ctx) => new HandWrittenSqliteOperators(signIn, guard(runner), ctx),
      sessions: (runner, ctx) => new HandWrittenSqliteSessions(signIn, guard(runner), ctx),
      consoles: (runner, ctx) => new HandWrittenSqliteConsoles(signIn, guard(runner), ctx),
    };
  });
}

/**
 * The same file, pragmas and migrations with every repository on Kysely (the event store too): what
 * the contract tests and the ingest benchmark compare the hand-written event store with.
 */
export function openKyselySqliteStore(options: SqliteStoreOptions): Store {
  return openSqliteFile(options, () => ({}));
}

function openSqliteFile(
  options: SqliteStoreOptions,
  /**
   * `relaxed`: how the challenges' and nonces' commits skip the disk's flush with FULL (sqlite-ephemeral.ts);
   * `unit`: what the hand-written statements run in a unit of work check first (UnitTransaction).
   */
  overrides: (raw: Database.Database, relaxed: RelaxedCommit | undefined, unit: UnitTransaction) => RepositoryOverrides,
): Store {
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  // mkdir's mode applies only to a directory it creates: an existing one is made private too.
  chmodSync(options.dataDir, 0o700);
  const file = join(options.dataDir, DATABASE_FILE);
  let raw: Database.Database | undefined;
  let repositories: RepositoryOverrides;
  let walSync: WalSync | undefined;
  let unit: UnitTransaction;
  try {
    raw = new Database(file);
    chmodSync(file, 0o600); // SQLite gives the -wal and -shm files the same mode
    raw.pragma('journal_mode = WAL');
    raw.pragma(`synchronous = ${options.durability === 'full' ? 'FULL' : 'NORMAL'}`);
    raw.pragma('foreign_keys = ON');
    raw.pragma('busy_timeout = 5000');
    migrate(raw); // with FULL, on disk before anything else is written
    if (options.durability === 'full' && process.env.BATON_SQLITE_SYNC_ON_LOOP !== '1') {
      // For the connection's whole life: durability comes from WalSync's flushes (sqlite-wal-sync.ts).
      raw.pragma('synchronous = NORMAL');
      walSync = new WalSync(raw, options.dataDir, `${file}-wal`, options.syncWal);
    }
    const relaxed = walSync?.relaxed ?? (options.durability === 'full' ? relaxedByPragma(raw) : undefined);
    unit = new UnitTransaction(raw);
    repositories = overrides(raw, relaxed, unit);
  } catch (cause) {
    raw?.close();
    throw unreadable(file, cause);
  }
  // WAL checkpoints on a worker thread's connection, off the event loop (sqlite-wal-sync-checkpointer.ts);
  // BATON_SQLITE_CHECKPOINT_ON_LOOP=1 (benchmarks' A/B) keeps SQLite's automatic one on this connection.
  let checkpointer: WalCheckpointer | undefined;
  if (process.env.BATON_SQLITE_CHECKPOINT_ON_LOOP !== '1') {
    checkpointer = new WalCheckpointer(file);
    raw.pragma(`wal_autocheckpoint = ${SAFETY_PAGES}`);
  }
  const dialect = sqliteDialect(raw, unit, walSync);
  const db = new Kysely<BatonDatabase>({ dialect });
  let closed: Promise<void> | undefined;
  return kyselyStore(
    db,
    'sqlite',
    () => {
      closed ??= (async () => {
        try {
          await checkpointer?.close();
          // Through Kysely, so that it waits for the statement or transaction holding the connection.
          await db.executeQuery(CompiledQuery.raw('PRAGMA wal_checkpoint(TRUNCATE)'));
        } finally {
          // Closed even when a flush still owed failed (the checkpoint's hold waits for it).
          await db.destroy();
          await walSync?.close();
        }
      })();
      return closed;
    },
    repositories,
    (fn) => dialect.driver.run(fn),
  );
}

/** One line that says what is wrong with which file, with a stable code (the CLI prints it and exits 1). */
function unreadable(file: string, cause: unknown): unknown {
  const code = typeof cause === 'object' && cause !== null ? (cause as { code?: unknown }).code : undefined;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return cause;
  const what = isDatabaseDamage(cause)
    ? 'is not a SQLite database or is damaged'
    : `cannot be opened (${cause instanceof Error ? cause.message : code})`;
  return new BatonError(
    'DATABASE_UNREADABLE',
    `The database ${file} ${what} [${code}]; restore it from a backup (docs/operations.md)`,
    { cause },
  );
}

/**
 * A unit of work's transaction, which SQLite may end by itself: on a full disk (SQLITE_FULL), an I/O
 * error or no memory left, it rolls back the whole transaction, not only the statement that failed.
 * The unit must then neither go on (its next statements would each commit on their own, and a
 * hand-written one would open a transaction of its own) nor end on a ROLLBACK that fails with
 * SQLITE_ERROR "no transaction is active" (Kysely throws that in place of the unit's error, and the
 * request would be answered INTERNAL, the full disk hidden): the driver sends no ROLLBACK when there is
 * no transaction left, and every later statement of the unit, COMMIT included, is refused with the
 * error that ended it (its code, so the caller still answers STORAGE_UNAVAILABLE: http-kit.ts).
 */
export class UnitTransaction {
  /** A unit's BEGIN IMMEDIATE has run, and neither its COMMIT nor its ROLLBACK yet. */
  private open = false;
  /** The failed statement after which SQLite had ended the open unit's transaction. */
  private endedBy: unknown;

  constructor(private readonly raw: Database.Database) {}

  began(): void {
    this.open = true;
    this.endedBy = undefined;
  }

  ended(): void {
    this.open = false;
    this.endedBy = undefined;
  }

  /** Whether there is a transaction to roll back (SQLite may have rolled it back itself). */
  get active(): boolean {
    return this.raw.inTransaction;
  }

  /** Before each statement of the unit: throws once SQLite has ended the unit's transaction itself. */
  check(): void {
    if (this.open && !this.raw.inTransaction) throw transactionLost(this.endedBy);
  }

  /** After a statement failed: notes whether it ended the unit's transaction. */
  failed(error: unknown): void {
    if (this.open && !this.raw.inTransaction) this.endedBy ??= error;
  }

  /** A unit's runner whose hand-written statements are checked as Kysely's are (`watched`). */
  guarded(runner: SyncRunner): SyncRunner {
    return {
      inTransaction: runner.inTransaction,
      run: <T>(fn: () => T): Promise<T> =>
        runner.run(() => {
          this.check();
          try {
            return fn();
          } catch (error) {
            this.failed(error);
            throw error;
          }
        }),
    };
  }
}

/** What a unit's statement gets once SQLite rolled the unit back: the cause's message and SQLite code. */
function transactionLost(cause: unknown): Error {
  const code = typeof cause === 'object' && cause !== null ? (cause as { code?: unknown }).code : undefined;
  const why = cause instanceof Error ? `"${cause.message}"` : 'a statement failed';
  const error = new Error(`SQLite rolled the unit of work back itself (${why}): nothing of it was stored`, { cause });
  return Object.assign(error, {
    code: typeof code === 'string' && code.startsWith('SQLITE_') ? code : 'SQLITE_ABORT',
  });
}

/**
 * Kysely's SQLite driver, with BEGIN IMMEDIATE: a transaction takes the write lock up front (a unit
 * that reads then writes can never fail to upgrade its lock). Kysely holds its one connection for a
 * whole transaction, so a statement from elsewhere waits for the commit.
 *
 * The connection's lock is this class's (Kysely's own is taken once, at the first acquire, and kept),
 * so that `run` can tell whether anyone holds the connection: the hand-written statements run outside
 * a unit of work (a signed request's console read and nonce claim, the sign-in's reads) then run at
 * once, with no Kysely connection built around them, when it is free.
 *
 * With `walSync` (durability FULL), every hold of the connection that committed something durable
 * (a unit of work, a Kysely statement in autocommit, a `run` whose statements wrote) hands the
 * connection on first and then waits for a WAL flush that started after its commit (sqlite-wal-sync.ts):
 * the next unit runs, and commits into the same flush, while the disk works.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  private connection: Promise<DatabaseConnection> | undefined;
  /** Someone holds the connection (a unit of work, a Kysely statement, a `run` that waited). */
  private held = false;
  /** Waiting for the connection, in order; the holder's release hands it to the first. */
  private readonly waiters: (() => void)[] = [];
  /** The holder's unit committed: the flush it waits for once it has released the connection. */
  private committed: Promise<void> | undefined;
  /** The holder's unit rolled back: its caller gets its own error, without waiting for others' flush. */
  private rolledBack = false;
  /**
   * The holder's last Kysely statement failed: outside a unit, a hold that wrote nothing (SQLite undid the
   * statement; one that kept part of its rows, `OR FAIL`, wrote, and waits for its flush like any write)
   * and ends on a failed statement gives its caller that error at once, not a wait for others' flush.
   */
  private statementFailed = false;

  constructor(
    config: ConstructorParameters<typeof SqliteDriver>[0],
    private readonly unit: UnitTransaction,
    private readonly walSync: WalSync | undefined,
  ) {
    super(config);
  }

  override async acquireConnection(): Promise<DatabaseConnection> {
    this.connection ??= super.acquireConnection().then((connection) => this.watched(connection));
    const connection = await this.connection;
    await this.lock();
    return connection;
  }

  /**
   * The connection, noting whether each statement failed (`statementFailed`), and refusing a unit's
   * statement once SQLite has rolled the unit back itself (UnitTransaction).
   */
  private watched(connection: DatabaseConnection): DatabaseConnection {
    const unit = this.unit;
    const note = (error: unknown) => {
      this.statementFailed = error !== undefined;
      if (error !== undefined) unit.failed(error);
    };
    return {
      async executeQuery<R>(query: CompiledQuery) {
        try {
          unit.check();
          const result = await connection.executeQuery<R>(query);
          note(undefined);
          return result;
        } catch (error) {
          note(error);
          throw error;
        }
      },
      async *streamQuery<R>(query: CompiledQuery, chunkSize?: number) {
        try {
          unit.check();
          yield* connection.streamQuery<R>(query, chunkSize);
          note(undefined);
        } catch (error) {
          note(error);
          throw error;
        }
      },
    };
  }

  private lock(): Promise<void> {
    if (!this.held) {
      this.held = true;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /**
   * The flush the hold that just ended waits for: its unit's, one for what it wrote in autocommit, or,
   * when it wrote nothing, the flush due for what others committed before it (it may have read it).
   * `failed`: a hand-written `run` threw; a Kysely statement that failed is noted by `watched`.
   */
  private owed(failed = false): Promise<void> | undefined {
    const committed = this.committed;
    this.committed = undefined;
    const rolledBack = this.rolledBack;
    this.rolledBack = false;
    const statementFailed = this.statementFailed;
    this.statementFailed = false;
    const relaxed = this.walSync?.tookRelaxed() === true;
    if (committed !== undefined) return committed;
    if (this.walSync === undefined) return undefined;
    if (this.walSync.wrote()) return this.walSync.flushed();
    // A relaxed commit, or a hold that failed or rolled back, waits for nobody else's flush (sqlite-wal-sync.ts).
    return relaxed || failed || statementFailed || rolledBack ? undefined : this.walSync.pending();
  }

  /** Hands the connection to the first waiter, or frees it. */
  private handOver(): void {
    const next = this.waiters.shift();
    if (next === undefined) this.held = false;
    else next(); // handed over: still held
  }

  /** Hands the connection on, then waits for the flush the hold owes. */
  override async releaseConnection(): Promise<void> {
    const flushed = this.owed();
    this.handOver();
    await flushed;
  }

  /**
   * Runs synchronous statements holding the connection: at once when nobody holds it (nothing can
   * come between synchronous statements, so no unit's open transaction is entered), otherwise after
   * whoever holds it and those already waiting. What they wrote is durable before the promise resolves
   * (a relaxed commit aside: sqlite-ephemeral.ts).
   */
  run<T>(fn: () => T): Promise<T> {
    if (!this.held && this.waiters.length === 0) return this.ran(fn, (failed) => this.owed(failed));
    return this.lock().then(() =>
      this.ran(fn, (failed) => {
        const flushed = this.owed(failed);
        this.handOver();
        return flushed;
      }),
    );
  }

  /** `fn`, then the end of its hold (`end` returns the flush owed); a failed `fn` still waits for what it wrote. */
  private ran<T>(fn: () => T, end: (failed?: boolean) => Promise<void> | undefined): Promise<T> {
    let value: T;
    try {
      value = fn();
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      const flushed = end(true);
      return flushed === undefined ? Promise.reject(failure) : flushed.then(() => Promise.reject(failure));
    }
    const flushed = end();
    return flushed === undefined ? Promise.resolve(value) : flushed.then(() => value);
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
    this.unit.began();
  }

  override async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await super.commitTransaction(connection); // refused once SQLite rolled the unit back (then rolled back below)
    this.unit.ended();
    if (this.walSync === undefined) return;
    this.walSync.absorb(); // the unit's rows: the flush below covers them
    this.committed = this.walSync.flushed();
  }

  /** Nothing to send when SQLite already rolled the unit back itself (a full disk: UnitTransaction). */
  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      if (this.unit.active) await super.rollbackTransaction(connection);
    } finally {
      this.unit.ended();
      this.walSync?.absorb(); // rolled back: nothing of it to flush
      this.rolledBack = true;
    }
  }
}

/** Kysely prepares every statement it runs; preparing costs more than running, so prepared statements are kept. */
function withStatementCache(db: Database.Database): SqliteDatabase {
  const cache = new Map<string, Database.Statement>();
  return {
    close: () => db.close(),
    prepare(sql: string) {
      let statement = cache.get(sql);
      if (statement === undefined) {
        statement = db.prepare(sql);
        if (cache.size >= 1000) cache.clear();
        cache.set(sql, statement);
      }
      return statement;
    },
  };
}

function sqliteDialect(
  raw: Database.Database,
  unit: UnitTransaction,
  walSync?: WalSync,
): KyselyDialect & { driver: ImmediateSqliteDriver } {
  const driver = new ImmediateSqliteDriver({ database: withStatementCache(raw) }, unit, walSync);
  return {
    driver,
    createAdapter: () => new SqliteAdapter(),
    createDriver: () => driver,
    createIntrospector: (db) => new SqliteIntrospector(db),
    createQueryCompiler: () => new SqliteQueryCompiler(),
  };
}
