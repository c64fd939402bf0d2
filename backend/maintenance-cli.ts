/**
 * What the maintenance commands (rotate-key-cli.ts, advance-revocation-epoch-cli.ts) share: the store of a
 * data directory or of the PostgreSQL database named, and how a failure ends them.
 */
import { BatonError } from '../shared/errors.js';
import { acquireDataDirLock, type DataDirLock } from './data-dir-lock.js';
import { openStore } from './store/open-store.js';
import type { Store } from './store/repositories.js';

/**
 * Runs `work` on the store of `dataDir`, or of the PostgreSQL database at `databaseUrl` (else
 * BATON_DATABASE_URL). Embedded SQLite has one process per data directory, so the backend must be
 * stopped: the directory's lock is taken first (DATA_DIR_LOCKED while it runs).
 */
export async function withMaintenanceStore<T>(
  dataDir: string,
  databaseUrl: string | undefined,
  work: (store: Store) => Promise<T>,
): Promise<T> {
  const url = databaseUrl ?? process.env.BATON_DATABASE_URL;
  const embedded = url === undefined || url.trim() === '';
  const lock: DataDirLock | undefined = embedded ? acquireDataDirLock(dataDir) : undefined;
  try {
    const store = await openStore({ dataDir, durability: 'full', databaseUrl: url });
    try {
      return await work(store);
    } finally {
      await store.close();
    }
  } finally {
    lock?.release();
  }
}

/** Runs a maintenance command: a failure ends it with one line on stderr (the code first) and exit code 1. */
export function runMaintenance(main: () => Promise<void>): void {
  main().catch((error: unknown) => {
    const line = error instanceof BatonError ? `${error.code}: ${error.message}` : String(error);
    process.stderr.write(`${line}\n`);
    process.exit(1);
  });
}
