import { z } from 'zod';
import { ERROR_CODES } from './errors.js';
import {
  ConsoleEnrolRequestSchema,
  ConsoleEnrolResultSchema,
  CreateOperatorRequestSchema,
  CreationOptionsSchema,
  IssueConsoleTokenRequestSchema,
  IssueEnrolmentCodeRequestSchema,
  OperatorEnrolOptionsRequestSchema,
  OperatorEnrolOptionsResultSchema,
  OperatorEnrolResultSchema,
  OperatorEnrolVerifyRequestSchema,
  PreviewDecisionRequestSchema,
  PublishPolicyRequestSchema,
  RequestOptionsSchema,
  RevokeRequestSchema,
  SessionEndRequestSchema,
  SessionEndResultSchema,
  SessionTokenRequestSchema,
  SessionTokenResultSchema,
  SignInOptionsRequestSchema,
  SignInOptionsResultSchema,
  SignInResultSchema,
  SignInVerifyRequestSchema,
  StepUpOptionsRequestSchema,
  StepUpOptionsResultSchema,
  StepUpResultSchema,
  StepUpVerifyRequestSchema,
} from './http-api.js';
import { PolicySchema } from './policy.js';
import {
  IssueServiceTokenRequestSchema,
  IssueServiceTokenResultSchema,
  RevokeServiceRequestSchema,
  ServiceEnrolRequestSchema,
  ServiceEnrolResultSchema,
  ServiceKeyRotateRequestSchema,
  ServiceKeyRotateResultSchema,
  ServiceListSchema,
  ServiceRevokeResultSchema,
  ServiceTokenRequestSchema,
  ServiceTokenResultSchema,
} from './service-accounts-api.js';
import {
  BreakGlassApproveRequestSchema,
  BreakGlassGrantSchema,
  BreakGlassListSchema,
  BreakGlassRedeemRequestSchema,
  BreakGlassRedeemResultSchema,
  BreakGlassRequestResultSchema,
  BreakGlassRequestSchema,
  BreakGlassSignOffRequestSchema,
  IssueBreakGlassCodeRequestSchema,
  IssueBreakGlassCodeResultSchema,
} from './break-glass-api.js';
import { TokenExchangeRequestSchema, TokenExchangeResponseSchema } from './action-tokens.js';

/**
 * The backend's HTTP API, declared once: every route's method, path pattern, who may call it, and
 * the schemas of its request body and its (2xx) answer. The backend registers its handlers by route
 * id (the path lives only here), the agent's backend client and the admin console build their URLs
 * from it with `routePath`, tests check every answer against `response`, and a test keeps
 * docs/api.md and this table in step.
 *
 * Who may call (`access`):
 * - `public`: anyone (admin sign-in ceremonies check the admin origin and a per-address limit);
 * - `enrolment`: a console holding a one-time enrolment token, signing with its new key;
 * - `console`: an enrolled console, every request signed with its key;
 * - `admin`: a signed-in admin (or the bootstrap token);
 * - `admin-step-up`: an admin with a fresh step-up;
 * - `admin-passive`: an admin, without counting as admin activity (a long-lived live stream).
 *
 * `response: null` marks an answer that is not one JSON document (a stream, a file, a redirect).
 */
export const ROUTE_ACCESS = ['public', 'enrolment', 'console', 'admin', 'admin-step-up', 'admin-passive'] as const;
export type RouteAccess = (typeof ROUTE_ACCESS)[number];
export type RouteMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface RouteSpec {
  readonly method: RouteMethod;
  readonly path: `/${string}`;
  readonly access: RouteAccess;
  /** The JSON body's schema; `undefined` for a route without a JSON body (GET, a raw upload). */
  readonly request: z.ZodType | undefined;
  /** The 2xx answer's schema; `null` when the answer is not one JSON document. */
  readonly response: z.ZodType | null;
}

const Empty = z.strictObject({});
const id = z.string().min(1);
const ms = z.number();
const nullableMs = z.number().nullable();
const Row = z.looseObject({ id });
const RevocationOutcome = z.looseObject({ epoch: z.int().positive(), sessionsRevoked: z.array(id), pushedTo: z.int() });
const OperatorView = z.looseObject({ id, displayName: z.string(), roles: z.array(z.string()) });
const PolicyVersion = z.looseObject({ version: z.int().nonnegative(), policy: z.unknown() });
const AdminSessionBody = z.looseObject({
  admin: z.looseObject({ operatorId: id, displayName: z.string() }),
  session: z.looseObject({ id, createdAt: ms, expiresAt: ms, idleExpiresAt: ms, stepUpUntil: nullableMs }),
});
const FieldIssues = z.array(z.looseObject({ path: z.string(), message: z.string() }));
const Options = <S extends z.ZodType>(options: S) => z.looseObject({ options });
const RawUpload = undefined;
/** Shared Signals transmitter documents (SSF 1.0 members are snake_case and open-ended). */
const SsfDoc = z.looseObject({});
const SsfStatus = z.looseObject({ stream_id: z.string(), status: z.enum(['enabled', 'paused', 'disabled']) });
const SsfReceiver = z.looseObject({ id, name: z.string(), audience: z.string(), scopes: z.array(z.string()) });
/** A SCIM document (RFC 7643): every one names its schemas. */
const ScimDoc = z.looseObject({ schemas: z.array(z.string()) });

