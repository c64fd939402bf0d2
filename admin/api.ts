import type { FieldIssue } from '../shared/errors.js';
import { noteServerDate } from './server-clock.js';
import { ROUTES, matchRoute, routePath, type RouteId, type RouteMethod, type RoutePathArgs } from '../shared/routes.js';

/** An error from the admin API, with its stable code and field issues. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly issues: FieldIssue[] = [],
    readonly body: unknown = undefined,
  ) {
    super(message);
  }
}

type Json = Record<string, unknown>;

interface Hooks {
  /** Runs the step-up ceremony; resolves true when the admin confirmed. */
  stepUp: () => Promise<boolean>;
  /** The session is gone: show the sign-in page. */
  signedOut: (reason: string) => void;
}
let hooks: Hooks = { stepUp: () => Promise.resolve(false), signedOut: () => undefined };
export function setApiHooks(next: Hooks): void {
  hooks = next;
}

const SIGNED_OUT = new Set([
  'ADMIN_AUTH_REQUIRED',
  'ADMIN_AUTH_INVALID',
  'ADMIN_SESSION_EXPIRED',
  'ADMIN_ROLE_REQUIRED',
]);

/**
 * The method and path of one route of the table (shared/routes.ts), for `api`:
 * `api<T>(...endpoint('adminOperator', { id }))`, `api<T>(...endpoint('adminSessionEnd', { id }), { reason })`.
 */
export function endpoint<R extends RouteId>(id: R, ...args: RoutePathArgs<R>): [RouteMethod, string] {
  return [ROUTES[id].method, routePath(id, ...args)];
}

/** The answer checked against the route's declared schema: a drifted backend is an error, not a blank page. */
function checked(method: string, path: string, status: number, body: unknown): unknown {
  const id = matchRoute(method, path.split('?')[0] ?? path);
  const schema = id === undefined ? null : ROUTES[id].response;
  if (schema === null || schema.safeParse(body).success) return body;
  throw new ApiError(status, 'BAD_RESPONSE', `The backend's answer to ${method} ${path} has an unexpected shape`);
}

/** A refusal while signing in is the sign-in page's to show, not a sign-out. */
const SIGNING_IN: ReadonlySet<RouteId> = new Set([
  'adminSignInOptions',
  'adminSignInVerify',
  'adminRegisterOptions',
  'adminRegisterVerify',
  // Asked once on arrival: "not signed in" there is the landing page, not a sign-out notice.
  'adminAuthSession',
]);

/** Calls the admin API on this origin with the session cookie; a step-up request is confirmed once and retried. */
export async function api<T = Json>(
  method: string,
  path: string,
  body?: unknown,
  options: { retried?: boolean; bearer?: string } = {},
): Promise<T> {
  const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
  // Only the first-run setup page sends a token (the bootstrap token the admin typed), never stored.
  if (options.bearer !== undefined) headers.authorization = `Bearer ${options.bearer}`;
  const response = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  noteServerDate(response.headers.get('date'), Date.now());
  const text = await response.text();
  let parsed: unknown = {};
  try {
    parsed = text === '' ? {} : JSON.parse(text);
  } catch {
    throw new ApiError(
      response.status,
      'BAD_RESPONSE',
      `The backend answered ${response.status} with something that is not JSON`,
    );
  }
  if (response.ok) return checked(method, path, response.status, parsed) as T;
  const error = (parsed as { error?: { code?: string; message?: string; issues?: FieldIssue[] } }).error ?? {};
  const failure = new ApiError(
    response.status,
    error.code ?? 'UNKNOWN',
    error.message ?? `HTTP ${response.status}`,
    error.issues ?? [],
    parsed,
  );
  if (failure.code === 'ADMIN_STEP_UP_REQUIRED' && options.retried !== true) {
    if (await hooks.stepUp()) return api<T>(method, path, body, { ...options, retried: true });
  }
  const signingIn =
    options.bearer !== undefined || SIGNING_IN.has(matchRoute(method, path.split('?')[0] ?? path) ?? 'health');
  if (SIGNED_OUT.has(failure.code) && !signingIn) hooks.signedOut(failure.message);
  throw failure;
}
