import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import {
  BreakGlassApproveRequestSchema,
  BreakGlassListQuerySchema,
  BreakGlassRedeemRequestSchema,
  BreakGlassRequestSchema,
  BreakGlassSignOffRequestSchema,
  IssueBreakGlassCodeRequestSchema,
} from '../../shared/break-glass-api.js';
import { parseJson, parseWith } from '../http/http-kit.js';
import type { Route } from '../http/router.js';
import type { BreakGlass } from './break-glass.js';

export interface BreakGlassRouteDeps {
  breakGlass: BreakGlass;
}

/**
 * Break-glass: the admin's one-time code and the console's redemption, the supervisor's tap (request,
 * approve), the review list and its sign-off.
 */
export function breakGlassRoutes(deps: BreakGlassRouteDeps): Route[] {
  return [
    {
      route: 'adminBreakGlassCodeIssue',
      handler: async (ctx) => {
        const input = parseJson(ctx.req, ctx.body, IssueBreakGlassCodeRequestSchema);
        return { status: 201, body: await deps.breakGlass.issueCode(input, ctx.actor ?? 'unknown') };
      },
    },
    {
      route: 'breakGlassRedeem',
      handler: async (ctx) => {
        if (ctx.console === undefined) throw new Error('console route without an authenticated console');
        const input = parseJson(ctx.req, ctx.body, BreakGlassRedeemRequestSchema);
        return { status: 201, body: await deps.breakGlass.redeem(ctx.console, input) };
      },
    },
    {
      route: 'breakGlassRequest',
      handler: async (ctx) => {
        if (ctx.console === undefined) throw new Error('console route without an authenticated console');
        const input = parseJson(ctx.req, ctx.body, BreakGlassRequestSchema);
        return { status: 201, body: await deps.breakGlass.request(ctx.console, input) };
      },
    },
    {
      route: 'breakGlassApprove',
      handler: async (ctx) => {
        if (ctx.console === undefined) throw new Error('console route without an authenticated console');
        const { response } = parseJson(ctx.req, ctx.body, BreakGlassApproveRequestSchema);
        const result = await deps.breakGlass.approve(
          ctx.console,
          ctx.params.id ?? '',
          response as unknown as AuthenticationResponseJSON,
        );
        return { status: 201, body: result };
      },
    },
    {
      route: 'adminBreakGlass',
      handler: async (ctx) => {
        const q = parseWith(BreakGlassListQuerySchema, Object.fromEntries(ctx.query));
        return { grants: await deps.breakGlass.list(q.all === 'true') };
      },
    },
    {
      route: 'adminBreakGlassSignOff',
      handler: async (ctx) => {
        const { note } = parseJson(ctx.req, ctx.body, BreakGlassSignOffRequestSchema);
        return deps.breakGlass.signOff(ctx.params.id ?? '', note, ctx.actor ?? 'unknown');
      },
    },
  ];
}
