/**
 * A throwaway PostgreSQL 15 server for tests and benchmarks (re-exported by test/helpers/postgres-server.ts;
 * it lives here so backend tests can use it too, and nothing in the backend imports it): `initdb` into a temporary directory (as the `postgres`
 * user when we run as root: PostgreSQL refuses root), a free loopback port, a Unix socket in the same
 * directory, removed on `stop()` (and on process exit if a test forgot). Where PostgreSQL is missing,
 * `postgresSkip()` gives the reason to skip with, unless `BATON_REQUIRE_POSTGRES=1` (CI), where the
 * missing engine is a failure instead. docs/development.md says how to install PostgreSQL 15.
 */
import { execFile, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { migratePostgres } from './postgres-migrations.js';

const run = promisify(execFile);

/** BATON_POSTGRES_BIN, else Debian's PostgreSQL 15, else the newest /usr/lib/postgresql/<n>/bin (n ≥ 15). */
export const POSTGRES_BIN = process.env.BATON_POSTGRES_BIN ?? findPostgresBin();

function findPostgresBin(): string {
  const preferred = '/usr/lib/postgresql/15/bin';
  if (existsSync(join(preferred, 'initdb'))) return preferred;
  let versions: number[] = [];
  try {
    versions = readdirSync('/usr/lib/postgresql')
      .map(Number)
      .filter((v) => Number.isInteger(v) && v >= 15 && existsSync(`/usr/lib/postgresql/${v}/bin/initdb`));
  } catch {
    // not installed
  }
  const newest = versions.sort((a, b) => b - a)[0];
  return newest === undefined ? preferred : `/usr/lib/postgresql/${newest}/bin`;
}

export interface PostgresServer {
  /** postgres://baton@127.0.0.1:<port>/postgres (trust authentication, no password). */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** Fast shutdown, then the directory is removed. Idempotent. */
  stop(): Promise<void>;
  /** Stops (fast) if running, and starts again on the same port and data. */
  restart(): Promise<void>;
  /** SIGKILL to the postmaster (read from its pid file): a crash, for fault tests. `restart()` recovers. */
  kill(): Promise<void>;
}

function postgresUid(): { uid: number; gid: number } | undefined {
  const result = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (result.status !== 0 || gid.status !== 0) return undefined;
  return { uid: Number(result.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Whether a throwaway server can be started here, and if not, why. */
export function postgresAvailable(): { ok: true } | { ok: false; reason: string } {
  for (const tool of ['initdb', 'pg_ctl', 'postgres']) {
    if (!existsSync(join(POSTGRES_BIN, tool))) {
      return {
        ok: false,
        reason: `PostgreSQL is not installed (${join(POSTGRES_BIN, tool)} is missing; apt-get install postgresql)`,
      };
    }
  }
  if (asRoot) {
    if (postgresUid() === undefined) return { ok: false, reason: 'running as root but there is no postgres user' };
    if (spawnSync('runuser', ['--help']).error) return { ok: false, reason: 'running as root without runuser' };
  }
  return { ok: true };
}

/**
 * For `describe(name, { skip: postgresSkip() }, …)`: false when PostgreSQL can run, else the reason
 * (printed). With BATON_REQUIRE_POSTGRES=1 a missing PostgreSQL throws instead: CI never passes by skipping.
 */
export function postgresSkip(): false | string {
  const available = postgresAvailable();
  if (available.ok) return false;
  if (process.env.BATON_REQUIRE_POSTGRES === '1') {
    throw new Error(`BATON_REQUIRE_POSTGRES=1 but PostgreSQL tests cannot run: ${available.reason}`);
  }
  const reason = `PostgreSQL tests skipped: ${available.reason}`;
  process.stderr.write(`${reason}\n`);
  return reason;
}

async function pgTool(tool: string, args: string[]): Promise<void> {
  const file = join(POSTGRES_BIN, tool);
  const [command, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
  await run(command, argv, { timeout: 60_000 });
}

/** A loopback port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

const live = new Set<string>();
let exitHook = false;
function cleanUpOnExit(): void {
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const dir of live) {
      const file = join(POSTGRES_BIN, 'pg_ctl');
      const args = ['-D', join(dir, 'data'), '-m', 'immediate', 'stop'];
      if (asRoot) spawnSync('runuser', ['-u', 'postgres', '--', file, ...args], { stdio: 'ignore' });
      else spawnSync(file, args, { stdio: 'ignore' });
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

function logTail(dir: string): string {
  try {
    return readFileSync(join(dir, 'log'), 'utf8').trim().split('\n').slice(-5).join(' | ');
  } catch {
    return '(no log)';
  }
}

/** Starts a fresh server (initdb, start); throws with the reason when it cannot. */
export async function startPostgres(options: { settings?: Record<string, string> } = {}): Promise<PostgresServer> {
  const available = postgresAvailable();
  if (!available.ok) throw new Error(available.reason);
  const dir = mkdtempSync(join(tmpdir(), 'baton-pg-'));
  if (asRoot) {
    const ids = postgresUid();
    if (ids) chownSync(dir, ids.uid, ids.gid);
  }
  live.add(dir);
  cleanUpOnExit();
  const data = join(dir, 'data');
  try {
    // --no-sync: a throwaway cluster need not be flushed to disk at creation (saves ~1 s a server here).
    await pgTool('initdb', ['-D', data, '-A', 'trust', '-U', 'baton', '-E', 'UTF8', '--no-locale', '--no-sync']);
  } catch (error) {
    live.delete(dir);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${(error as Error).message}`);
  }
  const extra = Object.entries(options.settings ?? {}).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
  let port = 0;
  const start = async () => {
    const opts = ['-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', ...extra].join(' ');
    await pgTool('pg_ctl', ['-D', data, '-o', opts, '-l', join(dir, 'log'), '-w', '-t', '60', 'start']);
  };
  // A free port can be taken between choosing it and binding it: try a few.
  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    try {
      await start();
      break;
    } catch (error) {
      if (attempt >= 3) {
        live.delete(dir);
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`PostgreSQL did not start: ${(error as Error).message.split('\n')[0]}; log: ${logTail(dir)}`);
      }
    }
  }
  let stopped = false;
  const postmasterPid = (): number | undefined => {
    try {
      const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  };
  const running = (pid: number | undefined): boolean => {
    if (pid === undefined) return false;
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const fastStop = async () => {
    if (!running(postmasterPid())) return;
    await pgTool('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop']);
  };
  return {
    url: `postgres://baton@127.0.0.1:${port}/postgres`,
    port,
    dir,
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        await fastStop();
      } finally {
        live.delete(dir);
        rmSync(dir, { recursive: true, force: true });
      }
    },
    async restart() {
      await fastStop();
      // After a SIGKILL the orphaned backends exit on their own shortly; until then a new postmaster refuses.
      const deadline = Date.now() + 15_000;
      for (;;) {
        try {
          await start();
          return;
        } catch (error) {
          if (Date.now() > deadline) {
            throw new Error(
              `PostgreSQL did not restart: ${(error as Error).message.split('\n')[0]}; log: ${logTail(dir)}`,
            );
          }
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }
    },
    async kill() {
      const pid = postmasterPid();
      if (pid === undefined || !running(pid)) return;
      process.kill(pid, 'SIGKILL');
      const deadline = Date.now() + 5_000;
      while (running(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    },
  };
}

function withDatabase(url: string, name: string): string {
  const next = new URL(url);
  next.pathname = `/${name}`;
  return next.toString();
}

/** Bounds on a maintenance connection: a server that takes the connection and never answers fails, not hangs. */
const CONNECT_TIMEOUT_MS = 15_000;
const QUERY_TIMEOUT_MS = 120_000;

async function onServer(
  url: string,
  fn: (client: pg.Client) => Promise<void>,
  connectTimeoutMs = CONNECT_TIMEOUT_MS,
): Promise<void> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: connectTimeoutMs,
    query_timeout: QUERY_TIMEOUT_MS,
  });
  await client.connect();
  try {
    await fn(client);
  } finally {
    await client.end();
  }
}

const TEMPLATE = 'baton_migrated_template';
const templates = new Map<string, Promise<void>>();

/** A database with Baton's schema already applied, made once per server, to clone (saves ~1 s a database). */
function migratedTemplate(url: string): Promise<void> {
  const key = new URL(url).host;
  let made = templates.get(key);
  if (made === undefined) {
    made = (async () => {
      await onServer(url, async (client) => {
        const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [TEMPLATE]);
        if (exists.rowCount === 0) await client.query(`CREATE DATABASE ${TEMPLATE}`);
      });
      await onServer(withDatabase(url, TEMPLATE), async (client) => {
        await migratePostgres(client);
      });
    })();
    made.catch(() => templates.delete(key));
    templates.set(key, made);
  }
  return made;
}

/**
 * Creates database `name` on the server at `url`; returns the URL of the new database. With
 * `migrated: true` it is a copy of a database Baton's migrations already ran on (faster for tests that
 * do not test the migrations themselves); otherwise it is empty. A server that takes the connection and
 * never answers fails it after `connectTimeoutMs` (15 s by default).
 */
export async function createDatabase(
  url: string,
  name: string,
  options: { migrated?: boolean; connectTimeoutMs?: number } = {},
): Promise<string> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain database name: ${name}`);
  if (options.migrated === true) await migratedTemplate(url);
  await onServer(
    url,
    async (client) => {
      await client.query(`CREATE DATABASE ${name}${options.migrated === true ? ` TEMPLATE ${TEMPLATE}` : ''}`);
    },
    options.connectTimeoutMs,
  );
  return withDatabase(url, name);
}
