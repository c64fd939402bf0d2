import type { Logger } from 'pino';
import { BatonError } from '../../shared/errors.js';
import type { RevocationItem, RevocationKind, RevocationMessage } from '../../shared/protocol.js';
import type { RevocationRecord, SessionRecord, Store } from '../store/repositories.js';
import type { EventLog } from './event-log.js';
import type { SessionService } from './session-service.js';

/** What the hub needs from the console channel: who is connected, and a way to reach them. */
export interface ConsolePusher {
  connectedConsoleIds(): Iterable<string>;
  isConnected(consoleId: string): boolean;
  /** Sends an already-serialised message; returns false if the console is not connected. */
  sendRaw(consoleId: string, data: string | Buffer): boolean;
  /** `onReceived`: the console answered the close handshake, so it read the revocation sent before it. */
  disconnect(consoleId: string, reason: 'revoked', onReceived?: () => void): void;
}

export interface RevocationOutcome {
  revocation: RevocationRecord;
  sessionsRevoked: string[];
  pushedTo: number;
}

const ACK_FLUSH_MS = 5;
/** After a failed ack write (the database away), the acks are kept and written again this much later. */
const ACK_RETRY_MS = 1000;
/** Acks kept for a retry at most (the oldest dropped): a console re-acknowledges on its next catch-up anyway. */
const MAX_PENDING_ACKS = 100_000;

/**
 * Revocation state with an epoch. A revocation takes effect in the store at once (every later
 * backend decision, on every node, sees it) and is pushed to every connected console it concerns:
 * session → the console holding it; console → that console; operator and credential → every
 * console, since any of them may hold the operator's key for offline resume.
 */
