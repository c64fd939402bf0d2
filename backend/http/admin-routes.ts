import type { FreshnessState } from '../cluster/freshness.js';
import { nodeView, type NodeRegistry } from '../cluster/nodes.js';
import { z } from 'zod';
import { BatonError } from '../../shared/errors.js';
import { EVENT_OUTCOMES, EVENT_TYPES, type StoredEvent } from '../../shared/events.js';
import {
  CreateOperatorRequestSchema,
  IssueConsoleTokenRequestSchema,
  IssueEnrolmentCodeRequestSchema,
  PreviewDecisionRequestSchema,
  PublishPolicyRequestSchema,
  RevokeRequestSchema,
} from '../../shared/http-api.js';
import type { ConsoleView, OperatorView } from '../../shared/admin-views.js';
import { validatePolicy } from '../../shared/policy.js';
import type { ConsoleRecord, SessionRecord, Store } from '../store/repositories.js';
import type { OutboxReport } from '../store/admin-repositories.js';
import type { AdminAuth } from '../services/admin-auth.js';
import type { ConsoleRegistry } from '../services/console-registry.js';
import type { ChainReport, EventLog, EventFilter } from '../services/event-log.js';
import type { OperatorDirectory } from '../services/operator-directory.js';
import type { PolicyService } from '../services/policy-service.js';
import type { RevocationHub } from '../services/revocation-hub.js';
import type { SessionService } from '../services/session-service.js';
import type { ChainCheckpoints, CheckpointCheck } from '../services/chain-checkpoints.js';
import type { TokenIssuer } from '../crypto/token-issuer.js';
import { isDatabaseDamage, type DatabaseHealth } from '../store/database-health.js';
import { parseJson, parseWith } from './http-kit.js';
import { apiTokenRoutes } from './admin-api-token-routes.js';
import {
  consolesList,
  eventsList,
  operatorsList,
  resolveSubject,
  policyVersionsList,
  revocationsList,
  sessionsList,
  suspendedCredentialsList,
} from './admin-table-routes.js';
import { deliverySummaries, namesFor, PAGE_LIMIT_MAX, policyAdoption } from '../store/admin-tables.js';
import { endStream, streamEvents } from './event-stream.js';
import type { Route, RouteContext } from './router.js';

export interface AdminRouteDeps {
  store: Store;
  registry: ConsoleRegistry;
  operators: OperatorDirectory;
  sessions: SessionService;
  policies: PolicyService;
  revocations: RevocationHub;
  events: EventLog;
  auth: AdminAuth;
  isConnected: (consoleId: string) => boolean;
  clock: () => number;
  /** Signed chain-head checkpoints that verify compares each chain with. */
  checkpoints: ChainCheckpoints;
  /** The database file's integrity, reported by verify. */
  database: DatabaseHealth;
  tokens: TokenIssuer;
  /** A live-stream reader whose socket takes nothing for this long is disconnected. */
  streamStallMs: number;
  streamKeepAliveMs: number;
  /** The cluster: this node's id, the node registry, this node's freshness and the bound (ms). */
  cluster: {
    nodeId: string;
    nodes: NodeRegistry;
    freshness: { state(): FreshnessState };
    staleAfterMs: number;
  };
}

const int = z.coerce.number().int();
const EventFilterQuerySchema = z.strictObject({
  operator: z.string().max(128).optional(),
  console: z.string().max(128).optional(),
  session: z.string().max(128).optional(),
  service: z.string().max(128).optional(),
  type: z.enum(EVENT_TYPES).optional(),
  outcome: z.enum(EVENT_OUTCOMES).optional(),
  origin: z.string().max(128).optional(),
  from: int.nonnegative().optional(),
  to: int.nonnegative().optional(),
  after: int.nonnegative().optional(),
  limit: int.min(1).max(1000).default(100),
});

/**
 * Refuses to take away the last way in: removing (or revoking) the only operator who holds the admin
 * role with a usable passkey would lock every admin out, the bootstrap token being retired by then.
 */
