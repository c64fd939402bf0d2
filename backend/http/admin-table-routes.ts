/**
 * The admin API's lists at estate scale (issue 12): search, sort, filters and cursor paging for the
 * consoles, operators, sessions, events and revocations lists (backend/store/admin-tables.ts).
 *
 * The smaller lists (services, break-glass grants, Shared Signals streams and transmitters, policy
 * versions, an operator's enrolment codes, suspended passkeys) take the same parameters, at the end.
 *
 * Every list takes `q` (search), `sort` (a key of the list's allow-list), `order` (`asc`/`desc`),
 * `cursor` (opaque, from the previous answer's `page.next` / `page.prev`) and `limit` (1–1000,
 * default 50), plus its own filters; filters that name a console, an operator or a service accept the name as
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
  breakGlassPage,
  enrolmentCodesPage,
  policyVersionsPage,
  receiverNamesFor,
  revocationsPage,
  serviceIdsNamed,
  serviceNamesFor,
  servicesPage,
  sessionsPage,
  ssfStreamsPage,
  ssfTransmittersPage,
  suspendedCredentialsPage,
  type PageRequest,
} from '../store/admin-tables.js';
import type { RouteId } from '../../shared/routes.js';
import type { ConsoleRecord, SessionRecord, Store } from '../store/repositories.js';
import type { Row } from '../store/kysely-schema.js';
import { enrolmentCodeFrom } from '../store/kysely-admin.js';
import { MAX_FAILED_ATTEMPTS } from '../services/assertion-gate.js';
import { credentialSummary } from '../services/operator-directory.js';
import { grantFrom } from '../break-glass/break-glass.js';
import type { ServiceAccounts } from '../service-accounts/service-accounts.js';
import { serviceFrom } from '../service-accounts/service-store.js';
import { parseWith } from './http-kit.js';
import type { Handler, Route, RouteContext } from './router.js';

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
  /** This node's delivery rows of these revocations written (backend/services/revocation-hub.ts): a page shows each whole. */
  revocations?: { deliveriesWritten(epochs: readonly number[]): Promise<void> };
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
  // A service account (id or name): the backend's events about it.
  service: text.optional(),
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
  const services = await serviceNamesFor(
    deps.store,
    rows.flatMap((e) => (e.subject.service === undefined ? [] : [e.subject.service])),
  );
  return { events: rows, nextCursor: rows.at(-1)?.cursor ?? 0, names: { ...names, services }, page };
}

/**
 * In the `after` mode, a console, operator or service filter may still be a name: it is resolved to
 * the one id it names (a name shared by several is left as given, and matches no id).
 */
