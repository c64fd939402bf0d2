import { verify as verifySignature, type KeyObject } from 'node:crypto';
import { VerificationError } from './errors.js';
import { verifyEs256Native } from './es256-native.js';

/** A compact JWS split and decoded, not yet verified. */
export interface ParsedJws {
  /** Frozen, and shared by every token with the same header text. */
  header: Readonly<{ alg?: unknown; typ?: unknown; kid?: unknown }>;
  payload: Record<string, unknown>;
  signingInput: string;
  signature: Buffer;
}

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

/** The three base64url parts of a compact JWS, checked in one pass over the token. */
const COMPACT_JWS = /^[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;

/** Splits a compact JWS (three base64url parts) and decodes its header and payload; TOKEN_MALFORMED otherwise. */
export function parseJws(token: string): ParsedJws {
  if (token.length > 16_384) throw new VerificationError('TOKEN_MALFORMED', 'The token is too long');
  if (!COMPACT_JWS.test(token)) throw new VerificationError('TOKEN_MALFORMED', 'The token is not a compact JWS');
  const first = token.indexOf('.');
  const second = token.indexOf('.', first + 1);
  return {
    header: header(token.slice(0, first)),
    payload: json(token.slice(first + 1, second), 'payload'),
    // The bytes signed, as they are in the token (no copy joined from the parts).
    signingInput: token.slice(0, second),
    signature: Buffer.from(token.slice(second + 1), 'base64url'),
  };
}

/**
 * ES256 (P-256, SHA-256, the raw 64-byte r‖s signature of RFC 7518 §3.4), with OpenSSL, synchronously: through the
 * native addon when it is in use (`es256Backend`), else through node:crypto.
 */
export function verifyEs256(jws: ParsedJws, key: KeyObject): boolean {
  if (jws.signature.length !== 64) return false;
  return verifyEs256Native(key, jws.signingInput, jws.signature) ?? verifyEs256WithNodeCrypto(jws, key);
}

/** The same check through `node:crypto.verify` (it sets up OpenSSL's contexts again on every call). */
export function verifyEs256WithNodeCrypto(jws: ParsedJws, key: KeyObject): boolean {
  if (jws.signature.length !== 64) return false;
  // ASCII only (checked above): latin1 is the same bytes, without UTF-8's encoder.
  return verifySignature(
    'sha256',
    Buffer.from(jws.signingInput, 'latin1'),
    { key, dsaEncoding: 'ieee-p1363' },
    jws.signature,
  );
}
