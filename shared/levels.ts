/**
 * Assurance levels. A level comes from one authentication event, never from the account:
 * - `presence`: a user-presence tap on a credential (AAL1, single factor, phishing-resistant);
 * - `verified`: the same with user verification (AAL2, `phr`);
 * - `hardware`: user verification on a device-bound, attested authenticator whose AAGUID is on the
 *   policy's allow-list (AAL3, `phrh`).
 */
export const ASSURANCE_LEVELS = ['presence', 'verified', 'hardware'] as const;
export type AssuranceLevel = (typeof ASSURANCE_LEVELS)[number];

export interface LevelProfile {
  /** NIST SP 800-63B authenticator assurance level. */
  aal: 1 | 2 | 3;
  /** OpenID `acr` value. */
  acr: string;
  /** OpenID `amr` values (RFC 8176). */
  amr: readonly string[];
  /** NIST 800-63B rev 4 overall session limit for this AAL, in seconds. */
  nistMaxSessionSeconds: number;
  /** NIST 800-63B rev 4 inactivity limit for this AAL, in seconds. */
  nistMaxIdleSeconds: number;
}

export const LEVEL_PROFILES: Readonly<Record<AssuranceLevel, LevelProfile>> = {
  presence: {
    aal: 1,
    acr: 'urn:baton:acr:presence',
    amr: ['hwk', 'user'],
    nistMaxSessionSeconds: 30 * 24 * 3600,
    nistMaxIdleSeconds: 30 * 24 * 3600,
  },
  verified: {
    aal: 2,
    acr: 'phr',
    amr: ['hwk', 'user', 'mfa'],
    nistMaxSessionSeconds: 24 * 3600,
    nistMaxIdleSeconds: 3600,
  },
  hardware: {
    aal: 3,
    acr: 'phrh',
    amr: ['hwk', 'user', 'mfa'],
    nistMaxSessionSeconds: 12 * 3600,
    nistMaxIdleSeconds: 15 * 60,
  },
};

export function levelRank(level: AssuranceLevel): number {
  return ASSURANCE_LEVELS.indexOf(level);
}

export function isAtLeast(level: AssuranceLevel, required: AssuranceLevel): boolean {
  return levelRank(level) >= levelRank(required);
}

export interface AuthenticationFacts {
  userVerified: boolean;
  /** Not backup-eligible: the private key cannot be synced off the authenticator. */
  deviceBound: boolean;
  /** Registered with an attestation certificate chained to a configured vendor root (model evidence). */
  attested: boolean;
  /** The credential's AAGUID is on the policy's allow-list. */
  aaguidAllowed: boolean;
}

/**
 * Works out the level of one authentication event from the authenticator's flags and what is known
 * of the credential. Synced (backup-eligible) passkeys are exportable: never above `verified`.
 */
export function levelFromAuthentication(facts: AuthenticationFacts): AssuranceLevel {
  if (!facts.userVerified) return 'presence';
  if (facts.deviceBound && facts.attested && facts.aaguidAllowed) return 'hardware';
  return 'verified';
}
