import { BatonError, isErrorCode } from '../../shared/errors.js';
import { CLOSE_CODES, isEndSessionReason, type BackendMessage } from '../../shared/protocol.js';
import { enrolledConsoleId, type AgentContext } from './agent-context.js';
import type { ConsoleLifecycle } from './console-lifecycle.js';
import { hashPolicy } from './policy-hash.js';

type Welcome = Extract<BackendMessage, { type: 'welcome' }>;

/**
 * Every message the backend sends, and the connection's opening and closing, applied once each: the
 * sync machine moves, the uplink sends or drops, policy and revocations are taken in, and the
 * console is marked online once it has caught up with what the welcome announced.
 */
export class BackendInbox {
  /**
   * The welcome's epoch, when it found this console ahead of the backend (it remembered a higher
   * revocation epoch than the store's: a restored database). The remembered epoch is lowered to the
   * backend's only once the catch-up that follows is applied to its end (its last message carries that
   * epoch or a later one): a console that drops before then says the same hello again and is caught up
   * again, instead of asking only for what follows an epoch whose revocations it never got.
   */
  private aheadTo: number | undefined;

  constructor(
    private readonly ctx: AgentContext,
    private readonly lifecycle: Pick<ConsoleLifecycle, 'revoked' | 'unknown' | 'applyRevocations'>,
  ) {}

  opened(): void {
    this.aheadTo = undefined;
    this.ctx.sync.opened();
    this.ctx.runtime?.uplink.closed();
    this.ctx.changed();
  }

  message(message: BackendMessage): void {
    const { ctx } = this;
    const runtime = ctx.runtime;
    switch (message.type) {
      case 'welcome':
        return this.welcome(message);
      case 'events-ack': {
        if (runtime === undefined || !runtime.uplink.acknowledged(message.upToSeq, message.findings)) return;
        this.checkSynced();
        ctx.changed();
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
        const held = ctx.identity.policy;
        if (message.version !== held?.version || message.hash !== hashPolicy(held.policy)) {
          ctx.identity.rememberPolicy(message.version, message.policy);
          runtime?.outbox.setMax(message.policy.agent.outboxMaxEvents);
          runtime?.sessions.policyChanged();
        }
        runtime?.client.send({ type: 'ack', of: 'policy', version: message.version });
        this.checkSynced();
        ctx.changed();
        return;
      }
      case 'revocation': {
        this.lifecycle.applyRevocations(message.items);
        if (ctx.identity.status.kind !== 'enrolled') return;
        if (this.aheadTo !== undefined && message.epoch >= this.aheadTo) {
          // The end of the catch-up of a console ahead: from now on it asks for what follows the store's epoch.
          this.aheadTo = undefined;
          ctx.identity.takeBackendRevocationEpoch(message.epoch);
        }
        // Ahead, a part of the catch-up before its end lowers nothing (this only ever raises the epoch).
        ctx.identity.rememberRevocationEpoch(message.epoch);
        ctx.runtime?.client.send({ type: 'ack', of: 'revocation', epoch: message.epoch });
        this.checkSynced();
        ctx.changed();
        return;
      }
      case 'command': {
        // A code the UI explains (renderer/plain-words.ts); anything else (a newer backend's code, an
        // older backend's free text) is a plain end, its text neither kept nor shown.
        const reason = isEndSessionReason(message.reason) ? message.reason : 'ended-by-backend';
        runtime?.sessions.endedByBackend(message.sessionId, 'ended', reason);
        runtime?.client.send({ type: 'ack', of: 'command', commandId: message.commandId });
        return;
      }
      case 'error': {
        if (message.code === 'CONSOLE_REVOKED') {
          void this.lifecycle.revoked(message.message);
          return;
        }
        ctx.setNotice(
          new BatonError(isErrorCode(message.code) ? message.code : 'BACKEND_PROTOCOL_ERROR', message.message),
        );
        return;
      }
    }
  }

