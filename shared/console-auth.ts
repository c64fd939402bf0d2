/**
 * Console request signatures. Every HTTP call and the WebSocket upgrade a console makes carries:
 *   x-baton-console    the console id (absent only on enrolment, which signs with the new key)
 *   x-baton-timestamp  epoch milliseconds when signed
 *   x-baton-nonce      16+ random bytes, base64url, never reused
 *   x-baton-signature  ECDSA P-256 / SHA-256 over `signingInput(...)`, IEEE P1363 (r‖s), base64url
 * The backend refuses a timestamp outside `SIGNATURE_WINDOW_MS` of its clock and a nonce it has
 * seen inside that window, so a captured request cannot be replayed.
 */
export const CONSOLE_HEADERS = {
  console: 'x-baton-console',
  timestamp: 'x-baton-timestamp',
  nonce: 'x-baton-nonce',
  signature: 'x-baton-signature',
} as const;

export const SIGNATURE_SCHEME = 'BATON-CONSOLE-SIG-V1';
export const SIGNATURE_WINDOW_MS = 5 * 60 * 1000;
export const NONCE_PATTERN = /^[A-Za-z0-9_-]{22,64}$/;

export interface SigningParts {
  method: string;
  /** Path with query string, exactly as sent. */
  path: string;
  consoleId: string;
  timestamp: number;
  nonce: string;
  /** Lower-case hex SHA-256 of the raw request body (of the empty string when there is none). */
  bodySha256: string;
}

export function signingInput(parts: SigningParts): string {
  return [
    SIGNATURE_SCHEME,
    parts.method.toUpperCase(),
    parts.path,
    parts.consoleId,
    String(parts.timestamp),
    parts.nonce,
    parts.bodySha256,
  ].join('\n');
}

/** Console id placeholder signed during enrolment, before the console has an id. */
export const ENROLMENT_CONSOLE_ID = '-';
