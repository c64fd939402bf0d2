import type { BatonError } from '../../shared/errors.js';
import type { EventDraft } from '../../shared/events.js';
import type { ChannelPolicy, Policy } from '../../shared/policy.js';
import type { AgentLogger, AgentNotice, AgentOptions, AgentPhase, CeremonyPort } from './agent-types.js';
import type { Clock, Random } from './clock.js';
import type { ConsoleIdentity } from './console-identity.js';
import type { ConsoleRuntime } from './console-runtime.js';
import type { SyncMachine } from './sync-machine.js';

/**
 * What every part of the agent may use, provided by the `BatonAgent` facade: configuration,
 * injected effects, the console identity, the sync state, the runtime that exists while enrolled,
 * and the three ways to speak back (journal an event, show a notice, publish a new status).
 */
export interface AgentContext {
  readonly options: AgentOptions;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: AgentLogger;
  readonly ceremonies: CeremonyPort;
  readonly identity: ConsoleIdentity;
  readonly sync: SyncMachine;
  /** Outbox, sessions and backend client: present while the console is enrolled and running. */
  readonly runtime: ConsoleRuntime | undefined;
  /** The policy in force: the last one the backend sent, or the built-in defaults before the first. */
  readonly policy: Policy;
  /** The channel this console works as: the one it was enrolled on, not whatever the configuration says today. */
  readonly channel: string;
  channelPolicy(): ChannelPolicy | undefined;
  phase: AgentPhase;
  /** Journals an event; resolves once it is durable (or its failure is shown). Never rejects. */
  record(draft: EventDraft): Promise<void>;
  /** Shows the error's code as the notice and returns it as a BatonError. */
  setNotice(error: unknown): BatonError;
  /** The notice shown, set without publishing (the caller publishes with the state change). */
  notice: AgentNotice;
  /** Publishes the status to listeners. */
  changed(): void;
}

/** The console id while enrolled. */
export function enrolledConsoleId(ctx: Pick<AgentContext, 'identity'>): string | undefined {
  const status = ctx.identity.status;
  return status.kind === 'enrolled' ? status.consoleId : undefined;
}
