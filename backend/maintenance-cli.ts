/**
 * What the maintenance commands (rotate-key-cli.ts, advance-revocation-epoch-cli.ts) share: their
 * arguments and usage line, the store of a data directory or of the PostgreSQL database named (only an
 * existing Baton database: a mistyped path or URL is refused, nothing is created), and how a failure
 * ends them.
 */
import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import Database from 'better-sqlite3';
import pg from 'pg';
import { BatonError } from '../shared/errors.js';
import { acquireDataDirLock, type DataDirLock } from './data-dir-lock.js';
import { openStore } from './store/open-store.js';
import { describeDatabaseUrl, isPostgresUrl, unreachable } from './store/postgres-store.js';
import type { Store } from './store/repositories.js';
import { DATABASE_FILE } from './store/sqlite-store.js';

/** Exit code of a wrong argument (0 done, 1 failed). */
const USAGE_EXIT = 2;

type StringOptions = Record<string, { type: 'string' }>;

/**
 * The command's options, all strings, strictly (no positionals, no unknown option). A wrong argument,
 * or `check` returning a problem, ends the command with one line on stderr, the problem then `usage`,
 * and exit code 2.
 */
export function parseMaintenanceArgs<O extends StringOptions>(
  argv: readonly string[],
  options: O,
  usage: string,
  check: (values: { [K in keyof O]?: string }) => string | undefined,
): { [K in keyof O]?: string } {
  let values: { [K in keyof O]?: string };
  try {
    const config: ParseArgsConfig = { args: [...argv], options, strict: true, allowPositionals: false };
    values = parseArgs(config).values as { [K in keyof O]?: string };
  } catch (error) {
    return usageExit(error instanceof Error ? error.message : String(error), usage);
  }
  const problem = check(values);
  if (problem !== undefined) return usageExit(problem, usage);
  return values;
}

function usageExit(problem: string, usage: string): never {
  const line = problem.split('\n')[0]?.replace(/[.\s]+$/, '') ?? '';
  process.stderr.write(`${line}. usage: ${usage}\n`);
  process.exit(USAGE_EXIT);
}

/**
 * Refuses (DATABASE_NOT_FOUND) a data directory holding no Baton database, and a PostgreSQL database
 * without Baton's schema: opening them would create one (a new `baton.db`, or every table), and the
 * command would report success on a store nobody uses. Reads only; creates nothing.
 */
export async function requireBatonDatabase(dataDir: string, url: string | undefined): Promise<void> {
  if (url === undefined || url.trim() === '') {
    const file = join(resolve(dataDir), DATABASE_FILE);
    let size: number;
    try {
      const stat = statSync(file);
      size = stat.isFile() ? stat.size : 0;
    } catch {
      size = 0;
    }
    if (size === 0) {
      throw new BatonError(
        'DATABASE_NOT_FOUND',
        `There is no Baton database ${file}: --data-dir must be the data directory of a Baton backend (nothing was changed or created)`,
      );
    }
    let version: number | undefined;
    try {
      const db = new Database(file, { readonly: true, fileMustExist: true });
      try {
        version = db.pragma('user_version', { simple: true }) as number;
      } finally {
        db.close();
      }
    } catch {
      // Not a SQLite database: opening the store says so (DATABASE_UNREADABLE).
    }
    if (version === 0) {
      throw new BatonError(
        'DATABASE_NOT_FOUND',
        `${file} is a SQLite database without Baton's schema: --data-dir must be the data directory of a Baton backend (nothing was changed or created)`,
      );
    }
    return;
  }
  const target = url.trim();
  if (!isPostgresUrl(target)) return; // openStore refuses it, naming what it expected
  const client = new pg.Client({ connectionString: target, connectionTimeoutMillis: 10_000 });
  client.on('error', () => undefined); // a dropped connection fails the query in progress
  try {
    await client.connect();
  } catch (cause) {
    await client.end().catch(() => undefined);
    throw unreachable(target, cause);
  }
  try {
    const table = await client.query<{ present: boolean }>(
      `SELECT to_regclass('schema_migrations') IS NOT NULL AS present`,
    );
    const version =
      table.rows[0]?.present === true
        ? (await client.query<{ v: number }>('SELECT COALESCE(MAX(version), 0)::int AS v FROM schema_migrations'))
            .rows[0]?.v
        : undefined;
    if (version === undefined || version === 0) {
      throw new BatonError(
        'DATABASE_NOT_FOUND',
        `The PostgreSQL database ${describeDatabaseUrl(target)} holds no Baton schema: --database must name the database of a Baton cluster (nothing was changed or created)`,
      );
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Runs `work` on the store of `dataDir`, or of the PostgreSQL database at `databaseUrl` (else
 * BATON_DATABASE_URL), once it is known to hold a Baton database (`requireBatonDatabase`). Embedded
 * SQLite has one process per data directory, so the backend must be stopped: the directory's lock is
 * taken first (DATA_DIR_LOCKED while it runs).
 */
export async function withMaintenanceStore<T>(
  dataDir: string,
  databaseUrl: string | undefined,
  work: (store: Store) => Promise<T>,
): Promise<T> {
  const url = databaseUrl ?? process.env.BATON_DATABASE_URL;
  const embedded = url === undefined || url.trim() === '';
  await requireBatonDatabase(dataDir, url);
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
