/**
 * Moves an embedded SQLite deployment to PostgreSQL (`npm run migrate-store -- --from <dataDir> --to postgres://…`):
 * reads the data directory's database READ-ONLY (holding its lock, so no backend starts on it meanwhile),
 * migrates the target to the same schema version (an empty one only: a target holding data is refused
 * before anything is written), copies every table in foreign-key order in batches inside ONE PostgreSQL
 * transaction (all or nothing: ids, event cursors and revocation epochs kept, sequences and the revocation
 * epoch counter set after the copy), then verifies the copy: rows and a sha256 content digest per table
 * (canonical rows in primary-key order, computed on both sides), the revocation epoch counter, every event
 * chain re-walked on the copy by the backend's own EventLog.verifyChain and compared with the same walk on
 * the source, and the newest signed checkpoint's heads found in the copied chains. `verifyOnly` runs only
 * the verification (nothing is written).
 *
 * Files of the data directory that are not in the database (signing keys, the checkpoint log) are listed
 * for IT to copy to every node's data directory; they are never put into PostgreSQL.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import pg from 'pg';
import pino from 'pino';
import { BatonError } from '../../shared/errors.js';
import { acquireDataDirLock, LOCK_FILE, type DataDirLock } from '../data-dir-lock.js';
import { KEY_ENCRYPTION_KEY_ENV, KEY_ENCRYPTION_KEY_FILE, keyEncryptionKeyPath } from '../crypto/key-encryption-key.js';
import { keyRingMetaKey } from '../crypto/key-ring.js';
import { BACKEND_ORIGIN, EventLog } from '../services/event-log.js';
import type { ChainReport } from '../services/event-log.js';
import type { BatonDatabase } from './kysely-schema.js';
import { kyselyStore } from './kysely-store.js';
import { MIGRATIONS } from './migrations.js';
import { migratePostgres, POSTGRES_MIGRATIONS } from './postgres-migrations.js';
import { isPostgresUrl, openPostgresStore, unreachable } from './postgres-store.js';
import type { Store } from './repositories.js';
import { DATABASE_FILE } from './sqlite-store.js';
import { redactedDatabaseUrl } from '../config.js';

export interface MigrateStoreOptions {
  /** The data directory of the embedded deployment (holds baton.db). */
  from: string;
  /** postgres://user@host:port/database (a password is better given as PGPASSWORD or in ~/.pgpass). */
  to: string;
  /** Compare an existing copy with the source; write nothing. */
  verifyOnly?: boolean;
  /** Each line of the report as it is produced (default: none). */
  print?: (line: string) => void;
  /** Rows per INSERT (default: as many as fit 30,000 parameters, at most 500). */
  batchRows?: number;
  /** How long to wait for the target's tables when something else holds them (default 10,000 ms): then refused. */
  lockTimeoutMs?: number;
}

export interface TableSummary {
  table: string;
  sourceRows: number;
  targetRows: number;
  sourceDigest: string;
  targetDigest: string;
  /** The primary key of the first row that differs, when one does. */
  firstDifference?: string;
}

export interface ChainSummary {
  origin: string;
  source: Pick<ChainReport, 'checked' | 'lastSeq' | 'intact' | 'problemCount'>;
  copy: Pick<ChainReport, 'checked' | 'lastSeq' | 'intact' | 'problemCount'> & { problems: ChainReport['problems'] };
}

export interface MigrateStoreResult {
  /** Every check passed. */
  ok: boolean;
  /** copied: this run copied; already-copied: the target was this very copy (verified only); verified: --verify-only. */
  mode: 'copied' | 'already-copied' | 'verified';
  tables: TableSummary[];
  chains: ChainSummary[];
  checkpoints: { rows: number; newestSeq: number | null; headsChecked: number };
  /** The first difference found, in words (when !ok). */
  difference?: string;
  /** Chains already not intact on the source (copied as they are). */
  warnings: string[];
  /** Files in the data directory that are not in the database: IT copies them to every node's data directory. */
  filesToCopy: string[];
  schemaVersion: number;
  /**
   * The revocation epoch counter on each side: the last epoch handed out (the next revocation takes
   * the one after). SQLite keeps it in `sqlite_sequence` (raised past the stored epochs by
   * advance-revocation-epoch after a restore), PostgreSQL in `revocation_epoch`; the copy carries it.
   */
  revocationEpochs: { source: number; copy: number | null };
}

/** Refused before anything was written (exit 2 in the CLI): a running backend, a target with other data, a bad URL. */
export class MigrationRefused extends Error {
  override readonly name = 'MigrationRefused';
}

/** The files SQLite itself owns, and the lock: not copied anywhere. */
const DATABASE_FILES = new Set([
  DATABASE_FILE,
  `${DATABASE_FILE}-wal`,
  `${DATABASE_FILE}-shm`,
  `${DATABASE_FILE}-journal`,
  LOCK_FILE,
]);

