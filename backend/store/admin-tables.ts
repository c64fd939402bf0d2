/**
 * The admin console's tables at estate scale (issue 12): one page of consoles, operators, sessions,
 * events or revocations, searched, filtered and sorted, with keyset (cursor) paging.
 *
 * A page is `WHERE <filters> AND (<sort expression>, <id>) > (<last value>, <last id>) ORDER BY
 * <sort expression>, <id> LIMIT n+1`: every sort expression and its tie-breaker have an index of
 * their own (migration 16, written exactly as here), so the thousandth page costs what the first
 * does, whatever the estate's size. No OFFSET anywhere.
 *
 * Filters that name a console or an operator accept an id or the exact name (case-insensitive),
 * resolved to ids first through the name indexes. A search (`q`) is a case-insensitive substring of
 * the names (and the exact id); for sessions and events it is resolved to at most
 * SEARCH_MATCH_CAP consoles and operators, then used as an id filter.
 *
 * The cursor is opaque to the client: base64url of the sort key, the direction and the position,
 * refused (ADMIN_CURSOR_INVALID) if it was made for another table, sort or order.
 */
import type { PolicyAdoption } from '../../shared/http-api.js';
import { sql, type Kysely, type RawBuilder } from 'kysely';
import { BatonError } from '../../shared/errors.js';
import { AssuranceEventSchema, type StoredEvent } from '../../shared/events.js';
import { REVOCATION_KINDS } from '../../shared/protocol.js';
import type { ConsoleRecord, OperatorRecord, RevocationRecord, SessionRecord, Store } from './repositories.js';
import { kyselyOf } from './kysely-store.js';
import { sessionFrom } from './kysely-sessions.js';
import { consoleFrom } from './kysely-consoles.js';
import { operatorFrom } from './kysely-operators.js';
import { num, oneOf, optStr, str, type BatonDatabase, type Row } from './kysely-schema.js';
import { CODE_ID_LENGTH } from './admin-repositories.js';

export const PAGE_LIMIT_MAX = 1000;
export const PAGE_LIMIT_DEFAULT = 50;
/** A search or a name filter on sessions and events stands for at most this many consoles and operators. */
export const SEARCH_MATCH_CAP = 200;

export type SortOrder = 'asc' | 'desc';
export type TableName =
  | 'consoles'
  | 'operators'
  | 'sessions'
  | 'events'
  | 'revocations'
  | 'admin_api_tokens'
  | 'services'
  | 'break_glass_grants'
  | 'ssf_streams'
  | 'ssf_transmitters'
  | 'policy_versions'
  | 'operator_enrolment_codes'
  | 'credentials';

/** Each table's sort keys (the allow-list) and the SQL expression each sorts on; the first is the default. */
export const SORT_KEYS = {
  consoles: {
    name: "LOWER(COALESCE(name, ''))",
    site: "LOWER(COALESCE(site, ''))",
    channel: 'channel',
    enrolled: 'enrolled_at',
    lastSeen: 'COALESCE(last_seen_at, 0)',
  },
  operators: { name: 'LOWER(display_name)', created: 'created_at' },
  sessions: { started: 'started_at', expires: 'expires_at' },
  events: { received: 'cursor' },
  revocations: { epoch: 'epoch' },
  // A few hundred at most (issued one by one by people): no index of their own, a page reads them all.
  admin_api_tokens: {
    created: 'created_at',
    expires: 'expires_at',
    lastUsed: 'COALESCE(last_used_at, 0)',
    label: 'LOWER(label)',
  },
  // The smaller tables (migration 23 indexes each sort key with its tie-breaker, as for the large ones).
  services: { name: 'LOWER(name)', enrolled: 'enrolled_at', lastUsed: 'COALESCE(last_used_at, 0)' },
  break_glass_grants: { issued: 'issued_at', expires: 'expires_at' },
  ssf_streams: { created: 'created_at', status: 'status' },
  ssf_transmitters: { name: 'LOWER(name)', created: 'created_at' },
  policy_versions: { version: 'version', published: 'published_at' },
  // One operator's codes (the index leads with operator_id, which every page filters on).
  operator_enrolment_codes: { issued: 'issued_at', expires: 'expires_at' },
  // Suspended passkeys only (a partial index: the suspended ones are few among millions of passkeys).
  credentials: { suspended: 'suspended_at' },
} as const satisfies Record<TableName, Record<string, string>>;

export const DEFAULT_ORDER: Record<TableName, SortOrder> = {
  consoles: 'asc',
  operators: 'asc',
  sessions: 'desc',
  events: 'desc',
  revocations: 'desc',
  admin_api_tokens: 'desc',
  services: 'asc',
  break_glass_grants: 'desc',
  ssf_streams: 'asc',
  ssf_transmitters: 'asc',
  policy_versions: 'desc',
  operator_enrolment_codes: 'desc',
  credentials: 'desc',
};

/**
 * Each table's tie-breaker (unique): the position a cursor names is (sort value, tie-breaker). An
 * enrolment code's is its public id (the first 16 hex digits of its hash), never the whole hash.
 */
const ID_COLUMN: Record<TableName, string> = {
  consoles: 'id',
  operators: 'id',
  sessions: 'id',
  events: 'cursor',
  revocations: 'epoch',
  admin_api_tokens: 'id',
  services: 'id',
  break_glass_grants: 'id',
  ssf_streams: 'id',
  ssf_transmitters: 'id',
  policy_versions: 'version',
  operator_enrolment_codes: `substr(code_hash, 1, ${CODE_ID_LENGTH})`,
  credentials: 'id',
};

