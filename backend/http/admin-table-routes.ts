/**
 * The admin API's lists at estate scale (issue 12): search, sort, filters and cursor paging for the
 * consoles, operators, sessions, events and revocations lists (backend/store/admin-tables.ts).
 *
 * Every list takes `q` (search), `sort` (a key of the list's allow-list), `order` (`asc`/`desc`),
 * `cursor` (opaque, from the previous answer's `page.next` / `page.prev`) and `limit` (1–1000,
 * default 50), plus its own filters; filters that name a console or an operator accept the name as
 * well as the id. Each answer keeps its list under the same key as before and adds `page`.
 *
 * Compatibility: `GET /v1/admin/consoles` and `/operators` without any of these parameters answer the
 * whole list as before (small estates, older scripts); `GET /v1/admin/events` pages by the numeric
 * `after` as before unless `cursor`, `sort`, `order`, `q` or `site` is given; `GET
 * /v1/admin/revocations?since=` is unchanged unless a paging parameter or filter is given.
 */
import { z } from 'zod';
import { EVENT_OUTCOMES, EVENT_TYPES } from '../../shared/events.js';
import type { ConsoleView } from '../../shared/admin-views.js';
import { REVOCATION_KINDS } from '../../shared/protocol.js';
import {
  consoleIdsNamed,
  consolesPage,
  deliverySummaries,
  eventsPage,
  namesFor,
  operatorIdsNamed,
  operatorsPage,
  outboxFor,
  PAGE_LIMIT_MAX,
  revocationsPage,
  sessionsPage,
  type PageRequest,
} from '../store/admin-tables.js';
import type { ConsoleRecord, SessionRecord, Store } from '../store/repositories.js';
import { MAX_FAILED_ATTEMPTS } from '../services/assertion-gate.js';
import { parseWith } from './http-kit.js';
import type { RouteContext } from './router.js';

const int = z.coerce.number().int();
const text = z.string().min(1).max(200);
const PageParams = {
  q: z.string().max(200).optional(),
  sort: z.string().max(40).optional(),
  order: z.enum(['asc', 'desc']).optional(),
  cursor: z.string().max(1024).optional(),
  limit: int.min(1).max(PAGE_LIMIT_MAX).optional(),
};
const PAGE_KEYS = ['q', 'sort', 'order', 'cursor', 'limit'] as const;

function pageRequest(q: {
  sort?: string | undefined;
  order?: 'asc' | 'desc' | undefined;
  cursor?: string | undefined;
  limit?: number | undefined;
}): PageRequest {
  return { sort: q.sort, order: q.order, cursor: q.cursor, limit: q.limit };
}

function queryOf(ctx: RouteContext): Record<string, string> {
  return Object.fromEntries(ctx.query);
}

function hasAny(ctx: RouteContext, keys: readonly string[]): boolean {
  return keys.some((k) => ctx.query.has(k));
}

export interface TableDeps {
  store: Store;
  isConnected: (consoleId: string) => boolean;
}

export function consoleViewOf(
  c: ConsoleRecord,
  online: boolean,
  outbox: { pending: number; max: number; reportedAt: number } | undefined,
): ConsoleView {
  return {
    id: c.id,
    name: c.name,
    channel: c.channel,
    site: c.site,
    enrolledAt: c.enrolledAt,
    lastSeenAt: c.lastSeenAt,
    online,
    policyVersion: c.policyVersion,
    revocationEpoch: c.revocationEpoch,
    revokedAt: c.revokedAt,
    revokedReason: c.revokedReason,
    outbox: outbox ?? null,
  };
}

const ConsoleQuery = z.strictObject({
  ...PageParams,
  channel: text.optional(),
  site: text.optional(),
  state: z.enum(['active', 'revoked']).optional(),
  policyVersion: int.nonnegative().optional(),
});

/** `GET /v1/admin/consoles` in paging mode, or undefined for the unpaged (compatible) answer. */
export async function consolesList(deps: TableDeps, ctx: RouteContext) {
  if (!hasAny(ctx, [...PAGE_KEYS, 'channel', 'site', 'state', 'policyVersion'])) return undefined;
  const q = parseWith(ConsoleQuery, queryOf(ctx));
  const { rows, page, total, totalAtLeast } = await consolesPage(deps.store, q, pageRequest(q));
  const outbox = await outboxFor(
    deps.store,
    rows.map((c) => c.id),
  );
  return {
    consoles: rows.map((c) => consoleViewOf(c, deps.isConnected(c.id), outbox.get(c.id))),
    total,
    totalAtLeast,
    page,
  };
}

const OperatorQuery = z.strictObject({
  ...PageParams,
  role: z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,39}$/)
    .optional(),
  state: z.enum(['active', 'revoked', 'locked']).optional(),
});

