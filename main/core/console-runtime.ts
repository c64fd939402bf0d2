import { join } from 'node:path';
import type { PublicKeyCredentialRequestOptionsJSON as ChallengeOptions } from '@simplewebauthn/server';
import type { BatonError } from '../../shared/errors.js';
import type { BackendMessage } from '../../shared/protocol.js';
import type { AgentContext } from './agent-context.js';
import { BackendClient } from './backend-client.js';
import { ReadyChallenge } from './ceremonies/ready-challenge.js';
import { EventOutbox, type RecoveryReport } from './event-outbox.js';
import { OutboxUplink } from './outbox-uplink.js';
import { hashPolicy } from './policy-hash.js';
import { SessionManager, type AgentSession, type FinalState } from './session-manager.js';

/** Where the runtime sends what happens to it. */
export interface RuntimeHandlers {
  onOpen(): void;
  onMessage(message: BackendMessage): void;
  onClose(info: { code: number; reason: string; refused?: BatonError }): void;
  onProtocolError(error: BatonError): void;
  endedLocally(session: AgentSession, state: FinalState, reason: string): void;
  tokenDue(sessionId: string): void;
}

/** Where a console's journal lives: one directory per enrolment. */
export function journalDir(dataDir: string, consoleId: string): string {
  return join(dataDir, 'outbox', consoleId);
}

/**
 * What exists while the console is enrolled and running: its journal and uplink, its sessions and
 * its backend connection. Opened at boot, shut down (sessions forgotten, journal closed) on
 * revocation, re-enrolment and stop.
 */
export class ConsoleRuntime {
  private constructor(
    readonly consoleId: string,
    readonly outbox: EventOutbox,
    readonly recovery: RecoveryReport,
    readonly uplink: OutboxUplink,
    readonly sessions: SessionManager,
    readonly client: BackendClient,
    /** The next tap's sign-in challenge, asked for ahead (ceremonies/ready-challenge.ts). */
    readonly readyChallenge: ReadyChallenge,
  ) {}

  /** Opens the journal, the session manager and the client for the enrolled identity, and starts dialling. */
  static open(ctx: AgentContext, handlers: RuntimeHandlers): ConsoleRuntime {
    const { consoleId, key } = ctx.identity.credentials();
    const { outbox, report } = EventOutbox.open(journalDir(ctx.options.dataDir, consoleId), {
      max: ctx.policy.agent.outboxMaxEvents,
      clock: () => ctx.clock.now(),
    });
    const client = new BackendClient({
      backendUrl: ctx.options.backendUrl,
      key,
      consoleId,
      clock: ctx.clock,
      random: ctx.random,
      agentVersion: ctx.options.agentVersion,
      hello: () => {
        const held = ctx.identity.policy;
        return {
          policyVersion: held?.version ?? 0,
          // Computed from the held document: a cached policy edited in place does not match the backend's.
          ...(held === undefined ? {} : { policyHash: hashPolicy(held.policy) }),
          revocationEpoch: ctx.identity.revocationEpoch,
          outbox: { pending: outbox.status.pending, max: outbox.status.max },
        };
      },
      onOpen: () => handlers.onOpen(),
      onMessage: (message) => handlers.onMessage(message),
      onClose: (info) => handlers.onClose(info),
      onProtocolError: (error) => handlers.onProtocolError(error),
    });
    const uplink = new OutboxUplink({
      outbox,
      send: (text) => client.sendText(text),
      consoleId,
      logger: ctx.logger,
      onJournalError: (error) => void ctx.setNotice(error),
    });
    const sessions = new SessionManager(consoleId, ctx.clock, () => ctx.channelPolicy(), {
      record: (draft) => void ctx.record(draft),
      endedLocally: (session, state, reason) => handlers.endedLocally(session, state, reason),
      tokenDue: (session) => handlers.tokenDue(session.id),
      changed: () => ctx.changed(),
    });
    const readyChallenge = new ReadyChallenge({
      fetch: async () => (await client.call('signInOptions', {}, {})).options as unknown as ChallengeOptions,
      clock: ctx.clock,
      failed: (error) =>
        ctx.logger.warn({ code: (error as { code?: unknown }).code }, 'the next sign-in challenge was not issued'),
    });
    return new ConsoleRuntime(consoleId, outbox, report, uplink, sessions, client, readyChallenge);
  }

  /**
   * Stops the connection and forgets the sessions (the backend keeps them resumable) at once, then
   * closes the journal: resolves when every event recorded so far is on disk.
   */
  shutdown(): Promise<void> {
    this.readyChallenge.discard();
    this.client.stop();
    this.sessions.clear();
    return this.outbox.close();
  }
}
