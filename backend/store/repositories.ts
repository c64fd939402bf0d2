import { BatonError } from '../../shared/errors.js';
import type { AssuranceLevel } from '../../shared/levels.js';
import type { PolicyVersion } from '../../shared/policy.js';
import type { RevocationItem, RevocationKind } from '../../shared/protocol.js';
import type { StoredEvent } from '../../shared/events.js';
import type { AdminRepository } from './admin-repositories.js';
import type { AuthenticatorModelRepository } from './authenticator-models.js';
import type { SsfInboundRepository } from '../ssf/receiver/repository.js';
import type { ScimRepository } from '../scim/repository.js';

/**
 * The storage seam. Services use only these interfaces, whatever the engine: embedded SQLite (the
 * default) or PostgreSQL (a cluster of nodes). Every method is asynchronous and atomic on its own;
 * `Store.transaction` is the unit of work that groups several (a state change and the event that
 * records it commit together or not at all). See docs/adr/0005-cluster-storage.md.
 *
 * A unit of work may run more than once (the engine may retry it after a serialization failure or a
 * deadlock): its side effects outside the database go only through `afterCommit` / `publish`.
 *
 * **Lock order.** On PostgreSQL a unit of work locks rows when it updates them (or reads them with
 * `getForUpdate`, `liveOnConsole`/`liveForOperator` with `forUpdate`, `lockHead`), until it ends. Two
 * units that take the same rows in different orders can deadlock (40P01): PostgreSQL then aborts one
 * after a second. Every unit therefore takes its locks in this order, skipping what it does not need:
 *
 *   0. a Shared Signals source (`ssf_transmitters`: `lockTransmitter`), then its held SETs (`ssf_held_sets`: a
 *      claim, a disable's drop, and, first in a revocation applying a held SET, `fenceHeld`: RevokeHooks.before);
 *   1. console event chain heads (`lockHead(console id)`, ingest only), ascending origin;
 *   2. the credential (`recordCredentialUse`, `suspendCredential`, `revokeCredential`, `getCredential` with
 *      `forUpdate`);
 *   3. the operator (`recordFailure`, `resetFailures`, `revoke`, `get` with `forUpdate`);
 *   4. the console (`touch`, `revoke`, `get` with `forUpdate`);
 *   5. sessions, ascending id (several at once only through the `forUpdate` reads, which lock in id
 *      order; a unit that changes several sessions reads them locked before changing any);
 *      A service's row (`services`: the token endpoint's `touchLive`, its revocation, a key rotation's
 *      `getServiceForUpdate`) sits here too: no unit takes it with the rows above;
 *   6. the backend's own event chain head: taken by the unit's first `record` (EventLog), so every
 *      lock above is taken before the unit records anything;
 *   7. after the head, only rows that no unit locks before it: enrolment codes and console tokens
 *      (single use), admin tokens and admin sessions, policy versions, commands, revocation epochs
 *      (the `revocation_epoch` counter row) and deliveries, meta. Units that only take these (enrolment, admin
 *      ceremonies) may take the head first, which serialises them.
 *
 * SQLite has no row locks: `BEGIN IMMEDIATE` serialises writing units whole, so no order is needed
 * there; the order is what makes PostgreSQL safe (test/integration/store-races.test.ts).
 */

/** The synchronous shape of an async repository (what a better-sqlite3 implementation offers). */
export type Sync<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => Promise<infer R> ? (...args: A) => R : T[K];
};

export interface ConsoleRecord {
  id: string;
  name: string | null;
  channel: string;
  site: string | null;
  publicJwk: string;
  jkt: string;
  enrolledAt: number;
  lastSeenAt: number | null;
  policyVersion: number;
  revocationEpoch: number;
  revokedAt: number | null;
  revokedReason: string | null;
}

export interface OneTimeSecretRecord {
  hash: string;
  issuedBy: string;
  issuedAt: number;
  expiresAt: number;
  usedAt: number | null;
}

export interface ConsoleTokenRecord extends OneTimeSecretRecord {
  channel: string | null;
  site: string | null;
}

export interface EnrolmentCodeRecord extends OneTimeSecretRecord {
  operatorId: string;
}

