/**
 * Plain SQL on a test backend's database, behind the backend's back, on either engine: what an
 * attacker with write access to the database (or a reader checking what is really stored) does.
 * Statements use `?` placeholders (rewritten to `$1…` for PostgreSQL; do not put a `?` in a string
 * literal) and the table and column names both engines share. PostgreSQL BIGINTs come back as numbers.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { DATABASE_FILE } from '../../backend/store/sqlite-store.js';
import { withDeadline } from './deadline.js';
import { testDatabaseUrl } from './test-database.js';

export interface RawDatabase {
  readonly engine: 'sqlite' | 'postgres';
  /** Runs one or more statements without parameters. */
  exec(sql: string): Promise<void>;
  all<T>(sql: string, ...params: unknown[]): Promise<T[]>;
  get<T>(sql: string, ...params: unknown[]): Promise<T | undefined>;
  /** Runs a statement; resolves with the number of rows it changed. */
  run(sql: string, ...params: unknown[]): Promise<number>;
  close(): Promise<void>;
}

const INT8_OID = 20;

/** Opens the database of the backend on `dataDir` (its PostgreSQL database when the suite runs there). */
export async function openRawDatabase(
  target: { dataDir: string; databaseUrl?: string | undefined },
  options: { readonly?: boolean } = {},
): Promise<RawDatabase> {
  const url = target.databaseUrl ?? (await testDatabaseUrl(target.dataDir));
  if (url === undefined) return sqlite(join(target.dataDir, DATABASE_FILE), options.readonly ?? false);
  const client = new pg.Client({
    connectionString: url,
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID
          ? (value: string) => Number(value)
          : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  await withDeadline(`connecting to PostgreSQL database ${new URL(url).pathname.slice(1)}`, () => client.connect());
  const query = async (sql: string, params: unknown[]) => {
    let n = 0;
    return client.query(
      sql.replace(/\?/g, () => `$${++n}`),
      params,
    );
  };
  return {
    engine: 'postgres',
    exec: async (sql: string) => {
      await client.query(sql); // no parameters: the simple protocol, several statements allowed
    },
    all: async <T>(sql: string, ...params: unknown[]) => (await query(sql, params)).rows as T[],
    get: async <T>(sql: string, ...params: unknown[]) => (await query(sql, params)).rows[0] as T | undefined,
    run: async (sql: string, ...params: unknown[]) => (await query(sql, params)).rowCount ?? 0,
    close: () => client.end(),
  };
}

function sqlite(file: string, readonly: boolean): RawDatabase {
  const db = new Database(file, { readonly });
  const settle = <T>(fn: () => T): Promise<T> => {
    try {
      return Promise.resolve(fn());
    } catch (error) {
      return Promise.reject(error as Error);
    }
  };
  return {
    engine: 'sqlite',
    exec: (sql: string) => settle(() => void db.exec(sql)),
    all: <T>(sql: string, ...params: unknown[]) => settle(() => db.prepare(sql).all(...params) as T[]),
    get: <T>(sql: string, ...params: unknown[]) => settle(() => db.prepare(sql).get(...params) as T | undefined),
    run: (sql: string, ...params: unknown[]) => settle(() => db.prepare(sql).run(...params).changes),
    close: () => settle(() => void db.close()),
  };
}

/**
 * A storage fault on one session's row, real on either engine: a trigger in the backend's own database refuses its
 * update as a full disk would (SQLite: "database or disk is full"; PostgreSQL: SQLSTATE 53100 disk_full). `name`
 * names the trigger (one per test file).
 */
export function sessionWriteFault(db: RawDatabase, name: string) {
  return {
    inject: (sessionId: string): Promise<void> =>
      db.engine === 'sqlite'
        ? db.exec(
            `CREATE TRIGGER ${name} BEFORE UPDATE ON sessions WHEN OLD.id = '${sessionId}'
             BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`,
          )
        : db.exec(
            `CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; END $$;
             CREATE TRIGGER ${name} BEFORE UPDATE ON sessions
             FOR EACH ROW WHEN (OLD.id = '${sessionId}') EXECUTE FUNCTION ${name}();`,
          ),
    heal: (): Promise<void> =>
      db.exec(
        db.engine === 'sqlite' ? `DROP TRIGGER ${name}` : `DROP TRIGGER ${name} ON sessions; DROP FUNCTION ${name}();`,
      ),
  };
}
