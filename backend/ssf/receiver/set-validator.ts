/**
 * Validation of an incoming Security Event Token (RFC 8417) pushed by a registered upstream
 * transmitter (RFC 8935), before anything else looks at it: size, compact form, signature against
 * the transmitter's keys (its `jwks_uri`, cached, or a pinned JWKS), `typ`, `iss`, `aud`, age, the
 * event's schema, the stream SSF's own events name, then `jti` claimed once in the store (single
 * use across nodes). Each refusal is a `SetRefusal` with Baton's stable code and RFC 8935's `err`.
 */
import {
  compactVerify,
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  decodeProtectedHeader,
  errors as joseErrors,
  type FetchImplementation,
  type JSONWebKeySet,
  type JWTVerifyGetKey,
} from 'jose';
import { z } from 'zod';
import type { ErrorCode } from '../../../shared/errors.js';
import { lagAwareTimeoutSignal } from '../../lag-aware-timer.js';
import type { Store } from '../../store/repositories.js';
import type { TransmitterRecord } from './repository.js';

/** RFC 8935 §2.4 error codes. */
export type PushErr =
  | 'invalid_request'
  | 'invalid_key'
  | 'invalid_issuer'
  | 'invalid_audience'
  | 'authentication_failed'
  | 'access_denied';

/** The largest SET accepted (bytes). SETs are a few hundred bytes; 16 KiB leaves room for long reasons. */
export const MAX_SET_BYTES = 16 * 1024;
/** How far ahead of Baton's clock an `iat` may be (clock skew). */
export const SET_CLOCK_SKEW_MS = 5 * 60_000;
/** Signature algorithms accepted (the CAEP interop profile's RS256, and the usual alternatives). */
export const SET_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'];
/** The ephemeral namespace the received `jti`s are claimed in. */
export const JTI_KIND = 'ssf-jti';

export const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
export const RISC = 'https://schemas.openid.net/secevent/risc/event-type/';
/** SSF 1.0's own events about the stream (verification, stream-updated). */
export const SSF_EVENT = 'https://schemas.openid.net/secevent/ssf/event-type/';
export const SSF_VERIFICATION = `${SSF_EVENT}verification`;
export const SSF_STREAM_UPDATED = `${SSF_EVENT}stream-updated`;

export class SetRefusal extends Error {
  constructor(
    readonly code: ErrorCode,
    readonly err: PushErr,
    message: string,
    /** Whether the SET was signed by the transmitter (its claims are the transmitter's own). */
    readonly authentic = false,
    readonly claims?: { jti?: string; iss?: string },
  ) {
    super(message);
    this.name = 'SetRefusal';
  }
}

const Str = z.string().min(1).max(512);
/** RFC 9493 subject identifiers Baton maps (others parse but match nothing). */
export const SubjectIdSchema = z.looseObject({ format: z.string().min(1).max(64) });
const Reason = z.record(z.string().max(35), z.string().max(1000));
const Common = {
  subject: SubjectIdSchema.optional(),
  event_timestamp: z.number().optional(),
  initiating_entity: z.enum(['admin', 'user', 'policy', 'system']).optional(),
  reason_admin: Reason.optional(),
  reason_user: Reason.optional(),
};

/** Schemas of the event types the receiver acts on; other types are recorded and ignored. */
export const KNOWN_EVENTS: Record<string, z.ZodType> = {
  [`${CAEP}session-revoked`]: z.looseObject(Common),
  [`${CAEP}credential-change`]: z.looseObject({
    ...Common,
    credential_type: Str,
    change_type: z.enum(['create', 'revoke', 'update', 'delete']),
    fido2_aaguid: z.string().max(64).optional(),
    friendly_name: z.string().max(256).optional(),
  }),
  [`${RISC}account-disabled`]: z.looseObject({ ...Common, reason: z.string().max(64).optional() }),
  [`${RISC}account-purged`]: z.looseObject(Common),
  [`${RISC}credential-compromise`]: z.looseObject({ ...Common, credential_type: Str.optional() }),
  [`${RISC}sessions-revoked`]: z.looseObject(Common),
  [`${RISC}account-enabled`]: z.looseObject(Common),
  [`${RISC}identifier-changed`]: z.looseObject({ ...Common, new_value: z.string().max(512).optional() }),
  // SSF 1.0 §8.1.4: the answer to a verification request carries the `state` the receiver gave.
  [SSF_VERIFICATION]: z.looseObject({ state: z.string().max(1024).optional() }),
  // SSF 1.0 §8.1.5: the transmitter says its stream's status changed.
  [SSF_STREAM_UPDATED]: z.looseObject({
    status: z.enum(['enabled', 'paused', 'disabled']),
    reason: z.string().max(1000).optional(),
  }),
};

