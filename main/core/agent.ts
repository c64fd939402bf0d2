import { actionToken, type ActionTokenRequest, type ActionTokenResult } from './action-tokens.js';
import { BatonError } from '../../shared/errors.js';
import type { EventDraft } from '../../shared/events.js';
import { DEFAULT_POLICY, supportContactFor, type ChannelPolicy, type Policy } from '../../shared/policy.js';
import type { AgentContext } from './agent-context.js';
import {
  silentLogger,
  type AgentDeps,
  type AgentLogger,
  type AgentNotice,
  type AgentOptions,
  type AgentPhase,
  type AgentStatus,
  type AuthorizeResult,
  type CeremonyPort,
} from './agent-types.js';
import { BackendInbox } from './backend-inbox.js';
import { CeremonyGate } from './ceremonies/ceremony-gate.js';
import { enrolOperator } from './ceremonies/enrol-operator.js';
import {
  breakGlassByCode,
  breakGlassBySupervisor,
  type BreakGlassDeps,
  type BreakGlassTerms,
} from './ceremonies/break-glass.js';
import { authorize } from './ceremonies/step-up.js';
import { tapInOffline, tapInOnline } from './ceremonies/tap-in.js';
import { systemClock, type Clock, type Random } from './clock.js';
import { ConsoleIdentity, type IdentityStatus } from './console-identity.js';
import { ConsoleLifecycle } from './console-lifecycle.js';
import type { ConsoleRuntime } from './console-runtime.js';
import type { RecoveryReport } from './event-outbox.js';
import type { SessionSnapshot } from './session-manager.js';
import { markBreakGlass } from './session-records.js';
import { projectStatus } from './status-projection.js';
import { SyncMachine } from './sync-machine.js';

export type * from './agent-types.js';

/**
 * The agent core, as a facade over its parts: console lifecycle, the runtime that exists while
 * enrolled (journal and uplink, sessions, backend client), the sync state machine, the backend's
 * messages, and one file per ceremony. No Electron here: the shell injects the ceremony port and
 * feeds idle and lock signals; everything else runs under plain Node.
 */
export class BatonAgent implements AgentContext {
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: AgentLogger;
  readonly ceremonies: CeremonyPort;
  readonly sync: SyncMachine;
  runtime: ConsoleRuntime | undefined;
  phase: AgentPhase = { kind: 'idle' };
  notice: AgentNotice;
  recovery: RecoveryReport | undefined;
  private readonly listeners = new Set<(status: AgentStatus) => void>();
  private readonly lifecycle: ConsoleLifecycle;
  private readonly inbox: BackendInbox;
  private readonly gate = new CeremonyGate(this);
  /** The last runtime's journal closing (resolved once closed). */
  private stopping: Promise<void> = Promise.resolve();

  private constructor(
    readonly options: AgentOptions,
    deps: AgentDeps,
    readonly identity: ConsoleIdentity,
  ) {
    this.clock = deps.clock ?? systemClock;
    this.random = deps.random ?? Math.random;
    this.logger = deps.logger ?? silentLogger;
    this.ceremonies = deps.ceremonies;
    this.sync = new SyncMachine(this.clock);
    this.lifecycle = new ConsoleLifecycle(this, { boot: () => this.boot(), shutdown: () => this.shutdown() });
    this.inbox = new BackendInbox(this, this.lifecycle);
  }

