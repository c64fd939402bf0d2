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

/**
 * Revocation state with an epoch. A revocation takes effect in the store at once (every later
 * backend decision sees it) and is pushed to every connected console it concerns:
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
  ) {}

  get epoch(): number {
    return this.store.revocations.currentEpoch();
  }

  revoke(kind: RevocationKind, targetId: string, reason: string, actor: string): RevocationOutcome {
    const now = this.clock();
    const revokedSessions: SessionRecord[] = [];
    const record = this.events.atomically(() => {
      let operatorId: string | null = null;
      let consoleId: string | null = null;
      let affected: SessionRecord[] = [];
      switch (kind) {
        case 'operator': {
          const operator = this.store.operators.get(targetId);
          if (operator === undefined) throw new BatonError('OPERATOR_UNKNOWN', `No operator "${targetId}"`);
          if (!this.store.operators.revoke(targetId, now, reason)) throw alreadyRevoked(kind, targetId);
          operatorId = targetId;
          affected = this.store.sessions.liveForOperator(targetId);
          this.events.record({
            type: 'operator-revoked',
            subject: { operator: targetId },
            outcome: 'success',
            reasons: ['revoked-by-admin'],
            detail: { actor, reason_admin: reason },
          });
          break;
        }
        case 'credential': {
          const credential = this.store.operators.getCredential(targetId);
          if (credential === undefined) throw new BatonError('NOT_FOUND', `No credential "${targetId}"`);
          if (!this.store.operators.revokeCredential(targetId, now, reason)) throw alreadyRevoked(kind, targetId);
          operatorId = credential.operatorId;
          affected = this.store.sessions
            .liveForOperator(credential.operatorId)
            .filter((s) => s.credentialId === targetId);
          this.events.record({
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
          const console = this.store.consoles.get(targetId);
          if (console === undefined) throw new BatonError('NOT_FOUND', `No console "${targetId}"`);
          if (!this.store.consoles.revoke(targetId, now, reason)) throw alreadyRevoked(kind, targetId);
          consoleId = targetId;
          affected = this.store.sessions.liveOnConsole(targetId);
          this.events.record({
            type: 'device-compliance-change',
            subject: { console: targetId },
            outcome: 'success',
            reasons: ['revoked-by-admin'],
            detail: { previous_status: 'compliant', current_status: 'not-compliant', actor, reason_admin: reason },
          });
          break;
        }
        case 'session': {
          const session = this.store.sessions.get(targetId);
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
      for (const session of affected) {
        this.sessions.close(session, 'revoked', `${kind}-revoked`, reason);
        revokedSessions.push(session);
      }
      this.events.record({
        type: 'admin-action',
        subject: { ...(operatorId ? { operator: operatorId } : {}), ...(consoleId ? { console: consoleId } : {}) },
        outcome: 'success',
        reasons: [`revoke-${kind}`],
        detail: { actor, target: targetId, reason_admin: reason },
      });
      return this.store.revocations.insert({ kind, targetId, operatorId, consoleId, reason, actor, at: now });
    });

    const targets = this.targetsFor(record, revokedSessions);
    const message: RevocationMessage = { type: 'revocation', epoch: record.epoch, items: [toItem(record)] };
    const data = Buffer.from(JSON.stringify(message)); // encoded once for every console
    const sent: string[] = [];
    for (const consoleId of targets) if (this.pusher.sendRaw(consoleId, data)) sent.push(consoleId);
    this.store.revocations.recordDeliveries(record.epoch, sent, now);
    if (kind === 'console') {
      // A revoked console is cut off at once, so it never sends an ack: its answer to the close
      // handshake (it read the revocation, which came first on the socket) is its acknowledgement.
      const delivered = sent.includes(targetId);
      this.pusher.disconnect(targetId, 'revoked', () => {
        if (delivered) this.acknowledge(targetId, record.epoch);
      });
    }
    return { revocation: record, sessionsRevoked: revokedSessions.map((s) => s.id), pushedTo: sent.length };
  }

  /** What a console that last applied `epoch` must still hear about, on (re)connect. */
  catchUp(consoleId: string, sinceEpoch: number): RevocationMessage | undefined {
    const current = this.epoch;
    if (current <= sinceEpoch) return undefined;
    const items = this.store.revocations
      .since(sinceEpoch)
      .filter((r) => concerns(r, consoleId))
      .map(toItem);
    const sent = items.map((i) => i.epoch);
    if (sent.length > 0) {
      const now = this.clock();
      for (const epoch of sent) this.store.revocations.recordDeliveries(epoch, [consoleId], now);
    }
    return { type: 'revocation', epoch: current, items };
  }

  /** A console applied everything up to `epoch`. Writes are batched: thousands arrive at once. */
  acknowledge(consoleId: string, epoch: number): void {
    this.pendingAcks.push({ consoleId, epoch, at: this.clock() });
    this.ackTimer ??= setTimeout(() => this.flushAcks(), ACK_FLUSH_MS);
  }

  flushAcks(): void {
    if (this.ackTimer !== undefined) clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    const acks = this.pendingAcks;
    this.pendingAcks = [];
    if (acks.length === 0) return;
    this.store.transaction(() => {
      for (const ack of acks) {
        this.store.revocations.recordAck(ack.consoleId, ack.epoch, ack.at);
        this.store.consoles.setSyncState(ack.consoleId, { revocationEpoch: ack.epoch });
      }
    });
  }

  private targetsFor(record: RevocationRecord, sessions: SessionRecord[]): Iterable<string> {
    switch (record.kind) {
      case 'operator':
      case 'credential':
        return [...this.pusher.connectedConsoleIds()];
      case 'console':
        return [record.targetId];
      case 'session':
        return [...new Set(sessions.map((s) => s.consoleId))];
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