const SetClaimsSchema = z.looseObject({
  iss: Str,
  jti: z.string().min(1).max(256),
  iat: z.number().int().nonnegative(),
  aud: z.union([Str, z.array(Str).min(1).max(20)]),
  txn: z.string().max(256).optional(),
  sub_id: SubjectIdSchema.optional(),
  events: z.record(z.string().min(1).max(512), z.record(z.string(), z.unknown())),
});

export interface ValidSet {
  iss: string;
  jti: string;
  iat: number;
  txn: string | undefined;
  /** The one event type URI and its payload. */
  type: string;
  event: Record<string, unknown>;
  /** `sub_id`, else the event's own `subject` (RISC and pre-1.0 CAEP). */
  subject: Record<string, unknown> | undefined;
  /** Whether Baton knows the event type. */
  known: boolean;
}

/** How long fetching a transmitter's JWKS may take, reading its body included. */
const JWKS_TIMEOUT_MS = 5000;

/**
 * The fetch jose makes for a remote JWKS, with a deadline that counts only the time this process ran
 * (lag-aware-timer.ts). jose's own (`AbortSignal.timeout(timeoutDuration)`, the `signal` it passes here) is not
 * passed on: after a stop or a stall it would abort a fetch whose answer was already waiting in the socket. This one
 * aborts with the same `TimeoutError`, which jose turns into `JWKSTimeout` as before; a 200's body is read within it,
 * and any other status is an error (SSF_KEYS_UNAVAILABLE, 503), not jose's refusal (a signature refused, 400).
 */
function lagAwareJwksFetch(ms: number): FetchImplementation {
  return async (url, { signal: _jose, ...init }) => {
    const deadline = lagAwareTimeoutSignal(ms);
    try {
      const response = await fetch(url, { ...init, signal: deadline.signal });
      if (response.status !== 200) {
        await response.body?.cancel();
        // Not jose's own refusal ("Expected 200 OK", a JOSEError, which validateSet would answer as a signature
        // refused for good, 400): keys the transmitter cannot serve now are a 503 it retries.
        throw new Error(`its jwks_uri answered ${response.status}`);
      }
      const body = await response.arrayBuffer();
      return new Response(body, { status: 200, statusText: response.statusText, headers: response.headers });
    } finally {
      deadline.clear();
    }
  };
}

/** Key sets per transmitter: a remote JWKS is fetched on first use and cached by jose (refetched for an unknown `kid`). */
export class TransmitterKeys {
  private readonly sets = new Map<string, { source: string; keys: JWTVerifyGetKey }>();

  constructor(
    private readonly options: {
      /** How long a JWKS fetch may take (JWKS_TIMEOUT_MS); tests shorten it. */
      jwksTimeoutMs?: number;
    } = {},
  ) {}

  keysOf(t: TransmitterRecord): JWTVerifyGetKey {
    const source = t.pinnedJwks ?? t.jwksUri ?? '';
    const cached = this.sets.get(t.id);
    if (cached?.source === source) return cached.keys;
    let keys: JWTVerifyGetKey;
    if (t.pinnedJwks !== null) keys = createLocalJWKSet(JSON.parse(t.pinnedJwks) as JSONWebKeySet);
    else if (t.jwksUri !== null)
      keys = createRemoteJWKSet(new URL(t.jwksUri), {
        [customFetch]: lagAwareJwksFetch(this.options.jwksTimeoutMs ?? JWKS_TIMEOUT_MS),
        cooldownDuration: 30_000,
        cacheMaxAge: 10 * 60_000,
      });
    else
      throw new SetRefusal(
        'SSF_KEYS_UNAVAILABLE',
        'invalid_key',
        'The transmitter has neither a JWKS URI nor a pinned JWKS',
      );
    this.sets.set(t.id, { source, keys });
    return keys;
  }

