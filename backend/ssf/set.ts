/**
 * Security Event Tokens (RFC 8417) as OpenID Shared Signals 1.0 and the CAEP Interoperability
 * Profile shape them: header `typ: secevent+jwt`; claims `iss`, `aud`, `iat`, `jti`, `txn`, `sub_id`
 * and `events` holding exactly one event keyed by its type URI; never `sub`, never `exp`.
 *
 * Shared by the transmitter (backend/ssf/transmitter) and the receiver (backend/ssf/receiver):
 * `buildSet` + `signSet` make one, `checkSetClaims` holds a decoded one to the same rules.
 * Signing uses node:crypto directly (RS256 or ES256), which is what jose does underneath, without
 * its async wrapper per SET; verification is left to jose (`jwtVerify` with the issuer's JWKS).
 */
import { randomUUID, sign as nodeSign, type KeyObject } from 'node:crypto';
import { jwtVerify, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';

export const SET_TYP = 'secevent+jwt';
export const SET_CONTENT_TYPE = 'application/secevent+jwt';
export const CAEP_EVENT_PREFIX = 'https://schemas.openid.net/secevent/caep/event-type/';
export const SSF_EVENT_PREFIX = 'https://schemas.openid.net/secevent/ssf/event-type/';
export const RISC_EVENT_PREFIX = 'https://schemas.openid.net/secevent/risc/event-type/';
/** Baton's own event types (no CAEP type exists for them): docs/events.md, "Shared Signals". */
export const BATON_SET_EVENT_PREFIX = 'urn:baton:event:';

export const SSF_VERIFICATION_EVENT = `${SSF_EVENT_PREFIX}verification`;
export const SSF_STREAM_UPDATED_EVENT = `${SSF_EVENT_PREFIX}stream-updated`;

/** The signature algorithms a transmitter key may use: RS256 (CAEP interop profile, ≥ 2048 bits) or ES256. */
export const SET_ALGORITHMS = ['RS256', 'ES256'] as const;
export type SetAlgorithm = (typeof SET_ALGORITHMS)[number];

// ---- Subject identifiers (RFC 9493, SSF 1.0 §3) ----

const Str = z.string().min(1).max(512);
export const SimpleSubjectSchema = z.discriminatedUnion('format', [
  z.strictObject({ format: z.literal('opaque'), id: Str }),
  z.strictObject({ format: z.literal('email'), email: z.string().min(3).max(320).includes('@') }),
  z.strictObject({ format: z.literal('iss_sub'), iss: Str, sub: Str }),
  z.strictObject({ format: z.literal('phone_number'), phone_number: z.string().regex(/^\+[0-9]{4,20}$/) }),
  z.strictObject({ format: z.literal('account'), uri: z.string().regex(/^acct:.+@.+$/) }),
  z.strictObject({ format: z.literal('did'), url: z.string().regex(/^did:.+$/) }),
  z.strictObject({ format: z.literal('uri'), uri: z.url() }),
  z.strictObject({ format: z.literal('aliases'), identifiers: z.array(z.looseObject({ format: z.string() })).min(1) }),
]);
export type SimpleSubject = z.infer<typeof SimpleSubjectSchema>;

/** SSF's complex subject: at least one of its members, each a simple subject. */
export const ComplexSubjectSchema = z
  .strictObject({
    format: z.literal('complex'),
    user: SimpleSubjectSchema.optional(),
    device: SimpleSubjectSchema.optional(),
    session: SimpleSubjectSchema.optional(),
    application: SimpleSubjectSchema.optional(),
    tenant: SimpleSubjectSchema.optional(),
    org_unit: SimpleSubjectSchema.optional(),
    group: SimpleSubjectSchema.optional(),
  })
  .refine((s) => Object.keys(s).length > 1, 'a complex subject names at least one member');
export type ComplexSubject = z.infer<typeof ComplexSubjectSchema>;

export const SubjectIdSchema = z.union([SimpleSubjectSchema, ComplexSubjectSchema]);
export type SubjectId = z.infer<typeof SubjectIdSchema>;

/** A stable key for a subject (members sorted): what "ordered per subject" and subject filters compare. */
export function subjectKey(subject: SubjectId | Record<string, unknown>): string {
  const sorted = (value: unknown): unknown =>
    value !== null && typeof value === 'object' && !Array.isArray(value)
      ? Object.fromEntries(
          Object.keys(value)
            .sort()
            .map((k) => [k, sorted((value as Record<string, unknown>)[k])]),
        )
      : value;
  return JSON.stringify(sorted(subject));
}

/**
 * Whether `subject` (an event's) is covered by `filter` (a stream's added subject): equal, or, for a
 * complex event subject, one of its members equals the filter (an added user matches every session
 * of that user), or the filter is complex and each of its members is in the event's subject.
 */
export function subjectMatches(subject: SubjectId, filter: SubjectId): boolean {
  const key = subjectKey(filter);
  if (subjectKey(subject) === key) return true;
  if (subject.format !== 'complex') return false;
  const members = Object.entries(subject).filter(([k]) => k !== 'format');
  if (filter.format !== 'complex') return members.some(([, v]) => subjectKey(v as SubjectId) === key);
  return Object.entries(filter)
    .filter(([k]) => k !== 'format')
    .every(([k, v]) => {
      const mine = (subject as Record<string, unknown>)[k];
      return mine !== undefined && subjectKey(mine as SubjectId) === subjectKey(v as SubjectId);
    });
}

// ---- Claims ----

export interface SetClaims {
  iss: string;
  aud: string | string[];
  iat: number;
  jti: string;
  txn?: string;
  sub_id: SubjectId;
  events: Record<string, Record<string, unknown>>;
}

export interface SetDraft {
  /** The transmitter's issuer (its `/.well-known/ssf-configuration` base URL). */
  iss: string;
  /** The stream's audience. */
  aud: string | string[];
  /** The event type URI, e.g. `${CAEP_EVENT_PREFIX}session-revoked`. */
  type: string;
  /** The event's members (`event_timestamp`, `reason_admin`, …). */
  event: Record<string, unknown>;
  subject: SubjectId;
  /** Links the SETs of one cause (one Baton unit of work). */
  txn?: string | undefined;
  /** Default: a fresh UUID. */
  jti?: string | undefined;
  /** Seconds; default now. */
  iat?: number | undefined;
}

/** The claims of one SET, checked against the rules (`checkSetClaims`) before it is signed. */
export function buildSet(draft: SetDraft): SetClaims {
  const claims: SetClaims = {
    iss: draft.iss,
    aud: draft.aud,
    iat: draft.iat ?? Math.floor(Date.now() / 1000),
    jti: draft.jti ?? randomUUID(),
    ...(draft.txn === undefined ? {} : { txn: draft.txn }),
    sub_id: draft.subject,
    events: { [draft.type]: draft.event },
  };
  const problems = checkSetClaims(claims as unknown as Record<string, unknown>);
  if (problems.length > 0) throw new Error(`Not a valid SET: ${problems.join('; ')}`);
  return claims;
}

/**
 * What the SSF 1.0 / CAEP interop rules refuse in a SET's claims (empty when none): `sub` or `exp`
 * present, not exactly one event, no `jti`/`iss`/`aud`/`iat`, a `sub_id` that is not a subject
 * identifier, a `session-revoked` without a non-empty `reason_admin`, CAEP events missing their
 * required members.
 */
export function checkSetClaims(claims: Record<string, unknown>): string[] {
  const problems: string[] = [];
  if ('sub' in claims) problems.push('`sub` is forbidden (SSF uses `sub_id`)');
  if ('exp' in claims) problems.push('`exp` is forbidden in a SET');
  for (const name of ['iss', 'jti'] as const) {
    if (typeof claims[name] !== 'string' || claims[name] === '')
      problems.push(`\`${name}\` must be a non-empty string`);
  }
  const aud = claims.aud;
  if (!(typeof aud === 'string' && aud !== '') && !(Array.isArray(aud) && aud.length > 0)) {
    problems.push('`aud` must be a string or a non-empty array');
  }
  if (typeof claims.iat !== 'number' || !Number.isInteger(claims.iat)) problems.push('`iat` must be an integer');
  if ('txn' in claims && typeof claims.txn !== 'string') problems.push('`txn` must be a string');
  // SubjectIdSchema's branch chosen by `format` (the same subjects pass): a union tries the simple subjects
  // first and builds their failure for every complex one, which cost more than the rest of a SET's claims.
  const sub = claims.sub_id as { format?: unknown } | null | undefined;
  const subjectSchema =
    typeof sub === 'object' && sub?.format === 'complex' ? ComplexSubjectSchema : SimpleSubjectSchema;
  if (!subjectSchema.safeParse(sub).success) problems.push('`sub_id` is not a subject identifier');
  const events = claims.events;
  if (events === null || typeof events !== 'object' || Array.isArray(events)) {
    problems.push('`events` must be an object');
    return problems;
  }
  const entries = Object.entries(events as Record<string, unknown>);
  if (entries.length !== 1) problems.push(`\`events\` must hold exactly one event (holds ${entries.length})`);
  for (const [type, body] of entries) {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      problems.push(`event ${type} must be an object`);
      continue;
    }
    problems.push(...checkCaepEvent(type, body as Record<string, unknown>));
  }
  return problems;
}

