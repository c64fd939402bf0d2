import { verify as verifySignature, type KeyObject } from 'node:crypto';
import { VerificationError } from './errors.js';

/** A compact JWS split and decoded, not yet verified. */
export interface ParsedJws {
  /** Frozen, and shared by every token with the same header text. */
  header: Readonly<{ alg?: unknown; typ?: unknown; kid?: unknown }>;
  payload: Record<string, unknown>;
  signingInput: string;
  signature: Buffer;
}

const B64URL = /^[A-Za-z0-9_-]*$/;

function json(part: string, what: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new VerificationError('TOKEN_MALFORMED', `The token's ${what} is not a JSON object`);
}

/**
 * Decoded headers by their base64url text: every token of one signing key carries the same header,
 * so it is decoded once (frozen: callers cannot alter what is remembered, and no copy is made per
 * token). Bounded: a flood of distinct headers only ever replaces the few remembered.
 */
const headers = new Map<string, Readonly<Record<string, unknown>>>();
const MAX_HEADERS = 32;

function header(part: string): ParsedJws['header'] {
  let known = headers.get(part);
  if (known === undefined) {
    known = Object.freeze(json(part, 'header'));
    if (headers.size >= MAX_HEADERS) headers.delete(headers.keys().next().value as string);
    headers.set(part, known);
  }
  return known;
}

/** Splits a compact JWS (three base64url parts) and decodes its header and payload; TOKEN_MALFORMED otherwise. */
export function parseJws(token: string): ParsedJws {
  if (token.length > 16_384) throw new VerificationError('TOKEN_MALFORMED', 'The token is too long');
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((p) => B64URL.test(p))) {
    throw new VerificationError('TOKEN_MALFORMED', 'The token is not a compact JWS');
  }
  const [h, p, s] = parts as [string, string, string];
  return {
    header: header(h),
    payload: json(p, 'payload'),
    signingInput: `${h}.${p}`,
    signature: Buffer.from(s, 'base64url'),
  };
}

/** ES256 (P-256, SHA-256, the raw 64-byte r‖s signature of RFC 7518 §3.4), with OpenSSL, synchronously. */
export function verifyEs256(jws: ParsedJws, key: KeyObject): boolean {
  if (jws.signature.length !== 64) return false;
  return verifySignature('sha256', Buffer.from(jws.signingInput), { key, dsaEncoding: 'ieee-p1363' }, jws.signature);
}
