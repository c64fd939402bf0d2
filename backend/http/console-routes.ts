import {
  ConsoleEnrolRequestSchema,
  OperatorEnrolOptionsRequestSchema,
  OperatorEnrolVerifyRequestSchema,
  SessionEndRequestSchema,
  SessionTokenRequestSchema,
  SignInOptionsRequestSchema,
  SignInVerifyRequestSchema,
  StepUpOptionsRequestSchema,
  StepUpVerifyRequestSchema,
} from '../../shared/http-api.js';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import type { ConsoleRegistry } from '../services/console-registry.js';
import type { OperatorDirectory } from '../services/operator-directory.js';
import type { PolicyService } from '../services/policy-service.js';
import type { SessionService } from '../services/session-service.js';
import type { StepUpService } from '../services/step-up-service.js';
import type { RevocationHub } from '../services/revocation-hub.js';
import { parseJson } from './http-kit.js';
import type { Route, RouteContext } from './router.js';

export interface ConsoleRouteDeps {
  registry: ConsoleRegistry;
  operators: OperatorDirectory;
  sessions: SessionService;
  stepUps: StepUpService;
  policies: PolicyService;
  revocations: RevocationHub;
  clock: () => number;
}

function consoleOf(ctx: RouteContext) {
  if (ctx.console === undefined) throw new Error('console route without an authenticated console');
  return ctx.console;
}

/** The API a console calls; every request is signed with the console key. */
export function consoleRoutes(deps: ConsoleRouteDeps): Route[] {
  return [
    {
      route: 'consoleEnrol',
      handler: async (ctx) => {
        const input = parseJson(ctx.req, ctx.body, ConsoleEnrolRequestSchema);
        const record = await deps.registry.enrol(input, {
          method: 'POST',
          path: ctx.rawPath,
          headers: ctx.req.headers,
          body: ctx.body,
        });
        return {
          status: 201,
          body: {
            consoleId: record.id,
            channel: record.channel,
            site: record.site,
            policy: { version: deps.policies.version.version, policy: deps.policies.policy },
          },
        };
      },
    },
    {
      route: 'consoleStatus',
      handler: async (ctx) => {
        const console = consoleOf(ctx);
        return {
          consoleId: console.id,
          channel: console.channel,
          policyVersion: deps.policies.version.version,
          revocationEpoch: await deps.revocations.currentEpoch(),
        };
      },
    },
    {
      route: 'consolePolicy',
      handler: () => ({ version: deps.policies.version.version, policy: deps.policies.policy }),
    },
    {
      route: 'operatorEnrolOptions',
      handler: (ctx) => {
        const { code } = parseJson(ctx.req, ctx.body, OperatorEnrolOptionsRequestSchema);
        return deps.operators.registrationOptions(consoleOf(ctx), code);
      },
    },
    {
      route: 'operatorEnrolVerify',
      handler: async (ctx) => {
        const { code, response, signIn } = parseJson(ctx.req, ctx.body, OperatorEnrolVerifyRequestSchema);
        return {
          status: 201,
          // Registering a key signs its operator in (issue 12): the session service starts the session.
          body: await deps.operators.register(
            consoleOf(ctx),
            code,
            response as RegistrationResponseJSON,
            signIn === true ? deps.sessions : undefined,
          ),
        };
      },
    },
    {
      route: 'signInOptions',
      handler: async (ctx) => {
        parseJson(ctx.req, ctx.body, SignInOptionsRequestSchema);
        return { options: await deps.sessions.signInOptions(consoleOf(ctx)) };
      },
    },
    {
      route: 'signInVerify',
      handler: (ctx) => {
        const { response } = parseJson(ctx.req, ctx.body, SignInVerifyRequestSchema);
        return deps.sessions.signIn(consoleOf(ctx), response as AuthenticationResponseJSON);
      },
    },
    {
      route: 'stepUpOptions',
      handler: (ctx) => {
        const { action } = parseJson(ctx.req, ctx.body, StepUpOptionsRequestSchema);
        return deps.stepUps.stepUpOptions(consoleOf(ctx), ctx.params.id ?? '', action);
      },
    },
    {
      route: 'stepUpVerify',
      handler: (ctx) => {
        const { action, response } = parseJson(ctx.req, ctx.body, StepUpVerifyRequestSchema);
        return deps.stepUps.stepUp(consoleOf(ctx), ctx.params.id ?? '', action, response as AuthenticationResponseJSON);
      },
    },
    {
      // A fresh token for the session in front, before the one it holds expires (see
      // `SessionService.refreshToken`: a refresh never makes an authentication younger).
      route: 'sessionToken',
      handler: async (ctx) => {
        parseJson(ctx.req, ctx.body, SessionTokenRequestSchema);
        const refreshed = await deps.sessions.refreshToken(consoleOf(ctx), ctx.params.id ?? '');
        return { ...refreshed, serverTime: deps.clock() };
      },
    },
    {
      route: 'sessionEnd',
      handler: async (ctx) => {
        const { reason } = parseJson(ctx.req, ctx.body, SessionEndRequestSchema);
        return { session: await deps.sessions.end(consoleOf(ctx), ctx.params.id ?? '', reason) };
      },
    },
  ];
}
