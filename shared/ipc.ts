import { z } from 'zod';
import { ERROR_CODES } from './errors.js';
import { IdSchema } from './events.js';
import { LevelSchema, ACTION_NAME, SupportContactSchema } from './policy.js';

/**
 * The IPC contract between the operator UI (renderer, through the preload's `window.baton`) and
 * the agent (main process), declared once: each channel (`domain:verb`) has a request and a
 * response schema, and types come from the schemas. Main checks the sender and parses every
 * request before any work; every answer is an `IpcResult`. The development bridge (a loopback
 * WebSocket standing in for Electron IPC in browser tests) speaks exactly this contract too.
 */

// ---- what the UI sees ----

export const SESSION_STATES = ['active', 'stepped-up', 'locked', 'suspended', 'expired', 'revoked', 'ended'] as const;
/** Why the session in front locked (kiosk, issue 12): the lock screen says which. */
export const LOCK_REASONS = ['idle-timeout', 'os-lock', 'operator-locked', 'offline-limit-reached'] as const;
export type LockReason = (typeof LOCK_REASONS)[number];

/**
 * A break-glass session's terms (issue 14 item 7): how it was approved and by whom, the only actions
 * it may perform, its end. The operator UI and the workspace say it as what it is, never "key tap".
 */
export const BreakGlassMarkSchema = z.strictObject({
  method: z.enum(['admin-code', 'supervisor-tap']),
  /** `admin:<id>` or `operator:<supervisor id>`. */
  approvedBy: z.string().max(200),
  /** The approving supervisor's display name, as the backend sent it with the grant (supervisor taps only). */
  approverName: z.string().max(200).optional(),
  actions: z.array(z.string().max(100)).max(100),
  expiresAt: z.number(),
});
export type BreakGlassMark = z.infer<typeof BreakGlassMarkSchema>;

export const SessionSnapshotSchema = z.strictObject({
  id: IdSchema,
  operatorId: IdSchema,
  operatorName: z.string().max(100),
  level: LevelSchema,
  aal: z.int().min(1).max(3),
  authTime: z.number(),
  startedAt: z.number(),
  expiresAt: z.number(),
  state: z.enum(SESSION_STATES),
  since: z.number().optional(),
  lockedBecause: z.enum(LOCK_REASONS).optional(),
  inFront: z.boolean(),
  /** Present only for a break-glass session: temporary access without the operator's key. */
  breakGlass: BreakGlassMarkSchema.optional(),
});
export type SessionSnapshotView = z.infer<typeof SessionSnapshotSchema>;

export const IdentityStatusSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('enrolled'), consoleId: IdSchema, channel: z.string() }),
  z.strictObject({ kind: z.literal('unenrolled') }),
  z.strictObject({
    kind: z.literal('re-enrolment-required'),
    reason: z.enum(['key-missing', 'revoked', 'state-unreadable', 'unknown-to-backend']),
    detail: z.string(),
  }),
]);

export const AgentPhaseSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('idle') }),
  z.strictObject({ kind: z.literal('signing-in'), offline: z.boolean() }),
  z.strictObject({
    kind: z.literal('stepping-up'),
    action: z.string(),
    /** Once the backend has decided: the level the action needs and why (decision reasons). */
    level: LevelSchema.optional(),
    reasons: z.array(z.string().max(60)).max(20).optional(),
  }),
  z.strictObject({ kind: z.literal('enrolling-operator') }),
  z.strictObject({ kind: z.literal('enrolling-console') }),
]);

/** The renderer's view of the agent: no tokens, no credential ids, no key material. */
export const AgentStatusViewSchema = z.strictObject({
  identity: IdentityStatusSchema,
  connection: z.enum(['connecting', 'syncing', 'online', 'offline', 'stopped']),
  phase: AgentPhaseSchema,
  front: SessionSnapshotSchema.optional(),
  locked: z.boolean(),
  sessions: z.array(SessionSnapshotSchema).max(50),
  outbox: z
    .strictObject({
      pending: z.int().nonnegative(),
      max: z.int().positive(),
      nearFull: z.boolean(),
      lastSeq: z.int().nonnegative(),
      ackedSeq: z.int().nonnegative(),
    })
    .optional(),
  policyVersion: z.int().nonnegative(),
  notice: z.strictObject({ code: z.enum(ERROR_CODES), message: z.string(), at: z.number() }).optional(),
  /** The channel's timings, for the UI's explanations (idle lock, continuity window, offline grace). */
  limits: z
    .strictObject({
      idleLockSeconds: z.int().nonnegative(),
      continuitySeconds: z.int().nonnegative(),
      offlineGraceSeconds: z.int().nonnegative(),
      /** Kiosk (issue 12): the lock screen waits for a key by itself (policy `tapAndGo`). */
      tapAndGo: z.boolean().optional(),
    })
    .optional(),
  /** The last session that left the console and why (`revoked`, `expired`, `ended` with a reason). */
  lastEnded: z
    .strictObject({
      sessionId: IdSchema,
      operatorName: z.string().max(100),
      state: z.enum(['expired', 'revoked', 'ended']),
      reason: z.string().max(60),
      at: z.number(),
    })
    .optional(),
  /** Kiosk (issue 12): the idle lock is near; input (or "Stay signed in") takes the warning away. */
  idleWarning: z.strictObject({ locksAt: z.number() }).optional(),
  /** Kiosk (issue 12): whom to ask for help at this console's site (policy `support`). */
  support: SupportContactSchema.optional(),
});
export type AgentStatusView = z.infer<typeof AgentStatusViewSchema>;

