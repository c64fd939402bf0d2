/** One signed-in admin in the admin console. The cookie holds a secret; only its hash is stored. */
export interface AdminSessionRecord {
  id: string;
  tokenHash: string;
  operatorId: string;
  credentialId: string;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  /** When the admin last proved user verification for a destructive action (null: never in this session). */
  stepUpAt: number | null;
  endedAt: number | null;
  endReason: string | null;
}

/** The outbox backlog a console reported in its last `hello`. */
export interface OutboxReport {
  consoleId: string;
  pending: number;
  max: number;
  reportedAt: number;
}

/** An operator enrolment code as admins see it: never the code, only a short id derived from its hash. */
export interface EnrolmentCodeView {
  id: string;
  operatorId: string;
  issuedBy: string;
  issuedAt: number;
  expiresAt: number;
  usedAt: number | null;
  revokedAt: number | null;
}

/** Length of the hash prefix that names an enrolment code (64 bits: unique enough, says nothing of the code). */
export const CODE_ID_LENGTH = 16;

export interface AdminRepository {
  insertSession(record: AdminSessionRecord): Promise<void>;
  sessionByTokenHash(hash: string): Promise<AdminSessionRecord | undefined>;
  touchSession(id: string, at: number): Promise<void>;
  recordStepUp(id: string, at: number): Promise<void>;
  endSession(id: string, at: number, reason: string): Promise<boolean>;
  /** Ends every live admin session; returns the ids that were live. */
  endAllSessions(at: number, reason: string, operatorId?: string): Promise<string[]>;
  liveSessions(): Promise<AdminSessionRecord[]>;
  recordOutbox(report: OutboxReport): Promise<void>;
  /** `recordOutbox` for several consoles in one statement (a burst of reconnects); one report per console. */
  recordOutboxMany(reports: readonly OutboxReport[]): Promise<void>;
  outboxReports(): Promise<OutboxReport[]>;
  listCodes(operatorId: string): Promise<EnrolmentCodeView[]>;
  /**
   * Revokes an unused code. It is also marked used, so every path that redeems codes refuses it
   * (atomically against a concurrent redemption).
   */
  revokeCode(operatorId: string, codeId: string, at: number): Promise<boolean>;
  /** Whether any operator holding the `admin` role has ever registered a passkey. */
  adminPasskeyExists(): Promise<boolean>;
  /** Whether `hash` is a bootstrap token, and whether it is still enabled. */
  bootstrapToken(hash: string): Promise<'enabled' | 'disabled' | undefined>;
  /**
   * Retires the bootstrap token for good: disables it and revokes every unused enrolment code it
   * issued to an operator holding the `admin` role (a code minted with the token must not outlive
   * it as a second way in). Returns how many tokens and codes changed; idempotent.
   */
  retireBootstrap(at: number): Promise<{ tokensDisabled: number; codesRevoked: number }>;
  setRoles(operatorId: string, roles: string[]): Promise<boolean>;
}
