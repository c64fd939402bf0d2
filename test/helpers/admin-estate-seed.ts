/**
 * Records for seeding an estate straight into a test backend's store (the admin console's tests at
 * estate scale: thousands of rows in seconds, no ceremony each). Each gives the fields a test does not
 * care about their plain defaults; a test names what it asserts.
 */
import type {
  ConsoleRecord,
  CredentialRecord,
  OperatorRecord,
  SessionRecord,
} from '../../backend/store/repositories.js';

export function consoleRecord(
  fields: Pick<ConsoleRecord, 'id' | 'name' | 'site' | 'enrolledAt'> & Partial<ConsoleRecord>,
): ConsoleRecord {
  return {
    channel: 'branch-kiosk',
    publicJwk: '{}',
    jkt: `jkt-${fields.id}`,
    lastSeenAt: null,
    policyVersion: 1,
    revocationEpoch: 0,
    revokedAt: null,
    revokedReason: null,
    ...fields,
  };
}

export function operatorRecord(
  fields: Pick<OperatorRecord, 'id' | 'displayName' | 'createdAt'> & Partial<OperatorRecord>,
): OperatorRecord {
  return {
    roles: ['teller'],
    webauthnUserId: `wa-${fields.id}`,
    failedAttempts: 0,
    revokedAt: null,
    revokedReason: null,
    ...fields,
  };
}

/** A passkey (a key that signs nothing: its public key is zeros) registered on a console. */
export function passkeyRecord(
  fields: Pick<CredentialRecord, 'id' | 'operatorId' | 'registeredOnConsole' | 'createdAt'> & Partial<CredentialRecord>,
): CredentialRecord {
  return {
    publicKey: new Uint8Array(65),
    counter: 0,
    transports: ['usb'],
    deviceBound: true,
    backedUp: false,
    aaguid: '00000000-0000-0000-0000-000000000000',
    attestationFmt: 'none',
    attestationTrust: 'none',
    lastUsedAt: null,
    revokedAt: null,
    revokedReason: null,
    suspendedAt: null,
    suspendedReason: null,
    ...fields,
  };
}

/** A live session, an hour long, started at `startedAt`. */
export function sessionRecord(
  fields: Pick<SessionRecord, 'id' | 'operatorId' | 'consoleId' | 'credentialId' | 'startedAt'> &
    Partial<SessionRecord>,
): SessionRecord {
  return {
    channel: 'branch-kiosk',
    level: 'verified',
    authTime: fields.startedAt,
    expiresAt: fields.startedAt + 3_600_000,
    state: 'active',
    suspendedAt: null,
    endedAt: null,
    endReason: null,
    ...fields,
  };
}
