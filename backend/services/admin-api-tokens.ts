/**
 * Admin API tokens (issue 12): the credential for scripts once the bootstrap token is retired.
 *
 * - Issued by an admin signed in with a passkey and a fresh step-up (never by the bootstrap token or
 *   by another token); the secret (`bapi_` + 32 random bytes, base64url) is shown once and stored
 *   only as its SHA-256.
 * - Scoped: `read` may call the admin API's GET routes; `admin` may also change things (revocations
 *   included). Neither may manage tokens, create the first admin, change roles, make an admin or issue
 *   an admin's enrolment code: those hand over the keys and need a person with a passkey.
 * - Expiring (1–365 days), listed (never the secret), revocable (step-up), and checked against the
 *   store on every request, so every node of a cluster agrees at once; a revocation also ends the
 *   token's live event streams on every node at once (`admin-session-ended` on the cluster bus).
 * - Every use is an event (`admin-action`, reason `api-token-used`, or `api-token-refused` with the
 *   code), recorded with the request's method and path before the request runs.
 */
import { randomBytes } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { BatonError, type ErrorCode } from '../../shared/errors.js';
import { matchRoute, ROUTES, type RouteId } from '../../shared/routes.js';
import { newId, sha256Hex } from '../crypto/secrets.js';
import { kyselyOf } from '../store/kysely-store.js';
import { num, oneOf, optNum, optStr, str, type BatonDatabase, type Row } from '../store/kysely-schema.js';
import type { Store } from '../store/repositories.js';
import type { EventLog } from './event-log.js';

export const API_TOKEN_SCOPES = ['read', 'admin'] as const;
export type ApiTokenScope = (typeof API_TOKEN_SCOPES)[number];
export const API_TOKEN_PREFIX = 'bapi_';
export const API_TOKEN_MAX_DAYS = 365;

/** Routes no API token may call, whatever its scope: they hand over the keys or belong to a browser session. */
export const TOKEN_FORBIDDEN_ROUTES: ReadonlySet<RouteId> = new Set<RouteId>([
  'adminBootstrap',
  'adminOperatorRoles',
  'adminStepUpOptions',
  'adminStepUpVerify',
  'adminSignOut',
  'adminApiTokenCreate',
  'adminApiTokenRevoke',
]);

export interface ApiTokenView {
  id: string;
  label: string;
  scope: ApiTokenScope;
  createdBy: string;
  createdAt: number;
  expiresAt: number;
  lastUsedAt: number | null;
  uses: number;
  revokedAt: number | null;
  revokedBy: string | null;
  revokedReason: string | null;
  state: 'active' | 'expired' | 'revoked';
}

export interface ApiTokenPrincipal {
  kind: 'api-token';
  actor: string;
  tokenId: string;
  scope: ApiTokenScope;
}

export function viewOf(row: Row, now: number): ApiTokenView {
  const revokedAt = optNum(row, 'revoked_at');
  const expiresAt = num(row, 'expires_at');
  return {
    id: str(row, 'id'),
    label: str(row, 'label'),
    scope: oneOf(API_TOKEN_SCOPES, str(row, 'scope'), 'scope'),
    createdBy: str(row, 'created_by'),
    createdAt: num(row, 'created_at'),
    expiresAt,
    lastUsedAt: optNum(row, 'last_used_at'),
    uses: num(row, 'uses'),
    revokedAt,
    revokedBy: optStr(row, 'revoked_by'),
    revokedReason: optStr(row, 'revoked_reason'),
    state: revokedAt !== null ? 'revoked' : now >= expiresAt ? 'expired' : 'active',
  };
}

/**
 * The key the live streams a token opened are held under (AdminAuth.holdStream), and the `sessionId`
 * of the `admin-session-ended` pointer its revocation publishes: every node closes them at once.
 */
export function apiTokenStreamKey(tokenId: string): string {
  return `api-token:${tokenId}`;
}

function dbOf(store: Store): Kysely<BatonDatabase> {
  const db = kyselyOf(store);
  if (db === undefined) throw new Error('admin API tokens need a Kysely store');
  return db;
}

export class AdminApiTokens {
  constructor(private readonly deps: { store: Store; events: EventLog; clock: () => number }) {}

  /** Whether a bearer value is shaped like an API token (anything else is the bootstrap token's to judge). */
  static looksLikeToken(value: string): boolean {
    return value.startsWith(API_TOKEN_PREFIX);
  }

