import { z } from 'zod';
import { ACTION_NAME } from './policy.js';

/**
 * The service accounts' HTTP shapes (docs/service-accounts.md): enrolment with a one-time token and a
 * key the service generated, RFC 7523 client assertions at the token endpoint, key rotation, and the
 * admin side. Declared here and used by the route table (shared/routes.ts).
 */

/** RFC 7523 §2.2: the only client authentication the token endpoint accepts. */
export const CLIENT_ASSERTION_TYPE_JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
export const GRANT_CLIENT_CREDENTIALS = 'client_credentials';
export const GRANT_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const TOKEN_TYPE_ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';
/** The `aud` of the key-possession proof sent with an enrolment. */
export const SERVICE_ENROLMENT_PROOF_AUDIENCE = 'urn:baton:service-enrolment';
/** The `aud` of the key-possession proof sent with a key rotation. */
export const SERVICE_KEY_ROTATION_PROOF_AUDIENCE = 'urn:baton:service-key-rotation';
/** The `channel` claim of every token a service gets. */
export const SERVICE_CHANNEL = 'service';

export const SERVICE_ID = /^svc_[0-9a-f]{32}$/;
const b64url = z.string().regex(/^[A-Za-z0-9_-]+$/, 'expected base64url');
const compactJws = z
  .string()
  .max(8192)
  .regex(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'expected a compact JWS (three base64url parts)');

/** A service's public key: an EC P-256 JWK as `jose.exportJWK` writes it (`kid`, `alg`, `use` tolerated, never `d`). */
export const ServicePublicJwkSchema = z.strictObject({
  kty: z.literal('EC'),
  crv: z.literal('P-256'),
  x: b64url.length(43),
  y: b64url.length(43),
  kid: z.string().max(200).optional(),
  alg: z.literal('ES256').optional(),
  use: z.literal('sig').optional(),
});
export type ServicePublicJwk = z.infer<typeof ServicePublicJwkSchema>;

const actionName = z.string().regex(ACTION_NAME, 'expected an action name like "payment.post"');

export const IssueServiceTokenRequestSchema = z.strictObject({
  /** Shown in the admin console and events, e.g. "nightly payments batch". */
  name: z.string().min(1).max(100),
  /** The actions the service may ever ask tokens for (the policy's `service.actions` must allow each too). */
  actions: z.array(actionName).min(1).max(50),
  /** Lifetime of the one-time enrolment token (default 24 h, at most 7 days). */
  ttlSeconds: z
    .int()
    .min(60)
    .max(7 * 24 * 3600)
    .optional(),
});

export const ServiceEnrolRequestSchema = z.strictObject({
  token: z.string().min(10).max(200),
  publicKey: ServicePublicJwkSchema,
  /** A JWT signed with the new key: `aud` = SERVICE_ENROLMENT_PROOF_AUDIENCE, `nonce` = hex SHA-256 of `token`, `exp`. */
  proof: compactJws,
});

export const ServiceEnrolResultSchema = z.looseObject({
  serviceId: z.string().regex(SERVICE_ID),
  name: z.string(),
  actions: z.array(z.string()),
  kid: z.string(),
  tokenEndpoint: z.string(),
  /** This service's key-rotation endpoint: the `aud` of a rotation's client assertion, exactly. */
  keyRotationEndpoint: z.string(),
});

/** The token endpoint's parameters (RFC 6749 §4.4, RFC 7523 §2.2, RFC 8693 §2.1), as a form or as JSON. */
export const ServiceTokenRequestSchema = z.strictObject({
  grant_type: z.string().max(100),
  client_id: z.string().max(100).optional(),
  client_assertion_type: z.string().max(100),
  client_assertion: compactJws,
  /** The app server the token is for (`apps[].audience` of the policy). */
  audience: z.string().min(1).max(200),
  /** The action; `scope` is accepted as well (one action). */
  action: actionName.optional(),
  scope: actionName.optional(),
  /** The human session the service acts for: that operator's action token for the same audience and action. */
  actor_token: compactJws.optional(),
  actor_token_type: z.string().max(100).optional(),
  requested_token_type: z.string().max(100).optional(),
  subject_token: z.string().max(8192).optional(),
  subject_token_type: z.string().max(100).optional(),
});

export const ServiceTokenResultSchema = z.looseObject({
  access_token: z.string(),
  token_type: z.literal('Bearer'),
  expires_in: z.int().positive(),
  issued_token_type: z.literal(TOKEN_TYPE_ACCESS_TOKEN),
  scope: z.string(),
});

export const ServiceKeyRotateRequestSchema = z.strictObject({
  client_assertion_type: z.string().max(100),
  client_assertion: compactJws,
  publicKey: ServicePublicJwkSchema,
  /** A JWT signed with the new key: `aud` = SERVICE_KEY_ROTATION_PROOF_AUDIENCE, `sub` = the service id, `exp`. */
  proof: compactJws,
});

export const ServiceKeyRotateResultSchema = z.looseObject({
  serviceId: z.string(),
  kid: z.string(),
  retired: z.array(z.string()),
});

export const RevokeServiceRequestSchema = z.strictObject({ reason: z.string().min(1).max(500) });

const ServiceView = z.looseObject({
  id: z.string(),
  name: z.string(),
  actions: z.array(z.string()),
  enrolledAt: z.number(),
  lastUsedAt: z.number().nullable(),
  revokedAt: z.number().nullable(),
  keys: z.array(z.looseObject({ kid: z.string(), createdAt: z.number(), retiredAt: z.number().nullable() })),
  tokens: z.array(
    z.looseObject({ action: z.string(), issued: z.int(), refused: z.int(), lastIssuedAt: z.number().nullable() }),
  ),
});
export const ServiceListSchema = z.looseObject({ services: z.array(ServiceView) });
export const ServiceRevokeResultSchema = z.looseObject({
  serviceId: z.string(),
  revokedAt: z.number(),
  tokensRevoked: z.int().nonnegative(),
});
export const IssueServiceTokenResultSchema = z.looseObject({ token: z.string(), expiresAt: z.number() });
