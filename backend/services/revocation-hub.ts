import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { BatonError } from '../../shared/errors.js';
import {
  MAX_MESSAGE_BYTES,
  type RevocationItem,
  type RevocationKind,
  type RevocationMessage,
} from '../../shared/protocol.js';
import type { RevocationRecord, SessionRecord, Store } from '../store/repositories.js';
import type { EventLog, UnitOfWork } from './event-log.js';
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

/**
 * A fan-out's delivery rows waiting for the writer (sent at `at`); `settle` tells the push how its first
 * attempt went. Each console sent it is in `unacked` until an acknowledgement covering its epoch (of it
 * or a later one) comes, then in `acked` with that ack's time: its row is written acknowledged then, not
 * at the time of a later ack written with it. `held`: the writer waits for the consoles in `unacked`,
 * until `until` (performance.now()): while any console of a held delivery is awaited, nothing is written
 * (see FANOUT_ACK_WAIT_MS).
 */
interface PendingDelivery {
  epoch: number;
  at: number;
  settle: (error: unknown) => void;
  unacked: Set<string>;
  acked: Map<string, number>;
  held: boolean;
  until: number;
}

/**
 * An acknowledgement not yet written: an epoch a console acknowledged, and when it said so; as
 * `recordAcks` takes it. `sentAt`: set by a write that inserts the row of that epoch with it (cleared
 * if the write fails).
 */
interface PendingAck {
  consoleId: string;
  epoch: number;
  at: number;
  sentAt?: number;
}

/** What `recordAcks` writes of an ack, or of a delivery row written acknowledged (`sentAt`). */
type AckEntry = Parameters<Store['revocations']['recordAcks']>[0][number];

/**
 * What a caller writes in a revocation's own unit of work (the Shared Signals receiver: a held SET's claim checked
 * and marked with the revocation, backend/ssf/receiver). Both run on every attempt of the unit.
 */
export interface RevokeHooks {
  /** Runs first, before the unit takes any row of its own (its rows come first in the lock order); a throw refuses the revocation. */
  before?: (uow: UnitOfWork) => Promise<void>;
  /** Runs once the revocation is stored: what it writes commits with the revocation or not at all. */
  stored?: (uow: UnitOfWork, revocation: RevocationRecord) => Promise<void>;
}

export interface RevocationOutcome {
  revocation: RevocationRecord;
  sessionsRevoked: string[];
  pushedTo: number;
}

/**
 * How far back, in epochs, a reader whose own position means nothing to the store is caught up: a
 * console ahead of the store (`catchUp`), an app server subscribing without a usable `Last-Event-ID`
 * (backend/tokens/revocation-feed.ts). Epochs may have gaps (docs/operations.md, "Backup and restore"):
 * the window then holds fewer revocations, never a wrong one.
 */
export const CATCH_UP_EPOCHS = 10_000;
/** At most this many revocations in one catch-up message (the protocol allows 10,000: RevocationMessageSchema). */
const CATCH_UP_ITEMS_PER_MESSAGE = 1_000;
/** At most this much of items in one catch-up message: half a frame (MAX_MESSAGE_BYTES), whatever the reasons' length. */
const CATCH_UP_BYTES_PER_MESSAGE = MAX_MESSAGE_BYTES / 2;
/** After a failed ack write (the database away), the acks are kept and written again this much later. */
const ACK_RETRY_MS = 1000;
/** Acks kept for a retry at most (the oldest dropped): a console re-acknowledges on its next catch-up anyway. */
const MAX_PENDING_ACKS = 100_000;
/**
 * Acks of rising epochs kept per console between two writes (the oldest dropped: the rows it alone
 * covered then take the next one's time). A console answers each fan-out: a few within one write.
 */
const ACKS_KEPT_PER_CONSOLE = 8;
/** How many recent epochs' push counts are kept (what `revoke` reports as `pushedTo`). */
const PUSH_COUNTS_KEPT = 1024;
/**
 * How long a fan-out's writes wait for its consoles' acknowledgements. While the consoles are still
 * reading a revocation, the node writes nothing: once every console sent it has answered (or this long
 * after the send), its delivery rows are written with their acknowledgements, those that answered
 * already acknowledged, in one unit. Before, the rows were inserted while the consoles were reading
 * and then each updated: two writes of every row, and the database's work competing for the same
 * CPU as the consoles' reading and the node's receiving (docs/benchmarks.md, twenty-fifth session).
 */
export const FANOUT_ACK_WAIT_MS = 250;
/** What a fan-out's write settles with when its rows were dropped from a full queue (logged where dropped). */
const DROPPED = new Error('revocation delivery rows dropped after failed writes');

