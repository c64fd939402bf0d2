/**
 * The cluster engine: the Kysely store on a PostgreSQL pool (`pg`). Every node opens its own pool on
 * the same database; the schema is migrated once whatever the number of nodes starting together.
 */
import { Kysely, PostgresDialect, type PostgresPool } from 'kysely';
import pg from 'pg';
import { BatonError } from '../../shared/errors.js';
import type { Store } from './repositories.js';
import type { BatonDatabase } from './kysely-schema.js';
import { kyselyStore } from './kysely-store.js';
import { migratePostgres } from './postgres-migrations.js';
import { QUERY_TIMED_OUT, lagAwareClient, waitForClient, withReadTimeout } from './read-timeout.js';

export interface PostgresStoreOptions {
  /** postgres://user[:password]@host[:port]/database[?sslmode=…] */
  url: string;
  /** Connections in this node's pool (default 10). */
  poolSize?: number;
  /** How long to wait for a connection before failing (default 3000 ms): a down server is an error, not a hang. */
  connectTimeoutMs?: number;
  /**
   * The server cancels a statement (a lock wait included) after this long (default 5000 ms), and the
   * client gives up on an answer 1 s later (a server that stopped answering, a dropped network):
   * a request fails within seconds with DATABASE_UNREACHABLE instead of hanging; a transaction left
   * idle twice as long (a node stopped inside a unit) is ended by the server. Tools that copy whole
   * tables (migrate-store) raise it.
   */
  statementTimeoutMs?: number;
  /** Shown in pg_stat_activity (default "baton"). */
  applicationName?: string;
  /** Errors of idle pooled connections (the server restarted, the network dropped); the pool replaces them. */
  onPoolError?: (error: Error) => void;
  /**
   * Named prepared statements for the statements the node runs again and again (default true): the
   * server parses and plans each once per connection instead of on every execution. Turn off behind a
   * pooler that cannot keep them (PgBouncer in transaction mode before 1.21).
   */
  preparedStatements?: boolean;
}

const INT8_OID = 20;
const DEFAULT_CONNECT_TIMEOUT_MS = 3_000;
const DEFAULT_STATEMENT_TIMEOUT_MS = 5_000;
/** Migrations may rewrite big tables, and a node waits for another's under the advisory lock. */
const MIGRATION_STATEMENT_TIMEOUT_MS = 10 * 60_000;

/** BIGINT (int8) comes back as a JS number (ms timestamps, epochs, cursors), for this pool only: never the global parser. */
function parseInt8(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new Error(`database: integer ${value} is outside the safe range`);
  return n;
}
const typeParsers: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary'): unknown =>
    oid === INT8_OID && format !== 'binary'
      ? parseInt8
      : (pg.types.getTypeParser(oid, format) as unknown)) as pg.CustomTypesConfig['getTypeParser'],
};

/** The URL as it may be shown: scheme, user, host, port and database, never the password. */
export function describeDatabaseUrl(url: string): string {
  try {
    const parsed = new URL(url);
    const user = parsed.username === '' ? '' : `${decodeURIComponent(parsed.username)}@`;
    return `${parsed.protocol}//${user}${parsed.host}${parsed.pathname}`;
  } catch {
    return '(an unparsable database URL)';
  }
}

export function isPostgresUrl(url: string | undefined): url is string {
  return url !== undefined && /^postgres(ql)?:\/\//i.test(url);
}

/** One line, no password, stable code: what the CLI prints (and exits 1) when the database cannot be reached. */
export function unreachable(url: string, cause: unknown): BatonError {
  const code = typeof cause === 'object' && cause !== null ? (cause as { code?: unknown }).code : undefined;
  const message = (cause instanceof Error ? cause.message : String(cause)).split('\n')[0] ?? '';
  const password = safePassword(url);
  const reason = password === '' ? message : message.split(password).join('***');
  return new BatonError(
    'DATABASE_UNREACHABLE',
    `PostgreSQL at ${describeDatabaseUrl(url)} cannot be reached: ${reason}${typeof code === 'string' ? ` [${code}]` : ''}`,
    { cause },
  );
}

function safePassword(url: string): string {
  try {
    return decodeURIComponent(new URL(url).password);
  } catch {
    return '';
  }
}