export async function assertNotLastAdmin(store: Store, operatorId: string, withoutCredential?: string): Promise<void> {
  const usable = async (id: string, skip?: string) =>
    (await store.operators.listCredentials(id)).some((c) => c.revokedAt === null && c.id !== skip);
  const target = await store.operators.get(operatorId);
  if (target === undefined || !target.roles.includes('admin') || target.revokedAt !== null) return;
  if (!(await usable(operatorId))) return;
  for (const o of await store.operators.list()) {
    if (o.id !== operatorId && o.revokedAt === null && o.roles.includes('admin') && (await usable(o.id))) return;
  }
  if (withoutCredential !== undefined && (await usable(operatorId, withoutCredential))) return;
  throw new BatonError('LAST_ADMIN', 'This is the last admin who can sign in: make another admin first');
}

function actorOf(ctx: RouteContext): string {
  return ctx.actor ?? 'admin:unknown';
}

function consoleView(c: ConsoleRecord, online: boolean, outbox: OutboxReport | undefined): ConsoleView {
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
    outbox: outbox === undefined ? null : { pending: outbox.pending, max: outbox.max, reportedAt: outbox.reportedAt },
  };
}

/** Scanned at most per page when filtering by outcome (the store has no outcome index). */
const MAX_OUTCOME_SCAN = 10_000;

function sessionAdminView(s: SessionRecord) {
  return { ...s };
}

