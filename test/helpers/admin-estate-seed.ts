/**
 * Records for seeding an estate straight into a test backend's store (the admin console's tests at
 * estate scale: thousands of rows in seconds, no ceremony each). Each gives the fields a test does not
 * care about their plain defaults; a test names what it asserts.
 */
import type { BatonDatabase } from '../../backend/store/kysely-schema.js';
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

/** An upstream Shared Signals transmitter's row (pinned keys, never used yet). */
export function transmitterRow(
  fields: Pick<BatonDatabase['ssf_transmitters'], 'id' | 'name' | 'issuer' | 'created_at'> &
    Partial<BatonDatabase['ssf_transmitters']>,
): Omit<BatonDatabase['ssf_transmitters'], 'accepted' | 'status'> & { status: string } {
  return {
    audience: 'baton',
    configuration_url: null,
    jwks_uri: null,
    pinned_jwks: '{"keys":[]}',
    push_token_hash: `push-${fields.id}`,
    max_age_seconds: 300,
    stream_id: null,
    created_by: 'operator:op_e2e123',
    disabled_at: null,
    last_set_at: null,
    last_jti: null,
    last_action: null,
    status_reason: null,
    status_changed_at: null,
    status_changed_by: null,
    upstream_status: null,
    verify_state: null,
    verify_requested_at: null,
    verify_received_at: null,
    verify_jti: null,
    verify_error: null,
    ...fields,
    // Disabled (migration 27's status) when it has a disabled_at, as the migration marks the rows before it.
    status: fields.disabled_at !== null && fields.disabled_at !== undefined ? 'disabled' : 'enabled',
  };
}

/** A Shared Signals stream's row: polled by its receiver, nothing delivered yet. */
export function streamRow(
  fields: Pick<BatonDatabase['ssf_streams'], 'id' | 'receiver_id' | 'status' | 'created_at'> & { audience: string },
): Omit<BatonDatabase['ssf_streams'], 'delivered_count'> {
  const { audience, ...row } = fields;
  return {
    config: JSON.stringify({ aud: audience, delivery: { method: 'urn:ietf:rfc:8936' }, events_requested: [] }),
    status_reason: null,
    updated_at: row.created_at,
    lease_owner: null,
    lease_until: null,
    failing_since: null,
    last_error: null,
    last_delivered_at: null,
    verify_jti: null,
    verify_requested_at: null,
    verify_accepted_at: null,
    ...row,
  };
}
