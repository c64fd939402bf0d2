import { createPublicKey, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, compactVerify, decodeProtectedHeader } from 'jose';
import { evaluatePolicy } from '../../shared/evaluate-policy.js';
import { BatonError, type ErrorCode } from '../../shared/errors.js';
import type { AssuranceLevel } from '../../shared/levels.js';
import {
  ACTION_NAME,
  DEFAULT_SERVICE_ASSERTION_MAX_SECONDS,
  DEFAULT_SERVICE_TOKEN_TTL_SECONDS,
  DEFAULT_ACTION_TOKEN_TTL_SECONDS,
  appForAudience,
  type Policy,
} from '../../shared/policy.js';
import {
  CLIENT_ASSERTION_TYPE_JWT_BEARER,
  GRANT_CLIENT_CREDENTIALS,
  GRANT_TOKEN_EXCHANGE,
  SERVICE_CHANNEL,
  SERVICE_ENROLMENT_PROOF_AUDIENCE,
  SERVICE_ID,
  SERVICE_KEY_ROTATION_PROOF_AUDIENCE,
  TOKEN_TYPE_ACCESS_TOKEN,
  TOKEN_TYPE_JWT,
  type ServicePublicJwk,
} from '../../shared/service-accounts-api.js';
import { BREAK_GLASS_REASON, breakGlassAllows, isBreakGlassSession } from '../break-glass/break-glass.js';
import { newId, newSecretToken, sha256Hex } from '../crypto/secrets.js';
import type { EventLog } from '../services/event-log.js';
import type { Store } from '../store/repositories.js';
import { assertUsable } from '../tokens/token-exchange.js';
import { UnauthenticatedRefusalTrail, type RefusalTrailCounts } from './refusal-trail.js';
import { serviceStore, type ServiceKeyRecord, type ServiceRecord, type ServiceStore } from './service-store.js';

/** Clocks of services and of the backend may differ this much (assertion `exp`, `iat`, `nbf`). */
export const ASSERTION_CLOCK_SKEW_MS = 30_000;
/** A key-possession proof (enrolment, rotation) lives at most this long. */
export const PROOF_MAX_SECONDS = 300;
/** Enrolment tokens live this long unless the admin says otherwise. */
export const DEFAULT_SERVICE_ENROLMENT_TOKEN_TTL_SECONDS = 24 * 3600;
/** The namespace of used assertion ids in the store's claim-once table (shared by every node). */
export const ASSERTION_JTI_KIND = 'service-assertion-jti';
/** At most this many current keys per service (a rotation retires the others). */
const MAX_CURRENT_KEYS = 1;

/** What the service accounts need of the action-token issuer (backend/tokens/action-token-issuer.ts). */
export interface ServiceTokenSigner {
  sign(claims: {
    subject: string;
    audience: string;
    action: string;
    ttlSeconds: number;
    /** Epoch ms: `exp` is never later than this. */
    notAfter?: number | undefined;
    channel: string;
    policyVersion: number;
    sessionId?: string | undefined;
    level?: AssuranceLevel | undefined;
    authTime?: number | undefined;
    act?: { sub: string; sid?: string; console?: string } | undefined;
    extra?: Record<string, unknown> | undefined;
  }): Promise<{ token: string; jti: string; expiresAt: number; expiresIn: number }>;
  /** Verifies an action token for `audience` (throws when it does not verify). */
  verify(
    token: string,
    audience: string,
  ): Promise<{ sub?: string; sid?: string; exp?: number; action: string; channel: string }>;
}

export interface ServiceAccountsDeps {
  store: Store;
  events: EventLog;
  clock: () => number;
  policy: () => { version: number; policy: Policy };
  signer: ServiceTokenSigner;
}

export interface TokenRequest {
  grant_type: string;
  client_id?: string | undefined;
  client_assertion_type: string;
  client_assertion: string;
  audience: string;
  action?: string | undefined;
  scope?: string | undefined;
  actor_token?: string | undefined;
  actor_token_type?: string | undefined;
  requested_token_type?: string | undefined;
  subject_token?: string | undefined;
  subject_token_type?: string | undefined;
}

export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  issued_token_type: typeof TOKEN_TYPE_ACCESS_TOKEN;
  scope: string;
}

export interface ServiceView {
  id: string;
  name: string;
  actions: string[];
  enrolledAt: number;
  enrolledBy: string;
  lastUsedAt: number | null;
  revokedAt: number | null;
  revokedBy: string | null;
  revokedReason: string | null;
  keys: { kid: string; createdAt: number; retiredAt: number | null }[];
  tokens: { action: string; issued: number; refused: number; lastIssuedAt: number | null }[];
}

/** The human session a service's token acts for (`act`). */
interface Actor {
  operatorId: string;
  sessionId: string;
  /** The console the session was opened at (`act.console`: its revocation refuses the service's token too). */
  consoleId: string;
  /**
   * Epoch ms: when the service's token must end at the latest, the earlier of the session's end and
   * the actor token's `exp` (a token acting for a human never outlives the human's own).
   */
  notAfter: number;
  level: AssuranceLevel;
  authTime: number;
  /** A break-glass session: its tokens are marked `break_glass` and capped to the policy's `breakGlass.actions`. */
  breakGlass: boolean;
}

function refuse(code: ErrorCode, message: string): never {
  throw new BatonError(code, message);
}

