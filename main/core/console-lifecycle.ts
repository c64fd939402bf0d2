import { existsSync, renameSync } from 'node:fs';
import { BatonError } from '../../shared/errors.js';
import type { RevocationItem } from '../../shared/protocol.js';
import { enrolledConsoleId, type AgentContext } from './agent-context.js';
import type { AgentNotice } from './agent-types.js';
import type { BackendInbox } from './backend-inbox.js';
import type { IdentityStatus } from './console-identity.js';
import { ConsoleRuntime, journalDir } from './console-runtime.js';
import { refreshToken, sessionEndedLocally } from './session-backend.js';

/** What the lifecycle asks of the facade: bring the runtime up for the identity held, or take it down. */
export interface RuntimeControl {
  boot(): void;
  /** Takes the runtime down at once; resolves when its journal is closed (everything recorded is on disk). */
  shutdown(): Promise<void>;
}

/**
 * The notice shown when the configuration names another channel than the one the console was
 * enrolled on: it keeps working as enrolled (the backend holds it to that) until IT re-enrols it.
 */
export function channelMismatchNotice(enrolled: string, configured: string, now: number): AgentNotice {
  if (enrolled === configured) return undefined;
  return {
    code: 'CHANNEL_MISMATCH',
    message: `This console was enrolled as "${enrolled}" but is configured as "${configured}"; it keeps working as "${enrolled}" until IT re-enrols it`,
    at: now,
  };
}

/**
 * Keeps what a revoked console never delivered, for IT: its journal folder is renamed aside, and a
 * new enrolment starts a new journal. Returns the new path, or undefined when there was none.
 */
export function retireJournal(dataDir: string, consoleId: string, now: number): string | undefined {
  const dir = journalDir(dataDir, consoleId);
  if (!existsSync(dir)) return undefined;
  const retired = `${dir}.revoked-${now}`;
  renameSync(dir, retired);
  return retired;
}

/**
 * The console's own life: enrolment with IT's one-time token, revocation (by a revocation item, an
 * error message or the close code), and the backend forgetting it. Session revocations pass on to
 * the session manager.
 */
export class ConsoleLifecycle {
  constructor(
    private readonly ctx: AgentContext,
    private readonly control: RuntimeControl,
  ) {}

  /**
   * Opens the runtime for the enrolled identity (undefined when not enrolled), with the notices its
   * start calls for: a configuration naming another channel, a journal with unreadable lines.
   */
  openRuntime(inbox: BackendInbox): ConsoleRuntime | undefined {
    const { ctx } = this;
    const status = ctx.identity.status;
    if (status.kind !== 'enrolled') return undefined;
    const mismatch = channelMismatchNotice(status.channel, ctx.options.channel, ctx.clock.now());
    if (mismatch !== undefined) {
      ctx.logger.warn(
        { enrolled: status.channel, configured: ctx.options.channel },
        'the configuration names another channel than the one this console was enrolled on',
      );
      ctx.notice = mismatch;
    }
    const runtime = ConsoleRuntime.open(ctx, {
      onOpen: () => inbox.opened(),
      onMessage: (message) => inbox.message(message),
      onClose: (info) => inbox.closed(info),
      onProtocolError: (error) => {
        ctx.logger.warn({ code: error.code, message: error.message }, 'backend message refused');
        ctx.setNotice(new BatonError('BACKEND_PROTOCOL_ERROR', error.message));
      },
      endedLocally: (session, state, reason) => sessionEndedLocally(ctx, session, state, reason),
      tokenDue: (sessionId) => void refreshToken(ctx, sessionId),
    });
    const corrupt = runtime.recovery.corrupt;
    if (corrupt.length > 0) {
      ctx.logger.error({ corrupt }, 'outbox journal had unreadable lines; copies are in quarantine/');
      ctx.notice = {
        code: 'OUTBOX_DAMAGED',
        message: `The event journal had ${corrupt.length} unreadable line(s); they were kept for IT in quarantine/`,
        at: ctx.clock.now(),
      };
    }
    return runtime;
  }

  /** Enrols this console with a one-time token from IT (first start, or after revocation). */
  async enrol(token: string): Promise<IdentityStatus> {
    const { ctx } = this;
    if (ctx.phase.kind !== 'idle')
      throw ctx.setNotice(new BatonError('CEREMONY_IN_PROGRESS', 'Another task is running'));
    // An enrolled console is not enrolled over: the attempt would first drop the connection and
    // every signed-in session (without an event), whatever the token turns out to be.
    if (ctx.identity.status.kind === 'enrolled') {
      throw ctx.setNotice(
        new BatonError(
          'CONSOLE_ALREADY_ENROLLED',
          'This console is already enrolled; IT revokes it before it is enrolled again',
        ),
      );
    }
    ctx.phase = { kind: 'enrolling-console' };
    ctx.changed();
    try {
      await this.control.shutdown();
      const previous = ctx.identity.status;
      const status = await ctx.identity.enrol({
        backendUrl: ctx.options.backendUrl,
        token,
        channel: ctx.options.channel,
        ...(ctx.options.consoleName === undefined ? {} : { name: ctx.options.consoleName }),
      });
      if (previous.kind === 're-enrolment-required') ctx.notice = undefined;
      ctx.phase = { kind: 'idle' };
      this.control.boot();
      return status;
    } catch (error) {
      ctx.phase = { kind: 'idle' };
      this.control.boot();
      throw ctx.setNotice(error);
    }
  }

  /**
   * The backend revoked this console: everything stops and the console says so at once; the journal
   * is kept aside once it has closed, and the key is forgotten in the OS store.
   */
  async revoked(reason: string): Promise<void> {
    const { ctx } = this;
    const consoleId = enrolledConsoleId(ctx);
    const closed = this.control.shutdown();
    ctx.notice = {
      code: 'CONSOLE_REVOKED',
      message: 'This console was revoked and must be re-enrolled',
      at: ctx.clock.now(),
    };
    // The state changes now (nothing acknowledges or remembers another epoch for this console);
    // forgetting the key in the OS store follows.
    const forgotten = ctx.identity.markRevoked(reason);
    // The journal is renamed aside only once everything recorded before the revocation is in it.
    await closed;
    if (consoleId !== undefined) retireJournal(ctx.options.dataDir, consoleId, ctx.clock.now());
    await forgotten;
    ctx.changed();
  }

  /**
   * The backend does not know this console (its database was reset or the console deleted). Says so
   * at once; resolves when the journal is closed.
   */
  unknown(): Promise<void> {
    const closed = this.control.shutdown();
    this.ctx.identity.markUnknown('The backend does not know this console; IT must enrol it again');
    this.ctx.changed();
    return closed;
  }

  /** A revocation of this console revokes it; revocations of sessions, operators and passkeys end their sessions. */
  applyRevocations(items: readonly RevocationItem[]): void {
    const { ctx } = this;
    const consoleId = enrolledConsoleId(ctx);
    const own = items.find((item) => item.kind === 'console' && item.targetId === consoleId);
    if (own !== undefined) {
      void this.revoked(own.reason);
      return;
    }
    const ended = ctx.runtime?.sessions.applyRevocations(items) ?? [];
    if (ended.length > 0) ctx.logger.info({ sessions: ended }, 'sessions revoked by the backend');
  }
}
