import { once } from 'node:events';
import { z } from 'zod';
import { BatonError } from '../../shared/errors.js';
import { EVENT_OUTCOMES, EVENT_TYPES } from '../../shared/events.js';
import type { Store } from '../store/repositories.js';
import { CODE_ID_LENGTH } from '../store/admin-repositories.js';
import { namesFor } from '../store/admin-tables.js';
import type { AdminAuth } from '../services/admin-auth.js';
import { MAX_EXPORT_EVENTS, adminStats, csvHeader, csvRow, eventPages } from '../services/admin-insights.js';
import type { EventLog } from '../services/event-log.js';
import type { ChainCheckpoints } from '../services/chain-checkpoints.js';
import type { OperatorDirectory } from '../services/operator-directory.js';
import type { PolicyService } from '../services/policy-service.js';
import { SECURITY_HEADERS, parseJson, parseWith } from './http-kit.js';
import type { Route, RouteContext } from './router.js';
import { assertNotLastAdmin } from './admin-routes.js';
import { codeState, enrolmentCodesList, resolveSubject } from './admin-table-routes.js';

export interface AdminConsoleRouteDeps {
  store: Store;
  events: EventLog;
  operators: OperatorDirectory;
  policies: PolicyService;
  auth: AdminAuth;
  isConnected: (consoleId: string) => boolean;
  clock: () => number;
  checkpoints: ChainCheckpoints;
}

const int = z.coerce.number().int();
const RoleSchema = z.string().regex(/^[a-z][a-z0-9-]{0,39}$/);
const DAY_MS = 24 * 3600 * 1000;

const ExportQuerySchema = z.strictObject({
  format: z.enum(['jsonl', 'csv']),
  from: int.nonnegative(),
  to: int.nonnegative(),
  operator: z.string().max(128).optional(),
  console: z.string().max(128).optional(),
  session: z.string().max(128).optional(),
  type: z.enum(EVENT_TYPES).optional(),
  outcome: z.enum(EVENT_OUTCOMES).optional(),
  /** JSON Lines only: end with the latest signed chain checkpoint and the keys that verify it. */
  checkpoints: z.enum(['true', 'false']).default('false'),
});

function actorOf(ctx: RouteContext): string {
  return ctx.actor ?? 'admin:unknown';
}