export interface OperatorRecord {
  id: string;
  displayName: string;
  roles: string[];
  webauthnUserId: string;
  createdAt: number;
  failedAttempts: number;
  revokedAt: number | null;
  revokedReason: string | null;
}

/**
 * What the attestation proves about the authenticator model: `certificate` — a certificate chain to
 * a configured vendor root vouches for the AAGUID; `unverified-certificate` — a certificate, but no
 * roots are configured to check it against; `self` and `none` — no model evidence.
 */
export type AttestationTrust = 'none' | 'self' | 'unverified-certificate' | 'certificate';

export interface CredentialRecord {
  id: string;
  operatorId: string;
  publicKey: Uint8Array;
  counter: number;
  transports: string[];
  deviceBound: boolean;
  backedUp: boolean;
  aaguid: string;
  attestationFmt: string;
  attestationTrust: AttestationTrust;
  registeredOnConsole: string;
  createdAt: number;
  lastUsedAt: number | null;
  revokedAt: number | null;
  revokedReason: string | null;
  /** Set when a signature-counter regression suspended it (possible copy), until an admin reinstates it. */
  suspendedAt: number | null;
  suspendedReason: string | null;
}

export type SessionState = 'active' | 'suspended' | 'ended' | 'revoked' | 'expired';

export interface SessionRecord {
  id: string;
  operatorId: string;
  consoleId: string;
  channel: string;
  credentialId: string;
  level: AssuranceLevel;
  authTime: number;
  startedAt: number;
  expiresAt: number;
  state: SessionState;
  suspendedAt: number | null;
  endedAt: number | null;
  endReason: string | null;
}

export interface RevocationRecord extends RevocationItem {
  consoleId: string | null;
  actor: string;
}

export interface EventRow {
  origin: string;
  seq: number;
  id: string;
  time: number;
  receivedAt: number;
  type: string;
  outcome: string;
  operatorId: string | null;
  consoleId: string | null;
  sessionId: string | null;
  /**
   * The service account a backend event is about (its `subject.service`); null for a console's events,
   * which cannot speak for a service (as the console column holds the sending console, not a claim).
   */
  serviceId: string | null;
  body: string;
  hash: string;
  integrity: string[];
}

export interface RawEventRow {
  seq: number;
  body: string;
  hash: string;
  integrity: string[];
}

export interface EventQuery {
  operator?: string | undefined;
  console?: string | undefined;
  session?: string | undefined;
  /** The service a backend event is about (the `service_id` column). */
  service?: string | undefined;
  type?: string | undefined;
  origin?: string | undefined;
  from?: number | undefined;
  to?: number | undefined;
  afterCursor?: number | undefined;
  /** Walks one origin's chain in sequence order (with `origin`) instead of store order. */
  afterSeq?: number | undefined;
  limit: number;
}

export interface StreamHead {
  lastSeq: number;
  lastHash: string;
}

export interface ConsoleRepository {
  insert(record: ConsoleRecord): Promise<void>;
  /**
   * `forUpdate` (inside a unit of work that revokes it): on PostgreSQL the row stays locked until the unit ends, as
   * the UPDATE that revokes it would lock it (FOR NO KEY UPDATE: a row referring to it may still be inserted), so the
   * revocation takes its time once it holds the row and writes it later (RevocationHub).
   */
  get(id: string, options?: { forUpdate?: boolean }): Promise<ConsoleRecord | undefined>;
  /** Several consoles in one statement (a burst of reconnects): the ones that exist, by id. */
  getMany(ids: readonly string[]): Promise<Map<string, ConsoleRecord>>;
  list(): Promise<ConsoleRecord[]>;
  touch(id: string, at: number): Promise<void>;
  /**
   * Many consoles' last contact at once (one node's sightings since its last flush): each
   * `last_seen_at` only ever moves forward, whichever node writes. Inside a unit of work, one statement locking the
   * rows in ascending id; outside one, on PostgreSQL, it gives way to transactions holding rows (250-row statements,
   * `SKIP LOCKED`) and waits, in ascending id, only for what is still held at the end; on SQLite, 100 consoles per
   * unit with a turn of the event loop between two units (other work runs between them).
   */
  touchMany(sightings: readonly { id: string; at: number }[]): Promise<void>;
  setSyncState(id: string, state: { policyVersion?: number; revocationEpoch?: number }): Promise<void>;
  revoke(id: string, at: number, reason: string): Promise<boolean>;
  insertToken(record: ConsoleTokenRecord): Promise<void>;
  getToken(hash: string): Promise<ConsoleTokenRecord | undefined>;
  /** Marks a token used; false if it was already used (single use under concurrency). */
  useToken(hash: string, at: number, consoleId: string): Promise<boolean>;
}

