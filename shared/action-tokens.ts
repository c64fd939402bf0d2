import { z } from 'zod';
import { ACTION_NAME } from './policy.js';
import { REVOCATION_KINDS } from './protocol.js';

/**
 * The wire shapes of Baton's action tokens (docs/action-tokens.md): the RFC 8693 token exchange a
 * console makes for the operator in front, and the events of the revocation stream app servers follow.
 */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
/** The assurance token a console holds is an RFC 9068 access token (`typ: at+jwt`). */
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
export const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

/** RFC 8693 §2.1, as JSON (the console API signs JSON bodies); `scope` is the one action asked for. */
export const TokenExchangeRequestSchema = z
  .strictObject({
    grant_type: z.string().max(200),
    /** The session's assurance token; it proves the console holds the session (never leaves the agent otherwise). */
    subject_token: z.string().min(1).max(8192),
    subject_token_type: z.string().max(200),
    /** The app server the token is for (`apps[].audience` in the policy). */
    audience: z.string().min(1).max(200),
    /** The action, as RFC 8693 `scope` (one action name). */
    scope: z.string().regex(ACTION_NAME, 'expected one action name like "payment.approve"').optional(),
    /** The same as `scope`, for callers that name it so; give one of the two. */
    action: z.string().regex(ACTION_NAME, 'expected one action name like "payment.approve"').optional(),
    requested_token_type: z.string().max(200).optional(),
  })
  .refine((r) => (r.scope ?? r.action) !== undefined, { message: 'scope (the action) is required', path: ['scope'] })
  .refine((r) => r.scope === undefined || r.action === undefined || r.scope === r.action, {
    message: 'scope and action name different actions',
    path: ['action'],
  });
export type TokenExchangeRequest = z.infer<typeof TokenExchangeRequestSchema>;

/** RFC 8693 §2.2.1. */
export const TokenExchangeResponseSchema = z.strictObject({
  access_token: z.string().min(1),
  issued_token_type: z.literal(ACCESS_TOKEN_TYPE),
  token_type: z.literal('Bearer'),
  expires_in: z.int().positive(),
  scope: z.string(),
});
export type TokenExchangeResponse = z.infer<typeof TokenExchangeResponseSchema>;

/** What a refused exchange's `error.decision` carries for a step-up (the RFC 9470 challenge's parameters). */
export const StepUpDetailsSchema = z.looseObject({
  outcome: z.literal('step-up'),
  level: z.string(),
  maxAgeSeconds: z.int().nonnegative(),
  reasons: z.array(z.string()),
  acr_values: z.string(),
  max_age: z.int().nonnegative(),
});
export type StepUpDetails = z.infer<typeof StepUpDetailsSchema>;

/** One revocation as the stream carries it (`event: revocation`, `id:` its epoch). */
export const StreamRevocationSchema = z.strictObject({
  epoch: z.int().positive(),
  kind: z.enum(REVOCATION_KINDS),
  targetId: z.string(),
  /** The operator concerned (operator, credential and session revocations). */
  operatorId: z.string().nullable(),
  /** When it was committed (epoch ms): tokens of its scope issued up to then are refused. */
  at: z.int().nonnegative(),
});
export type StreamRevocation = z.infer<typeof StreamRevocationSchema>;
