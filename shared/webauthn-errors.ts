import type { ErrorCode } from './errors.js';

/**
 * The stable codes a refused WebAuthn response maps to. The backend checks the precise causes itself
 * before calling @simplewebauthn/server; anything the library still refuses is mapped here, in one
 * place, so the backend and the agent give the same cause the same code.
 */
export const WEBAUTHN_REFUSAL_CODES = [
  'WEBAUTHN_WRONG_CEREMONY_TYPE',
  'WEBAUTHN_ORIGIN_MISMATCH',
  'WEBAUTHN_RP_ID_MISMATCH',
  'WEBAUTHN_USER_PRESENCE_REQUIRED',
  'WEBAUTHN_USER_VERIFICATION_REQUIRED',
  'WEBAUTHN_COUNTER_REGRESSED',
  'WEBAUTHN_VERIFICATION_FAILED',
] as const satisfies readonly ErrorCode[];

export type WebAuthnRefusalCode = (typeof WEBAUTHN_REFUSAL_CODES)[number];

/**
 * @simplewebauthn/server 14's error messages, most specific first. The library throws plain `Error`s
 * without codes; its tests pin these wordings, and `webauthn-errors.test.ts` pins them here too, so
 * an upgrade that rewords one fails a test instead of silently answering WEBAUTHN_VERIFICATION_FAILED.
 */
const LIBRARY_MESSAGES: readonly (readonly [RegExp, WebAuthnRefusalCode])[] = [
  [/^Unexpected (registration|authentication) response type/, 'WEBAUTHN_WRONG_CEREMONY_TYPE'],
  [/^User presence was required|^User not present/, 'WEBAUTHN_USER_PRESENCE_REQUIRED'],
  [/^User verification (was )?required/, 'WEBAUTHN_USER_VERIFICATION_REQUIRED'],
  [/^Response counter value \d+ was lower than expected/, 'WEBAUTHN_COUNTER_REGRESSED'],
  [/response origin|top origin/, 'WEBAUTHN_ORIGIN_MISMATCH'],
  [/^Unexpected RP ID hash/, 'WEBAUTHN_RP_ID_MISMATCH'],
];

/** The stable code for an error thrown by @simplewebauthn/server's verify functions. */
export function webauthnRefusalCode(error: unknown): WebAuthnRefusalCode {
  const message = error instanceof Error ? error.message : String(error);
  for (const [pattern, code] of LIBRARY_MESSAGES) if (pattern.test(message)) return code;
  return 'WEBAUTHN_VERIFICATION_FAILED';
}

/** The WebAuthn flags a relying party reads from authenticatorData (WebAuthn §6.1). */
export interface CeremonyFacts {
  /** clientDataJSON.type */
  type: string;
  userPresent: boolean;
  userVerified: boolean;
}

/**
 * The checks that have their own codes, made before the signature is verified so a refusal says
 * which rule failed: the ceremony type, user presence, and user verification when required.
 * Returns undefined when none of them refuses.
 */
export function ceremonyRefusal(
  facts: CeremonyFacts,
  expected: { type: 'webauthn.create' | 'webauthn.get'; requireUserVerification: boolean },
): { code: WebAuthnRefusalCode; message: string } | undefined {
  if (facts.type !== expected.type) {
    return {
      code: 'WEBAUTHN_WRONG_CEREMONY_TYPE',
      message: `clientDataJSON.type is "${facts.type}", expected "${expected.type}"`,
    };
  }
  if (!facts.userPresent) {
    return {
      code: 'WEBAUTHN_USER_PRESENCE_REQUIRED',
      message: 'The authenticator did not set the user-present (UP) flag: nobody touched it',
    };
  }
  if (expected.requireUserVerification && !facts.userVerified) {
    return {
      code: 'WEBAUTHN_USER_VERIFICATION_REQUIRED',
      message: 'User verification (PIN or biometric) was required, but the authenticator did not perform it',
    };
  }
  return undefined;
}