function route<
  const M extends RouteMethod,
  const P extends `/${string}`,
  const A extends RouteAccess,
  Q extends z.ZodType | undefined,
  S extends z.ZodType | null,
>(method: M, path: P, access: A, request: Q, response: S): { method: M; path: P; access: A; request: Q; response: S } {
  return { method, path, access, request, response };
}

export const ROUTES = {
  // ---- public ----
  /** 200, or 503 with the same body (`status: 'degraded'`) while the database is damaged or away, or the node stale. */
  health: route('GET', '/healthz', 'public', undefined, z.looseObject({ status: z.enum(['ok', 'degraded']) })),
  /**
   * For load balancers: 200 `{ ready: true }` only when this node should get new connections (not
   * stopping, its database answered just now, not stale); else 503 with the same body and `problems`.
   */
  readyz: route(
    'GET',
    '/readyz',
    'public',
    undefined,
    z.looseObject({ ready: z.boolean(), nodeId: z.string(), problems: z.array(z.string()).optional() }),
  ),
  jwks: route(
    'GET',
    '/.well-known/jwks.json',
    'public',
    undefined,
    z.looseObject({ keys: z.array(z.looseObject({})) }),
  ),

  // ---- console API ----
  consoleEnrol: route('POST', '/v1/consoles/enrol', 'enrolment', ConsoleEnrolRequestSchema, ConsoleEnrolResultSchema),
  consoleStatus: route(
    'GET',
    '/v1/console/status',
    'console',
    undefined,
    z.object({ consoleId: id, channel: z.string(), policyVersion: z.int(), revocationEpoch: z.int() }),
  ),
  consolePolicy: route(
    'GET',
    '/v1/console/policy',
    'console',
    undefined,
    z.object({ version: z.int(), policy: PolicySchema }),
  ),
  operatorEnrolOptions: route(
    'POST',
    '/v1/operators/enrol/options',
    'console',
    OperatorEnrolOptionsRequestSchema,
    OperatorEnrolOptionsResultSchema,
  ),
  operatorEnrolVerify: route(
    'POST',
    '/v1/operators/enrol/verify',
    'console',
    OperatorEnrolVerifyRequestSchema,
    OperatorEnrolResultSchema,
  ),
  signInOptions: route('POST', '/v1/sign-in/options', 'console', SignInOptionsRequestSchema, SignInOptionsResultSchema),
  signInVerify: route('POST', '/v1/sign-in/verify', 'console', SignInVerifyRequestSchema, SignInResultSchema),
  stepUpOptions: route(
    'POST',
    '/v1/sessions/:id/step-up/options',
    'console',
    StepUpOptionsRequestSchema,
    StepUpOptionsResultSchema,
  ),
  stepUpVerify: route(
    'POST',
    '/v1/sessions/:id/step-up/verify',
    'console',
    StepUpVerifyRequestSchema,
    StepUpResultSchema,
  ),
  sessionToken: route('POST', '/v1/sessions/:id/token', 'console', SessionTokenRequestSchema, SessionTokenResultSchema),
  sessionEnd: route('POST', '/v1/sessions/:id/end', 'console', SessionEndRequestSchema, SessionEndResultSchema),

  // ---- action tokens (docs/action-tokens.md) ----
  /** RFC 8693 token exchange: the session's assurance token for an action token of one app and action. */
  tokenExchange: route(
    'POST',
    '/v1/tokens/exchange',
    'console',
    TokenExchangeRequestSchema,
    TokenExchangeResponseSchema,
  ),
  /** The keys action tokens are signed with (their own ring, not the assurance tokens'). */
  tokenJwks: route(
    'GET',
    '/v1/tokens/jwks.json',
    'public',
    undefined,
    z.looseObject({ keys: z.array(z.looseObject({})) }),
  ),
  /** Server-sent events of revocations for app servers; the app authenticates in the handler (a JWT of its policy key). */
  tokenRevocations: route('GET', '/v1/tokens/revocations', 'public', undefined, null),

  // ---- service accounts (docs/service-accounts.md) ----
  /** A service enrols with a one-time token and a key it generated (a proof signed with that key). */
  serviceEnrol: route('POST', '/v1/services/enrol', 'enrolment', ServiceEnrolRequestSchema, ServiceEnrolResultSchema),
  /** The token endpoint: RFC 7523 client assertion (authenticated in the handler), form or JSON. */
  serviceToken: route('POST', '/v1/services/token', 'public', ServiceTokenRequestSchema, ServiceTokenResultSchema),
  /** Key rotation, authenticated by a client assertion signed with the current key. */
  serviceKeyRotate: route(
    'POST',
    '/v1/services/:id/keys',
    'public',
    ServiceKeyRotateRequestSchema,
    ServiceKeyRotateResultSchema,
  ),

  // ---- admin API ----
  adminConsoleTokens: route(
    'POST',
    '/v1/admin/console-tokens',
    'admin',
    IssueConsoleTokenRequestSchema,
    z.looseObject({ token: z.string(), expiresAt: ms }),
  ),
  adminConsoles: route('GET', '/v1/admin/consoles', 'admin', undefined, z.looseObject({ consoles: z.array(Row) })),
  /** The names of the consoles and operators a page shows, by their ids (`?consoles=a,b&operators=c`, ≤ 200 each). */
  adminNames: route(
    'GET',
    '/v1/admin/names',
    'admin',
    undefined,
    z.looseObject({ names: z.looseObject({ consoles: z.looseObject({}), operators: z.looseObject({}) }) }),
  ),
  adminConsole: route(
    'GET',
    '/v1/admin/consoles/:id',
    'admin',
    undefined,
    z.looseObject({ console: Row, events: z.looseObject({ lastSeq: z.int() }), sessions: z.array(Row) }),
  ),
  adminConsoleRevoke: route(
    'POST',
    '/v1/admin/consoles/:id/revoke',
    'admin-step-up',
    RevokeRequestSchema,
    RevocationOutcome,
  ),
  adminOperatorCreate: route(
    'POST',
    '/v1/admin/operators',
    'admin',
    CreateOperatorRequestSchema,
    z.looseObject({ operator: OperatorView }),
  ),
  adminOperators: route(
    'GET',
    '/v1/admin/operators',
    'admin',
    undefined,
    z.looseObject({ operators: z.array(OperatorView) }),
  ),
  adminOperator: route(
    'GET',
    '/v1/admin/operators/:id',
    'admin',
    undefined,
    z.looseObject({ operator: OperatorView, credentials: z.array(Row), sessions: z.array(Row) }),
  ),
  adminEnrolmentCodeIssue: route(
    'POST',
    '/v1/admin/operators/:id/enrolment-codes',
    'admin',
    IssueEnrolmentCodeRequestSchema,
    z.looseObject({ code: z.string(), expiresAt: ms }),
  ),
  adminOperatorRevoke: route(
    'POST',
    '/v1/admin/operators/:id/revoke',
    'admin-step-up',
    RevokeRequestSchema,
    RevocationOutcome,
  ),
  adminOperatorUnlock: route(
    'POST',
    '/v1/admin/operators/:id/unlock',
    'admin',
    z.unknown(),
    z.looseObject({ operator: OperatorView }),
  ),
  adminCredentialRevoke: route(
    'POST',
    '/v1/admin/credentials/:id/revoke',
    'admin-step-up',
    RevokeRequestSchema,
    RevocationOutcome,
  ),
  adminCredentialsSuspended: route(
    'GET',
    '/v1/admin/credentials/suspended',
    'admin',
    undefined,
    z.looseObject({ credentials: z.array(Row) }),
  ),
  adminCredentialReinstate: route(
    'POST',
    '/v1/admin/credentials/:id/reinstate',
    'admin-step-up',
    RevokeRequestSchema,
    z.looseObject({ credential: Row }),
  ),
  adminSessions: route('GET', '/v1/admin/sessions', 'admin', undefined, z.looseObject({ sessions: z.array(Row) })),
  adminSessionRevoke: route(
    'POST',
    '/v1/admin/sessions/:id/revoke',
    'admin-step-up',
    RevokeRequestSchema,
    RevocationOutcome,
  ),
  adminSessionEnd: route(
    'POST',
    '/v1/admin/sessions/:id/end',
    'admin-step-up',
    RevokeRequestSchema,
    z.looseObject({ session: Row }),
  ),
  adminRevocations: route(
    'GET',
    '/v1/admin/revocations',
    'admin',
    undefined,
    z.looseObject({ epoch: z.int().nonnegative(), revocations: z.array(z.looseObject({ epoch: z.int() })) }),
  ),
  adminRevocationDeliveries: route(
    'GET',
    '/v1/admin/revocations/:epoch/deliveries',
    'admin',
    undefined,
    z.looseObject({
      epoch: z.int(),
      deliveries: z.array(z.looseObject({})),
      acknowledged: z.int(),
      maxAckMs: nullableMs,
    }),
  ),
  adminPolicy: route('GET', '/v1/admin/policy', 'admin', undefined, PolicyVersion),
  adminPolicyVersions: route(
    'GET',
    '/v1/admin/policy/versions',
    'admin',
    undefined,
    z.looseObject({ versions: z.array(PolicyVersion) }),
  ),
  adminPolicyValidate: route(
    'POST',
    '/v1/admin/policy/validate',
    'admin',
    z.unknown(),
    z.looseObject({ valid: z.boolean(), issues: FieldIssues }),
  ),
  adminPolicyPublish: route('POST', '/v1/admin/policy', 'admin-step-up', PublishPolicyRequestSchema, PolicyVersion),
  adminPolicyPreview: route(
    'POST',
    '/v1/admin/policy/preview',
    'admin',
    PreviewDecisionRequestSchema,
    z.looseObject({ decision: z.looseObject({ outcome: z.enum(['allow', 'step-up', 'deny']) }) }),
  ),
  adminEvents: route(
    'GET',
    '/v1/admin/events',
    'admin',
    undefined,
    z.looseObject({ events: z.array(z.looseObject({})), nextCursor: z.number() }),
  ),
  adminEventsVerify: route('GET', '/v1/admin/events/verify', 'admin', undefined, z.looseObject({})),
  adminCheckpoints: route(
    'GET',
    '/v1/admin/events/checkpoints',
    'admin',
    undefined,
    z.looseObject({ checkpoints: z.array(z.looseObject({})), nextAfter: z.int(), keys: z.array(z.looseObject({})) }),
  ),
  adminSigningKeyRotate: route(
    'POST',
    '/v1/admin/signing-keys/rotate',
    'admin-step-up',
    z.strictObject({ key: z.enum(['token', 'checkpoint']) }),
    z.looseObject({ key: z.enum(['token', 'checkpoint']), kid: z.string() }),
  ),
  adminEventStream: route('GET', '/v1/admin/events/stream', 'admin-passive', undefined, null),

  // ---- admin console sign-in ----
  adminAuthStatus: route(
    'GET',
    '/v1/admin/auth/status',
    'public',
    undefined,
    z.looseObject({ adminOrigin: z.string() }),
  ),
  adminBootstrap: route(
    'POST',
    '/v1/admin/bootstrap',
    'admin',
    z.looseObject({}),
    z.looseObject({ operator: OperatorView, code: z.string(), expiresAt: ms, registerAt: z.string() }),
  ),
  adminRegisterOptions: route(
    'POST',
    '/v1/admin/auth/register/options',
    'public',
    z.strictObject({ code: z.string().max(40) }),
    Options(CreationOptionsSchema),
  ),
  adminRegisterVerify: route('POST', '/v1/admin/auth/register/verify', 'public', z.looseObject({}), AdminSessionBody),
  adminSignInOptions: route('POST', '/v1/admin/auth/sign-in/options', 'public', Empty, Options(RequestOptionsSchema)),
  adminSignInVerify: route('POST', '/v1/admin/auth/sign-in/verify', 'public', z.looseObject({}), AdminSessionBody),
  adminAuthSession: route(
    'GET',
    '/v1/admin/auth/session',
    'admin',
    undefined,
    z.union([AdminSessionBody, z.looseObject({ admin: z.null(), bootstrap: z.literal(true) })]),
  ),
  adminStepUpOptions: route('POST', '/v1/admin/auth/step-up/options', 'admin', Empty, Options(RequestOptionsSchema)),
  adminStepUpVerify: route(
    'POST',
    '/v1/admin/auth/step-up/verify',
    'admin',
    z.looseObject({}),
    z.looseObject({ stepUpUntil: ms }),
  ),
  adminSignOut: route('POST', '/v1/admin/auth/sign-out', 'admin', Empty, z.looseObject({ signedOut: z.literal(true) })),
  adminSessionsLive: route(
    'GET',
    '/v1/admin/admin-sessions',
    'admin',
    undefined,
    z.looseObject({ sessions: z.array(z.looseObject({})) }),
  ),

  // ---- admin console endpoints ----
  adminEnrolmentCodes: route(
    'GET',
    '/v1/admin/operators/:id/enrolment-codes',
    'admin',
    undefined,
    z.looseObject({ codes: z.array(Row) }),
  ),
  adminEnrolmentCodeRevoke: route(
    'POST',
    '/v1/admin/operators/:id/enrolment-codes/:codeId/revoke',
    'admin-step-up',
    z.unknown(),
    z.looseObject({ revoked: id }),
  ),
  adminOperatorRoles: route(
    'PUT',
    '/v1/admin/operators/:id/roles',
    'admin-step-up',
    z.looseObject({ roles: z.array(z.string()) }),
    z.looseObject({ operator: OperatorView }),
  ),
  adminPolicyRollback: route(
    'POST',
    '/v1/admin/policy/rollback',
    'admin-step-up',
    z.looseObject({ version: z.int() }),
    PolicyVersion,
  ),
  adminEventsExport: route('GET', '/v1/admin/events/export', 'admin', undefined, null),
  adminStats: route('GET', '/v1/admin/stats', 'admin', undefined, z.looseObject({})),
  /** The SIEM export: each sink's cursor, lag, last delivery and last error (docs/siem.md). */
  adminSiem: route(
    'GET',
    '/v1/admin/siem',
    'admin',
    undefined,
    z.looseObject({
      sinks: z.array(
        z.looseObject({
          name: z.string(),
          kind: z.enum(['syslog', 'http']),
          target: z.string(),
          configured: z.boolean(),
          cursor: z.number(),
          head: z.number(),
          lag: z.number(),
          delivered: z.number(),
          lastDeliveredAt: z.number().nullable(),
          lastError: z.string().nullable(),
          lastErrorAt: z.number().nullable(),
          failures: z.number(),
          deliveringNode: z.string().nullable(),
        }),
      ),
    }),
  ),
  /** The cluster's nodes (heartbeat rows, live / stale / silent) and the answering node's own freshness. */
  adminNodes: route(
    'GET',
    '/v1/admin/nodes',
    'admin',
    undefined,
    z.looseObject({
      nodeId: z.string(),
      staleAfterSeconds: z.number(),
      freshness: z.looseObject({ stale: z.boolean() }),
      nodes: z.array(
        z.looseObject({
          nodeId: z.string(),
          host: z.string(),
          pid: z.number(),
          startedAt: z.number(),
          lastBeat: z.number(),
          state: z.enum(['live', 'stale', 'silent']),
          silentMs: z.number(),
          staleReason: z.string().nullable(),
          self: z.boolean(),
        }),
      ),
    }),
  ),

  // ---- admin API tokens and bulk import (issue 12, docs/admin-console.md) ----
  /** Admin API tokens for scripts: listed without their secrets. */
  adminApiTokens: route(
    'GET',
    '/v1/admin/api-tokens',
    'admin',
    undefined,
    z.looseObject({ tokens: z.array(z.looseObject({ id, scope: z.enum(['read', 'admin']) })) }),
  ),
  /** Issues one (the secret is in this answer only); a signed-in admin with a fresh step-up. */
  adminApiTokenCreate: route(
    'POST',
    '/v1/admin/api-tokens',
    'admin-step-up',
    z.strictObject({
      label: z.string().trim().min(1).max(100),
      scope: z.enum(['read', 'admin']),
      ttlDays: z.int().min(1).max(365).default(90),
    }),
    z.looseObject({ token: z.string(), apiToken: z.looseObject({ id, expiresAt: ms }) }),
  ),
  adminApiTokenRevoke: route(
    'POST',
    '/v1/admin/api-tokens/:id/revoke',
    'admin-step-up',
    RevokeRequestSchema,
    z.looseObject({ apiToken: z.looseObject({ id, revokedAt: ms }) }),
  ),
  /** Operators from CSV (`displayName,roles[,id]`): a dry run reports each row's errors and stores nothing. */
  adminOperatorsImport: route(
    'POST',
    '/v1/admin/operators/import',
    'admin',
    z.strictObject({ csv: z.string().max(1_000_000), dryRun: z.boolean() }),
    z.looseObject({
      dryRun: z.boolean(),
      rows: z.int().nonnegative(),
      created: z.int().nonnegative(),
      errors: z.array(z.looseObject({ row: z.int(), message: z.string() })),
    }),
  ),

  // ---- authenticator metadata ----
  adminMetadataLoad: route(
    'POST',
    '/v1/admin/authenticator-metadata',
    'admin',
    RawUpload,
    z.looseObject({ metadata: z.looseObject({ loaded: z.boolean() }) }),
  ),
  adminMetadata: route(
    'GET',
    '/v1/admin/authenticator-metadata',
    'admin',
    undefined,
    z.looseObject({ metadata: z.looseObject({ loaded: z.boolean() }) }),
  ),
  adminModels: route(
    'GET',
    '/v1/admin/authenticator-models',
    'admin',
    undefined,
    z.looseObject({ metadata: z.looseObject({ loaded: z.boolean() }), models: z.array(z.looseObject({})) }),
  ),

  // ---- Shared Signals transmitter (issue 13, backend/ssf/transmitter/; docs/shared-signals.md "Transmitter") ----
  // `public` in this table: each endpoint authenticates the receiver's bearer token itself (scopes
  // `ssf.read` / `ssf.manage`, SSF_TOKEN_* and SSF_SCOPE_INSUFFICIENT), as an OAuth resource server.
  /** SSF 1.0 transmitter metadata. */
  ssfConfiguration: route('GET', '/.well-known/ssf-configuration', 'public', undefined, SsfDoc),
  /** The transmitter's SET signing keys (RS256 or ES256; retired keys during the overlap). */
  ssfJwks: route(
    'GET',
    '/ssf/jwks.json',
    'public',
    undefined,
    z.looseObject({ keys: z.array(z.looseObject({ kid: z.string() })) }),
  ),
  /** Create a stream (`ssf.manage`): 201 with its configuration. */
  ssfStreamCreate: route('POST', '/ssf/streams', 'public', RawUpload, SsfDoc),
  /** Read one stream (`?stream_id=`) or all of this receiver's (`ssf.read`). */
  ssfStreamRead: route('GET', '/ssf/streams', 'public', undefined, z.union([SsfDoc, z.array(SsfDoc)])),
  /** Update a stream's receiver-supplied members (`ssf.manage`). */
  ssfStreamUpdate: route('PATCH', '/ssf/streams', 'public', RawUpload, SsfDoc),
  /** Replace a stream's receiver-supplied members (`ssf.manage`). */
  ssfStreamReplace: route('PUT', '/ssf/streams', 'public', RawUpload, SsfDoc),
  /** Delete a stream and its queue (`?stream_id=`, `ssf.manage`): 204. */
  ssfStreamDelete: route('DELETE', '/ssf/streams', 'public', undefined, null),
  /** A stream's status (`?stream_id=`, `ssf.read`). */
  ssfStatusRead: route('GET', '/ssf/status', 'public', undefined, SsfStatus),
  /** Set a stream's status: enabled, paused, disabled (`ssf.manage`); a change sends `stream-updated`. */
  ssfStatusUpdate: route('POST', '/ssf/status', 'public', RawUpload, SsfStatus),
  /** Add a subject to a stream (`ssf.manage`): 200. */
  ssfSubjectAdd: route('POST', '/ssf/subjects/add', 'public', RawUpload, z.looseObject({})),
  /** Remove a subject from a stream (`ssf.manage`): 204. */
  ssfSubjectRemove: route('POST', '/ssf/subjects/remove', 'public', RawUpload, null),
  /** Ask for a verification SET (`ssf.manage` or `ssf.read`): 204. */
  ssfVerify: route('POST', '/ssf/verify', 'public', RawUpload, null),
  /** RFC 8936 poll of a poll stream (`ssf.read`): acks, setErrs, maxEvents, returnImmediately. */
  ssfPoll: route(
    'POST',
    '/ssf/poll/:id',
    'public',
    RawUpload,
    z.looseObject({ sets: z.record(z.string(), z.string()), moreAvailable: z.boolean() }),
  ),
  /** Receivers (their tokens) an admin issued: never the token itself. */
  adminSsfReceivers: route(
    'GET',
    '/v1/admin/ssf/receivers',
    'admin',
    undefined,
    z.looseObject({ receivers: z.array(SsfReceiver) }),
  ),
  /** Issue a receiver token (shown once): `{name, scopes, audience?}`. */
  adminSsfReceiverIssue: route(
    'POST',
    '/v1/admin/ssf/receivers',
    'admin-step-up',
    z.strictObject({
      name: z.string().min(1).max(100),
      scopes: z.array(z.enum(['ssf.manage', 'ssf.read'])).min(1),
      audience: z.string().min(1).max(512).optional(),
    }),
    z.looseObject({ receiver: SsfReceiver, token: z.string() }),
  ),
  /** Revoke a receiver's token: its streams stay (and keep queueing) until deleted or disabled. */
  adminSsfReceiverRevoke: route(
    'POST',
    '/v1/admin/ssf/receivers/:id/revoke',
    'admin-step-up',
    Empty,
    z.looseObject({ receiver: SsfReceiver }),
  ),
  /** Every stream out, with status, backlog, lag, last error. */
  adminSsfStreams: route(
    'GET',
    '/v1/admin/ssf/streams',
    'admin',
    undefined,
    z.looseObject({ streams: z.array(z.looseObject({ id })) }),
  ),
  /** Pause, resume or disable a stream as an admin (`{status, reason?}`); resuming redelivers what queued. */
  adminSsfStreamStatus: route(
    'POST',
    '/v1/admin/ssf/streams/:id/status',
    'admin',
    z.strictObject({ status: z.enum(['enabled', 'paused', 'disabled']), reason: z.string().max(500).optional() }),
    SsfStatus,
  ),
  /** Send a stream an SSF verification event as an admin; the streams view shows when the receiver accepted it. */
  adminSsfStreamVerify: route(
    'POST',
    '/v1/admin/ssf/streams/:id/verify',
    'admin',
    Empty,
    z.looseObject({ jti: z.string(), state: z.string(), requestedAt: z.number() }),
  ),
  /** The transmitter's signing keys (public parts and dates). */
  adminSsfKeys: route(
    'GET',
    '/v1/admin/ssf/keys',
    'admin',
    undefined,
    z.looseObject({ keys: z.array(z.looseObject({ kid: z.string() })) }),
  ),
  /** Rotate the transmitter's signing key (`{algorithm?}`): the old key stays published for the overlap. */
  adminSsfKeysRotate: route(
    'POST',
    '/v1/admin/ssf/keys/rotate',
    'admin-step-up',
    z.strictObject({ algorithm: z.enum(['RS256', 'ES256']).optional() }),
    z.looseObject({ previous: z.string(), current: z.string() }),
  ),

  // ---- Shared Signals receiver (issue 13, backend/ssf/receiver/; docs/shared-signals.md "Receiver") ----
  /**
   * RFC 8935 push endpoint for one registered upstream transmitter: one `application/secevent+jwt` SET,
   * authenticated by the push token Baton issued for it and by the SET's signature. 202 on success;
   * refusals carry RFC 8935's `{ err, description }` beside Baton's `error`.
   */
  ssfReceiverPush: route('POST', '/ssf/receiver/:id/events', 'public', RawUpload, null),
  adminSsfTransmitterRegister: route(
    'POST',
    '/v1/admin/ssf/transmitters',
    'admin-step-up',
    z.looseObject({ issuer: z.string() }),
    z.looseObject({ transmitter: Row, pushEndpoint: z.string(), pushToken: z.string() }),
  ),
  adminSsfTransmitters: route(
    'GET',
    '/v1/admin/ssf/transmitters',
    'admin',
    undefined,
    z.looseObject({ transmitters: z.array(Row) }),
  ),
  adminSsfTransmitter: route(
    'GET',
    '/v1/admin/ssf/transmitters/:id',
    'admin',
    undefined,
    z.looseObject({ transmitter: Row }),
  ),
  adminSsfTransmitterDisable: route(
    'DELETE',
    '/v1/admin/ssf/transmitters/:id',
    'admin-step-up',
    undefined,
    z.looseObject({ transmitter: Row }),
  ),
  /**
   * Pause, resume or disable a source in (`{status, reason?, accessToken?}`): paused holds its valid SETs, resumed
   * applies them, disabled refuses its pushes and drops them; with the upstream's access token, the stream Baton
   * created there is asked to take the same status (its answer in `upstream`, never an error).
   */
  adminSsfTransmitterStatus: route(
    'POST',
    '/v1/admin/ssf/transmitters/:id/status',
    'admin-step-up',
    z.strictObject({
      status: z.enum(['enabled', 'paused', 'disabled']),
      reason: z.string().max(500).optional(),
      accessToken: z.string().min(1).max(4096).optional(),
    }),
    z.looseObject({
      transmitter: Row,
      previousStatus: z.enum(['enabled', 'paused', 'disabled']),
      changed: z.boolean(),
      upstream: z.looseObject({ via: z.string(), ok: z.boolean() }).nullable(),
    }),
  ),
  /** Ask the upstream for a verification event (`{accessToken}`): the source shows when the SET carrying its `state` came. */
  adminSsfTransmitterVerify: route(
    'POST',
    '/v1/admin/ssf/transmitters/:id/verify',
    'admin',
    z.strictObject({ accessToken: z.string().min(1).max(4096) }),
    z.looseObject({ state: z.string(), requestedAt: z.number(), transmitter: Row }),
  ),
  /** Creates a push stream at the upstream's configuration endpoint (its `ssf-configuration`). */
  adminSsfTransmitterStream: route(
    'POST',
    '/v1/admin/ssf/transmitters/:id/stream',
    'admin-step-up',
    z.looseObject({}),
    z.looseObject({ transmitter: Row, stream: z.looseObject({}) }),
  ),
  adminOperatorIdentities: route(
    'GET',
    '/v1/admin/operators/:id/identities',
    'admin',
    undefined,
    z.looseObject({ identities: z.array(Row) }),
  ),
  adminOperatorIdentityLink: route(
    'POST',
    '/v1/admin/operators/:id/identities',
    'admin',
    z.looseObject({ format: z.string() }),
    z.looseObject({ identity: Row }),
  ),
  adminOperatorIdentityUnlink: route(
    'DELETE',
    '/v1/admin/operators/:id/identities/:identityId',
    'admin-step-up',
    undefined,
    z.looseObject({ identity: Row }),
  ),

  // ---- SCIM 2.0 provisioning (issue 13, backend/scim/; docs/scim.md) ----
  // Authenticated by the directory's bearer token (issued below); bodies and errors are SCIM's (RFC 7644).
  scimServiceProviderConfig: route('GET', '/scim/v2/ServiceProviderConfig', 'public', undefined, ScimDoc),
  scimResourceTypes: route('GET', '/scim/v2/ResourceTypes', 'public', undefined, ScimDoc),
  scimSchemas: route('GET', '/scim/v2/Schemas', 'public', undefined, ScimDoc),
  scimUsers: route('GET', '/scim/v2/Users', 'public', undefined, ScimDoc),
  scimUserCreate: route('POST', '/scim/v2/Users', 'public', RawUpload, ScimDoc),
  scimUser: route('GET', '/scim/v2/Users/:id', 'public', undefined, ScimDoc),
  scimUserReplace: route('PUT', '/scim/v2/Users/:id', 'public', RawUpload, ScimDoc),
  scimUserPatch: route('PATCH', '/scim/v2/Users/:id', 'public', RawUpload, null),
  scimUserDelete: route('DELETE', '/scim/v2/Users/:id', 'public', undefined, null),
  scimGroups: route('GET', '/scim/v2/Groups', 'public', undefined, ScimDoc),
  scimGroupCreate: route('POST', '/scim/v2/Groups', 'public', RawUpload, ScimDoc),
  scimGroup: route('GET', '/scim/v2/Groups/:id', 'public', undefined, ScimDoc),
  scimGroupReplace: route('PUT', '/scim/v2/Groups/:id', 'public', RawUpload, ScimDoc),
  scimGroupPatch: route('PATCH', '/scim/v2/Groups/:id', 'public', RawUpload, null),
  scimGroupDelete: route('DELETE', '/scim/v2/Groups/:id', 'public', undefined, null),
  /** A directory (an identity provider provisioning over SCIM) and its bearer token, shown once. */
  adminScimDirectoryCreate: route(
    'POST',
    '/v1/admin/scim/directories',
    'admin-step-up',
    z.looseObject({ name: z.string() }),
    z.looseObject({ directory: Row, token: z.string() }),
  ),
  adminScimDirectories: route(
    'GET',
    '/v1/admin/scim/directories',
    'admin',
    undefined,
    z.looseObject({ directories: z.array(Row) }),
  ),
  adminScimDirectoryGroupRoles: route(
    'PUT',
    '/v1/admin/scim/directories/:id/group-roles',
    'admin-step-up',
    z.looseObject({ groupRoles: z.record(z.string(), z.array(z.string())) }),
    z.looseObject({ directory: Row }),
  ),
  adminScimDirectoryRevoke: route(
    'POST',
    '/v1/admin/scim/directories/:id/revoke',
    'admin-step-up',
    z.looseObject({}),
    z.looseObject({ directory: Row }),
  ),

  // ---- the admin console's pages ----
  adminPageBare: route('GET', '/admin', 'public', undefined, null),
  adminPage: route('GET', '/admin/', 'public', undefined, null),
  adminAsset: route('GET', '/admin/:file', 'public', undefined, null),
  // ---- service accounts, admin side (docs/service-accounts.md) ----
  adminServices: route('GET', '/v1/admin/services', 'admin', undefined, ServiceListSchema),
  adminServiceEnrolmentTokenIssue: route(
    'POST',
    '/v1/admin/service-enrolment-tokens',
    'admin',
    IssueServiceTokenRequestSchema,
    IssueServiceTokenResultSchema,
  ),
  adminServiceRevoke: route(
    'POST',
    '/v1/admin/services/:id/revoke',
    'admin-step-up',
    RevokeServiceRequestSchema,
    ServiceRevokeResultSchema,
  ),
  // ---- break-glass (issue 14 item 7; backend/break-glass/) ----
  /** An admin issues a one-time temporary access code bound to an operator and a console. */
  adminBreakGlassCodeIssue: route(
    'POST',
    '/v1/admin/break-glass/codes',
    'admin-step-up',
    IssueBreakGlassCodeRequestSchema,
    IssueBreakGlassCodeResultSchema,
  ),
  /** The console redeems the code for the operator in front of it: a capped session. */
  breakGlassRedeem: route(
    'POST',
    '/v1/break-glass/redeem',
    'console',
    BreakGlassRedeemRequestSchema,
    BreakGlassRedeemResultSchema,
  ),
  /** The console asks for a supervisor's approval for an operator without their key: the tap's options. */
  breakGlassRequest: route(
    'POST',
    '/v1/break-glass/requests',
    'console',
    BreakGlassRequestSchema,
    BreakGlassRequestResultSchema,
  ),
  /** A supervisor's tap on the same console approves the request: the capped session, marked with who approved. */
  breakGlassApprove: route(
    'POST',
    '/v1/break-glass/requests/:id/approve',
    'console',
    BreakGlassApproveRequestSchema,
    BreakGlassRedeemResultSchema,
  ),
  /** Grants waiting for review (`?all=true`: every grant of the last 30 days). */
  adminBreakGlass: route('GET', '/v1/admin/break-glass', 'admin', undefined, BreakGlassListSchema),
  adminBreakGlassSignOff: route(
    'POST',
    '/v1/admin/break-glass/:id/sign-off',
    'admin',
    BreakGlassSignOffRequestSchema,
    BreakGlassGrantSchema,
  ),
} as const satisfies Record<string, RouteSpec>;