/**
 * Revocation state with an epoch. A revocation takes effect in the store at once (every later
 * backend decision, on every node, sees it) and is pushed to every connected console it concerns:
 * session → the console holding it; console → that console; operator and credential → every
 * console, since any of them may hold the operator's key for offline resume.
 */
export class RevocationHub {
  /**
   * Acknowledgements not yet written: per console, the acks that raised its epoch, in order (at most
   * ACKS_KEPT_PER_CONSOLE; `at` when it said so), so each of its rows written before is marked with the
   * first that covered it. Written by a group commit: the first ack after an idle spell is written at
   * the next turn of the event loop (with whatever arrived in the same turn) unless a fan-out is waiting
   * for its consoles (then at the end of that wait, FANOUT_ACK_WAIT_MS), and the acks that arrive while
   * a write is running are written together right after it — one write per round trip of the database,
   * never one per ack.
   */
  private pendingAcks = new Map<string, PendingAck[]>();
  /** The ack writes, one after the other (each takes every ack pending when it starts). */
  private ackWriting: Promise<unknown> = Promise.resolve();
  /** A write is scheduled (its `flushAcks` not called yet): acks until then ride on it. */
  private ackWriteQueued = false;
  /** After a failed write, no new attempt before this (the database is away). */
  private ackRetryAt = 0;
  /** The last write failed (cleared by the next that succeeds): only then are queued rows dropped past the bound. */
  private writesFailing = false;
  /** The read of the current epoch that callers join (it starts after they called, see `currentEpoch`). */
  private nextEpochRead: Promise<number> | undefined;
  private epochReading: Promise<unknown> = Promise.resolve();
  /**
   * The highest epoch this node has pushed to the consoles connected to it (undefined until the
   * cluster bus's first resync fixed it). Every push goes through `deliverUpTo`, which pushes each
   * epoch once, in order, whoever asks first: `revoke` after its commit here, the bus's `revocation`
   * pointer (from any node), a resync after a dropped bus connection.
   */
  private pushedUpTo: number | undefined;
  /**
   * The highest epoch this node has sent a console: pushed (`push`, from this node's revocations or
   * another's through the bus) or handed out in a catch-up (`catchUp`, which may read a newer epoch than
   * `pushedUpTo`). An acknowledgement above it is refused (`acknowledge`): no console here was told of it.
   */
  private sentUpTo = 0;
  private delivering: Promise<unknown> = Promise.resolve();
  private readonly pushCounts = new Map<number, number>();
  /**
   * Delivery rows not yet written (a fan-out's consoles and when they were sent it). They are written
   * by the same writer as the acknowledgements, before the acks pending with them or by the acks' own
   * write (`writeAcks`): an ack never finds its row missing, and the multi-row writes never run at once
   * (two transactions inserting the same keys in different orders would wait on each other, or deadlock).
   */
  private pendingDeliveries: PendingDelivery[] = [];
  /** Each push's delivery rows written (or its first attempt failed), by epoch, until then: what a read of them awaits. */
  private readonly deliveryWrites = new Map<number, Promise<void>>();
  /** The timer of a scheduled write that waits (a fan-out's consoles, FANOUT_ACK_WAIT_MS, or a retry after a failure). */
  private writeTimer: NodeJS.Timeout | undefined;
  /** The `revoke` calls running on this node (see `onPointer`). */
  private readonly localRevokes = new Set<Promise<RevocationOutcome>>();

  constructor(
    private readonly store: Store,
    private readonly events: EventLog,
    private readonly sessions: SessionService,
    private readonly clock: () => number,
    /** The console channel, given at construction (see console-port.ts): never a silent no-op. */
    private readonly pusher: ConsolePusher,
    private readonly logger: Logger,
  ) {}

  /**
   * The latest revocation epoch in the store (every node's revocations). Concurrent callers (thousands
   * of consoles saying hello after a failover) share one read, and never one that started before
   * they called: a caller waits for the read after the one in flight, so it sees every revocation
   * committed before its call.
   */
  currentEpoch(): Promise<number> {
    if (this.nextEpochRead !== undefined) return this.nextEpochRead;
    const read = this.epochReading.then(() => {
      this.nextEpochRead = undefined; // whoever calls from now on waits for the read after this one
      return this.store.revocations.currentEpoch();
    });
    this.epochReading = read.catch(() => undefined);
    this.nextEpochRead = read;
    return read;
  }

  async revoke(
    kind: RevocationKind,
    targetId: string,
    reason: string,
    actor: string,
    hooks?: RevokeHooks,
  ): Promise<RevocationOutcome> {
    const run = this.revokeAndPush(kind, targetId, reason, actor, hooks);
    this.localRevokes.add(run);
    try {
      return await run;
    } finally {
      this.localRevokes.delete(run);
    }
  }

