/**
 * The tables as the Kysely repositories see them (the same names as the SQLite migrations in
 * migrations.ts and the PostgreSQL ones in postgres-migrations.ts), the context every repository
 * runs in, and the checks applied to values read back (as the better-sqlite3 classes do).
 */
import { sql, type Generated, type Kysely } from 'kysely';

type Ms = number;

export interface BatonDatabase {
  meta: { key: string; value: string };
  admin_tokens: { token_hash: string; label: string; created_at: Ms; disabled_at: Ms | null };
  /** Admin API tokens for scripts (migration 16, backend/services/admin-api-tokens.ts). */
  admin_api_tokens: {
    id: string;
    token_hash: string;
    label: string;
    scope: string;
    created_by: string;
    created_at: Ms;
    expires_at: Ms;
    last_used_at: Ms | null;
    uses: Generated<number>;
    revoked_at: Ms | null;
    revoked_by: string | null;
    revoked_reason: string | null;
  };
  consoles: {
    id: string;
    name: string | null;
    channel: string;
    site: string | null;
    public_jwk: string;
    jkt: string;
    enrolled_at: Ms;
    last_seen_at: Ms | null;
    policy_version: number;
    revocation_epoch: number;
    revoked_at: Ms | null;
    revoked_reason: string | null;
  };
  console_enrolment_tokens: {
    token_hash: string;
    channel: string | null;
    site: string | null;
    issued_by: string;
    issued_at: Ms;
    expires_at: Ms;
    used_at: Ms | null;
    console_id: string | null;
  };
  operators: {
    id: string;
    display_name: string;
    roles: string;
    webauthn_user_id: string;
    created_at: Ms;
    failed_attempts: number;
    revoked_at: Ms | null;
    revoked_reason: string | null;
  };
  operator_enrolment_codes: {
    code_hash: string;
    operator_id: string;
    issued_by: string;
    issued_at: Ms;
    expires_at: Ms;
    used_at: Ms | null;
    credential_id: string | null;
    revoked_at: Ms | null;
  };
  credentials: {
    id: string;
    operator_id: string;
    public_key: Uint8Array;
    counter: number;
    transports: string;
    device_bound: number;
    backed_up: number;
    aaguid: string;
    attestation_fmt: string;
    attestation_trust: string;
    registered_on_console: string;
    created_at: Ms;
    last_used_at: Ms | null;
    revoked_at: Ms | null;
    revoked_reason: string | null;
    suspended_at: Ms | null;
    suspended_reason: string | null;
  };
  sessions: {
    id: string;
    operator_id: string;
    console_id: string;
    channel: string;
    credential_id: string;
    level: string;
    auth_time: Ms;
    started_at: Ms;
    expires_at: Ms;
    state: string;
    suspended_at: Ms | null;
    ended_at: Ms | null;
    end_reason: string | null;
  };
  policy_versions: { version: number; document: string; published_at: Ms; published_by: string };
  revocations: {
    epoch: Generated<number>;
    kind: string;
    target_id: string;
    operator_id: string | null;
    console_id: string | null;
    reason: string;
    actor: string;
    created_at: Ms;
  };
  revocation_deliveries: { epoch: number; console_id: string; sent_at: Ms; acked_at: Ms | null };
  event_streams: { origin: string; last_seq: number; last_hash: string };
  events: {
    cursor: Generated<number>;
    origin: string;
    seq: number;
    id: string;
    time: Ms;
    received_at: Ms;
    type: string;
    outcome: string;
    operator_id: string | null;
    console_id: string | null;
    session_id: string | null;
    body: string;
    hash: string;
    integrity: string | null;
    /** Migration 26: the service a backend event is about (`subject.service`). */
    service_id: string | null;
  };
  console_commands: {
    id: string;
    console_id: string;
    session_id: string;
    reason: string;
    created_at: Ms;
    acked_at: Ms | null;
  };
  admin_sessions: {
    id: string;
    token_hash: string;
    operator_id: string;
    credential_id: string;
    created_at: Ms;
    last_seen_at: Ms;
    expires_at: Ms;
    step_up_at: Ms | null;
    ended_at: Ms | null;
    end_reason: string | null;
  };
  console_outbox_reports: { console_id: string; pending: number; max: number; reported_at: Ms };
  authenticator_metadata_blobs: {
    no: number;
    next_update: string;
    sha256: string;
    loaded_at: Ms;
    loaded_by: string;
    models: number;
  };
  authenticator_models: {
    aaguid: string;
    description: string;
    certification: string;
    status: string;
    status_reports: string;
    time_of_last_status_change: string | null;
    blob_no: number;
  };
  chain_checkpoints: { seq: number; at: Ms; kid: string; body: string; sig: string };
  // Service accounts (migration 15, backend/service-accounts/)
  services: {
    id: string;
    name: string;
    actions: string;
    enrolled_at: Ms;
    enrolled_by: string;
    last_used_at: Ms | null;
    revoked_at: Ms | null;
    revoked_by: string | null;
    revoked_reason: string | null;
  };
  service_keys: { kid: string; service_id: string; public_jwk: string; created_at: Ms; retired_at: Ms | null };
  service_enrolment_tokens: {
    token_hash: string;
    name: string;
    actions: string;
    issued_by: string;
    issued_at: Ms;
    expires_at: Ms;
    used_at: Ms | null;
    service_id: string | null;
  };
  service_token_counts: {
    service_id: string;
    action: string;
    issued: number;
    refused: number;
    last_issued_at: Ms | null;
  };
  service_tokens: { jti: string; service_id: string; action: string; audience: string; issued_at: Ms; expires_at: Ms };
  break_glass_grants: {
    id: string;
    operator_id: string;
    console_id: string;
    site: string | null;
    method: string;
    approved_by: string;
    reason: string;
    code_hash: string | null;
    issued_at: Ms;
    expires_at: Ms;
    used_at: Ms | null;
    session_id: string | null;
    signed_off_at: Ms | null;
    signed_off_by: string | null;
    sign_off_note: string | null;
  };
  // ---- OpenID Shared Signals transmitter (migration 12, backend/ssf/transmitter) ----
  ssf_receivers: {
    id: string;
    name: string;
    audience: string;
    token_hash: string;
    scopes: string;
    created_at: Ms;
    created_by: string;
    revoked_at: Ms | null;
    last_used_at: Ms | null;
  };
  ssf_streams: {
    id: string;
    receiver_id: string;
    config: string;
    status: string;
    status_reason: string | null;
    created_at: Ms;
    updated_at: Ms;
    lease_owner: string | null;
    lease_until: Ms | null;
    failing_since: Ms | null;
    last_error: string | null;
    last_delivered_at: Ms | null;
    delivered_count: Generated<number>;
    /** The last verification event asked for (migration 21): its jti, when, when the receiver accepted it. */
    verify_jti: string | null;
    verify_requested_at: Ms | null;
    verify_accepted_at: Ms | null;
  };
  ssf_stream_subjects: { stream_id: string; subject_key: string; subject: string; added_at: Ms };
  ssf_queue: {
    seq: Generated<number>;
    stream_id: string;
    source: string;
    jti: string;
    subject_key: string;
    set_jwt: string;
    created_at: Ms;
    attempts: Generated<number>;
    next_attempt_at: Ms;
    last_error: string | null;
    polled_at: Ms | null;
    /** When the Baton event was recorded (migration 21): the start of the delivery latency. */
    recorded_at: Ms | null;
  };
  // Shared Signals delivery latency and leases (migration 21, issue 13; backend/ssf/transmitter/)
  ssf_latency: { stream_id: string; minute: Ms; bucket: number; count: number };
  ssf_leases: { name: string; owner: string; until: Ms };
  ephemeral: {
    kind: string;
    key: string;
    owner: string;
    value: string;
    expires_at: Ms;
    created_seq: Generated<number>;
  };
  /** Single-use claims (`EphemeralRepository.claimOnce`, migration 29): one b-tree, `(kind, key)`. */
  ephemeral_claims: { kind: string; key: string; expires_at: Ms };
  // Shared Signals receiver and SCIM provisioning (migration 13, issue 13; backend/ssf/receiver/, backend/scim/)
  ssf_transmitters: {
    id: string;
    name: string;
    issuer: string;
    audience: string;
    configuration_url: string | null;
    jwks_uri: string | null;
    pinned_jwks: string | null;
    push_token_hash: string;
    max_age_seconds: number;
    stream_id: string | null;
    created_at: Ms;
    created_by: string;
    disabled_at: Ms | null;
    accepted: Generated<number>;
    last_set_at: Ms | null;
    last_jti: string | null;
    last_action: string | null;
    /** Migration 27: enabled, paused or disabled, with why, when and by whom; the upstream's answer (JSON); the last verification. */
    status: Generated<string>;
    status_reason: string | null;
    status_changed_at: Ms | null;
    status_changed_by: string | null;
    upstream_status: string | null;
    verify_state: string | null;
    verify_requested_at: Ms | null;
    verify_received_at: Ms | null;
    verify_jti: string | null;
    verify_error: string | null;
  };
  /** Migration 27: SETs a paused source pushed, held until it is resumed (or dropped when it is disabled). */
  ssf_held_sets: {
    transmitter_id: string;
    jti: string;
    received_at: Ms;
    set_json: string;
    /** Migration 28: the resume applying it and its lease; the revocations applied for it so far ('kind:epoch …'). */
    claimed_by: string | null;
    claimed_until: Ms | null;
    applied: string | null;
  };
  ssf_rejections: {
    transmitter_id: string;
    code: string;
    count: number;
    last_at: Ms;
    last_description: string;
  };
  operator_identities: {
    id: string;
    operator_id: string;
    format: string;
    identifier: string;
    subject: string;
    created_at: Ms;
    created_by: string;
  };
  scim_directories: {
    id: string;
    name: string;
    token_hash: string;
    group_roles: string;
    created_at: Ms;
    created_by: string;
    revoked_at: Ms | null;
    last_used_at: Ms | null;
  };
  scim_users: {
    id: string;
    directory_id: string;
    operator_id: string;
    user_name: string;
    user_name_key: string;
    external_id: string | null;
    active: number;
    resource: string;
    version: number;
    created_at: Ms;
    updated_at: Ms;
  };
  scim_groups: {
    id: string;
    directory_id: string;
    display_name: string;
    display_name_key: string;
    external_id: string | null;
    members: string;
    version: number;
    created_at: Ms;
    updated_at: Ms;
  };
}

