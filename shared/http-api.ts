import { z } from 'zod';
import { IdSchema } from './events.js';
import { LevelSchema, CHANNEL_NAME, PolicySchema } from './policy.js';

/**
 * Request bodies of the console HTTP API (all signed with the console key, see console-auth.ts)
 * and of the admin API. The backend validates every body against these before any work.
 */
export const MAX_HTTP_BODY_BYTES = 64 * 1024;

const b64url = (max: number) =>
  z
    .string()
    .regex(/^[A-Za-z0-9_-]*$/, 'expected base64url')
    .max(max);

export const RegistrationResponseSchema = z.object({
  id: b64url(1400).min(1),
  rawId: b64url(1400).min(1),
  type: z.literal('public-key'),
  response: z.object({
    clientDataJSON: b64url(4096),
    attestationObject: b64url(32 * 1024),
    authenticatorData: b64url(8192).optional(),
    transports: z.array(z.string().max(32)).max(8).optional(),
    publicKeyAlgorithm: z.number().int().optional(),
    publicKey: b64url(4096).optional(),
  }),
  authenticatorAttachment: z.enum(['platform', 'cross-platform']).optional(),
  clientExtensionResults: z.record(z.string(), z.unknown()),
});

export const AuthenticationResponseSchema = z.object({
  id: b64url(1400).min(1),
  rawId: b64url(1400).min(1),
  type: z.literal('public-key'),
  response: z.object({
    clientDataJSON: b64url(4096),
    authenticatorData: b64url(8192),
    signature: b64url(1024),
    userHandle: b64url(256).optional(),
  }),
  authenticatorAttachment: z.enum(['platform', 'cross-platform']).optional(),
  clientExtensionResults: z.record(z.string(), z.unknown()),
});

export const P256PublicJwkSchema = z.strictObject({
  kty: z.literal('EC'),
  crv: z.literal('P-256'),
  x: b64url(64).length(43),
  y: b64url(64).length(43),
});
export type P256PublicJwk = z.infer<typeof P256PublicJwkSchema>;

export const ENROLMENT_CODE_PATTERN = /^[A-Z2-9]{4}(-[A-Z2-9]{4}){3}$/;

// ---- console API ----

export const ConsoleEnrolRequestSchema = z.strictObject({
  token: z.string().min(10).max(200),
  publicKey: P256PublicJwkSchema,
  channel: z.string().regex(CHANNEL_NAME),
  name: z.string().min(1).max(100).optional(),
});

export const OperatorEnrolOptionsRequestSchema = z.strictObject({
  code: z.string().max(40),
});

export const OperatorEnrolVerifyRequestSchema = z.strictObject({
  code: z.string().max(40),
  response: RegistrationResponseSchema,
  /**
   * Registering signs the operator in (issue 12): the console asks for the session with the
   * registration (the agent always does; a client that only registers keys does not).
   */
  signIn: z.boolean().optional(),
});

export const SignInOptionsRequestSchema = z.strictObject({});

export const SignInVerifyRequestSchema = z.strictObject({
  response: AuthenticationResponseSchema,
});

export const StepUpOptionsRequestSchema = z.strictObject({
  action: z.string().max(100),
});

export const StepUpVerifyRequestSchema = z.strictObject({
  action: z.string().max(100),
  response: AuthenticationResponseSchema,
});

export const SessionEndRequestSchema = z.strictObject({
  reason: z.enum(['sign-out', 'evicted', 'expired', 'idle-timeout']),
});

/** `POST /v1/sessions/:id/token`: a fresh assurance token for an active session (the body is empty). */
export const SessionTokenRequestSchema = z.strictObject({});

/** The session as the backend describes it to a console. */
export const SessionViewSchema = z.object({
  id: IdSchema,
  operatorId: IdSchema,
  operatorName: z.string(),
  consoleId: IdSchema,
  channel: z.string(),
  level: LevelSchema,
  aal: z.number(),
  acr: z.string(),
  amr: z.array(z.string()),
  authTime: z.number(),
  startedAt: z.number(),
  expiresAt: z.number(),
  state: z.enum(['active', 'suspended', 'ended', 'revoked', 'expired']),
});
export type SessionView = z.infer<typeof SessionViewSchema>;

// ---- admin API ----

export const IssueConsoleTokenRequestSchema = z.strictObject({
  channel: z.string().regex(CHANNEL_NAME).optional(),
  site: z.string().min(1).max(100).optional(),
  ttlSeconds: z
    .int()
    .min(60)
    .max(30 * 24 * 3600)
    .optional(),
});

export const CreateOperatorRequestSchema = z.strictObject({
  id: IdSchema.optional(),
  displayName: z.string().trim().min(1).max(100),
  roles: z
    .array(z.string().regex(/^[a-z][a-z0-9-]{0,39}$/))
    .max(20)
    .default([]),
});

export const IssueEnrolmentCodeRequestSchema = z.strictObject({
  ttlSeconds: z
    .int()
    .min(60)
    .max(7 * 24 * 3600)
    .optional(),
});

