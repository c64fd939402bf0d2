import { z } from 'zod';
import { BatonError } from '../../shared/errors.js';
import { AuthenticationResponseSchema, RegistrationResponseSchema } from '../../shared/http-api.js';
import { IdSchema } from '../../shared/events.js';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import type { Store } from '../store/repositories.js';
import {
  ADMIN_SESSION_IDLE_MS,
  ADMIN_STEP_UP_MS,
  type AdminAuth,
  type AdminPrincipal,
} from '../services/admin-auth.js';
import type { AdminCeremonies } from '../services/admin-ceremonies.js';
import { parseJson } from './http-kit.js';
import type { Route, RouteContext } from './router.js';

export interface AdminAuthRouteDeps {
  store: Store;
  auth: AdminAuth;
  ceremonies: AdminCeremonies;
  origin: () => string;
  clock: () => number;
  /** The client's address (the socket's, or from X-Forwarded-For behind a trusted proxy). */
  clientAddress: (req: RouteContext['req']) => string;
}

const CodeSchema = z.strictObject({ code: z.string().max(40) });

function signedInAdmin(ctx: RouteContext): Extract<AdminPrincipal, { kind: 'admin' }> {
  const principal = ctx.admin;
  if (principal?.kind !== 'admin') {
    throw new BatonError(
      'ADMIN_AUTH_REQUIRED',
      'This needs an admin signed in with a passkey, not the bootstrap token',
    );
  }
  return principal;
}

/** The admin console's sign-in: passkey ceremonies on the admin origin, the session cookie, step-up. */
export function adminAuthRoutes(deps: AdminAuthRouteDeps): Route[] {
  const sessionBody = (
    operatorId: string,
    displayName: string,
    session: { id: string; createdAt: number; expiresAt: number; lastSeenAt: number; stepUpAt: number | null },
  ) => ({
    admin: { operatorId, displayName },
    session: {
      id: session.id,
      createdAt: session.createdAt,
      expiresAt: session.expiresAt,
      idleExpiresAt: Math.min(session.expiresAt, deps.clock() + ADMIN_SESSION_IDLE_MS),
      stepUpUntil: session.stepUpAt === null ? null : session.stepUpAt + ADMIN_STEP_UP_MS,
    },
  });

  /**
   * The ceremonies anyone may start: limited per client address before anything else is looked at
   * (`429 ADMIN_SIGN_IN_RATE_LIMITED`), then the admin origin is checked. Returns the client's address.
   */
  const admitCeremony = async (ctx: RouteContext): Promise<string> => {
    const client = deps.clientAddress(ctx.req);
    await deps.ceremonies.guard.admit(client);
    deps.auth.checkOrigin(ctx.req);
    return client;
  };

  return [
    {
      route: 'adminAuthStatus',
      handler: async () => ({
        adminOrigin: deps.origin(),
        adminExists: await deps.store.admin.adminPasskeyExists(),
      }),
    },
    {
      route: 'adminBootstrap',
      handler: async (ctx) => {
        const input = parseJson(
          ctx.req,
          ctx.body,
          z.strictObject({
            id: IdSchema.optional(),
            displayName: z.string().trim().min(1).max(100),
            ttlSeconds: z
              .int()
              .min(60)
              .max(7 * 24 * 3600)
              .optional(),
          }),
        );
        if (ctx.admin?.kind === 'admin') deps.auth.requireStepUp(ctx.admin);
        const { operator, code, expiresAt } = await deps.ceremonies.createFirstAdmin(
          { id: input.id, displayName: input.displayName },
          ctx.actor ?? 'admin:unknown',
          input.ttlSeconds,
        );
        return {
          status: 201,
          body: {
            operator: { id: operator.id, displayName: operator.displayName, roles: operator.roles },
            code,
            expiresAt,
            registerAt: `${deps.origin()}/admin/#/register`,
          },
        };
      },
    },
    {
      route: 'adminRegisterOptions',
      handler: async (ctx) => {
        await admitCeremony(ctx);
        const { code } = parseJson(ctx.req, ctx.body, CodeSchema);
        return deps.ceremonies.registrationOptions(code);
      },
    },
    {
      route: 'adminRegisterVerify',
      handler: async (ctx) => {
        await admitCeremony(ctx);
        const { code, response } = parseJson(
          ctx.req,
          ctx.body,
          z.strictObject({ code: z.string().max(40), response: RegistrationResponseSchema }),
        );
        const result = await deps.ceremonies.register(code, response as RegistrationResponseJSON);
        ctx.res.setHeader('set-cookie', deps.auth.sessionCookie(result.token));
        return {
          status: 201,
          body: {
            ...sessionBody(result.operator.id, result.operator.displayName, result.session),
            credential: result.credential,
          },
        };
      },
    },
    {
      route: 'adminSignInOptions',
      handler: async (ctx) => {
        await admitCeremony(ctx);
        parseJson(ctx.req, ctx.body, z.strictObject({}));
        return deps.ceremonies.signInOptions();
      },
    },
    {
      route: 'adminSignInVerify',
      handler: async (ctx) => {
        const client = await admitCeremony(ctx);
        const { response } = parseJson(ctx.req, ctx.body, z.strictObject({ response: AuthenticationResponseSchema }));
        const result = await deps.ceremonies.signIn(response as AuthenticationResponseJSON, client);
        ctx.res.setHeader('set-cookie', deps.auth.sessionCookie(result.token));
        return sessionBody(result.operator.id, result.operator.displayName, result.session);
      },
    },
    {
      route: 'adminAuthSession',
      handler: async (ctx) => {
        if (ctx.admin?.kind !== 'admin') return { admin: null, bootstrap: true };
        const operator = await deps.store.operators.get(ctx.admin.operatorId);
        const session = { ...ctx.admin.session, lastSeenAt: deps.clock() };
        return sessionBody(ctx.admin.operatorId, operator?.displayName ?? ctx.admin.operatorId, session);
      },
    },
    {
      route: 'adminStepUpOptions',
      handler: (ctx) => {
        parseJson(ctx.req, ctx.body, z.strictObject({}));
        return deps.ceremonies.stepUpOptions(signedInAdmin(ctx).session);
      },
    },
    {
      route: 'adminStepUpVerify',
      handler: async (ctx) => {
        const { response } = parseJson(ctx.req, ctx.body, z.strictObject({ response: AuthenticationResponseSchema }));
        return deps.ceremonies.stepUp(
          signedInAdmin(ctx).session,
          response as AuthenticationResponseJSON,
          deps.clientAddress(ctx.req),
        );
      },
    },
    {
      route: 'adminSignOut',
      handler: async (ctx) => {
        parseJson(ctx.req, ctx.body, z.strictObject({}));
        await deps.auth.end(signedInAdmin(ctx).session, 'signed-out');
        ctx.res.setHeader('set-cookie', deps.auth.clearedCookie());
        return { signedOut: true };
      },
    },
    {
      route: 'adminSessionsLive',
      handler: async () => ({
        sessions: (await deps.store.admin.liveSessions()).map((s) => ({
          id: s.id,
          operatorId: s.operatorId,
          createdAt: s.createdAt,
          lastSeenAt: s.lastSeenAt,
          expiresAt: s.expiresAt,
        })),
      }),
    },
  ];
}
