import { canonicalJson } from '../../shared/canonical-json.js';
import { PolicySchema, type PolicyVersion } from '../../shared/policy.js';
import { sha256Hex } from '../crypto/secrets.js';

const memo = new WeakMap<PolicyVersion, string>();

/**
 * The content hash of a published policy (see `PolicyHashSchema` in shared/protocol.ts), over the
 * document as `PolicySchema` parses it, so the agent, which parses what it receives, computes the
 * same value. Memoised per published version: every console's hello compares against it.
 */
export function policyHash(version: PolicyVersion): string {
  let hash = memo.get(version);
  if (hash === undefined) {
    // A stored document the current schema no longer reads is hashed as stored: a hello must never fail on it.
    const parsed = PolicySchema.safeParse(version.policy);
    hash = sha256Hex(canonicalJson(parsed.success ? parsed.data : version.policy));
    memo.set(version, hash);
  }
  return hash;
}
