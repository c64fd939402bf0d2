import type { FieldIssue } from '../shared/errors.js';

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

/** Calls the admin API on this origin with the session cookie; a step-up request is confirmed once and retried. */
export async function api<T = Json>(method: string, path: string, body?: unknown, retried = false): Promise<T> {
  const response = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
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
  if (response.ok) return parsed as T;
  const error = (parsed as { error?: { code?: string; message?: string; issues?: FieldIssue[] } }).error ?? {};
  const failure = new ApiError(
    response.status,
    error.code ?? 'UNKNOWN',
    error.message ?? `HTTP ${response.status}`,
    error.issues ?? [],
    parsed,
  );
  if (failure.code === 'ADMIN_STEP_UP_REQUIRED' && !retried) {
    if (await hooks.stepUp()) return api<T>(method, path, body, true);
  }
  if (SIGNED_OUT.has(failure.code) && !path.startsWith('/v1/admin/auth/sign-in')) hooks.signedOut(failure.message);
  throw failure;
}