export interface OperatorRepository {
  insert(record: OperatorRecord): Promise<void>;
  /**
   * `forUpdate` (inside a unit of work that revokes it): on PostgreSQL the row stays locked until the unit ends, as
   * the UPDATE that revokes it would lock it (FOR NO KEY UPDATE: a row referring to it may still be inserted), so the
   * revocation takes its time once it holds the row and writes it later (RevocationHub).
   */
  get(id: string, options?: { forUpdate?: boolean }): Promise<OperatorRecord | undefined>;
  getByWebauthnUserId(userId: string): Promise<OperatorRecord | undefined>;
  list(): Promise<OperatorRecord[]>;
  revoke(id: string, at: number, reason: string): Promise<boolean>;
  recordFailure(id: string): Promise<number>;
  resetFailures(id: string): Promise<void>;
  insertCode(record: EnrolmentCodeRecord): Promise<void>;
  getCode(hash: string): Promise<EnrolmentCodeRecord | undefined>;
  useCode(hash: string, at: number, credentialId: string): Promise<boolean>;
  insertCredential(record: CredentialRecord): Promise<void>;
  /** `forUpdate` as for `get`. */
  getCredential(id: string, options?: { forUpdate?: boolean }): Promise<CredentialRecord | undefined>;
  listCredentials(operatorId: string): Promise<CredentialRecord[]>;
  /**
   * Stores a verified assertion's signature counter and the time of use, only if the counter advances
   * (WebAuthn: a non-zero counter must strictly increase; zero stays accepted while the stored one is
   * zero), decided by one conditional UPDATE, not by a read before it: of two nodes (or units)
   * advancing the same credential to the same counter, one wins and the other gets the error of
   * `counterNotAdvanced` (WEBAUTHN_COUNTER_REGRESSED), the code of the cloned-key path.
   */
  recordCredentialUse(id: string, counter: number, at: number): Promise<void>;
  /**
   * A verified assertion's writes and its revocation re-check, in the unit of work that acts on it,
   * in the lock order above (credential, operator, console): the credential's counter and time of use
   * as `recordCredentialUse` (same condition, same error), the operator's failure count set to zero
   * (its row written, so locked, even when it already was zero), the console's last contact when
   * `consoleId` is given (written, so locked); each row's revocation state as the write left it
   * (PostgreSQL, read committed: a revocation committed before the write is seen, one after it waits
   * for this unit). One statement on PostgreSQL, three on SQLite (perf, issue 10).
   */
  recordAssertionUse(input: AssertionUseInput): Promise<AssertionRowsState>;
  /** A credential and its operator in one read (sign-in and step-up read both before verifying). */
  getCredentialWithOperator(
    id: string,
  ): Promise<{ credential: CredentialRecord; operator: OperatorRecord } | undefined>;
  revokeCredential(id: string, at: number, reason: string): Promise<boolean>;
  /** Suspends a live credential; false if it is revoked or already suspended. */
  suspendCredential(id: string, at: number, reason: string): Promise<boolean>;
  /** Lifts a suspension; false if the credential was not suspended. */
  reinstateCredential(id: string): Promise<boolean>;
  /** Credentials suspended and not revoked, longest suspended first: what waits for an admin's review. */
  listSuspendedCredentials(): Promise<CredentialRecord[]>;
}

/** What one assertion writes (`recordAssertionUse`): the credential's counter, the time of use, the operator and console. */
export interface AssertionUseInput {
  credentialId: string;
  counter: number;
  at: number;
  operatorId: string;
  consoleId?: string;
}

/** What `recordAssertionUse` found, each row as its write left it (undefined: the row is gone or was not written). */
export interface AssertionRowsState {
  credential: { revokedAt: number | null; suspendedAt: number | null };
  operatorRevokedAt: number | null | undefined;
  consoleRevokedAt: number | null | undefined;
}