export type RouteId = keyof typeof ROUTES;
export const ROUTE_IDS = Object.keys(ROUTES) as RouteId[];

/** The `:name` parameters of a path pattern, as a union of names. */
type ParamNames<P extends string> = P extends `${string}:${infer Name}/${infer Rest}`
  ? Name | ParamNames<`/${Rest}`>
  : P extends `${string}:${infer Name}`
    ? Name
    : never;
export type RouteParams<R extends RouteId> = Record<ParamNames<(typeof ROUTES)[R]['path']>, string | number>;
export type RouteResponse<R extends RouteId> = (typeof ROUTES)[R]['response'] extends z.ZodType
  ? z.infer<(typeof ROUTES)[R]['response']>
  : never;

/** The JSON body a route takes (what its request schema accepts). */
export type RouteBody<R extends RouteId> = (typeof ROUTES)[R]['request'] extends z.ZodType
  ? z.input<(typeof ROUTES)[R]['request']>
  : never;

/** Routes of one kind of caller, e.g. `RoutesFor<'console'>` for the agent's backend client. */
export type RoutesFor<A extends RouteAccess> = {
  [K in RouteId]: (typeof ROUTES)[K]['access'] extends A ? K : never;
}[RouteId];

/** Query parameters; `undefined` ones are left out. */
export type RouteQuery = Record<string, string | number | boolean | undefined>;