  forget(id: string): void {
    this.sets.delete(id);
  }
}

/**
 * Validates one pushed SET for transmitter `t`; resolves with its content once its `jti` is
 * claimed (the caller releases the claim if acting on it fails), rejects with a `SetRefusal`.
 */
export async function validateSet(
  t: TransmitterRecord,
  body: Buffer,
  contentType: string | undefined,
  deps: { keys: TransmitterKeys; store: Store; now: number },
): Promise<ValidSet> {
  if (body.length > MAX_SET_BYTES) {
    throw new SetRefusal(
      'SSF_SET_TOO_LARGE',
      'invalid_request',
      `The SET is ${body.length} bytes; at most ${MAX_SET_BYTES} are accepted`,
    );
  }
  if (!/^application\/secevent\+jwt\s*(;|$)/i.test(contentType ?? '')) {
    throw new SetRefusal(
      'SSF_SET_MALFORMED',
      'invalid_request',
      `Expected content-type application/secevent+jwt, got "${contentType ?? ''}"`,
    );
  }
  const jws = body.toString('utf8').trim();
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(jws)) {
    throw new SetRefusal(
      'SSF_SET_MALFORMED',
      'invalid_request',
      'The body is not a compact JWS (encrypted SETs are not accepted)',
    );
  }
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(jws);
  } catch {
    throw new SetRefusal('SSF_SET_MALFORMED', 'invalid_request', 'The JWS header is not valid JSON');
  }
  let payload: Uint8Array;
  try {
    ({ payload } = await compactVerify(jws, deps.keys.keysOf(t), { algorithms: SET_ALGORITHMS }));
  } catch (error) {
    if (error instanceof SetRefusal) throw error;
    if (
      error instanceof joseErrors.JWKSTimeout ||
      error instanceof joseErrors.JWKSInvalid ||
      (error instanceof Error && !(error instanceof joseErrors.JOSEError))
    ) {
      throw new SetRefusal(
        'SSF_KEYS_UNAVAILABLE',
        'invalid_key',
        `The transmitter's keys could not be fetched: ${error.message}`,
      );
    }
    const why =
      error instanceof joseErrors.JOSEAlgNotAllowed
        ? `algorithm "${String(header.alg)}" is not accepted`
        : error instanceof joseErrors.JWKSNoMatchingKey
          ? `no key of the transmitter matches kid "${String(header.kid)}"`
          : 'the signature does not verify with the transmitter\u2019s keys';
    throw new SetRefusal('SSF_SET_SIGNATURE_INVALID', 'invalid_key', `Refused: ${why}`);
  }
  // From here on the content is the transmitter's own (signed): refusals are recorded as events.
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    throw new SetRefusal('SSF_SET_MALFORMED', 'invalid_request', 'The SET payload is not JSON', true);
  }
  const claimsOf = (value: unknown) => {
    const v = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
    return {
      ...(typeof v.jti === 'string' ? { jti: v.jti.slice(0, 256) } : {}),
      ...(typeof v.iss === 'string' ? { iss: v.iss.slice(0, 512) } : {}),
    };
  };
  const seen = claimsOf(raw);
  const typ = typeof header.typ === 'string' ? header.typ.toLowerCase() : '';
  if (typ !== 'secevent+jwt' && typ !== 'application/secevent+jwt') {
    throw new SetRefusal(
      'SSF_SET_TYPE_INVALID',
      'invalid_request',
      `The JWS typ is "${String(header.typ)}", not secevent+jwt`,
      true,
      seen,
    );
  }
  const parsed = SetClaimsSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new SetRefusal(
      'SSF_SET_MALFORMED',
      'invalid_request',
      `The SET's claims are not valid: ${issue === undefined ? '' : `${issue.path.join('.')}: ${issue.message}`}`,
      true,
      seen,
    );
  }
  const claims = parsed.data;
  if (claims.iss !== t.issuer) {
    throw new SetRefusal(
      'SSF_SET_ISSUER_INVALID',
      'invalid_issuer',
      `iss "${claims.iss}" is not this transmitter's issuer`,
      true,
      seen,
    );
  }
  const audiences = typeof claims.aud === 'string' ? [claims.aud] : claims.aud;
  if (!audiences.includes(t.audience)) {
    throw new SetRefusal(
      'SSF_SET_AUDIENCE_INVALID',
      'invalid_audience',
      `aud does not name "${t.audience}"`,
      true,
      seen,
    );
  }
  const iatMs = claims.iat * 1000;
  if (iatMs < deps.now - t.maxAgeSeconds * 1000) {
    throw new SetRefusal(
      'SSF_SET_STALE',
      'invalid_request',
      `iat is ${Math.round((deps.now - iatMs) / 1000)} s old; this transmitter's SETs are accepted for ${t.maxAgeSeconds} s`,
      true,
      seen,
    );
  }
  if (iatMs > deps.now + SET_CLOCK_SKEW_MS) {
    throw new SetRefusal(
      'SSF_SET_STALE',
      'invalid_request',
      'iat is in the future beyond the allowed clock skew',
      true,
      seen,
    );
  }
  const entries = Object.entries(claims.events);
  const first = entries[0];
  if (entries.length !== 1 || first === undefined) {
    throw new SetRefusal(
      'SSF_SET_EVENT_INVALID',
      'invalid_request',
      `A SET holds exactly one event; this one holds ${entries.length}`,
      true,
      seen,
    );
  }
  const [type, payloadEvent] = first;
  const schema = KNOWN_EVENTS[type];
  if (schema !== undefined) {
    const event = schema.safeParse(payloadEvent);
    if (!event.success) {
      const issue = event.error.issues[0];
      throw new SetRefusal(
        'SSF_SET_EVENT_INVALID',
        'invalid_request',
        `The ${type.slice(type.lastIndexOf('/') + 1)} event is not valid: ${issue === undefined ? '' : `${issue.path.join('.')}: ${issue.message}`}`,
        true,
        seen,
      );
    }
  }
  // SSF 1.0 §8.1.4.1, §8.1.5: SSF's own events name their stream (`sub_id` {"format": "opaque", "id": stream_id}).
  // One naming another stream (or none) is not about this source's stream: refused, never taken as its status or
  // its verification. A push-only source's stream id is not known to Baton: nothing to compare with.
  // The stream may also be named as the event's own `subject`, as before SSF 1.0 (and as other events may be).
  if ((type === SSF_STREAM_UPDATED || type === SSF_VERIFICATION) && t.streamId !== null) {
    const given: unknown = claims.sub_id ?? payloadEvent.subject;
    const subjectId =
      typeof given === 'object' && given !== null ? (given as { format?: unknown; id?: unknown }) : undefined;
    const named = subjectId?.format === 'opaque' && typeof subjectId.id === 'string' ? subjectId.id : undefined;
    if (named !== t.streamId) {
      const what =
        subjectId === undefined
          ? 'no sub_id'
          : typeof named === 'string'
            ? `stream "${named.slice(0, 128)}"`
            : `a ${String(subjectId.format).slice(0, 40)} sub_id, not an opaque stream id`;
      throw new SetRefusal(
        'SSF_SET_STREAM_MISMATCH',
        'invalid_request',
        `The ${type.slice(type.lastIndexOf('/') + 1)} event names ${what}; this source's stream is "${t.streamId}"`,
        true,
        seen,
      );
    }
  }
  // Single use across every node, for as long as the SET could still be accepted.
  const claimed = await deps.store.ephemeral.claimOnce(
    JTI_KIND,
    jtiKey(t.id, claims.jti),
    iatMs + t.maxAgeSeconds * 1000 + SET_CLOCK_SKEW_MS,
    deps.now,
  );
  if (!claimed) {
    throw new SetRefusal(
      'SSF_SET_REPLAYED',
      'invalid_request',
      `jti "${claims.jti}" was already received from this transmitter`,
      true,
      seen,
    );
  }
  const subject = claims.sub_id ?? (payloadEvent.subject as Record<string, unknown> | undefined);
  return {
    iss: claims.iss,
    jti: claims.jti,
    iat: claims.iat,
    txn: claims.txn,
    type,
    event: payloadEvent,
    subject: typeof subject === 'object' && subject !== null ? subject : undefined,
    known: schema !== undefined,
  };
}

export function jtiKey(transmitterId: string, jti: string): string {
  return `${transmitterId} ${jti}`;
}