interface Column {
  name: string;
  type: 'INTEGER' | 'TEXT' | 'BLOB' | 'OTHER';
}

interface TableInfo {
  name: string;
  columns: Column[];
  /** Primary key columns in key order. */
  pk: string[];
}

const quote = (name: string): string => `"${name.replace(/"/g, '""')}"`;

function columnType(declared: string): Column['type'] {
  const t = declared.toUpperCase();
  if (t === 'INTEGER' || t === 'INT') return 'INTEGER';
  if (t === 'TEXT') return 'TEXT';
  if (t === 'BLOB') return 'BLOB';
  return 'OTHER';
}

/** One value as the digest sees it: the same on both engines whatever the driver's JS type (bigint, string, Buffer). */
function canonicalValue(type: Column['type'], value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Uint8Array) return `b:${Buffer.from(value).toString('hex')}`;
  if (type === 'INTEGER') return `i:${String(value as number | bigint | string)}`;
  if (typeof value === 'string') return `s:${value}`;
  if (typeof value === 'number' || typeof value === 'bigint') return `n:${String(value)}`;
  return `j:${JSON.stringify(value)}`;
}

function canonicalRow(table: TableInfo, row: Record<string, unknown>): string {
  return JSON.stringify(table.columns.map((c) => canonicalValue(c.type, row[c.name])));
}

function describeKey(table: TableInfo, row: Record<string, unknown>): string {
  return table.pk.map((k) => `${k}=${String(row[k] as string)}`).join(', ');
}

/** The tables of the SQLite database, parents before children (foreign keys). */
function sqliteTables(db: Database.Database): TableInfo[] {
  const names = (
    db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
      .all() as { name: string }[]
  ).map((r) => r.name);
  const tables = new Map<string, TableInfo>();
  const parents = new Map<string, Set<string>>();
  for (const name of names) {
    const info = db.prepare(`PRAGMA table_info(${quote(name)})`).all() as {
      name: string;
      type: string;
      pk: number;
    }[];
    const pk = info
      .filter((c) => c.pk > 0)
      .sort((a, b) => a.pk - b.pk)
      .map((c) => c.name);
    if (pk.length === 0) throw new Error(`table ${name} has no primary key: this build cannot copy it`);
    tables.set(name, { name, columns: info.map((c) => ({ name: c.name, type: columnType(c.type) })), pk });
    const fks = db.prepare(`PRAGMA foreign_key_list(${quote(name)})`).all() as { table: string }[];
    parents.set(name, new Set(fks.map((f) => f.table).filter((t) => t !== name)));
  }
  const ordered: TableInfo[] = [];
  const done = new Set<string>();
  const visit = (name: string, path: Set<string>): void => {
    if (done.has(name)) return;
    if (path.has(name)) throw new Error(`foreign keys form a cycle through ${name}`);
    path.add(name);
    for (const parent of parents.get(name) ?? []) if (tables.has(parent)) visit(parent, path);
    path.delete(name);
    done.add(name);
    const table = tables.get(name);
    if (table !== undefined) ordered.push(table);
  };
  for (const name of names) visit(name, new Set());
  return ordered;
}

/**
 * The data directory's files that are not the database: what IT copies to each node. The
 * key-encryption key first (every node needs it to open the signing key rings, ADR 0006); key files
 * already imported into the database (`*.imported`, kept as backups) are not listed.
 */
export function filesOutsideDatabase(dataDir: string): string[] {
  return readdirSync(dataDir)
    .filter((name) => !DATABASE_FILES.has(name) && !name.endsWith('.imported'))
    .filter((name) => {
      try {
        return statSync(join(dataDir, name)).isFile();
      } catch {
        return false;
      }
    })
    .sort((a, b) => Number(b === KEY_ENCRYPTION_KEY_FILE) - Number(a === KEY_ENCRYPTION_KEY_FILE) || (a < b ? -1 : 1));
}

/** Signing key rings sealed in the source database whose key-encryption key is nowhere to be copied: refused. */
function refuseSealedRingsWithoutKek(db: Database.Database, dataDir: string): void {
  const sealed = db.prepare(`SELECT count(*) AS n FROM meta WHERE key LIKE ?`).get(`${keyRingMetaKey('')}%`) as {
    n: number;
  };
  const kek = keyEncryptionKeyPath(dataDir);
  if (sealed.n > 0 && !existsSync(kek)) {
    throw new MigrationRefused(
      `The database in ${dataDir} holds signing key rings sealed under a key-encryption key, but ${kek} does not exist: without it no node could open them (KEY_ENCRYPTION_KEY_MISSING). Restore that file (or set ${KEY_ENCRYPTION_KEY_ENV}) and run this again. Nothing was written.`,
    );
  }
}

