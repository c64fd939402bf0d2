/**
 * Which engine the integration suite runs on. `BATON_TEST_DATABASE=postgres` runs every backend a
 * test starts (in process or as a child) on its own database of one throwaway PostgreSQL server,
 * started once per test process on first use (test/helpers/postgres-server.ts) and removed when the
 * process exits; unset or `sqlite`, the embedded SQLite default in the backend's data directory.
 */
import { createDatabase, postgresAvailable, startPostgres, type PostgresServer } from './postgres-server.js';
import pg from 'pg';
import { withDeadline } from './deadline.js';

export type TestEngine = 'sqlite' | 'postgres';

function engineFromEnv(): TestEngine {
  const value = process.env.BATON_TEST_DATABASE ?? 'sqlite';
  if (value === '' || value === 'sqlite') return 'sqlite';
  if (value === 'postgres') return 'postgres';
  throw new Error(`BATON_TEST_DATABASE must be "sqlite" or "postgres", not "${value}"`);
}

export const TEST_ENGINE: TestEngine = engineFromEnv();

/**
 * For `describe(name, { skip: sqliteOnly('why') }, …)`: the reason (printed as the skip reason) when
 * the suite runs on PostgreSQL, false on SQLite. Only for tests about the embedded SQLite file
 * itself (its damage, its pragmas, the data-directory lock that guards it).
 */
export function sqliteOnly(why: string): false | string {
  return TEST_ENGINE === 'sqlite' ? false : `SQLite only: ${why}`;
}

/** Creating or dropping a database takes well under a second on an idle server; a loaded one gets far more. */
export const DATABASE_WAIT_MS = 60_000;
/** initdb and a start: seconds normally; startPostgres bounds each step at 60 s and tries four ports. */
const POSTGRES_START_MS = 150_000;

let server: Promise<PostgresServer> | undefined;
/** Database per data directory: a backend restarted on the same directory finds its data again. */
const databases = new Map<string, Promise<string>>();
let created = 0;

function postgres(): Promise<PostgresServer> {
  if (server === undefined) {
    const available = postgresAvailable();
    if (!available.ok) {
      throw new Error(`BATON_TEST_DATABASE=postgres, but PostgreSQL cannot run here: ${available.reason}`);
    }
    // fsync off: the suite's server is thrown away with the process, and a killed server process (not
    // the kernel) loses nothing the kernel already has; the tests that kill or restart PostgreSQL start
    // their own server with the defaults (test/helpers/cluster-harness.ts and others).
    // Bounded as a whole (initdb and each start attempt are bounded by startPostgres itself, 60 s each).
    server = withDeadline(
      'starting the throwaway PostgreSQL server',
      () => startPostgres({ settings: { fsync: 'off' } }),
      POSTGRES_START_MS,
    );
  }
  return server;
}

/**
 * The database URL for a backend on `dataDir`: undefined on SQLite; on PostgreSQL a database of its
 * own, created the first time this data directory is seen (every later backend on it shares it).
 */
export function testDatabaseUrl(dataDir: string): Promise<string | undefined> {
  if (TEST_ENGINE === 'sqlite') return Promise.resolve(undefined);
  let url = databases.get(dataDir);
  if (url === undefined) {
    const name = `baton_test_${process.pid}_${++created}`;
    url = postgres().then((s) =>
      withDeadline(`creating PostgreSQL database ${name}`, () => createDatabase(s.url, name), DATABASE_WAIT_MS),
    );
    databases.set(dataDir, url);
  }
  return url;
}

/** Drops the database of a data directory the test is done with (nothing on SQLite). */
export async function dropTestDatabase(dataDir: string): Promise<void> {
  const url = databases.get(dataDir);
  if (url === undefined || server === undefined) return;
  databases.delete(dataDir);
  const name = new URL(await url).pathname.slice(1);
  const client = new pg.Client({ connectionString: (await server).url });
  await withDeadline(
    `dropping PostgreSQL database ${name}`,
    async () => {
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
    DATABASE_WAIT_MS,
  );
}

/** The throwaway server, for tests that stop or restart PostgreSQL itself (it is started if needed). */
export function testPostgresServer(): Promise<PostgresServer> {
  if (TEST_ENGINE !== 'postgres') throw new Error('testPostgresServer: the suite runs on SQLite');
  return postgres();
}
