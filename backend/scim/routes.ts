/**
 * The SCIM 2.0 endpoints (RFC 7644) under /scim/v2, authenticated by a directory's bearer token,
 * answering `application/scim+json` and SCIM's error schema; and the admin routes that issue,
 * list, map and revoke directory tokens.
 */
import type { ServerResponse } from 'node:http';
import { BatonError } from '../../shared/errors.js';
import { SECURITY_HEADERS, parseJson } from '../http/http-kit.js';
import type { Route, RouteContext } from '../http/router.js';
import type { RouteId } from '../../shared/routes.js';
import type { DirectoryRecord } from './repository.js';
import {
  SCIM_CONTENT_TYPE,
  SCIM_LIST,
  resourceTypes,
  schemas,
  scimError,
  serviceProviderConfig,
} from './scim-schema.js';
import { CreateDirectorySchema, GroupRolesRequestSchema, type ScimService } from './scim-service.js';

export interface ScimRouteDeps {
  scim: ScimService;
}

function send(res: ServerResponse, status: number, body: unknown, location?: string): void {
  if (body === undefined) {
    res.writeHead(status, { ...SECURITY_HEADERS, 'content-length': 0 });
    res.end();
    return;
  }
  const data = JSON.stringify(body);
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'content-type': SCIM_CONTENT_TYPE,
    'content-length': Buffer.byteLength(data),
    ...(location === undefined ? {} : { location }),
  });
  res.end(data);
}

/**
 * Whether a request's target is under SCIM's base, where every error answers in SCIM's shape (RFC 7644 §3.12).
 * Judged on the path as the server routes it (the URL parser's: `..` resolved, an absolute-form target reduced
 * to its path), so the shape follows the route that runs.
 */
export function isScimPath(target: string | undefined): boolean {
  let path: string;
  try {
    path = new URL(target ?? '/', 'http://backend.invalid').pathname;
  } catch {
    return false;
  }
  return /^\/scim\/v2(?:\/|$)/.test(path);
}

/**
 * A refusal in SCIM's error shape, as `application/scim+json`. Used inside the SCIM routes and by
 * the server for what fails before them (unknown endpoint, method not allowed, body too large,
 * storage unavailable), so a directory never gets an error body it cannot read.
 */
export function answerScimError(res: ServerResponse, error: BatonError): void {
  const { status, body } = scimError(error);
  if (status === 401) res.setHeader('www-authenticate', 'Bearer realm="scim"');
  send(res, status, body);
}

/** The SCIM base URL the directory called (for `meta.location`). */
function baseOf(ctx: RouteContext): string {
  const proto = (ctx.req.socket as { encrypted?: boolean }).encrypted === true ? 'https' : 'http';
  return `${proto}://${ctx.req.headers.host ?? 'localhost'}/scim/v2`;
}

/** A SCIM request body: JSON, as application/scim+json or application/json. */
function bodyOf(ctx: RouteContext): unknown {
  const type = ctx.req.headers['content-type'] ?? '';
  if (!/^application\/(scim\+)?json\s*(;|$)/i.test(type)) {
    throw new BatonError('SCIM_INVALID_SYNTAX', `Expected content-type application/scim+json, got "${type}"`);
  }
  try {
    return JSON.parse(ctx.body.toString('utf8'));
  } catch {
    throw new BatonError('SCIM_INVALID_SYNTAX', 'The body is not valid JSON');
  }
}

type ScimHandler = (
  ctx: RouteContext,
  dir: DirectoryRecord,
  base: string,
) => Promise<{ status: number; body?: unknown; location?: string }>;