export const RevokeRequestSchema = z.strictObject({
  reason: z.string().trim().min(1, 'a reason is required').max(500),
});

export const PublishPolicyRequestSchema = z.strictObject({
  /** The version the edit started from; publishing fails if another version was published since. */
  baseVersion: z.int().nonnegative(),
  policy: z.unknown(),
});

export const PreviewDecisionRequestSchema = z.strictObject({
  /** A draft to evaluate; the current published policy when absent. */
  policy: z.unknown().optional(),
  action: z.string().max(100),
  context: z.strictObject({
    channel: z.string().max(40),
    level: LevelSchema.nullable(),
    authAgeSeconds: z.number().nonnegative().nullable(),
    sessionAgeSeconds: z.number().nonnegative().nullable().optional(),
  }),
});

// ---- console API responses (the agent checks every answer against these) ----

/** WebAuthn options as the backend sends them; the browser half validates the rest. */
export const RequestOptionsSchema = z.looseObject({
  challenge: b64url(512).min(16),
  rpId: z.string().max(253).optional(),
  allowCredentials: z
    .array(z.looseObject({ id: b64url(1400), type: z.literal('public-key') }))
    .max(64)
    .optional(),
  userVerification: z.enum(['required', 'preferred', 'discouraged']).optional(),
  timeout: z.number().optional(),
});
export const CreationOptionsSchema = z.looseObject({
  challenge: b64url(512).min(16),
  rp: z.looseObject({ id: z.string().max(253).optional(), name: z.string() }),
  user: z.looseObject({ id: b64url(256), name: z.string(), displayName: z.string() }),
});

export const SignInOptionsResultSchema = z.object({ options: RequestOptionsSchema });

export const SignInResultSchema = z.object({
  session: SessionViewSchema,
  resumed: z.boolean(),
  token: z.string().max(4096),
  tokenExpiresAt: z.number(),
  credential: z.object({ id: b64url(1400).min(1), publicKey: b64url(4096).min(1), counter: z.int().nonnegative() }),
  suspended: z.array(IdSchema),
  evicted: z.array(IdSchema),
});

const DecisionSchema = z.union([
  z.object({ outcome: z.literal('allow'), reasons: z.array(z.string()) }),
  z.object({
    outcome: z.literal('step-up'),
    level: LevelSchema,
    maxAgeSeconds: z.number(),
    reasons: z.array(z.string()),
  }),
  z.object({ outcome: z.literal('deny'), reasons: z.array(z.string()) }),
]);

export type SignInResult = z.infer<typeof SignInResultSchema>;

export const StepUpOptionsResultSchema = z.object({
  decision: DecisionSchema,
  options: RequestOptionsSchema.optional(),
});

export const StepUpResultSchema = z.object({
  decision: DecisionSchema,
  session: SessionViewSchema,
  token: z.string().max(4096),
  tokenExpiresAt: z.number(),
});

export const SessionEndResultSchema = z.object({ session: SessionViewSchema });

/**
 * A refreshed token: same session, same `auth_time` (a refresh is not an authentication), a new
 * expiry. `serverTime` lets the console measure the token's lifetime without trusting its own clock.
 */
export const SessionTokenResultSchema = z.object({
  session: SessionViewSchema,
  token: z.string().max(4096),
  tokenExpiresAt: z.number(),
  serverTime: z.number(),
});

/** `POST /v1/consoles/enrol`: the id the backend assigned and the channel's current policy. */
export const ConsoleEnrolResultSchema = z.object({
  consoleId: IdSchema,
  channel: z.string(),
  site: z.string().nullable().optional(),
  policy: z.object({ version: z.int().positive(), policy: PolicySchema }),
});

export const OperatorEnrolOptionsResultSchema = z.object({
  options: CreationOptionsSchema,
  operator: z.object({ id: IdSchema, displayName: z.string() }),
});

export const OperatorEnrolResultSchema = z.object({
  operatorId: IdSchema,
  displayName: z.string(),
  credential: z.looseObject({ id: z.string() }),
  /** Registering a key signs its operator in (issue 12): the session, as a sign-in answers it. */
  signIn: SignInResultSchema.optional(),
  /** The key is registered but no session started (the channel refuses its level, a locked operator…): why. */
  signInRefused: z.object({ code: z.string().max(100), message: z.string().max(500) }).optional(),
});

/** Who the policy reaches (GET /v1/admin/policy/versions `adoption`), counted by the backend's database. */
export interface PolicyAdoption {
  /** Consoles not revoked, per channel (counted by the database, the whole estate). */
  byChannel: Record<string, number>;
  /** Consoles not revoked, per policy version they run, newest first, with a few of their names. */
  byVersion: {
    version: number;
    consoles: number;
    sample: { id: string; name: string | null; site: string | null }[];
  }[];
  /** More versions are run than byVersion lists. */
  versionsAtLeast: boolean;
}