const NIST_AAL = /^nist-aal[123]$/;
const COMPLIANCE = ['compliant', 'not-compliant'];

/** The CAEP 1.0 required members (and the interop profile's `reason_admin` on `session-revoked`). */
function checkCaepEvent(type: string, e: Record<string, unknown>): string[] {
  if (!type.startsWith(CAEP_EVENT_PREFIX)) return [];
  const name = type.slice(CAEP_EVENT_PREFIX.length);
  const problems: string[] = [];
  if ('event_timestamp' in e && (typeof e.event_timestamp !== 'number' || !Number.isInteger(e.event_timestamp))) {
    problems.push(`${name}: event_timestamp must be an integer (seconds)`);
  }
  if ('initiating_entity' in e && !['admin', 'user', 'policy', 'system'].includes(String(e.initiating_entity))) {
    problems.push(`${name}: initiating_entity must be admin, user, policy or system`);
  }
  for (const key of ['reason_admin', 'reason_user'] as const) {
    if (key in e && !isLanguageMap(e[key])) problems.push(`${name}: ${key} must map language tags to strings`);
  }
  switch (name) {
    case 'session-revoked':
      if (!isLanguageMap(e.reason_admin) || Object.keys(e.reason_admin as object).length === 0) {
        problems.push('session-revoked: the interop profile requires a non-empty reason_admin');
      }
      break;
    case 'assurance-level-change':
      if (typeof e.namespace !== 'string') problems.push('assurance-level-change: namespace is required');
      if (typeof e.current_level !== 'string') problems.push('assurance-level-change: current_level is required');
      if (e.namespace === 'NIST-AAL' && !NIST_AAL.test(String(e.current_level))) {
        problems.push('assurance-level-change: NIST-AAL levels are nist-aal1, nist-aal2, nist-aal3');
      }
      if ('change_direction' in e && !['increase', 'decrease'].includes(String(e.change_direction))) {
        problems.push('assurance-level-change: change_direction is increase or decrease');
      }
      break;
    case 'credential-change':
      if (typeof e.credential_type !== 'string') problems.push('credential-change: credential_type is required');
      if (!['create', 'revoke', 'update', 'delete'].includes(String(e.change_type))) {
        problems.push('credential-change: change_type is create, revoke, update or delete');
      }
      break;
    case 'device-compliance-change':
      if (!COMPLIANCE.includes(String(e.previous_status)) || !COMPLIANCE.includes(String(e.current_status))) {
        problems.push('device-compliance-change: previous_status and current_status are compliant or not-compliant');
      }
      break;
    case 'session-established':
      if ('amr' in e && !(Array.isArray(e.amr) && e.amr.every((v) => typeof v === 'string'))) {
        problems.push('session-established: amr must be an array of strings');
      }
      if ('acr' in e && typeof e.acr !== 'string') problems.push('session-established: acr must be a string');
      break;
    default:
      break;
  }
  return problems;
}