/** What `recordCredentialUse` throws when the stored counter is already at or past `counter`. */
export function counterNotAdvanced(credentialId: string, counter: number): BatonError {
  return new BatonError(
    'WEBAUTHN_COUNTER_REGRESSED',
    `The signature counter ${counter} of credential "${credentialId}" is not above the one stored meanwhile: this looks like a copy of a registered key used at the same time`,
    { extra: { receivedCounter: counter } },
  );
}

export interface SessionRepository {
  insert(record: SessionRecord): Promise<void>;
  get(id: string): Promise<SessionRecord | undefined>;
  /**
   * Reads a session to change it, inside a unit of work: on PostgreSQL the row stays locked until the
   * unit ends, so two nodes (or two units) deciding from its state cannot overwrite each other's change.
   */
  getForUpdate(id: string): Promise<SessionRecord | undefined>;
  /**
   * Live (active or suspended) sessions on a console, oldest first. `forUpdate` (inside a unit of
   * work that changes them): on PostgreSQL the rows stay locked until the unit ends, and a row another
   * unit ended meanwhile is not returned (the read waits for it and sees it no longer live).
   */
  liveOnConsole(consoleId: string, options?: { forUpdate?: boolean }): Promise<SessionRecord[]>;
  /** Live sessions of an operator on any console, oldest first; `forUpdate` as for `liveOnConsole`. */
  liveForOperator(operatorId: string, options?: { forUpdate?: boolean }): Promise<SessionRecord[]>;
  list(filter: {
    state?: SessionState | undefined;
    consoleId?: string | undefined;
    limit: number;
  }): Promise<SessionRecord[]>;
  update(id: string, changes: Partial<Omit<SessionRecord, 'id'>>): Promise<void>;
  /** `update`, then the session as the update left it, in one statement (undefined: no such session). */
  updateAndGet(id: string, changes: Partial<Omit<SessionRecord, 'id'>>): Promise<SessionRecord | undefined>;
}

export interface PolicyRepository {
  latest(): Promise<PolicyVersion | undefined>;
  get(version: number): Promise<PolicyVersion | undefined>;
  list(): Promise<PolicyVersion[]>;
  insert(version: PolicyVersion): Promise<void>;
}

export interface RevocationRepository {
  /**
   * The next epoch (gapless, in commit order across nodes). `deliveredTo`: consoles it is pushed to
   * right after the commit, their delivery rows written with it (as `recordDeliveries`).
   */
  insert(
    record: Omit<RevocationRecord, 'epoch'>,
    deliveredTo?: { consoleIds: readonly string[]; at: number },
  ): Promise<RevocationRecord>;
  currentEpoch(): Promise<number>;
  since(epoch: number): Promise<RevocationRecord[]>;
  recordDeliveries(epoch: number, consoleIds: string[], at: number): Promise<void>;
  /**
   * One console's delivery rows of several epochs (a catch-up, thousands for a new console): one statement, rows
   * already there left as they are.
   */
  recordCatchUp(consoleId: string, epochs: readonly number[], at: number): Promise<void>;
  /**
   * After a restore from a backup (backend/advance-revocation-epoch-cli.ts): raises the epoch counter so
   * that the next revocation's epoch is above `past` as well as above every epoch stored or handed out.
   * `from`: the highest of those before; `to`: the counter after (the next epoch is `to + 1`). Never
   * lowers it; the gap it leaves is harmless (no reader of epochs assumes them gapless).
   */
  advanceEpoch(past: number): Promise<{ from: number; to: number }>;
  recordAck(consoleId: string, epoch: number, at: number): Promise<void>;
  /**
   * Each entry: its console applied every revocation up to `epoch`, and first said so (an ack of that
   * epoch or a higher one) at `at`. A console may have several entries, of different epochs (acks of
   * successive fan-outs, written together). Its revocation_epoch is raised (never lowered) to its
   * highest, and each of its unacknowledged deliveries up to that is marked acknowledged at the earliest
   * `at` of its entries of that delivery's epoch or higher (the first ack that covered it), in one unit
   * and a few statements whatever the number of entries (the revocation hub's group commit of thousands
   * of acks). Locks consoles in ascending id first. `sentAt`: this node pushed `epoch` to the console
   * then and its delivery row may not be written yet; the row is written here if missing, acknowledged
   * (so an ack never waits for delivery rows). Entries of the same console and epoch count as one.
   * Outside a unit of work it opens its own (one statement for a single entry on PostgreSQL).
   */
  recordAcks(acks: readonly { consoleId: string; epoch: number; at: number; sentAt?: number }[]): Promise<void>;
  deliveries(epoch: number): Promise<{ consoleId: string; sentAt: number; ackedAt: number | null }[]>;
}