export interface PageRequest {
  sort?: string | undefined;
  order?: SortOrder | undefined;
  cursor?: string | undefined;
  limit?: number | undefined;
}

export interface PageInfo {
  /** Opaque: pass as `cursor` for the next page; null on the last page. */
  next: string | null;
  /** Opaque: pass as `cursor` for the previous page; null on the first page. */
  prev: string | null;
  limit: number;
  sort: string;
  order: SortOrder;
}

export interface Page<T> {
  rows: T[];
  page: PageInfo;
}

/** A list's number of matches: exact up to COUNT_CAP, else COUNT_CAP with `totalAtLeast`. */
export interface Counted {
  total: number;
  totalAtLeast: boolean;
}

interface CursorBody {
  t: TableName;
  s: string;
  o: SortOrder;
  /** `a`: the rows after this position (next page); `b`: the rows before it (previous page). */
  d: 'a' | 'b';
  k: [string | number, string | number];
}

function encodeCursor(body: CursorBody): string {
  return Buffer.from(JSON.stringify(body), 'utf8').toString('base64url');
}

function decodeCursor(table: TableName, sort: string, order: SortOrder, cursor: string): CursorBody {
  const invalid = (why: string) =>
    new BatonError(
      'ADMIN_CURSOR_INVALID',
      `The cursor is not valid for this list (${why}); start again from the first page`,
    );
  if (!/^[A-Za-z0-9_-]{1,1024}$/.test(cursor)) throw invalid('not a cursor this server made');
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid('not a cursor this server made');
  }
  const b = body as Partial<CursorBody> | null;
  const scalar = (v: unknown) => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));
  if (
    typeof b !== 'object' ||
    b === null ||
    (b.d !== 'a' && b.d !== 'b') ||
    !Array.isArray(b.k) ||
    b.k.length !== 2 ||
    !b.k.every(scalar)
  ) {
    throw invalid('not a cursor this server made');
  }
  if (b.t !== table) throw invalid(`made for the ${String(b.t)} list`);
  if (b.s !== sort || b.o !== order) throw invalid(`made for sort ${String(b.s)} ${String(b.o)}`);
  return b as CursorBody;
}

/** The sort key and order of a request, checked against the table's allow-list (ADMIN_SORT_UNKNOWN). */
export function sortOf(table: TableName, request: PageRequest): { sort: string; expr: string; order: SortOrder } {
  const keys: Record<string, string> = SORT_KEYS[table];
  const sort = request.sort ?? Object.keys(keys)[0] ?? '';
  const expr = Object.hasOwn(keys, sort) ? keys[sort] : undefined;
  if (expr === undefined) {
    throw new BatonError(
      'ADMIN_SORT_UNKNOWN',
      `"${sort}" is not a sort key of the ${table} list; use one of: ${Object.keys(keys).join(', ')}`,
    );
  }
  return { sort, expr, order: request.order ?? DEFAULT_ORDER[table] };
}

function dbOf(store: Store): Kysely<BatonDatabase> {
  const db = kyselyOf(store);
  if (db === undefined) throw new Error('admin tables need a Kysely store');
  return db;
}

