/**
 * Authenticator models as the FIDO Metadata Service (MDS3) describes them: the statuses a BLOB
 * entry can report, the certification levels they imply, and what the admin API answers about a
 * model. Shared by the policy schema, the backend and the admin console (types and constants only).
 */

/** `AuthenticatorStatus` values of FIDO Metadata Service v3 (§3.1.4). */
export const AUTHENTICATOR_STATUSES = [
  'NOT_FIDO_CERTIFIED',
  'FIDO_CERTIFIED',
  'USER_VERIFICATION_BYPASS',
  'ATTESTATION_KEY_COMPROMISE',
  'USER_KEY_REMOTE_COMPROMISE',
  'USER_KEY_PHYSICAL_COMPROMISE',
  'UPDATE_AVAILABLE',
  'REVOKED',
  'SELF_ASSERTION_SUBMITTED',
  'FIDO_CERTIFIED_L1',
  'FIDO_CERTIFIED_L1plus',
  'FIDO_CERTIFIED_L2',
  'FIDO_CERTIFIED_L2plus',
  'FIDO_CERTIFIED_L3',
  'FIDO_CERTIFIED_L3plus',
] as const;
export type AuthenticatorStatus = (typeof AUTHENTICATOR_STATUSES)[number];

/**
 * Statuses refused by default (policy `credentials.refuseStatuses` when absent): the model's
 * certification was revoked, or its user verification, attestation key or user keys were reported
 * compromised. The same set SimpleWebAuthn treats as compromised, plus `REVOKED`.
 */
export const DEFAULT_REFUSED_STATUSES: readonly AuthenticatorStatus[] = [
  'REVOKED',
  'USER_VERIFICATION_BYPASS',
  'ATTESTATION_KEY_COMPROMISE',
  'USER_KEY_REMOTE_COMPROMISE',
  'USER_KEY_PHYSICAL_COMPROMISE',
];

/** FIDO certification levels, lowest first; `none` is not certified (or certification revoked). */
export const CERTIFICATION_LEVELS = ['none', 'L1', 'L1plus', 'L2', 'L2plus', 'L3', 'L3plus'] as const;
export type CertificationLevel = (typeof CERTIFICATION_LEVELS)[number];

export function certificationRank(level: CertificationLevel): number {
  return CERTIFICATION_LEVELS.indexOf(level);
}

/**
 * The certification level a status sets, or undefined for statuses that say nothing about
 * certification (compromises, updates). `FIDO_CERTIFIED` is the pre-level name of L1.
 */
export function certificationOf(status: string): CertificationLevel | undefined {
  switch (status) {
    case 'FIDO_CERTIFIED':
    case 'FIDO_CERTIFIED_L1':
      return 'L1';
    case 'FIDO_CERTIFIED_L1plus':
      return 'L1plus';
    case 'FIDO_CERTIFIED_L2':
      return 'L2';
    case 'FIDO_CERTIFIED_L2plus':
      return 'L2plus';
    case 'FIDO_CERTIFIED_L3':
      return 'L3';
    case 'FIDO_CERTIFIED_L3plus':
      return 'L3plus';
    case 'NOT_FIDO_CERTIFIED':
    case 'SELF_ASSERTION_SUBMITTED':
    case 'REVOKED':
      return 'none';
    default:
      return undefined;
  }
}

/** One status report of a model, as stored from the BLOB. */
export interface StatusReportView {
  status: string;
  effectiveDate: string | null;
  authenticatorVersion: number | null;
  url: string | null;
}

/** What the admin API says about an authenticator model (by AAGUID) from the loaded metadata. */
export interface AuthenticatorModelView {
  aaguid: string;
  /** The metadata statement's `description`, e.g. "YubiKey 5 Series with NFC". */
  model: string;
  /** From the latest status report that sets one. */
  certification: CertificationLevel;
  /** The latest status report's status. */
  status: string;
  statusReports: StatusReportView[];
  timeOfLastStatusChange: string | null;
  /** The `no` of the BLOB this came from. */
  blobNo: number;
}

/** The metadata BLOB currently loaded (GET /v1/admin/authenticator-metadata). */
export interface AuthenticatorMetadataView {
  loaded: boolean;
  no: number | null;
  /** The date (YYYY-MM-DD) by which FIDO promised a newer BLOB. */
  nextUpdate: string | null;
  /** Past `nextUpdate`: the data is still used, but an admin should supply a newer BLOB. */
  stale: boolean;
  loadedAt: number | null;
  loadedBy: string | null;
  /** SHA-256 (hex) of the BLOB file as supplied. */
  sha256: string | null;
  /** How many FIDO2 models (entries with an AAGUID) it holds. */
  models: number;
}