/** `routePath`'s arguments after the route id: its parameters (required when its path has some), a query. */
export type RoutePathArgs<R extends RouteId> = [ParamNames<(typeof ROUTES)[R]['path']>] extends [never]
  ? [params?: Record<string, never>, query?: RouteQuery]
  : [params: RouteParams<R>, query?: RouteQuery];

/**
 * The path (and query) to call route `id`: each `:name` replaced by its parameter, percent-encoded.
 * `routePath('sessionEnd', { id: 'ses_1' })` → `/v1/sessions/ses_1/end`.
 */
export function routePath<R extends RouteId>(id: R, ...[params, query]: RoutePathArgs<R>): string {
  return buildRoutePath(id, params ?? {}, query);
}

/** `routePath` without the compile-time check of the parameter names (for generic callers). */
export function buildRoutePath(id: RouteId, params: Record<string, string | number>, query?: RouteQuery): string {
  const path = ROUTES[id].path.replace(/:([A-Za-z]+)/g, (_m, name: string) => {
    const value = params[name];
    if (value === undefined) throw new Error(`routePath(${id}): missing parameter "${name}"`);
    return encodeURIComponent(String(value));
  });
  if (query === undefined) return path;
  const search = Object.entries(query)
    .filter((entry): entry is [string, string | number | boolean] => entry[1] !== undefined)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join('&');
  return search === '' ? path : `${path}?${search}`;
}

/** The route a request's method and path name (no query) belong to, if any; for tests and tools. */
export function matchRoute(method: string, pathname: string): RouteId | undefined {
  return ROUTE_IDS.find((routeId) => {
    const spec: RouteSpec = ROUTES[routeId];
    if (spec.method !== method) return false;
    return routePattern(spec.path).test(pathname);
  });
}

/** A regular expression matching the paths of a pattern (`:name` matches one segment). */
export function routePattern(path: string): RegExp {
  const source = path
    .split('/')
    .map((part) => (part.startsWith(':') ? '([^/]+)' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${source}$`);
}

/** The error body every refusal carries (docs/api.md, "Errors"). */
export const ErrorBodySchema = z.object({
  error: z.looseObject({ code: z.enum(ERROR_CODES), message: z.string() }),
});