  async issue(
    input: { label: string; scope: ApiTokenScope; ttlDays: number },
    actor: string,
  ): Promise<{ token: string; apiToken: ApiTokenView }> {
    const now = this.deps.clock();
    const token = `${API_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const id = newId('tok');
    const expiresAt = now + input.ttlDays * 24 * 3600 * 1000;
    await this.deps.events.atomically(async (uow) => {
      await dbOf(uow.store)
        .insertInto('admin_api_tokens')
        .values({
          id,
          token_hash: sha256Hex(token),
          label: input.label,
          scope: input.scope,
          created_by: actor,
          created_at: now,
          expires_at: expiresAt,
          last_used_at: null,
          revoked_at: null,
          revoked_by: null,
          revoked_reason: null,
        })
        .execute();
      await uow.record({
        type: 'admin-action',
        subject: {},
        outcome: 'success',
        reasons: ['api-token-issued'],
        detail: { actor, token: id, label: input.label, scope: input.scope, expiresAt },
      });
    });
    return { token, apiToken: await this.get(id) };
  }

  async get(id: string): Promise<ApiTokenView> {
    const row = await dbOf(this.deps.store)
      .selectFrom('admin_api_tokens')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    if (row === undefined) throw new BatonError('NOT_FOUND', `No admin API token "${id}"`);
    return viewOf(row, this.deps.clock());
  }

  /** Every token, newest first (a bank has a handful of scripts, not thousands). */
  async list(): Promise<ApiTokenView[]> {
    const rows = await dbOf(this.deps.store)
      .selectFrom('admin_api_tokens')
      .selectAll()
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(1000)
      .execute();
    const now = this.deps.clock();
    return rows.map((row) => viewOf(row, now));
  }

  async revoke(id: string, reason: string, actor: string): Promise<ApiTokenView> {
    const now = this.deps.clock();
    await this.deps.events.atomically(async (uow) => {
      const db = dbOf(uow.store);
      const row = await db
        .selectFrom('admin_api_tokens')
        .select(['id', 'revoked_at'])
        .where('id', '=', id)
        .executeTakeFirst();
      if (row === undefined) throw new BatonError('NOT_FOUND', `No admin API token "${id}"`);
      if (row.revoked_at !== null) return; // already revoked: nothing changes, nothing recorded twice
      await db
        .updateTable('admin_api_tokens')
        .set({ revoked_at: now, revoked_by: actor, revoked_reason: reason })
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .execute();
      // Every node (this one included) closes the live streams this token holds when the commit
      // delivers the pointer: a script reading the event stream on another node stops at once.
      await uow.publish('admin-session-ended', { sessionId: apiTokenStreamKey(id) });
      await uow.record({
        type: 'admin-action',
        subject: {},
        outcome: 'success',
        reasons: ['api-token-revoked'],
        detail: { actor, token: id, reason_admin: reason },
      });
    });
    return this.get(id);
  }

  /**
   * The principal of a request bearing an API token, or a refusal with its stable code. The use is
   * recorded either way (with the request's method and path), in the same unit as the use count.
   */
  async authenticate(secret: string, method: string, path: string): Promise<ApiTokenPrincipal> {
    const now = this.deps.clock();
    const row = await dbOf(this.deps.store)
      .selectFrom('admin_api_tokens')
      .selectAll()
      .where('token_hash', '=', sha256Hex(secret))
      .executeTakeFirst();
    if (row === undefined) throw new BatonError('ADMIN_AUTH_INVALID', 'The admin token is not valid');
    const token = viewOf(row, now);
    const pathname = path.split('?')[0] ?? path;
    const routeId = matchRoute(method, pathname);
    let refusal: { code: ErrorCode; message: string } | undefined;
    if (token.state === 'revoked') {
      refusal = { code: 'ADMIN_API_TOKEN_REVOKED', message: `The admin API token "${token.label}" was revoked` };
    } else if (token.state === 'expired') {
      refusal = {
        code: 'ADMIN_API_TOKEN_EXPIRED',
        message: `The admin API token "${token.label}" has expired: an admin issues a new one`,
      };
    } else if (routeId !== undefined && TOKEN_FORBIDDEN_ROUTES.has(routeId)) {
      refusal = {
        code: 'ADMIN_API_TOKEN_SCOPE',
        message: 'An admin API token cannot do this: it needs an admin signed in with a passkey',
      };
    } else if (
      token.scope === 'read' &&
      (method !== 'GET' || (routeId !== undefined && ROUTES[routeId].method !== 'GET'))
    ) {
      refusal = {
        code: 'ADMIN_API_TOKEN_SCOPE',
        message: `The admin API token "${token.label}" may only read (scope read); ${method} needs scope admin`,
      };
    }
    const actor = `api-token:${token.id}`;
    await this.deps.events.atomically(async (uow) => {
      if (refusal === undefined) {
        await dbOf(uow.store)
          .updateTable('admin_api_tokens')
          .set({ last_used_at: now, uses: sql<number>`uses + 1` })
          .where('id', '=', token.id)
          .execute();
      }
      await uow.record({
        type: 'admin-action',
        subject: {},
        outcome: refusal === undefined ? 'success' : 'failure',
        reasons:
          refusal === undefined
            ? ['api-token-used']
            : ['api-token-refused', refusal.code.toLowerCase().replace(/_/g, '-')],
        detail: { actor, token: token.id, scope: token.scope, method, path: pathname.slice(0, 300) },
      });
    });
    if (refusal !== undefined) throw new BatonError(refusal.code, refusal.message);
    return { kind: 'api-token', actor, tokenId: token.id, scope: token.scope };
  }

  /** Whether a token that opened a live stream may still read it (not revoked, not expired). */
  async stillValid(tokenId: string): Promise<boolean> {
    const row = await dbOf(this.deps.store)
      .selectFrom('admin_api_tokens')
      .select(['revoked_at', 'expires_at'])
      .where('id', '=', tokenId)
      .executeTakeFirst();
    return row !== undefined && row.revoked_at === null && this.deps.clock() < row.expires_at;
  }
}
