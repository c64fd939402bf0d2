/**
 * Helpers for the cluster tests (not imported by the backend): a logger that keeps its records in
 * memory (never on stdout, which `node --test` reads), and promise-returning waits for deliveries and
 * events, so tests wait for what they assert instead of sleeping.
 */
import { pino, type Logger } from 'pino';
import type { BusStatus, ClusterBus, Delivery, Pointer, ResyncInfo, Topic } from './bus.js';

export interface LogRecord {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export function memoryLogger(): { logger: Logger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(line: string) {
        records.push(JSON.parse(line) as LogRecord);
      },
    },
  );
  return { logger, records };
}

/** Resolves with `value()` once `register` reports a match; rejects after `timeoutMs` (a guard, not a wait). */
function waitFor<A extends unknown[], R>(
  what: string,
  register: (handler: (...args: A) => void) => () => void,
  match: (...args: A) => R | undefined,
  timeoutMs: number,
): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const unsubscribe = register((...args: A) => {
      const result = match(...args);
      if (result === undefined) return;
      clearTimeout(timer);
      unsubscribe();
      resolve(result);
    });
  });
}

/** The next delivery of `topic` on `bus` that satisfies `predicate`. */
export function nextDelivery<T extends Topic>(
  bus: ClusterBus,
  topic: T,
  predicate: (pointer: Pointer<T>, delivery: Delivery) => boolean = () => true,
  timeoutMs = 10_000,
): Promise<{ pointer: Pointer<T>; delivery: Delivery }> {
  return waitFor(
    `${topic} on ${bus.nodeId}`,
    (handler: (pointer: Pointer<T>, delivery: Delivery) => void) => bus.subscribe(topic, handler),
    (pointer, delivery) => (predicate(pointer, delivery) ? { pointer, delivery } : undefined),
    timeoutMs,
  );
}

export function nextResync(bus: ClusterBus, timeoutMs = 20_000): Promise<ResyncInfo> {
  return waitFor(
    `resync on ${bus.nodeId}`,
    (handler: (info: ResyncInfo) => void) => bus.onResync(handler),
    (info) => info,
    timeoutMs,
  );
}

export function nextStatus(bus: ClusterBus, connected: boolean, timeoutMs = 20_000): Promise<BusStatus> {
  if (bus.status().connected === connected) return Promise.resolve(bus.status());
  return waitFor(
    `${bus.nodeId} ${connected ? 'connected' : 'disconnected'}`,
    (handler: (status: BusStatus) => void) => bus.onStatus(handler),
    (status) => (status.connected === connected ? status : undefined),
    timeoutMs,
  );
}

/** Records every delivery of `topic` on `bus`. */
export function recorder<T extends Topic>(bus: ClusterBus, topic: T): { pointer: Pointer<T>; delivery: Delivery }[] {
  const seen: { pointer: Pointer<T>; delivery: Delivery }[] = [];
  bus.subscribe(topic, (pointer, delivery) => void seen.push({ pointer, delivery }));
  return seen;
}
