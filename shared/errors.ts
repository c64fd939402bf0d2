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
  // Admin authentication
  ADMIN_AUTH_REQUIRED: 401,
  ADMIN_AUTH_INVALID: 401,
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
  PUBLIC_KEY_INVALID: 400,
  // WebAuthn ceremonies
  CHALLENGE_UNKNOWN: 400,
  CHALLENGE_EXPIRED: 400,
  WEBAUTHN_ORIGIN_MISMATCH: 400,
  WEBAUTHN_RP_ID_MISMATCH: 400,
  WEBAUTHN_VERIFICATION_FAILED: 400,
  WEBAUTHN_COUNTER_REGRESSED: 403,
  WEBAUTHN_USER_VERIFICATION_REQUIRED: 403,
  CREDENTIAL_UNKNOWN: 401,
  CREDENTIAL_REVOKED: 403,
  CREDENTIAL_NOT_DEVICE_BOUND: 403,
  CREDENTIAL_AAGUID_NOT_ALLOWED: 403,
  CREDENTIAL_ALREADY_REGISTERED: 409,
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
  // Agent
  /** The agent's event outbox is at its cap: new events are refused, never dropped silently. */
  OUTBOX_FULL: 507,
  /** The OS credential store (keytar over Secret Service / Keychain / Credential Vault) cannot be used. */
  SECRET_STORE_UNAVAILABLE: 503,
  // Server
  SHUTTING_DOWN: 503,
  INTERNAL: 500,
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
