import { sign as signBytes, verify as verifyBytes, type KeyObject } from 'node:crypto';

/**
 * ES256 compact JWS (RFC 7515 §7.1, RFC 7518 §3.4) with OpenSSL directly, synchronously: what jose
 * does underneath, without WebCrypto's thread-pool round trip and its per-call key handling. The
 * token exchange verifies one (the subject token) and signs one (the action token) per issuance.
 */

const B64URL = /^[A-Za-z0-9_-]+$/;
/** No Baton token comes near this; anything longer is refused before it is decoded. */
const MAX_TOKEN_LENGTH = 16_384;

/** Signs `payload` under `header` (whose `alg` must be ES256) with a P-256 private key. */
export function signEs256(header: { alg: 'ES256'; typ: string; kid: string }, payload: object, key: KeyObject): string {
  const input = `${b64json(header)}.${b64json(payload)}`;
  const signature = signBytes('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

export interface VerifiedJws {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
}

/** Why a compact JWS was refused (the caller maps it to its own error code). */
export class JwsRejected extends Error {
  override readonly name = 'JwsRejected';
}

/**
 * A compact JWS split and decoded, header checked strictly: `alg` exactly ES256 (no `none`, no
 * other algorithm, whatever the key), `typ` exactly `typ`, no `crit` (RFC 7515 §4.1.11: Baton
 * understands no extension, so a token naming one is refused, as jose does), no `b64`, a string
 * `kid`. The signature is NOT verified yet: pass the result to `verifyEs256` with the key of `kid`.
 */
export function parseEs256(
  token: string,
  typ: string | undefined,
): VerifiedJws & { kid: string; input: string; signature: Buffer } {
  if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) throw new JwsRejected('not a compact JWS');
  const first = token.indexOf('.');
  const second = token.indexOf('.', first + 1);
  if (first < 0 || second < 0 || token.indexOf('.', second + 1) >= 0) throw new JwsRejected('not a compact JWS');
  const h = token.slice(0, first);
  const p = token.slice(first + 1, second);
  const s = token.slice(second + 1);
  if (!B64URL.test(h) || !B64URL.test(p) || !B64URL.test(s)) throw new JwsRejected('not a compact JWS');
  const header = jsonObject(h, 'header');
  if (header.alg !== 'ES256') throw new JwsRejected('not signed ES256');
  if (typ !== undefined && header.typ !== typ) throw new JwsRejected(`typ is not "${typ}"`);
  if (header.crit !== undefined || header.b64 !== undefined) throw new JwsRejected('unsupported header parameter');
  if (typeof header.kid !== 'string') throw new JwsRejected('no kid');
  const payload = jsonObject(p, 'payload');
  return { header, payload, kid: header.kid, input: token.slice(0, second), signature: Buffer.from(s, 'base64url') };
}

/** Whether the ES256 signature (raw 64-byte r‖s) of a parsed JWS verifies under `key`. */
export function verifyEs256(jws: { input: string; signature: Buffer }, key: KeyObject): boolean {
  if (jws.signature.length !== 64) return false;
  return verifyBytes('sha256', Buffer.from(jws.input), { key, dsaEncoding: 'ieee-p1363' }, jws.signature);
}

function b64json(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function jsonObject(part: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw new JwsRejected(`the ${what} is not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new JwsRejected(`the ${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}