/** A LIKE pattern matching `text` anywhere, its wildcards escaped (ESCAPE '\'). */
function containing(text: string): string {
  return `%${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** `column IN (...)` over ids; an empty list matches nothing. */
function inList(column: string, ids: readonly string[]): RawBuilder<unknown> {
  if (ids.length === 0) return sql`1 = 0`;
  return sql`${sql.ref(column)} IN (${sql.join(ids)})`;
}

/**
 * One page of `table` where all of `where` hold: keyset on (sort expression, tie-breaker), limit+1
 * rows to know whether there is a next page, rows in display order.
 */
async function keysetPage(
  db: Kysely<BatonDatabase>,
  table: TableName,
  where: RawBuilder<unknown>[],
  request: PageRequest,
  /**
   * Filter first, then sort (PostgreSQL, for a name search): otherwise the planner walks the sort
   * index and filters as it goes, which reads most of the table when the matches sit together late in
   * the sort order (seen: 41,500 operators read for the 51 named "Robin Khan…", 418 ms). The search
   * itself is a trigram index scan (migration 22).
   */
  filterFirst = false,
): Promise<{ rows: Row[]; page: PageInfo }> {
  const { sort, expr, order } = sortOf(table, request);
  const limit = Math.min(Math.max(1, request.limit ?? PAGE_LIMIT_DEFAULT), PAGE_LIMIT_MAX);
  const cursor = request.cursor === undefined ? undefined : decodeCursor(table, sort, order, request.cursor);
  const idColumn = ID_COLUMN[table];
  const key = sql.raw(expr);
  const id = sql.raw(idColumn);
  const backwards = cursor?.d === 'b';
  // Reading backwards (the previous page) walks the index the other way, then the rows are flipped.
  const ascending = (order === 'asc') !== backwards;
  const conditions = [...where];
  if (cursor !== undefined) {
    const [value, last] = cursor.k;
    // Written as a range on the sort key first (`key >= v AND (key > v OR id > last)`), not as a row
    // value: both engines then seek into the (key, id) index instead of scanning it from the start.
    if (expr === idColumn) conditions.push(ascending ? sql`${id} > ${last}` : sql`${id} < ${last}`);
    else if (ascending) conditions.push(sql`${key} >= ${value} AND (${key} > ${value} OR ${id} > ${last})`);
    else conditions.push(sql`${key} <= ${value} AND (${key} < ${value} OR ${id} < ${last})`);
  }
  const direction = sql.raw(ascending ? 'ASC' : 'DESC');
  const whereSql = conditions.length === 0 ? sql`` : sql`WHERE ${sql.join(conditions, sql` AND `)}`;
  const sameKey = expr === idColumn;
  const orderSql = sameKey ? sql`ORDER BY ${id} ${direction}` : sql`ORDER BY ${key} ${direction}, ${id} ${direction}`;
  const result = filterFirst
    ? await sql<Row>`WITH matching AS MATERIALIZED (SELECT * FROM ${sql.table(table)} WHERE ${sql.join(where, sql` AND `)})
        SELECT *, ${key} AS page_key, ${id} AS page_id FROM matching
        ${conditions.length > where.length ? sql`WHERE ${sql.join(conditions.slice(where.length), sql` AND `)}` : sql``}
        ${orderSql} LIMIT ${limit + 1}`.execute(db)
    : await sql<Row>`SELECT *, ${key} AS page_key, ${id} AS page_id FROM ${sql.table(table)} ${whereSql} ${orderSql} LIMIT ${
        limit + 1
      }`.execute(db);
  const fetched = result.rows;
  const more = fetched.length > limit;
  const rows = fetched.slice(0, limit);
  if (backwards) rows.reverse();
  const position = (row: Row): [string | number, string | number] => [keyValue(row.page_key), keyValue(row.page_id)];
  const make = (row: Row | undefined, d: 'a' | 'b') =>
    row === undefined ? null : encodeCursor({ t: table, s: sort, o: order, d, k: position(row) });
  const first = rows[0];
  const last = rows.at(-1);
  const next = backwards ? make(last, 'a') : more ? make(last, 'a') : null;
  const prev = backwards ? (more ? make(first, 'b') : null) : cursor !== undefined ? make(first, 'b') : null;
  return { rows, page: { next, prev, limit, sort, order } };
}

function keyValue(v: unknown): string | number {
  if (typeof v === 'string' || typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  throw new Error('database: a sort key is neither text nor a number');
}

// ---- name resolution ----

/** The consoles an id, a name (case-insensitive, exact) or, with `site`, a site stands for. */
export async function consoleIdsNamed(store: Store, value: string): Promise<string[]> {
  const db = dbOf(store);
  const rows = await sql<{ id: string }>`SELECT id FROM consoles
    WHERE id = ${value} OR LOWER(COALESCE(name, '')) = ${value.toLowerCase()}
    ORDER BY id LIMIT ${SEARCH_MATCH_CAP}`.execute(db);
  return rows.rows.map((r) => r.id);
}

export async function consoleIdsAtSite(store: Store, site: string): Promise<string[]> {
  const db = dbOf(store);
  const rows = await sql<{ id: string }>`SELECT id FROM consoles
    WHERE LOWER(COALESCE(site, '')) = ${site.toLowerCase()} ORDER BY id LIMIT ${SEARCH_MATCH_CAP}`.execute(db);
  return rows.rows.map((r) => r.id);
}

export async function operatorIdsNamed(store: Store, value: string): Promise<string[]> {
  const db = dbOf(store);
  const rows = await sql<{ id: string }>`SELECT id FROM operators
    WHERE id = ${value} OR LOWER(display_name) = ${value.toLowerCase()}
    ORDER BY id LIMIT ${SEARCH_MATCH_CAP}`.execute(db);
  return rows.rows.map((r) => r.id);
}

/** The services `value` names: its id, or every service of that name (case-insensitive; names need not be unique). */
export async function serviceIdsNamed(store: Store, value: string): Promise<string[]> {
  const db = dbOf(store);
  const rows = await sql<{ id: string }>`SELECT id FROM services
    WHERE id = ${value} OR LOWER(name) = ${value.toLowerCase()}
    ORDER BY id LIMIT ${SEARCH_MATCH_CAP}`.execute(db);
  return rows.rows.map((r) => r.id);
}

function consoleSearch(q: string): RawBuilder<unknown> {
  const like = containing(q);
  return sql`(id = ${q} OR LOWER(COALESCE(name, '')) LIKE ${like} ESCAPE '\\' OR LOWER(COALESCE(site, '')) LIKE ${like} ESCAPE '\\')`;
}

function operatorSearch(q: string): RawBuilder<unknown> {
  return sql`(id = ${q} OR LOWER(display_name) LIKE ${containing(q)} ESCAPE '\\')`;
}

/** The consoles and operators a search names (each at most SEARCH_MATCH_CAP). */
async function searchIds(store: Store, q: string): Promise<{ consoles: string[]; operators: string[] }> {
  const db = dbOf(store);
  const consoles = await sql<{
    id: string;
  }>`SELECT id FROM consoles WHERE ${consoleSearch(q)} ORDER BY id LIMIT ${SEARCH_MATCH_CAP}`.execute(db);
  const operators = await sql<{
    id: string;
  }>`SELECT id FROM operators WHERE ${operatorSearch(q)} ORDER BY id LIMIT ${SEARCH_MATCH_CAP}`.execute(db);
  return { consoles: consoles.rows.map((r) => r.id), operators: operators.rows.map((r) => r.id) };
}

/** Names for the ids on a page: what the admin reads instead of ids. */
export async function namesFor(
  store: Store,
  ids: { consoles: Iterable<string>; operators: Iterable<string> },
): Promise<{
  consoles: Record<string, { name: string | null; site: string | null }>;
  operators: Record<string, string>;
}> {
  const db = dbOf(store);
  const consoleIds = [...new Set(ids.consoles)];
  const operatorIds = [...new Set(ids.operators)];
  const consoles: Record<string, { name: string | null; site: string | null }> = {};
  const operators: Record<string, string> = {};
  if (consoleIds.length > 0) {
    const rows = await sql<Row>`SELECT id, name, site FROM consoles WHERE ${inList('id', consoleIds)}`.execute(db);
    for (const row of rows.rows) consoles[str(row, 'id')] = { name: optStr(row, 'name'), site: optStr(row, 'site') };
  }
  if (operatorIds.length > 0) {
    const rows = await sql<Row>`SELECT id, display_name FROM operators WHERE ${inList('id', operatorIds)}`.execute(db);
    for (const row of rows.rows) operators[str(row, 'id')] = str(row, 'display_name');
  }
  return { consoles, operators };
}

/**
 * How many rows match, counted up to COUNT_CAP: past it the list says "more than 10,000" (`totalAtLeast`).
 * Counting every one of 50,000 operators on each page cost more than the page itself (PostgreSQL:
 * a sequential scan of the table, 20–120 ms under load); no admin pages that far by hand.
 */
export const COUNT_CAP = 10_000;

async function count(
  db: Kysely<BatonDatabase>,
  table: TableName,
  where: RawBuilder<unknown>[],
): Promise<{ total: number; totalAtLeast: boolean }> {
  const whereSql = where.length === 0 ? sql`` : sql`WHERE ${sql.join(where, sql` AND `)}`;
  const result = await sql<{
    n: number | string | bigint;
  }>`SELECT COUNT(*) AS n FROM (SELECT 1 AS one FROM ${sql.table(table)} ${whereSql} LIMIT ${COUNT_CAP + 1}) AS capped`.execute(
    db,
  );
  const n = Number(result.rows[0]?.n ?? 0);
  return n > COUNT_CAP ? { total: COUNT_CAP, totalAtLeast: true } : { total: n, totalAtLeast: false };
}

// ---- the tables ----

export interface ConsoleFilter {
  q?: string | undefined;
  channel?: string | undefined;
  site?: string | undefined;
  state?: 'active' | 'revoked' | undefined;
  /** The consoles that run this policy version (the Policy page's "all 9,995" link). */
  policyVersion?: number | undefined;
}

export async function consolesPage(
  store: Store,
  filter: ConsoleFilter,
  request: PageRequest,
): Promise<Page<ConsoleRecord> & Counted> {
  const db = dbOf(store);
  const where: RawBuilder<unknown>[] = [];
  if (filter.q !== undefined && filter.q !== '') where.push(consoleSearch(filter.q));
  if (filter.channel !== undefined) where.push(sql`channel = ${filter.channel}`);
  if (filter.site !== undefined) where.push(sql`LOWER(COALESCE(site, '')) = ${filter.site.toLowerCase()}`);
  if (filter.state === 'active') where.push(sql`revoked_at IS NULL`);
  if (filter.state === 'revoked') where.push(sql`revoked_at IS NOT NULL`);
  if (filter.policyVersion !== undefined) where.push(sql`policy_version = ${filter.policyVersion}`);
  const searched = filter.q !== undefined && filter.q !== '';
  const { rows, page } = await keysetPage(db, 'consoles', where, request, searched && store.engine === 'postgres');
  return { rows: rows.map(consoleFrom), page, ...(await count(db, 'consoles', where)) };
}

export interface OperatorFilter {
  q?: string | undefined;
  role?: string | undefined;
  state?: 'active' | 'revoked' | 'locked' | undefined;
}

export async function operatorsPage(
  store: Store,
  filter: OperatorFilter,
  request: PageRequest,
  lockedAfter: number,
): Promise<Page<OperatorRecord> & Counted> {
  const db = dbOf(store);
  const where: RawBuilder<unknown>[] = [];
  if (filter.q !== undefined && filter.q !== '') where.push(operatorSearch(filter.q));
  // Roles are a JSON array of names (["admin","teller"]): the quoted name is searched for.
  if (filter.role !== undefined) where.push(sql`roles LIKE ${`%"${filter.role.replace(/[\\%_"]/g, '')}"%`}`);
  if (filter.state === 'active') where.push(sql`revoked_at IS NULL`);
  if (filter.state === 'revoked') where.push(sql`revoked_at IS NOT NULL`);
  if (filter.state === 'locked') where.push(sql`revoked_at IS NULL AND failed_attempts >= ${lockedAfter}`);
  const searched = filter.q !== undefined && filter.q !== '';
  const { rows, page } = await keysetPage(db, 'operators', where, request, searched && store.engine === 'postgres');
  return { rows: rows.map(operatorFrom), page, ...(await count(db, 'operators', where)) };
}

export interface SessionFilter {
  q?: string | undefined;
  state?: string | undefined;
  /** An id or a console name. */
  console?: string | undefined;
  site?: string | undefined;
  /** An id or an operator name. */
  operator?: string | undefined;
  channel?: string | undefined;
}

/** The id filters shared by sessions and events: names resolved to ids; `undefined` when nothing can match. */
async function subjectFilters(
  store: Store,
  filter: {
    q?: string | undefined;
    console?: string | undefined;
    site?: string | undefined;
    operator?: string | undefined;
  },
): Promise<RawBuilder<unknown>[]> {
  const where: RawBuilder<unknown>[] = [];
  if (filter.console !== undefined) where.push(inList('console_id', await consoleIdsNamed(store, filter.console)));
  if (filter.site !== undefined) where.push(inList('console_id', await consoleIdsAtSite(store, filter.site)));
  if (filter.operator !== undefined) where.push(inList('operator_id', await operatorIdsNamed(store, filter.operator)));
  if (filter.q !== undefined && filter.q !== '') {
    const found = await searchIds(store, filter.q);
    const either: RawBuilder<unknown>[] = [];
    if (found.consoles.length > 0) either.push(inList('console_id', found.consoles));
    if (found.operators.length > 0) either.push(inList('operator_id', found.operators));
    where.push(either.length === 0 ? sql`1 = 0` : sql`(${sql.join(either, sql` OR `)})`);
  }
  return where;
}

export async function sessionsPage(
  store: Store,
  filter: SessionFilter,
  request: PageRequest,
): Promise<Page<SessionRecord> & Counted> {
  const db = dbOf(store);
  const where = await subjectFilters(store, filter);
  if (filter.state !== undefined) where.push(sql`state = ${filter.state}`);
  if (filter.channel !== undefined) where.push(sql`channel = ${filter.channel}`);
  const { rows, page } = await keysetPage(db, 'sessions', where, request);
  return { rows: rows.map(sessionFrom), page, ...(await count(db, 'sessions', where)) };
}

export interface EventPageFilter {
  q?: string | undefined;
  console?: string | undefined;
  site?: string | undefined;
  operator?: string | undefined;
  session?: string | undefined;
  /** An id or a service's name: the backend's events about that service (`service_id`, migration 26). */
  service?: string | undefined;
  /** One type or any of several. */
  type?: string | readonly string[] | undefined;
  outcome?: string | undefined;
  origin?: string | undefined;
  from?: number | undefined;
  to?: number | undefined;
}

/** Events: no total (counting ten million rows per page is what paging avoids). */
export async function eventsPage(
  store: Store,
  filter: EventPageFilter,
  request: PageRequest,
): Promise<Page<StoredEvent>> {
  const db = dbOf(store);
  const where = await subjectFilters(store, filter);
  if (filter.session !== undefined) where.push(sql`session_id = ${filter.session}`);
  if (filter.service !== undefined) where.push(inList('service_id', await serviceIdsNamed(store, filter.service)));
  if (typeof filter.type === 'string') where.push(sql`type = ${filter.type}`);
  else if (filter.type !== undefined) where.push(inList('type', filter.type));
  if (filter.outcome !== undefined) where.push(sql`outcome = ${filter.outcome}`);
  if (filter.origin !== undefined) where.push(sql`origin = ${filter.origin}`);
  if (filter.from !== undefined) where.push(sql`time >= ${filter.from}`);
  if (filter.to !== undefined) where.push(sql`time < ${filter.to}`);
  const { rows, page } = await keysetPage(db, 'events', where, request);
  return { rows: rows.map(eventFrom), page };
}

export interface RevocationFilter {
  kind?: string | undefined;
  /** The revoked console, operator, credential or session: an id, or a console or operator name. */
  target?: string | undefined;
  /** Made at or after / before (ms). */
  from?: number | undefined;
  to?: number | undefined;
}

export async function revocationsPage(
  store: Store,
  filter: RevocationFilter,
  request: PageRequest,
): Promise<Page<RevocationRecord>> {
  const db = dbOf(store);
  const where: RawBuilder<unknown>[] = [];
  if (filter.kind !== undefined) where.push(sql`kind = ${filter.kind}`);
  if (filter.target !== undefined) {
    const consoles = await consoleIdsNamed(store, filter.target);
    const operators = await operatorIdsNamed(store, filter.target);
    where.push(
      sql`(target_id = ${filter.target} OR ${inList('console_id', consoles)} OR ${inList('operator_id', operators)})`,
    );
  }
  if (filter.from !== undefined) where.push(sql`created_at >= ${filter.from}`);
  if (filter.to !== undefined) where.push(sql`created_at < ${filter.to}`);
  const { rows, page } = await keysetPage(db, 'revocations', where, request);
  return { rows: rows.map(revocationFrom), page };
}

// ---- rows ----

function eventFrom(row: Row): StoredEvent {
  const event = AssuranceEventSchema.parse(JSON.parse(str(row, 'body')));
  const integrity = optStr(row, 'integrity');
  return {
    ...event,
    origin: str(row, 'origin'),
    hash: str(row, 'hash'),
    receivedAt: num(row, 'received_at'),
    integrity: integrity !== null && integrity !== '' ? integrity.split(',') : [],
    cursor: num(row, 'cursor'),
  };
}

function revocationFrom(row: Row): RevocationRecord {
  return {
    epoch: num(row, 'epoch'),
    kind: oneOf(REVOCATION_KINDS, str(row, 'kind'), 'kind'),
    targetId: str(row, 'target_id'),
    operatorId: optStr(row, 'operator_id'),
    consoleId: optStr(row, 'console_id'),
    reason: str(row, 'reason'),
    actor: str(row, 'actor'),
    at: num(row, 'created_at'),
  };
}

/** The outbox backlog the consoles of a page last reported. */
export async function outboxFor(
  store: Store,
  consoleIds: readonly string[],
): Promise<Map<string, { pending: number; max: number; reportedAt: number }>> {
  const map = new Map<string, { pending: number; max: number; reportedAt: number }>();
  if (consoleIds.length === 0) return map;
  const rows = await sql<Row>`SELECT console_id, pending, max, reported_at FROM console_outbox_reports
    WHERE ${inList('console_id', consoleIds)}`.execute(dbOf(store));
  for (const row of rows.rows) {
    map.set(str(row, 'console_id'), {
      pending: num(row, 'pending'),
      max: num(row, 'max'),
      reportedAt: num(row, 'reported_at'),
    });
  }
  return map;
}

/** Per revocation of a page: how many consoles it was sent to, how many acknowledged, the slowest (ms). */
export async function deliverySummaries(
  store: Store,
  epochs: readonly number[],
): Promise<Map<number, { sent: number; acknowledged: number; maxAckMs: number | null }>> {
  const map = new Map<number, { sent: number; acknowledged: number; maxAckMs: number | null }>();
  if (epochs.length === 0) return map;
  const rows =
    await sql<Row>`SELECT epoch, COUNT(*) AS sent, COUNT(acked_at) AS acked, MAX(acked_at - sent_at) AS slowest
    FROM revocation_deliveries WHERE epoch IN (${sql.join(epochs)}) GROUP BY epoch`.execute(dbOf(store));
  for (const row of rows.rows) {
    const slowest = row.slowest;
    map.set(Number(row.epoch), {
      sent: Number(row.sent),
      acknowledged: Number(row.acked),
      maxAckMs: slowest === null || slowest === undefined ? null : Math.max(0, Number(slowest)),
    });
  }
  return map;
}

/** At most this many acknowledgements are read to draw propagation over a range (the newest revocations first). */
export const PROPAGATION_SAMPLE_CAP = 200_000;

/**
 * The revocations made in [from, to), newest `limit` (through the index on created_at, migration 22),
 * oldest first.
 */
export async function revocationsBetween(
  store: Store,
  from: number,
  to: number,
  limit: number,
): Promise<RevocationRecord[]> {
  const rows = await sql<Row>`SELECT * FROM revocations WHERE created_at >= ${from} AND created_at < ${to}
    ORDER BY created_at DESC, epoch DESC LIMIT ${limit}`.execute(dbOf(store));
  return rows.rows.map(revocationFrom).reverse();
}

/**
 * How long each console took to acknowledge each revocation made in [from, to): (when the revocation
 * was made, ms from sending to the acknowledgement), at most PROPAGATION_SAMPLE_CAP of them.
 */
export async function propagationSamples(
  store: Store,
  from: number,
  to: number,
): Promise<{ samples: { at: number; ms: number }[]; truncated: boolean }> {
  const rows = await sql<Row>`SELECT r.created_at AS at, d.acked_at - d.sent_at AS ms
    FROM revocations r JOIN revocation_deliveries d ON d.epoch = r.epoch
    WHERE r.created_at >= ${from} AND r.created_at < ${to} AND d.acked_at IS NOT NULL
    ORDER BY r.created_at DESC LIMIT ${PROPAGATION_SAMPLE_CAP + 1}`.execute(dbOf(store));
  const samples = rows.rows
    .slice(0, PROPAGATION_SAMPLE_CAP)
    .map((row) => ({ at: Number(row.at), ms: Math.max(0, Number(row.ms)) }));
  return { samples, truncated: rows.rows.length > PROPAGATION_SAMPLE_CAP };
}

// ---- the policy's reach ----

/** At most this many versions are described in the adoption picture (the newest first), each with a few names. */
export const ADOPTION_VERSIONS_MAX = 20;
export const ADOPTION_SAMPLE = 5;

/**
 * Who a policy reaches, counted by the database instead of read console by console: one grouped
 * count over the consoles not revoked (channel × version, a handful of rows at any estate size), then
 * a few names for each version listed.
 */
export async function policyAdoption(store: Store): Promise<PolicyAdoption> {
  const db = dbOf(store);
  const groups = await sql<Row>`SELECT channel, policy_version, COUNT(*) AS n FROM consoles
    WHERE revoked_at IS NULL GROUP BY channel, policy_version`.execute(db);
  const byChannel: Record<string, number> = {};
  const versions = new Map<number, number>();
  for (const row of groups.rows) {
    const n = Number(row.n);
    const channel = str(row, 'channel');
    const version = Number(row.policy_version);
    byChannel[channel] = (byChannel[channel] ?? 0) + n;
    versions.set(version, (versions.get(version) ?? 0) + n);
  }
  const newest = [...versions.entries()].sort((a, b) => b[0] - a[0]);
  const byVersion: PolicyAdoption['byVersion'] = [];
  for (const [version, consoles] of newest.slice(0, ADOPTION_VERSIONS_MAX)) {
    const sample = await sql<Row>`SELECT id, name, site FROM consoles
      WHERE revoked_at IS NULL AND policy_version = ${version} ORDER BY name, id LIMIT ${ADOPTION_SAMPLE}`.execute(db);
    byVersion.push({
      version,
      consoles,
      sample: sample.rows.map((r) => ({ id: str(r, 'id'), name: optStr(r, 'name'), site: optStr(r, 'site') })),
    });
  }
  return { byChannel, byVersion, versionsAtLeast: newest.length > ADOPTION_VERSIONS_MAX };
}

// ---- admin API tokens ----

export interface ApiTokenFilter {
  /** Part of the label (case-insensitive), or the exact id. */
  q?: string | undefined;
  scope?: 'read' | 'admin' | undefined;
  state?: 'active' | 'expired' | 'revoked' | undefined;
}

/** One page of the admin API tokens (rows as stored; the service makes the views). `now` decides expiry. */
export async function apiTokensPage(
  store: Store,
  filter: ApiTokenFilter,
  request: PageRequest,
  now: number,
): Promise<Page<Row> & Counted> {
  const db = dbOf(store);
  const where: RawBuilder<unknown>[] = [];
  if (filter.q !== undefined && filter.q !== '') {
    where.push(sql`(id = ${filter.q} OR LOWER(label) LIKE ${containing(filter.q)} ESCAPE '\\')`);
  }
  if (filter.scope !== undefined) where.push(sql`scope = ${filter.scope}`);
  if (filter.state === 'revoked') where.push(sql`revoked_at IS NOT NULL`);
  if (filter.state === 'expired') where.push(sql`revoked_at IS NULL AND expires_at <= ${now}`);
  if (filter.state === 'active') where.push(sql`revoked_at IS NULL AND expires_at > ${now}`);
  const { rows, page } = await keysetPage(db, 'admin_api_tokens', where, request);
  return { rows, page, ...(await count(db, 'admin_api_tokens', where)) };
}

// ---- the smaller tables (issue 12): services, break-glass grants, Shared Signals, policy versions, codes, suspended passkeys ----

/** One page of a smaller table: its rows as stored (each list's route makes its views), with the count. */
async function smallPage(
  store: Store,
  table: TableName,
  where: RawBuilder<unknown>[],
  request: PageRequest,
): Promise<Page<Row> & Counted> {
  const db = dbOf(store);
  const { rows, page } = await keysetPage(db, table, where, request);
  return { rows, page, ...(await count(db, table, where)) };
}

function searched(q: string | undefined): q is string {
  return q !== undefined && q !== '';
}

export interface ServiceFilter {
  /** Part of the name (case-insensitive), or the exact id. */
  q?: string | undefined;
  state?: 'active' | 'revoked' | undefined;
}

export function servicesPage(store: Store, filter: ServiceFilter, request: PageRequest) {
  const where: RawBuilder<unknown>[] = [];
  if (searched(filter.q)) where.push(sql`(id = ${filter.q} OR LOWER(name) LIKE ${containing(filter.q)} ESCAPE '\\')`);
  if (filter.state === 'active') where.push(sql`revoked_at IS NULL`);
  if (filter.state === 'revoked') where.push(sql`revoked_at IS NOT NULL`);
  return smallPage(store, 'services', where, request);
}

export interface BreakGlassFilter {
  /** A name (or part) of the operator or the console, a site, or a grant's id. */
  q?: string | undefined;
  /** `awaiting`: not signed off yet (the review list); `signed-off`: reviewed. */
  state?: 'awaiting' | 'signed-off' | undefined;
  method?: 'admin-code' | 'supervisor-tap' | undefined;
  /** `true`: a session was started with it; `false`: not (yet). */
  used?: 'true' | 'false' | undefined;
  /** An id or an exact name. */
  operator?: string | undefined;
  console?: string | undefined;
  site?: string | undefined;
  /** Issued at or after / before (ms). */
  from?: number | undefined;
  to?: number | undefined;
}

export async function breakGlassPage(store: Store, filter: BreakGlassFilter, request: PageRequest) {
  const where: RawBuilder<unknown>[] = [];
  if (searched(filter.q)) {
    const found = await searchIds(store, filter.q);
    where.push(
      sql`(id = ${filter.q} OR LOWER(COALESCE(site, '')) LIKE ${containing(filter.q)} ESCAPE '\\' OR ${inList(
        'operator_id',
        found.operators,
      )} OR ${inList('console_id', found.consoles)})`,
    );
  }
  if (filter.state === 'awaiting') where.push(sql`signed_off_at IS NULL`);
  if (filter.state === 'signed-off') where.push(sql`signed_off_at IS NOT NULL`);
  if (filter.method !== undefined) where.push(sql`method = ${filter.method}`);
  if (filter.used === 'true') where.push(sql`session_id IS NOT NULL`);
  if (filter.used === 'false') where.push(sql`session_id IS NULL`);
  if (filter.operator !== undefined) where.push(inList('operator_id', await operatorIdsNamed(store, filter.operator)));
  if (filter.console !== undefined) where.push(inList('console_id', await consoleIdsNamed(store, filter.console)));
  if (filter.site !== undefined) where.push(sql`LOWER(COALESCE(site, '')) = ${filter.site.toLowerCase()}`);
  if (filter.from !== undefined) where.push(sql`issued_at >= ${filter.from}`);
  if (filter.to !== undefined) where.push(sql`issued_at < ${filter.to}`);
  return smallPage(store, 'break_glass_grants', where, request);
}

export interface SsfStreamFilter {
  /** The stream's id, or part of its receiver's name. */
  q?: string | undefined;
  status?: 'enabled' | 'paused' | 'disabled' | undefined;
  /** The receiver's id. */
  receiver?: string | undefined;
}

export async function ssfStreamsPage(store: Store, filter: SsfStreamFilter, request: PageRequest) {
  const where: RawBuilder<unknown>[] = [];
  if (searched(filter.q)) {
    const receivers = await sql<{ id: string }>`SELECT id FROM ssf_receivers
      WHERE id = ${filter.q} OR LOWER(name) LIKE ${containing(filter.q)} ESCAPE '\\'
      ORDER BY id LIMIT ${SEARCH_MATCH_CAP}`.execute(dbOf(store));
    where.push(
      sql`(id = ${filter.q} OR ${inList(
        'receiver_id',
        receivers.rows.map((r) => r.id),
      )})`,
    );
  }
  if (filter.status !== undefined) where.push(sql`status = ${filter.status}`);
  if (filter.receiver !== undefined) where.push(sql`receiver_id = ${filter.receiver}`);
  return smallPage(store, 'ssf_streams', where, request);
}

/** The names of these services (an unknown id is left out), for a page of events that shows their ids. */
export async function serviceNamesFor(store: Store, ids: Iterable<string>): Promise<Record<string, string>> {
  const names: Record<string, string> = {};
  const unique = [...new Set(ids)];
  if (unique.length === 0) return names;
  const rows = await sql<Row>`SELECT id, name FROM services WHERE ${inList('id', unique)}`.execute(dbOf(store));
  for (const row of rows.rows) names[str(row, 'id')] = str(row, 'name');
  return names;
}

/** The names of these Shared Signals receivers (a page's streams say whose they are). */
export async function receiverNamesFor(store: Store, ids: readonly string[]): Promise<Record<string, string>> {
  const names: Record<string, string> = {};
  if (ids.length === 0) return names;
  const rows = await sql<Row>`SELECT id, name FROM ssf_receivers WHERE ${inList('id', [...new Set(ids)])}`.execute(
    dbOf(store),
  );
  for (const row of rows.rows) names[str(row, 'id')] = str(row, 'name');
  return names;
}

export interface SsfTransmitterFilter {
  /** Part of the name or the issuer, or the exact id. */
  q?: string | undefined;
  /** The source's status (migration 27): enabled, paused or disabled. */
  state?: 'enabled' | 'paused' | 'disabled' | undefined;
}

export function ssfTransmittersPage(store: Store, filter: SsfTransmitterFilter, request: PageRequest) {
  const where: RawBuilder<unknown>[] = [];
  if (searched(filter.q)) {
    const like = containing(filter.q);
    where.push(
      sql`(id = ${filter.q} OR LOWER(name) LIKE ${like} ESCAPE '\\' OR LOWER(issuer) LIKE ${like} ESCAPE '\\')`,
    );
  }
  if (filter.state !== undefined) where.push(sql`status = ${filter.state}`);
  return smallPage(store, 'ssf_transmitters', where, request);
}

export interface PolicyVersionFilter {
  /** A version number, or (part of) the name of the admin who published it. */
  q?: string | undefined;
  /** Published at or after / before (ms). */
  from?: number | undefined;
  to?: number | undefined;
}

export async function policyVersionsPage(store: Store, filter: PolicyVersionFilter, request: PageRequest) {
  const where: RawBuilder<unknown>[] = [];
  if (searched(filter.q)) {
    const { operators } = await searchIds(store, filter.q);
    const publishers = operators.map((id) => `operator:${id}`);
    const either = [
      sql`LOWER(published_by) LIKE ${containing(filter.q)} ESCAPE '\\'`,
      ...(publishers.length > 0 ? [inList('published_by', publishers)] : []),
      ...(/^\d{1,9}$/.test(filter.q) ? [sql`version = ${Number(filter.q)}`] : []),
    ];
    where.push(sql`(${sql.join(either, sql` OR `)})`);
  }
  if (filter.from !== undefined) where.push(sql`published_at >= ${filter.from}`);
  if (filter.to !== undefined) where.push(sql`published_at < ${filter.to}`);
  return smallPage(store, 'policy_versions', where, request);
}

export interface EnrolmentCodeFilter {
  /** The start of a code's id. */
  q?: string | undefined;
  state?: 'usable' | 'used' | 'expired' | 'revoked' | undefined;
}

/** One operator's enrolment codes; `now` decides expiry. */
export function enrolmentCodesPage(
  store: Store,
  operatorId: string,
  filter: EnrolmentCodeFilter,
  request: PageRequest,
  now: number,
) {
  const where: RawBuilder<unknown>[] = [sql`operator_id = ${operatorId}`];
  if (searched(filter.q)) {
    where.push(
      sql`substr(code_hash, 1, ${sql.lit(CODE_ID_LENGTH)}) LIKE ${`${filter.q.toLowerCase().replace(/[\\%_]/g, '')}%`}`,
    );
  }
  if (filter.state === 'revoked') where.push(sql`revoked_at IS NOT NULL`);
  if (filter.state === 'used') where.push(sql`revoked_at IS NULL AND used_at IS NOT NULL`);
  if (filter.state === 'expired') where.push(sql`used_at IS NULL AND expires_at <= ${now}`);
  if (filter.state === 'usable') where.push(sql`used_at IS NULL AND expires_at > ${now}`);
  return smallPage(store, 'operator_enrolment_codes', where, request);
}

export interface SuspendedCredentialFilter {
  /** Part of the operator's name, or the operator's or the passkey's id. */
  q?: string | undefined;
  /** The operator: an id or an exact name. */
  operator?: string | undefined;
}

/** Passkeys suspended as possible copies (a signature counter went back). */
export async function suspendedCredentialsPage(store: Store, filter: SuspendedCredentialFilter, request: PageRequest) {
  const where: RawBuilder<unknown>[] = [sql`suspended_at IS NOT NULL`];
  if (searched(filter.q)) {
    const { operators } = await searchIds(store, filter.q);
    where.push(sql`(id = ${filter.q} OR ${inList('operator_id', operators)})`);
  }
  if (filter.operator !== undefined) where.push(inList('operator_id', await operatorIdsNamed(store, filter.operator)));
  return smallPage(store, 'credentials', where, request);
}
