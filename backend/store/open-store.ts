/**
 * Chooses the engine: PostgreSQL (the cluster engine) when the database URL is a postgres:// or
 * postgresql:// URL, else the embedded SQLite store in `dataDir` (the default, what `npm start` runs).
 */
import { BatonError } from '../../shared/errors.js';
import type { Store } from './repositories.js';
import { openSqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
import { describeDatabaseUrl, isPostgresUrl, openPostgresStore, type PostgresStoreOptions } from './postgres-store.js';

export interface OpenStoreOptions extends SqliteStoreOptions {
  /** `--database` / BATON_DATABASE_URL: a postgres:// URL selects PostgreSQL; empty or absent, embedded SQLite. */
  databaseUrl?: string | undefined;
  /** PostgreSQL only: connections in this node's pool (default 10). */
  poolSize?: number | undefined;
  /** PostgreSQL only: idle pooled connection errors (logged by the caller; the pool recovers by itself). */
  onPoolError?: PostgresStoreOptions['onPoolError'];
}

export async function openStore(options: OpenStoreOptions): Promise<Store> {
  const url = options.databaseUrl?.trim();
  if (url === undefined || url === '') {
    return openSqliteStore({ dataDir: options.dataDir, durability: options.durability });
  }
  if (!isPostgresUrl(url)) {
    throw new BatonError(
      'DATABASE_UNREACHABLE',
      `The database URL ${describeDatabaseUrl(url)} is not supported: use postgres://user@host:port/database, or leave it unset for the embedded SQLite store`,
    );
  }
  return openPostgresStore({
    url,
    ...(options.poolSize === undefined ? {} : { poolSize: options.poolSize }),
    ...(options.onPoolError === undefined ? {} : { onPoolError: options.onPoolError }),
  });
}