export type Dialect = 'sqlite' | 'postgres';

/** PostgreSQL advisory lock keys (one namespace per database; 0x6261746f6e = "baton"). */
export const PG_LOCKS = {
  migrations: 0x6261746f6e01,
  // 0x6261746f6e02 held the revocation epoch until migration 25 (a counter row since): not reused.
} as const;

/** Where a repository runs: the pool (or the one SQLite connection), or one transaction. */
export interface KyselyContext {
  readonly db: Kysely<BatonDatabase>;
  readonly dialect: Dialect;
  readonly inTransaction: boolean;
}

/** Runs `fn` in the caller's transaction, or in a transaction of its own: several statements that commit together. */
export function atomic<T>(ctx: KyselyContext, fn: (db: Kysely<BatonDatabase>) => Promise<T>): Promise<T> {
  return ctx.inTransaction ? fn(ctx.db) : ctx.db.transaction().execute(fn);
}

/** Rows changed by an UPDATE / DELETE / INSERT, as a number. */
export function changed(result: {
  numUpdatedRows?: bigint;
  numDeletedRows?: bigint;
  numInsertedOrUpdatedRows?: bigint | undefined;
}): number {
  return Number(result.numUpdatedRows ?? result.numDeletedRows ?? result.numInsertedOrUpdatedRows ?? 0n);
}

