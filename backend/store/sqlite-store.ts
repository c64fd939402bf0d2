import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { MIGRATIONS, type Migration } from './migrations.js';
import type { Store } from './repositories.js';
import {
  SqliteAdminTokens,
  SqliteCommands,
  SqliteConsoles,
  SqliteMeta,
  SqliteOperators,
  SqlitePolicies,
  SqliteRevocations,
  SqliteSessions,
} from './sqlite-repositories.js';
import { SqliteEvents } from './sqlite-events.js';
import { SqliteAdminRepository } from './admin-repositories.js';
import { SqliteCheckpoints } from './sqlite-checkpoints.js';
import { isDatabaseDamage } from './database-health.js';
import { BatonError } from '../../shared/errors.js';
import { SqliteAuthenticatorModels } from './authenticator-models.js';
import { asyncSqliteStore, type SyncRepositories } from './sqlite-async.js';
import { SqliteEphemeral } from './sqlite-ephemeral.js';

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

export function openSqliteStore(options: SqliteStoreOptions): Store {
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  // mkdir's mode applies only to a directory it creates: an existing one is made private too.
  chmodSync(options.dataDir, 0o700);
  const file = join(options.dataDir, DATABASE_FILE);
  let db: Database.Database | undefined;
  try {
    db = new Database(file);
    chmodSync(file, 0o600); // SQLite gives the -wal and -shm files the same mode
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${options.durability === 'full' ? 'FULL' : 'NORMAL'}`);
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    migrate(db);
    return openedStore(db);
  } catch (cause) {
    db?.close();
    throw unreadable(file, cause);
  }
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

function openedStore(db: Database.Database): Store {
  const repos: SyncRepositories = {
    consoles: new SqliteConsoles(db),
    operators: new SqliteOperators(db),
    sessions: new SqliteSessions(db),
    policies: new SqlitePolicies(db),
    revocations: new SqliteRevocations(db),
    events: new SqliteEvents(db),
    commands: new SqliteCommands(db),
    adminTokens: new SqliteAdminTokens(db),
    admin: new SqliteAdminRepository(db),
    authenticatorModels: new SqliteAuthenticatorModels(db),
    meta: new SqliteMeta(db),
    checkpoints: new SqliteCheckpoints(db),
    ephemeral: new SqliteEphemeral(db),
  };
  return asyncSqliteStore(db, repos, () => {
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
  });
}
