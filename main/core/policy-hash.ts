import { createHash } from 'node:crypto';
import { canonicalJson } from '../../shared/canonical-json.js';
import type { Policy } from '../../shared/policy.js';

const memo = new WeakMap<Policy, string>();

/**
 * A policy's content hash (`PolicyHashSchema` in shared/protocol.ts): lower-case hex SHA-256 of its
 * canonical JSON. Computed from the document itself, never read from where it was stored, so a
 * cached policy edited in place no longer matches the backend's.
 */
export function hashPolicy(policy: Policy): string {
  let hash = memo.get(policy);
  if (hash === undefined) {
    hash = createHash('sha256').update(canonicalJson(policy)).digest('hex');
    memo.set(policy, hash);
  }
  return hash;
}
