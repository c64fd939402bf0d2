import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import type { ErrorCode } from '../../shared/errors.js';
import type { AssuranceLevel } from '../../shared/levels.js';
import type { SupportContact } from '../../shared/policy.js';
import type { ConnectionState } from './backend-client.js';
import type { Clock, Random } from './clock.js';
import type { IdentityStatus } from './console-identity.js';
import type { OutboxStatus } from './event-outbox.js';
import type { SecretStore } from './secret-store.js';
import type { EndedSession, SessionSnapshot } from './session-manager.js';

/**
 * The browser half of each ceremony, injected: in Electron the renderer runs
 * `navigator.credentials`; in tests a software authenticator answers. A rejection means the
 * operator cancelled or the authenticator gave no answer.
 */
export interface CeremonyPort {
  getAssertion(request: {
    purpose: 'sign-in' | 'step-up' | 'offline-resume' | 'break-glass';
    action?: string;
    /** Break-glass: the operator the supervisor's tap lets in (the id they typed). */
    operatorName?: string;
    options: PublicKeyCredentialRequestOptionsJSON;
  }): Promise<AuthenticationResponseJSON>;
  createCredential(request: {
    operatorName: string;
    options: PublicKeyCredentialCreationOptionsJSON;
  }): Promise<RegistrationResponseJSON>;
}

/** The subset of pino the core uses; secrets and tokens are never passed to it. */
export interface AgentLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: AgentLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

export type AgentConnection = ConnectionState | 'syncing';

export type AgentPhase =
  | { kind: 'idle' }
  | { kind: 'signing-in'; offline: boolean }
  | { kind: 'stepping-up'; action: string; level?: AssuranceLevel; reasons?: string[] }
  | { kind: 'enrolling-operator' }
  | { kind: 'enrolling-console' };

export type AgentNotice = { code: ErrorCode; message: string; at: number } | undefined;

/** What the UI shows: one clear status at all times. */
export interface AgentStatus {
  identity: IdentityStatus;
  connection: AgentConnection;
  phase: AgentPhase;
  front: SessionSnapshot | undefined;
  /** The lock screen covers the workspaces (nobody in front, or the one in front is locked). */
  locked: boolean;
  sessions: SessionSnapshot[];
  outbox: OutboxStatus | undefined;
  policyVersion: number;
  /** The last refusal or problem, with its stable code, for the UI to explain. */
  notice: AgentNotice;
  /** The channel's timings the UI explains ("only people already signed in here can come back, for N minutes"). */
  limits:
    | { idleLockSeconds: number; continuitySeconds: number; offlineGraceSeconds: number; tapAndGo?: boolean }
    | undefined;
  /** The last session that left the console and why (revoked, expired, ended), for the UI to explain. */
  lastEnded: EndedSession | undefined;
  /** The idle lock is near (wall time it falls); input takes the warning away. */
  idleWarning: { locksAt: number } | undefined;
  /** "Ask IT": the policy's support contact for this console's site. */
  support: SupportContact | undefined;
}

export type AuthorizeResult =
  | { outcome: 'allow'; steppedUp: boolean; reasons: string[] }
  | { outcome: 'deny'; reasons: string[] }
  | { outcome: 'refused'; code: ErrorCode; message: string };

export interface AgentOptions {
  backendUrl: string;
  channel: string;
  rpId: string;
  origin: string;
  dataDir: string;
  agentVersion: string;
  enrolmentToken?: string;
  consoleName?: string;
}

export interface AgentDeps {
  secrets: SecretStore;
  ceremonies: CeremonyPort;
  clock?: Clock;
  random?: Random;
  logger?: AgentLogger;
}
