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
  {
    version: 12,
    name: 'OpenID Shared Signals transmitter: receivers and their tokens, streams, subjects, the durable SET queue (backend/ssf/transmitter)',
    sql: `
      CREATE TABLE ssf_receivers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        audience TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        scopes TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at INTEGER,
        last_used_at INTEGER
      ) STRICT;
      CREATE TABLE ssf_streams (
        id TEXT PRIMARY KEY,
        receiver_id TEXT NOT NULL,
        config TEXT NOT NULL,
        status TEXT NOT NULL,
        status_reason TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        lease_owner TEXT,
        lease_until INTEGER,
        failing_since INTEGER,
        last_error TEXT,
        last_delivered_at INTEGER,
        delivered_count INTEGER NOT NULL DEFAULT 0
      ) STRICT;
      CREATE INDEX ssf_streams_receiver ON ssf_streams (receiver_id);
      CREATE TABLE ssf_stream_subjects (
        stream_id TEXT NOT NULL,
        subject_key TEXT NOT NULL,
        subject TEXT NOT NULL,
        added_at INTEGER NOT NULL,
        PRIMARY KEY (stream_id, subject_key)
      ) STRICT;
      CREATE TABLE ssf_queue (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        stream_id TEXT NOT NULL,
        source TEXT NOT NULL,
        jti TEXT NOT NULL,
        subject_key TEXT NOT NULL,
        set_jwt TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT,
        polled_at INTEGER,
        UNIQUE (stream_id, source)
      );
      CREATE INDEX ssf_queue_stream ON ssf_queue (stream_id, seq);
      CREATE INDEX ssf_queue_jti ON ssf_queue (stream_id, jti);
    `,
  },
  {
    version: 13,
    name: 'Shared Signals receiver (upstream transmitters, rejections, operator identities) and SCIM provisioning (directories, users, groups) (issue 13)',
    sql: `
      CREATE TABLE ssf_transmitters (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        issuer TEXT NOT NULL,
        audience TEXT NOT NULL,
        configuration_url TEXT,
        jwks_uri TEXT,
        pinned_jwks TEXT,
        push_token_hash TEXT NOT NULL,
        max_age_seconds INTEGER NOT NULL,
        stream_id TEXT,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        disabled_at INTEGER,
        accepted INTEGER NOT NULL DEFAULT 0,
        last_set_at INTEGER,
        last_jti TEXT,
        last_action TEXT
      ) STRICT;
      CREATE TABLE ssf_rejections (
        transmitter_id TEXT NOT NULL REFERENCES ssf_transmitters(id),
        code TEXT NOT NULL,
        count INTEGER NOT NULL,
        last_at INTEGER NOT NULL,
        last_description TEXT NOT NULL,
        PRIMARY KEY (transmitter_id, code)
      ) STRICT;
      CREATE TABLE operator_identities (
        id TEXT PRIMARY KEY,
        operator_id TEXT NOT NULL REFERENCES operators(id),
        format TEXT NOT NULL,
        identifier TEXT NOT NULL,
        subject TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        UNIQUE (format, identifier)
      ) STRICT;
      CREATE INDEX operator_identities_operator ON operator_identities (operator_id);
      CREATE TABLE scim_directories (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        group_roles TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at INTEGER,
        last_used_at INTEGER
      ) STRICT;
      CREATE TABLE scim_users (
        id TEXT PRIMARY KEY,
        directory_id TEXT NOT NULL REFERENCES scim_directories(id),
        operator_id TEXT NOT NULL REFERENCES operators(id),
        user_name TEXT NOT NULL,
        user_name_key TEXT NOT NULL,
        external_id TEXT,
        active INTEGER NOT NULL,
        resource TEXT NOT NULL,
        version INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (directory_id, user_name_key)
      ) STRICT;
      CREATE INDEX scim_users_external ON scim_users (directory_id, external_id);
      CREATE TABLE scim_groups (
        id TEXT PRIMARY KEY,
        directory_id TEXT NOT NULL REFERENCES scim_directories(id),
        display_name TEXT NOT NULL,
        display_name_key TEXT NOT NULL,
        external_id TEXT,
        members TEXT NOT NULL,
        version INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (directory_id, display_name_key)
      ) STRICT;
    `,
  },
  {
    version: 15,
    name: 'service accounts (services, their keys, one-time enrolment tokens, tokens issued by action) and break-glass grants (issue 14)',
    sql: `
      CREATE TABLE services (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        actions TEXT NOT NULL,
        enrolled_at INTEGER NOT NULL,
        enrolled_by TEXT NOT NULL,
        last_used_at INTEGER,
        revoked_at INTEGER,
        revoked_by TEXT,
        revoked_reason TEXT
      ) STRICT;

      CREATE TABLE service_keys (
        kid TEXT PRIMARY KEY,
        service_id TEXT NOT NULL REFERENCES services(id),
        public_jwk TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        retired_at INTEGER
      ) STRICT;
      CREATE INDEX service_keys_service ON service_keys(service_id, created_at);

      CREATE TABLE service_enrolment_tokens (
        token_hash TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        actions TEXT NOT NULL,
        issued_by TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER,
        service_id TEXT
      ) STRICT;

      CREATE TABLE service_token_counts (
        service_id TEXT NOT NULL REFERENCES services(id),
        action TEXT NOT NULL,
        issued INTEGER NOT NULL DEFAULT 0,
        refused INTEGER NOT NULL DEFAULT 0,
        last_issued_at INTEGER,
        PRIMARY KEY (service_id, action)
      ) STRICT;

      CREATE TABLE service_tokens (
        jti TEXT PRIMARY KEY,
        service_id TEXT NOT NULL REFERENCES services(id),
        action TEXT NOT NULL,
        audience TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX service_tokens_service ON service_tokens(service_id, expires_at);
      CREATE INDEX service_tokens_expiry ON service_tokens(expires_at);

      CREATE TABLE break_glass_grants (
        id TEXT PRIMARY KEY,
        operator_id TEXT NOT NULL REFERENCES operators(id),
        console_id TEXT NOT NULL REFERENCES consoles(id),
        site TEXT,
        method TEXT NOT NULL,
        approved_by TEXT NOT NULL,
        reason TEXT NOT NULL,
        code_hash TEXT UNIQUE,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER,
        session_id TEXT,
        signed_off_at INTEGER,
        signed_off_by TEXT,
        sign_off_note TEXT
      ) STRICT;
      CREATE INDEX break_glass_operator ON break_glass_grants(operator_id, issued_at);
      CREATE INDEX break_glass_site ON break_glass_grants(site, issued_at);
      CREATE INDEX break_glass_session ON break_glass_grants(session_id);
    `,
  },
  {
    version: 16,
    name: 'admin console at estate scale: keyset-paging indexes for every admin table (sort key, id) and admin API tokens (issue 12)',
    // Each index is the sort expression of backend/store/admin-tables.ts followed by the id (the tie-breaker),
    // written exactly as the queries write it, so a page is an index range scan whatever the estate's size.
    sql: `
      CREATE INDEX consoles_page_name ON consoles(LOWER(COALESCE(name, '')), id);
      CREATE INDEX consoles_page_site ON consoles(LOWER(COALESCE(site, '')), id);
      CREATE INDEX consoles_page_channel ON consoles(channel, id);
      CREATE INDEX consoles_page_enrolled ON consoles(enrolled_at, id);
      CREATE INDEX consoles_page_last_seen ON consoles(COALESCE(last_seen_at, 0), id);
      CREATE INDEX operators_page_name ON operators(LOWER(display_name), id);
      CREATE INDEX operators_page_created ON operators(created_at, id);
      CREATE INDEX sessions_page_started ON sessions(started_at, id);
      CREATE INDEX sessions_page_expires ON sessions(expires_at, id);
      CREATE INDEX events_outcome ON events(outcome, cursor);
      CREATE INDEX revocations_page_kind ON revocations(kind, epoch);

      CREATE TABLE admin_api_tokens (
        id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        label TEXT NOT NULL,
        scope TEXT NOT NULL CHECK (scope IN ('read', 'admin')),
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        last_used_at INTEGER,
        uses INTEGER NOT NULL DEFAULT 0,
        revoked_at INTEGER,
        revoked_by TEXT,
        revoked_reason TEXT
      ) STRICT;
      CREATE INDEX admin_api_tokens_created ON admin_api_tokens(created_at, id);
    `,
  },
  {
    version: 19,
    name: 'SIEM export cursors (backend/siem/cursors.ts), and live sessions indexed by expiry (the expiry sweep)',
    sql: `
      CREATE TABLE siem_cursors (
        sink TEXT PRIMARY KEY,
        cursor INTEGER NOT NULL,
        delivered INTEGER NOT NULL DEFAULT 0,
        last_delivered_at INTEGER,
        last_error TEXT,
        last_error_at INTEGER,
        failures INTEGER NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_until INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER NOT NULL
      ) STRICT;
      -- Live sessions by expiry: what the backend's expiry sweep closes (session-expiry-sweep.ts).
      CREATE INDEX sessions_live_expiry ON sessions (expires_at) WHERE state IN ('active', 'suspended');
    `,
  },
  {
    version: 21,
    name: 'Shared Signals: delivery latency histograms per stream and minute, the last verification of a stream, the fan-out lease (backend/ssf/transmitter)',
    sql: `
      ALTER TABLE ssf_queue ADD COLUMN recorded_at INTEGER;
      ALTER TABLE ssf_streams ADD COLUMN verify_jti TEXT;
      ALTER TABLE ssf_streams ADD COLUMN verify_requested_at INTEGER;
      ALTER TABLE ssf_streams ADD COLUMN verify_accepted_at INTEGER;
      CREATE TABLE ssf_latency (
        stream_id TEXT NOT NULL,
        minute INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (stream_id, minute, bucket)
      ) STRICT;
      CREATE TABLE ssf_leases (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        until INTEGER NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 22,
    name: 'admin console at estate scale (issue 12): revocations by time for the pictures; on PostgreSQL, trigram indexes for name searches',
    sql: `
      -- Revocations by time: the pictures' propagation over a chosen range (admin-insights.ts).
      CREATE INDEX revocations_created ON revocations(created_at, epoch);
    `,
  },
  {
    version: 23,
    name: 'admin console (issue 12): keyset-paging indexes for the smaller admin tables (services, break-glass grants, Shared Signals streams and transmitters, policy versions, enrolment codes, suspended passkeys)',
    sql: `
      -- Each is the sort expression of backend/store/admin-tables.ts followed by the tie-breaker, as in migration 16.
      CREATE INDEX services_page_name ON services(LOWER(name), id);
      CREATE INDEX services_page_enrolled ON services(enrolled_at, id);
      CREATE INDEX break_glass_page_issued ON break_glass_grants(issued_at, id);
      CREATE INDEX ssf_streams_page_created ON ssf_streams(created_at, id);
      CREATE INDEX ssf_transmitters_page_name ON ssf_transmitters(LOWER(name), id);
      CREATE INDEX ssf_transmitters_page_created ON ssf_transmitters(created_at, id);
      CREATE INDEX policy_versions_page_published ON policy_versions(published_at, version);
      CREATE INDEX operator_enrolment_codes_page ON operator_enrolment_codes(operator_id, issued_at);
      CREATE INDEX credentials_suspended_page ON credentials(suspended_at, id) WHERE suspended_at IS NOT NULL;
    `,
  },
  {
    version: 24,
    name: 'revocation fan-out (issue 10): room in the console pages for the acknowledged epoch',
    // SQLite has no fill factor (its pages are rewritten in place): nothing to do; the version
    // keeps both engines' schemas numbered alike (migrate-store compares them).
    sql: `SELECT 1;`,
  },
  {
    version: 25,
    name: 'revocation (issue 10): the next epoch from a counter row, in the statement that inserts the revocation',
    // SQLite hands out epochs by its one writer (the rowid): nothing to do; the version keeps both
    // engines' schemas numbered alike.
    sql: `SELECT 1;`,
  },
  {
    version: 26,
    name: 'audit trail by service account (issue 14): the service a backend event is about, indexed for its newest events',
    sql: `
      ALTER TABLE events ADD COLUMN service_id TEXT;
      -- The events stored before: a backend event's subject.service (a console's event is not about a
      -- service: see EventRow.serviceId). The LIKE skips most rows without parsing them; json_valid
      -- leaves a damaged body alone (the chain check reports it) instead of failing the migration.
      UPDATE events SET service_id = json_extract(body, '$.subject.service')
        WHERE origin = 'backend' AND body LIKE '%"service":"%' AND json_valid(body)
          AND json_type(body, '$.subject.service') = 'text';
      -- "Newest events of this service": the keyset page walks (service_id, cursor), as events_operator does.
      CREATE INDEX events_service ON events(service_id, cursor) WHERE service_id IS NOT NULL;
    `,
  },
  {
    version: 27,
    name: 'Shared Signals receiver: a source paused, resumed or disabled (its status, reason, who and when), the SETs held while it is paused, what its upstream answered to a status change, and its last verification (backend/ssf/receiver)',
    sql: `
      ALTER TABLE ssf_transmitters ADD COLUMN status TEXT NOT NULL DEFAULT 'enabled' CHECK (status IN ('enabled', 'paused', 'disabled'));
      ALTER TABLE ssf_transmitters ADD COLUMN status_reason TEXT;
      ALTER TABLE ssf_transmitters ADD COLUMN status_changed_at INTEGER;
      ALTER TABLE ssf_transmitters ADD COLUMN status_changed_by TEXT;
      -- JSON: what the upstream answered when Baton last asked it to change its stream's status (or announced).
      ALTER TABLE ssf_transmitters ADD COLUMN upstream_status TEXT;
      ALTER TABLE ssf_transmitters ADD COLUMN verify_state TEXT;
      ALTER TABLE ssf_transmitters ADD COLUMN verify_requested_at INTEGER;
      ALTER TABLE ssf_transmitters ADD COLUMN verify_received_at INTEGER;
      ALTER TABLE ssf_transmitters ADD COLUMN verify_jti TEXT;
      ALTER TABLE ssf_transmitters ADD COLUMN verify_error TEXT;
      -- A source disabled before this migration (DELETE …/transmitters/:id) is disabled.
      UPDATE ssf_transmitters SET status = 'disabled', status_changed_at = disabled_at WHERE disabled_at IS NOT NULL;
      -- Valid SETs a paused source pushed, applied in order when it is resumed, dropped when it is disabled.
      CREATE TABLE ssf_held_sets (
        transmitter_id TEXT NOT NULL REFERENCES ssf_transmitters(id),
        jti TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        set_json TEXT NOT NULL,
        PRIMARY KEY (transmitter_id, jti)
      ) STRICT;
      CREATE INDEX ssf_held_sets_order ON ssf_held_sets(transmitter_id, received_at, jti);
    `,
  },
  {
    version: 28,
    name: 'Shared Signals receiver: a held SET is claimed (by whom, until when) and marked with the revocations applied for it, and removed once applied, not when claimed (backend/ssf/receiver)',
    sql: `
      -- The resume applying it (a random claim id) and until when (a lease): a node that dies leaves a claim the
      -- next resume takes over once the lease ran out.
      ALTER TABLE ssf_held_sets ADD COLUMN claimed_by TEXT;
      ALTER TABLE ssf_held_sets ADD COLUMN claimed_until INTEGER;
      -- The revocations applied for it so far ('kind:epoch', space-separated), each written in its revocation's
      -- unit of work: a claim taken over knows what its predecessor revoked.
      ALTER TABLE ssf_held_sets ADD COLUMN applied TEXT;
    `,
  },
  {
    version: 29,
    name: 'single-use claims (request nonces, sign-in challenges, jtis) in a table of one b-tree, out of ephemeral and its owner, expiry and creation indexes (issue 10)',
    sql: `
      CREATE TABLE ephemeral_claims (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (kind, key)
      ) STRICT, WITHOUT ROWID;
      -- The claims made so far (claimOnce writes no owner and no value; every put has both): moved, so a nonce
      -- claimed before this migration is still refused after it while its window is open.
      INSERT INTO ephemeral_claims (kind, key, expires_at)
        SELECT kind, key, expires_at FROM ephemeral WHERE owner = '' AND value = '';
      DELETE FROM ephemeral WHERE owner = '' AND value = '';
    `,
  },
];
