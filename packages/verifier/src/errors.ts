import { bearerChallenge } from './challenge.js';

/**
 * Stable codes of a refused token. Each maps to an HTTP status and the RFC 6750 / RFC 9470 error
 * of its `WWW-Authenticate` challenge.
 */
export const VERIFICATION_ERRORS = {
  /** No `Authorization: Bearer` token on the request. */
  TOKEN_MISSING: { status: 401, error: 'invalid_request' },
  /** Not a JWT, not an action token (`typ`), or a claim of the wrong shape. */
  TOKEN_MALFORMED: { status: 401, error: 'invalid_token' },
  /** Signed with a key Baton's JWKS does not have (also after one refetch for a rotation). */
  TOKEN_KEY_UNKNOWN: { status: 401, error: 'invalid_token' },
  /** The signature does not verify. */
  TOKEN_SIGNATURE_INVALID: { status: 401, error: 'invalid_token' },
  TOKEN_EXPIRED: { status: 401, error: 'invalid_token' },
  /** `iat`/`nbf` in the future beyond the clock tolerance. */
  TOKEN_NOT_YET_VALID: { status: 401, error: 'invalid_token' },
  TOKEN_ISSUER_MISMATCH: { status: 401, error: 'invalid_token' },
  /** The token is for another app server (`aud`). */
  TOKEN_AUDIENCE_MISMATCH: { status: 401, error: 'invalid_token' },
  /** The token is for another action than the one asked. */
  TOKEN_ACTION_MISMATCH: { status: 403, error: 'insufficient_scope' },
  /** Its session, console, operator, passkey or service account was revoked (pushed by Baton). */
  TOKEN_REVOKED: { status: 401, error: 'invalid_token' },
  /** The revocation stream has been down longer than `maxRevocationLagMs`: no token is accepted until it is back. */
  REVOCATIONS_UNAVAILABLE: { status: 503, error: 'invalid_token' },
  /** Baton's JWKS could not be fetched (network, timeout, a bad answer): nothing can be verified now. */
  JWKS_UNAVAILABLE: { status: 503, error: 'invalid_token' },
  /** The level is below the action's, or the authentication is older than its max age: step up (RFC 9470). */
  INSUFFICIENT_USER_AUTHENTICATION: { status: 401, error: 'insufficient_user_authentication' },
  /** A service account's token for an action the app keeps for people (`allowServices` not set). */
  SERVICE_NOT_ALLOWED: { status: 403, error: 'insufficient_scope' },
  /** The app asked to verify an action it did not configure (a programming error, refused). */
  ACTION_NOT_CONFIGURED: { status: 403, error: 'insufficient_scope' },
} as const;
export type VerificationCode = keyof typeof VERIFICATION_ERRORS;

export class VerificationError extends Error {
  readonly code: VerificationCode;
  /** RFC 9470: the acr values that would satisfy the action (space-separated), for a step-up. */
  readonly acrValues: string | undefined;
  /** RFC 9470: the longest authentication age accepted, in seconds, for a step-up. */
  readonly maxAge: number | undefined;

  constructor(
    code: VerificationCode,
    message: string,
    options: { cause?: unknown; acrValues?: string; maxAge?: number } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'VerificationError';
    this.code = code;
    this.acrValues = options.acrValues;
    this.maxAge = options.maxAge;
  }

  get status(): number {
    return VERIFICATION_ERRORS[this.code].status;
  }

  /** The `WWW-Authenticate` header value for this refusal. */
  challenge(realm?: string): string {
    return bearerChallenge({
      error: VERIFICATION_ERRORS[this.code].error,
      description: this.message,
      acrValues: this.acrValues,
      maxAge: this.maxAge,
      realm,
    });
  }

  /** The JSON body the middleware answers with. */
  toJSON(): { error: { code: VerificationCode; message: string; acr_values?: string; max_age?: number } } {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.acrValues === undefined ? {} : { acr_values: this.acrValues }),
        ...(this.maxAge === undefined ? {} : { max_age: this.maxAge }),
      },
    };
  }
}