function isLanguageMap(value: unknown): boolean {
  return (
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    Object.values(value).every((v) => typeof v === 'string' && v !== '')
  );
}

// ---- Signing ----

/** A private key that signs SETs, with the `kid` its JWKS publishes it under. */
export interface SetSigningKey {
  kid: string;
  alg: SetAlgorithm;
  privateKey: KeyObject;
}

const b64url = (data: string | Buffer) => Buffer.from(data).toString('base64url');

/** Encoded protected headers by algorithm and kid: one per key, not one per SET. */
const encodedHeaders = new Map<string, string>();

function encodedHeader(key: SetSigningKey): string {
  const id = `${key.alg} ${key.kid}`;
  let header = encodedHeaders.get(id);
  if (header === undefined) {
    header = b64url(JSON.stringify({ alg: key.alg, kid: key.kid, typ: SET_TYP }));
    if (encodedHeaders.size > 64) encodedHeaders.clear();
    encodedHeaders.set(id, header);
  }
  return header;
}

/** The compact JWS of `claims`: header `{alg, kid, typ: "secevent+jwt"}`. */
export function signSet(claims: SetClaims, key: SetSigningKey): string {
  return signSetJson(JSON.stringify(claims), key);
}

/** The compact JWS of claims already serialised (`setClaimsEncoder`, or `JSON.stringify` of checked claims). */
export function signSetJson(claimsJson: string, key: SetSigningKey): string {
  return signingInput(`${encodedHeader(key)}.${b64url(claimsJson)}`, key);
}

