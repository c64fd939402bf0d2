/**
 * What the revocation benchmarks measure on both ends: when each console received each epoch (its
 * WebSocket handler answers with the `ack` at once), and when the backend committed each
 * acknowledgement (read from instrumented backend children, bench/lib/backend-child.ts). Shared by
 * bench/revocation-fanout.ts (one embedded node) and bench/cluster-revocation.ts (nodes on PostgreSQL).
 */
import type WebSocket from 'ws';
import type { BackendMessage } from '../../shared/protocol.js';
import type { BackendProcess } from './backend-process.js';
import { wallMs } from './report.js';

/** A backend child's answer to `revocation-times` (times in its clock). */
export interface RevocationTimes {
  /** Whether the revoke call was taken by that node (else only its committed acks count). */
  found: boolean;
  startedAt?: number;
  returnedAt?: number;
  /** Its push loop: the first and the last console's frame written. */
  firstSentAt?: number;
  lastSentAt?: number;
  /** Acknowledgements of the epoch committed on that node, and the latest commit time. */
  count: number;
  lastAt?: number;
  /** Acknowledgements of the epoch this node received (before any write), and when the last arrived. */
  receivedCount: number;
  receivedLastAt?: number;
  /** With `consoleId`: when that console's acknowledgement was committed. */
  consoleAt?: number;
  /** With `all`: every committed acknowledgement. */
  acks?: [string, number][];
}

/** Committed acknowledgements of one epoch over the nodes, in this process's clock. */
export interface CommittedAcks {
  count: number;
  lastAt: number;
  /** Acknowledgements received by the nodes (in memory, before any write) and the last arrival. */
  receivedCount: number;
  receivedLastAt: number;
  consoleAt?: number;
  /** The node that took the revoke call: its `revoke` start and return, its push loop's first and last write. */
  startedAt?: number;
  returnedAt?: number;
  firstSentAt?: number;
  lastSentAt?: number;
  acks?: [string, number][];
}

/** One epoch's receipts: per console (by its index in RevocationReceipts), when it received it; NaN until then. */
interface EpochReceipts {
  times: Float64Array;
  count: number;
  last: number;
}

/**
 * When each console received each epoch (this process's wall clock), and who waits for it. Kept in
 * one typed array per epoch, indexed by console: the simulated consoles share the two cores with the
 * backend they measure, so their bookkeeping allocates nothing per receipt (a map entry and a boxed
 * time per console and epoch cost the anchor's clients about 10 ms a round, bench/anchor-client-work.ts).
 */
export class RevocationReceipts {
  private readonly index = new Map<string, number>();
  private readonly byEpoch = new Map<number, EpochReceipts>();
  private readonly waiters = new Map<number, { consoleId: string | undefined; count: number; resolve: () => void }>();

  /** A console's message handler: on a revocation it acknowledges at once, then notes the time. */
  handler(consoleId: string, onRevocation?: (epoch: number) => void) {
    let i = this.index.get(consoleId);
    if (i === undefined) this.index.set(consoleId, (i = this.index.size));
    const slot = i;
    return (message: BackendMessage, ws: WebSocket): void => {
      if (message.type !== 'revocation') return;
      const at = wallMs();
      ws.send(JSON.stringify({ type: 'ack', of: 'revocation', epoch: message.epoch }));
      onRevocation?.(message.epoch);
      const receipts = this.receiptsOf(message.epoch, slot);
      if (!Number.isNaN(receipts.times[slot] as number)) return; // received before (a catch-up after a reconnect)
      receipts.times[slot] = at;
      receipts.count++;
      receipts.last = Math.max(receipts.last, at);
      const waiter = this.waiters.get(message.epoch);
      if (waiter !== undefined && (waiter.consoleId === consoleId || receipts.count >= waiter.count)) {
        this.waiters.delete(message.epoch);
        waiter.resolve();
      }
    };
  }