/**
 * A pool with this store's settings (BIGINT as numbers, idle errors handled). Its waits for a connection are
 * bounded only through `failFast` (`waitForClient`): not for use on its own.
 */
function createPool(options: PostgresStoreOptions): pg.Pool {
  let parsed: URL;
  try {
    parsed = new URL(options.url);
  } catch (cause) {
    throw new BatonError('DATABASE_UNREACHABLE', `The database URL is not a valid postgres:// URL`, { cause });
  }
  if (!/^postgres(ql)?:$/i.test(parsed.protocol) || (parsed.hostname === '' && !parsed.searchParams.has('host'))) {
    throw new BatonError(
      'DATABASE_UNREACHABLE',
      `The database URL ${describeDatabaseUrl(options.url)} is not a postgres://user@host/database URL`,
    );
  }
  const statementTimeout = options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS;
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize ?? 10,
    // `connectionTimeoutMillis` off: pg's timers judge on the first tick after a freeze. A new connection is
    // bounded by `lagAwareClient`, the wait for a pooled one by `failFast`'s connect (both lag-aware).
    connectionTimeoutMillis: 0,
    Client: lagAwareClient(options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS),
    idleTimeoutMillis: 30_000,
    application_name: options.applicationName ?? 'baton',
    types: typeParsers,
    // A server that stops answering must give an error within seconds, not a hang: a connection is
    // had within 3 s or not at all, the server cancels a statement after 5 s (a lock wait included),
    // the client gives up 1 s later (`failFast`'s read timeout, not pg's `query_timeout`; it never
    // reuses that connection), TCP keepalive probes an idle peer after 10 s, and a transaction left
    // open by a node that froze (a paused VM) is ended by the server after 10 s (twice the statement
    // timeout): it may hold the backend's chain head, which every node's sign-in waits for. A healthy
    // unit never idles that long: its statements run back to back (it was 30 s, for no stated reason).
    statement_timeout: statementTimeout,
    idle_in_transaction_session_timeout: statementTimeout * 2,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  });
  // Without a listener, an idle connection's error (server restart) would crash the process.
  pool.on('error', (error) => options.onPoolError?.(error));
  // pg-pool listens for errors only on idle clients: a client checked out for a unit of work when the
  // server goes away would emit 'error' with no listener and crash the node. Every client gets one.
  pool.on('connect', (client) => client.on('error', (error) => options.onPoolError?.(error)));
  return pool;
}

/**
 * Opens the store on PostgreSQL: connects (a DATABASE_UNREACHABLE BatonError if it cannot), applies
 * the migrations under the advisory lock, and returns the Kysely store; `close()` ends the pool.
 */
export async function openPostgresStore(options: PostgresStoreOptions): Promise<Store> {
  const pool = createPool(options);
  // Migrations on a connection of their own, without the request path's short timeouts.
  const client = new pg.Client({
    connectionString: options.url,
    connectionTimeoutMillis: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    application_name: options.applicationName ?? 'baton',
    types: typeParsers,
    statement_timeout: MIGRATION_STATEMENT_TIMEOUT_MS,
    keepAlive: true,
  });
  client.on('error', (error) => options.onPoolError?.(error));
  try {
    await client.connect();
  } catch (cause) {
    await client.end().catch(() => undefined);
    await pool.end().catch(() => undefined);
    throw unreachable(options.url, cause);
  }
  try {
    await migratePostgres(client);
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  } finally {
    await client.end().catch(() => undefined);
  }
  const db = new Kysely<BatonDatabase>({
    dialect: new PostgresDialect({
      pool: failFast(pool, {
        prepared: options.preparedStatements ?? true,
        connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
        readTimeoutMs: (options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS) + 1_000,
      }),
    }),
  });
  let closed: Promise<void> | undefined;
  return kyselyStore(db, 'postgres', () => (closed ??= db.destroy()));
}

/**
 * A prepared statement the server can no longer use on this connection: its result type changed
 * under it (another node migrated the table, `0A000`), or it is gone (`26000`). The connection is
 * destroyed when released (the next one prepares afresh). Outside a transaction the statement is run
 * again at once, unnamed, on the same connection; inside one the transaction is aborted, so the unit
 * of work fails once (the request's error) and the next one runs on a fresh connection.
 */
