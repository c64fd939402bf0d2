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
import { kyselyStore, type RepositoryOverrides } from './kysely-store.js';
import { HandWrittenSqliteEvents, SqliteEvents } from './sqlite-events.js';
import { HandWrittenSqliteEphemeral, SqliteEphemeral } from './sqlite-ephemeral.js';
import { isDatabaseDamage } from './database-health.js';
import { BatonError } from '../../shared/errors.js';

export const DATABASE_FILE = 'baton.db';

export interface SqliteStoreOptions {
  dataDir: string;
  /** FULL: a commit is on disk before it returns (survives power loss); NORMAL: survives kill -9. */
  durability: 'full' | 'normal';
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
  return openSqliteFile(options, (raw) => {
    const events = new SqliteEvents(raw);
    const ephemeral = new SqliteEphemeral(raw, options.durability);
    return {
      events: (runner, ctx) => new HandWrittenSqliteEvents(events, runner, ctx),
      ephemeral: (runner, ctx) => new HandWrittenSqliteEphemeral(ephemeral, runner, ctx),
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
  overrides: (raw: Database.Database) => RepositoryOverrides,
): Store {
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  // mkdir's mode applies only to a directory it creates: an existing one is made private too.
  chmodSync(options.dataDir, 0o700);
  const file = join(options.dataDir, DATABASE_FILE);
  let raw: Database.Database | undefined;
  let repositories: RepositoryOverrides;
  try {
    raw = new Database(file);
    chmodSync(file, 0o600); // SQLite gives the -wal and -shm files the same mode
    raw.pragma('journal_mode = WAL');
    raw.pragma(`synchronous = ${options.durability === 'full' ? 'FULL' : 'NORMAL'}`);
    raw.pragma('foreign_keys = ON');
    raw.pragma('busy_timeout = 5000');
    migrate(raw);
    repositories = overrides(raw);
  } catch (cause) {
    raw?.close();
    throw unreadable(file, cause);
  }
  const db = new Kysely<BatonDatabase>({ dialect: sqliteDialect(raw) });
  let closed: Promise<void> | undefined;
  return kyselyStore(
    db,
    'sqlite',
    () => {
      closed ??= (async () => {
        // Through Kysely, so that it waits for the statement or transaction holding the connection.
        await db.executeQuery(CompiledQuery.raw('PRAGMA wal_checkpoint(TRUNCATE)'));
        await db.destroy();
      })();
      return closed;
    },
    repositories,
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
 * Kysely's SQLite driver, with BEGIN IMMEDIATE: a transaction takes the write lock up front (a unit
 * that reads then writes can never fail to upgrade its lock). Kysely holds its one connection for a
 * whole transaction, so a statement from elsewhere waits for the commit.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
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

function sqliteDialect(raw: Database.Database): KyselyDialect {
  const database = withStatementCache(raw);
  return {
    createAdapter: () => new SqliteAdapter(),
    createDriver: () => new ImmediateSqliteDriver({ database }),
    createIntrospector: (db) => new SqliteIntrospector(db),
    createQueryCompiler: () => new SqliteQueryCompiler(),
  };
}