/** The admin API: everything an administrator does, each action recorded as an event. */
export function adminRoutes(deps: AdminRouteDeps): Route[] {
  const revoke = (kind: 'operator' | 'credential' | 'console' | 'session') => async (ctx: RouteContext) => {
    const { reason } = parseJson(ctx.req, ctx.body, RevokeRequestSchema);
    if (kind === 'operator') await assertNotLastAdmin(deps.store, ctx.params.id ?? '');
    if (kind === 'credential') {
      const credential = await deps.store.operators.getCredential(ctx.params.id ?? '');
      if (credential !== undefined) await assertNotLastAdmin(deps.store, credential.operatorId, credential.id);
    }
    const outcome = await deps.revocations.revoke(kind, ctx.params.id ?? '', reason, actorOf(ctx));
    return { epoch: outcome.revocation.epoch, sessionsRevoked: outcome.sessionsRevoked, pushedTo: outcome.pushedTo };
  };

  return [
    // Admin API tokens and the operators' CSV import (issue 12).
    ...apiTokenRoutes({ store: deps.store, auth: deps.auth, operators: deps.operators, clock: deps.clock }),
    {
      route: 'adminConsoleTokens',
      handler: async (ctx) => ({
        status: 201,
        body: await deps.registry.issueToken(
          parseJson(ctx.req, ctx.body, IssueConsoleTokenRequestSchema),
          actorOf(ctx),
        ),
      }),
    },
    {
      route: 'adminConsoles',
      handler: async (ctx) => {
        // Search, sort, filters and cursor paging (admin-table-routes.ts); without them, the whole list.
        const paged = await consolesList(deps, ctx);
        if (paged !== undefined) return paged;
        const outbox = new Map((await deps.store.admin.outboxReports()).map((r) => [r.consoleId, r]));
        return {
          consoles: (await deps.store.consoles.list()).map((c) =>
            consoleView(c, deps.isConnected(c.id), outbox.get(c.id)),
          ),
        };
      },
    },
    {
      // The names behind the ids a page shows (never the whole lists): at most 200 of each.
      route: 'adminNames',
      handler: async (ctx) => {
        const ids = z
          .string()
          .max(200 * 201)
          .transform((v) => v.split(',').filter((id) => id !== ''))
          .pipe(z.array(z.string().min(1).max(200)).max(200))
          .optional();
        const q = parseWith(z.strictObject({ consoles: ids, operators: ids }), Object.fromEntries(ctx.query));
        return { names: await namesFor(deps.store, { consoles: q.consoles ?? [], operators: q.operators ?? [] }) };
      },
    },
    {
      route: 'adminConsole',
      handler: async (ctx) => {
        const c = await deps.store.consoles.get(ctx.params.id ?? '');
        if (c === undefined) throw new BatonError('NOT_FOUND', `No console "${ctx.params.id ?? ''}"`);
        const sessions = (await deps.store.sessions.liveOnConsole(c.id)).map(sessionAdminView);
        const head = await deps.events.head(c.id);
        const integrity: StoredEvent[] = [];
        for (const type of [
          'integrity-sequence-gap',
          'integrity-sequence-conflict',
          'integrity-chain-broken',
        ] as const) {
          integrity.push(...(await deps.events.query({ origin: 'backend', console: c.id, type, limit: 1000 })));
        }
        return {
          console: consoleView(
            c,
            deps.isConnected(c.id),
            (await deps.store.admin.outboxReports()).find((r) => r.consoleId === c.id),
          ),
          events: { lastSeq: head.lastSeq, lastHash: head.lastHash, integrityFindings: integrity },
          sessions,
          // The names of the people on this page, looked up by their ids (never the whole operators list).
          names: await namesFor(deps.store, { consoles: [], operators: sessions.map((s) => s.operatorId) }),
        };
      },
    },
    { route: 'adminConsoleRevoke', handler: revoke('console') },
    {
      route: 'adminOperatorCreate',
      handler: async (ctx) => {
        const input = parseJson(ctx.req, ctx.body, CreateOperatorRequestSchema);
        // Making someone an admin hands over the keys: it needs the same fresh step-up as a revocation.
        if (input.roles.includes('admin') && ctx.admin !== undefined) deps.auth.requirePerson(ctx.admin);
        return { status: 201, body: { operator: operatorView(await deps.operators.create(input, actorOf(ctx))) } };
      },
    },
    {
      route: 'adminOperators',
      handler: async (ctx) =>
        (await operatorsList(deps, ctx)) ?? { operators: (await deps.operators.list()).map(operatorView) },
    },
    {
      route: 'adminOperator',
      handler: async (ctx) => {
        const id = ctx.params.id ?? '';
        const operator = operatorView(await deps.operators.get(id));
        const credentials = await deps.operators.credentials(id);
        const sessions = (await deps.store.sessions.liveForOperator(id)).map(sessionAdminView);
        return {
          operator,
          credentials,
          sessions,
          // The consoles this page names (where each passkey was registered, where each session runs).
          names: await namesFor(deps.store, {
            consoles: [...credentials.map((c) => c.registeredOnConsole), ...sessions.map((s) => s.consoleId)],
            operators: [],
          }),
        };
      },
    },
    {
      route: 'adminEnrolmentCodeIssue',
      handler: async (ctx) => {
        const { ttlSeconds } = parseJson(ctx.req, ctx.body, IssueEnrolmentCodeRequestSchema);
        // A code for an admin registers a new admin passkey: whoever holds it can sign in as that
        // admin, so issuing one needs the same fresh step-up as making someone an admin.
        const target = await deps.operators.get(ctx.params.id ?? '');
        if (target.roles.includes('admin') && ctx.admin !== undefined) deps.auth.requirePerson(ctx.admin);
        return { status: 201, body: await deps.operators.issueCode(target.id, ttlSeconds, actorOf(ctx)) };
      },
    },
    {
      route: 'adminOperatorRevoke',
      handler: revoke('operator'),
    },
    {
      route: 'adminOperatorUnlock',
      handler: async (ctx) => {
        parseJson(ctx.req, ctx.body, z.strictObject({}));
        return { operator: operatorView(await deps.operators.unlock(ctx.params.id ?? '', actorOf(ctx))) };
      },
    },
    {
      route: 'adminCredentialRevoke',
      handler: revoke('credential'),
    },
    {
      route: 'adminCredentialsSuspended',
      // Search, sort and paging like every admin list; without them, the whole (short) list as before.
      handler: async (ctx) =>
        (await suspendedCredentialsList(deps, ctx)) ?? { credentials: await deps.operators.suspendedCredentials() },
    },
    {
      // Lifts the suspension a signature-counter regression (possible copy) put on a passkey.
      route: 'adminCredentialReinstate',
      handler: async (ctx) => {
        const { reason } = parseJson(ctx.req, ctx.body, RevokeRequestSchema);
        return { credential: await deps.operators.reinstateCredential(ctx.params.id ?? '', reason, actorOf(ctx)) };
      },
    },
    {
      route: 'adminSessions',
      handler: (ctx) => sessionsList(deps, ctx),
    },
    { route: 'adminSessionRevoke', handler: revoke('session') },
    {
      route: 'adminSessionEnd',
      handler: async (ctx) => {
        const { reason } = parseJson(ctx.req, ctx.body, RevokeRequestSchema);
        return {
          session: sessionAdminView(await deps.sessions.endByAdmin(ctx.params.id ?? '', reason, actorOf(ctx))),
        };
      },
    },
    {
      route: 'adminNodes',
      handler: async () => {
        const { nodeId, nodes, freshness, staleAfterMs } = deps.cluster;
        // Real time: the rows hold each node's own wall clock, never a test's business clock.
        const now = Date.now();
        const rows = await nodes.list();
        return {
          nodeId,
          staleAfterSeconds: staleAfterMs / 1000,
          freshness: freshness.state(),
          nodes: rows.map((row) => ({ ...nodeView(row, now, staleAfterMs), self: row.nodeId === nodeId })),
        };
      },
    },
    {
      route: 'adminRevocations',
      handler: async (ctx) => {
        const { since } = parseWith(
          z.looseObject({ since: int.nonnegative().default(0) }),
          Object.fromEntries(ctx.query),
        );
        // The epoch as the store has it (any node may have issued the latest revocation).
        const epoch = await deps.store.revocations.currentEpoch();
        const paged = await revocationsList(deps, ctx, epoch);
        if (paged !== undefined) return paged;
        return { epoch, revocations: await deps.store.revocations.since(since) };
      },
    },
    {
      route: 'adminRevocationDeliveries',
      handler: async (ctx) => {
        const epoch = parseWith(int.positive(), ctx.params.epoch);
        // This node's rows of this revocation (written once its consoles have answered, 250 ms at most), then its acks still pending.
        await deps.revocations.flushAcks(epoch);
        const { limit } = parseWith(
          z.strictObject({ limit: int.min(0).max(PAGE_LIMIT_MAX).optional() }),
          Object.fromEntries(ctx.query),
        );
        // With `limit`, the counts come from the database and at most `limit` deliveries are listed (the
        // console's page polls `limit=0` while a revocation reaches 10,000 consoles); without it, all, as before.
        if (limit !== undefined) {
          const summary = (await deliverySummaries(deps.store, [epoch])).get(epoch) ?? {
            sent: 0,
            acknowledged: 0,
            maxAckMs: null,
          };
          const some = limit === 0 ? [] : (await deps.store.revocations.deliveries(epoch)).slice(0, limit);
          return { epoch, deliveries: some, ...summary };
        }
        const deliveries = await deps.store.revocations.deliveries(epoch);
        const latencies = deliveries.filter((d) => d.ackedAt !== null).map((d) => (d.ackedAt ?? 0) - d.sentAt);
        return {
          epoch,
          deliveries,
          sent: deliveries.length,
          acknowledged: latencies.length,
          maxAckMs: latencies.length ? Math.max(...latencies) : null,
        };
      },
    },
    {
      route: 'adminPolicy',
      // What the admin edits is the latest in the store (another node may have published it).
      handler: async () => {
        await deps.policies.refresh();
        return deps.policies.version;
      },
    },
    {
      route: 'adminPolicyVersions',
      handler: async (ctx) => {
        // Paged (the Policy page's history table), with who each version reaches, as below.
        const paged = await policyVersionsList(deps, ctx);
        if (paged !== undefined) return { ...paged, adoption: await policyAdoption(deps.store) };
        const versions = await deps.store.policies.list();
        return {
          versions,
          // Who published each version, by name, and who each version reaches (counted by the database).
          names: await namesFor(deps.store, {
            consoles: [],
            operators: versions.flatMap((v) =>
              v.publishedBy.startsWith('operator:') ? [v.publishedBy.slice('operator:'.length)] : [],
            ),
          }),
          adoption: await policyAdoption(deps.store),
        };
      },
    },
    {
      route: 'adminPolicyValidate',
      handler: (ctx) => {
        const result = validatePolicy(parseJson(ctx.req, ctx.body, z.unknown()));
        return result.ok ? { valid: true, issues: [] } : { valid: false, issues: result.issues };
      },
    },
    {
      route: 'adminPolicyPublish',
      handler: async (ctx) => {
        const { policy, baseVersion } = parseJson(ctx.req, ctx.body, PublishPolicyRequestSchema);
        return { status: 201, body: await deps.policies.publish(policy, baseVersion, actorOf(ctx)) };
      },
    },
    {
      route: 'adminPolicyPreview',
      handler: (ctx) => {
        const input = parseJson(ctx.req, ctx.body, PreviewDecisionRequestSchema);
        const now = deps.clock();
        const { channel, level, authAgeSeconds, sessionAgeSeconds } = input.context;
        const decision = deps.policies.preview(
          input.policy,
          {
            channel,
            level,
            authTime: authAgeSeconds === null ? null : now - authAgeSeconds * 1000,
            sessionStartedAt:
              sessionAgeSeconds === undefined || sessionAgeSeconds === null ? null : now - sessionAgeSeconds * 1000,
            now,
          },
          input.action,
        );
        return { decision };
      },
    },
    {
      route: 'adminEvents',
      handler: async (ctx) => {
        const paged = await eventsList(deps, ctx);
        if (paged !== undefined) return paged;
        const q = parseWith(EventFilterQuerySchema, Object.fromEntries(ctx.query));
        q.console = await resolveSubject(deps.store, 'console', q.console);
        q.operator = await resolveSubject(deps.store, 'operator', q.operator);
        q.service = await resolveSubject(deps.store, 'service', q.service);
        if (q.outcome === undefined) {
          const events = await deps.events.query({ ...filterOf(q), afterCursor: q.after, limit: q.limit });
          return { events, nextCursor: events.at(-1)?.cursor ?? q.after ?? 0 };
        }
        // Outcome is filtered while scanning: at most MAX_OUTCOME_SCAN stored events per call;
        // `nextCursor` is where the scan stopped, so paging on it misses nothing.
        const events: StoredEvent[] = [];
        let cursor = q.after ?? 0;
        let scanned = 0;
        while (events.length < q.limit && scanned < MAX_OUTCOME_SCAN) {
          const page = await deps.events.query({ ...filterOf(q), afterCursor: cursor, limit: 1000 });
          for (const event of page) {
            cursor = event.cursor;
            scanned++;
            if (event.outcome === q.outcome) events.push(event);
            if (events.length >= q.limit) break;
          }
          if (page.length < 1000) break;
        }
        return { events, nextCursor: cursor };
      },
    },
    {
      route: 'adminEventsVerify',
      handler: (ctx) => {
        const { origin } = parseWith(
          z.strictObject({ origin: z.string().min(1).max(128) }),
          Object.fromEntries(ctx.query),
        );
        return verifyOrigin(deps, origin);
      },
    },
    {
      route: 'adminCheckpoints',
      handler: async (ctx) => {
        const q = parseWith(
          z.strictObject({ after: int.nonnegative().default(0), limit: int.min(1).max(1000).default(100) }),
          Object.fromEntries(ctx.query),
        );
        const checkpoints = await deps.checkpoints.list(q.after, q.limit);
        return {
          checkpoints,
          nextAfter: checkpoints.at(-1)?.seq ?? q.after,
          keys: deps.checkpoints.publicKeys().keys,
        };
      },
    },
    {
      route: 'adminSigningKeyRotate',
      handler: async (ctx) => {
        const { key } = parseJson(ctx.req, ctx.body, z.strictObject({ key: z.enum(['token', 'checkpoint']) }));
        const rotated = key === 'token' ? await deps.tokens.rotate() : await deps.checkpoints.rotateKey();
        await deps.events.record({
          type: 'admin-action',
          subject: {},
          outcome: 'success',
          reasons: ['signing-key-rotated'],
          detail: { actor: actorOf(ctx), key, previousKid: rotated.previous, kid: rotated.current },
        });
        return { key, previousKid: rotated.previous, kid: rotated.current };
      },
    },
    {
      route: 'adminEventStream',
      handler: (ctx) => {
        const q = parseWith(EventFilterQuerySchema, Object.fromEntries(ctx.query));
        const lastId = ctx.req.headers['last-event-id'];
        const after = typeof lastId === 'string' && /^\d+$/.test(lastId) ? Number(lastId) : q.after;
        // The stream ends when the admin session does (sign-out, expiry, revocation, role removed),
        // or when the bootstrap token that opened it is retired; every keep-alive checks again.
        const principal = ctx.admin;
        if (principal === undefined) throw new BatonError('ADMIN_AUTH_REQUIRED', 'The live stream needs an admin');
        // Destroyed, not only ended: a reader that has stopped reading would never let end() complete.
        const release = deps.auth.holdStream(principal, () => endStream(ctx.res, ': admin session ended'));
        ctx.res.on('close', release);
        const stillAllowed = () => deps.auth.stillAllowed(principal);
        void (async () => {
          // A console, operator or service filter may be a name, as on the lists (resolved to the one id it names).
          q.console = await resolveSubject(deps.store, 'console', q.console);
          q.operator = await resolveSubject(deps.store, 'operator', q.operator);
          q.service = await resolveSubject(deps.store, 'service', q.service);
          await streamEvents(
            ctx,
            deps.events,
            filterOf(q),
            after,
            q.outcome,
            stillAllowed,
            deps.streamStallMs,
            deps.streamKeepAliveMs,
          );
        })().catch(() => ctx.res.destroy());
        return undefined;
      },
    },
  ];
}

