/**
 * One implementation of the storage seam over both dialects (Kysely): `kyselyStore()` builds the
 * `Store` over a Kysely instance; `openKyselySqliteStore()` opens it on the embedded SQLite file
 * (better-sqlite3 through Kysely's SQLite dialect); postgres-store.ts opens it on a PostgreSQL pool.
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
import type { Store } from './repositories.js';
import type { BatonDatabase, Dialect, KyselyContext } from './kysely-schema.js';
import { KyselyConsoles } from './kysely-consoles.js';
import { KyselyOperators } from './kysely-operators.js';
import { KyselyAdminTokens, KyselyCommands, KyselyMeta, KyselyPolicies, KyselySessions } from './kysely-sessions.js';
import { KyselyEphemeral, KyselyRevocations } from './kysely-revocations.js';
import { KyselyCheckpoints, KyselyEvents } from './kysely-events.js';
import { KyselyAdmin } from './kysely-admin.js';
import { KyselyAuthenticatorModels } from './kysely-models.js';
import { DATABASE_FILE, migrate, type SqliteStoreOptions } from './sqlite-store.js';

const handles = new WeakMap<Store, Kysely<BatonDatabase>>();

/**
 * The Kysely instance behind a Kysely store: the pool (or the SQLite connection) for a store, the
 * transaction for a transaction-bound `tx`; undefined for another engine (the better-sqlite3 store).
 * For what must run on the same connection as the unit of work, e.g. a NOTIFY sent at its COMMIT
 * (`kyselyTransaction(kyselyOf(tx))` in backend/cluster/bus.ts).
 */
export function kyselyOf(store: Store): Kysely<BatonDatabase> | undefined {
  return handles.get(store);
}

/**
 * The `Store` over `db`. `transaction(fn)` is Kysely's `db.transaction().execute()`: `fn` gets a store
 * bound to that transaction (commit when it resolves, rollback when it throws); `transaction` called
 * on that store runs inline, in the same transaction.
 */
export function kyselyStore(db: Kysely<BatonDatabase>, dialect: Dialect, close: () => Promise<void>): Store {
  const build = (handle: Kysely<BatonDatabase>, inTransaction: boolean): Store => {
    const ctx: KyselyContext = { db: handle, dialect, inTransaction };
    const self: Store = {
      consoles: new KyselyConsoles(ctx),
      operators: new KyselyOperators(ctx),
      sessions: new KyselySessions(ctx),
      policies: new KyselyPolicies(ctx),
      revocations: new KyselyRevocations(ctx),
      events: new KyselyEvents(ctx),
      commands: new KyselyCommands(ctx),
      adminTokens: new KyselyAdminTokens(ctx),
      admin: new KyselyAdmin(ctx),
      authenticatorModels: new KyselyAuthenticatorModels(ctx),
      meta: new KyselyMeta(ctx),
      checkpoints: new KyselyCheckpoints(ctx),
      ephemeral: new KyselyEphemeral(ctx),
      engine: dialect,
      transaction: <T>(fn: (tx: Store) => Promise<T>): Promise<T> =>
        inTransaction ? fn(self) : db.transaction().execute((trx) => fn(build(trx, true))),
      close: inTransaction ? () => Promise.reject(new Error('close() called on a transaction')) : close,
    };
    handles.set(self, handle);
    return self;
  };
  return build(db, false);
}

/** Kysely's SQLite driver, with BEGIN IMMEDIATE: a transaction takes the write lock up front, as sqlite-async.ts does. */
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

/**
 * The Kysely store on the embedded SQLite file (same file, pragmas and migrations as openSqliteStore):
 * what the contract tests compare with PostgreSQL. The default embedded engine stays openSqliteStore.
 */
export function openKyselySqliteStore(options: SqliteStoreOptions): Store {
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  chmodSync(options.dataDir, 0o700);
  const file = join(options.dataDir, DATABASE_FILE);
  const raw = new Database(file);
  try {
    chmodSync(file, 0o600);
    raw.pragma('journal_mode = WAL');
    raw.pragma(`synchronous = ${options.durability === 'full' ? 'FULL' : 'NORMAL'}`);
    raw.pragma('foreign_keys = ON');
    raw.pragma('busy_timeout = 5000');
    migrate(raw);
  } catch (error) {
    raw.close();
    throw error;
  }
  const db = new Kysely<BatonDatabase>({ dialect: sqliteDialect(raw) });
  let closed: Promise<void> | undefined;
  return kyselyStore(db, 'sqlite', () => {
    closed ??= (async () => {
      // Through Kysely, so that it waits for the statement or transaction holding the connection.
      await db.executeQuery(CompiledQuery.raw('PRAGMA wal_checkpoint(TRUNCATE)'));
      await db.destroy();
    })();
    return closed;
  });
}
