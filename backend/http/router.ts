import type { IncomingMessage, ServerResponse } from 'node:http';
import { BatonError } from '../../shared/errors.js';
import { ROUTES, routePattern, type RouteId, type RouteMethod } from '../../shared/routes.js';
import type { ConsoleRecord } from '../store/repositories.js';
import type { AdminPrincipal } from '../services/admin-auth.js';

export type Auth = 'none' | 'console' | 'admin' | 'enrolment';

export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  params: Record<string, string>;
  query: URLSearchParams;
  /** Path with query string, exactly as received (what the console signed). */
  rawPath: string;
  body: Buffer;
  /** Set for `console` routes once the signature verified. */
  console: ConsoleRecord | undefined;
  /** Set for `admin` routes: who is acting, for the audit trail. */
  actor: string | undefined;
  /** Set for `admin` routes: the bootstrap token or the signed-in admin and their session. */
  admin?: AdminPrincipal | undefined;
}

/** A handler returns the JSON body (status 200), a `Reply`, or `undefined` when it answered itself. */
export interface Reply {
  status: number;
  body: unknown;
}
export type Handler = (ctx: RouteContext) => unknown;

/**
 * A handler registered for one route of shared/routes.ts: the table gives its method, path and who
 * may call it, so the path is written nowhere else.
 */
export interface Route {
  route: RouteId;
  handler: Handler;
  /**
   * A larger body limit than the default (the metadata BLOB upload). For admin routes the admin is
   * authenticated before such a body is read.
   */
  maxBodyBytes?: number;
}

/** A registered route with what the table says about it. */
export interface CompiledRoute extends Route {
  method: RouteMethod;
  path: string;
  auth: Auth;
  /** Admin routes that destroy or change policy: a fresh step-up is required first. */
  stepUp: boolean;
  /** Admin routes that do not count as admin activity (a long-lived live stream). */
  passive: boolean;
  regex: RegExp;
  names: string[];
}

const AUTH_OF = {
  public: 'none',
  enrolment: 'enrolment',
  console: 'console',
  admin: 'admin',
  'admin-step-up': 'admin',
  'admin-passive': 'admin',
} as const satisfies Record<(typeof ROUTES)[RouteId]['access'], Auth>;

export class Router {
  private readonly routes: CompiledRoute[] = [];

  add(routes: Route[]): this {
    for (const route of routes) {
      if (this.routes.some((r) => r.route === route.route)) {
        throw new Error(`Route ${route.route} is registered twice`);
      }
      const spec = ROUTES[route.route];
      const names = [...spec.path.matchAll(/:([A-Za-z]+)/g)].map((m) => m[1] ?? '');
      this.routes.push({
        ...route,
        method: spec.method,
        path: spec.path,
        auth: AUTH_OF[spec.access],
        stepUp: spec.access === 'admin-step-up',
        passive: spec.access === 'admin-passive',
        regex: routePattern(spec.path),
        names,
      });
    }
    return this;
  }

  match(method: string, pathname: string): { route: CompiledRoute; params: Record<string, string> } {
    let pathMatched = false;
    for (const route of this.routes) {
      const m = route.regex.exec(pathname);
      if (m === null) continue;
      pathMatched = true;
      if (route.method !== method) continue;
      const params: Record<string, string> = {};
      for (const [i, name] of route.names.entries()) {
        try {
          params[name] = decodeURIComponent(m[i + 1] ?? '');
        } catch {
          throw new BatonError('NOT_FOUND', `No endpoint ${pathname} (malformed percent-encoding)`);
        }
      }
      return { route, params };
    }
    if (pathMatched) throw new BatonError('METHOD_NOT_ALLOWED', `${method} is not allowed on ${pathname}`);
    throw new BatonError('NOT_FOUND', `No endpoint ${pathname}`);
  }

  list(): CompiledRoute[] {
    return this.routes;
  }
}

export function isReply(value: unknown): value is Reply {
  return (
    typeof value === 'object' &&
    value !== null &&
    'status' in value &&
    'body' in value &&
    Object.keys(value).length === 2
  );
}