export function scimRoutes(deps: ScimRouteDeps): Route[] {
  const { scim } = deps;
  /** Authenticates the directory, runs the handler, answers in SCIM's shape (errors too). */
  const wrap =
    (handler: ScimHandler) =>
    async (ctx: RouteContext): Promise<undefined> => {
      try {
        const dir = await scim.authenticate(ctx.req.headers.authorization);
        const base = baseOf(ctx);
        const answer = await handler(ctx, dir, base);
        send(ctx.res, answer.status, answer.body, answer.location);
      } catch (error) {
        // Refusals answer here. Anything else (a storage fault, a damaged database, a bug) goes to the server's
        // handler, which logs it, marks a damaged database, and answers in SCIM's shape too (`answerScimError`).
        if (!(error instanceof BatonError) || error.code === 'INTERNAL') throw error;
        answerScimError(ctx.res, error);
      }
      return undefined;
    };
  const scimRoute = (route: RouteId, handler: ScimHandler): Route => ({ route, handler: wrap(handler) });
  return [
    scimRoute('scimServiceProviderConfig', (_ctx, _dir, base) =>
      Promise.resolve({ status: 200, body: serviceProviderConfig(base) }),
    ),
    scimRoute('scimResourceTypes', (_ctx, _dir, base) => {
      const all = resourceTypes(base);
      return Promise.resolve({
        status: 200,
        body: {
          schemas: [SCIM_LIST],
          totalResults: all.length,
          startIndex: 1,
          itemsPerPage: all.length,
          Resources: all,
        },
      });
    }),
    scimRoute('scimSchemas', (_ctx, _dir, base) => {
      const all = schemas(base);
      return Promise.resolve({
        status: 200,
        body: {
          schemas: [SCIM_LIST],
          totalResults: all.length,
          startIndex: 1,
          itemsPerPage: all.length,
          Resources: all,
        },
      });
    }),
    scimRoute('scimUsers', async (ctx, dir, base) => ({
      status: 200,
      body: await scim.listUsers(dir, ctx.query, base),
    })),
    scimRoute('scimUserCreate', async (ctx, dir, base) => {
      const user = await scim.createUser(dir, bodyOf(ctx));
      const body = await scim.userView(dir, user, base);
      return { status: 201, body, location: `${base}/Users/${user.id}` };
    }),
    scimRoute('scimUser', async (ctx, dir, base) => ({
      status: 200,
      body: await scim.userView(dir, await scim.getUser(dir, ctx.params.id ?? ''), base),
    })),
    scimRoute('scimUserReplace', async (ctx, dir, base) => ({
      status: 200,
      body: await scim.userView(dir, await scim.replaceUser(dir, ctx.params.id ?? '', bodyOf(ctx)), base),
    })),
    scimRoute('scimUserPatch', async (ctx, dir, base) => ({
      status: 200,
      body: await scim.userView(dir, await scim.patchUser(dir, ctx.params.id ?? '', bodyOf(ctx)), base),
    })),
    scimRoute('scimUserDelete', async (ctx, dir) => {
      await scim.deleteUser(dir, ctx.params.id ?? '');
      return { status: 204 };
    }),
    scimRoute('scimGroups', async (ctx, dir, base) => ({
      status: 200,
      body: await scim.listGroups(dir, ctx.query, base),
    })),
    scimRoute('scimGroupCreate', async (ctx, dir, base) => {
      const group = await scim.createGroup(dir, bodyOf(ctx));
      return { status: 201, body: scim.groupView(group, base), location: `${base}/Groups/${group.id}` };
    }),
    scimRoute('scimGroup', async (ctx, dir, base) => ({
      status: 200,
      body: scim.groupView(await scim.getGroup(dir, ctx.params.id ?? ''), base),
    })),
    scimRoute('scimGroupReplace', async (ctx, dir, base) => ({
      status: 200,
      body: scim.groupView(await scim.replaceGroup(dir, ctx.params.id ?? '', bodyOf(ctx)), base),
    })),
    scimRoute('scimGroupPatch', async (ctx, dir, base) => ({
      status: 200,
      body: scim.groupView(await scim.patchGroup(dir, ctx.params.id ?? '', bodyOf(ctx)), base),
    })),
    scimRoute('scimGroupDelete', async (ctx, dir) => {
      await scim.deleteGroup(dir, ctx.params.id ?? '');
      return { status: 204 };
    }),
    {
      route: 'adminScimDirectoryCreate',
      handler: async (ctx) => ({
        status: 201,
        body: await scim.createDirectory(
          parseJson(ctx.req, ctx.body, CreateDirectorySchema),
          ctx.actor ?? 'admin:unknown',
        ),
      }),
    },
    { route: 'adminScimDirectories', handler: async () => ({ directories: await scim.directories() }) },
    {
      route: 'adminScimDirectoryGroupRoles',
      handler: async (ctx) => {
        const { groupRoles } = parseJson(ctx.req, ctx.body, GroupRolesRequestSchema);
        return { directory: await scim.setGroupRoles(ctx.params.id ?? '', groupRoles, ctx.actor ?? 'admin:unknown') };
      },
    },
    {
      route: 'adminScimDirectoryRevoke',
      handler: async (ctx) => ({
        directory: await scim.revokeDirectory(ctx.params.id ?? '', ctx.actor ?? 'admin:unknown'),
      }),
    },
  ];
}