/**
 * The same SET signed again under `key`: its payload segment kept byte for byte (same claims, same `jti`), a new
 * protected header (`key`'s `alg` and `kid`) and signature. What the transmitter hands out for a queued SET whose
 * key is no longer published. Throws when `jwt` is not a compact JWS.
 */
export function resignSet(jwt: string, key: SetSigningKey): string {
  const first = jwt.indexOf('.');
  const second = jwt.indexOf('.', first + 1);
  if (first <= 0 || second <= first + 1 || jwt.indexOf('.', second + 1) !== -1) {
    throw new Error('Not a compact JWS: expected header.payload.signature');
  }
  return signingInput(`${encodedHeader(key)}.${jwt.slice(first + 1, second)}`, key);
}

function signingInput(input: string, key: SetSigningKey): string {
  const data = Buffer.from(input);
  const signature =
    key.alg === 'ES256'
      ? nodeSign('sha256', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
      : nodeSign('sha256', data, key.privateKey);
  return `${input}.${signature.toString('base64url')}`;
}

/** The `kid` of each protected header seen by `setKid`, by its encoded text: one entry per key, not per SET. */
const headerKids = new Map<string, string | null>();
/**
 * The `kid` of a compact SET's protected header (undefined when it has none, or is not a JWS), without decoding its
 * payload or checking its signature: the header's encoded text is looked up, and decoded only the first time it is
 * seen (the transmitter's headers are one per key). For the delivery's check that a queued SET's key is still
 * published, once per SET handed out.
 */
export function setKid(jwt: string): string | undefined {
  const dot = jwt.indexOf('.');
  if (dot <= 0) return undefined;
  const header = jwt.slice(0, dot);
  let kid = headerKids.get(header);
  if (kid === undefined) {
    let decoded: unknown;
    try {
      decoded = JSON.parse(Buffer.from(header, 'base64url').toString('utf8'));
    } catch {
      decoded = undefined;
    }
    const value = (decoded as { kid?: unknown } | null | undefined)?.kid;
    kid = typeof value === 'string' && value !== '' ? value : null;
    if (headerKids.size > 64) headerKids.clear();
    headerKids.set(header, kid);
  }
  return kid ?? undefined;
}

/**
 * One event's SETs to several streams, which differ only in `aud` and `jti`: the claims are built and
 * checked (`buildSet`) once, the members they share serialised once, and `encode(aud, jti)` gives each
 * stream's claims JSON, the same text as `JSON.stringify(buildSet({...draft, aud, jti}))`.
 */
export function setClaimsEncoder(draft: Omit<SetDraft, 'aud' | 'jti'> & { aud: string }): {
  encode(aud: string | string[], jti: string): string;
} {
  const checked = buildSet({ ...draft, jti: randomUUID() });
  const prefix = `{"iss":${JSON.stringify(checked.iss)},"aud":`;
  const middle = `,"iat":${JSON.stringify(checked.iat)},"jti":`;
  const suffix =
    `${checked.txn === undefined ? '' : `,"txn":${JSON.stringify(checked.txn)}`}` +
    `,"sub_id":${JSON.stringify(checked.sub_id)},"events":${JSON.stringify(checked.events)}}`;
  return {
    encode: (aud, jti) => {
      if (aud === '' || (Array.isArray(aud) && aud.length === 0)) throw new Error('Not a valid SET: empty `aud`');
      if (jti === '') throw new Error('Not a valid SET: empty `jti`');
      return `${prefix}${JSON.stringify(aud)}${middle}${JSON.stringify(jti)}${suffix}`;
    },
  };
}

/** The claims of a compact SET, not verified (for logs and tests; verify with jose first). */
export function decodeSetUnverified(jwt: string): { header: Record<string, unknown>; claims: Record<string, unknown> } {
  const [h, p] = jwt.split('.');
  return {
    header: JSON.parse(Buffer.from(h ?? '', 'base64url').toString('utf8')) as Record<string, unknown>,
    claims: JSON.parse(Buffer.from(p ?? '', 'base64url').toString('utf8')) as Record<string, unknown>,
  };
}

// ---- RFC 8935 / 8936 error bodies ----

/** RFC 8935 §2.3 / RFC 8936 §2.4.4 error codes (the SET error code registry of RFC 8935 §7.1). */
export const SET_ERROR_CODES = [
  'invalid_request',
  'invalid_key',
  'invalid_issuer',
  'invalid_audience',
  'authentication_failed',
  'access_denied',
] as const;
export type SetErrorCode = (typeof SET_ERROR_CODES)[number];

export const SetErrorBodySchema = z.looseObject({ err: z.string().min(1), description: z.string().optional() });

// ---- Verification ----

export interface VerifySetOptions {
  /** The transmitter's issuer, exactly. */
  issuer: string;
  /** The audience this receiver expects (one of the SET's). */
  audience: string;
  /** Algorithms accepted (default both RS256 and ES256). */
  algorithms?: readonly SetAlgorithm[];
  /** Seconds of skew allowed for an `iat` in the future (default 300). */
  clockToleranceSeconds?: number;
  /** Seconds after `iat` a SET is still accepted (default: no limit). */
  maxAgeSeconds?: number;
}

/** Why `verifySet` refused, as an RFC 8935 error code and a description. */
export class SetRejected extends Error {
  constructor(
    readonly err: SetErrorCode,
    description: string,
  ) {
    super(description);
    this.name = 'SetRejected';
  }
}

/**
 * Verifies a compact SET: signature against `keys` (a jose key resolver, e.g. `createRemoteJWKSet`
 * or `createLocalJWKSet`), `typ: secevent+jwt`, `iss`, `aud`, `iat` (not in the future), then the
 * SSF / CAEP claim rules. Throws `SetRejected` with the RFC 8935 code: `invalid_key` (signature, kid),
 * `invalid_issuer`, `invalid_audience`, `invalid_request` (typ, claims, age).
 */
export async function verifySet(
  jwt: string,
  keys: JWTVerifyGetKey,
  options: VerifySetOptions,
): Promise<{ header: Record<string, unknown>; claims: SetClaims }> {
  let result;
  try {
    result = await jwtVerify(jwt, keys, {
      algorithms: [...(options.algorithms ?? SET_ALGORITHMS)],
      typ: SET_TYP,
    });
  } catch (error) {
    const code = (error as { code?: string }).code ?? '';
    if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') {
      throw new SetRejected('invalid_request', (error as Error).message);
    }
    if (code === 'ERR_JWS_INVALID' || code === 'ERR_JWT_INVALID') {
      throw new SetRejected('invalid_request', `not a JWS: ${(error as Error).message}`);
    }
    throw new SetRejected('invalid_key', `signature not verified: ${(error as Error).message}`);
  }
  const claims = result.payload as Record<string, unknown>;
  if (claims.iss !== options.issuer) throw new SetRejected('invalid_issuer', `iss is not ${options.issuer}`);
  const aud = claims.aud;
  const audiences = Array.isArray(aud) ? aud : [aud];
  if (!audiences.includes(options.audience))
    throw new SetRejected('invalid_audience', `aud does not include ${options.audience}`);
  const problems = checkSetClaims(claims);
  if (problems.length > 0) throw new SetRejected('invalid_request', problems.join('; '));
  const now = Math.floor(Date.now() / 1000);
  const iat = claims.iat as number;
  if (iat > now + (options.clockToleranceSeconds ?? 300))
    throw new SetRejected('invalid_request', 'iat is in the future');
  if (options.maxAgeSeconds !== undefined && now - iat > options.maxAgeSeconds) {
    throw new SetRejected('invalid_request', `the SET is older than ${options.maxAgeSeconds} s`);
  }
  return { header: result.protectedHeader as Record<string, unknown>, claims: claims as unknown as SetClaims };
}
