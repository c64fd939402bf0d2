import type { IncomingMessage, ServerResponse } from 'node:http';
import { BatonError } from '../../shared/errors.js';
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

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  auth: Auth;
  handler: Handler;
  /** Admin routes that destroy or change policy: a fresh step-up is required first. */
  stepUp?: boolean;
  /** Admin routes that do not count as admin activity (a long-lived live stream). */
  passive?: boolean;
  /**
   * A larger body limit than the default (the metadata BLOB upload). For admin routes the admin is
   * authenticated before such a body is read.
   */
  maxBodyBytes?: number;
}

interface CompiledRoute extends Route {
  regex: RegExp;
  names: string[];
}

export class Router {
  private readonly routes: CompiledRoute[] = [];

  add(routes: Route[]): this {
    for (const route of routes) {
      const names: string[] = [];
      const source = route.path
        .split('/')
        .map((part) => {
          if (part.startsWith(':')) {
            names.push(part.slice(1));
            return '([^/]+)';
          }
          return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        })
        .join('/');
      this.routes.push({ ...route, regex: new RegExp(`^${source}$`), names });
    }
    return this;
  }

  match(method: string, pathname: string): { route: Route; params: Record<string, string> } {
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

  list(): Route[] {
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