function lockHolder(dataDir: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(join(dataDir, LOCK_FILE), 'utf8').trim(), 10);
    if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
    try {
      process.kill(pid, 0);
      return pid;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined;
    }
  } catch {
    return undefined;
  }
}

/**
 * Holds the data directory's lock for the run, so that no backend starts on it while it is read. A
 * directory we may not write (a read-only snapshot) is only checked for a running backend.
 */
function lockSource(dataDir: string, print: (line: string) => void): DataDirLock | undefined {
  try {
    return acquireDataDirLock(dataDir);
  } catch (error) {
    if (error instanceof BatonError && error.code === 'DATA_DIR_LOCKED') {
      throw new MigrationRefused(
        `A Baton backend is running on ${dataDir} (${error.message.replace(/^.*\(pid/, 'pid').replace(/\).*$/, '')}): stop it first, then run this again. Nothing was written.`,
      );
    }
    const holder = lockHolder(dataDir);
    if (holder !== undefined) {
      throw new MigrationRefused(
        `A Baton backend (pid ${holder}) is running on ${dataDir}: stop it first, then run this again. Nothing was written.`,
      );
    }
    print(`note: the lock of ${dataDir} cannot be taken (${(error as Error).message}); no backend runs on it now`);
    return undefined;
  }
}

function openSource(file: string): Database.Database {
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    db.pragma('query_only = ON');
    return db;
  } catch (cause) {
    throw new MigrationRefused(
      `The database ${file} cannot be opened read-only: ${(cause as Error).message}. Nothing was written.`,
    );
  }
}

/** Table → column names of the target's current schema. */
async function targetColumns(client: pg.ClientBase): Promise<Map<string, Set<string>>> {
  const result = await client.query<{ table_name: string; column_name: string }>(
    `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()`,
  );
  const tables = new Map<string, Set<string>>();
  for (const row of result.rows) {
    let columns = tables.get(row.table_name);
    if (columns === undefined) tables.set(row.table_name, (columns = new Set()));
    columns.add(row.column_name);
  }
  return tables;
}

async function targetSchemaVersion(client: pg.ClientBase): Promise<number> {
  const exists = await client.query(
    `SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_migrations'`,
  );
  if (exists.rowCount === 0) return 0;
  const result = await client.query<{ v: number }>('SELECT COALESCE(MAX(version), 0)::int AS v FROM schema_migrations');
  return result.rows[0]?.v ?? 0;
}

/**
 * The source's revocation epoch counter: the last epoch SQLite's AUTOINCREMENT handed out or was moved
 * to (`sqlite_sequence`, which advance-revocation-epoch raises after a restore, above every stored
 * epoch), or the highest stored epoch, whichever is higher: the next revocation takes the one after.
 */
function sourceEpochCounter(db: Database.Database): number {
  const row = db
    .prepare(
      `SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'revocations'), 0),
                  (SELECT COALESCE(MAX(epoch), 0) FROM revocations)) AS e`,
    )
    .get() as { e: number };
  return row.e;
}

/**
 * The target's counter as a node reads it (kysely-revocations.ts `insert`): the `revocation_epoch` row
 * or the highest stored epoch, whichever is higher; null when the row is missing (no node could revoke).
 */
async function targetEpochCounter(client: pg.ClientBase): Promise<number | null> {
  const result = await client.query<{ e: string | null }>(
    `SELECT GREATEST(c.epoch, (SELECT COALESCE(MAX(epoch), 0) FROM revocations))::text AS e
       FROM revocation_epoch c WHERE c.id = 1`,
  );
  const value = result.rows[0]?.e;
  return value === undefined || value === null ? null : Number(value);
}

/** The target's tables (of those the source has) that hold rows. */
async function tablesWithRows(client: pg.ClientBase, tables: TableInfo[]): Promise<string[]> {
  const present = await targetColumns(client);
  const held: string[] = [];
  for (const table of tables) {
    if (!present.has(table.name)) continue;
    const found = await client.query(`SELECT 1 FROM ${quote(table.name)} LIMIT 1`);
    if (found.rowCount !== 0) held.push(table.name);
  }
  return held;
}

/** Rows of a table in primary-key order, a page at a time, on either engine. */
type PageReader = (after: Record<string, unknown> | undefined, limit: number) => Promise<Record<string, unknown>[]>;

function keysetSql(table: TableInfo, placeholder: (i: number) => string, hasAfter: boolean, limit: string): string {
  const columns = table.columns.map((c) => quote(c.name)).join(', ');
  const keys = table.pk.map(quote);
  const where = hasAfter ? ` WHERE (${keys.join(', ')}) > (${table.pk.map((_, i) => placeholder(i)).join(', ')})` : '';
  return `SELECT ${columns} FROM ${quote(table.name)}${where} ORDER BY ${keys.join(', ')} LIMIT ${limit}`;
}