export type Row = Record<string, unknown>;

/**
 * `column IN (ids)` with the ids as one parameter, whatever their number: one statement text for
 * every group size (PostgreSQL `= ANY($1::text[])`, a named prepared statement once seen twice;
 * SQLite `IN (SELECT value FROM json_each(?))`).
 */
export function inIds(ctx: KyselyContext, column: string, ids: readonly string[]) {
  return ctx.dialect === 'postgres'
    ? sql<boolean>`${sql.ref(column)} = ANY(${[...ids]}::text[])`
    : sql<boolean>`${sql.ref(column)} IN (SELECT value FROM json_each(${JSON.stringify(ids)}))`;
}

/** Values read back from the database are checked like any other input before they are trusted. */
export function str(row: Row, key: string): string {
  const v = row[key];
  if (typeof v !== 'string') throw new Error(`database: ${key} is not text`);
  return v;
}
export function optStr(row: Row, key: string): string | null {
  const v = row[key];
  if (v === null || v === undefined) return null;
  if (typeof v !== 'string') throw new Error(`database: ${key} is not text`);
  return v;
}
export function num(row: Row, key: string): number {
  const v = row[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`database: ${key} is not a number`);
  return v;
}
export function optNum(row: Row, key: string): number | null {
  const v = row[key];
  if (v === null || v === undefined) return null;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`database: ${key} is not a number`);
  return v;
}
export function stringArray(row: Row, key: string): string[] {
  const parsed: unknown = JSON.parse(str(row, key));
  if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string')) {
    throw new Error(`database: ${key} is not a string array`);
  }
  return parsed;
}
export function oneOf<T extends string>(allowed: readonly T[], value: string, key: string): T {
  if (!(allowed as readonly string[]).includes(value)) throw new Error(`database: ${key} has unknown value`);
  return value as T;
}
export function blob(row: Row, key: string): Uint8Array {
  const v = row[key];
  if (!(v instanceof Uint8Array)) throw new Error(`database: ${key} is not a blob`);
  return new Uint8Array(v);
}