const STALE_STATEMENT = new Set(['0A000', '26000']);
const BEGIN = /^\s*(begin|start\s+transaction)\b/i;
const END = /^\s*(commit|rollback|end|abort)\s*;?\s*$/i;
const COMMIT = /^\s*(commit|end)\s*;?\s*$/i;

/**
 * A `pg_notify(channel, payload)` that need not go on its own: inside a transaction on a pool of
 * `openPostgresStore`, it is sent in the same round trip as the transaction's COMMIT
 * (`SELECT pg_notify('…', '…'); commit` as one simple query, its two values as escaped literals),
 * one round trip fewer per unit of work that publishes on the cluster bus. The server delivers a
 * NOTIFY at COMMIT and drops it at ROLLBACK either way, so nothing else changes: a NOTIFY that fails
 * leaves the transaction aborted, the COMMIT after it is not run and the unit of work rolls back.
 * Anywhere else (outside a transaction, another client) it is an ordinary statement of that text.
 */
export const NOTIFY_WITH_COMMIT = 'SELECT pg_notify($1, $2) /* with the commit */';

/**
 * Which statement texts run as named prepared statements. Parse and plan are most of PostgreSQL's
 * CPU for the small statements of a sign-in or an acknowledgement; a named statement is parsed once
 * per connection and, after a few executions, may keep a generic plan. A text is named the second
 * time it is seen (a one-off — a long IN list, an odd batch size — never is), only data statements
 * with parameters (no DDL, no BEGIN/COMMIT/SET), and at most PER_CONNECTION per connection (the
 * server keeps every one until the connection closes). Names are process-wide, one per text.
 */
class StatementNames {
  static readonly MAX_TEXTS = 4_096;
  static readonly PER_CONNECTION = 512;
  static readonly #PREPARABLE = /^\s*(select|insert|update|delete|with)\b/i;
  readonly #names = new Map<string, string>();
  #seenOnce = new Set<string>();