  /**
   * The cluster bus's `revocation` pointer (`local`: this node published it). Another node's is
   * pushed at once (read from the store). This node's own arrives while the `revoke` that committed
   * it is still on its way to its own push, which needs no read: the pointer waits for the revokes
   * running here, then finds its epoch pushed. It still acts if they did not push it (a revocation
   * committed by another path, or a revoke that failed after its COMMIT).
   */
  onPointer(epoch: number, local: boolean): Promise<void> {
    if (!local || this.localRevokes.size === 0) return this.deliverUpTo(epoch);
    return Promise.allSettled([...this.localRevokes]).then(() => this.deliverUpTo(epoch));
  }

  private async revokeAndPush(
    kind: RevocationKind,
    targetId: string,
    reason: string,
    actor: string,
    hooks: RevokeHooks | undefined,
  ): Promise<RevocationOutcome> {
    /** Consoles whose delivery row the revocation's own transaction wrote. */
    const recorded = new Set<string>();
    const { record, revokedSessions } = await this.events.atomically(async (uow) => {
      recorded.clear(); // the unit of work may run again (PostgreSQL, after a deadlock): only its last run counts
      await hooks?.before?.(uow);
      const tx = uow.store;
      let operatorId: string | null = null;
      let consoleId: string | null = null;
      let affected: SessionRecord[] = [];
      /** Writes the target's own row and its event, once the revocation's time is known. */
      let revokeTarget: (at: number) => Promise<void> = () => Promise.resolve();
      // First the rows it changes, locked in the store's lock order (the target's row, then its live sessions) and
      // checked; nothing is written before its time is taken, so the target's row carries that time too.
      switch (kind) {
        case 'operator': {
          const operator = await tx.operators.get(targetId, { forUpdate: true });
          if (operator === undefined) throw new BatonError('OPERATOR_UNKNOWN', `No operator "${targetId}"`);
          if (operator.revokedAt !== null) throw alreadyRevoked(kind, targetId);
          operatorId = targetId;
          affected = await tx.sessions.liveForOperator(targetId, { forUpdate: true });
          revokeTarget = async (at) => {
            if (!(await tx.operators.revoke(targetId, at, reason))) throw alreadyRevoked(kind, targetId);
            await uow.record({
              type: 'operator-revoked',
              time: at,
              subject: { operator: targetId },
              outcome: 'success',
              reasons: ['revoked-by-admin'],
              detail: { actor, reason_admin: reason },
            });
          };
          break;
        }
        case 'credential': {
          const credential = await tx.operators.getCredential(targetId, { forUpdate: true });
          if (credential === undefined) throw new BatonError('NOT_FOUND', `No credential "${targetId}"`);
          if (credential.revokedAt !== null) throw alreadyRevoked(kind, targetId);
          operatorId = credential.operatorId;
          affected = (await tx.sessions.liveForOperator(credential.operatorId, { forUpdate: true })).filter(
            (s) => s.credentialId === targetId,
          );
          revokeTarget = async (at) => {
            if (!(await tx.operators.revokeCredential(targetId, at, reason))) throw alreadyRevoked(kind, targetId);
            await uow.record({
              type: 'credential-change',
              time: at,
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
          };
          break;
        }
        case 'console': {
          const console = await tx.consoles.get(targetId, { forUpdate: true });
          if (console === undefined) throw new BatonError('NOT_FOUND', `No console "${targetId}"`);
          if (console.revokedAt !== null) throw alreadyRevoked(kind, targetId);
          consoleId = targetId;
          affected = await tx.sessions.liveOnConsole(targetId, { forUpdate: true });
          revokeTarget = async (at) => {
            if (!(await tx.consoles.revoke(targetId, at, reason))) throw alreadyRevoked(kind, targetId);
            await uow.record({
              type: 'device-compliance-change',
              time: at,
              subject: { console: targetId },
              outcome: 'success',
              reasons: ['revoked-by-admin'],
              detail: { previous_status: 'compliant', current_status: 'not-compliant', actor, reason_admin: reason },
            });
          };
          break;
        }
        case 'service':
          throw new BatonError('NOT_FOUND', 'A service is revoked at POST /v1/admin/services/:id/revoke');
        case 'session': {
          const session = await tx.sessions.getForUpdate(targetId);
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
      // Its time is taken now, once this unit holds the target's row and its live sessions: a token whose issuance
      // committed before the unit could take them (the issuance journal locks the session too) has an `iat` no later
      // than this, which is what app servers compare (a wait for those locks is not a window). It is the one time of
      // the revocation: the target's `revoked_at`, the sessions' end, the events (so the Shared Signals SETs made of
      // them) and the revocation record.
      const at = this.clock();
      await revokeTarget(at);
      for (const session of affected) await this.sessions.close(uow, session, 'revoked', `${kind}-revoked`, reason, at);
      await uow.record({
        type: 'admin-action',
        time: at,
        subject: { ...(operatorId ? { operator: operatorId } : {}), ...(consoleId ? { console: consoleId } : {}) },
        outcome: 'success',
        reasons: [`revoke-${kind}`],
        detail: { actor, target: targetId, reason_admin: reason },
      });
      // One console's session or the console itself, connected here: its delivery row commits with the
      // revocation, in the same statement (it is pushed right after the commit), so its acknowledgement
      // waits for no other write.
      const single = kind === 'session' || kind === 'console' ? consoleId : null;
      const deliveredTo = single !== null && this.pusher.isConnected(single) ? [single] : [];
      const stored = await tx.revocations.insert(
        { kind, targetId, operatorId, consoleId, reason, actor, at },
        deliveredTo.length > 0 ? { consoleIds: deliveredTo, at } : undefined,
      );
      await hooks?.stored?.(uow, stored);
      for (const id of deliveredTo) recorded.add(id);
      // Every node pushes it to its own consoles (PostgreSQL: the NOTIFY goes with this COMMIT).
      await uow.publish('revocation', { epoch: stored.epoch });
      return { record: stored, revokedSessions: affected };
    });
    // This node does not wait for its own notification, which waits for this call (`onPointer`): pushed as
    // committed, no read. Once per epoch whoever comes first, so the pointer still acts if this never gets here.
    // Its delivery rows are written once its consoles have answered (FANOUT_ACK_WAIT_MS at most): not awaited here,
    // so a caller revoking one target after another (a SCIM sync, a Shared Signals stream) does not wait on a silent
    // console; a read of the deliveries waits for them (`flushAcks(epoch)`).
    await this.deliverUpTo(record.epoch, record, recorded);
    const pushedTo = this.pushCounts.get(record.epoch) ?? 0;
    return { revocation: record, sessionsRevoked: revokedSessions.map((s) => s.id), pushedTo };
  }

  /**
   * Pushes every revocation committed up to `epoch` (and whatever committed after it) that this node
   * has not pushed yet to the consoles connected here that it concerns, read from the store. The
   * cluster bus's `revocation` pointer calls it on every node. Epochs are gapless and committed in
   * order (revocations.insert), so one watermark per node says what was pushed. Never rejects.
   */
  deliverUpTo(epoch: number, committed?: RevocationRecord, recorded?: ReadonlySet<string>): Promise<void> {
    const run = this.delivering.then(async () => {
      if (this.pushedUpTo !== undefined && epoch <= this.pushedUpTo) return;
      if (committed?.epoch === epoch && (this.pushedUpTo ?? epoch - 1) === epoch - 1) {
        // The next epoch, just committed here: pushed as it is, without reading it back.
        this.pushed(committed, this.push(committed, this.clock(), recorded));
        return;
      }
      await this.pushSince(this.pushedUpTo ?? epoch - 1);
    });
    this.delivering = run.catch(() => undefined);
    return run.catch((error: unknown) =>
      this.logger.error(
        { err: error, epoch, code: 'REVOCATION_PUSH_FAILED' },
        'pushing a revocation failed; consoles catch up at the next resync or reconnect',
      ),
    );
  }

  /**
   * After the cluster bus (re)connected: notifications may have been missed, so whatever was
   * committed since this node's watermark is pushed to the consoles connected here. The first
   * resync (at start, nobody connected yet) only fixes the watermark: a console that connects
   * catches up in its hello. Rejects when the store cannot be read (the bus then retries).
   */
  resync(): Promise<void> {
    const run = this.delivering.then(async () => {
      if (this.pushedUpTo === undefined) {
        this.pushedUpTo = await this.store.revocations.currentEpoch();
        return;
      }
      await this.pushSince(this.pushedUpTo);
    });
    this.delivering = run.catch(() => undefined);
    return run;
  }

  /** Notes that `record` was pushed to `count` consoles here, and moves the watermark. */
  private pushed(record: RevocationRecord, count: number): void {
    this.pushCounts.set(record.epoch, count);
    if (this.pushCounts.size > PUSH_COUNTS_KEPT) {
      const oldest = this.pushCounts.keys().next().value;
      if (oldest !== undefined) this.pushCounts.delete(oldest);
    }
    if (this.pushedUpTo === undefined || record.epoch > this.pushedUpTo) this.pushedUpTo = record.epoch;
  }

  /** Pushes what the store holds after `after`, in epoch order, moving the watermark as it goes. */
  private async pushSince(after: number): Promise<void> {
    const records = await this.store.revocations.since(after);
    const now = this.clock();
    for (const record of records) this.pushed(record, this.push(record, now));
    if (records.length === 0 && (this.pushedUpTo === undefined || after > this.pushedUpTo)) this.pushedUpTo = after;
  }

  /**
   * What a console that last applied `sinceEpoch` must still hear about, on (re)connect. `current`:
   * the store's epoch if the caller has just read it (`currentEpoch`, read after the console's hello
   * was accepted, so a revocation committed later is pushed to it like to every console connected here).
   *
   * A console ahead of the store (`sinceEpoch` > `current`: the database was restored from a backup
   * taken before epochs the console applied, and the store hands them out again for new revocations)
   * cannot say which of the store's revocations it has: it is sent every one concerning it among the
   * last CATCH_UP_EPOCHS epochs, with the store's epoch (which its agent takes, docs/protocol.md), and
   * CONSOLE_EPOCH_AHEAD is logged. Nothing to send when the store holds no revocation at all.
   */
  async catchUp(consoleId: string, sinceEpoch: number, current?: number): Promise<RevocationMessage[]> {
    current ??= await this.currentEpoch();
    if (current === sinceEpoch) return [];
    let from = sinceEpoch;
    if (current < sinceEpoch) {
      this.logger.warn(
        { console: consoleId, consoleEpoch: sinceEpoch, storeEpoch: current, code: 'CONSOLE_EPOCH_AHEAD' },
        'a console applied revocation epochs the store does not hold (a database restored from a backup?); ' +
          'catching it up on the recent ones',
      );
      if (current === 0) return [];
      from = Math.max(0, current - CATCH_UP_EPOCHS);
    }
    const records = await this.store.revocations.since(from);
    const items = records.filter((r) => concerns(r, consoleId)).map(toItem);
    await this.store.revocations.recordCatchUp(
      consoleId,
      items.map((item) => item.epoch),
      this.clock(),
    );
    // A revocation committed between the two reads is in `records`: the epoch covers it.
    const epoch = records.reduce((max, r) => Math.max(max, r.epoch), current);
    this.sentUpTo = Math.max(this.sentUpTo, epoch); // before the console can answer it
    return catchUpMessages(items, epoch);
  }

  /**
   * A console applied everything up to `epoch`. Written by a group commit (thousands arrive at once).
   * Returns false, recording nothing, for an epoch above any this node has sent (a console's bug or
   * tampering: its stored epoch would jump, and rows written meanwhile be marked acknowledged unseen);
   * the caller tells the console (REVOCATION_ACK_EPOCH_UNKNOWN).
   */
  acknowledge(consoleId: string, epoch: number): boolean {
    if (epoch > this.sentUpTo) {
      this.logger.warn(
        { console: consoleId, epoch, sentUpTo: this.sentUpTo, code: 'REVOCATION_ACK_EPOCH_UNKNOWN' },
        'a console acknowledged a revocation epoch this node never sent; not recorded',
      );
      return false;
    }
    const at = this.clock();
    const acks = this.pendingAcks.get(consoleId);
    // Only an ack that raises its epoch counts: a lower or equal one covers nothing a pending one does not, earlier.
    if (acks === undefined) this.pendingAcks.set(consoleId, [{ consoleId, epoch, at }]);
    else if (epoch > (acks.at(-1)?.epoch ?? 0)) {
      acks.push({ consoleId, epoch, at });
      if (acks.length > ACKS_KEPT_PER_CONSOLE) acks.shift();
    }
    let awaited = false;
    for (const delivery of this.pendingDeliveries) {
      if (delivery.unacked.size === 0) continue;
      if (delivery.epoch <= epoch && delivery.unacked.delete(consoleId)) delivery.acked.set(consoleId, at);
      if (awaits(delivery)) awaited = true;
    }
    // The last console a fan-out waited for: its rows and acks are written now, not at the end of the wait.
    if (!awaited && this.writeTimer !== undefined && this.ackRetryAt <= performance.now()) this.cancelScheduledWrite();
    this.scheduleAckWrite();
    return true;
  }

  /**
   * Writes every delivery row and acknowledgement pending (after any write already running), without
   * waiting for the consoles a fan-out still awaits (the node stopping). With `epoch` (an admin reading
   * that revocation's deliveries): first waits for this node's rows of it, written once its consoles have
   * answered (FANOUT_ACK_WAIT_MS at most), then writes at once any ack of it still pending (cutting short
   * another fan-out's wait); with none, the pending acks are written as usual.
   * Rejects when the write fails: the rows and acks are kept for a retry.
   */
  async flushAcks(epoch?: number): Promise<void> {
    if (epoch !== undefined) {
      await this.deliveriesWritten([epoch]);
      if (!this.pendsFor(epoch)) return this.queueWrite(false);
    }
    this.cancelScheduledWrite();
    return this.queueWrite(true);
  }

  /**
   * Resolves once this node's delivery rows of these revocations are written, or their first attempt
   * failed: each at most FANOUT_ACK_WAIT_MS after its send and its write. Writes nothing itself (a
   * list of revocations read while a fan-out waits shows it whole).
   */
  async deliveriesWritten(epochs: readonly number[]): Promise<void> {
    await Promise.all(epochs.map((epoch) => this.deliveryWrites.get(epoch) ?? Promise.resolve()));
  }

  /** Whether rows or acks of `epoch` (an ack of a later epoch covers it) are not written yet. */
  private pendsFor(epoch: number): boolean {
    if (this.pendingDeliveries.some((delivery) => delivery.epoch === epoch)) return true;
    for (const acks of this.pendingAcks.values()) if ((acks.at(-1)?.epoch ?? 0) >= epoch) return true;
    return false;
  }

  private queueWrite(force: boolean): Promise<void> {
    const run = this.ackWriting.then(() => this.writeAcks(force));
    this.ackWriting = run.catch(() => undefined);
    return run;
  }

  /**
   * Until when the writer waits for a fan-out's consoles (0: it does not): while any fan-out waits, the
   * end of the wait of the oldest fan-out not written yet. Once that is past, no fan-out waits any longer (a newer one's rows are written with it,
   * those of its consoles not answered yet unacknowledged), so back-to-back fan-outs never hold the
   * writer more than FANOUT_ACK_WAIT_MS.
   */
  private holdEnd(): number {
    if (!this.pendingDeliveries.some(awaits)) return 0;
    // The oldest fan-out not written yet, whether or not its own consoles have all answered.
    let end = Number.POSITIVE_INFINITY;
    for (const delivery of this.pendingDeliveries) end = Math.min(end, delivery.until);
    if (end > performance.now()) return end;
    for (const delivery of this.pendingDeliveries) delivery.held = false;
    return 0;
  }

  /**
   * Writes the pending delivery rows, then the pending acks, so the rows they mark exist by then; both
   * taken at once, so an ack that arrives during the write waits for the next. A row whose console
   * acknowledged its epoch (an ack of it or a later one) is not written on its own: the acks' write
   * inserts it, acknowledged at that console's first ack covering it (`recordAcks` with `sentAt`), so a
   * fan-out whose consoles all answered is one write of its rows, each at its own console's time.
   * Unless `force`, nothing is written while a fan-out waits for its consoles (its end schedules it).
   */
  private async writeAcks(force: boolean): Promise<void> {
    if (force) for (const delivery of this.pendingDeliveries) delivery.held = false;
    else if (this.holdEnd() > 0) {
      this.scheduleAckWrite();
      return;
    }
    const deliveries = this.pendingDeliveries;
    const acks = this.pendingAcks;
    if (deliveries.length === 0 && acks.size === 0) return;
    this.pendingDeliveries = [];
    this.pendingAcks = new Map();
    // One entry per ack (the pending acks themselves: a fan-out's 10,000 allocate nothing more), and per row
    // written with an ack: on the ack when it is of the row's epoch (a fan-out whose consoles answered it: one
    // entry a console), else one of its own.
    const entries: AckEntry[] = [];
    for (const list of acks.values()) for (const ack of list) entries.push(ack);
    /** Per delivery, the consoles whose row is written on its own (no ack covering its epoch): unacknowledged. */
    const alone = deliveries.map((delivery) => {
      for (const [consoleId, at] of delivery.acked) {
        const same = ackOf(acks.get(consoleId), delivery.epoch);
        if (same === undefined) entries.push({ consoleId, epoch: delivery.epoch, at, sentAt: delivery.at });
        else {
          same.sentAt = delivery.at;
          if (at < same.at) same.at = at;
        }
      }
      return [...delivery.unacked];
    });
    let written = 0;
    try {
      for (; written < deliveries.length; written++) {
        const delivery = deliveries[written] as PendingDelivery;
        const consoles = alone[written] as string[];
        if (consoles.length > 0) await this.store.revocations.recordDeliveries(delivery.epoch, consoles, delivery.at);
      }
      // One unit of a few statements whatever the number of acks (PostgreSQL: arrays, not a row each;
      // one statement for a single console and epoch).
      if (entries.length > 0) await this.store.revocations.recordAcks(entries);
    } catch (error) {
      // Kept for a retry (the database may be restarting): the rows not written (those that were to ride on
      // the acks too, with their ack times), before any pushed meanwhile; the acks, those that arrived meanwhile
      // after them.
      const kept = deliveries.filter((delivery, i) => {
        if (i < written) delivery.unacked.clear();
        delivery.held = false;
        return rows(delivery) > 0;
      });
      this.pendingDeliveries.unshift(...kept);
      // Their rows ride on the kept deliveries again (their `acked`), not on these acks.
      for (const list of acks.values()) for (const ack of list) delete ack.sentAt;
      this.putBack(acks);
      for (const delivery of deliveries) delivery.settle(error);
      this.retryLater();
      throw error;
    }
    this.writesFailing = false;
    for (const delivery of deliveries) delivery.settle(undefined);
  }

  /**
   * The acks of a failed write, back with those that arrived meanwhile (after them, each console's
   * only where they raise its epoch). Past MAX_PENDING_ACKS acks, each console keeps only its latest
   * (its epoch kept, the rows below marked at that ack's time), then the oldest consoles' are dropped.
   */
  private putBack(acks: Map<string, PendingAck[]>): void {
    const arrived = this.pendingAcks;
    this.pendingAcks = acks;
    let count = 0;
    for (const [consoleId, list] of acks) {
      for (const ack of arrived.get(consoleId) ?? []) if (ack.epoch > (list.at(-1)?.epoch ?? 0)) list.push(ack);
      if (list.length > ACKS_KEPT_PER_CONSOLE) list.splice(0, list.length - ACKS_KEPT_PER_CONSOLE);
      count += list.length;
    }
    for (const [consoleId, list] of arrived) {
      if (acks.has(consoleId)) continue;
      acks.set(consoleId, list);
      count += list.length;
    }
    for (const list of acks.values()) {
      if (count <= MAX_PENDING_ACKS) break;
      count -= list.length - 1;
      list.splice(0, list.length - 1);
    }
    for (const consoleId of acks.keys()) {
      if (count <= MAX_PENDING_ACKS) break;
      acks.delete(consoleId); // the oldest first (insertion order)
      count--;
    }
  }

  /** After a failed write: the next attempt waits ACK_RETRY_MS (the database is away). */
  private retryLater(): void {
    this.writesFailing = true;
    this.ackRetryAt = performance.now() + ACK_RETRY_MS;
    this.scheduleAckWrite();
  }

  /**
   * Queues a fan-out's delivery rows for the writer; resolves when they are written, or with the
   * error of the first attempt (they stay queued for the retries, the oldest dropped past a bound).
   */
  private queueDeliveries(epoch: number, consoles: string[], at: number): Promise<unknown> {
    return new Promise<unknown>((resolve) => {
      let settled = false;
      // Consoles that answered during the send loop (its frames are written synchronously) are not awaited.
      const unacked = new Set<string>();
      const acked = new Map<string, number>();
      for (const consoleId of consoles) {
        const covering = firstCovering(this.pendingAcks.get(consoleId), epoch);
        if (covering === undefined) unacked.add(consoleId);
        else acked.set(consoleId, covering.at);
      }
      this.pendingDeliveries.push({
        epoch,
        at,
        settle: (error) => {
          if (settled) return;
          settled = true;
          resolve(error);
        },
        unacked,
        acked,
        held: true,
        until: performance.now() + FANOUT_ACK_WAIT_MS,
      });
      let queued = 0;
      for (const d of this.pendingDeliveries) queued += rows(d);
      if (queued > MAX_PENDING_ACKS) {
        // Past the bound, no fan-out waits for its consoles any longer: the write runs now.
        for (const d of this.pendingDeliveries) d.held = false;
        this.cancelScheduledWrite();
      }
      // Only while the writes fail (the database away) are the oldest rows dropped.
      while (queued > MAX_PENDING_ACKS && this.pendingDeliveries.length > 1 && this.writesFailing) {
        const dropped = this.pendingDeliveries.shift() as PendingDelivery;
        queued -= rows(dropped);
        dropped.settle(DROPPED);
        this.logger.error(
          { epoch: dropped.epoch, consoles: rows(dropped), code: 'REVOCATION_DELIVERY_WRITE_FAILED' },
          'revocation delivery rows dropped after failed writes; the revocation stands',
        );
      }
      this.scheduleAckWrite();
    });
  }

  /**
   * One write scheduled at a time: the next turn of the event loop, or the end of a fan-out's wait
   * for its consoles, or the retry time after a failure; it runs after the write in progress, if
   * any, and takes every row and ack pending then.
   */
  private scheduleAckWrite(): void {
    if (this.ackWriteQueued) return;
    this.ackWriteQueued = true;
    const write = () => {
      this.ackWriteQueued = false; // an ack from now on is not in this call's batch: it schedules the next
      this.writeTimer = undefined;
      this.queueWrite(false).catch((error: unknown) =>
        this.logger.error(
          { err: error, code: 'REVOCATION_ACK_WRITE_FAILED', pending: this.pendingAcks.size },
          'writing revocation acknowledgements failed; retrying',
        ),
      );
    };
    // After a failure, the retry time; while a fan-out waits for its consoles, the end of its wait.
    const wait = Math.max(this.ackRetryAt, this.holdEnd()) - performance.now();
    if (wait > 0) this.writeTimer = setTimeout(write, wait).unref();
    else setImmediate(write);
  }

  /** A write scheduled for later is to run now (the consoles a fan-out waited for all answered, or a flush). */
  private cancelScheduledWrite(): void {
    if (this.writeTimer === undefined) return;
    clearTimeout(this.writeTimer);
    this.writeTimer = undefined;
    this.ackWriteQueued = false;
  }

  /** Sends a committed revocation to the consoles it concerns that are connected here. */
  private push(record: RevocationRecord, now: number, recorded?: ReadonlySet<string>): number {
    const targets = this.targetsFor(record);
    const message: RevocationMessage = { type: 'revocation', epoch: record.epoch, items: [toItem(record)] };
    const data = Buffer.from(JSON.stringify(message)); // encoded once for every console
    // Before the first send: a console may answer within it.
    this.sentUpTo = Math.max(this.sentUpTo, record.epoch);
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
    const unrecorded = recorded === undefined ? sent : sent.filter((id) => !recorded.has(id));
    if (unrecorded.length > 0) {
      // Not awaited here (neither the next epoch's push nor `revoke` waits for this one's consoles): a read of the
      // deliveries does (`deliveriesWritten`).
      const written = this.queueDeliveries(record.epoch, unrecorded, now).then((failed) => {
        if (this.deliveryWrites.get(record.epoch) === written) this.deliveryWrites.delete(record.epoch);
        if (failed !== undefined && failed !== DROPPED) {
          // The revocation is committed and pushed; only the delivery bookkeeping waits for a retry.
          this.logger.error(
            { err: failed, epoch: record.epoch, code: 'REVOCATION_DELIVERY_WRITE_FAILED' },
            'recording revocation deliveries failed; the revocation stands, the rows are written on a retry',
          );
        }
      });
      this.deliveryWrites.set(record.epoch, written);
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
      case 'service': // a service account concerns no console (backend/service-accounts/)
        return [];
    }
  }
}

/**
 * A catch-up as messages a console accepts: at most CATCH_UP_ITEMS_PER_MESSAGE items and
 * CATCH_UP_BYTES_PER_MESSAGE of items each (the protocol's frame is MAX_MESSAGE_BYTES; a console away
 * for long, or new where thousands of operators were revoked, is owed more). In epoch order; each
 * message but the last carries its last item's epoch, so a console that drops mid-way acknowledged what
 * it applied and is caught up from there; the last carries `epoch`, the store's.
 */
function catchUpMessages(items: RevocationItem[], epoch: number): RevocationMessage[] {
  const messages: RevocationMessage[] = [];
  let part: RevocationItem[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = Buffer.byteLength(JSON.stringify(item)) + 1;
    if (part.length > 0 && (part.length >= CATCH_UP_ITEMS_PER_MESSAGE || bytes + size > CATCH_UP_BYTES_PER_MESSAGE)) {
      messages.push({ type: 'revocation', epoch: (part.at(-1) as RevocationItem).epoch, items: part });
      part = [];
      bytes = 0;
    }
    part.push(item);
    bytes += size;
  }
  messages.push({ type: 'revocation', epoch, items: part });
  return messages;
}

/** A console's pending ack of exactly `epoch` not yet carrying a row (`sentAt`), if any. */
function ackOf(list: PendingAck[] | undefined, epoch: number): PendingAck | undefined {
  if (list === undefined) return undefined;
  for (const ack of list) if (ack.epoch === epoch && ack.sentAt === undefined) return ack;
  return undefined;
}

/** A console's first pending ack covering `epoch` (of it or a later one), if any. */
function firstCovering(list: PendingAck[] | undefined, epoch: number): PendingAck | undefined {
  if (list === undefined) return undefined;
  for (const ack of list) if (ack.epoch >= epoch) return ack;
  return undefined;
}

/** Whether the writer waits for a console of this fan-out. */
function awaits(delivery: PendingDelivery): boolean {
  return delivery.held && delivery.unacked.size > 0;
}

/** A fan-out's delivery rows not written yet. */
function rows(delivery: PendingDelivery): number {
  return delivery.unacked.size + delivery.acked.size;
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
    case 'service': // a service account: app servers only (the action-token revocation stream)
      return false;
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