export const AuthorizeResultSchema = z.discriminatedUnion('outcome', [
  z.strictObject({ outcome: z.literal('allow'), steppedUp: z.boolean(), reasons: z.array(z.string()) }),
  z.strictObject({ outcome: z.literal('deny'), reasons: z.array(z.string()) }),
  z.strictObject({ outcome: z.literal('refused'), code: z.enum(ERROR_CODES), message: z.string() }),
]);

/**
 * A workspace app's action token (docs/action-tokens.md): for its server (`audience`) and one
 * action, short-lived; the session's assurance token itself never leaves the agent.
 */
export const ActionTokenResultSchema = z.discriminatedUnion('outcome', [
  z.strictObject({
    outcome: z.literal('issued'),
    token: z.string().max(8192),
    /** Epoch ms. */
    expiresAt: z.number(),
    audience: z.string(),
    action: z.string(),
    steppedUp: z.boolean(),
  }),
  z.strictObject({ outcome: z.literal('deny'), reasons: z.array(z.string()) }),
  z.strictObject({ outcome: z.literal('refused'), code: z.enum(ERROR_CODES), message: z.string() }),
]);

/** What a workspace app may read about the operator in front: assurance, never the token. */
export const WorkspaceAssuranceSchema = z.strictObject({
  operatorId: IdSchema,
  operatorName: z.string(),
  sessionId: IdSchema,
  level: LevelSchema,
  aal: z.int().min(1).max(3),
  acr: z.string(),
  amr: z.array(z.string()),
  authTime: z.number(),
  consoleId: IdSchema,
  channel: z.string(),
  /** Present only for a break-glass session: the workspace must not take it for a key's sign-in. */
  breakGlass: BreakGlassMarkSchema.optional(),
});

// ---- ceremonies: main asks the renderer to run the browser half ----

/** Pushed main → renderer: run `navigator.credentials.get/create` with these options. */
export const CeremonyRequestSchema = z.strictObject({
  requestId: z.uuid(),
  kind: z.enum(['get', 'create']),
  purpose: z.enum(['sign-in', 'step-up', 'offline-resume', 'enrol', 'break-glass']),
  action: z.string().optional(),
  operatorName: z.string().optional(),
  /** WebAuthn options JSON as the backend (or the agent, offline) made them. */
  options: z.record(z.string(), z.unknown()),
});
export type CeremonyRequest = z.infer<typeof CeremonyRequestSchema>;

const AnswerSchema = z.discriminatedUnion('outcome', [
  // The response is checked against the WebAuthn response schemas by the agent before use.
  z.strictObject({ requestId: z.uuid(), outcome: z.literal('ok'), response: z.record(z.string(), z.unknown()) }),
  z.strictObject({ requestId: z.uuid(), outcome: z.literal('cancelled'), reason: z.string().max(200) }),
]);

/**
 * Pushed main → renderer when one security key holds several operators' discoverable credentials
 * and Electron asks which one to use (`select-webauthn-account`): Baton shows its own picker.
 */
export const AccountChoiceRequestSchema = z.strictObject({
  requestId: z.uuid(),
  relyingPartyId: z.string().max(253),
  accounts: z
    .array(
      z.strictObject({
        credentialId: z.string().min(1).max(1024),
        name: z.string().max(200).optional(),
        displayName: z.string().max(200).optional(),
      }),
    )
    .min(2)
    .max(50),
});
export type AccountChoiceRequest = z.infer<typeof AccountChoiceRequestSchema>;

/** Break-glass (issue 14 item 7): the capped session that came to the front, and its terms (never its token). */
export const BreakGlassStartedSchema = z.strictObject({
  session: SessionSnapshotSchema,
  breakGlass: BreakGlassMarkSchema,
});