  /** The name for this text, or undefined: run it unnamed. */
  nameFor(text: string, parameterCount: number): string | undefined {
    const known = this.#names.get(text);
    if (known !== undefined) return known;
    if (parameterCount === 0 || !StatementNames.#PREPARABLE.test(text)) return undefined;
    if (!this.#seenOnce.has(text)) {
      if (this.#seenOnce.size >= StatementNames.MAX_TEXTS) this.#seenOnce = new Set();
      this.#seenOnce.add(text);
      return undefined;
    }
    if (this.#names.size >= StatementNames.MAX_TEXTS) return undefined;
    this.#seenOnce.delete(text);
    const name = `baton_${this.#names.size + 1}`;
    this.#names.set(text, name);
    return name;
  }
}

/**
 * The pool as Kysely uses it, with two changes. A query gets no answer within `readTimeoutMs` fails
 * (`withReadTimeout`), and the connection it ran on (the server stopped answering) then refuses every
 * further query at once and is destroyed when released, never reused: without it the ROLLBACK after the
 * timeout would queue behind the unanswered query and wait as long again before the request could fail.
 * And statements run again and again are named prepared statements (`StatementNames`) unless `prepared`
 * is false.
 */
function failFast(
  pool: pg.Pool,
  options: { prepared: boolean; readTimeoutMs: number; connectTimeoutMs: number },
): PostgresPool {
  const { prepared, readTimeoutMs, connectTimeoutMs } = options;
  const guarded = new WeakMap<pg.PoolClient, pg.PoolClient>();
  const names = prepared ? new StatementNames() : undefined;
  const guard = (client: pg.PoolClient): pg.PoolClient => {
    let broken: Error | undefined;
    /** Destroy rather than reuse when released (its prepared statements are stale), still usable until then. */
    let stale: Error | undefined;
    let inTransaction = false;
    /** NOTIFYs of the open transaction waiting for its COMMIT (NOTIFY_WITH_COMMIT), as literal statements. */
    let withCommit: string[] = [];
    /** Names this connection has prepared (the server keeps them until it closes). */
    const preparedHere = new Set<string>();
    const wrapper = Object.create(client) as pg.PoolClient;
    const query = (...args: unknown[]): unknown => {
      if (broken !== undefined) return Promise.reject(broken);
      const [text, values] = args;
      if (typeof text === 'string') {
        if (text === NOTIFY_WITH_COMMIT && inTransaction && Array.isArray(values) && values.length === 2) {
          const [channel, payload] = values as unknown[];
          if (typeof channel === 'string' && typeof payload === 'string') {
            withCommit.push(`SELECT pg_notify(${client.escapeLiteral(channel)}, ${client.escapeLiteral(payload)})`);
            return Promise.resolve({ command: 'SELECT', rowCount: 1, rows: [{ pg_notify: '' }], fields: [] });
          }
        }
        if (BEGIN.test(text)) {
          inTransaction = true;
          withCommit = [];
        } else if (END.test(text)) {
          inTransaction = false;
          const notifies = withCommit;
          withCommit = [];
          if (notifies.length > 0 && COMMIT.test(text)) {
            // One simple query (no parameters): the NOTIFYs, then the COMMIT; its answer is the COMMIT's.
            const sent = withReadTimeout(
              client.query(`${notifies.join('; ')}; ${text}`) as unknown as Promise<unknown>,
              readTimeoutMs,
            );
            return sent.then(
              (results: unknown): unknown => (Array.isArray(results) ? (results.at(-1) as unknown) : results),
              (error: unknown) => {
                if (error instanceof Error && QUERY_TIMED_OUT.test(error.message)) broken = error;
                throw error;
              },
            );
          }
        }
      }
      let name: string | undefined;
      if (typeof text === 'string' && names !== undefined) {
        if (BEGIN.test(text) || END.test(text)) {
          // Neither is ever named.
        } else if (stale === undefined && Array.isArray(values) && args.length === 2) {
          name = names.nameFor(text, values.length);
          if (name !== undefined && !preparedHere.has(name)) {
            if (preparedHere.size >= StatementNames.PER_CONNECTION) name = undefined;
            else preparedHere.add(name);
          }
        }
      }
      const retryable = name !== undefined && !inTransaction;
      const sent =
        name === undefined
          ? (client.query as (...a: unknown[]) => unknown)(...args)
          : client.query({ name, text: text as string, values: values as unknown[] });
      if (!(sent instanceof Promise)) return sent; // a cursor (stream)
      const result = withReadTimeout(sent, readTimeoutMs);
      const timedOut = (error: unknown): never => {
        if (error instanceof Error && QUERY_TIMED_OUT.test(error.message)) broken = error;
        throw error;
      };
      return result.catch((error: unknown) => {
        if (error instanceof Error && QUERY_TIMED_OUT.test(error.message)) broken = error;
        const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
        if (name === undefined || typeof code !== 'string' || !STALE_STATEMENT.has(code)) throw error;
        stale = error as Error;
        if (retryable)
          return withReadTimeout(client.query(text as string, values as unknown[]), readTimeoutMs).catch(timedOut);
        throw error;
      });
    };
    Object.defineProperty(wrapper, 'query', { value: query });
    wrapper.release = (destroy?: Error | boolean) => {
      // Released before its transaction ended (a BEGIN that failed, a ROLLBACK never sent): handed out
      // again, its server would run the next borrower's statements inside that transaction. Destroyed,
      // its server rolls the transaction back when the connection closes.
      const open = inTransaction ? new Error('Released inside a transaction') : undefined;
      inTransaction = false;
      withCommit = [];
      // Kysely always says whether it discards the connection (`release(false)` when it does not):
      // a connection that stopped answering, holds stale prepared statements or an open transaction is
      // destroyed anyway.
      client.release(destroy === true || destroy instanceof Error ? destroy : (broken ?? stale ?? open));
    };
    return wrapper;
  };
  return {
    connect: async () => {
      const client = await waitForClient(pool, connectTimeoutMs);
      let wrapper = guarded.get(client);
      if (wrapper === undefined) {
        wrapper = guard(client);
        guarded.set(client, wrapper);
      }
      return wrapper;
    },
    end: () => pool.end(),
  };
}