/** The parts of a compact JWS, decoded without verifying anything (what is checked before the signature). */
function peek(jws: string): { header: Record<string, unknown>; claims: Record<string, unknown> } {
  try {
    const header = decodeProtectedHeader(jws) as Record<string, unknown>;
    const part = jws.split('.')[1] ?? '';
    const claims: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) throw new Error('claims not an object');
    return { header, claims: claims as Record<string, unknown> };
  } catch (cause) {
    throw new BatonError('SERVICE_ASSERTION_INVALID', 'The client assertion is not a readable JWT', { cause });
  }
}

function importKey(jwk: ServicePublicJwk): KeyObject {
  try {
    const key = createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, format: 'jwk' });
    if (key.asymmetricKeyType !== 'ec') throw new Error('not an EC key');
    return key;
  } catch (cause) {
    throw new BatonError('PUBLIC_KEY_INVALID', 'The service public key is not a valid P-256 point', { cause });
  }
}

async function verifiesWith(jws: string, key: KeyObject): Promise<Record<string, unknown> | undefined> {
  try {
    const { payload } = await compactVerify(jws, key, { algorithms: ['ES256'] });
    return JSON.parse(Buffer.from(payload).toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** What a refused token request's event says of it: only text, and kept short. */
interface RefusedRequestView {
  action: string | null;
  audience: string | null;
  grantType: string | null;
}

/** A parameter of a request body that failed its schema, when it was sent as a string. */
function sentText(sent: unknown, name: string): string | undefined {
  if (typeof sent !== 'object' || sent === null || Array.isArray(sent)) return undefined;
  const value: unknown = (sent as Record<string, unknown>)[name];
  return typeof value === 'string' ? value : undefined;
}

function audienceList(aud: unknown): string[] {
  if (typeof aud === 'string') return [aud];
  if (Array.isArray(aud) && aud.every((a) => typeof a === 'string')) return aud;
  return [];
}

/**
 * Service accounts (non-human identities, issue 14 items 5-6): enrolment with an admin-issued one-time
 * token and a key the service generated, RFC 7523 `private_key_jwt` client assertions (single use on
 * every node through the store's claim-once table), action-scoped tokens of minutes from the
 * action-token issuer under the policy's `service` channel, key rotation signed by the current key,
 * and revocation that takes effect at once and is pushed to app servers. Every issuance and every
 * refusal is an event, except the refusals of callers that did not authenticate beyond a per-client
 * cap (`UnauthenticatedRefusalTrail`: counted, and the count goes in the client's next event).
 * Nothing else is kept in memory: every decision reads the store.
 */
export class ServiceAccounts {
  /** Events of unauthenticated refusals, per endpoint: counts in this node's memory, not trust state. */
  private readonly tokenRefusalTrail: UnauthenticatedRefusalTrail;
  private readonly rotationRefusalTrail: UnauthenticatedRefusalTrail;

  constructor(private readonly deps: ServiceAccountsDeps) {
    this.tokenRefusalTrail = new UnauthenticatedRefusalTrail(deps.clock);
    this.rotationRefusalTrail = new UnauthenticatedRefusalTrail(deps.clock);
  }

  private get db(): ServiceStore {
    return serviceStore(this.deps.store);
  }

  /** An admin issues a one-time enrolment token naming the service and the actions it may ever ask for. */
  async issueEnrolmentToken(
    input: { name: string; actions: string[]; ttlSeconds?: number | undefined },
    actor: string,
  ): Promise<{ token: string; expiresAt: number }> {
    const policy = this.deps.policy().policy;
    for (const action of input.actions) {
      if (!Object.hasOwn(policy.actions, action)) {
        throw new BatonError('SCHEMA_INVALID', `The policy has no action "${action}"`, {
          issues: [{ path: 'actions', message: `unknown action "${action}"` }],
        });
      }
    }
    const actions = [...new Set(input.actions)].sort();
    const token = newSecretToken('bst');
    const now = this.deps.clock();
    const expiresAt = now + (input.ttlSeconds ?? DEFAULT_SERVICE_ENROLMENT_TOKEN_TTL_SECONDS) * 1000;
    await this.deps.events.atomically(async (uow) => {
      await serviceStore(uow.store).insertEnrolmentToken({
        hash: sha256Hex(token),
        name: input.name,
        actions,
        issuedBy: actor,
        issuedAt: now,
        expiresAt,
        usedAt: null,
        serviceId: null,
      });
      await uow.record({
        type: 'service-enrolment-token-issued',
        subject: {},
        outcome: 'success',
        reasons: [],
        detail: { actor, name: input.name, actions: actions.join(' '), expiresAt },
      });
    });
    return { token, expiresAt };
  }

  /** Enrols a service: the one-time token, and proof that the caller holds the private half of `publicKey`. */
  async enrol(input: {
    token: string;
    publicKey: ServicePublicJwk;
    proof: string;
  }): Promise<ServiceRecord & { kid: string }> {
    const now = this.deps.clock();
    const tokenHash = sha256Hex(input.token);
    const token = await this.db.getEnrolmentToken(tokenHash);
    if (token === undefined) refuse('ENROLMENT_TOKEN_INVALID', 'The service enrolment token is not known');
    if (token.usedAt !== null) refuse('ENROLMENT_TOKEN_USED', 'The service enrolment token was already used');
    if (token.expiresAt <= now) refuse('ENROLMENT_TOKEN_EXPIRED', 'The service enrolment token has expired');
    const key = importKey(input.publicKey);
    await this.checkProof(
      input.proof,
      key,
      SERVICE_ENROLMENT_PROOF_AUDIENCE,
      (claims) => claims.nonce === tokenHash,
      now,
    );
    const kid = await calculateJwkThumbprint(
      { kty: input.publicKey.kty, crv: input.publicKey.crv, x: input.publicKey.x, y: input.publicKey.y },
      'sha256',
    );
    const record: ServiceRecord = {
      id: newId('svc'),
      name: token.name,
      actions: token.actions,
      enrolledAt: now,
      enrolledBy: token.issuedBy,
      lastUsedAt: null,
      revokedAt: null,
      revokedBy: null,
      revokedReason: null,
    };
    await this.deps.events.atomically(async (uow) => {
      const tx = serviceStore(uow.store);
      // Single use under concurrency, on any node: the store marks the token used once.
      if (!(await tx.useEnrolmentToken(tokenHash, now, record.id))) {
        refuse('ENROLMENT_TOKEN_USED', 'The service enrolment token was already used');
      }
      if ((await tx.getKey(kid)) !== undefined) {
        refuse('PUBLIC_KEY_INVALID', 'This public key is already registered: generate a new key pair for each service');
      }
      await tx.insertService(record);
      await tx.insertKey({
        kid,
        serviceId: record.id,
        publicJwk: JSON.stringify(input.publicKey),
        createdAt: now,
        retiredAt: null,
      });
      await uow.record({
        type: 'service-enrolled',
        subject: { service: record.id },
        outcome: 'success',
        reasons: [],
        detail: { name: record.name, actions: record.actions.join(' '), kid, enrolmentTokenIssuedBy: token.issuedBy },
      });
    });
    return { ...record, kid };
  }

  /** A key-possession proof: a short JWT signed with the presented key, for `audience`, bound by `bound`. */
  private async checkProof(
    proof: string,
    key: KeyObject,
    audience: string,
    bound: (claims: Record<string, unknown>) => boolean,
    now: number,
  ): Promise<void> {
    const claims = await verifiesWith(proof, key);
    if (claims === undefined)
      refuse('SERVICE_KEY_PROOF_INVALID', 'The proof is not signed (ES256) with the presented key');
    if (!audienceList(claims.aud).includes(audience)) {
      refuse('SERVICE_KEY_PROOF_INVALID', `The proof's aud must be "${audience}"`);
    }
    const exp = typeof claims.exp === 'number' ? claims.exp * 1000 : undefined;
    if (exp === undefined || exp + ASSERTION_CLOCK_SKEW_MS <= now)
      refuse('SERVICE_KEY_PROOF_INVALID', 'The proof has expired (or has no exp)');
    if (exp - now > PROOF_MAX_SECONDS * 1000 + ASSERTION_CLOCK_SKEW_MS) {
      refuse('SERVICE_KEY_PROOF_INVALID', `The proof may live at most ${PROOF_MAX_SECONDS} s`);
    }
    if (!bound(claims)) refuse('SERVICE_KEY_PROOF_INVALID', 'The proof is not bound to this request (nonce / sub)');
  }

  /**
   * RFC 7523 §2.2 / §3: authenticates a service by its client assertion. `audiences`: what this token
   * endpoint answers to (its URL at Baton's configured public origin, never one the request's `Host`
   * suggests, and Baton's issuer identifier; service-routes.ts `tokenEndpointAudiences`). The `jti`
   * is claimed once in the store every node shares, until the assertion expires.
   */
  async authenticate(
    input: { client_assertion_type: string; client_assertion: string; client_id?: string | undefined },
    audiences: readonly string[],
    /** Told the service as soon as the assertion's signature verifies with its key (before its other checks). */
    onSigned?: (service: ServiceRecord) => void,
  ): Promise<{ service: ServiceRecord; key: ServiceKeyRecord; jti: string }> {
    if (input.client_assertion_type !== CLIENT_ASSERTION_TYPE_JWT_BEARER) {
      refuse('SERVICE_ASSERTION_INVALID', `client_assertion_type must be "${CLIENT_ASSERTION_TYPE_JWT_BEARER}"`);
    }
    const { header, claims } = peek(input.client_assertion);
    if (header.alg !== 'ES256') refuse('SERVICE_ASSERTION_INVALID', 'The client assertion must be signed with ES256');
    const iss = claims.iss;
    if (typeof iss !== 'string' || iss !== claims.sub) {
      refuse('SERVICE_ASSERTION_INVALID', 'The client assertion needs iss = sub = the service id (RFC 7523 §3)');
    }
    if (input.client_id !== undefined && input.client_id !== iss) {
      refuse('SERVICE_ASSERTION_INVALID', 'client_id does not match the client assertion’s iss');
    }
    const service = SERVICE_ID.test(iss) ? await this.db.getService(iss) : undefined;
    if (service === undefined) refuse('SERVICE_UNKNOWN', 'No service is enrolled with this client id');
    const kid = typeof header.kid === 'string' ? header.kid : undefined;
    const keys = (await this.db.keysOf(service.id, true)).filter((k) => kid === undefined || k.kid === kid);
    let verified: { key: ServiceKeyRecord; claims: Record<string, unknown> } | undefined;
    for (const key of keys) {
      const payload = await verifiesWith(
        input.client_assertion,
        importKey(JSON.parse(key.publicJwk) as ServicePublicJwk),
      );
      if (payload !== undefined) {
        verified = { key, claims: payload };
        break;
      }
    }
    if (verified === undefined) {
      refuse(
        'SERVICE_ASSERTION_SIGNATURE_INVALID',
        'The client assertion does not verify with a current key of the service',
      );
    }
    onSigned?.(service);
    if (service.revokedAt !== null) refuse('SERVICE_REVOKED', 'This service has been revoked');
    const signed = verified.claims;
    if (!audienceList(signed.aud).some((a) => audiences.includes(a))) {
      refuse('SERVICE_ASSERTION_AUDIENCE', `The client assertion's aud must be this endpoint (${audiences[0] ?? ''})`);
    }
    const now = this.deps.clock();
    const exp = typeof signed.exp === 'number' && Number.isFinite(signed.exp) ? signed.exp * 1000 : undefined;
    if (exp === undefined) refuse('SERVICE_ASSERTION_INVALID', 'The client assertion has no exp');
    if (exp + ASSERTION_CLOCK_SKEW_MS <= now) refuse('SERVICE_ASSERTION_EXPIRED', 'The client assertion has expired');
    const maxSeconds = this.deps.policy().policy.service?.assertionMaxSeconds ?? DEFAULT_SERVICE_ASSERTION_MAX_SECONDS;
    if (exp - now > maxSeconds * 1000 + ASSERTION_CLOCK_SKEW_MS) {
      refuse(
        'SERVICE_ASSERTION_EXPIRED',
        `A client assertion may live at most ${maxSeconds} s (policy service.assertionMaxSeconds)`,
      );
    }
    if (typeof signed.nbf === 'number' && signed.nbf * 1000 > now + ASSERTION_CLOCK_SKEW_MS) {
      refuse('SERVICE_ASSERTION_INVALID', 'The client assertion is not valid yet (nbf)');
    }
    if (typeof signed.iat === 'number' && signed.iat * 1000 > now + ASSERTION_CLOCK_SKEW_MS) {
      refuse('SERVICE_ASSERTION_INVALID', 'The client assertion was issued in the future (iat)');
    }
    const jti = signed.jti;
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 200) {
      refuse('SERVICE_ASSERTION_INVALID', 'The client assertion needs a jti (at most 200 characters)');
    }
    const claimed = await this.deps.store.ephemeral.claimOnce(
      ASSERTION_JTI_KIND,
      `${service.id}:${jti}`,
      exp + ASSERTION_CLOCK_SKEW_MS + 1,
      now,
    );
    if (!claimed) refuse('SERVICE_ASSERTION_REPLAYED', 'This client assertion (its jti) was already used');
    return { service, key: verified.key, jti };
  }

  /**
   * The token endpoint: every issuance and every refusal is an event (an unauthenticated refusal's
   * within the per-client cap: `UnauthenticatedRefusalTrail`). `client`: the caller's address.
   */
  async token(request: TokenRequest, audiences: readonly string[], client: string): Promise<TokenResponse> {
    /** The service whose key signed the assertion: its refusals from then on are its own, always recorded. */
    let serviceId: string | undefined;
    let actorOperator: string | undefined;
    /** Every check of the assertion passed (a fresh one, for this endpoint): its refusals count for the service. */
    let authenticated = false;
    const action = request.action ?? request.scope;
    try {
      const { service } = await this.authenticate(request, audiences, (signer) => (serviceId = signer.id));
      authenticated = true;
      const result = await this.issue(service, request, action, (operator) => (actorOperator = operator));
      return result;
    } catch (error) {
      if (error instanceof BatonError) {
        const view = {
          action: action ?? null,
          audience: request.audience.slice(0, 200),
          grantType: request.grant_type.slice(0, 100),
        };
        // What the caller claimed to be, when it did not authenticate: kept short and printable for the trail.
        const claimed = serviceId === undefined ? claimedClient(request) : undefined;
        await this.recordRefusal(error, view, claimed, client, serviceId, actorOperator, authenticated);
      }
      throw error;
    }
  }

  private async issue(
    service: ServiceRecord,
    request: TokenRequest,
    action: string | undefined,
    noteActor: (operator: string) => void,
  ): Promise<TokenResponse> {
    if (request.grant_type !== GRANT_CLIENT_CREDENTIALS && request.grant_type !== GRANT_TOKEN_EXCHANGE) {
      refuse(
        'SERVICE_GRANT_UNSUPPORTED',
        `grant_type must be "${GRANT_CLIENT_CREDENTIALS}" or "${GRANT_TOKEN_EXCHANGE}"`,
      );
    }
    if (request.subject_token !== undefined || request.subject_token_type !== undefined) {
      refuse(
        'SERVICE_GRANT_UNSUPPORTED',
        'The service is the subject (its client assertion); pass the human session’s token as actor_token',
      );
    }
    if (request.requested_token_type !== undefined && request.requested_token_type !== TOKEN_TYPE_ACCESS_TOKEN) {
      refuse('SERVICE_GRANT_UNSUPPORTED', `requested_token_type must be "${TOKEN_TYPE_ACCESS_TOKEN}"`);
    }
    if (action === undefined) throw new BatonError('SCHEMA_INVALID', 'The request names no action (action or scope)');
    if (request.action !== undefined && request.scope !== undefined && request.action !== request.scope) {
      throw new BatonError('SCHEMA_INVALID', 'action and scope name different actions');
    }
    if (request.grant_type === GRANT_TOKEN_EXCHANGE && request.actor_token === undefined) {
      refuse('SERVICE_ACTOR_REQUIRED', 'A token exchange needs the actor_token of the human session');
    }
    const { version, policy } = this.deps.policy();
    const rule = policy.service?.actions[action];
    if (!service.actions.includes(action)) {
      refuse('SERVICE_ACTION_NOT_ALLOWED', `The service was not enrolled for "${action}"`);
    }
    if (rule === undefined || !Object.hasOwn(policy.service?.actions ?? {}, action)) {
      refuse('SERVICE_ACTION_NOT_ALLOWED', `The policy's service channel does not allow "${action}"`);
    }
    const app = appForAudience(policy, request.audience);
    if (app === undefined) refuse('AUDIENCE_UNKNOWN', `No app of the policy has the audience "${request.audience}"`);
    if (!app.actions.includes(action)) {
      refuse('ACTION_NOT_FOR_AUDIENCE', `The app "${app.name}" does not accept "${action}"`);
    }
    let actor: Actor | undefined;
    if (request.actor_token !== undefined) {
      if (rule.actor === 'none')
        refuse('SERVICE_ACTOR_INVALID', `The policy does not let "${action}" carry a human actor`);
      actor = await this.verifyActor(request, action, policy, noteActor);
    } else if (rule.actor === 'required') {
      refuse(
        'SERVICE_ACTOR_REQUIRED',
        `The policy ties "${action}" to a human session: send that operator's token as actor_token`,
      );
    }
    let ttlSeconds = Math.min(
      policy.service?.tokenTtlSeconds ?? DEFAULT_SERVICE_TOKEN_TTL_SECONDS,
      app.tokenTtlSeconds ?? DEFAULT_ACTION_TOKEN_TTL_SECONDS,
    );
    if (actor !== undefined) {
      // Acting for a human session: never past that session's end (as the console exchange,
      // token-exchange.ts: a session that simply expires pushes no revocation to app servers), nor past
      // the actor token's own `exp` (the human's authorisation is not stretched by the exchange).
      ttlSeconds = Math.min(ttlSeconds, Math.floor(actor.notAfter / 1000) - Math.floor(this.deps.clock() / 1000));
      if (ttlSeconds < 1) refuse('SERVICE_ACTOR_INVALID', 'The actor_token or its session ends now');
    }
    const issued = await this.deps.signer.sign({
      subject: service.id,
      audience: request.audience,
      action,
      ttlSeconds,
      channel: SERVICE_CHANNEL,
      policyVersion: version,
      ...(actor === undefined
        ? {}
        : {
            notAfter: actor.notAfter,
            sessionId: actor.sessionId,
            level: actor.level,
            authTime: actor.authTime,
            // The human's console too: its revocation refuses this token at app servers (no `console`
            // claim: the service is at no console).
            act: { sub: actor.operatorId, sid: actor.sessionId, console: actor.consoleId },
          }),
      // A break-glass session's mark goes with every token acting for it (as its own action tokens).
      extra: { client_id: service.id, ...(actor?.breakGlass === true ? { break_glass: true } : {}) },
    });
    const now = this.deps.clock();
    await this.deps.events.atomically(async (uow) => {
      const tx = serviceStore(uow.store);
      // The services row first (lock order): a revocation that committed since the assertion was
      // checked wins, and the token just signed is never handed out.
      if (!(await tx.touchLive(service.id, now))) refuse('SERVICE_REVOKED', 'This service has been revoked');
      // Then the human's session, read locked (PostgreSQL; SQLite serialises the unit whole): a
      // revocation of it, its operator, passkey or console that committed since `verifyActor` read it
      // wins too (no other unit takes a services row and a session). It waits for this unit otherwise,
      // and app servers refuse the token by its `act` and `iat` once it commits.
      if (actor !== undefined) {
        const session = await uow.store.sessions.getForUpdate(actor.sessionId);
        if (session?.state !== 'active')
          refuse('SERVICE_ACTOR_INVALID', 'The actor_token’s session is no longer active');
      }
      await tx.insertToken({
        jti: issued.jti,
        serviceId: service.id,
        action,
        audience: request.audience,
        issuedAt: now,
        expiresAt: issued.expiresAt,
      });
      await tx.count(service.id, action, 'issued', now);
      await uow.record({
        type: 'service-token-issued',
        subject: {
          service: service.id,
          ...(actor === undefined ? {} : { operator: actor.operatorId, session: actor.sessionId }),
        },
        outcome: 'success',
        reasons:
          actor === undefined
            ? ['service-action-allowed']
            : ['service-action-allowed-for-operator', ...(actor.breakGlass ? [BREAK_GLASS_REASON] : [])],
        detail: {
          action,
          audience: request.audience,
          jti: issued.jti,
          expiresAt: issued.expiresAt,
          grantType: request.grant_type,
          policyVersion: version,
        },
      });
    });
    return {
      access_token: issued.token,
      token_type: 'Bearer',
      expires_in: issued.expiresIn,
      issued_token_type: TOKEN_TYPE_ACCESS_TOKEN,
      scope: action,
    };
  }

  /**
   * The human on whose behalf the service acts: their action token for the same audience and action,
   * whose session is still active and still meets the action's level and age under the current policy,
   * and whose operator and passkey are still usable (as at the console exchange: not revoked, the passkey
   * not suspended; a break-glass session has no passkey, and may do only the policy's `breakGlass.actions`).
   */
  private async verifyActor(
    request: TokenRequest,
    action: string,
    policy: Policy,
    noteActor: (operator: string) => void,
  ): Promise<Actor> {
    const type = request.actor_token_type;
    if (type !== undefined && type !== TOKEN_TYPE_ACCESS_TOKEN && type !== TOKEN_TYPE_JWT) {
      refuse('SERVICE_GRANT_UNSUPPORTED', `actor_token_type must be "${TOKEN_TYPE_ACCESS_TOKEN}"`);
    }
    let claims: { sub?: string; sid?: string; exp?: number; action: string; channel: string };
    try {
      claims = await this.deps.signer.verify(request.actor_token ?? '', request.audience);
    } catch (cause) {
      throw new BatonError(
        'SERVICE_ACTOR_INVALID',
        'The actor_token is not a valid Baton action token for this audience',
        {
          cause,
        },
      );
    }
    if (claims.channel === SERVICE_CHANNEL || claims.sid === undefined || claims.sub === undefined) {
      refuse('SERVICE_ACTOR_INVALID', 'The actor_token must be a human session’s action token');
    }
    if (claims.action !== action)
      refuse('SERVICE_ACTOR_INVALID', `The actor_token is for "${claims.action}", not "${action}"`);
    const session = await this.deps.store.sessions.get(claims.sid);
    const now = this.deps.clock();
    if (
      session === undefined ||
      session.operatorId !== claims.sub ||
      session.state !== 'active' ||
      session.expiresAt <= now
    ) {
      refuse('SERVICE_ACTOR_INVALID', 'The actor_token’s session is no longer active');
    }
    noteActor(session.operatorId); // a refusal from here on names the operator
    // The operator and the passkey the session rests on, as the console exchange checks them: a passkey
    // suspended as a possible copy (or revoked) leaves its session active. A break-glass session rests on
    // its grant, not on a passkey.
    const breakGlass = await isBreakGlassSession(this.deps.store, session.id);
    const [operator, credential] = await Promise.all([
      this.deps.store.operators.get(session.operatorId),
      breakGlass ? undefined : this.deps.store.operators.getCredential(session.credentialId),
    ]);
    try {
      assertUsable(operator, credential, breakGlass);
    } catch (cause) {
      if (!(cause instanceof BatonError)) throw cause;
      throw new BatonError('SERVICE_ACTOR_INVALID', `The actor_token’s session is not usable: ${cause.message}`, {
        cause,
        extra: { actorRefusal: cause.code },
      });
    }
    // A break-glass session may do only the policy's breakGlass.actions, now (as at the console exchange).
    if (breakGlass && !breakGlassAllows(policy, action)) {
      throw new BatonError('SERVICE_ACTOR_INVALID', `The actor_token’s break-glass session may not do "${action}"`, {
        extra: { decision: { outcome: 'deny', reasons: [BREAK_GLASS_REASON] }, actorRefusal: BREAK_GLASS_REASON },
      });
    }
    const decision = evaluatePolicy(
      policy,
      {
        channel: session.channel,
        level: session.level,
        authTime: session.authTime,
        sessionStartedAt: session.startedAt,
        now,
      },
      action,
    );
    if (decision.outcome !== 'allow') {
      throw new BatonError(
        'SERVICE_ACTOR_INVALID',
        `The operator's session does not meet "${action}" now (${decision.reasons.join(', ')})`,
        { extra: { decision } },
      );
    }
    return {
      operatorId: session.operatorId,
      sessionId: session.id,
      level: session.level,
      authTime: session.authTime,
      consoleId: session.consoleId,
      notAfter: Math.min(session.expiresAt, (claims.exp ?? Number.POSITIVE_INFINITY) * 1000),
      breakGlass,
    };
  }

  /**
   * The trail of a token request refused before it was read (route `serviceToken`): its body failed
   * its schema (`SCHEMA_INVALID`, also for a form parameter given twice), was no JSON (`BAD_JSON`) or
   * had another content type (`UNSUPPORTED_MEDIA_TYPE`). `sent`: the parameters as parsed, before any
   * schema (`undefined` when none could be read); only those that are strings are kept, shortened.
   */
  async recordUnreadTokenRequest(error: BatonError, sent: unknown, client: string): Promise<void> {
    // Only what could be a valid value goes in the trail: an action name, printable text (no control characters).
    const action = sentText(sent, 'action') ?? sentText(sent, 'scope');
    const printable = (text: string | undefined, max: number) =>
      text !== undefined && /^[\x20-\x7e]+$/.test(text) ? text.slice(0, max) : null;
    const view = {
      action: action !== undefined && ACTION_NAME.test(action) ? action : null,
      audience: printable(sentText(sent, 'audience'), 200),
      grantType: printable(sentText(sent, 'grant_type'), 100),
    };
    const claimed = claimedClient({
      client_assertion: sentText(sent, 'client_assertion') ?? '',
      client_id: sentText(sent, 'client_id'),
    });
    await this.recordRefusal(error, view, claimed, client, undefined, undefined, false);
  }

  /**
   * A `service-token-refused` event. `serviceId` once the assertion's signature verified with the
   * service's key (a revoked service, a replayed or expired assertion included: always recorded; counted in
   * the service's refused tokens only when `authenticated`); before that, `claimed` is what the caller claimed to be and the event is
   * subject to the per-client cap (`UnauthenticatedRefusalTrail`), its detail saying how many were left out.
   */
  private async recordRefusal(
    error: BatonError,
    view: RefusedRequestView,
    claimed: string | null | undefined,
    client: string,
    serviceId: string | undefined,
    operatorId: string | undefined,
    /**
     * Whether the assertion passed every check: only then does the refusal count in the service's refused
     * tokens by action (a copied assertion replayed cannot add rows there, its refusals are only recorded).
     */
    authenticated: boolean,
  ): Promise<void> {
    let unrecorded: RefusalTrailCounts | undefined;
    if (serviceId === undefined) {
      unrecorded = this.tokenRefusalTrail.admit(client);
      if (unrecorded === undefined) return; // answered as ever; only its event is left out, and counted
    }
    const now = this.deps.clock();
    const action = view.action ?? undefined;
    try {
      await this.deps.events.atomically(async (uow) => {
        if (authenticated && serviceId !== undefined && action !== undefined)
          await serviceStore(uow.store).count(serviceId, action, 'refused', now);
        await uow.record({
          type: 'service-token-refused',
          subject: {
            ...(serviceId === undefined ? {} : { service: serviceId }),
            ...(operatorId === undefined ? {} : { operator: operatorId }),
          },
          outcome: 'failure',
          reasons: [
            error.code,
            ...(typeof error.extra?.actorRefusal === 'string' ? [error.extra.actorRefusal] : []),
          ].map((code) => code.toLowerCase().replace(/_/g, '-')),
          detail: {
            code: error.code,
            action: view.action,
            audience: view.audience,
            grantType: view.grantType,
            // The policy in force when it was refused (as `service-token-issued` says under which it was issued).
            policyVersion: this.deps.policy().version,
            ...(claimed === undefined ? {} : { claimedClient: claimed }),
            ...unrecorded,
          },
        });
      });
    } catch {
      // The refusal stands whether or not its event could be written (the database may be the cause).
    }
  }

  /**
   * Rotates the service's key: the request is authenticated by the current key, the new key proves
   * possession. Every refusal is a `service-key-rotation-refused` event (a stolen or stale key failing
   * here leaves a trail, as at the token endpoint; an unauthenticated refusal's within the per-client
   * cap, as there). `client`: the caller's address.
   */
  async rotateKey(
    serviceId: string,
    input: { client_assertion_type: string; client_assertion: string; publicKey: ServicePublicJwk; proof: string },
    audiences: readonly string[],
    client: string,
  ): Promise<{ serviceId: string; kid: string; retired: string[] }> {
    /** The service whose key signed the assertion: its refusals from then on are its own, always recorded. */
    let authenticated: string | undefined;
    let newKid: string | undefined;
    try {
      const { service, key: current } = await this.authenticate(
        input,
        audiences,
        (signer) => (authenticated = signer.id),
      );
      if (service.id !== serviceId) refuse('SERVICE_ASSERTION_INVALID', 'The client assertion is for another service');
      const now = this.deps.clock();
      const key = importKey(input.publicKey);
      await this.checkProof(
        input.proof,
        key,
        SERVICE_KEY_ROTATION_PROOF_AUDIENCE,
        (claims) => claims.sub === service.id,
        now,
      );
      const kid = await calculateJwkThumbprint(
        { kty: input.publicKey.kty, crv: input.publicKey.crv, x: input.publicKey.x, y: input.publicKey.y },
        'sha256',
      );
      newKid = kid;
      let retired: string[] = [];
      await this.deps.events.atomically(async (uow) => {
        const tx = serviceStore(uow.store);
        // The service's row, locked (PostgreSQL) before its keys are read: a concurrent rotation of the
        // same service waits for this one, then finds the key it was signed with retired.
        const live = await tx.getServiceForUpdate(service.id);
        if (live === undefined || live.revokedAt !== null) refuse('SERVICE_REVOKED', 'This service has been revoked');
        const currentKeys = await tx.keysOf(service.id, true);
        if (!currentKeys.some((k) => k.kid === current.kid)) {
          refuse(
            'SERVICE_ASSERTION_SIGNATURE_INVALID',
            'The key that signed the client assertion was retired meanwhile (another rotation): sign with the current key',
          );
        }
        if ((await tx.getKey(kid)) !== undefined) refuse('PUBLIC_KEY_INVALID', 'This public key is already registered');
        retired = currentKeys.map((k) => k.kid).filter((k) => k !== kid);
        await tx.insertKey({
          kid,
          serviceId: service.id,
          publicJwk: JSON.stringify(input.publicKey),
          createdAt: now,
          retiredAt: null,
        });
        if (MAX_CURRENT_KEYS === 1) await tx.retireKeys(service.id, kid, now);
        await uow.record({
          type: 'service-key-rotated',
          subject: { service: service.id },
          outcome: 'success',
          reasons: ['rotated-by-service'],
          detail: { kid, previousKid: current.kid, retired: retired.join(' ') },
        });
      });
      return { serviceId: service.id, kid, retired };
    } catch (error) {
      if (error instanceof BatonError) {
        const claimed =
          authenticated === undefined ? claimedClient({ client_assertion: input.client_assertion }) : undefined;
        await this.recordRotationRefusal(error, claimed, client, authenticated, newKid);
      }
      throw error;
    }
  }

  /**
   * The trail of a rotation refused before it was read (route `serviceKeyRotate`): `SCHEMA_INVALID`,
   * `BAD_JSON` or `UNSUPPORTED_MEDIA_TYPE`. `sent`: the parameters as parsed, before any schema.
   */
  async recordUnreadRotation(error: BatonError, sent: unknown, client: string): Promise<void> {
    const claimed = claimedClient({ client_assertion: sentText(sent, 'client_assertion') ?? '' });
    await this.recordRotationRefusal(error, claimed, client, undefined, undefined);
  }

  /**
   * The trail of a refused rotation: the code, never the assertion or the proof. Unauthenticated
   * (no `serviceId`), it is subject to the per-client cap, as at the token endpoint.
   */
  private async recordRotationRefusal(
    error: BatonError,
    claimed: string | null | undefined,
    client: string,
    serviceId: string | undefined,
    kid: string | undefined,
  ): Promise<void> {
    let unrecorded: RefusalTrailCounts | undefined;
    if (serviceId === undefined) {
      unrecorded = this.rotationRefusalTrail.admit(client);
      if (unrecorded === undefined) return; // answered as ever; only its event is left out, and counted
    }
    try {
      await this.deps.events.atomically(async (uow) => {
        await uow.record({
          type: 'service-key-rotation-refused',
          subject: serviceId === undefined ? {} : { service: serviceId },
          outcome: 'failure',
          reasons: [error.code.toLowerCase().replace(/_/g, '-')],
          detail: {
            code: error.code,
            ...(kid === undefined ? {} : { kid }),
            ...(claimed === undefined ? {} : { claimedClient: claimed }),
            ...unrecorded,
          },
        });
      });
    } catch {
      // The refusal stands whether or not its event could be written (the database may be the cause).
    }
  }

  /**
   * Revokes a service at once: no token request, rotation or anything else from now on (on every node:
   * each request reads the store), and every app server following the revocation stream hears it at
   * once (kind `service`: refuse every token whose `sub` is the service), before its tokens expire.
   */
  async revoke(
    serviceId: string,
    reason: string,
    actor: string,
  ): Promise<{ serviceId: string; revokedAt: number; tokensRevoked: number }> {
    const now = this.deps.clock();
    let count = 0;
    await this.deps.events.atomically(async (uow) => {
      const tx = serviceStore(uow.store);
      const service = await tx.getService(serviceId);
      if (service === undefined) throw new BatonError('NOT_FOUND', `No service "${serviceId}"`);
      if (!(await tx.revokeService(serviceId, now, actor, reason))) {
        throw new BatonError('SERVICE_REVOKED', `The service "${serviceId}" is already revoked`);
      }
      // Read after the row is locked: every token issued before now committed before this point (its
      // unit held the row), so the revocation's time covers them all and app servers refuse them.
      const at = Math.max(now, this.deps.clock());
      const live = await tx.liveTokens(serviceId, at);
      count = live.length;
      await uow.record({
        type: 'service-revoked',
        subject: { service: serviceId },
        outcome: 'success',
        reasons: ['revoked-by-admin'],
        detail: { actor, reason_admin: reason, name: service.name, tokensRevoked: live.length },
      });
      // Through the one revocation path: an epoch every node reads; it concerns no console, and the
      // app servers' revocation stream (backend/tokens/revocation-feed.ts) carries it to every app.
      const stored = await uow.store.revocations.insert({
        kind: 'service',
        targetId: serviceId,
        operatorId: null,
        consoleId: null,
        reason,
        actor,
        at,
      });
      await uow.publish('revocation', { epoch: stored.epoch });
    });
    return { serviceId, revokedAt: now, tokensRevoked: count };
  }

  /** Every service with its keys, last use and tokens issued by action (the admin console's list). */
  async list(): Promise<ServiceView[]> {
    return this.viewsOf(await this.db.listServices());
  }

  /** These services with their keys, last use and tokens issued by action (one page of the admin list). */
  async viewsOf(services: readonly ServiceRecord[]): Promise<ServiceView[]> {
    const db = this.db;
    const counts = services.length === 0 ? [] : await db.counts();
    const views: ServiceView[] = [];
    for (const s of services) {
      const keys = await db.keysOf(s.id, false);
      views.push({
        ...s,
        keys: keys.map((k) => ({ kid: k.kid, createdAt: k.createdAt, retiredAt: k.retiredAt })),
        tokens: counts
          .filter((c) => c.serviceId === s.id)
          .map((c) => ({ action: c.action, issued: c.issued, refused: c.refused, lastIssuedAt: c.lastIssuedAt })),
      });
    }
    return views;
  }

  /** Forgets the jtis of tokens that expired (they can no longer be revoked). */
  sweep(): Promise<number> {
    return this.db.sweepTokens(this.deps.clock() - 60_000);
  }
}

function claimedClient(request: Pick<TokenRequest, 'client_assertion' | 'client_id'>): string | null {
  try {
    const { claims } = peek(request.client_assertion);
    const iss = claims.iss;
    return typeof iss === 'string' && /^[A-Za-z0-9._:-]{1,100}$/.test(iss) ? iss : null;
  } catch {
    return request.client_id !== undefined && /^[A-Za-z0-9._:-]{1,100}$/.test(request.client_id)
      ? request.client_id
      : null;
  }
}
