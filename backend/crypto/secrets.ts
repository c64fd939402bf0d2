import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';

/** Random material and one-way hashes for tokens and codes. Secrets are stored only as hashes. */

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A bearer secret with 256 bits of randomness, prefixed so a leaked one is recognisable. */
export function newSecretToken(prefix: string): string {
  return `${prefix}_${randomBytes(32).toString('base64url')}`;
}

const CODE_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789'; // 32 symbols, no 0/O/1/I

/**
 * A human-typed one-time code: 16 symbols from a 32-letter alphabet (80 bits) in groups of four,
 * e.g. `K7QM-2XHD-9PRA-WC4F`. Long enough that guessing is hopeless within its lifetime.
 */
export function newEnrolmentCode(): string {
  const bytes = randomBytes(16);
  let out = '';
  for (let i = 0; i < 16; i++) {
    out += CODE_ALPHABET[(bytes[i] ?? 0) & 31];
    if (i % 4 === 3 && i < 15) out += '-';
  }
  return out;
}

/** Normalises what a person typed: upper case, separators and spaces removed, then regrouped. */
export function normaliseEnrolmentCode(typed: string): string {
  const compact = typed.toUpperCase().replace(/[\s-]/g, '');
  return compact.replace(/(.{4})(?=.)/g, '$1-');
}

export function newId(prefix: string): string {
  return `${prefix}_${randomUUID().replace(/-/g, '')}`;
}

export function constantTimeEqualHex(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a, 'hex'), Buffer.from(b, 'hex'));
}
