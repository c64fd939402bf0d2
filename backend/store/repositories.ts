import type { AssuranceLevel } from '../../shared/levels.js';
import type { PolicyVersion } from '../../shared/policy.js';
import type { RevocationItem, RevocationKind } from '../../shared/protocol.js';
import type { StoredEvent } from '../../shared/events.js';
import type { AdminRepository } from './admin-repositories.js';
import type { AuthenticatorModelRepository } from './authenticator-models.js';

/**
 * The storage seam. Services use only these interfaces; `sqlite-store.ts` is the embedded default.
 * They are synchronous because the embedded store is (see docs/adr/0002-storage.md for what a
 * PostgreSQL store changes). Each method is atomic on its own; `transaction` groups several.
 */

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
  insert(record: ConsoleRecord): void;
  get(id: string): ConsoleRecord | undefined;
  list(): ConsoleRecord[];
  touch(id: string, at: number): void;
  setSyncState(id: string, state: { policyVersion?: number; revocationEpoch?: number }): void;
  revoke(id: string, at: number, reason: string): boolean;
  insertToken(record: ConsoleTokenRecord): void;
  getToken(hash: string): ConsoleTokenRecord | undefined;
  /** Marks a token used; false if it was already used (single use under concurrency). */
  useToken(hash: string, at: number, consoleId: string): boolean;
}

export interface OperatorRepository {
  insert(record: OperatorRecord): void;
  get(id: string): OperatorRecord | undefined;
  getByWebauthnUserId(userId: string): OperatorRecord | undefined;
  list(): OperatorRecord[];
  revoke(id: string, at: number, reason: string): boolean;
  recordFailure(id: string): number;
  resetFailures(id: string): void;
  insertCode(record: EnrolmentCodeRecord): void;
  getCode(hash: string): EnrolmentCodeRecord | undefined;
  useCode(hash: string, at: number, credentialId: string): boolean;
  insertCredential(record: CredentialRecord): void;
  getCredential(id: string): CredentialRecord | undefined;
  listCredentials(operatorId: string): CredentialRecord[];
  recordCredentialUse(id: string, counter: number, at: number): void;
  revokeCredential(id: string, at: number, reason: string): boolean;
  /** Suspends a live credential; false if it is revoked or already suspended. */
  suspendCredential(id: string, at: number, reason: string): boolean;
  /** Lifts a suspension; false if the credential was not suspended. */
  reinstateCredential(id: string): boolean;
  /** Credentials suspended and not revoked, longest suspended first: what waits for an admin's review. */
  listSuspendedCredentials(): CredentialRecord[];
}

export interface SessionRepository {
  insert(record: SessionRecord): void;
  get(id: string): SessionRecord | undefined;
  /** Live (active or suspended) sessions on a console, oldest first. */
  liveOnConsole(consoleId: string): SessionRecord[];
  liveForOperator(operatorId: string): SessionRecord[];
  list(filter: { state?: SessionState | undefined; consoleId?: string | undefined; limit: number }): SessionRecord[];
  update(id: string, changes: Partial<Omit<SessionRecord, 'id'>>): void;
}

export interface PolicyRepository {
  latest(): PolicyVersion | undefined;
  get(version: number): PolicyVersion | undefined;
  list(): PolicyVersion[];
  insert(version: PolicyVersion): void;
}

export interface RevocationRepository {
  insert(record: Omit<RevocationRecord, 'epoch'>): RevocationRecord;
  currentEpoch(): number;
  since(epoch: number): RevocationRecord[];
  recordDeliveries(epoch: number, consoleIds: string[], at: number): void;
  recordAck(consoleId: string, epoch: number, at: number): void;
  deliveries(epoch: number): { consoleId: string; sentAt: number; ackedAt: number | null }[];
}

export interface EventRepository {
  head(origin: string): StreamHead | undefined;
  setHead(origin: string, head: StreamHead): void;
  /** Inserts unless (origin, seq) exists; returns the stored hash when it did exist. */
  insert(row: EventRow): { inserted: true; cursor: number } | { inserted: false; existingHash: string };
  query(query: EventQuery): StoredEvent[];
  /** An origin's stored rows in sequence order, unparsed: for re-verifying the chain. */
  rawChain(origin: string, afterSeq: number, limit: number): RawEventRow[];
  count(): number;
}

export interface CommandRecord {
  id: string;
  consoleId: string;
  sessionId: string;
  reason: string;
  createdAt: number;
}

export interface CommandRepository {
  insert(record: CommandRecord): void;
  /** Commands not yet acknowledged by the console, oldest first. */
  pending(consoleId: string): CommandRecord[];
  acknowledge(consoleId: string, id: string, at: number): boolean;
}

export interface AdminTokenRepository {
  insert(hash: string, label: string, at: number): void;
  isValid(hash: string): boolean;
  any(): boolean;
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
  put(row: CheckpointRow): void;
  /** The newest checkpoints, newest first. */
  latest(limit: number): CheckpointRow[];
  /** Checkpoints after `afterSeq`, oldest first. */
  list(afterSeq: number, limit: number): CheckpointRow[];
  /** Every chain head as the store has it. */
  heads(): { origin: string; lastSeq: number; lastHash: string }[];
  /** The stored hash of one event, if it is stored. */
  hashAt(origin: string, seq: number): string | undefined;
}

export interface MetaRepository {
  get(key: string): string | undefined;
  set(key: string, value: string): void;
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
  transaction<T>(fn: () => T): T;
  close(): void;
}

export type { RevocationKind };