export class RevocationHub {
  private pendingAcks: { consoleId: string; epoch: number; at: number }[] = [];
  private ackTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    private readonly events: EventLog,
    private readonly sessions: SessionService,
    private readonly clock: () => number,
    /** The console channel, given at construction (see console-port.ts): never a silent no-op. */
    private readonly pusher: ConsolePusher,
    private readonly logger: Logger,
  ) {}

  /** The latest revocation epoch in the store (every node's revocations). */
  currentEpoch(): Promise<number> {
    return this.store.revocations.currentEpoch();
  }

  async revoke(kind: RevocationKind, targetId: string, reason: string, actor: string): Promise<RevocationOutcome> {
    const now = this.clock();
    const { record, revokedSessions } = await this.events.atomically(async (uow) => {
      const tx = uow.store;
      let operatorId: string | null = null;
      let consoleId: string | null = null;
      let affected: SessionRecord[] = [];
      switch (kind) {
        case 'operator': {
          const operator = await tx.operators.get(targetId);
          if (operator === undefined) throw new BatonError('OPERATOR_UNKNOWN', `No operator "${targetId}"`);
          if (!(await tx.operators.revoke(targetId, now, reason))) throw alreadyRevoked(kind, targetId);
          operatorId = targetId;
          affected = await tx.sessions.liveForOperator(targetId);
          await uow.record({
            type: 'operator-revoked',
            subject: { operator: targetId },
            outcome: 'success',
            reasons: ['revoked-by-admin'],
            detail: { actor, reason_admin: reason },
          });
          break;
        }
        case 'credential': {
          const credential = await tx.operators.getCredential(targetId);
          if (credential === undefined) throw new BatonError('NOT_FOUND', `No credential "${targetId}"`);
          if (!(await tx.operators.revokeCredential(targetId, now, reason))) throw alreadyRevoked(kind, targetId);
          operatorId = credential.operatorId;
          affected = (await tx.sessions.liveForOperator(credential.operatorId)).filter(
            (s) => s.credentialId === targetId,
          );
          await uow.record({
            type: 'credential-change',
            subject: { operator: credential.operatorId, credential: targetId },
            outcome: 'success',
            reasons: ['revoked-by-admin'],
            detail: {
              credential_type: 'fido2-roaming',
              change_type: 'revoke',
              fido2_aaguid: credential.aaguid,
              actor,
              reason_admin: reason,
            },
          });
          break;
        }
        case 'console': {
          const console = await tx.consoles.get(targetId);
          if (console === undefined) throw new BatonError('NOT_FOUND', `No console "${targetId}"`);
          if (!(await tx.consoles.revoke(targetId, now, reason))) throw alreadyRevoked(kind, targetId);
          consoleId = targetId;
          affected = await tx.sessions.liveOnConsole(targetId);
          await uow.record({
            type: 'device-compliance-change',
            subject: { console: targetId },
            outcome: 'success',
            reasons: ['revoked-by-admin'],
            detail: { previous_status: 'compliant', current_status: 'not-compliant', actor, reason_admin: reason },
          });
          break;
        }
        case 'session': {
          const session = await tx.sessions.get(targetId);
          if (session === undefined) throw new BatonError('SESSION_UNKNOWN', `No session "${targetId}"`);
          if (session.state !== 'active' && session.state !== 'suspended') {
            throw new BatonError('SESSION_NOT_ACTIVE', `Session "${targetId}" is already ${session.state}`);
          }
          operatorId = session.operatorId;
          consoleId = session.consoleId;
          affected = [session];
          break;
        }
      }
      for (const session of affected) await this.sessions.close(uow, session, 'revoked', `${kind}-revoked`, reason);
      await uow.record({
        type: 'admin-action',
        subject: { ...(operatorId ? { operator: operatorId } : {}), ...(consoleId ? { console: consoleId } : {}) },
        outcome: 'success',
        reasons: [`revoke-${kind}`],
        detail: { actor, target: targetId, reason_admin: reason },
      });
      const stored = await tx.revocations.insert({ kind, targetId, operatorId, consoleId, reason, actor, at: now });
      return { record: stored, revokedSessions: affected };
    });
    const pushedTo = await this.push(record, now);
    return { revocation: record, sessionsRevoked: revokedSessions.map((s) => s.id), pushedTo };
  }

  /**
   * Pushes a revocation committed on another node to the consoles connected to this one that it
   * concerns (the cluster bus says which epoch); returns how many it reached. Unknown epoch: 0.
   */
  async pushCommitted(epoch: number): Promise<number> {
    const [record] = (await this.store.revocations.since(epoch - 1)).filter((r) => r.epoch === epoch);
    if (record === undefined) return 0;
    return this.push(record, this.clock());
  }

  /** What a console that last applied `epoch` must still hear about, on (re)connect. */
  async catchUp(consoleId: string, sinceEpoch: number): Promise<RevocationMessage | undefined> {
    const current = await this.store.revocations.currentEpoch();
    if (current <= sinceEpoch) return undefined;
    const records = await this.store.revocations.since(sinceEpoch);
    const items = records.filter((r) => concerns(r, consoleId)).map(toItem);
    if (items.length > 0) {
      const now = this.clock();
      for (const item of items) await this.store.revocations.recordDeliveries(item.epoch, [consoleId], now);
    }
    // A revocation committed between the two reads is in `records`: the epoch covers it.
    const epoch = records.reduce((max, r) => Math.max(max, r.epoch), current);
    return { type: 'revocation', epoch, items };
  }

  /** A console applied everything up to `epoch`. Writes are batched: thousands arrive at once. */
  acknowledge(consoleId: string, epoch: number): void {
    this.pendingAcks.push({ consoleId, epoch, at: this.clock() });
    this.scheduleAckFlush(ACK_FLUSH_MS);
  }

  /** Writes the acknowledgements received so far, in one transaction. */
  async flushAcks(): Promise<void> {
    if (this.ackTimer !== undefined) clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    const acks = this.pendingAcks;
    this.pendingAcks = [];
    if (acks.length === 0) return;
    try {
      await this.store.transaction(async (tx) => {
        for (const ack of acks) {
          await tx.revocations.recordAck(ack.consoleId, ack.epoch, ack.at);
          await tx.consoles.setSyncState(ack.consoleId, { revocationEpoch: ack.epoch });
        }
      });
    } catch (error) {
      // Kept for a retry (the database may be restarting), behind whatever arrived meanwhile.
      this.pendingAcks = [...acks, ...this.pendingAcks].slice(-MAX_PENDING_ACKS);
      this.scheduleAckFlush(ACK_RETRY_MS);
      throw error;
    }
  }

  private scheduleAckFlush(delayMs: number): void {
    this.ackTimer ??= setTimeout(() => {
      this.ackTimer = undefined;
      this.flushAcks().catch((error: unknown) =>
        this.logger.error(
          { err: error, code: 'REVOCATION_ACK_WRITE_FAILED', pending: this.pendingAcks.length },
          'writing revocation acknowledgements failed; retrying',
        ),
      );
    }, delayMs);
  }

  /** Sends a committed revocation to the consoles it concerns that are connected here. */
  private async push(record: RevocationRecord, now: number): Promise<number> {
    const targets = this.targetsFor(record);
    const message: RevocationMessage = { type: 'revocation', epoch: record.epoch, items: [toItem(record)] };
    const data = Buffer.from(JSON.stringify(message)); // encoded once for every console
    const sent: string[] = [];
    for (const consoleId of targets) if (this.pusher.sendRaw(consoleId, data)) sent.push(consoleId);
    if (record.kind === 'console') {
      // A revoked console is cut off at once, so it never sends an ack: its answer to the close
      // handshake (it read the revocation, which came first on the socket) is its acknowledgement.
      const delivered = sent.includes(record.targetId);
      this.pusher.disconnect(record.targetId, 'revoked', () => {
        if (delivered) this.acknowledge(record.targetId, record.epoch);
      });
    }
    if (sent.length > 0) {
      try {
        await this.store.revocations.recordDeliveries(record.epoch, sent, now);
      } catch (error) {
        // The revocation is committed and pushed; only the delivery bookkeeping is missing.
        this.logger.error(
          { err: error, epoch: record.epoch, code: 'REVOCATION_DELIVERY_WRITE_FAILED' },
          'recording revocation deliveries failed; the revocation stands',
        );
      }
    }
    return sent.length;
  }

  private targetsFor(record: RevocationRecord): string[] {
    switch (record.kind) {
      case 'operator':
      case 'credential':
        return [...this.pusher.connectedConsoleIds()];
      case 'console':
        return [record.targetId];
      case 'session':
        // The revocation names the console holding the session.
        return record.consoleId === null ? [] : [record.consoleId];
    }
  }
}

function alreadyRevoked(kind: RevocationKind, id: string): BatonError {
  return new BatonError(
    kind === 'console' ? 'CONSOLE_REVOKED' : kind === 'operator' ? 'OPERATOR_REVOKED' : 'CREDENTIAL_REVOKED',
    `The ${kind} "${id}" is already revoked`,
  );
}

function concerns(record: RevocationRecord, consoleId: string): boolean {
  switch (record.kind) {
    case 'operator':
    case 'credential':
      return true;
    case 'console':
    case 'session':
      return record.consoleId === consoleId;
  }
}

function toItem(record: RevocationRecord): RevocationItem {
  return {
    epoch: record.epoch,
    kind: record.kind,
    targetId: record.targetId,
    operatorId: record.operatorId,
    reason: record.reason,
    at: record.at,
  };
}