export interface EventRepository {
  head(origin: string): Promise<StreamHead | undefined>;
  /** Several origins' heads in one statement (a burst of console hellos): the ones that exist, by origin. */
  heads(origins: readonly string[]): Promise<Map<string, StreamHead>>;
  /**
   * An origin's chain head for the rest of the current transaction, locked against every other
   * transaction appending to that chain (on any node) until it commits or rolls back; only inside
   * `Store.transaction`. An origin with no events yet has `{ lastSeq: 0, lastHash: GENESIS_HASH }`.
   * PostgreSQL: `INSERT … (origin, 0, GENESIS_HASH) ON CONFLICT DO NOTHING` of the head row, then
   * `SELECT … FOR UPDATE`; SQLite: a plain read (`BEGIN IMMEDIATE` already serialises writers).
   * Lock several origins in one transaction in sorted order, the backend's own origin last.
   */
  lockHead(origin: string): Promise<StreamHead>;
  setHead(origin: string, head: StreamHead): Promise<void>;
  /** Inserts unless (origin, seq) exists; returns the stored hash when it did exist. */
  insert(row: EventRow): Promise<{ inserted: true; cursor: number } | { inserted: false; existingHash: string }>;
  /**
   * `insert` for many rows in as few round trips as the engine allows: results in the order of
   * `rows`, as if each row had been inserted in turn (a row repeating an earlier (origin, seq) of the
   * same call is not inserted), and cursors increasing in the order of `rows`.
   */
  insertMany(
    rows: readonly EventRow[],
  ): Promise<({ inserted: true; cursor: number } | { inserted: false; existingHash: string })[]>;
  query(query: EventQuery): Promise<StoredEvent[]>;
  /** An origin's stored rows in sequence order, unparsed: for re-verifying the chain. */
  rawChain(origin: string, afterSeq: number, limit: number): Promise<RawEventRow[]>;
  count(): Promise<number>;
}

export interface CommandRecord {
  id: string;
  consoleId: string;
  sessionId: string;
  reason: string;
  createdAt: number;
}

export interface CommandRepository {
  insert(record: CommandRecord): Promise<void>;
  /** Commands not yet acknowledged by the console, oldest first. */
  pending(consoleId: string): Promise<CommandRecord[]>;
  /** `pending` for several consoles in one statement: each console with a pending command, its commands oldest first. */
  pendingFor(consoleIds: readonly string[]): Promise<Map<string, CommandRecord[]>>;
  /**
   * Every command not yet acknowledged, of every console, oldest first: one query for a node's
   * catch-up after it missed notifications (the pending partial index; unacknowledged commands are few).
   */
  pendingAll(): Promise<CommandRecord[]>;
  acknowledge(consoleId: string, id: string, at: number): Promise<boolean>;
}

export interface AdminTokenRepository {
  insert(hash: string, label: string, at: number): Promise<void>;
  isValid(hash: string): Promise<boolean>;
  any(): Promise<boolean>;
}

/** A signed checkpoint of every chain head, as stored (`body` is the canonical JSON that was signed). */
export interface CheckpointRow {
  seq: number;
  at: number;
  kid: string;
  body: string;
  sig: string;
}

export interface CheckpointRepository {
  /** Stores a checkpoint (replacing any row with its number). */
  put(row: CheckpointRow): Promise<void>;
  /** The newest checkpoints, newest first. */
  latest(limit: number): Promise<CheckpointRow[]>;
  /** Checkpoints after `afterSeq`, oldest first. */
  list(afterSeq: number, limit: number): Promise<CheckpointRow[]>;
  /** Every chain head as the store has it. */
  heads(): Promise<{ origin: string; lastSeq: number; lastHash: string }[]>;
  /** The stored hash of one event, if it is stored. */
  hashAt(origin: string, seq: number): Promise<string | undefined>;
}