  /** Loads the identity (enrolling with the configured token when there is none) and connects. */
  static async start(options: AgentOptions, deps: AgentDeps): Promise<BatonAgent> {
    const identity = await ConsoleIdentity.load(options.dataDir, deps.secrets, deps.clock ?? systemClock);
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

  get status(): AgentStatus {
    return projectStatus({
      identity: this.identity.status,
      connection: this.sync.connection,
      phase: this.phase,
      sessions: this.runtime?.sessions.snapshot() ?? [],
      outbox: this.runtime?.outbox.status,
      policyVersion: this.policyVersion,
      notice: this.notice,
      channel: this.channelPolicy(),
      lastEnded: this.runtime?.sessions.lastEnded,
      idleWarning: this.runtime?.sessions.idle.warning,
      support: supportContactFor(this.policy, this.identity.site),
    });
  }

  onStatus(listener: (status: AgentStatus) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get policy(): Policy {
    return this.identity.policy?.policy ?? DEFAULT_POLICY;
  }

  /** The version of the policy held (0 before the first). */
  get policyVersion(): number {
    return this.identity.policy?.version ?? 0;
  }

  get channel(): string {
    const identity = this.identity.status;
    return identity.kind === 'enrolled' ? identity.channel : this.options.channel;
  }

  channelPolicy(): ChannelPolicy | undefined {
    const policy = this.policy;
    return Object.hasOwn(policy.channels, this.channel) ? policy.channels[this.channel] : undefined;
  }

  /** The assurance token of the session in front, for the workspace app (never logged, never on disk). */
  get frontToken(): string | undefined {
    // Never an expired token: handed out only while it has time left, and refreshed before then.
    return this.runtime?.sessions.frontToken;
  }

  /** Enrols this console with a one-time token from IT (first start, or after revocation). */
  enrolConsole(token: string): Promise<IdentityStatus> {
    return this.lifecycle.enrol(token);
  }

  /**
   * First-time operator enrolment with the code an admin issued; registering the key signs the
   * operator in (issue 12): their session comes to the front, as after a tap-in. `signedIn` is false
   * when the backend registered the key but started no session (then `signInRefused` says why), or
   * with `signIn: false` (register only: a key provisioned ahead, the tests' fixtures).
   */
  async enrolOperator(
    code: string,
    options: { signIn?: boolean } = {},
  ): Promise<{
    operatorId: string;
    displayName: string;
    signedIn: boolean;
    signInRefused?: { code: string; message: string };
  }> {
    this.requireRuntime();
    return this.gate.run({ kind: 'enrolling-operator' }, async (settle) => {
      await this.gate.whenOnline();
      const { client, sessions } = this.requireRuntime();
      const result = await enrolOperator(
        { client, port: this.ceremonies, sessions, settle, signIn: options.signIn !== false },
        code,
      );
      return {
        operatorId: result.operatorId,
        displayName: result.displayName,
        signedIn: result.session !== undefined,
        ...(result.signInRefused === undefined ? {} : { signInRefused: result.signInRefused }),
      };
    });
  }

  /**
   * An operator taps their key at the lock screen: starts or resumes *their* session and brings it
   * to the front, suspending whoever was there. Without the backend, only a locked or suspended
   * session inside the offline grace can be resumed.
   */
  async tapIn(): Promise<SessionSnapshot> {
    this.requireRuntime();
    const online = (await this.gate.settled()) === 'online';
    try {
      return await this.gate.run({ kind: 'signing-in', offline: !online }, (settle) => this.tapInWith(settle, online));
    } finally {
      // The next tap's challenge, asked for once this one is over (not while it is verified).
      if (online && this.sync.connection === 'online') this.runtime?.readyChallenge.refill(this.policyVersion);
    }
  }

  private async tapInWith(settle: () => void, online: boolean): Promise<SessionSnapshot> {
    const { client, sessions, consoleId, readyChallenge } = this.requireRuntime();
    const deps = {
      settle,
      client,
      challenge: () => readyChallenge.take(this.policyVersion),
      sessions,
      port: this.ceremonies,
      clock: this.clock,
      consoleId,
      policy: this.policy,
      channel: this.channel,
      rpId: this.options.rpId,
      origin: this.options.origin,
      record: (draft: EventDraft) => this.record(draft),
    };
    const session = online ? await tapInOnline(deps) : await tapInOffline(deps);
    const snapshot = sessions.snapshot().find((s) => s.id === session.id);
    if (snapshot === undefined) throw new BatonError('INTERNAL', 'The session vanished while it was being shown');
    return snapshot;
  }

  /**
   * Break-glass (issue 14 item 7, ceremonies/break-glass.ts): an operator without their key, let in
   * by a supervisor's tap on this console, or with IT's one-time code; the capped session comes to
   * the front. Online only.
   */
  breakGlassBySupervisor(operatorId: string): Promise<{ session: SessionSnapshot; breakGlass: BreakGlassTerms }> {
    return this.breakGlass((deps) => breakGlassBySupervisor(deps, operatorId));
  }

  breakGlassRedeem(
    operatorId: string,
    code: string,
  ): Promise<{ session: SessionSnapshot; breakGlass: BreakGlassTerms }> {
    return this.breakGlass((deps) => breakGlassByCode(deps, operatorId, code));
  }

  private async breakGlass(
    run: (deps: BreakGlassDeps) => Promise<{ session: { id: string }; breakGlass: BreakGlassTerms }>,
  ): Promise<{ session: SessionSnapshot; breakGlass: BreakGlassTerms }> {
    this.requireRuntime();
    return this.gate.run({ kind: 'signing-in', offline: false }, async (settle) => {
      await this.gate.whenOnline();
      const { client, sessions } = this.requireRuntime();
      const { session, breakGlass } = await run({ client, sessions, port: this.ceremonies, settle });
      const snapshot = sessions.snapshot().find((s) => s.id === session.id);
      if (snapshot === undefined) throw new BatonError('INTERNAL', 'The session vanished while it was being shown');
      return { session: snapshot, breakGlass };
    });
  }

  /** May the operator in front do `action`? Step-up when the policy asks for it (ceremonies/step-up.ts). */
  async authorize(action: string): Promise<AuthorizeResult> {
    this.requireRuntime(); // not enrolled: refused with the identity's code, as every operator flow
    return authorize(this, (phase, fn) => this.gate.run(phase, fn), action);
  }

  /** An action token for a workspace app's server, with step-up on a challenge (action-tokens.ts, issue 14). */
  async actionToken(request: ActionTokenRequest, workspaceOrigin: string): Promise<ActionTokenResult> {
    this.requireRuntime();
    return actionToken(this, (phase, fn) => this.gate.run(phase, fn), request, workspaceOrigin);
  }

  /** The operator in front signs out; the session ends on the backend too. */
  signOut(): void {
    this.requireRuntime().sessions.signOut();
  }

  /** The operator steps away on purpose: lock now. */
  lock(): void {
    this.requireRuntime().sessions.lock('operator-locked');
  }

  /** Keyboard, pointer or touch input in the operator UI or workspace. */
  noteActivity(): void {
    this.runtime?.sessions.noteActivity();
  }

  /** The shell's powerMonitor reading of system idle time. */
  reportSystemIdle(seconds: number): void {
    this.runtime?.sessions.reportSystemIdle(seconds);
  }

  /** The OS locked the screen (powerMonitor `lock-screen`, where the OS reports it). */
  osLocked(): void {
    this.runtime?.sessions.lock('os-lock');
  }

  /**
   * Stops the connection at once; sessions are not ended (the backend keeps them resumable). Resolves
   * when the journal is closed, every event recorded so far on disk: the shell quits only then.
   */
  stop(): Promise<void> {
    const closed = this.shutdown();
    this.changed();
    return closed;
  }

  /** For fault tests and the shell's "network changed" hint: drop the socket and reconnect with backoff. */
  dropConnection(): void {
    this.runtime?.client.drop();
  }

  /** Every event the agent journals passes here: one about a break-glass session is marked (session-records.ts). */
  record(draft: EventDraft): Promise<void> {
    const runtime = this.runtime;
    if (runtime === undefined) return Promise.resolve();
    return runtime.uplink.record(markBreakGlass(draft, (id) => runtime.sessions.isBreakGlass(id)));
  }

  setNotice(error: unknown): BatonError {
    const baton =
      error instanceof BatonError ? error : new BatonError('INTERNAL', 'Something went wrong', { cause: error });
    this.notice = { code: baton.code, message: baton.message, at: this.clock.now() };
    if (baton.code === 'INTERNAL') this.logger.error({ err: error }, 'agent error');
    this.changed();
    return baton;
  }

  changed(): void {
    if (this.listeners.size === 0) return;
    const status = this.status;
    for (const listener of this.listeners) listener(status);
  }

  private boot(): void {
    const runtime = this.lifecycle.openRuntime(this.inbox);
    this.runtime = runtime;
    if (runtime !== undefined) {
      this.recovery = runtime.recovery;
      this.sync.connect();
      runtime.client.start();
    }
    this.changed();
  }

  /**
   * Takes the runtime down at once and resolves when its journal is closed. Never rejects: a journal
   * that cannot be closed is logged (its events are on disk up to the failed write, whose emits were
   * refused). A second call while the first is closing gets the same promise, so nothing renames or
   * reopens the journal before it is closed.
   */
  private shutdown(): Promise<void> {
    const runtime = this.runtime;
    this.runtime = undefined;
    this.sync.stop();
    if (runtime !== undefined) {
      this.stopping = runtime.shutdown().catch((error: unknown) => {
        this.logger.error({ err: error }, 'the event journal did not close cleanly');
      });
    }
    return this.stopping;
  }

  private requireRuntime(): ConsoleRuntime {
    if (this.runtime === undefined) {
      this.identity.credentials(); // throws the identity's own code
      throw this.setNotice(new BatonError('CONSOLE_NOT_ENROLLED', 'This console is not enrolled yet'));
    }
    return this.runtime;
  }
}