export async function operatorsList(deps: TableDeps, ctx: RouteContext) {
  if (!hasAny(ctx, [...PAGE_KEYS, 'role', 'state'])) return undefined;
  const q = parseWith(OperatorQuery, queryOf(ctx));
  const { rows, page, total, totalAtLeast } = await operatorsPage(deps.store, q, pageRequest(q), MAX_FAILED_ATTEMPTS);
  return {
    operators: rows.map((o) => ({
      id: o.id,
      displayName: o.displayName,
      roles: o.roles,
      createdAt: o.createdAt,
      failedAttempts: o.failedAttempts,
      revokedAt: o.revokedAt,
      revokedReason: o.revokedReason,
    })),
    total,
    totalAtLeast,
    page,
  };
}

const SessionQuery = z.strictObject({
  ...PageParams,
  state: z.enum(['active', 'suspended', 'ended', 'revoked', 'expired']).optional(),
  console: text.optional(),
  site: text.optional(),
  operator: text.optional(),
  channel: text.optional(),
});

/** Sessions: always paged (newest first by default), with the names of their operators and consoles. */
export async function sessionsList(deps: TableDeps, ctx: RouteContext) {
  const q = parseWith(SessionQuery, queryOf(ctx));
  // 100 by default, as before paging existed.
  const { rows, page, total, totalAtLeast } = await sessionsPage(deps.store, q, {
    ...pageRequest(q),
    limit: q.limit ?? 100,
  });
  const names = await namesFor(deps.store, {
    consoles: rows.map((s) => s.consoleId),
    operators: rows.map((s) => s.operatorId),
  });
  return {
    sessions: rows.map((s: SessionRecord) => ({
      ...s,
      operatorName: names.operators[s.operatorId] ?? null,
      consoleName: names.consoles[s.consoleId]?.name ?? null,
      consoleSite: names.consoles[s.consoleId]?.site ?? null,
    })),
    total,
    totalAtLeast,
    page,
  };
}

const EventPageQuery = z.strictObject({
  ...PageParams,
  operator: text.optional(),
  console: text.optional(),
  site: text.optional(),
  session: text.optional(),
  // One type, or several separated by commas (a chart's bar counts more than one: sign-ins new or resumed).
  type: z
    .string()
    .max(400)
    .transform((v) => v.split(','))
    .pipe(z.array(z.enum(EVENT_TYPES)).min(1).max(EVENT_TYPES.length))
    .optional(),
  outcome: z.enum(EVENT_OUTCOMES).optional(),
  origin: text.optional(),
  from: int.nonnegative().optional(),
  to: int.nonnegative().optional(),
});

/** `GET /v1/admin/events` in paging mode (newest first by default), or undefined for the `after` mode. */
export async function eventsList(deps: TableDeps, ctx: RouteContext) {
  if (!hasAny(ctx, ['cursor', 'sort', 'order', 'q', 'site']) || ctx.query.has('after')) return undefined;
  const q = parseWith(EventPageQuery, queryOf(ctx));
  const { rows, page } = await eventsPage(deps.store, q, pageRequest(q));
  const names = await namesFor(deps.store, {
    consoles: rows.flatMap((e) => (e.subject.console === undefined ? [] : [e.subject.console])),
    operators: rows.flatMap((e) => (e.subject.operator === undefined ? [] : [e.subject.operator])),
  });
  return { events: rows, nextCursor: rows.at(-1)?.cursor ?? 0, names, page };
}

/**
 * In the `after` mode, a console or operator filter may still be a name: it is resolved to the one
 * id it names (a name shared by several is left as given, and matches no id).
 */
export async function resolveSubject(
  store: Store,
  kind: 'console' | 'operator',
  value: string | undefined,
): Promise<string | undefined> {
  if (value === undefined) return undefined;
  const ids = kind === 'console' ? await consoleIdsNamed(store, value) : await operatorIdsNamed(store, value);
  return ids.length === 1 ? ids[0] : value;
}

const RevocationQuery = z.strictObject({
  ...PageParams,
  kind: z.enum(REVOCATION_KINDS).optional(),
  target: text.optional(),
  from: int.nonnegative().optional(),
  to: int.nonnegative().optional(),
  since: int.nonnegative().optional(),
});

export async function revocationsList(deps: TableDeps, ctx: RouteContext, epoch: number) {
  if (!hasAny(ctx, [...PAGE_KEYS, 'kind', 'target', 'from', 'to'])) return undefined;
  const q = parseWith(RevocationQuery, queryOf(ctx));
  const { rows, page } = await revocationsPage(deps.store, q, pageRequest(q));
  // What the admin reads instead of ids, and how far each revocation got (from the consoles' acknowledgements).
  const names = await namesFor(deps.store, {
    consoles: rows.flatMap((r) => (r.consoleId === null ? [] : [r.consoleId])),
    operators: rows.flatMap((r) => [
      ...(r.operatorId === null ? [] : [r.operatorId]),
      ...(r.actor.startsWith('operator:') ? [r.actor.slice('operator:'.length)] : []),
    ]),
  });
  const deliveries = await deliverySummaries(
    deps.store,
    rows.map((r) => r.epoch),
  );
  return {
    epoch,
    revocations: rows.map((r) => ({
      ...r,
      deliveries: deliveries.get(r.epoch) ?? { sent: 0, acknowledged: 0, maxAckMs: null },
    })),
    names,
    page,
  };
}
