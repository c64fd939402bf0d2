/**
 * The PostgreSQL schema: the same nine numbered migrations as the SQLite ones in migrations.ts, in
 * PostgreSQL's DDL, so that after every version both engines have the same tables, columns and indexes.
 * Timestamps and other integers are BIGINT (milliseconds do not fit INTEGER), blobs BYTEA, JSON TEXT.
 * Text is compared and sorted byte-wise (COLLATE "C"), as SQLite does, whatever the server's locale.
 * Applied versions are recorded in `schema_migrations`; each migration runs in its own transaction
 * under a transaction-scoped advisory lock, so any number of nodes starting together apply it once.
 * Never edit a shipped migration: add the next number, to both files.
 */
import type pg from 'pg';
import type { Migration } from './migrations.js';
import { PG_LOCKS } from './kysely-schema.js';

/** `TEXT` columns compare byte-wise, like SQLite's (stable ordering of ids and origins on every server). */
function ddl(sql: string): string {
  return sql.replace(/\bTEXT\b/g, 'TEXT COLLATE "C"');
}

export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: ddl(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

      CREATE TABLE admin_tokens (
        token_hash TEXT PRIMARY KEY,
        label TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        disabled_at BIGINT
      );

      CREATE TABLE consoles (
        id TEXT PRIMARY KEY,
        name TEXT,
        channel TEXT NOT NULL,
        site TEXT,
        public_jwk TEXT NOT NULL,
        jkt TEXT NOT NULL UNIQUE,
        enrolled_at BIGINT NOT NULL,
        last_seen_at BIGINT,
        policy_version BIGINT NOT NULL DEFAULT 0,
        revocation_epoch BIGINT NOT NULL DEFAULT 0,
        revoked_at BIGINT,
        revoked_reason TEXT
      );

      CREATE TABLE console_enrolment_tokens (
        token_hash TEXT PRIMARY KEY,
        channel TEXT,
        site TEXT,
        issued_by TEXT NOT NULL,
        issued_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at BIGINT,
        console_id TEXT
      );

      CREATE TABLE operators (
        id TEXT PRIMARY KEY,
        display_name TEXT NOT NULL,
        roles TEXT NOT NULL,
        webauthn_user_id TEXT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL,
        failed_attempts BIGINT NOT NULL DEFAULT 0,
        revoked_at BIGINT,
        revoked_reason TEXT
      );

      CREATE TABLE operator_enrolment_codes (
        code_hash TEXT PRIMARY KEY,
        operator_id TEXT NOT NULL REFERENCES operators(id),
        issued_by TEXT NOT NULL,
        issued_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at BIGINT,
        credential_id TEXT
      );

      CREATE TABLE credentials (
        id TEXT PRIMARY KEY,
        operator_id TEXT NOT NULL REFERENCES operators(id),
        public_key BYTEA NOT NULL,
        counter BIGINT NOT NULL,
        transports TEXT NOT NULL,
        device_bound BIGINT NOT NULL,
        backed_up BIGINT NOT NULL,
        aaguid TEXT NOT NULL,
        attestation_fmt TEXT NOT NULL,
        registered_on_console TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        last_used_at BIGINT,
        revoked_at BIGINT,
        revoked_reason TEXT
      );
      CREATE INDEX credentials_operator ON credentials(operator_id);

      CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        operator_id TEXT NOT NULL REFERENCES operators(id),
        console_id TEXT NOT NULL REFERENCES consoles(id),
        channel TEXT NOT NULL,
        credential_id TEXT NOT NULL,
        level TEXT NOT NULL,
        auth_time BIGINT NOT NULL,
        started_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        state TEXT NOT NULL,
        suspended_at BIGINT,
        ended_at BIGINT,
        end_reason TEXT
      );
      CREATE INDEX sessions_console_state ON sessions(console_id, state);
      CREATE INDEX sessions_operator_state ON sessions(operator_id, state);

      CREATE TABLE policy_versions (
        version BIGINT PRIMARY KEY,
        document TEXT NOT NULL,
        published_at BIGINT NOT NULL,
        published_by TEXT NOT NULL
      );

      -- The epoch is assigned as MAX + 1 under an advisory lock (kysely-revocations.ts): gapless and
      -- in commit order across nodes, which a sequence is not.
      CREATE TABLE revocations (
        epoch BIGINT PRIMARY KEY,
        kind TEXT NOT NULL,
        target_id TEXT NOT NULL,
        operator_id TEXT,
        console_id TEXT,
        reason TEXT NOT NULL,
        actor TEXT NOT NULL,
        created_at BIGINT NOT NULL
      );

      CREATE TABLE revocation_deliveries (
        epoch BIGINT NOT NULL,
        console_id TEXT NOT NULL,
        sent_at BIGINT NOT NULL,
        acked_at BIGINT,
        PRIMARY KEY (epoch, console_id)
      );

      CREATE TABLE event_streams (
        origin TEXT PRIMARY KEY,
        last_seq BIGINT NOT NULL,
        last_hash TEXT NOT NULL
      );

      CREATE TABLE events (
        cursor BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        origin TEXT NOT NULL,
        seq BIGINT NOT NULL,
        id TEXT NOT NULL,
        time BIGINT NOT NULL,
        received_at BIGINT NOT NULL,
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
    `),
  },
  {
    version: 2,
    name: 'end-session commands survive a restart until acknowledged',
    sql: ddl(`
      CREATE TABLE console_commands (
        id TEXT PRIMARY KEY,
        console_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        acked_at BIGINT
      );
      CREATE INDEX console_commands_pending ON console_commands(console_id) WHERE acked_at IS NULL;
    `),
  },
  {
    version: 3,
    name: 'record whether attestation carried a certificate (model evidence) or was self/none',
    sql: ddl(`ALTER TABLE credentials ADD COLUMN attestation_trust TEXT NOT NULL DEFAULT 'none';`),
  },
  {
    version: 4,
    name: 'find unacknowledged revocation deliveries by console without scanning every epoch',
    sql: `CREATE INDEX revocation_deliveries_unacked ON revocation_deliveries(console_id, epoch) WHERE acked_at IS NULL;`,
  },
  {
    version: 5,
    name: 'admin console: admin sessions, console outbox backlog, revocable enrolment codes',
    sql: ddl(`
      CREATE TABLE admin_sessions (
        id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        operator_id TEXT NOT NULL REFERENCES operators(id),
        credential_id TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        last_seen_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        step_up_at BIGINT,
        ended_at BIGINT,
        end_reason TEXT
      );
      CREATE INDEX admin_sessions_operator ON admin_sessions(operator_id) WHERE ended_at IS NULL;

      CREATE TABLE console_outbox_reports (
        console_id TEXT PRIMARY KEY REFERENCES consoles(id),
        pending BIGINT NOT NULL,
        max BIGINT NOT NULL,
        reported_at BIGINT NOT NULL
      );

      ALTER TABLE operator_enrolment_codes ADD COLUMN revoked_at BIGINT;
      CREATE INDEX operator_enrolment_codes_operator ON operator_enrolment_codes(operator_id);
    `),
  },
  {
    version: 6,
    name: 'authenticator models from the FIDO metadata BLOB an admin supplied',
    sql: ddl(`
      CREATE TABLE authenticator_metadata_blobs (
        no BIGINT PRIMARY KEY,
        next_update TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        loaded_at BIGINT NOT NULL,
        loaded_by TEXT NOT NULL,
        models BIGINT NOT NULL
      );

      CREATE TABLE authenticator_models (
        aaguid TEXT PRIMARY KEY,
        description TEXT NOT NULL,
        certification TEXT NOT NULL,
        status TEXT NOT NULL,
        status_reports TEXT NOT NULL,
        time_of_last_status_change TEXT,
        blob_no BIGINT NOT NULL REFERENCES authenticator_metadata_blobs(no)
      );
    `),
  },
  {
    version: 7,
    name: 'suspend a credential whose signature counter went backwards (possible copy) until an admin reviews it',
    sql: ddl(`
      ALTER TABLE credentials ADD COLUMN suspended_at BIGINT;
      ALTER TABLE credentials ADD COLUMN suspended_reason TEXT;
    `),
  },
  {
    version: 8,
    name: 'signed checkpoints of every event chain head (signed with a key kept outside the database)',
    sql: ddl(`
      CREATE TABLE chain_checkpoints (
        seq BIGINT PRIMARY KEY,
        at BIGINT NOT NULL,
        kid TEXT NOT NULL,
        body TEXT NOT NULL,
        sig TEXT NOT NULL
      );
    `),
  },
  {
    version: 9,
    name: 'short-lived single-use state shared by every node (WebAuthn challenges, request nonces)',
    sql: ddl(`
      CREATE SEQUENCE ephemeral_seq;
      CREATE TABLE ephemeral (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        owner TEXT NOT NULL,
        value TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        created_seq BIGINT NOT NULL DEFAULT nextval('ephemeral_seq'),
        PRIMARY KEY (kind, key)
      );
      CREATE INDEX ephemeral_owner ON ephemeral (kind, owner, created_seq);
      CREATE INDEX ephemeral_expiry ON ephemeral (expires_at);
    `),
  },
  {
    version: 10,
    name: 'cluster node heartbeats (backend/cluster/nodes.ts)',
    // The same shape as CLUSTER_NODES_DDL_POSTGRES; written out, since a shipped migration never changes.
    sql: ddl(`
      CREATE TABLE cluster_nodes (
        node_id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at BIGINT NOT NULL,
        last_beat BIGINT NOT NULL,
        stale BOOLEAN NOT NULL DEFAULT FALSE,
        stale_since BIGINT,
        stale_reason TEXT
      );
    `),
  },
  {
    version: 11,
    name: 'index the ephemeral entries by their creation number (the next number is MAX + 1: without it each insert scanned every live nonce)',
    // PostgreSQL numbers them from ephemeral_seq; the index keeps the two schemas alike and eviction cheap.
    sql: ddl(`
      CREATE INDEX ephemeral_created_seq ON ephemeral (created_seq);
    `),
  },
  {
    version: 12,
    name: 'OpenID Shared Signals transmitter: receivers and their tokens, streams, subjects, the durable SET queue (backend/ssf/transmitter)',
    sql: ddl(`
      CREATE TABLE ssf_receivers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        audience TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        scopes TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at BIGINT,
        last_used_at BIGINT
      );
      CREATE TABLE ssf_streams (
        id TEXT PRIMARY KEY,
        receiver_id TEXT NOT NULL,
        config TEXT NOT NULL,
        status TEXT NOT NULL,
        status_reason TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        lease_owner TEXT,
        lease_until BIGINT,
        failing_since BIGINT,
        last_error TEXT,
        last_delivered_at BIGINT,
        delivered_count BIGINT NOT NULL DEFAULT 0
      );
      CREATE INDEX ssf_streams_receiver ON ssf_streams (receiver_id);
      CREATE TABLE ssf_stream_subjects (
        stream_id TEXT NOT NULL,
        subject_key TEXT NOT NULL,
        subject TEXT NOT NULL,
        added_at BIGINT NOT NULL,
        PRIMARY KEY (stream_id, subject_key)
      );
      CREATE TABLE ssf_queue (
        seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        stream_id TEXT NOT NULL,
        source TEXT NOT NULL,
        jti TEXT NOT NULL,
        subject_key TEXT NOT NULL,
        set_jwt TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0,
        next_attempt_at BIGINT NOT NULL,
        last_error TEXT,
        polled_at BIGINT,
        UNIQUE (stream_id, source)
      );
      CREATE INDEX ssf_queue_stream ON ssf_queue (stream_id, seq);
      CREATE INDEX ssf_queue_jti ON ssf_queue (stream_id, jti);
    `),
  },
  {
    version: 13,
    name: 'Shared Signals receiver (upstream transmitters, rejections, operator identities) and SCIM provisioning (directories, users, groups) (issue 13)',
    // The same tables as SQLite's migration 13; times and counters BIGINT, `active` 0/1 as in SQLite.
    sql: ddl(`
      CREATE TABLE ssf_transmitters (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        issuer TEXT NOT NULL,
        audience TEXT NOT NULL,
        configuration_url TEXT,
        jwks_uri TEXT,
        pinned_jwks TEXT,
        push_token_hash TEXT NOT NULL,
        max_age_seconds BIGINT NOT NULL,
        stream_id TEXT,
        created_at BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        disabled_at BIGINT,
        accepted BIGINT NOT NULL DEFAULT 0,
        last_set_at BIGINT,
        last_jti TEXT,
        last_action TEXT
      );
      CREATE TABLE ssf_rejections (
        transmitter_id TEXT NOT NULL REFERENCES ssf_transmitters(id),
        code TEXT NOT NULL,
        count BIGINT NOT NULL,
        last_at BIGINT NOT NULL,
        last_description TEXT NOT NULL,
        PRIMARY KEY (transmitter_id, code)
      );
      CREATE TABLE operator_identities (
        id TEXT PRIMARY KEY,
        operator_id TEXT NOT NULL REFERENCES operators(id),
        format TEXT NOT NULL,
        identifier TEXT NOT NULL,
        subject TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        UNIQUE (format, identifier)
      );
      CREATE INDEX operator_identities_operator ON operator_identities (operator_id);
      CREATE TABLE scim_directories (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        group_roles TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at BIGINT,
        last_used_at BIGINT
      );
      CREATE TABLE scim_users (
        id TEXT PRIMARY KEY,
        directory_id TEXT NOT NULL REFERENCES scim_directories(id),
        operator_id TEXT NOT NULL REFERENCES operators(id),
        user_name TEXT NOT NULL,
        user_name_key TEXT NOT NULL,
        external_id TEXT,
        active BIGINT NOT NULL,
        resource TEXT NOT NULL,
        version BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        UNIQUE (directory_id, user_name_key)
      );
      CREATE INDEX scim_users_external ON scim_users (directory_id, external_id);
      CREATE TABLE scim_groups (
        id TEXT PRIMARY KEY,
        directory_id TEXT NOT NULL REFERENCES scim_directories(id),
        display_name TEXT NOT NULL,
        display_name_key TEXT NOT NULL,
        external_id TEXT,
        members TEXT NOT NULL,
        version BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        UNIQUE (directory_id, display_name_key)
      );
    `),
  },
  {
    version: 15,
    name: 'service accounts (services, their keys, one-time enrolment tokens, tokens issued by action) and break-glass grants (issue 14)',
    sql: ddl(`
      CREATE TABLE services (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        actions TEXT NOT NULL,
        enrolled_at BIGINT NOT NULL,
        enrolled_by TEXT NOT NULL,
        last_used_at BIGINT,
        revoked_at BIGINT,
        revoked_by TEXT,
        revoked_reason TEXT
      );

      CREATE TABLE service_keys (
        kid TEXT PRIMARY KEY,
        service_id TEXT NOT NULL REFERENCES services(id),
        public_jwk TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        retired_at BIGINT
      );
      CREATE INDEX service_keys_service ON service_keys(service_id, created_at);

      CREATE TABLE service_enrolment_tokens (
        token_hash TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        actions TEXT NOT NULL,
        issued_by TEXT NOT NULL,
        issued_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at BIGINT,
        service_id TEXT
      );

      CREATE TABLE service_token_counts (
        service_id TEXT NOT NULL REFERENCES services(id),
        action TEXT NOT NULL,
        issued BIGINT NOT NULL DEFAULT 0,
        refused BIGINT NOT NULL DEFAULT 0,
        last_issued_at BIGINT,
        PRIMARY KEY (service_id, action)
      );

      CREATE TABLE service_tokens (
        jti TEXT PRIMARY KEY,
        service_id TEXT NOT NULL REFERENCES services(id),
        action TEXT NOT NULL,
        audience TEXT NOT NULL,
        issued_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
      );
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
        issued_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at BIGINT,
        session_id TEXT,
        signed_off_at BIGINT,
        signed_off_by TEXT,
        sign_off_note TEXT
      );
      CREATE INDEX break_glass_operator ON break_glass_grants(operator_id, issued_at);
      CREATE INDEX break_glass_site ON break_glass_grants(site, issued_at);
      CREATE INDEX break_glass_session ON break_glass_grants(session_id);
    `),
  },
  {
    version: 16,
    name: 'admin console at estate scale: keyset-paging indexes for every admin table (sort key, id) and admin API tokens (issue 12)',
    // Each index is the sort expression of backend/store/admin-tables.ts followed by the id (the tie-breaker),
    // written exactly as the queries write it, so a page is an index range scan whatever the estate's size.
    sql: ddl(`
      CREATE INDEX consoles_page_name ON consoles((LOWER(COALESCE(name, ''))), id);
      CREATE INDEX consoles_page_site ON consoles((LOWER(COALESCE(site, ''))), id);
      CREATE INDEX consoles_page_channel ON consoles(channel, id);
      CREATE INDEX consoles_page_enrolled ON consoles(enrolled_at, id);
      CREATE INDEX consoles_page_last_seen ON consoles((COALESCE(last_seen_at, 0)), id);
      CREATE INDEX operators_page_name ON operators((LOWER(display_name)), id);
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
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        last_used_at BIGINT,
        uses BIGINT NOT NULL DEFAULT 0,
        revoked_at BIGINT,
        revoked_by TEXT,
        revoked_reason TEXT
      );
      CREATE INDEX admin_api_tokens_created ON admin_api_tokens(created_at, id);
    `),
  },
  {
    version: 19,
    name: 'SIEM export cursors (backend/siem/cursors.ts), and live sessions indexed by expiry (the expiry sweep)',
    sql: ddl(`
      CREATE TABLE siem_cursors (
        sink TEXT PRIMARY KEY,
        cursor BIGINT NOT NULL,
        delivered BIGINT NOT NULL DEFAULT 0,
        last_delivered_at BIGINT,
        last_error TEXT,
        last_error_at BIGINT,
        failures INTEGER NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_until BIGINT NOT NULL DEFAULT 0,
        updated_at BIGINT NOT NULL
      );
      -- Live sessions by expiry: what the backend's expiry sweep closes (session-expiry-sweep.ts).
      CREATE INDEX sessions_live_expiry ON sessions (expires_at) WHERE state IN ('active', 'suspended');
    `),
  },
  {
    version: 21,
    name: 'Shared Signals: delivery latency histograms per stream and minute, the last verification of a stream, the fan-out lease (backend/ssf/transmitter)',
    sql: ddl(`
      ALTER TABLE ssf_queue ADD COLUMN recorded_at BIGINT;
      ALTER TABLE ssf_streams ADD COLUMN verify_jti TEXT;
      ALTER TABLE ssf_streams ADD COLUMN verify_requested_at BIGINT;
      ALTER TABLE ssf_streams ADD COLUMN verify_accepted_at BIGINT;
      CREATE TABLE ssf_latency (
        stream_id TEXT NOT NULL,
        minute BIGINT NOT NULL,
        bucket INTEGER NOT NULL,
        count BIGINT NOT NULL,
        PRIMARY KEY (stream_id, minute, bucket)
      );
      CREATE TABLE ssf_leases (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        until BIGINT NOT NULL
      );
    `),
  },
  {
    version: 22,
    name: 'admin console at estate scale (issue 12): revocations by time for the pictures; on PostgreSQL, trigram indexes for name searches',
    sql: `
      -- Revocations by time: the pictures' propagation over a chosen range (admin-insights.ts).
      CREATE INDEX revocations_created ON revocations(created_at, epoch);
      -- Name searches (a part of a name, LIKE '%…%') through trigram indexes (pg_trgm, a trusted extension since
      -- PostgreSQL 13). Where the extension cannot be created, the searches still work by scanning.
      DO $$
      BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
      EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'pg_trgm is not available (%): admin name searches scan the table', SQLERRM;
      END $$;
      DO $$
      BEGIN
        IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
          CREATE INDEX operators_search_name ON operators USING gin ((LOWER(display_name)) gin_trgm_ops);
          CREATE INDEX consoles_search_name ON consoles USING gin ((LOWER(COALESCE(name, ''))) gin_trgm_ops);
          CREATE INDEX consoles_search_site ON consoles USING gin ((LOWER(COALESCE(site, ''))) gin_trgm_ops);
        END IF;
      END $$;
    `,
  },
  {
    version: 23,
    name: 'admin console (issue 12): keyset-paging indexes for the smaller admin tables (services, break-glass grants, Shared Signals streams and transmitters, policy versions, enrolment codes, suspended passkeys)',
    sql: ddl(`
      -- Each is the sort expression of backend/store/admin-tables.ts followed by the tie-breaker, as in migration 16.
      CREATE INDEX services_page_name ON services((LOWER(name)), id);
      CREATE INDEX services_page_enrolled ON services(enrolled_at, id);
      CREATE INDEX break_glass_page_issued ON break_glass_grants(issued_at, id);
      CREATE INDEX ssf_streams_page_created ON ssf_streams(created_at, id);
      CREATE INDEX ssf_transmitters_page_name ON ssf_transmitters((LOWER(name)), id);
      CREATE INDEX ssf_transmitters_page_created ON ssf_transmitters(created_at, id);
      CREATE INDEX policy_versions_page_published ON policy_versions(published_at, version);
      CREATE INDEX operator_enrolment_codes_page ON operator_enrolment_codes(operator_id, issued_at);
      CREATE INDEX credentials_suspended_page ON credentials(suspended_at, id) WHERE suspended_at IS NOT NULL;
    `),
  },
  {
    version: 24,
    name: 'revocation fan-out (issue 10): room in the console pages for the acknowledged epoch',
    sql: `
      -- A console row's revocation epoch is raised by every acknowledged fan-out (10,000 rows at once):
      -- with room left in each page the update is HOT (no indexed column changes: no entry in the
      -- console indexes, trigram ones included), about a sixth of the PostgreSQL CPU of the full
      -- update. The table is rewritten once so the rows already stored get the room too (consoles
      -- are few: an ACCESS EXCLUSIVE lock for a moment).
      ALTER TABLE consoles SET (fillfactor = 50);
      CLUSTER consoles USING consoles_pkey;
    `,
  },
  {
    version: 25,
    name: 'revocation (issue 10): the next epoch from a counter row, in the statement that inserts the revocation',
    sql: `
      -- The last epoch handed out. A writer raises it in the statement that inserts its revocation
      -- (kysely-revocations.ts); the row stays locked until the writer's transaction ends, so epochs
      -- are handed out and committed in order with no gap, as under the advisory lock before, in one
      -- round trip instead of two. Seeded from the revocations already stored.
      CREATE TABLE revocation_epoch (
        id SMALLINT PRIMARY KEY CHECK (id = 1),
        epoch BIGINT NOT NULL
      );
      INSERT INTO revocation_epoch (id, epoch) SELECT 1, COALESCE(MAX(epoch), 0) FROM revocations;
    `,
  },
  {
    version: 26,
    name: 'audit trail by service account (issue 14): the service a backend event is about, indexed for its newest events',
    sql: ddl(`
      ALTER TABLE events ADD COLUMN service_id TEXT;
      -- The events stored before: a backend event's subject.service, read from the canonical body
      -- ("subject":{…"service":"<id>"…}, keys sorted, no spaces, an id is [A-Za-z0-9._:-]) by a pattern
      -- rather than a cast to jsonb, which would fail the migration on one damaged body (the chain
      -- check reports those). The LIKE skips most rows before the pattern runs.
      UPDATE events SET service_id = substring(body FROM '"subject":[{][^{}]*"service":"([A-Za-z0-9._:-]{1,128})"')
        WHERE origin = 'backend' AND body LIKE '%"service":"%'
          AND body ~ '"subject":[{][^{}]*"service":"[A-Za-z0-9._:-]{1,128}"';
      -- "Newest events of this service": the keyset page walks (service_id, cursor), as events_operator does.
      CREATE INDEX events_service ON events(service_id, cursor) WHERE service_id IS NOT NULL;
    `),
  },
  {
    version: 27,
    name: 'Shared Signals receiver: a source paused, resumed or disabled (its status, reason, who and when), the SETs held while it is paused, what its upstream answered to a status change, and its last verification (backend/ssf/receiver)',
    sql: ddl(`
      ALTER TABLE ssf_transmitters ADD COLUMN status TEXT NOT NULL DEFAULT 'enabled' CHECK (status IN ('enabled', 'paused', 'disabled'));
      ALTER TABLE ssf_transmitters ADD COLUMN status_reason TEXT;
      ALTER TABLE ssf_transmitters ADD COLUMN status_changed_at BIGINT;
      ALTER TABLE ssf_transmitters ADD COLUMN status_changed_by TEXT;
      -- JSON: what the upstream answered when Baton last asked it to change its stream's status (or announced).
      ALTER TABLE ssf_transmitters ADD COLUMN upstream_status TEXT;
      ALTER TABLE ssf_transmitters ADD COLUMN verify_state TEXT;
      ALTER TABLE ssf_transmitters ADD COLUMN verify_requested_at BIGINT;
      ALTER TABLE ssf_transmitters ADD COLUMN verify_received_at BIGINT;
      ALTER TABLE ssf_transmitters ADD COLUMN verify_jti TEXT;
      ALTER TABLE ssf_transmitters ADD COLUMN verify_error TEXT;
      -- A source disabled before this migration (DELETE …/transmitters/:id) is disabled.
      UPDATE ssf_transmitters SET status = 'disabled', status_changed_at = disabled_at WHERE disabled_at IS NOT NULL;
      -- Valid SETs a paused source pushed, applied in order when it is resumed, dropped when it is disabled.
      CREATE TABLE ssf_held_sets (
        transmitter_id TEXT NOT NULL REFERENCES ssf_transmitters(id),
        jti TEXT NOT NULL,
        received_at BIGINT NOT NULL,
        set_json TEXT NOT NULL,
        PRIMARY KEY (transmitter_id, jti)
      );
      CREATE INDEX ssf_held_sets_order ON ssf_held_sets(transmitter_id, received_at, jti);
    `),
  },
  {
    version: 28,
    name: 'Shared Signals receiver: a held SET is claimed (by whom, until when) and marked with the revocations applied for it, and removed once applied, not when claimed (backend/ssf/receiver)',
    sql: ddl(`
      -- The resume applying it (a random claim id) and until when (a lease): a node that dies leaves a claim the
      -- next resume takes over once the lease ran out.
      ALTER TABLE ssf_held_sets ADD COLUMN claimed_by TEXT;
      ALTER TABLE ssf_held_sets ADD COLUMN claimed_until BIGINT;
      -- The revocations applied for it so far ('kind:epoch', space-separated), each written in its revocation's
      -- unit of work: a claim taken over knows what its predecessor revoked.
      ALTER TABLE ssf_held_sets ADD COLUMN applied TEXT;
    `),
  },
  {
    version: 29,
    name: 'single-use claims (request nonces, sign-in challenges, jtis) in a table of one b-tree, out of ephemeral and its owner, expiry and creation indexes (issue 10)',
    sql: ddl(`
      CREATE TABLE ephemeral_claims (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (kind, key)
      );
      -- The claims made so far (claimOnce writes no owner and no value; every put has both): moved, so a nonce
      -- claimed before this migration is still refused after it while its window is open. One statement, so
      -- that a claim an older node writes meanwhile is either moved or left in place, never deleted uncopied.
      WITH moved AS (DELETE FROM ephemeral WHERE owner = '' AND value = '' RETURNING kind, key, expires_at)
      INSERT INTO ephemeral_claims (kind, key, expires_at) SELECT kind, key, expires_at FROM moved;
    `),
  },
];

/** Anything with `query` (a pg Client or PoolClient). */
type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * Brings the database up to the newest migration; returns the schema version. Each migration runs in
 * its own transaction holding `pg_advisory_xact_lock`: a node that waited for the lock re-reads the
 * version and finds the work done. Refuses a database newer than this build knows.
 */
export async function migratePostgres(
  client: Queryable,
  migrations: readonly Migration[] = POSTGRES_MIGRATIONS,
  clock: () => number = Date.now,
): Promise<number> {
  const latest = migrations.at(-1)?.version ?? 0;
  for (;;) {
    await client.query('BEGIN');
    try {
      // A migration of a large table may take longer than the pool's statement timeout; waiting for
      // another node's migration too.
      await client.query('SET LOCAL statement_timeout = 0');
      await client.query(`SELECT pg_advisory_xact_lock(${PG_LOCKS.migrations})`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS schema_migrations (
           version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`,
      );
      const result = await client.query<{ v: number }>(
        'SELECT COALESCE(MAX(version), 0)::int AS v FROM schema_migrations',
      );
      const current = result.rows[0]?.v ?? 0;
      if (current > latest) {
        throw new Error(`The database is at schema version ${current}, newer than this build knows (${latest})`);
      }
      const next = migrations.find((m) => m.version > current);
      if (next === undefined) {
        await client.query('COMMIT');
        return latest;
      }
      await client.query(next.sql);
      await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [
        next.version,
        next.name,
        clock(),
      ]);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  }
}