export async function resolveSubject(
  store: Store,
  kind: 'console' | 'operator' | 'service',
  value: string | undefined,
): Promise<string | undefined> {
  if (value === undefined) return undefined;
  const ids =
    kind === 'console'
      ? await consoleIdsNamed(store, value)
      : kind === 'operator'
        ? await operatorIdsNamed(store, value)
        : await serviceIdsNamed(store, value);
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
  await deps.revocations?.deliveriesWritten(rows.map((r) => r.epoch));
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

// ---- the smaller lists (issue 12): the same parameters and answer shape as the lists above ----

/** The operators an actor string names (`operator:<id>`), for the names a page shows. */
function actorOperators(actors: readonly (string | null)[]): string[] {
  return actors.flatMap((a) => (a !== null && a.startsWith('operator:') ? [a.slice('operator:'.length)] : []));
}

const EnrolmentCodeQuery = z.strictObject({
  ...PageParams,
  q: z
    .string()
    .regex(/^[0-9a-f]{0,16}$/i, 'the start of a code id (hexadecimal)')
    .optional(),
  state: z.enum(['usable', 'used', 'expired', 'revoked']).optional(),
});

/** An operator's enrolment codes, paged (the operator page), or undefined for the whole list (at most 200). */
export async function enrolmentCodesList(
  deps: { store: Store; clock: () => number },
  operatorId: string,
  ctx: RouteContext,
) {
  if (!hasAny(ctx, [...PAGE_KEYS, 'state'])) return undefined;
  const q = parseWith(EnrolmentCodeQuery, queryOf(ctx));
  const now = deps.clock();
  const { rows, page, total, totalAtLeast } = await enrolmentCodesPage(deps.store, operatorId, q, pageRequest(q), now);
  const codes = rows.map(enrolmentCodeFrom);
  return {
    codes: codes.map((c) => ({ ...c, state: codeState(c, now) })),
    names: await namesFor(deps.store, { consoles: [], operators: actorOperators(codes.map((c) => c.issuedBy)) }),
    total,
    totalAtLeast,
    page,
  };
}

export function codeState(c: { revokedAt: number | null; usedAt: number | null; expiresAt: number }, now: number) {
  return c.revokedAt !== null ? 'revoked' : c.usedAt !== null ? 'used' : c.expiresAt <= now ? 'expired' : 'usable';
}

const PolicyVersionQuery = z.strictObject({
  ...PageParams,
  from: int.nonnegative().optional(),
  to: int.nonnegative().optional(),
});

/** Policy versions, paged (newest first), or undefined for the whole list. */
export async function policyVersionsList(deps: { store: Store }, ctx: RouteContext) {
  if (!hasAny(ctx, [...PAGE_KEYS, 'from', 'to'])) return undefined;
  const q = parseWith(PolicyVersionQuery, queryOf(ctx));
  const { rows, page, total, totalAtLeast } = await policyVersionsPage(deps.store, q, pageRequest(q));
  const versions = [];
  for (const row of rows) {
    const version = await deps.store.policies.get(Number(row.version));
    if (version !== undefined) versions.push(version);
  }
  return {
    versions,
    names: await namesFor(deps.store, { consoles: [], operators: actorOperators(versions.map((v) => v.publishedBy)) }),
    total,
    totalAtLeast,
    page,
  };
}

const SuspendedQuery = z.strictObject({ ...PageParams, operator: text.optional() });

/** Suspended passkeys, paged (the most recently suspended first), or undefined for the whole list. */
export async function suspendedCredentialsList(deps: { store: Store }, ctx: RouteContext) {
  if (!hasAny(ctx, [...PAGE_KEYS, 'operator'])) return undefined;
  const q = parseWith(SuspendedQuery, queryOf(ctx));
  const { rows, page, total, totalAtLeast } = await suspendedCredentialsPage(deps.store, q, pageRequest(q));
  const credentials = [];
  for (const row of rows) {
    const c = await deps.store.operators.getCredential(String(row.id));
    if (c !== undefined) credentials.push(c);
  }
  const names = await namesFor(deps.store, {
    consoles: credentials.map((c) => c.registeredOnConsole),
    operators: credentials.map((c) => c.operatorId),
  });
  return {
    credentials: credentials.map((c) => ({
      ...credentialSummary(c),
      operatorId: c.operatorId,
      operatorName: names.operators[c.operatorId] ?? c.operatorId,
    })),
    names,
    total,
    totalAtLeast,
    page,
  };
}

export interface SmallListDeps {
  store: Store;
  services: Pick<ServiceAccounts, 'viewsOf'>;
}

const ServiceQuery = z.strictObject({ ...PageParams, state: z.enum(['active', 'revoked']).optional() });

const BreakGlassQuery = z.strictObject({
  ...PageParams,
  state: z.enum(['awaiting', 'signed-off']).optional(),
  method: z.enum(['admin-code', 'supervisor-tap']).optional(),
  used: z.enum(['true', 'false']).optional(),
  operator: text.optional(),
  console: text.optional(),
  site: text.optional(),
  from: int.nonnegative().optional(),
  to: int.nonnegative().optional(),
});

const SsfStreamQuery = z.strictObject({
  ...PageParams,
  status: z.enum(['enabled', 'paused', 'disabled']).optional(),
  receiver: text.optional(),
});

const SsfTransmitterQuery = z.strictObject({
  ...PageParams,
  state: z.enum(['enabled', 'paused', 'disabled']).optional(),
});

/** The rows of `all` whose id is on the page, in the page's order. */
function inPageOrder<T extends { id: string }>(all: readonly T[], rows: readonly Row[]): T[] {
  const byId = new Map(all.map((item) => [item.id, item]));
  return rows.flatMap((row) => {
    const item = byId.get(String(row.id));
    return item === undefined ? [] : [item];
  });
}

type Paged = (deps: SmallListDeps, ctx: RouteContext, whole: Handler) => Promise<unknown>;

/**
 * The paged mode of the lists whose routes live with their features (service accounts, break-glass,
 * Shared Signals): with any paging parameter or filter, the admin API's paging; without, the route's
 * own answer, unchanged. The Shared Signals views (backlog, latency, rejections) are made by their
 * services: the page's ids are chosen by the indexed query, the views taken from the service's list
 * (a few dozen streams and transmitters at most: issued one by one by people).
 */
const SMALL_LISTS: Partial<Record<RouteId, { keys: readonly string[]; paged: Paged }>> = {
  adminServices: {
    keys: [...PAGE_KEYS, 'state'],
    paged: async (deps, ctx) => {
      const q = parseWith(ServiceQuery, queryOf(ctx));
      const { rows, page, total, totalAtLeast } = await servicesPage(deps.store, q, pageRequest(q));
      const services = await deps.services.viewsOf(rows.map(serviceFrom));
      // Who enrolled and revoked each service, by name.
      const names = await namesFor(deps.store, {
        consoles: [],
        operators: actorOperators(services.flatMap((s) => [s.enrolledBy, s.revokedBy])),
      });
      return { services, names, total, totalAtLeast, page };
    },
  },
  adminBreakGlass: {
    keys: [...PAGE_KEYS, 'state', 'method', 'used', 'operator', 'console', 'site', 'from', 'to'],
    paged: async (deps, ctx) => {
      const q = parseWith(BreakGlassQuery, queryOf(ctx));
      const { rows, page, total, totalAtLeast } = await breakGlassPage(deps.store, q, pageRequest(q));
      const grants = rows.map(grantFrom);
      const names = await namesFor(deps.store, {
        consoles: grants.map((g) => g.consoleId),
        operators: [
          ...grants.map((g) => g.operatorId),
          ...actorOperators(grants.flatMap((g) => [g.approvedBy, g.signedOffBy])),
        ],
      });
      return { grants, names, total, totalAtLeast, page };
    },
  },
  adminSsfStreams: {
    keys: [...PAGE_KEYS, 'status', 'receiver'],
    paged: async (deps, ctx, whole) => {
      const q = parseWith(SsfStreamQuery, queryOf(ctx));
      const { rows, page, total, totalAtLeast } = await ssfStreamsPage(deps.store, q, pageRequest(q));
      const answer = (await whole({ ...ctx, query: new URLSearchParams() })) as {
        streams: { id: string; receiverId: string }[];
      };
      const streams = inPageOrder(answer.streams, rows);
      // Whose each stream is, by name (the receivers of this page only).
      const receivers = await receiverNamesFor(
        deps.store,
        streams.map((s) => s.receiverId),
      );
      return {
        ...answer,
        streams: streams.map((s) => ({ ...s, receiverName: receivers[s.receiverId] ?? null })),
        total,
        totalAtLeast,
        page,
      };
    },
  },
  adminSsfTransmitters: {
    keys: [...PAGE_KEYS, 'state'],
    paged: async (deps, ctx, whole) => {
      const q = parseWith(SsfTransmitterQuery, queryOf(ctx));
      const { rows, page, total, totalAtLeast } = await ssfTransmittersPage(deps.store, q, pageRequest(q));
      const answer = (await whole({ ...ctx, query: new URLSearchParams() })) as { transmitters: { id: string }[] };
      return { ...answer, transmitters: inPageOrder(answer.transmitters, rows), total, totalAtLeast, page };
    },
  },
};

/** `routes` with the paged mode of the smaller lists among them (server.ts applies it to their features' routes). */
export function withPagedLists(deps: SmallListDeps, routes: Route[]): Route[] {
  return routes.map((route) => {
    const list = SMALL_LISTS[route.route];
    if (list === undefined) return route;
    const whole = route.handler;
    return {
      ...route,
      handler: (ctx: RouteContext) => (hasAny(ctx, list.keys) ? list.paged(deps, ctx, whole) : whole(ctx)),
    };
  });
}