export interface MetaRepository {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string): Promise<void>;
  /**
   * Inserts the row unless one with that key exists (never overwrites): whether it did. Of two units inserting the
   * same key, the second waits for the first (PostgreSQL: the primary key; SQLite: units are serialised) and then
   * inserts nothing.
   */
  insertIfAbsent(key: string, value: string): Promise<boolean>;
}

export interface Store {
  consoles: ConsoleRepository;
  operators: OperatorRepository;
  sessions: SessionRepository;
  policies: PolicyRepository;
  revocations: RevocationRepository;
  events: EventRepository;
  commands: CommandRepository;
  adminTokens: AdminTokenRepository;
  /** Admin console: admin sessions, console outbox reports, enrolment code listing (migration 5). */
  admin: AdminRepository;
  /** Authenticator models from the FIDO metadata BLOB an admin supplied (migration 6). */
  authenticatorModels: AuthenticatorModelRepository;
  meta: MetaRepository;
  /** Signed checkpoints of the event chains (migration 8). */
  checkpoints: CheckpointRepository;
  /** Short-lived single-use state every node must share: WebAuthn challenges, request nonces. */
  ephemeral: EphemeralRepository;
  /** Shared Signals receiver: upstream transmitters, refusals, operator identities (migration 13, backend/ssf/receiver/). */
  ssfInbound: SsfInboundRepository;
  /** SCIM provisioning: directories, users, groups (migration 13, backend/scim/). */
  scim: ScimRepository;
  /** Which engine this is: `sqlite` (one process) or `postgres` (any number of nodes). */
  readonly engine: StoreEngine;
  /**
   * The unit of work: `fn` runs against a store bound to one transaction, which commits when `fn`
   * resolves and rolls back when it throws. Inside, use only `tx` (never the outer store, which on
   * SQLite would wait for this very transaction), and do no slow non-database work: the engine
   * holds locks until it returns. A `transaction` called on `tx` runs inside the same one.
   * A unit of work may run more than once (PostgreSQL re-runs one rolled back by a deadlock or a
   * serialization failure, then fails with BACKEND_BUSY): `fn` has no side effect outside the
   * transaction; side effects only through EventLog's afterCommit/publish. Locks: in the order at the
   * top of this file.
   */
  transaction<T>(fn: (tx: Store) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export type StoreEngine = 'sqlite' | 'postgres';

/**
 * Trust state that used to live in one process's memory and must now hold across nodes.
 * `take` is single use under concurrency: of two nodes taking the same key, one gets the value.
 */
export interface EphemeralRepository {
  /**
   * Stores `value` under `key` (in namespace `kind`) until `expiresAt`; `owner` groups entries
   * (a console's challenges) and at most `maxPerOwner` live ones are kept, the oldest dropped.
   */
  put(
    entry: { kind: string; key: string; owner: string; value: string; expiresAt: number },
    maxPerOwner?: number,
  ): Promise<void>;
  /**
   * Removes and returns the entry if it exists (expired or not: the caller reports expiry). A key
   * recorded by `claimOnce` or `claimMany` is an entry too (owner and value ''): taking it withdraws the claim.
   */
  take(kind: string, key: string): Promise<{ owner: string; value: string; expiresAt: number } | undefined>;
  /** Records `key` once; false if it is already recorded and unexpired (replay). */
  claimOnce(kind: string, key: string, expiresAt: number, now: number): Promise<boolean>;
  /**
   * `claimOnce` for many keys of one kind at once (one statement per ~1,000 keys on PostgreSQL, for a
   * burst of signed requests such as consoles reconnecting after a failover): the keys this call
   * claimed. A key given twice is claimed at most once.
   */
  claimMany(kind: string, entries: readonly { key: string; expiresAt: number }[], now: number): Promise<Set<string>>;
  /** Deletes expired entries; returns how many. */
  sweep(now: number): Promise<number>;
}

export type { RevocationKind };
