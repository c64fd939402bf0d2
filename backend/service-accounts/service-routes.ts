import { BatonError } from '../../shared/errors.js';
import { ROUTES } from '../../shared/routes.js';
import {
  IssueServiceTokenRequestSchema,
  RevokeServiceRequestSchema,
  ServiceEnrolRequestSchema,
  ServiceKeyRotateRequestSchema,
  ServiceTokenRequestSchema,
} from '../../shared/service-accounts-api.js';
import { TOKEN_ISSUER } from '../crypto/token-issuer.js';
import { parseJson, parseWith } from '../http/http-kit.js';
import type { Route, RouteContext } from '../http/router.js';
import type { ServiceAccounts } from './service-accounts.js';

export interface ServiceRouteDeps {
  services: ServiceAccounts;
  /** Baton's public origin (`adminOrigin`; known once the server listens): the token endpoint's URL and `aud`. */
  publicOrigin: () => string;
  /** Who sent a request (backend/http/client-address.ts): the key of the cap on unauthenticated refusals' events. */
  clientAddress: (req: RouteContext['req']) => string;
}

const FORM_TYPE = /^application\/x-www-form-urlencoded(\s*;|$)/i;
const JSON_TYPE = /^application\/json(\s*;|$)/i;

/**
 * The token endpoint takes its parameters as `application/x-www-form-urlencoded` (RFC 6749 §4.4.2)
 * or as JSON; a parameter given twice is refused (RFC 6749 §3.2).
 */
export function parseFormOrJson(ctx: RouteContext): unknown {
  const type = ctx.req.headers['content-type'] ?? '';
  if (!FORM_TYPE.test(type)) return undefined;
  const form = new URLSearchParams(ctx.body.toString('utf8'));
  const out: Record<string, string> = {};
  for (const [key, value] of form) {
    if (Object.hasOwn(out, key)) {
      throw new BatonError('SCHEMA_INVALID', `The parameter "${key}" is given more than once`, {
        issues: [{ path: key, message: 'given more than once' }],
      });
    }
    out[key] = value;
  }
  return out;
}

function body<S extends Parameters<typeof parseJson>[2]>(ctx: RouteContext, schema: S) {
  const form = parseFormOrJson(ctx);
  return form === undefined ? parseJson(ctx.req, ctx.body, schema) : parseWith(schema, form);
}

/**
 * A body's parameters as sent, before any schema, for the trail of its refusal: a form's (a
 * parameter given twice: its first value), or the parsed JSON; `undefined` when it cannot be read.
 */