  closed(info: { code: number; reason: string; refused?: BatonError }): void {
    const { ctx } = this;
    if (info.refused?.code === 'CONSOLE_REVOKED' || info.code === CLOSE_CODES.CONSOLE_REVOKED) {
      void this.lifecycle.revoked(info.refused?.message ?? 'refused by the backend');
      return;
    }
    if (info.refused?.code === 'CONSOLE_UNKNOWN') {
      void this.lifecycle.unknown();
      return;
    }
    if (info.refused !== undefined) ctx.setNotice(info.refused);
    ctx.runtime?.readyChallenge.discard();
    ctx.runtime?.uplink.closed();
    const outage = ctx.sync.closed();
    if (outage !== undefined) {
      ctx.runtime?.sessions.connectionLost();
      if (outage.journal) {
        const consoleId = enrolledConsoleId(ctx);
        void ctx.record({
          type: 'agent-offline',
          subject: consoleId === undefined ? {} : { console: consoleId },
          outcome: 'info',
          reasons: [closeReason(info)],
          detail: { closeCode: info.code },
        });
      }
    }
    ctx.changed();
  }

  /** Caught up: the revocations and policy the backend announced are applied, and the backlog is flushed. */
  checkSynced(): void {
    const { ctx } = this;
    const runtime = ctx.runtime;
    if (runtime === undefined) return;
    const held = ctx.identity.policy;
    const online = ctx.sync.checkCaughtUp({
      policyVersion: held?.version ?? 0,
      policyHash: held === undefined ? undefined : hashPolicy(held.policy),
      revocationEpoch: this.aheadTo !== undefined ? 0 : ctx.identity.revocationEpoch,
      ackedSeq: runtime.outbox.status.ackedSeq,
    });
    if (!online) return;
    // The offline cap starts over only once caught up (revocations applied), not at a bare welcome:
    // a network that lets the welcome through and drops what follows does not reset it.
    runtime.sessions.connectionRestored();
    runtime.sessions.scheduleToken(); // a refresh that fell due while offline happens now
    // Reached only on arrival online (checkCaughtUp is true once): not at every acknowledgement, which may come mid-tap.
    runtime.readyChallenge.refill(held?.version ?? 0);
    ctx.changed();
  }

  private welcome(message: Welcome): void {
    const { ctx } = this;
    const runtime = ctx.runtime;
    if (runtime === undefined) return;
    if (message.consoleId !== enrolledConsoleId(ctx)) {
      ctx.setNotice(new BatonError('BACKEND_PROTOCOL_ERROR', 'The backend welcomed another console'));
      runtime.client.drop();
      return;
    }
    runtime.client.welcomed(message.heartbeatSeconds);
    // Ahead of the backend (its database restored from a backup): the catch-up of the recent revocations it sends
    // next is awaited, and only then is the store's epoch taken. A store with none at all sends no catch-up.
    this.aheadTo = undefined;
    if (message.revocationEpoch < ctx.identity.revocationEpoch) {
      if (message.revocationEpoch === 0) ctx.identity.takeBackendRevocationEpoch(0);
      else this.aheadTo = message.revocationEpoch;
    }
    const flushTo = runtime.uplink.welcomed(message.ackedSeq, message.lastHash);
    const back = ctx.sync.welcomed({
      policyVersion: message.policyVersion,
      policyHash: message.policyHash,
      revocationEpoch: message.revocationEpoch,
      flushTo,
    });
    if (back !== undefined) {
      void ctx.record({
        type: 'agent-online',
        subject: { console: message.consoleId },
        outcome: 'info',
        reasons: [back.reason],
        ...(back.offlineMs === undefined ? {} : { detail: { offlineMs: back.offlineMs } }),
      });
    }
    runtime.uplink.pump();
    this.checkSynced();
    ctx.changed();
  }
}

/** The reason an `agent-offline` event gives for a close. */
export function closeReason(info: { code: number; refused?: BatonError }): string {
  if (info.refused !== undefined) return info.refused.code.toLowerCase().replace(/_/g, '-');
  if (info.code === CLOSE_CODES.GOING_AWAY) return 'backend-going-away';
  if (info.code === CLOSE_CODES.ABNORMAL) return 'connection-lost';
  return `closed-${info.code}`;
}