function sqliteReader(db: Database.Database, table: TableInfo): PageReader {
  const first = db.prepare(keysetSql(table, () => '?', false, '?')).safeIntegers(true);
  const next = db.prepare(keysetSql(table, () => '?', true, '?')).safeIntegers(true);
  return (after, limit) =>
    Promise.resolve(
      (after === undefined ? first.all(limit) : next.all(...table.pk.map((k) => after[k]), limit)) as Record<
        string,
        unknown
      >[],
    );
}

function postgresReader(client: pg.ClientBase, table: TableInfo): PageReader {
  const n = table.pk.length;
  const first = keysetSql(table, (i) => `$${i + 1}`, false, '$1');
  const next = keysetSql(table, (i) => `$${i + 1}`, true, `$${n + 1}`);
  return async (after, limit) => {
    const result =
      after === undefined
        ? await client.query<Record<string, unknown>>(first, [limit])
        : await client.query<Record<string, unknown>>(next, [...table.pk.map((k) => toParam(after[k])), limit]);
    return result.rows;
  };
}

function toParam(value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

/** Counts and digests both sides in one pass in primary-key order; the first row that differs is named. */
interface Pending {
  line: string;
  row: Record<string, unknown>;
}

async function compareTable(table: TableInfo, source: PageReader, target: PageReader): Promise<TableSummary> {
  const PAGE = 2000;
  const hashes = { source: createHash('sha256'), target: createHash('sha256') };
  const counts = { source: 0, target: 0 };
  let firstDifference: string | undefined;
  // Page both sides in lock step, comparing row by row until the first difference; then only count and hash.
  const sides = {
    source: {
      reader: source,
      after: undefined as Record<string, unknown> | undefined,
      done: false,
      pending: [] as Pending[],
    },
    target: {
      reader: target,
      after: undefined as Record<string, unknown> | undefined,
      done: false,
      pending: [] as Pending[],
    },
  };
  const read = async (name: 'source' | 'target') => {
    const side = sides[name];
    const page = await side.reader(side.after, PAGE);
    for (const row of page) {
      const line = canonicalRow(table, row);
      hashes[name].update(`${line}\n`);
      counts[name]++;
      if (firstDifference === undefined) side.pending.push({ line, row });
    }
    if (page.length < PAGE) side.done = true;
    else side.after = page.at(-1);
  };
  while (!sides.source.done || !sides.target.done) {
    for (const name of ['source', 'target'] as const) {
      const side = sides[name];
      const other = sides[name === 'source' ? 'target' : 'source'];
      if (!side.done && (side.pending.length < PAGE || other.done || firstDifference !== undefined)) await read(name);
    }
    if (firstDifference !== undefined) continue;
    const s = sides.source.pending;
    const t = sides.target.pending;
    const pairs = Math.min(s.length, t.length);
    for (let i = 0; i < pairs && firstDifference === undefined; i++) {
      const a = s[i];
      const b = t[i];
      if (a !== undefined && b !== undefined && a.line !== b.line) {
        const aKey = describeKey(table, a.row);
        const bKey = describeKey(table, b.row);
        firstDifference =
          aKey === bKey
            ? `row ${aKey} differs`
            : `row ${aKey} of the source is not at its place in the copy (${bKey} is)`;
      }
    }
    s.splice(0, pairs);
    t.splice(0, pairs);
    if (firstDifference !== undefined) {
      s.length = 0;
      t.length = 0;
    } else if (
      (sides.source.done && s.length > 0 && t.length === 0 && sides.target.done) ||
      (sides.target.done && t.length > 0 && s.length === 0 && sides.source.done)
    ) {
      const extra = s[0] ?? t[0];
      if (extra !== undefined)
        firstDifference = `row ${describeKey(table, extra.row)} is only in the ${s.length > 0 ? 'source' : 'copy'}`;
    }
  }
  if (firstDifference === undefined) {
    const extra = sides.source.pending[0] ?? sides.target.pending[0];
    if (extra !== undefined) {
      firstDifference = `row ${describeKey(table, extra.row)} is only in the ${sides.source.pending.length > 0 ? 'source' : 'copy'}`;
    }
  }
  return {
    table: table.name,
    sourceRows: counts.source,
    targetRows: counts.target,
    sourceDigest: hashes.source.digest('hex'),
    targetDigest: hashes.target.digest('hex'),
    ...(firstDifference === undefined ? {} : { firstDifference }),
  };
}

/** Copies one table in batches of multi-row INSERTs on the transaction's client. */
async function copyTable(
  db: Database.Database,
  client: pg.ClientBase,
  table: TableInfo,
  batchRows: number | undefined,
): Promise<number> {
  const columns = table.columns.map((c) => c.name);
  const perBatch = Math.max(1, Math.min(batchRows ?? 500, Math.floor(30_000 / columns.length)));
  // Pages in primary-key order (some tables are WITHOUT ROWID).
  const read = sqliteReader(db, table);
  let after: Record<string, unknown> | undefined;
  let copied = 0;
  for (;;) {
    const rows = await read(after, perBatch);
    if (rows.length === 0) return copied;
    const params: unknown[] = [];
    const tuples = rows.map((row) => {
      const marks = columns.map((c) => {
        params.push(toParam(row[c]));
        return `$${params.length}`;
      });
      return `(${marks.join(', ')})`;
    });
    await client.query(
      `INSERT INTO ${quote(table.name)} (${columns.map(quote).join(', ')}) VALUES ${tuples.join(', ')}`,
      params,
    );
    copied += rows.length;
    after = rows.at(-1);
    if (rows.length < perBatch) return copied;
  }
}

/** Sets every sequence a copied table draws from (identity columns, nextval defaults) past the copied values. */
async function resetSequences(client: pg.ClientBase, tables: TableInfo[]): Promise<string[]> {
  const names = tables.map((t) => t.name);
  const result = await client.query<{
    table_name: string;
    column_name: string;
    column_default: string | null;
    is_identity: string;
  }>(
    `SELECT table_name, column_name, column_default, is_identity FROM information_schema.columns
      WHERE table_schema = current_schema() AND table_name = ANY($1)
        AND (is_identity = 'YES' OR column_default LIKE 'nextval(%')`,
    [names],
  );
  const reset: string[] = [];
  for (const row of result.rows) {
    let sequence: string | null;
    if (row.is_identity === 'YES') {
      const owned = await client.query<{ s: string | null }>('SELECT pg_get_serial_sequence($1, $2) AS s', [
        quote(row.table_name),
        row.column_name,
      ]);
      sequence = owned.rows[0]?.s ?? null;
    } else {
      sequence = /nextval\('([^']+)'/.exec(row.column_default ?? '')?.[1] ?? null;
    }
    if (sequence === null) continue;
    const max = await client.query<{ m: string | null }>(
      `SELECT MAX(${quote(row.column_name)})::text AS m FROM ${quote(row.table_name)}`,
    );
    const value = max.rows[0]?.m ?? null;
    if (value === null) continue;
    await client.query('SELECT setval($1::regclass, $2::bigint, true)', [sequence, value]);
    reset.push(`${row.table_name}.${row.column_name} → next ${BigInt(value) + 1n}`);
  }
  return reset;
}