  /** Resolves when `consoleId` (or, without one, `count` consoles) received `epoch`. */
  waitFor(epoch: number, consoleId: string | undefined, count: number, timeoutMs: number): Promise<void> {
    if (consoleId !== undefined ? !Number.isNaN(this.at(epoch, consoleId)) : this.received(epoch) >= count) {
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`epoch ${epoch}: ${this.received(epoch)}/${count} received in ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiters.set(epoch, {
        consoleId,
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  /** How many consoles received `epoch`. */
  received(epoch: number): number {
    return this.byEpoch.get(epoch)?.count ?? 0;
  }

  /** When `consoleId` received `epoch` (NaN if it has not), or the last of every console that received it. */
  at(epoch: number, consoleId?: string): number {
    const receipts = this.byEpoch.get(epoch);
    if (consoleId === undefined) return receipts === undefined || receipts.count === 0 ? -Infinity : receipts.last;
    const i = this.index.get(consoleId);
    return receipts === undefined || i === undefined || i >= receipts.times.length
      ? Number.NaN
      : (receipts.times[i] as number);
  }

  /** When each console that received `epoch` received it. */
  times(epoch: number): number[] {
    const receipts = this.byEpoch.get(epoch);
    return receipts === undefined ? [] : [...receipts.times].filter((at) => !Number.isNaN(at));
  }

  private receiptsOf(epoch: number, slot: number): EpochReceipts {
    let receipts = this.byEpoch.get(epoch);
    if (receipts === undefined) {
      receipts = {
        times: new Float64Array(Math.max(this.index.size, slot + 1)).fill(Number.NaN),
        count: 0,
        last: -Infinity,
      };
      this.byEpoch.set(epoch, receipts);
    } else if (slot >= receipts.times.length) {
      // A console first seen after this epoch's first receipt (connected since).
      const grown = new Float64Array(this.index.size).fill(Number.NaN);
      grown.set(receipts.times);
      receipts.times = grown;
    }
    return receipts;
  }
}

/**
 * Polls the nodes until `count` acknowledgements of `epoch` are committed (summed over the nodes).
 * Each poll carries counts only (10,000 times over IPC every few ms would load the machine being
 * measured); `all` fetches every commit time once at the end.
 */
export async function waitForAcks(
  nodes: readonly BackendProcess[],
  epoch: number,
  count: number,
  timeoutMs: number,
  options: { consoleId?: string; all?: boolean } = {},
): Promise<CommittedAcks> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const result: CommittedAcks = {
      count: 0,
      lastAt: Number.NEGATIVE_INFINITY,
      receivedCount: 0,
      receivedLastAt: Number.NEGATIVE_INFINITY,
    };
    for (const node of nodes) {
      const times = await node.request<RevocationTimes>('revocation-times', {
        epoch,
        ...(options.consoleId === undefined ? {} : { consoleId: options.consoleId }),
      });
      result.count += times.count;
      if (times.lastAt !== undefined) result.lastAt = Math.max(result.lastAt, times.lastAt + node.clockOffsetMs);
      result.receivedCount += times.receivedCount;
      if (times.receivedLastAt !== undefined)
        result.receivedLastAt = Math.max(result.receivedLastAt, times.receivedLastAt + node.clockOffsetMs);
      if (times.consoleAt !== undefined) result.consoleAt = times.consoleAt + node.clockOffsetMs;
      if (times.found && times.startedAt !== undefined && times.returnedAt !== undefined) {
        result.startedAt = times.startedAt + node.clockOffsetMs;
        result.returnedAt = times.returnedAt + node.clockOffsetMs;
        if (times.firstSentAt !== undefined) result.firstSentAt = times.firstSentAt + node.clockOffsetMs;
        if (times.lastSentAt !== undefined) result.lastSentAt = times.lastSentAt + node.clockOffsetMs;
      }
    }
    if (result.count >= count && (options.consoleId === undefined || result.consoleAt !== undefined)) {
      if (options.all === true) {
        result.acks = [];
        for (const node of nodes) {
          const times = await node.request<RevocationTimes>('revocation-times', { epoch, all: true });
          for (const [id, at] of times.acks ?? []) result.acks.push([id, at + node.clockOffsetMs]);
        }
      }
      return result;
    }
    if (performance.now() > deadline) throw new Error(`epoch ${epoch}: ${result.count}/${count} acks committed`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
