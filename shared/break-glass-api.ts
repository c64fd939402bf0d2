import { z } from 'zod';
import { AuthenticationResponseSchema, RequestOptionsSchema, SessionViewSchema } from './http-api.js';

/** Break-glass HTTP shapes (issue 14 item 7; backend/break-glass/): declared here, used by shared/routes.ts. */
const id = z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'expected an identifier');

export const IssueBreakGlassCodeRequestSchema = z.strictObject({
  operatorId: id,
  consoleId: id,
  /** Why: kept in the grant and its events (the reviewer reads it). */
  reason: z.string().trim().min(1).max(500),
});
export const IssueBreakGlassCodeResultSchema = z.looseObject({
  grantId: z.string(),
  code: z.string(),
  expiresAt: z.number(),
});

export const BreakGlassRedeemRequestSchema = z.strictObject({
  operatorId: id,
  code: z.string().min(1).max(40),
});
export const BreakGlassRedeemResultSchema = z.looseObject({
  session: SessionViewSchema.extend({ level: z.literal('presence') }),
  token: z.string(),
  tokenExpiresAt: z.number(),
  breakGlass: z.looseObject({
    grantId: z.string(),
    actions: z.array(z.string()),
    expiresAt: z.number(),
    /** `admin-code` or `supervisor-tap`, and who approved (`admin:…` or `operator:…`). */
    method: z.string().optional(),
    approvedBy: z.string().optional(),
    /** The approving supervisor's display name (supervisor taps only; `approvedBy` keeps the id). */
    approverName: z.string().optional(),
  }),
});

/** The console asks for a supervisor's approval for the operator in front of it (who typed their operator id). */
export const BreakGlassRequestSchema = z.strictObject({ operatorId: id });
/** The request and the WebAuthn options for the supervisor's tap (user verification required, any supervisor's key). */
export const BreakGlassRequestResultSchema = z.looseObject({
  requestId: z.string(),
  operatorId: z.string(),
  options: RequestOptionsSchema,
  expiresAt: z.number(),
});
/** The supervisor's assertion over the request's challenge. */
export const BreakGlassApproveRequestSchema = z.strictObject({ response: AuthenticationResponseSchema });

export const BreakGlassSignOffRequestSchema = z.strictObject({ note: z.string().trim().min(1).max(500) });

const Grant = z.looseObject({
  id: z.string(),
  operatorId: z.string(),
  consoleId: z.string(),
  site: z.string().nullable(),
  method: z.string(),
  approvedBy: z.string(),
  reason: z.string(),
  issuedAt: z.number(),
  usedAt: z.number().nullable(),
  sessionId: z.string().nullable(),
  signedOffAt: z.number().nullable(),
});
export const BreakGlassGrantSchema = Grant;
export const BreakGlassListSchema = z.looseObject({ grants: z.array(Grant) });
export const BreakGlassListQuerySchema = z.strictObject({ all: z.enum(['true', 'false']).optional() });
