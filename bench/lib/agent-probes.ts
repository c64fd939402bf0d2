/**
 * Observers of the agent core's event path for the benchmarks. They wrap public prototype methods
 * (`EventOutbox.emit` and `acknowledge`, `BackendClient.sendText`, ws `WebSocket.send`) and node:fs's
 * `fsyncSync` (through `syncBuiltinESMExports`, which updates the core's named import) in this
 * process only, to count and time what the core does without changing what it does. Each adds two
 * `performance.now()` calls per call observed.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import WebSocket from 'ws';
import { BackendClient } from '../../main/core/backend-client.js';
import { EventOutbox } from '../../main/core/event-outbox.js';

export interface OutboxProbe {
  /** `EventOutbox.emit` up to its return: numbering, chaining, schema check, hash (not the write). */
  emits: number;
  emitMs: number;
  /** fsyncs outside `acknowledge`: the journal's group writes. */
  journalFsyncs: number;
  journalFsyncMs: number;
  /** `EventOutbox.acknowledge`: the acked file written atomically (with its fsync), segments dropped. */
  acks: number;
  ackMs: number;
  ackFsyncMs: number;
  /** `events` frames: `BackendClient.sendText` (the frame built from journal lines, and the ws send). */
  batches: number;
  largestBatch: number;
  sendMs: number;
  /** The longest text frame sent (string length; the frames are ASCII JSON). */
  largestFrame: number;
}

const empty = (): OutboxProbe => ({
  emits: 0,
  emitMs: 0,
  journalFsyncs: 0,
  journalFsyncMs: 0,
  acks: 0,
  ackMs: 0,
  ackFsyncMs: 0,
  batches: 0,
  largestBatch: 0,
  sendMs: 0,
  largestFrame: 0,
});

export const probe: OutboxProbe = empty();

export function resetProbe(): void {
  Object.assign(probe, empty());
}

/**
 * Replaces `target[name]` with what `wrap` makes of the original; the wrapper calls the original
 * with its own `this`.
 */
export function wrapMethod<T extends object, K extends keyof T>(
  target: T,
  name: K,
  wrap: (original: T[K]) => T[K],
): void {
  target[name] = wrap(Reflect.get(target, name) as T[K]);
}

let installed = false;

export function installProbes(): void {
  if (installed) return;
  installed = true;
  let inAcknowledge = false;

  const fsyncSync = fs.fsyncSync;
  fs.fsyncSync = (fd: number) => {
    const t0 = performance.now();
    try {
      fsyncSync(fd);
    } finally {
      const ms = performance.now() - t0;
      if (inAcknowledge) probe.ackFsyncMs += ms;
      else {
        probe.journalFsyncs++;
        probe.journalFsyncMs += ms;
      }
    }
  };
  syncBuiltinESMExports();

  wrapMethod(
    EventOutbox.prototype,
    'emit',
    (emit) =>
      function (this: EventOutbox, draft) {
        const t0 = performance.now();
        const result = emit.call(this, draft);
        probe.emits++;
        probe.emitMs += performance.now() - t0;
        return result;
      },
  );

  wrapMethod(
    EventOutbox.prototype,
    'acknowledge',
    (acknowledge) =>
      function (this: EventOutbox, seq: number) {
        const t0 = performance.now();
        inAcknowledge = true;
        try {
          acknowledge.call(this, seq);
        } finally {
          inAcknowledge = false;
          probe.acks++;
          probe.ackMs += performance.now() - t0;
        }
      },
  );

  wrapMethod(
    BackendClient.prototype,
    'sendText',
    (sendText) =>
      function (this: BackendClient, text: string) {
        // `events` frames are built from the journal's lines and sent as text.
        if (!text.startsWith('{"type":"events"')) return sendText.call(this, text);
        const t0 = performance.now();
        const sent = sendText.call(this, text);
        probe.batches++;
        probe.largestBatch = Math.max(probe.largestBatch, countEvents(text));
        probe.sendMs += performance.now() - t0;
        return sent;
      },
  );

  wrapMethod(
    WebSocket.prototype,
    'send',
    (wsSend) =>
      function (this: WebSocket, data: unknown, ...rest: unknown[]) {
        if (typeof data === 'string') probe.largestFrame = Math.max(probe.largestFrame, data.length);
        return (wsSend as (...a: unknown[]) => void).call(this, data, ...rest);
      } as typeof wsSend,
  );
}

/** Events in an `events` frame, counted without parsing it (each event has exactly one `"prevHash"`). */
function countEvents(text: string): number {
  return text.split('"prevHash":').length - 1;
}
