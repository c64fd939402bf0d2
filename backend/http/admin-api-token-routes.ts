/**
 * Admin API tokens (list, issue, revoke) and the operators' CSV import (issue 12). Registered with
 * the other admin routes (admin-routes.ts); the services are admin-api-tokens.ts and
 * admin-operator-import.ts.
 */
import { z } from 'zod';
import { BatonError } from '../../shared/errors.js';
import { ROUTES } from '../../shared/routes.js';
import { RevokeRequestSchema } from '../../shared/http-api.js';
import type { AdminAuth } from '../services/admin-auth.js';
import { viewOf } from '../services/admin-api-tokens.js';
import { importOperators } from '../services/admin-operator-import.js';
import { apiTokensPage, namesFor, PAGE_LIMIT_MAX } from '../store/admin-tables.js';
import type { OperatorDirectory } from '../services/operator-directory.js';
import type { Store } from '../store/repositories.js';
import { parseJson, parseWith } from './http-kit.js';
import type { Route, RouteContext } from './router.js';

export interface ApiTokenRouteDeps {
  store: Store;
  auth: AdminAuth;
  operators: OperatorDirectory;
  clock: () => number;
}

const TokenQuery = z.strictObject({
  q: z.string().max(200).optional(),
  sort: z.string().max(40).optional(),
  order: z.enum(['asc', 'desc']).optional(),
  cursor: z.string().max(1024).optional(),
  limit: z.coerce.number().int().min(1).max(PAGE_LIMIT_MAX).optional(),
  scope: z.enum(['read', 'admin']).optional(),
  state: z.enum(['active', 'expired', 'revoked']).optional(),
});

/** Tokens are issued and revoked by a person: an admin signed in with a passkey (not the bootstrap token, not a token). */
function signedInActor(ctx: RouteContext): string {
  if (ctx.admin?.kind !== 'admin') {
    throw new BatonError(
      'ADMIN_API_TOKEN_SCOPE',
      'Admin API tokens are issued and revoked by an admin signed in with a passkey (not the bootstrap token, not another token)',
    );
  }
  return ctx.admin.actor;
}

export function apiTokenRoutes(deps: ApiTokenRouteDeps): Route[] {
  return [
    {
      route: 'adminApiTokens',
      // Search (label or id), filters (scope, state), sort and cursor paging like every admin list; without
      // any of these parameters, the newest 1,000 as before.
      handler: async (ctx) => {
        if (ctx.query.size === 0) return { tokens: await deps.auth.apiTokens.list() };
        const q = parseWith(TokenQuery, Object.fromEntries(ctx.query));
        const now = deps.clock();
        const { rows, page, total, totalAtLeast } = await apiTokensPage(
          deps.store,
          q,
          { sort: q.sort, order: q.order, cursor: q.cursor, limit: q.limit },
          now,
        );
        const tokens = rows.map((row) => viewOf(row, now));
        // Who issued (and revoked) each token, by name.
        const names = await namesFor(deps.store, {
          consoles: [],
          operators: tokens.flatMap((tok) =>
            [tok.createdBy, tok.revokedBy].flatMap((a) =>
              typeof a === 'string' && a.startsWith('operator:') ? [a.slice('operator:'.length)] : [],
            ),
          ),
        });
        return { tokens, names, total, totalAtLeast, page };
      },
    },
    {
      route: 'adminApiTokenCreate',
      handler: async (ctx) => {
        const actor = signedInActor(ctx);
        const input = parseJson(ctx.req, ctx.body, ROUTES.adminApiTokenCreate.request);
        return { status: 201, body: await deps.auth.apiTokens.issue(input, actor) };
      },
    },
    {
      route: 'adminApiTokenRevoke',
      handler: async (ctx) => {
        const actor = signedInActor(ctx);
        const { reason } = parseJson(ctx.req, ctx.body, RevokeRequestSchema);
        const id = ctx.params.id ?? '';
        const apiToken = await deps.auth.apiTokens.revoke(id, reason, actor);
        // Every node closes the token's live streams when the revocation's pointer arrives; this
        // node's close here does not wait for it (and covers a token revoked before).
        deps.auth.closeApiTokenStreams(id);
        return { apiToken };
      },
    },
    {
      route: 'adminOperatorsImport',
      // A CSV of a few thousand operators is larger than the default 64 KiB body.
      maxBodyBytes: 1_100_000,
      handler: async (ctx) => {
        const { csv, dryRun } = parseJson(ctx.req, ctx.body, ROUTES.adminOperatorsImport.request);
        const result = await importOperators(
          { store: deps.store, operators: deps.operators },
          csv,
          dryRun,
          ctx.actor ?? 'admin:unknown',
          // Making admins hands over the keys: a person with a fresh step-up, never a token.
          () => (ctx.admin === undefined ? undefined : deps.auth.requirePerson(ctx.admin)),
        );
        return { status: dryRun || result.created === 0 ? 200 : 201, body: result };
      },
    },
  ];
}
