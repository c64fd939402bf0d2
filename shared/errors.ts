/**
 * Stable error codes shared by the backend, the agent and their tests.
 * docs/error-codes.md lists each with its meaning; a code never changes meaning once shipped.
 */
export const ERROR_STATUS = {
  // Request shape
  BAD_JSON: 400,
  SCHEMA_INVALID: 400,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  /** The request's headers or body did not arrive within the server's limits; the connection is closed. */
  REQUEST_TIMEOUT: 408,
  // Admin authentication
  ADMIN_AUTH_REQUIRED: 401,
  ADMIN_AUTH_INVALID: 401,
  /** The bootstrap token was retired when the first admin registered a passkey. */
  ADMIN_BOOTSTRAP_DISABLED: 401,
  /** The admin session passed its idle or absolute limit, or was ended (sign-out, revocation, restart). */
  ADMIN_SESSION_EXPIRED: 401,
  /** Signed in, but the operator does not (or no longer) hold the `admin` role. */
  ADMIN_ROLE_REQUIRED: 403,
  /** A destructive action needs a fresh user-verified passkey assertion (step-up) first. */
  ADMIN_STEP_UP_REQUIRED: 403,
  /** A browser request from another origin than the admin console's (CSRF defence). */
  ADMIN_ORIGIN_MISMATCH: 403,
  /** The change would leave no admin able to sign in (the bootstrap token is retired by then). */
  LAST_ADMIN: 409,
  // Admin tables and admin API tokens (issue 12, estate)
  /** A list's `cursor` is not one this server made for this list, sort and order: start from the first page. */
  ADMIN_CURSOR_INVALID: 400,
  /** A list's `sort` is not one of its sort keys (the answer names them). */
  ADMIN_SORT_UNKNOWN: 400,
  /** The admin API token has passed its expiry: an admin issues a new one. */
  ADMIN_API_TOKEN_EXPIRED: 401,
  /** The admin API token was revoked by an admin. */
  ADMIN_API_TOKEN_REVOKED: 401,
  /** The admin API token's scope does not allow this request (a `read` token on a change, or any token managing tokens). */
  ADMIN_API_TOKEN_SCOPE: 403,
  /** The operator CSV cannot be read as CSV with the expected header (`issues` lists the rows in error). */
  OPERATOR_IMPORT_INVALID: 400,
  /** Too many unauthenticated admin sign-in or registration requests from this client address (`Retry-After`). */
  ADMIN_SIGN_IN_RATE_LIMITED: 429,
  /** Failed assertions with this passkey from this client address: wait `Retry-After` before the next try. */
  ADMIN_SIGN_IN_THROTTLED: 429,
  // Console authentication (every call a console makes is signed with its key)
  CONSOLE_AUTH_MISSING: 401,
  CONSOLE_UNKNOWN: 401,
  CONSOLE_REVOKED: 403,
  CONSOLE_SIGNATURE_INVALID: 401,
  CONSOLE_SIGNATURE_STALE: 401,
  CONSOLE_SIGNATURE_REPLAYED: 401,
  // Enrolment
  ENROLMENT_TOKEN_INVALID: 401,
  ENROLMENT_TOKEN_EXPIRED: 401,
  ENROLMENT_TOKEN_USED: 401,
  ENROLMENT_CODE_INVALID: 401,
  ENROLMENT_CODE_EXPIRED: 401,
  ENROLMENT_CODE_USED: 401,
  CHANNEL_UNKNOWN: 400,
  /** The console enrolment token was issued for another channel (another kind of console) than the one enrolling. */
  ENROLMENT_TOKEN_CHANNEL_MISMATCH: 400,
  PUBLIC_KEY_INVALID: 400,
  // WebAuthn ceremonies
  CHALLENGE_UNKNOWN: 400,
  CHALLENGE_EXPIRED: 400,
  WEBAUTHN_ORIGIN_MISMATCH: 400,
  WEBAUTHN_RP_ID_MISMATCH: 400,
  WEBAUTHN_VERIFICATION_FAILED: 400,
  WEBAUTHN_COUNTER_REGRESSED: 403,
  WEBAUTHN_USER_VERIFICATION_REQUIRED: 403,
  /** The authenticator did not set the user-present flag: the assertion was made without a touch. */
  WEBAUTHN_USER_PRESENCE_REQUIRED: 403,
  /** clientDataJSON.type is not the ceremony's (`webauthn.create` for registration, `webauthn.get` otherwise). */
  WEBAUTHN_WRONG_CEREMONY_TYPE: 400,
  CREDENTIAL_UNKNOWN: 401,
  CREDENTIAL_REVOKED: 403,
  CREDENTIAL_NOT_DEVICE_BOUND: 403,
  CREDENTIAL_AAGUID_NOT_ALLOWED: 403,
  CREDENTIAL_ALREADY_REGISTERED: 409,
  /** The model's FIDO metadata reports a status the policy refuses (`credentials.refuseStatuses`: a compromise, revoked certification). */
  AUTHENTICATOR_COMPROMISED: 403,
  /** The policy's `credentials.minCertificationLevel` is not met (unknown model, lower level, or attestation not verified). */
  AUTHENTICATOR_CERTIFICATION_REQUIRED: 403,
  // FIDO metadata BLOB an admin supplies (the previous metadata stays in force on every refusal)
  /** Not a metadata BLOB: not a JWT, no `x5c`, or a payload that does not match MDS3. */
  METADATA_BLOB_INVALID: 400,
  /** The BLOB's certificate chain does not lead to a configured metadata trust anchor (or a certificate is out of date). */
  METADATA_BLOB_UNTRUSTED: 400,
  /** The BLOB's signature does not verify with its signing certificate. */
  METADATA_BLOB_SIGNATURE_INVALID: 400,
  /** The BLOB's `nextUpdate` has passed: it is stale. */
  METADATA_BLOB_EXPIRED: 400,
  /** The BLOB's `no` is not higher than the one loaded: older or the same. */
  METADATA_BLOB_NOT_NEWER: 409,
  /** Suspended after a signature-counter regression (possible copy) until an admin reinstates or revokes it. */
  CREDENTIAL_SUSPENDED: 403,
  /** Reinstating a credential that is not suspended. */
  CREDENTIAL_NOT_SUSPENDED: 409,
  // Operators
  OPERATOR_UNKNOWN: 404,
  OPERATOR_REVOKED: 403,
  OPERATOR_LOCKED: 403,
  OPERATOR_ID_TAKEN: 409,
  LEVEL_NOT_ALLOWED_ON_CHANNEL: 403,
  // Sessions and step-up
  SESSION_UNKNOWN: 404,
  SESSION_NOT_ACTIVE: 409,
  STEP_UP_WRONG_OPERATOR: 403,
  STEP_UP_INSUFFICIENT: 403,
  // Action tokens (docs/action-tokens.md)
  /** The token exchange names an audience that is no app of the policy (`apps[].audience`). */
  AUDIENCE_UNKNOWN: 400,
  /** The app of that audience does not declare the action (`apps[].actions`). */
  ACTION_NOT_FOR_AUDIENCE: 403,
  /** A workspace page asked for a token for an app whose `apps[].workspaceOrigins` does not name the page's origin. */
  AUDIENCE_NOT_FOR_WORKSPACE: 403,
  /** The action needs a fresh or stronger authentication: `decision` carries `acr_values` and `max_age` (RFC 9470). */
  ACTION_STEP_UP_REQUIRED: 403,
  /** The exchange's `subject_token` is not a live assurance token of this console's session. */
  SUBJECT_TOKEN_INVALID: 401,
  /** An RFC 8693 `grant_type`, `subject_token_type` or `requested_token_type` Baton does not issue. */
  TOKEN_EXCHANGE_UNSUPPORTED: 400,
  /** An app server's login to the revocation stream does not verify against its policy `revocationKey`. */
  APP_AUTH_INVALID: 401,
  // Service accounts (docs/service-accounts.md)
  /** The token endpoint's client authentication is missing or malformed (`client_assertion_type`, the JWT, its claims). */
  SERVICE_ASSERTION_INVALID: 401,
  /** The client assertion's `exp` has passed, or it lives longer than the policy's `service.assertionMaxSeconds`. */
  SERVICE_ASSERTION_EXPIRED: 401,
  /** The client assertion's `aud` is not the endpoint it was sent to (the token endpoint, or this service's key rotation). */
  SERVICE_ASSERTION_AUDIENCE: 401,
  /** The client assertion's signature does not verify with any current key of the service. */
  SERVICE_ASSERTION_SIGNATURE_INVALID: 401,
  /** A client assertion's `jti` was already used (on any backend node of the database). */
  SERVICE_ASSERTION_REPLAYED: 401,
  /** No service is enrolled with the assertion's `iss`/`sub`. */
  SERVICE_UNKNOWN: 401,
  /** The service was revoked: no token, key rotation or anything else. */
  SERVICE_REVOKED: 403,
  /** The action is not one the service was enrolled for, or the policy's `service.actions` does not list it. */
  SERVICE_ACTION_NOT_ALLOWED: 403,
  /** The policy requires this service action to be tied to a human session, and no `actor_token` came. */
  SERVICE_ACTOR_REQUIRED: 403,
  /** The `actor_token` is not a valid token of a live session meeting the action's level and age (or one was not allowed). */
  SERVICE_ACTOR_INVALID: 403,
  /** The token endpoint's `grant_type` (or an RFC 8693 token type) is not one Baton serves. */
  SERVICE_GRANT_UNSUPPORTED: 400,
  /** The key-possession proof of an enrolment or key rotation does not verify with the key it presents. */
  SERVICE_KEY_PROOF_INVALID: 400,
  // Break-glass (docs/break-glass.md)
  /** The policy has no `breakGlass` section: temporary access without a key is off. */
  BREAK_GLASS_DISABLED: 403,
  /** The temporary access code is not known, or not bound to this operator and this console. */
  BREAK_GLASS_CODE_INVALID: 401,
  BREAK_GLASS_CODE_EXPIRED: 401,
  BREAK_GLASS_CODE_USED: 401,
  /** The operator or the site already had the policy's number of break-glass grants in the last 24 hours. */
  BREAK_GLASS_LIMIT_REACHED: 429,
  /** The break-glass grant was already signed off. */
  BREAK_GLASS_ALREADY_SIGNED_OFF: 409,
  /** The grant's session is still running: it can be signed off once it has ended (an admin may end it first). */
  BREAK_GLASS_SESSION_ACTIVE: 409,
  /** A supervisor tapped to approve their own break-glass request: someone else must approve it. */
  BREAK_GLASS_SELF_APPROVAL: 403,
  /** The key that tapped belongs to an operator whose roles are not in the policy's `breakGlass.approverRoles`. */
  BREAK_GLASS_NOT_APPROVER: 403,
  // Policy
  POLICY_INVALID: 400,
  POLICY_VERSION_CONFLICT: 409,
  // Console channel (WebSocket)
  MESSAGE_TYPE_UNKNOWN: 400,
  HELLO_REQUIRED: 400,
  EVENT_SCHEMA_INVALID: 400,
  EVENT_SEQUENCE_GAP: 409,
  EVENT_SEQUENCE_CONFLICT: 409,
  EVENT_CHAIN_BROKEN: 409,
  /** A console sent a type only the backend records (e.g. `admin-action`): kept flagged `refused`, acts on nothing. */
  EVENT_TYPE_NOT_ALLOWED: 403,
  /** A console's event is dated more than the clock skew (5 min) after the backend received it: kept flagged `refused`. */
  EVENT_TIME_IN_FUTURE: 400,
  /** A console's event is dated before its previous event (or its enrolment) beyond the skew: stored, marked. */
  EVENT_TIME_BACKDATED: 409,
  /** A console's event names a session or operator it could not have witnessed: stored, marked. */
  EVENT_SUBJECT_NOT_WITNESSED: 403,
  /** A console's lock, resume or end was stored but not applied to the session (e.g. a resume outside the grace). */
  EVENT_SESSION_CHANGE_REFUSED: 409,
  /** A console acknowledged a revocation epoch above any its backend node has sent: not recorded; the socket stays. */
  REVOCATION_ACK_EPOCH_UNKNOWN: 409,
  /** Log only: a console's hello names a revocation epoch above the store's (a database restored from a backup). */
  CONSOLE_EPOCH_AHEAD: 409,
  /** The store refused a write (disk full, read-only, I/O error, busy): nothing from the batch was stored; send it again. */
  STORAGE_UNAVAILABLE: 503,
  // Agent
  /** The agent's event outbox is at its cap: new events are refused, never dropped silently. */
  OUTBOX_FULL: 507,
  /** The agent's journal had unreadable lines at start; copies are in quarantine/ and the rest was kept. */
  OUTBOX_DAMAGED: 500,
  /** The OS credential store (keytar over Secret Service / Keychain / Credential Vault) cannot be used. */
  SECRET_STORE_UNAVAILABLE: 503,
  /** The backend cannot be reached (network down, backend stopped, or a 502/503/504 without a code). */
  BACKEND_UNREACHABLE: 503,
  /** The backend answered with something the agent does not accept (bad JSON, wrong shape, unknown type). */
  BACKEND_PROTOCOL_ERROR: 502,
  /** The console has no identity yet: it must be enrolled with a token from IT. */
  CONSOLE_NOT_ENROLLED: 409,
  /** Enrolment was asked of a console that is enrolled: IT revokes it first (nothing was dropped). */
  CONSOLE_ALREADY_ENROLLED: 409,
  /** The configuration names another channel than the console was enrolled on; it keeps the enrolled one. */
  CHANNEL_MISMATCH: 409,
  /** A screen (operator UI or a workspace) called the agent faster than a person could. */
  RATE_LIMITED: 429,
  /** The console's key is gone or the console was revoked: IT must enrol it again. */
  CONSOLE_REENROLMENT_REQUIRED: 409,
  /** A new sign-in needs the backend; only suspended sessions can be resumed offline. */
  OFFLINE_SIGN_IN_REFUSED: 503,
  /** The key tapped offline belongs to no session that can be resumed within the offline grace. */
  OFFLINE_RESUME_REFUSED: 403,
  /** The agent is catching up with the backend (revocations, queued events) after reconnecting. */
  AGENT_SYNCING: 503,
  /** Another ceremony is already running on this console. */
  CEREMONY_IN_PROGRESS: 409,
  /** The operator UI cancelled the ceremony, or the authenticator gave no answer. */
  CEREMONY_CANCELLED: 400,
  /** There is no operator session in front to act for. */
  NO_SESSION_IN_FRONT: 409,
  /** The policy denies the action for this operator here. */
  ACTION_DENIED: 403,
  // Shared Signals transmitter (issue 13; docs/shared-signals.md "Transmitter"): receivers' bearer tokens and streams
  /** A transmitter endpoint called without `Authorization: Bearer <receiver token>`. */
  SSF_TOKEN_MISSING: 401,
  /** The receiver token is unknown or revoked. */
  SSF_TOKEN_INVALID: 401,
  /** The receiver token lacks the scope the endpoint needs (`ssf.manage` to change, `ssf.read` to read). */
  SSF_SCOPE_INSUFFICIENT: 403,
  /** No such stream for this receiver (another receiver's stream is not found either). */
  SSF_STREAM_NOT_FOUND: 404,
  /** The stream configuration or request is not acceptable (`issues` says where). */
  SSF_STREAM_INVALID: 400,
  /** The receiver already has as many streams as allowed (`ssf.maxStreamsPerReceiver`). */
  SSF_STREAM_LIMIT: 409,
  /** A verification event was asked for a disabled stream. */
  SSF_STREAM_DISABLED: 409,
  /** No such receiver (admin API). */
  SSF_RECEIVER_NOT_FOUND: 404,
  /** The receiver's token was already revoked (admin API). */
  SSF_RECEIVER_REVOKED: 409,
  // Shared Signals receiver (issue 13; docs/shared-signals.md "Receiver"). Push refusals also carry RFC 8935's `err`.
  /** The SET is larger than the receiver accepts (err invalid_request). */
  SSF_SET_TOO_LARGE: 400,
  /** Not a compact JWS, not `application/secevent+jwt`, or its claims are not a SET (err invalid_request). */
  SSF_SET_MALFORMED: 400,
  /** The signature does not verify with the transmitter's keys, or its algorithm is not accepted (err invalid_key). */
  SSF_SET_SIGNATURE_INVALID: 400,
  /** The JWS header's `typ` is not `secevent+jwt` (err invalid_request). */
  SSF_SET_TYPE_INVALID: 400,
  /** `iss` is not the registered transmitter's issuer (err invalid_issuer). */
  SSF_SET_ISSUER_INVALID: 400,
  /** `aud` does not name the audience Baton expects from this transmitter (err invalid_audience). */
  SSF_SET_AUDIENCE_INVALID: 400,
  /** This `jti` was already received from this transmitter (err invalid_request). */
  SSF_SET_REPLAYED: 400,
  /** `iat` is older than the transmitter's maximum age, or in the future beyond the clock skew (err invalid_request). */
  SSF_SET_STALE: 400,
  /** The event does not match its type's schema, or the SET holds other than exactly one event (err invalid_request). */
  SSF_SET_EVENT_INVALID: 400,
  /** A `stream-updated` or `verification` SET names another stream than the source's (err invalid_request). */
  SSF_SET_STREAM_MISMATCH: 400,
  /** The push lacks the bearer token Baton issued for this transmitter, or it is wrong (err authentication_failed). */
  SSF_PUSH_AUTH_FAILED: 401,
  /** No transmitter is registered under this id, or it was disabled (err access_denied). */
  SSF_TRANSMITTER_UNKNOWN: 403,
  /** The transmitter's keys (its `jwks_uri`) cannot be fetched now: the transmitter retries later. */
  SSF_KEYS_UNAVAILABLE: 503,
  /** The upstream's configuration, JWKS or stream endpoint answered something unusable (registration, stream creation). */
  SSF_UPSTREAM_INVALID: 502,
  /** This subject identifier is already linked to an operator (unlink it first). */
  SSF_IDENTITY_TAKEN: 409,
  /** A paused source already holds as many SETs as it may (10,000): it is told to retry later (err access_denied). */
  SSF_SOURCE_HOLD_FULL: 503,
  /** Verification asked of a source with no stream Baton created at its upstream (push-only, pinned JWKS): nothing to ask. */
  SSF_SOURCE_NO_STREAM: 409,
  /** Verification asked of a paused or disabled source: resume it first. */
  SSF_SOURCE_NOT_ENABLED: 409,
  // SCIM 2.0 provisioning (issue 13; docs/scim.md). SCIM answers carry RFC 7644's error schema and `scimType` too.
  /** No bearer token, or not the live token of a directory. */
  SCIM_AUTH_FAILED: 401,
  /** The filter is not one Baton supports (scimType invalidFilter). */
  SCIM_INVALID_FILTER: 400,
  /** The body is not JSON or not a SCIM message (scimType invalidSyntax). */
  SCIM_INVALID_SYNTAX: 400,
  /** A required attribute is missing or a value has the wrong type (scimType invalidValue). */
  SCIM_INVALID_VALUE: 400,
  /** A PATCH path Baton does not support (scimType invalidPath). */
  SCIM_INVALID_PATH: 400,
  /** The change would alter a read-only attribute such as `id` (scimType mutability). */
  SCIM_MUTABILITY: 400,
  /** Another resource of this directory already has this `userName` / `displayName` (scimType uniqueness). */
  SCIM_UNIQUENESS: 409,
  /** No such resource in this directory. */
  SCIM_RESOURCE_UNKNOWN: 404,
  // Server
  SHUTTING_DOWN: 503,
  /** Start only: another running backend holds the data directory's lock file (`baton.lock`). */
  DATA_DIR_LOCKED: 409,
  /** The database file is not a SQLite database, or cannot be opened (the backend does not start). */
  DATABASE_UNREADABLE: 500,
  /**
   * Maintenance commands only: the data directory holds no Baton database, or the PostgreSQL database
   * no Baton schema (a mistyped path or URL); nothing is created.
   */
  DATABASE_NOT_FOUND: 404,
  /** The PostgreSQL server cannot be reached or refused the connection: the node refuses new work until it is back. */
  DATABASE_UNREACHABLE: 503,
  /**
   * This node's view of revocations may be stale (it lost the database or its cluster notifications
   * for longer than its bound) and the channel's policy is `strict`: no new sign-in, step-up or resume here.
   */
  NODE_STALE: 503,
  /** The backend's verification workers are saturated; retry shortly. */
  BACKEND_BUSY: 503,
  /** A damaged page was read from the database (the start-up integrity check or a query found it). */
  DATABASE_DAMAGED: 500,
  /** A signing-key file in the data directory is unreadable or malformed (the backend does not start). */
  KEY_FILE_INVALID: 500,
  INTERNAL: 500,
  /** The backend met a fault it cannot contain (an unhandled rejection or uncaught exception): it stops, exit code 70. */
  BACKEND_FAULT: 500,
  /**
   * The database holds the cluster's sealed signing key rings but this node has no key-encryption key
   * file (the backend does not start; the line names the file to copy from another node).
   */
  KEY_ENCRYPTION_KEY_MISSING: 500,
  /** The sealed key rings were sealed under another key-encryption key than this node's file (does not start). */
  KEY_ENCRYPTION_KEY_MISMATCH: 500,
  /** A sealed key ring in the database does not authenticate under the key-encryption key: changed outside Baton. */
  KEY_RING_TAMPERED: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;
export const ERROR_CODES = Object.keys(ERROR_STATUS) as ErrorCode[];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ERROR_STATUS, value);
}

/** A field-level problem, pointing at the exact place in the input. */
export interface FieldIssue {
  path: string;
  message: string;
}

/** The JSON body of every error the backend returns. */
export interface ErrorBody {
  error: {
    code: ErrorCode;
    message: string;
    issues?: FieldIssue[];
    serverTime?: number;
    /** For STEP_UP_INSUFFICIENT: the policy decision with its reasons. */
    decision?: unknown;
  };
}

export class BatonError extends Error {
  readonly code: ErrorCode;
  readonly issues: FieldIssue[] | undefined;
  readonly extra: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; issues?: FieldIssue[]; extra?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BatonError';
    this.code = code;
    this.issues = options.issues;
    this.extra = options.extra;
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }
}