// ---- the channels ----

const Empty = z.strictObject({});

export const IPC_CONTRACT = {
  'agent:get-status': { request: Empty, response: AgentStatusViewSchema },
  'console:enrol': { request: z.strictObject({ token: z.string().min(10).max(200) }), response: IdentityStatusSchema },
  'operator:enrol': {
    request: z.strictObject({ code: z.string().min(1).max(40) }),
    response: z.strictObject({
      operatorId: IdSchema,
      displayName: z.string(),
      /** Registering signed the operator in: their session is in front (issue 12). */
      signedIn: z.boolean(),
      /** The key is registered but no session started: why (a stable code and the backend's words). */
      signInRefused: z.strictObject({ code: z.string(), message: z.string() }).optional(),
    }),
  },
  'session:tap-in': { request: Empty, response: SessionSnapshotSchema },
  /** Break-glass: an operator without their key types their id; a supervisor taps their own key to approve. */
  'break-glass:supervisor': { request: z.strictObject({ operatorId: IdSchema }), response: BreakGlassStartedSchema },
  /** Break-glass: an operator without their key, with the one-time code IT issued for them on this console. */
  'break-glass:redeem': {
    request: z.strictObject({ operatorId: IdSchema, code: z.string().min(1).max(40) }),
    response: BreakGlassStartedSchema,
  },
  'session:lock': { request: Empty, response: Empty },
  'session:sign-out': { request: Empty, response: Empty },
  'session:activity': { request: Empty, response: Empty },
  'action:authorize': {
    request: z.strictObject({
      action: z.string().regex(ACTION_NAME, 'expected an action name like "payment.approve"'),
    }),
    response: AuthorizeResultSchema,
  },
  'ceremony:answer': { request: AnswerSchema, response: Empty },
  /**
   * The operator UI has subscribed to every pushed event: what main held back while the page was
   * loading (or reloading) is sent now, in order. Until then pushes are queued, never dropped.
   */
  'ui:ready': { request: Empty, response: Empty },
  /** The operator's pick from `ceremony:choose-account`; `null` cancels the tap. */
  'ceremony:account-chosen': {
    request: z.strictObject({ requestId: z.uuid(), credentialId: z.string().min(1).max(1024).nullable() }),
    response: Empty,
  },
  // Workspace apps (their own preload, their own partition): read assurance, ask for step-up.
  'workspace:get-assurance': { request: Empty, response: WorkspaceAssuranceSchema.nullable() },
  'workspace:step-up': {
    request: z.strictObject({
      action: z.string().regex(ACTION_NAME, 'expected an action name like "payment.approve"'),
    }),
    response: AuthorizeResultSchema,
  },
  /**
   * An action token for the workspace app's server. With `challenge` (the server's RFC 9470
   * `WWW-Authenticate` value) the agent first asks the operator to step up, then issues a fresh one.
   */
  'workspace:action-token': {
    request: z.strictObject({
      audience: z.string().min(1).max(200),
      action: z.string().regex(ACTION_NAME, 'expected an action name like "payment.approve"'),
      challenge: z.string().max(2000).optional(),
    }),
    response: ActionTokenResultSchema,
  },
} as const;

export type IpcChannel = keyof typeof IPC_CONTRACT;
export type IpcRequest<C extends IpcChannel> = z.infer<(typeof IPC_CONTRACT)[C]['request']>;
export type IpcResponse<C extends IpcChannel> = z.infer<(typeof IPC_CONTRACT)[C]['response']>;
export const IPC_CHANNELS = Object.keys(IPC_CONTRACT) as IpcChannel[];

/** Channels the operator UI may call; workspace apps get only `workspace:*`. */
export const OPERATOR_UI_CHANNELS: readonly IpcChannel[] = IPC_CHANNELS.filter((c) => !c.startsWith('workspace:'));
export const WORKSPACE_CHANNELS: readonly IpcChannel[] = IPC_CHANNELS.filter((c) => c.startsWith('workspace:'));

/** Pushed main → renderer (no answer). */
export const IPC_EVENTS = {
  'agent:status': AgentStatusViewSchema,
  'ceremony:request': CeremonyRequestSchema,
  'ceremony:choose-account': AccountChoiceRequestSchema,
} as const;
export type IpcEvent = keyof typeof IPC_EVENTS;
/** Each pushed event's payload type. */
export type IpcEvents = { [E in IpcEvent]: z.infer<(typeof IPC_EVENTS)[E]> };

export type IpcResult<T> = { ok: true; value: T } | { ok: false; error: { code: string; message: string } };

export function isIpcChannel(value: unknown): value is IpcChannel {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(IPC_CONTRACT, value);
}