function sentParams(ctx: RouteContext): unknown {
  const type = ctx.req.headers['content-type'] ?? '';
  if (FORM_TYPE.test(type)) {
    const form = new URLSearchParams(ctx.body.toString('utf8'));
    return Object.fromEntries([...new Set(form.keys())].map((key) => [key, form.get(key)]));
  }
  if (ctx.body.length === 0) return {};
  if (!JSON_TYPE.test(type)) return undefined;
  try {
    return JSON.parse(ctx.body.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * Reads a service endpoint's body; a body refused before it is read (`SCHEMA_INVALID`, `BAD_JSON`,
 * `UNSUPPORTED_MEDIA_TYPE`) is recorded as the endpoint's refusals are, then refused as ever. (A body
 * over the size limit is refused by the server before the route: it is not recorded.)
 */
async function readRecorded<T>(
  ctx: RouteContext,
  read: () => T,
  record: (error: BatonError, sent: unknown) => Promise<void>,
): Promise<T> {
  try {
    return read();
  } catch (error) {
    if (error instanceof BatonError) await record(error, sentParams(ctx));
    throw error;
  }
}

/**
 * The token endpoint's URL: Baton's configured public origin (`adminOrigin`, where the backend is
 * reached, as the Shared Signals issuer) and the route's path. Never taken from the request: a
 * client's `Host` or `X-Forwarded-Proto` does not pick what this endpoint answers to.
 */
export function tokenEndpointUrl(publicOrigin: string): string {
  return `${new URL(publicOrigin).origin}${ROUTES.serviceToken.path}`;
}

/**
 * What a client assertion's `aud` may say (RFC 7523 §3): this token endpoint's URL, exactly as
 * `tokenEndpointUrl` makes it from the configured origin, or Baton's issuer identifier.
 */
export function tokenEndpointAudiences(publicOrigin: string): string[] {
  return [tokenEndpointUrl(publicOrigin), TOKEN_ISSUER];
}

/**
 * The key-rotation endpoint's URL for one service (`<adminOrigin>/v1/services/<id>/keys`), made as
 * `tokenEndpointUrl` makes the token endpoint's: from the configured public origin, never the request.
 */
export function keyRotationEndpointUrl(publicOrigin: string, serviceId: string): string {
  return `${new URL(publicOrigin).origin}${ROUTES.serviceKeyRotate.path.replace(':id', encodeURIComponent(serviceId))}`;
}

/**
 * What a rotation's client assertion's `aud` may say: this endpoint's URL for this service, and
 * nothing else (RFC 7523 §3: `aud` names the intended recipient). Not the token endpoint nor Baton's
 * issuer identifier: an unused assertion made for a token (one a proxy logged, say) must not be able
 * to swap in its holder's key and so take the service over.
 */
export function keyRotationAudiences(publicOrigin: string, serviceId: string): string[] {
  return [keyRotationEndpointUrl(publicOrigin, serviceId)];
}

/** Service accounts: enrolment, the token endpoint, key rotation, and the admin side. */
export function serviceRoutes(deps: ServiceRouteDeps): Route[] {
  return [
    {
      route: 'serviceEnrol',
      handler: async (ctx) => {
        const input = parseJson(ctx.req, ctx.body, ServiceEnrolRequestSchema);
        const record = await deps.services.enrol(input);
        return {
          status: 201,
          body: {
            serviceId: record.id,
            name: record.name,
            actions: record.actions,
            kid: record.kid,
            tokenEndpoint: tokenEndpointUrl(deps.publicOrigin()),
            keyRotationEndpoint: keyRotationEndpointUrl(deps.publicOrigin(), record.id),
          },
        };
      },
    },
    {
      route: 'serviceToken',
      handler: async (ctx) => {
        const client = deps.clientAddress(ctx.req);
        const input = await readRecorded(
          ctx,
          () => body(ctx, ServiceTokenRequestSchema),
          (error, sent) => deps.services.recordUnreadTokenRequest(error, sent, client),
        );
        return deps.services.token(input, tokenEndpointAudiences(deps.publicOrigin()), client);
      },
    },
    {
      route: 'serviceKeyRotate',
      handler: async (ctx) => {
        const client = deps.clientAddress(ctx.req);
        const input = await readRecorded(
          ctx,
          () => body(ctx, ServiceKeyRotateRequestSchema),
          (error, sent) => deps.services.recordUnreadRotation(error, sent, client),
        );
        const id = ctx.params.id ?? '';
        return deps.services.rotateKey(id, input, keyRotationAudiences(deps.publicOrigin(), id), client);
      },
    },
    {
      route: 'adminServices',
      handler: async () => ({ services: await deps.services.list() }),
    },
    {
      route: 'adminServiceEnrolmentTokenIssue',
      handler: async (ctx) => {
        const input = parseJson(ctx.req, ctx.body, IssueServiceTokenRequestSchema);
        return { status: 201, body: await deps.services.issueEnrolmentToken(input, ctx.actor ?? 'unknown') };
      },
    },
    {
      route: 'adminServiceRevoke',
      handler: async (ctx) => {
        const { reason } = parseJson(ctx.req, ctx.body, RevokeServiceRequestSchema);
        return deps.services.revoke(ctx.params.id ?? '', reason, ctx.actor ?? 'unknown');
      },
    },
  ];
}
