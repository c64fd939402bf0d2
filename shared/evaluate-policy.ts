import { LEVEL_PROFILES, isAtLeast, levelRank, type AssuranceLevel } from './levels.js';
import type { Policy } from './policy.js';

/** The pseudo-action a sign-in is evaluated as: allowed when the channel accepts the level. */
export const SIGN_IN_ACTION = 'session.sign-in';

/** What the evaluator knows about the operator's current authentication. */
export interface DecisionContext {
  channel: string;
  /** Level of the event that last authenticated the session; null when nobody is signed in. */
  level: AssuranceLevel | null;
  /** When that authentication happened (epoch ms). */
  authTime: number | null;
  /** When the session started (epoch ms), for the lifetime limit. */
  sessionStartedAt?: number | null;
  now: number;
}

/** Stable reason codes: they appear in events and in the UI's explanation. */
export type DecisionReason =
  | 'action-allowed'
  | 'sign-in-allowed'
  | 'action-unknown'
  | 'channel-unknown'
  | 'action-not-on-channel'
  | 'level-not-allowed-on-channel'
  | 'level-unreachable-on-channel'
  | 'not-authenticated'
  | 'level-below-required'
  | 'authentication-too-old'
  | 'session-lifetime-exceeded'
  /** A break-glass session asked for an action outside the policy's `breakGlass.actions` (never by the evaluator). */
  | 'break-glass-action-not-allowed'
  /** Added by a backend node whose view of revocations may be stale, on a `best-effort` channel (never by the evaluator). */
  | 'stale-node';

export type Decision =
  | { outcome: 'allow'; reasons: DecisionReason[] }
  | { outcome: 'step-up'; level: AssuranceLevel; maxAgeSeconds: number; reasons: DecisionReason[] }
  | { outcome: 'deny'; reasons: DecisionReason[] };

/**
 * Effective session lifetime for a level on a channel: the channel's limit, capped by NIST
 * 800-63B rev 4 for the level (AAL3 shall be at most 12 h, AAL2 should be at most 24 h).
 */
export function effectiveMaxSessionSeconds(policy: Policy, channel: string, level: AssuranceLevel): number | null {
  const channelPolicy = Object.hasOwn(policy.channels, channel) ? policy.channels[channel] : undefined;
  if (channelPolicy === undefined) return null;
  return Math.min(channelPolicy.maxSessionSeconds, LEVEL_PROFILES[level].nistMaxSessionSeconds);
}

/**
 * The one policy evaluator, pure and shared by the backend and the agent:
 * `(policy, context, action) → allow | step-up(level, maxAge) | deny`, always with reasons.
 * Unknown channels and actions are denied: nothing is allowed by omission.
 */
export function evaluatePolicy(policy: Policy, context: DecisionContext, action: string): Decision {
  // Own members only: a channel named like an Object.prototype member ("constructor") is unknown.
  const channel = Object.hasOwn(policy.channels, context.channel) ? policy.channels[context.channel] : undefined;
  if (channel === undefined) return { outcome: 'deny', reasons: ['channel-unknown'] };

  if (action === SIGN_IN_ACTION) {
    if (context.level === null) return { outcome: 'deny', reasons: ['not-authenticated'] };
    return channel.allowedLevels.includes(context.level)
      ? { outcome: 'allow', reasons: ['sign-in-allowed'] }
      : { outcome: 'deny', reasons: ['level-not-allowed-on-channel'] };
  }

  const rule = Object.prototype.hasOwnProperty.call(policy.actions, action) ? policy.actions[action] : undefined;
  if (rule === undefined) return { outcome: 'deny', reasons: ['action-unknown'] };
  if (rule.channels !== undefined && !rule.channels.includes(context.channel)) {
    return { outcome: 'deny', reasons: ['action-not-on-channel'] };
  }
  const highestOnChannel = [...channel.allowedLevels].sort((a, b) => levelRank(b) - levelRank(a))[0];
  if (highestOnChannel === undefined || !isAtLeast(highestOnChannel, rule.level)) {
    return { outcome: 'deny', reasons: ['level-unreachable-on-channel'] };
  }

  const stepUp = (reasons: DecisionReason[]): Decision => ({
    outcome: 'step-up',
    level: rule.level,
    maxAgeSeconds: rule.maxAgeSeconds,
    reasons,
  });

  if (context.level === null || context.authTime === null) return stepUp(['not-authenticated']);

  if (context.sessionStartedAt !== undefined && context.sessionStartedAt !== null) {
    const limit = effectiveMaxSessionSeconds(policy, context.channel, context.level) ?? 0;
    if (context.now - context.sessionStartedAt > limit * 1000) {
      return { outcome: 'deny', reasons: ['session-lifetime-exceeded'] };
    }
  }

  const reasons: DecisionReason[] = [];
  if (!isAtLeast(context.level, rule.level)) reasons.push('level-below-required');
  if (context.now - context.authTime > rule.maxAgeSeconds * 1000) reasons.push('authentication-too-old');
  if (reasons.length > 0) return stepUp(reasons);
  return { outcome: 'allow', reasons: ['action-allowed'] };
}
