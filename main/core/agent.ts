import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { existsSync, renameSync } from 'node:fs';
import {
  verifyAuthenticationResponse,
  type AuthenticationResponseJSON,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { decodeClientDataJSON } from '@simplewebauthn/server/helpers';
import { BatonError, isErrorCode, type ErrorCode } from '../../shared/errors.js';
import { SIGN_IN_ACTION, evaluatePolicy, type Decision } from '../../shared/evaluate-policy.js';
import type { AssuranceEvent, EventDraft } from '../../shared/events.js';
import {
  AuthenticationResponseSchema,
  OperatorEnrolOptionsResultSchema,
  OperatorEnrolResultSchema,
  RegistrationResponseSchema,
  SessionEndResultSchema,
  SessionTokenResultSchema,
  SignInOptionsResultSchema,
  SignInResultSchema,
  StepUpOptionsResultSchema,
  StepUpResultSchema,
} from '../../shared/http-api.js';
import { levelFromAuthentication, type AssuranceLevel } from '../../shared/levels.js';
import { webauthnRefusalCode } from '../../shared/webauthn-errors.js';
import { DEFAULT_POLICY, type ChannelPolicy, type Policy } from '../../shared/policy.js';
import {
  MAX_EVENTS_PER_BATCH,
  MAX_MESSAGE_BYTES,
  type BackendMessage,
  type RevocationItem,
} from '../../shared/protocol.js';
import { BackendClient, type ConnectionState } from './backend-client.js';
import { systemClock, type Clock, type Random } from './clock.js';
import { hashPolicy } from './policy-hash.js';
import { ConsoleIdentity, type IdentityStatus } from './console-identity.js';
import { EventOutbox, type OutboxStatus, type RecoveryReport } from './event-outbox.js';
import type { SecretStore } from './secret-store.js';
import {
  SessionManager,
  assuranceOf,
  type AgentSession,
  type EndedSession,
  type FinalState,
  type SessionSnapshot,
} from './session-manager.js';

/** Batches awaiting `events-ack` at once (the backend reads at most 4 ahead per console). */
export const MAX_BATCHES_IN_FLIGHT = 4;
/** How long a ceremony waits for the agent to catch up after reconnecting before it is refused. */
export const SYNC_WAIT_MS = 15_000;
/** A locally generated offline challenge is good for one assertion within this time. */
export const OFFLINE_CHALLENGE_TTL_MS = 120_000;
/** Answers to a token refresh that mean "no token for this session" (any other failure is retried). */
const TOKEN_REFUSALS: ReadonlySet<string> = new Set([
  'SESSION_NOT_ACTIVE',
  'SESSION_UNKNOWN',
  'OPERATOR_REVOKED',
  'CREDENTIAL_REVOKED',
  'CREDENTIAL_SUSPENDED',
  'CONSOLE_REVOKED',
  'CONSOLE_UNKNOWN',
]);

/**
 * The browser half of each ceremony, injected: in Electron the renderer runs
 * `navigator.credentials`; in tests a software authenticator answers. A rejection means the
 * operator cancelled or the authenticator gave no answer.
 */
export interface CeremonyPort {
  getAssertion(request: {
    purpose: 'sign-in' | 'step-up' | 'offline-resume';
    action?: string;
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

export type AgentConnection = ConnectionState | 'syncing';

export type AgentPhase =
  | { kind: 'idle' }
  | { kind: 'signing-in'; offline: boolean }
  | { kind: 'stepping-up'; action: string; level?: AssuranceLevel; reasons?: string[] }
  | { kind: 'enrolling-operator' }
  | { kind: 'enrolling-console' };

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
  notice: { code: ErrorCode; message: string; at: number } | undefined;
  /** The channel's timings the UI explains ("only people already signed in here can come back, for N minutes"). */
  limits: { idleLockSeconds: number; continuitySeconds: number; offlineGraceSeconds: number } | undefined;
  /** The last session that left the console and why (revoked, expired, ended), for the UI to explain. */
  lastEnded: EndedSession | undefined;
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

const silentLogger: AgentLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/**
 * The agent core: console identity, the backend connection, the durable outbox, the session
 * manager and the ceremonies that drive it. No Electron here: the shell injects the ceremony port
 * and feeds idle and lock signals; everything else runs under plain Node.
 */
export class BatonAgent {
  private client: BackendClient | undefined;
  private outbox: EventOutbox | undefined;
  private sessions: SessionManager | undefined;
  private connection: AgentConnection = 'stopped';
  private phase: AgentPhase = { kind: 'idle' };
  private notice: AgentStatus['notice'];
  private readonly listeners = new Set<(status: AgentStatus) => void>();
  private readonly syncWaiters = new Set<() => void>();
  private sync = { welcomed: false, policyVersion: 0, policyHash: '', revocationEpoch: 0, flushTo: 0 };
  private wasOnline = false;
  /** Monotonic time the backend was lost (for `agent-online`'s `offlineMs`). */
  private offlineSince: number | undefined;
  private sentUpTo = 0;
  private inFlight = 0;
  private pumpScheduled = false;
  private nearFullReported = false;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly logger: AgentLogger;
  /** Events the journal refused (full or failing disk): shown, never silently lost from view. */
  private journalFailures = 0;
  recovery: RecoveryReport | undefined;

  private constructor(
    private readonly options: AgentOptions,
    private readonly deps: AgentDeps,
    private readonly identity: ConsoleIdentity,
  ) {
    this.clock = deps.clock ?? systemClock;
    this.random = deps.random ?? Math.random;
    this.logger = deps.logger ?? silentLogger;
  }

  /** Loads the identity (enrolling with the configured token when there is none) and connects. */
  static async start(options: AgentOptions, deps: AgentDeps): Promise<BatonAgent> {
    const clock = deps.clock ?? systemClock;
    const identity = await ConsoleIdentity.load(options.dataDir, deps.secrets, clock);
    const agent = new BatonAgent(options, deps, identity);
    if (identity.status.kind === 'unenrolled' && options.enrolmentToken !== undefined) {
      try {
        await agent.enrolConsole(options.enrolmentToken);
        return agent;
      } catch (error) {
        agent.setNotice(error);
      }
    }
    agent.boot();
    return agent;
  }

  // ---- status ----

  get status(): AgentStatus {
    const sessions = this.sessions?.snapshot() ?? [];
    const front = sessions.find((s) => s.inFront);
    const channel = this.channelPolicy();
    return {
      identity: this.identity.status,
      connection: this.connection,
      phase: this.phase,
      front,
      locked: front === undefined || front.state === 'locked',
      sessions,
      outbox: this.outbox?.status,
      policyVersion: this.identity.policy?.version ?? 0,
      notice: this.notice,
      limits:
        channel === undefined
          ? undefined
          : {
              idleLockSeconds: channel.idleLockSeconds,
              continuitySeconds: channel.continuitySeconds,
              offlineGraceSeconds: channel.offlineGraceSeconds,
            },
      lastEnded: this.sessions?.lastEnded,
    };
  }

  onStatus(listener: (status: AgentStatus) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The policy in force: the last one the backend sent, or the built-in defaults before the first. */
  get policy(): Policy {
    return this.identity.policy?.policy ?? DEFAULT_POLICY;
  }

  /** The assurance token of the session in front, for the workspace app (never logged, never on disk). */
  get frontToken(): string | undefined {
    // Never an expired token: the session manager hands it out only while it has time left, and the
    // agent refreshes it before then (refreshToken).
    return this.sessions?.frontToken;
  }

  // ---- console identity ----

  /** Enrols this console with a one-time token from IT (first start, or after revocation). */
  async enrolConsole(token: string): Promise<IdentityStatus> {
    if (this.phase.kind !== 'idle') throw this.refuse('CEREMONY_IN_PROGRESS', 'Another task is running');
    // An enrolled console is not enrolled over: the attempt would first drop the connection and
    // every signed-in session (without an event), whatever the token turns out to be.
    if (this.identity.status.kind === 'enrolled') {
      throw this.refuse(
        'CONSOLE_ALREADY_ENROLLED',
        'This console is already enrolled; IT revokes it before it is enrolled again',
      );
    }
    this.phase = { kind: 'enrolling-console' };
    this.changed();
    try {
      this.shutdownConnection();
      const previous = this.identity.status;
      const status = await this.identity.enrol({
        backendUrl: this.options.backendUrl,
        token,
        channel: this.options.channel,
        ...(this.options.consoleName === undefined ? {} : { name: this.options.consoleName }),
      });
      if (previous.kind === 're-enrolment-required') this.notice = undefined;
      this.phase = { kind: 'idle' };
      this.boot();
      return status;
    } catch (error) {
      this.phase = { kind: 'idle' };
      this.boot();
      throw this.setNotice(error);
    }
  }

  // ---- operator flows ----

  /** First-time operator enrolment with the code an admin issued. */
  async enrolOperator(code: string): Promise<{ operatorId: string; displayName: string }> {
    const client = this.requireClient();
    return this.ceremony({ kind: 'enrolling-operator' }, async () => {
      await this.whenOnline();
      const { options, operator } = await client.request(
        'POST',
        '/v1/operators/enrol/options',
        { code },
        OperatorEnrolOptionsResultSchema,
      );
      const response = await this.ask(() =>
        this.deps.ceremonies.createCredential({
          operatorName: operator.displayName,
          options: options as unknown as PublicKeyCredentialCreationOptionsJSON,
        }),
      );
      const checked = RegistrationResponseSchema.safeParse(response);
      if (!checked.success) throw new BatonError('CEREMONY_CANCELLED', 'The authenticator gave an unusable answer');
      const result = await client.request(
        'POST',
        '/v1/operators/enrol/verify',
        { code, response: checked.data },
        OperatorEnrolResultSchema,
      );
      return { operatorId: result.operatorId, displayName: result.displayName };
    });
  }

  /**
   * An operator taps their key at the lock screen: starts or resumes *their* session and brings it
   * to the front, suspending whoever was there. Without the backend, only a locked or suspended
   * session inside the offline grace can be resumed.
   */
  async tapIn(): Promise<SessionSnapshot> {
    const sessions = this.requireSessions();
    const online = await this.awaitSyncedOrOffline();
    return this.ceremony({ kind: 'signing-in', offline: !online }, async () => {
      const session = online ? await this.tapInOnline(sessions) : await this.tapInOffline(sessions);
      const snapshot = sessions.snapshot().find((s) => s.id === session.id);
      if (snapshot === undefined) throw new BatonError('INTERNAL', 'The session vanished while it was being shown');
      return snapshot;
    });
  }

  /**
   * May the operator in front do `action`? Runs the shared evaluator; when the policy asks for
   * step-up it re-authenticates the *current* operator (a tap by someone else is refused by the
   * backend and recorded there), then allows.
   */
  async authorize(action: string): Promise<AuthorizeResult> {
    const sessions = this.requireSessions();
    const front = sessions.front;
    if (front === undefined || (front.state !== 'active' && front.state !== 'stepped-up')) {
      const error = this.refuse('NO_SESSION_IN_FRONT', 'Nobody is signed in and in front on this console');
      return { outcome: 'refused', code: error.code, message: error.message };
    }
    sessions.noteActivity();
    const now = this.clock.now();
    const decision = evaluatePolicy(
      this.policy,
      {
        channel: this.channel,
        level: front.level,
        authTime: front.authTime,
        sessionStartedAt: front.startedAt,
        now,
      },
      action,
    );
    if (decision.outcome !== 'step-up') {
      // The decision is on disk before the caller acts on it.
      await this.recordDecision(front, action, decision);
      if (decision.outcome === 'allow') return { outcome: 'allow', steppedUp: false, reasons: decision.reasons };
      this.notice = { code: 'ACTION_DENIED', message: `The policy does not allow "${action}" here`, at: now };
      this.changed();
      return { outcome: 'deny', reasons: decision.reasons };
    }
    try {
      return await this.ceremony({ kind: 'stepping-up', action }, () => this.stepUp(front, action));
    } catch (error) {
      const baton = this.setNotice(error);
      return { outcome: 'refused', code: baton.code, message: baton.message };
    }
  }

  /** The operator in front signs out; the session ends on the backend too. */
  signOut(): void {
    this.requireSessions().signOut();
  }

  /** The operator steps away on purpose: lock now. */
  lock(): void {
    this.requireSessions().lock('operator-locked');
  }

  /** Keyboard, pointer or touch input in the operator UI or workspace. */
  noteActivity(): void {
    this.sessions?.noteActivity();
  }

  /** The shell's powerMonitor reading of system idle time. */
  reportSystemIdle(seconds: number): void {
    this.sessions?.reportSystemIdle(seconds);
  }

  /** The OS locked the screen (powerMonitor `lock-screen`, where the OS reports it). */
  osLocked(): void {
    this.sessions?.lock('os-lock');
  }

  /** Stops the connection and closes the journal; sessions are not ended (the backend keeps them resumable). */
  stop(): void {
    this.shutdownConnection();
    this.connection = 'stopped';
    this.changed();
  }

  /** For fault tests and the shell's "network changed" hint: drop the socket and reconnect with backoff. */
  dropConnection(): void {
    this.client?.drop();
  }

  // ---- wiring ----

  private boot(): void {
    const status = this.identity.status;
    if (status.kind !== 'enrolled') {
      this.changed();
      return;
    }
    const { consoleId, key } = this.identity.credentials();
    if (status.channel !== this.options.channel) {
      this.logger.warn(
        { enrolled: status.channel, configured: this.options.channel },
        'the configuration names another channel than the one this console was enrolled on',
      );
      this.notice = {
        code: 'CHANNEL_MISMATCH',
        message: `This console was enrolled as "${status.channel}" but is configured as "${this.options.channel}"; it keeps working as "${status.channel}" until IT re-enrols it`,
        at: this.clock.now(),
      };
    }
    const dir = join(this.options.dataDir, 'outbox', consoleId);
    const { outbox, report } = EventOutbox.open(dir, {
      max: this.policy.agent.outboxMaxEvents,
      clock: () => this.clock.now(),
    });
    this.outbox = outbox;
    this.recovery = report;
    if (report.corrupt.length > 0) {
      this.logger.error({ corrupt: report.corrupt }, 'outbox journal had unreadable lines; copies are in quarantine/');
      this.notice = {
        code: 'OUTBOX_DAMAGED',
        message: `The event journal had ${report.corrupt.length} unreadable line(s); they were kept for IT in quarantine/`,
        at: this.clock.now(),
      };
    }
    this.sessions = new SessionManager(consoleId, this.clock, () => this.channelPolicy(), {
      record: (draft) => void this.record(draft),
      endedLocally: (session, state, reason) => this.endedLocally(session, state, reason),
      tokenDue: (session) => void this.refreshToken(session.id),
      changed: () => this.changed(),
    });
    this.client = new BackendClient({
      backendUrl: this.options.backendUrl,
      key,
      consoleId,
      clock: this.clock,
      random: this.random,
      agentVersion: this.options.agentVersion,
      hello: () => ({
        policyVersion: this.identity.policy?.version ?? 0,
        // Computed from the held document: a cached policy edited in place does not match the backend's.
        ...(this.identity.policy === undefined ? {} : { policyHash: hashPolicy(this.identity.policy.policy) }),
        revocationEpoch: this.identity.revocationEpoch,
        outbox: { pending: outbox.status.pending, max: outbox.status.max },
      }),
      onOpen: () => this.onOpen(),
      onMessage: (message) => this.onMessage(message),
      onClose: (info) => this.onClose(info),
      onProtocolError: (error) => {
        this.logger.warn({ code: error.code, message: error.message }, 'backend message refused');
        this.setNotice(new BatonError('BACKEND_PROTOCOL_ERROR', error.message));
      },
    });
    this.connection = 'connecting';
    this.client.start();
    this.changed();
  }

  private shutdownConnection(): void {
    this.client?.stop();
    this.client = undefined;
    this.sessions?.clear();
    this.sessions = undefined;
    this.outbox?.close();
    this.outbox = undefined;
    this.releaseSyncWaiters();
  }

  /**
   * The channel this console works as: the one it was enrolled on (the backend holds it to that),
   * not whatever the configuration says today. A changed configuration needs a re-enrolment.
   */
  private get channel(): string {
    const identity = this.identity.status;
    return identity.kind === 'enrolled' ? identity.channel : this.options.channel;
  }

  private channelPolicy(): ChannelPolicy | undefined {
    const policy = this.policy;
    return Object.hasOwn(policy.channels, this.channel) ? policy.channels[this.channel] : undefined;
  }

  private onOpen(): void {
    this.connection = 'syncing';
    this.sync = { welcomed: false, policyVersion: 0, policyHash: '', revocationEpoch: 0, flushTo: 0 };
    this.changed();
  }

  private onMessage(message: BackendMessage): void {
    switch (message.type) {
      case 'welcome':
        return this.onWelcome(message);
      case 'events-ack': {
        // Only what was sent on this connection can be acknowledged: a backend claiming more
        // (before welcome, or past the last event sent) must not make the journal drop events.
        if (!this.sync.welcomed) return;
        this.outbox?.acknowledge(Math.min(message.upToSeq, this.sentUpTo));
        this.inFlight = Math.max(0, this.inFlight - 1);
        if (message.findings.length > 0) this.logger.warn({ findings: message.findings }, 'backend event findings');
        this.checkNearFull();
        this.pump();
        this.checkSynced();
        this.changed();
        return;
      }
      case 'policy': {
        if (hashPolicy(message.policy) !== message.hash) {
          // Not applied and not acknowledged: the content is not what the backend announced.
          throw new BatonError(
            'BACKEND_PROTOCOL_ERROR',
            `The backend sent policy version ${message.version} whose content does not match its hash`,
          );
        }
        const held = this.identity.policy;
        if (message.version !== held?.version || message.hash !== hashPolicy(held.policy)) {
          this.identity.rememberPolicy(message.version, message.policy);
          this.outbox?.setMax(message.policy.agent.outboxMaxEvents);
          this.sessions?.policyChanged();
        }
        this.client?.send({ type: 'ack', of: 'policy', version: message.version });
        this.checkSynced();
        this.changed();
        return;
      }
      case 'revocation': {
        this.applyRevocations(message.items);
        if (this.identity.status.kind !== 'enrolled') return;
        this.identity.rememberRevocationEpoch(message.epoch);
        this.client?.send({ type: 'ack', of: 'revocation', epoch: message.epoch });
        this.checkSynced();
        this.changed();
        return;
      }
      case 'command': {
        this.sessions?.endedByBackend(message.sessionId, 'ended', message.reason || 'ended-by-backend');
        this.client?.send({ type: 'ack', of: 'command', commandId: message.commandId });
        return;
      }
      case 'error': {
        if (message.code === 'CONSOLE_REVOKED') {
          void this.consoleRevoked(message.message);
          return;
        }
        this.setNotice(
          new BatonError(isErrorCode(message.code) ? message.code : 'BACKEND_PROTOCOL_ERROR', message.message),
        );
        return;
      }
    }
  }

  private onWelcome(message: Extract<BackendMessage, { type: 'welcome' }>): void {
    const outbox = this.outbox;
    if (outbox === undefined || this.client === undefined) return;
    const own = this.identity.status.kind === 'enrolled' ? this.identity.status.consoleId : undefined;
    if (message.consoleId !== own) {
      const error = new BatonError('BACKEND_PROTOCOL_ERROR', 'The backend welcomed another console');
      this.setNotice(error);
      this.client.drop();
      return;
    }
    this.client.welcomed(message.heartbeatSeconds);
    const status = outbox.status;
    if (message.ackedSeq > status.lastSeq) {
      if (!outbox.adoptHead(message.ackedSeq, message.lastHash)) {
        this.logger.error(
          { backendSeq: message.ackedSeq, localSeq: status.lastSeq },
          'the backend holds more events than this journal; continuing (the backend will flag the conflict)',
        );
      }
    } else {
      outbox.acknowledge(message.ackedSeq);
    }
    this.sentUpTo = outbox.status.ackedSeq;
    this.inFlight = 0;
    this.sync = {
      welcomed: true,
      policyVersion: message.policyVersion,
      policyHash: message.policyHash,
      revocationEpoch: message.revocationEpoch,
      flushTo: outbox.status.lastSeq,
    };
    if (this.offlineSince !== undefined || !this.wasOnline) {
      void this.record({
        type: 'agent-online',
        subject: { console: message.consoleId },
        outcome: 'info',
        reasons: [this.wasOnline ? 'reconnected' : 'started'],
        ...(this.offlineSince === undefined
          ? {}
          : { detail: { offlineMs: Math.round(this.clock.monotonic() - this.offlineSince) } }),
      });
    }
    this.wasOnline = true;
    this.offlineSince = undefined;
    this.pump();
    this.checkSynced();
    this.changed();
  }

  /** Caught up: the revocations and policy the backend announced are applied, and the backlog is flushed. */
  private checkSynced(): void {
    if (this.connection !== 'syncing' || !this.sync.welcomed || this.outbox === undefined) return;
    if (this.identity.revocationEpoch < this.sync.revocationEpoch) return;
    const held = this.identity.policy;
    if ((held?.version ?? 0) !== this.sync.policyVersion) return;
    if (held !== undefined && hashPolicy(held.policy) !== this.sync.policyHash) return;
    if (this.outbox.status.ackedSeq < this.sync.flushTo) return;
    this.connection = 'online';
    this.releaseSyncWaiters();
    // The offline cap starts over only once caught up (revocations applied), not at a bare welcome:
    // a network that lets the welcome through and drops what follows does not reset it.
    this.sessions?.connectionRestored();
    this.sessions?.scheduleToken(); // a refresh that fell due while offline happens now
    this.changed();
  }

  private onClose(info: { code: number; reason: string; refused?: BatonError }): void {
    if (info.refused?.code === 'CONSOLE_REVOKED' || info.code === 4003) {
      void this.consoleRevoked(info.refused?.message ?? 'refused by the backend');
      return;
    }
    if (info.refused?.code === 'CONSOLE_UNKNOWN') {
      this.shutdownConnection();
      this.identity.markUnknown('The backend does not know this console; IT must enrol it again');
      this.connection = 'stopped';
      this.changed();
      return;
    }
    if (info.refused !== undefined) this.setNotice(info.refused);
    const wasConnected = this.connection === 'online' || this.connection === 'syncing';
    this.inFlight = 0;
    if (this.connection !== 'offline') {
      this.connection = 'offline';
      this.offlineSince ??= this.clock.monotonic();
      this.sessions?.connectionLost();
      if (wasConnected || !this.wasOnline) {
        const consoleId = this.identity.status.kind === 'enrolled' ? this.identity.status.consoleId : undefined;
        void this.record({
          type: 'agent-offline',
          subject: consoleId === undefined ? {} : { console: consoleId },
          outcome: 'info',
          reasons: [closeReason(info)],
          detail: { closeCode: info.code },
        });
      }
    }
    this.releaseSyncWaiters();
    this.changed();
  }

  private async consoleRevoked(reason: string): Promise<void> {
    const journal = this.status.identity.kind === 'enrolled' ? this.status.identity.consoleId : undefined;
    this.shutdownConnection();
    this.connection = 'stopped';
    // Keep what the revoked console never delivered, for IT; a new enrolment starts a new journal.
    if (journal !== undefined) {
      const dir = join(this.options.dataDir, 'outbox', journal);
      if (existsSync(dir)) renameSync(dir, `${dir}.revoked-${this.clock.now()}`);
    }
    // The notice goes up with the state change; forgetting the key in the OS store follows.
    this.notice = {
      code: 'CONSOLE_REVOKED',
      message: 'This console was revoked and must be re-enrolled',
      at: this.clock.now(),
    };
    await this.identity.markRevoked(reason);
    this.changed();
  }

  private applyRevocations(items: readonly RevocationItem[]): void {
    const consoleId = this.identity.status.kind === 'enrolled' ? this.identity.status.consoleId : undefined;
    if (items.some((item) => item.kind === 'console' && item.targetId === consoleId)) {
      void this.consoleRevoked(items.find((item) => item.kind === 'console')?.reason ?? 'revoked');
      return;
    }
    const ended = this.sessions?.applyRevocations(items) ?? [];
    if (ended.length > 0) this.logger.info({ sessions: ended }, 'sessions revoked by the backend');
  }

  // ---- outbox ----

  /** Journals an event; resolves once it is durable (or its failure is reported). Never rejects. */
  private record(draft: EventDraft): Promise<void> {
    const outbox = this.outbox;
    if (outbox === undefined) return Promise.resolve();
    return outbox.emit(draft).then(
      () => {
        this.checkNearFull();
        this.schedulePump();
      },
      (error: unknown) => {
        this.journalFailures++;
        this.logger.error({ type: draft.type, err: error }, 'event could not be journaled');
        this.setNotice(error);
      },
    );
  }

  private checkNearFull(): void {
    const status = this.outbox?.status;
    if (status === undefined) return;
    if (status.nearFull && !this.nearFullReported) {
      this.nearFullReported = true;
      this.logger.error({ pending: status.pending, max: status.max }, 'event outbox near full');
      const consoleId = this.identity.status.kind === 'enrolled' ? this.identity.status.consoleId : undefined;
      // Journaled directly (not through record) so the report itself cannot recurse.
      this.outbox
        ?.emit({
          type: 'outbox-near-full',
          subject: consoleId === undefined ? {} : { console: consoleId },
          outcome: 'info',
          reasons: ['outbox-near-full'],
          detail: { pending: status.pending, max: status.max },
        })
        .catch(() => undefined);
    } else if (!status.nearFull && status.pending < status.max * 0.5) {
      this.nearFullReported = false;
    }
  }

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Sends the next batches past those in flight, keeping at most MAX_BATCHES_IN_FLIGHT unacknowledged. */
  private pump(): void {
    const outbox = this.outbox;
    const client = this.client;
    if (outbox === undefined || client === undefined || !this.sync.welcomed) return;
    while (this.inFlight < MAX_BATCHES_IN_FLIGHT) {
      const frame = eventsFrame(outbox, outbox.pendingAfter(this.sentUpTo, MAX_EVENTS_PER_BATCH));
      if (frame === undefined) return;
      if (!client.sendText(frame.text)) return;
      this.sentUpTo = frame.lastSeq;
      this.inFlight++;
    }
  }

  // ---- ceremonies ----

  private async tapInOnline(sessions: SessionManager): Promise<AgentSession> {
    const client = this.requireClient();
    const { options } = await client.request('POST', '/v1/sign-in/options', {}, SignInOptionsResultSchema);
    const response = await this.askAssertion('sign-in', options as unknown as PublicKeyCredentialRequestOptionsJSON);
    const result = await client.request('POST', '/v1/sign-in/verify', { response }, SignInResultSchema);
    return sessions.signedIn(result);
  }

  private async tapInOffline(sessions: SessionManager): Promise<AgentSession> {
    const consoleId = this.identity.credentials().consoleId;
    const refuseNew = () =>
      new BatonError(
        'OFFLINE_SIGN_IN_REFUSED',
        'The backend cannot be reached: new sign-ins must wait; only an operator already signed in here can resume, for a short while',
      );
    if (sessions.offlineLimitReached) {
      // Past the channel's maxOfflineSeconds: only locking, until the backend is back (a revocation
      // issued meanwhile must not be held off by keeping the console's network cut).
      void this.record({
        type: 'sign-in-failed',
        subject: { console: consoleId },
        outcome: 'failure',
        reasons: ['offline-limit-reached'],
      });
      throw new BatonError(
        'OFFLINE_RESUME_REFUSED',
        'The backend has been unreachable for too long: nobody can resume on this console until it is back',
      );
    }
    if (!sessions.all.some((s) => s.state === 'locked' || s.state === 'suspended')) {
      void this.record({
        type: 'sign-in-failed',
        subject: { console: consoleId },
        outcome: 'failure',
        reasons: ['offline-sign-in-refused'],
      });
      throw refuseNew();
    }
    const policy = this.policy;
    // This ceremony's own challenge, good for its one answer: a tap signed for an earlier offline
    // ceremony (one that was cancelled, timed out or already answered) opens nothing.
    const challenge = randomBytes(32).toString('base64url');
    const expires = this.clock.monotonic() + OFFLINE_CHALLENGE_TTL_MS;
    // Usernameless, as online: whoever taps is identified by the key, and told plainly if it opens nothing here.
    const response = await this.askAssertion('offline-resume', {
      challenge,
      rpId: this.options.rpId,
      userVerification: policy.credentials.userVerification,
      timeout: 60_000,
    });
    const recordFailure = (reason: string, operator?: string) =>
      void this.record({
        type: 'sign-in-failed',
        subject: { console: consoleId, ...(operator === undefined ? {} : { operator }) },
        outcome: 'failure',
        reasons: [reason],
      });
    const fail = (reason: string, code: ErrorCode, message: string, operator?: string): BatonError => {
      recordFailure(reason, operator);
      return new BatonError(code, message);
    };
    // Single use and bound to this ceremony: the challenge is spent whatever the outcome.
    const clientChallenge = readChallenge(response.response.clientDataJSON);
    if (clientChallenge !== challenge || this.clock.monotonic() > expires) {
      throw fail('challenge-unknown', 'CHALLENGE_UNKNOWN', 'The tap answered a challenge this console did not issue');
    }
    const session = sessions.resumableOffline().find((s) => s.credentialId === response.id);
    if (session === undefined) {
      const known = sessions.all.find((s) => s.credentialId === response.id);
      if (known === undefined) {
        recordFailure('offline-sign-in-refused');
        throw refuseNew();
      }
      throw fail(
        'offline-grace-elapsed',
        'OFFLINE_RESUME_REFUSED',
        'This session was left too long ago to be resumed while the backend is unreachable; it resumes once the backend is back',
        known.operatorId,
      );
    }
    let verification;
    try {
      verification = await verifyAuthenticationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: this.options.origin,
        expectedRPID: this.options.rpId,
        credential: {
          id: session.credentialId,
          publicKey: Buffer.from(session.publicKey, 'base64url'),
          counter: session.counter,
        },
        requireUserVerification: policy.credentials.userVerification === 'required',
      });
    } catch (cause) {
      const message = cause instanceof Error ? cause.message : 'verification failed';
      // The same stable code the backend gives the same cause (shared/webauthn-errors.ts).
      const code = webauthnRefusalCode(cause);
      throw fail(
        code.toLowerCase().replace(/_/g, '-'),
        code,
        `The tap could not be verified on this console: ${message}`,
        session.operatorId,
      );
    }
    if (!verification.verified) {
      throw fail(
        'webauthn-verification-failed',
        'WEBAUTHN_VERIFICATION_FAILED',
        'The tap could not be verified',
        session.operatorId,
      );
    }
    const info = verification.authenticationInfo;
    // The backend's own rule (shared/levels.ts). A session at `hardware` proves the backend found this
    // credential device-bound, attested and allow-listed at sign-in; the flags of this tap say the rest.
    const hardwareCredential = session.level === 'hardware';
    const level = levelFromAuthentication({
      userVerified: info.userVerified,
      deviceBound: hardwareCredential && info.credentialDeviceType === 'singleDevice',
      attested: hardwareCredential,
      aaguidAllowed: hardwareCredential,
    });
    const allowed = evaluatePolicy(
      policy,
      { channel: this.channel, level, authTime: this.clock.now(), now: this.clock.now() },
      SIGN_IN_ACTION,
    );
    if (allowed.outcome !== 'allow') {
      throw fail(
        'level-not-allowed-on-channel',
        'LEVEL_NOT_ALLOWED_ON_CHANNEL',
        `Level "${level}" may not sign in on this channel`,
        session.operatorId,
      );
    }
    return sessions.resumedOffline(session.id, level, info.newCounter);
  }

  private async stepUp(front: AgentSession, action: string): Promise<AuthorizeResult> {
    if (this.connection !== 'online') {
      void this.record({
        type: 'step-up-failed',
        subject: { operator: front.operatorId, console: this.identity.credentials().consoleId, session: front.id },
        assurance: assuranceOf(front.level, front.authTime),
        outcome: 'failure',
        reasons: ['backend-unreachable'],
        detail: { action },
      });
      throw new BatonError('BACKEND_UNREACHABLE', `"${action}" needs a step-up, and step-up needs the backend`);
    }
    const client = this.requireClient();
    const path = `/v1/sessions/${encodeURIComponent(front.id)}/step-up`;
    const first = await client.request('POST', `${path}/options`, { action }, StepUpOptionsResultSchema);
    if (first.decision.outcome === 'allow')
      return { outcome: 'allow', steppedUp: false, reasons: first.decision.reasons };
    if (first.decision.outcome === 'deny' || first.options === undefined) {
      return { outcome: 'deny', reasons: first.decision.reasons };
    }
    // The UI names the action and why while the operator taps.
    this.phase = { kind: 'stepping-up', action, level: first.decision.level, reasons: first.decision.reasons };
    this.changed();
    const response = await this.askAssertion(
      'step-up',
      first.options as unknown as PublicKeyCredentialRequestOptionsJSON,
      action,
    );
    const result = await client.request('POST', `${path}/verify`, { action, response }, StepUpResultSchema);
    this.sessions?.steppedUp(result.session, result.token, result.tokenExpiresAt);
    return { outcome: 'allow', steppedUp: true, reasons: result.decision.reasons };
  }

  private recordDecision(front: AgentSession, action: string, decision: Decision): Promise<void> {
    return this.record({
      type: 'policy-decision',
      subject: {
        operator: front.operatorId,
        console: this.identity.credentials().consoleId,
        session: front.id,
      },
      assurance: assuranceOf(front.level, front.authTime),
      outcome: decision.outcome,
      reasons: decision.reasons,
      detail: { action, policyVersion: this.identity.policy?.version ?? 0 },
    });
  }

  /**
   * Asks the backend for a fresh token for the session in front (due two thirds into the token's
   * life). Offline it waits for the backend; unreachable, it tries again shortly; refused (the
   * session is not active there, its operator or passkey is revoked), the session keeps no token.
   */
  private async refreshToken(sessionId: string): Promise<void> {
    const client = this.client;
    const sessions = this.sessions;
    if (client === undefined || sessions === undefined || this.connection !== 'online') return;
    try {
      const result = await client.request(
        'POST',
        `/v1/sessions/${encodeURIComponent(sessionId)}/token`,
        {},
        SessionTokenResultSchema,
      );
      sessions.tokenRefreshed(sessionId, result.token, result.tokenExpiresAt, result.serverTime);
    } catch (error) {
      const code = error instanceof BatonError ? error.code : 'INTERNAL';
      if (!TOKEN_REFUSALS.has(code)) {
        // Unreachable or a passing fault: try again shortly (the token is withheld once it ends).
        sessions.tokenRefreshFailed(sessionId);
        return;
      }
      this.logger.warn({ code, session: sessionId }, 'the backend refused a fresh assurance token');
      sessions.tokenRefused(sessionId);
    }
  }

  private endedLocally(session: AgentSession, state: FinalState, reason: string): void {
    const client = this.client;
    const consoleId = this.identity.status.kind === 'enrolled' ? this.identity.status.consoleId : undefined;
    const journal = () =>
      void this.record({
        type: state === 'expired' ? 'session-expired' : 'session-ended',
        subject: {
          operator: session.operatorId,
          session: session.id,
          ...(consoleId === undefined ? {} : { console: consoleId }),
        },
        assurance: assuranceOf(session.level, session.authTime),
        outcome: 'info',
        reasons: [reason],
      });
    if (client === undefined || this.connection !== 'online') {
      journal();
      return;
    }
    const endReason = state === 'expired' ? 'expired' : reason === 'idle-timeout' ? 'idle-timeout' : 'sign-out';
    client
      .request(
        'POST',
        `/v1/sessions/${encodeURIComponent(session.id)}/end`,
        { reason: endReason },
        SessionEndResultSchema,
      )
      .catch((error: unknown) => {
        // Already ended on the backend (revoked, expired there): nothing to add. Unreachable: journal it.
        if (error instanceof BatonError && (error.code === 'SESSION_NOT_ACTIVE' || error.code === 'SESSION_UNKNOWN'))
          return;
        journal();
      });
  }

  private async askAssertion(
    purpose: 'sign-in' | 'step-up' | 'offline-resume',
    options: PublicKeyCredentialRequestOptionsJSON,
    action?: string,
  ): Promise<AuthenticationResponseJSON> {
    const response = await this.ask(() =>
      this.deps.ceremonies.getAssertion({ purpose, options, ...(action === undefined ? {} : { action }) }),
    );
    const checked = AuthenticationResponseSchema.safeParse(response);
    if (!checked.success) throw new BatonError('CEREMONY_CANCELLED', 'The authenticator gave an unusable answer');
    return checked.data as AuthenticationResponseJSON;
  }

  private async ask<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (cause) {
      if (cause instanceof BatonError) throw cause;
      throw new BatonError('CEREMONY_CANCELLED', 'The tap was cancelled or timed out', { cause });
    }
  }

  /** Runs one ceremony at a time, with the phase shown to the UI and any refusal kept as the notice. */
  private async ceremony<T>(phase: AgentPhase, fn: () => Promise<T>): Promise<T> {
    if (this.phase.kind !== 'idle') throw this.refuse('CEREMONY_IN_PROGRESS', 'Another tap is being handled');
    this.phase = phase;
    this.notice = undefined;
    this.changed();
    try {
      return await fn();
    } catch (error) {
      throw this.setNotice(error);
    } finally {
      this.phase = { kind: 'idle' };
      this.changed();
    }
  }

  /** Online and caught up → true; offline → false; syncing → wait (bounded) for one or the other. */
  private async awaitSyncedOrOffline(): Promise<boolean> {
    if (this.connection === 'syncing' || this.connection === 'connecting') {
      await new Promise<void>((resolve) => {
        const timer = this.clock.setTimer(SYNC_WAIT_MS, done);
        function done() {
          timer.cancel();
          resolve();
        }
        this.syncWaiters.add(done);
      });
    }
    if (this.connection === 'syncing' || this.connection === 'connecting') {
      throw this.refuse('AGENT_SYNCING', 'The console is still catching up with the backend; tap again in a moment');
    }
    return this.connection === 'online';
  }

  private async whenOnline(): Promise<void> {
    if (!(await this.awaitSyncedOrOffline())) {
      throw new BatonError('BACKEND_UNREACHABLE', 'This needs the backend, which cannot be reached right now');
    }
  }

  private releaseSyncWaiters(): void {
    const waiters = [...this.syncWaiters];
    this.syncWaiters.clear();
    for (const w of waiters) w();
  }

  private requireSessions(): SessionManager {
    if (this.sessions === undefined) {
      this.identity.credentials(); // throws the identity's own code
      throw this.refuse('CONSOLE_NOT_ENROLLED', 'This console is not enrolled yet');
    }
    return this.sessions;
  }

  private requireClient(): BackendClient {
    this.requireSessions();
    if (this.client === undefined) throw this.refuse('CONSOLE_NOT_ENROLLED', 'This console is not enrolled yet');
    return this.client;
  }

  private refuse(code: ErrorCode, message: string): BatonError {
    return this.setNotice(new BatonError(code, message));
  }

  private setNotice(error: unknown): BatonError {
    const baton =
      error instanceof BatonError ? error : new BatonError('INTERNAL', 'Something went wrong', { cause: error });
    this.notice = { code: baton.code, message: baton.message, at: this.clock.now() };
    if (baton.code === 'INTERNAL') this.logger.error({ err: error }, 'agent error');
    this.changed();
    return baton;
  }

  private changed(): void {
    if (this.listeners.size === 0) return;
    const status = this.status;
    for (const listener of this.listeners) listener(status);
  }
}

const EVENTS_PREFIX = '{"type":"events","events":[';
const EVENTS_SUFFIX = ']}';

/**
 * The `events` message for the longest prefix of `batch` that fits in one frame (the backend closes
 * the socket with 1009 on a larger one, and a backlog that never fits would never flush), built from
 * the journal's own JSON lines so nothing is serialised twice. At least one event; none → undefined.
 */
function eventsFrame(outbox: EventOutbox, batch: AssuranceEvent[]): { text: string; lastSeq: number } | undefined {
  let bytes = EVENTS_PREFIX.length + EVENTS_SUFFIX.length;
  const lines: string[] = [];
  let lastSeq = 0;
  for (const event of batch) {
    const line = outbox.takeLine(event);
    bytes += Buffer.byteLength(line) + 1;
    if (bytes > MAX_MESSAGE_BYTES && lines.length > 0) break;
    lines.push(line);
    lastSeq = event.seq;
  }
  if (lines.length === 0) return undefined;
  return { text: `${EVENTS_PREFIX}${lines.join(',')}${EVENTS_SUFFIX}`, lastSeq };
}

function closeReason(info: { code: number; refused?: BatonError }): string {
  if (info.refused !== undefined) return info.refused.code.toLowerCase().replace(/_/g, '-');
  if (info.code === 1001) return 'backend-going-away';
  if (info.code === 1006) return 'connection-lost';
  return `closed-${info.code}`;
}

function readChallenge(clientDataJSON: string): string | undefined {
  try {
    const parsed = decodeClientDataJSON(clientDataJSON) as { challenge?: unknown } | null;
    return typeof parsed?.challenge === 'string' ? parsed.challenge : undefined;
  } catch {
    return undefined;
  }
}
