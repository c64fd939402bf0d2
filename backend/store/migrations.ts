/**
 * Numbered migrations. Each runs once, in order, inside a transaction; `PRAGMA user_version`
 * records the last applied. Never edit a shipped migration: add the next number.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;

      CREATE TABLE admin_tokens (
        token_hash TEXT PRIMARY KEY,
        label TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        disabled_at INTEGER
      ) STRICT;

      CREATE TABLE consoles (
        id TEXT PRIMARY KEY,
        name TEXT,
        channel TEXT NOT NULL,
        site TEXT,
        public_jwk TEXT NOT NULL,
        jkt TEXT NOT NULL UNIQUE,
        enrolled_at INTEGER NOT NULL,
        last_seen_at INTEGER,
        policy_version INTEGER NOT NULL DEFAULT 0,
        revocation_epoch INTEGER NOT NULL DEFAULT 0,
        revoked_at INTEGER,
        revoked_reason TEXT
      ) STRICT;

      CREATE TABLE console_enrolment_tokens (
        token_hash TEXT PRIMARY KEY,
        channel TEXT,
        site TEXT,
        issued_by TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER,
        console_id TEXT
      ) STRICT;

      CREATE TABLE operators (
        id TEXT PRIMARY KEY,
        display_name TEXT NOT NULL,
        roles TEXT NOT NULL,
        webauthn_user_id TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        failed_attempts INTEGER NOT NULL DEFAULT 0,
        revoked_at INTEGER,
        revoked_reason TEXT
      ) STRICT;

      CREATE TABLE operator_enrolment_codes (
        code_hash TEXT PRIMARY KEY,
        operator_id TEXT NOT NULL REFERENCES operators(id),
        issued_by TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER,
        credential_id TEXT
      ) STRICT;

      CREATE TABLE credentials (
        id TEXT PRIMARY KEY,
        operator_id TEXT NOT NULL REFERENCES operators(id),
        public_key BLOB NOT NULL,
        counter INTEGER NOT NULL,
        transports TEXT NOT NULL,
        device_bound INTEGER NOT NULL,
        backed_up INTEGER NOT NULL,
        aaguid TEXT NOT NULL,
        attestation_fmt TEXT NOT NULL,
        registered_on_console TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_used_at INTEGER,
        revoked_at INTEGER,
        revoked_reason TEXT
      ) STRICT;
      CREATE INDEX credentials_operator ON credentials(operator_id);

      CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        operator_id TEXT NOT NULL REFERENCES operators(id),
        console_id TEXT NOT NULL REFERENCES consoles(id),
        channel TEXT NOT NULL,
        credential_id TEXT NOT NULL,
        level TEXT NOT NULL,
        auth_time INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        state TEXT NOT NULL,
        suspended_at INTEGER,
        ended_at INTEGER,
        end_reason TEXT
      ) STRICT;
      CREATE INDEX sessions_console_state ON sessions(console_id, state);
      CREATE INDEX sessions_operator_state ON sessions(operator_id, state);

      CREATE TABLE policy_versions (
        version INTEGER PRIMARY KEY,
        document TEXT NOT NULL,
        published_at INTEGER NOT NULL,
        published_by TEXT NOT NULL
      ) STRICT;

      CREATE TABLE revocations (
        epoch INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        target_id TEXT NOT NULL,
        operator_id TEXT,
        console_id TEXT,
        reason TEXT NOT NULL,
        actor TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );

      CREATE TABLE revocation_deliveries (
        epoch INTEGER NOT NULL,
        console_id TEXT NOT NULL,
        sent_at INTEGER NOT NULL,
        acked_at INTEGER,
        PRIMARY KEY (epoch, console_id)
      ) STRICT, WITHOUT ROWID;

      CREATE TABLE event_streams (
        origin TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL,
        last_hash TEXT NOT NULL
      ) STRICT;

      CREATE TABLE events (
        cursor INTEGER PRIMARY KEY AUTOINCREMENT,
        origin TEXT NOT NULL,
        seq INTEGER NOT NULL,
        id TEXT NOT NULL,
        time INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        type TEXT NOT NULL,
        outcome TEXT NOT NULL,
        operator_id TEXT,
        console_id TEXT,
        session_id TEXT,
        body TEXT NOT NULL,
        hash TEXT NOT NULL,
        integrity TEXT,
        UNIQUE (origin, seq)
      );
      CREATE INDEX events_operator ON events(operator_id, cursor) WHERE operator_id IS NOT NULL;
      CREATE INDEX events_console ON events(console_id, cursor) WHERE console_id IS NOT NULL;
      CREATE INDEX events_session ON events(session_id, cursor) WHERE session_id IS NOT NULL;
      CREATE INDEX events_type ON events(type, cursor);
      CREATE INDEX events_time ON events(time);
    `,
  },
  {
    version: 2,
    name: 'end-session commands survive a restart until acknowledged',
    sql: `
      CREATE TABLE console_commands (
        id TEXT PRIMARY KEY,
        console_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        acked_at INTEGER
      ) STRICT;
      CREATE INDEX console_commands_pending ON console_commands(console_id) WHERE acked_at IS NULL;
    `,
  },
  {
    version: 3,
    name: 'record whether attestation carried a certificate (model evidence) or was self/none',
    sql: `ALTER TABLE credentials ADD COLUMN attestation_trust TEXT NOT NULL DEFAULT 'none';`,
  },
  {
    version: 4,
    name: 'find unacknowledged revocation deliveries by console without scanning every epoch',
    sql: `CREATE INDEX revocation_deliveries_unacked ON revocation_deliveries(console_id, epoch) WHERE acked_at IS NULL;`,
  },
  {
    version: 5,
    name: 'admin console: admin sessions, console outbox backlog, revocable enrolment codes',
    sql: `
      CREATE TABLE admin_sessions (
        id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        operator_id TEXT NOT NULL REFERENCES operators(id),
        credential_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_seen_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        step_up_at INTEGER,
        ended_at INTEGER,
        end_reason TEXT
      ) STRICT;
      CREATE INDEX admin_sessions_operator ON admin_sessions(operator_id) WHERE ended_at IS NULL;

      CREATE TABLE console_outbox_reports (
        console_id TEXT PRIMARY KEY REFERENCES consoles(id),
        pending INTEGER NOT NULL,
        max INTEGER NOT NULL,
        reported_at INTEGER NOT NULL
      ) STRICT;

      ALTER TABLE operator_enrolment_codes ADD COLUMN revoked_at INTEGER;
      CREATE INDEX operator_enrolment_codes_operator ON operator_enrolment_codes(operator_id);
    `,
  },
  {
    version: 6,
    name: 'authenticator models from the FIDO metadata BLOB an admin supplied',
    sql: `
      CREATE TABLE authenticator_metadata_blobs (
        no INTEGER PRIMARY KEY,
        next_update TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        loaded_at INTEGER NOT NULL,
        loaded_by TEXT NOT NULL,
        models INTEGER NOT NULL
      ) STRICT;

      CREATE TABLE authenticator_models (
        aaguid TEXT PRIMARY KEY,
        description TEXT NOT NULL,
        certification TEXT NOT NULL,
        status TEXT NOT NULL,
        status_reports TEXT NOT NULL,
        time_of_last_status_change TEXT,
        blob_no INTEGER NOT NULL REFERENCES authenticator_metadata_blobs(no)
      ) STRICT;
    `,
  },
  {
    version: 7,
    name: 'suspend a credential whose signature counter went backwards (possible copy) until an admin reviews it',
    sql: `
      ALTER TABLE credentials ADD COLUMN suspended_at INTEGER;
      ALTER TABLE credentials ADD COLUMN suspended_reason TEXT;
    `,
  },
  {
    version: 8,
    name: 'signed checkpoints of every event chain head (signed with a key kept outside the database)',
    sql: `
      CREATE TABLE chain_checkpoints (
        seq INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        kid TEXT NOT NULL,
        body TEXT NOT NULL,
        sig TEXT NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 9,
    name: 'short-lived single-use state shared by every node (WebAuthn challenges, request nonces)',
    sql: `
      CREATE TABLE ephemeral (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        owner TEXT NOT NULL,
        value TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        created_seq INTEGER NOT NULL,
        PRIMARY KEY (kind, key)
      ) STRICT;
      CREATE INDEX ephemeral_owner ON ephemeral (kind, owner, created_seq);
      CREATE INDEX ephemeral_expiry ON ephemeral (expires_at);
    `,
  },
  {
    version: 10,
    name: 'cluster node heartbeats (backend/cluster/nodes.ts)',
    // The same shape as CLUSTER_NODES_DDL_SQLITE; written out, since a shipped migration never changes.
    sql: `
      CREATE TABLE cluster_nodes (
        node_id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        last_beat INTEGER NOT NULL,
        stale INTEGER NOT NULL DEFAULT 0 CHECK (stale IN (0, 1)),
        stale_since INTEGER,
        stale_reason TEXT
      ) STRICT;
    `,
  },
  {
    version: 11,
    name: 'index the ephemeral entries by their creation number (the next number is MAX + 1: without it each insert scanned every live nonce)',
    sql: `
      CREATE INDEX ephemeral_created_seq ON ephemeral (created_seq);
    `,
  },
];