function filterOf(q: z.infer<typeof EventFilterQuerySchema>): EventFilter {
  return {
    operator: q.operator,
    console: q.console,
    session: q.session,
    service: q.service,
    type: q.type,
    origin: q.origin,
    from: q.from,
    to: q.to,
  };
}

function operatorView(o: OperatorView): OperatorView {
  return {
    id: o.id,
    displayName: o.displayName,
    roles: o.roles,
    createdAt: o.createdAt,
    failedAttempts: o.failedAttempts,
    revokedAt: o.revokedAt,
    revokedReason: o.revokedReason,
  };
}

/**
 * Re-walks an origin's stored chain (EventLog.verifyChain) and compares it with the latest signed
 * checkpoint; a damaged database shows as a problem instead of a 500.
 */
async function verifyOrigin(deps: AdminRouteDeps, origin: string) {
  const extra: { seq: number; problem: string }[] = [];
  let report: ChainReport;
  try {
    report = await deps.events.verifyChain(origin);
  } catch (error) {
    const knownByCheckpoint =
      error instanceof BatonError && error.code === 'NOT_FOUND' && deps.checkpoints.knows(origin);
    if (!isDatabaseDamage(error) && !knownByCheckpoint) throw error;
    if (isDatabaseDamage(error)) {
      deps.database.markDamaged([error instanceof Error ? error.message : String(error)]);
    }
    report = { origin, checked: 0, lastSeq: 0, intact: false, problemCount: 0, truncated: false, problems: [] };
  }
  if (deps.database.damaged) extra.push({ seq: 0, problem: 'database-damaged' });
  let checkpoint: CheckpointCheck['checkpoint'] = null;
  try {
    const checked = await deps.checkpoints.check(origin);
    checkpoint = checked.checkpoint;
    extra.push(...checked.problems);
  } catch (error) {
    if (!isDatabaseDamage(error)) throw error;
    if (!deps.database.damaged) extra.push({ seq: 0, problem: 'database-damaged' });
    deps.database.markDamaged([error instanceof Error ? error.message : String(error)]);
  }
  const problemCount = report.problemCount + extra.length;
  const problems = [...report.problems, ...extra].slice(0, 100);
  return {
    ...report,
    intact: report.intact && extra.length === 0,
    problemCount,
    truncated: problemCount > problems.length,
    problems,
    checkpoint,
    database: deps.database.view().state,
  };
}