/** Endpoints the admin console added: code listing and revocation, roles, rollback, export, pictures. */
export function adminConsoleRoutes(deps: AdminConsoleRouteDeps): Route[] {
  return [
    {
      route: 'adminEnrolmentCodes',
      handler: async (ctx) => {
        const operator = await deps.operators.get(ctx.params.id ?? '');
        // Search (a code id's start), a state filter, sort and paging like every admin list; without, the newest 200.
        const paged = await enrolmentCodesList(deps, operator.id, ctx);
        if (paged !== undefined) return paged;
        const now = deps.clock();
        const codes = await deps.store.admin.listCodes(operator.id);
        return {
          codes: codes.map((c) => ({ ...c, state: codeState(c, now) })),
          // Who issued each code, by name (the ids on this page only).
          names: await namesFor(deps.store, {
            consoles: [],
            operators: codes.flatMap((c) =>
              c.issuedBy.startsWith('operator:') ? [c.issuedBy.slice('operator:'.length)] : [],
            ),
          }),
        };
      },
    },
    {
      route: 'adminEnrolmentCodeRevoke',
      handler: async (ctx) => {
        parseJson(ctx.req, ctx.body, z.strictObject({}));
        const operator = await deps.operators.get(ctx.params.id ?? '');
        const codeId = parseWith(z.string().regex(new RegExp(`^[0-9a-f]{${CODE_ID_LENGTH}}$`)), ctx.params.codeId);
        await deps.events.atomically(async (uow) => {
          if (!(await uow.store.admin.revokeCode(operator.id, codeId, deps.clock()))) {
            throw new BatonError('NOT_FOUND', `No unused enrolment code "${codeId}" for operator "${operator.id}"`);
          }
          await uow.record({
            type: 'admin-action',
            subject: { operator: operator.id },
            outcome: 'success',
            reasons: ['enrolment-code-revoked'],
            detail: { actor: actorOf(ctx), codeId },
          });
        });
        return { revoked: codeId };
      },
    },
    {
      route: 'adminOperatorRoles',
      handler: async (ctx) => {
        const { roles } = parseJson(ctx.req, ctx.body, z.strictObject({ roles: z.array(RoleSchema).max(20) }));
        const operator = await deps.operators.get(ctx.params.id ?? '');
        const next = [...new Set(roles)];
        const losesAdmin = operator.roles.includes('admin') && !next.includes('admin');
        if (losesAdmin) await assertNotLastAdmin(deps.store, operator.id);
        await deps.events.atomically(async (uow) => {
          await uow.store.admin.setRoles(operator.id, next);
          await uow.record({
            type: 'admin-action',
            subject: { operator: operator.id },
            outcome: 'success',
            reasons: ['operator-roles-changed'],
            detail: { actor: actorOf(ctx), previousRoles: operator.roles.join(' '), roles: next.join(' ') },
          });
          // Losing the admin role ends that operator's admin sessions at once (live streams included).
          if (losesAdmin) await deps.auth.endOperatorSessionsIn(uow, operator.id, 'admin-role-removed');
        });
        return { operator: { id: operator.id, displayName: operator.displayName, roles: next } };
      },
    },
    {
      route: 'adminPolicyRollback',
      handler: async (ctx) => {
        const { toVersion, baseVersion } = parseJson(
          ctx.req,
          ctx.body,
          z.strictObject({ toVersion: z.int().positive(), baseVersion: z.int().nonnegative() }),
        );
        const old = await deps.store.policies.get(toVersion);
        if (old === undefined) throw new BatonError('NOT_FOUND', `No policy version ${toVersion}`);
        const published = await deps.policies.publish(old.policy, baseVersion, actorOf(ctx));
        await deps.events.record({
          type: 'admin-action',
          subject: {},
          outcome: 'success',
          reasons: ['policy-rolled-back'],
          detail: { actor: actorOf(ctx), fromVersion: baseVersion, toVersion, newVersion: published.version },
        });
        return { status: 201, body: published };
      },
    },
    {
      route: 'adminStats',
      handler: (ctx) => {
        const now = deps.clock();
        const q = parseWith(
          z.strictObject({
            from: int.nonnegative().optional(),
            to: int.nonnegative().optional(),
            bucketMinutes: int
              .min(1)
              .max(24 * 60)
              .default(60),
          }),
          Object.fromEntries(ctx.query),
        );
        const to = q.to ?? now;
        const from = q.from ?? to - DAY_MS;
        const bucketMs = q.bucketMinutes * 60_000;
        if (from >= to || (to - from) / bucketMs > 500) {
          throw new BatonError('SCHEMA_INVALID', 'Expected from < to and at most 500 buckets', {
            issues: [{ path: 'from', message: 'from must be before to, and (to - from) / bucket ≤ 500' }],
          });
        }
        return adminStats(deps, { from, to, bucketMs });
      },
    },
    {
      route: 'adminEventsExport',
      handler: async (ctx) => {
        const q = parseWith(ExportQuerySchema, Object.fromEntries(ctx.query));
        if (q.from >= q.to) {
          throw new BatonError('SCHEMA_INVALID', 'Expected from < to', {
            issues: [{ path: 'to', message: 'to must be after from' }],
          });
        }
        if (q.checkpoints === 'true' && q.format !== 'jsonl') {
          throw new BatonError('SCHEMA_INVALID', 'Checkpoints are exported with format=jsonl only', {
            issues: [{ path: 'checkpoints', message: 'use format=jsonl' }],
          });
        }
        await deps.events.record({
          type: 'admin-action',
          subject: {},
          outcome: 'success',
          reasons: ['audit-exported'],
          detail: { actor: actorOf(ctx), format: q.format, from: q.from, to: q.to },
        });
        // An operator or a console may be given by name, as in the other filters (one id it names, or as given).
        const subjects = {
          operator: await resolveSubject(deps.store, 'operator', q.operator),
          console: await resolveSubject(deps.store, 'console', q.console),
        };
        streamExport(ctx, deps.events, { ...q, ...subjects }, deps.checkpoints).catch(() => ctx.res.destroy());
        return undefined;
      },
    },
  ];
}

/** Streams the export page by page, paced by the socket; bounded by MAX_EXPORT_EVENTS. */
async function streamExport(
  ctx: RouteContext,
  events: EventLog,
  q: z.infer<typeof ExportQuerySchema>,
  checkpoints: ChainCheckpoints,
): Promise<void> {
  const { res } = ctx;
  const stamp = (t: number) => new Date(t).toISOString().replace(/[:.]/g, '-');
  res.writeHead(200, {
    ...SECURITY_HEADERS,
    'content-type': q.format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8',
    'content-disposition': `attachment; filename="baton-events-${stamp(q.from)}-${stamp(q.to)}.${q.format === 'csv' ? 'csv' : 'jsonl'}"`,
  });
  if (q.format === 'csv') res.write(csvHeader());
  const filter = { operator: q.operator, console: q.console, session: q.session, type: q.type, from: q.from, to: q.to };
  const pages = eventPages(events, filter, MAX_EXPORT_EVENTS);
  let closed = false;
  res.on('close', () => (closed = true));
  for (;;) {
    const next = await pages.next();
    if (next.done === true) {
      if (next.value.truncated) {
        const note = { truncated: true, limit: MAX_EXPORT_EVENTS, nextAfterCursor: next.value.lastCursor };
        res.write(
          q.format === 'csv'
            ? `"# truncated at ${MAX_EXPORT_EVENTS} events; continue after cursor ${next.value.lastCursor}"\r\n`
            : `${JSON.stringify(note)}\n`,
        );
      }
      break;
    }
    const rows = next.value.filter((e) => q.outcome === undefined || e.outcome === q.outcome);
    const chunk = rows.map((e) => (q.format === 'csv' ? csvRow(e) : `${JSON.stringify(e)}\n`)).join('');
    if (chunk !== '' && !res.write(chunk)) await once(res, 'drain');
    if (closed) return;
  }
  if (q.checkpoints === 'true') {
    // Signed now if a head moved, so the checkpoint covers every event exported above.
    await checkpoints.checkpoint('export');
    const trailer = { checkpoint: checkpoints.latestView(), checkpointKeys: checkpoints.publicKeys().keys };
    res.write(`${JSON.stringify(trailer)}\n`);
  }
  res.end();
}