interface ChainHeads {
  heads?: Record<string, { lastSeq?: unknown; lastHash?: unknown }>;
}

/**
 * The move. Throws MigrationRefused when it refuses before writing; otherwise returns the result, `ok`
 * false with the first difference named when the verification found one.
 */
export async function migrateStore(options: MigrateStoreOptions): Promise<MigrateStoreResult> {
  const print = options.print ?? (() => undefined);
  const dataDir = resolve(options.from);
  const url = options.to.trim();
  if (!isPostgresUrl(url)) {
    throw new MigrationRefused(
      `--to must be a postgres://user@host:port/database URL (given: ${redactedDatabaseUrl(url)})`,
    );
  }
  const file = join(dataDir, DATABASE_FILE);
  if (!existsSync(file)) {
    throw new MigrationRefused(`There is no ${DATABASE_FILE} in ${dataDir}: --from must be a backend's data directory`);
  }
  const lock = lockSource(dataDir, print);
  const cleanups: (() => Promise<void> | void)[] = [() => lock?.release()];
  try {
    const db = openSource(file);
    cleanups.push(() => {
      db.close();
    });
    const sourceVersion = db.pragma('user_version', { simple: true }) as number;
    refuseSealedRingsWithoutKek(db, dataDir);
    const buildVersion = MIGRATIONS.at(-1)?.version ?? 0;
    const pgBuildVersion = POSTGRES_MIGRATIONS.at(-1)?.version ?? 0;
    if (buildVersion !== pgBuildVersion) {
      throw new Error(`this build's SQLite (${buildVersion}) and PostgreSQL (${pgBuildVersion}) schemas differ`);
    }
    if (sourceVersion !== buildVersion) {
      throw new MigrationRefused(
        sourceVersion < buildVersion
          ? `The database in ${dataDir} is at schema version ${sourceVersion}, this build at ${buildVersion}: start this build's backend on it once (it migrates), stop it, then run this again. Nothing was written.`
          : `The database in ${dataDir} is at schema version ${sourceVersion}, newer than this build (${buildVersion}): use the build that wrote it. Nothing was written.`,
      );
    }
    // One read transaction: every read below sees the same snapshot.
    db.exec('BEGIN');
    const tables = sqliteTables(db);
    print(`Source: ${file} (schema version ${sourceVersion}, opened read-only, ${tables.length} tables)`);

    const client = new pg.Client({
      connectionString: url,
      connectionTimeoutMillis: 10_000,
      application_name: 'baton-migrate-store',
    });
    client.on('error', () => undefined); // a dropped connection fails the query in progress
    try {
      await client.connect();
    } catch (cause) {
      throw new MigrationRefused(`${unreachable(url, cause).message}. Nothing was written.`);
    }
    cleanups.push(() => client.end().catch(() => undefined));

    if (options.verifyOnly !== true) {
      // Refused before anything is written: a target newer than this build, or one at an older schema that
      // already holds data (not a copy of this source, which is at this build's version: left as it is).
      const found = await targetSchemaVersion(client);
      if (found > buildVersion) {
        throw new MigrationRefused(
          `The target is at schema version ${found}, newer than this build (${buildVersion}): give an empty database. Nothing was written.`,
        );
      }
      if (found < buildVersion) {
        const held = await tablesWithRows(client, tables);
        if (held.length > 0) {
          throw new MigrationRefused(
            `The target database already holds data at schema version ${found} (${held.slice(0, 3).join(', ')}${held.length > 3 ? ', …' : ''}), so it is not a copy of this source (version ${sourceVersion}): give an empty database. Nothing was written.`,
          );
        }
        await migratePostgres(client);
      }
    }
    const targetVersion = await targetSchemaVersion(client);
    print(`Target: ${redactedDatabaseUrl(url)} (schema version ${targetVersion})`);
    if (targetVersion !== sourceVersion) {
      throw new MigrationRefused(
        `The target is at schema version ${targetVersion}, the source at ${sourceVersion}${options.verifyOnly === true ? ': it is not a copy made by this build' : ''}.`,
      );
    }
    const columns = await targetColumns(client);
    for (const table of tables) {
      const have = columns.get(table.name);
      const missing = have === undefined ? ['(the table)'] : table.columns.filter((c) => !have.has(c.name));
      if (missing.length > 0) {
        throw new MigrationRefused(
          `The target's table ${table.name} lacks ${missing.map((c) => (typeof c === 'string' ? c : c.name)).join(', ')}`,
        );
      }
    }

    let mode: MigrateStoreResult['mode'] = options.verifyOnly === true ? 'verified' : 'copied';
    /** Digests already computed (a target that holds this very copy), not computed twice. */
    let compared: TableSummary[] | undefined;
    if (options.verifyOnly !== true) {
      const started = Date.now();
      await client.query('BEGIN');
      try {
        await client.query('SET LOCAL statement_timeout = 0');
        // No node may write while the copy runs, and the emptiness check holds until the commit. A node
        // already running on the target holds locks: say so instead of waiting for it.
        const lockTimeoutMs = options.lockTimeoutMs ?? 10_000;
        await client.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.floor(lockTimeoutMs))}`);
        try {
          await client.query(`LOCK TABLE ${tables.map((t) => quote(t.name)).join(', ')} IN ACCESS EXCLUSIVE MODE`);
        } catch (error) {
          if ((error as { code?: unknown }).code === '55P03') {
            throw new MigrationRefused(
              `The target database is in use (its tables could not be locked within ${lockTimeoutMs / 1000} s): stop every node and tool using it, then run this again. Nothing was written.`,
            );
          }
          throw error;
        }
        await client.query('SET LOCAL lock_timeout = 0');
        const occupied: string[] = [];
        for (const table of tables) {
          const count = await client.query<{ n: string }>(`SELECT COUNT(*)::text AS n FROM ${quote(table.name)}`);
          const n = Number(count.rows[0]?.n ?? 0);
          if (n > 0) occupied.push(`${table.name} (${n} rows)`);
        }
        if (occupied.length > 0) {
          await client.query('ROLLBACK');
          mode = 'already-copied';
        } else {
          for (const table of tables) {
            const n = await copyTable(db, client, table, options.batchRows);
            print(`  copied ${table.name}: ${n} rows`);
          }
          for (const line of await resetSequences(client, tables)) print(`  sequence ${line}`);
          // The revocation epoch counter: SQLite's may be above every stored epoch (advanced after a
          // restore); a node on the copy must not hand those epochs out again. Never lowered.
          const counter = sourceEpochCounter(db);
          await client.query(
            `INSERT INTO revocation_epoch (id, epoch) VALUES (1, $1::bigint)
             ON CONFLICT (id) DO UPDATE SET epoch = GREATEST(revocation_epoch.epoch, excluded.epoch)`,
            [counter],
          );
          print(`  revocation epoch counter → ${counter} (the next revocation takes ${counter + 1})`);
          await client.query('COMMIT');
          print(`Copied ${tables.length} tables in one transaction (${((Date.now() - started) / 1000).toFixed(1)} s)`);
        }
        if (mode === 'already-copied') {
          // Either exactly this copy (then verify it) or other data: refused, nothing written.
          compared = [];
          for (const table of tables) {
            compared.push(await compareTable(table, sqliteReader(db, table), postgresReader(client, table)));
          }
          const other = compared.find((s) => s.sourceDigest !== s.targetDigest || s.sourceRows !== s.targetRows);
          if (other !== undefined) {
            throw new MigrationRefused(
              `The target database already holds data that is not a copy of this source (${occupied.slice(0, 3).join(', ')}${occupied.length > 3 ? ', …' : ''}; first difference in ${other.table}: ${other.firstDifference ?? `${other.sourceRows} rows in the source, ${other.targetRows} in the target`}): give an empty database. Nothing was written.`,
            );
          }
          print('The target already holds exactly this copy: verifying only, nothing written');
        }
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
    }

    // Verification: rows and digests per table.
    const summaries: TableSummary[] = compared ?? [];
    if (compared === undefined) {
      for (const table of tables) {
        summaries.push(await compareTable(table, sqliteReader(db, table), postgresReader(client, table)));
      }
    }
    const result: MigrateStoreResult = {
      ok: true,
      mode,
      tables: summaries,
      chains: [],
      checkpoints: { rows: 0, newestSeq: null, headsChecked: 0 },
      warnings: [],
      filesToCopy: filesOutsideDatabase(dataDir),
      schemaVersion: sourceVersion,
      revocationEpochs: { source: sourceEpochCounter(db), copy: await targetEpochCounter(client) },
    };
    const fail = (difference: string) => {
      if (result.ok) {
        result.ok = false;
        result.difference = difference;
      }
    };
    const width = Math.max(...summaries.map((s) => s.table.length), 5);
    print(`${'table'.padEnd(width)}  ${'rows'.padStart(9)}  sha256 (source = copy)`);
    for (const s of summaries) {
      const same = s.sourceRows === s.targetRows && s.sourceDigest === s.targetDigest;
      print(
        `${s.table.padEnd(width)}  ${String(s.sourceRows).padStart(9)}  ${s.sourceDigest.slice(0, 16)}  ${same ? 'equal' : `DIFFERS: copy has ${s.targetRows} rows, ${s.targetDigest.slice(0, 16)}${s.firstDifference === undefined ? '' : `; ${s.firstDifference}`}`}`,
      );
      if (!same) {
        fail(
          `table ${s.table}: ${s.sourceRows === s.targetRows ? 'content differs' : `${s.sourceRows} rows in the source, ${s.targetRows} in the copy`}${s.firstDifference === undefined ? '' : ` (${s.firstDifference})`}`,
        );
      }
    }

    // The revocation epoch counter: the next revocation on the copy must take the epoch it takes on the source.
    const epochs = result.revocationEpochs;
    if (epochs.copy === epochs.source) {
      print(`Revocation epoch counter: ${epochs.source} on both (the next revocation takes ${epochs.source + 1})`);
    } else {
      const difference =
        epochs.copy === null
          ? `revocation epoch counter: ${epochs.source} on the source, its row (revocation_epoch) is missing on the copy`
          : epochs.copy < epochs.source
            ? `revocation epoch counter: ${epochs.source} on the source, ${epochs.copy} on the copy: the copy would hand out epochs ${epochs.copy + 1}–${epochs.source} again, and a console that saw them would miss those revocations (raise it: advance-revocation-epoch-cli --data-dir <dir> --database <url> --past ${epochs.source}, then verify again)`
            : `revocation epoch counter: ${epochs.source} on the source, ${epochs.copy} on the copy (the copy's is higher: it was moved on after the copy, or the target's was before it)`;
      print(`Revocation epoch counter: DIFFERS (${difference})`);
      fail(difference);
    }

    // Every event chain, re-walked by the backend's own verification on both sides.
    const origins = (
      db.prepare('SELECT origin FROM event_streams UNION SELECT DISTINCT origin FROM events ORDER BY 1').all() as {
        origin: string;
      }[]
    ).map((r) => r.origin);
    if (!origins.includes(BACKEND_ORIGIN)) origins.unshift(BACKEND_ORIGIN);
    const silent = pino({ level: 'silent' });
    const sourceStore = readOnlySqliteStore(file);
    cleanups.push(() => sourceStore.close());
    // Copies whole tables in one transaction: not the request path's 5 s statement timeout.
    const copyStore = await openPostgresStore({
      url,
      poolSize: 2,
      applicationName: 'baton-migrate-store',
      statementTimeoutMs: 30 * 60_000,
    }).catch((cause: unknown) => {
      throw new MigrationRefused(unreachable(url, cause).message);
    });
    cleanups.push(() => copyStore.close());
    const sourceLog = new EventLog(sourceStore, Date.now, silent);
    const copyLog = new EventLog(copyStore, Date.now, silent);
    let intact = 0;
    let walked = 0;
    for (const origin of origins) {
      const [s, c] = [await sourceLog.verifyChain(origin), await copyLog.verifyChain(origin)];
      walked += c.checked;
      result.chains.push({
        origin,
        source: { checked: s.checked, lastSeq: s.lastSeq, intact: s.intact, problemCount: s.problemCount },
        copy: {
          checked: c.checked,
          lastSeq: c.lastSeq,
          intact: c.intact,
          problemCount: c.problemCount,
          problems: c.problems,
        },
      });
      if (c.intact) intact++;
      const same =
        s.checked === c.checked &&
        s.lastSeq === c.lastSeq &&
        s.intact === c.intact &&
        JSON.stringify(s.problems) === JSON.stringify(c.problems);
      if (!same || (!c.intact && s.intact)) {
        const first = c.problems[0];
        fail(
          `event chain ${origin}: ${c.intact ? `${c.checked} events on the copy, ${s.checked} on the source` : `broken on the copy at seq ${first?.seq ?? '?'} (${first?.problem ?? 'problem'}), intact on the source`}`,
        );
        print(`chain ${origin}: DIFFERS on the copy (${JSON.stringify(c.problems.slice(0, 3))})`);
      } else if (!s.intact) {
        const warning = `event chain ${origin} was already not intact on the source (${s.problemCount} findings, e.g. seq ${s.problems[0]?.seq ?? '?'} ${s.problems[0]?.problem ?? ''}); copied as it is`;
        result.warnings.push(warning);
        print(`warning: ${warning}`);
      }
    }
    print(
      `Event chains: ${origins.length} re-walked on the copy with EventLog.verifyChain (${walked} events), ${intact} intact, ${origins.length - intact} with findings the source has too`,
    );

    // Checkpoints: the rows are covered by the digest; the newest one's heads must be in the copied chains.
    const checkpoints = await client.query<{ n: string; seq: string | null; body: string | null }>(
      `SELECT (SELECT COUNT(*) FROM chain_checkpoints)::text AS n, seq::text AS seq, body
         FROM chain_checkpoints ORDER BY seq DESC LIMIT 1`,
    );
    const newest = checkpoints.rows[0];
    result.checkpoints.rows = Number(newest?.n ?? 0);
    if (newest?.body !== undefined && newest.body !== null) {
      result.checkpoints.newestSeq = Number(newest.seq);
      let heads: ChainHeads['heads'] = {};
      try {
        heads = (JSON.parse(newest.body) as ChainHeads).heads ?? {};
      } catch {
        fail(`checkpoint ${newest.seq}: its body is not JSON on the copy`);
      }
      let headsFound = true;
      const sourceHash = db.prepare('SELECT hash FROM events WHERE origin = ? AND seq = ?');
      for (const [origin, head] of Object.entries(heads)) {
        if (typeof head.lastSeq !== 'number' || head.lastSeq === 0) continue;
        const found = await client.query<{ hash: string }>('SELECT hash FROM events WHERE origin = $1 AND seq = $2', [
          origin,
          head.lastSeq,
        ]);
        result.checkpoints.headsChecked++;
        const onSource = sourceHash.get(origin, head.lastSeq) as { hash: string } | undefined;
        if (found.rows[0]?.hash !== head.lastHash) {
          if (onSource?.hash === found.rows[0]?.hash) {
            const warning = `checkpoint ${newest.seq}: the signed head of ${origin} is not in the source either; copied as it is`;
            result.warnings.push(warning);
            print(`warning: ${warning}`);
          } else {
            headsFound = false;
            fail(`checkpoint ${newest.seq}: the signed head of ${origin} (seq ${head.lastSeq}) is not in the copy`);
          }
        }
      }
      print(
        `Checkpoints: ${result.checkpoints.rows} copied; the newest (#${newest.seq}) names ${result.checkpoints.headsChecked} chain heads, ${headsFound ? 'all found in the copy' : 'NOT all found in the copy'}`,
      );
    } else {
      print('Checkpoints: none in the source');
    }
    return result;
  } finally {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch {
        // closing what was opened; the result or the error stands
      }
    }
  }
}

/** The source as a Store for EventLog.verifyChain: Kysely over a read-only connection (no migration, no writes). */
function readOnlySqliteStore(file: string): Store {
  const raw = new Database(file, { readonly: true, fileMustExist: true });
  raw.pragma('query_only = ON');
  const db = new Kysely<BatonDatabase>({ dialect: new SqliteDialect({ database: raw }) });
  return kyselyStore(db, 'sqlite', () => db.destroy());
}
