import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { constants } from 'node:fs';

/** How long `close()` waits for the writer thread to finish what it was given before giving up on it. */
export const CLOSE_TIMEOUT_MS = 30_000;

/** One segment's share of a group of journal lines. */
export interface JournalPart {
  /** File name inside the journal directory. */
  file: string;
  /** Whole lines, each ending in a newline. */
  text: string;
}

/** What to do once the backend acknowledged up to `ackedSeq`. */
export interface Acknowledgement {
  /** Content of the `acked` file. */
  content: string;
  /** Drop segments wholly at or below this sequence number ... */
  ackedSeq: number;
  /** ... except the one starting here (it holds the newest event, the chain continues from it). */
  headStart: number;
}

type Request =
  | { id: number; kind: 'append'; parts: JournalPart[] }
  | { id: number; kind: 'ack'; ack: Acknowledgement }
  | { id: 0; kind: 'close' };
type Reply = { id: number; error?: { message: string; code?: string } };

/**
 * The journal's writer thread, as source text: it needs nothing but Node's built-ins, and as a string
 * it runs the same from `tsx`, from compiled files and from the Electron bundle (no worker file to
 * ship or resolve). It handles one request at a time, in order, with the same synchronous calls the
 * outbox once made on the main thread: write every byte, fsync, and only then reply.
 */
const WRITER_SOURCE = String.raw`
'use strict';
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');
const { port, done, dir, openFlags, segmentPattern, segmentEvents } = workerData;
const SEGMENT = new RegExp(segmentPattern);
let fd;
let fdFile;

function writeAll(target, buffer) {
  let offset = 0;
  while (offset < buffer.length) offset += fs.writeSync(target, buffer, offset, buffer.length - offset);
}

function append(parts) {
  for (const part of parts) {
    if (fdFile !== part.file) {
      if (fd !== undefined) fs.closeSync(fd);
      fd = undefined;
      fdFile = undefined;
      fd = fs.openSync(path.join(dir, part.file), openFlags, 0o600);
      fdFile = part.file;
    }
    writeAll(fd, Buffer.from(part.text, 'utf8'));
    fs.fsyncSync(fd);
  }
}

// The same steps as main/core/atomic-file.ts: a fresh private temporary file, written, fsync'd, renamed.
function writeAtomically(file, content) {
  const temp = file + '.tmp';
  fs.rmSync(temp, { force: true });
  const tempFd = fs.openSync(temp, 'wx', 0o600);
  try {
    writeAll(tempFd, Buffer.from(content, 'utf8'));
    fs.fsyncSync(tempFd);
  } finally {
    fs.closeSync(tempFd);
  }
  fs.renameSync(temp, file);
}

function acknowledge(ack) {
  writeAtomically(path.join(dir, 'acked'), ack.content);
  for (const file of fs.readdirSync(dir)) {
    const match = SEGMENT.exec(file);
    if (match === null) continue;
    const start = Number(match[1]);
    if (start + segmentEvents - 1 <= ack.ackedSeq && start !== ack.headStart) fs.rmSync(path.join(dir, file), { force: true });
  }
}

port.on('message', (request) => {
  if (request.kind === 'close') {
    try {
      if (fd !== undefined) fs.closeSync(fd);
    } catch {}
    fd = undefined;
    Atomics.store(done, 0, 1);
    Atomics.notify(done, 0);
    return;
  }
  try {
    if (request.kind === 'append') append(request.parts);
    else acknowledge(request.ack);
    port.postMessage({ id: request.id });
  } catch (error) {
    port.postMessage({ id: request.id, error: { message: String(error && error.message), code: error && error.code } });
  }
});
`;

interface Settle {
  resolve: () => void;
  reject: (error: Error) => void;
}

/**
 * Owns the journal's files from a worker thread, so the writes and fsyncs of the event outbox never
 * block the main thread (in the desktop agent, the thread that runs the UI). Requests are carried out
 * one at a time in the order they were made; each promise settles only after its bytes are fsync'd.
 * `close()` is synchronous: it waits for the thread to finish everything already asked of it.
 */
export class JournalWriter {
  private readonly pending = new Map<number, Settle>();
  private nextId = 1;
  private failure: Error | undefined;
  private closed = false;

  private constructor(
    private readonly worker: Worker,
    private readonly port: MessagePort,
    private readonly done: Int32Array,
  ) {
    port.on('message', (reply: Reply) => this.settle(reply));
    port.unref();
    worker.unref();
    worker.on('error', (error) => this.fail(error));
    worker.on('exit', (code) => {
      if (!this.closed) this.fail(new Error(`the journal writer thread exited (${code})`));
    });
  }

  /** Starts the writer thread for the journal in `dir` (its segment files match `segmentPattern`). */
  static start(dir: string, options: { segmentPattern: RegExp; segmentEvents: number }): JournalWriter {
    const { port1, port2 } = new MessageChannel();
    const done = new Int32Array(new SharedArrayBuffer(4));
    // Never through a link planted in the journal directory: O_NOFOLLOW makes that an error.
    const openFlags = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | (constants.O_NOFOLLOW ?? 0);
    const worker = new Worker(WRITER_SOURCE, {
      eval: true,
      execArgv: [], // plain JavaScript: no loader (tsx) needed in the thread
      workerData: {
        port: port2,
        done,
        dir,
        openFlags,
        segmentPattern: options.segmentPattern.source,
        segmentEvents: options.segmentEvents,
      },
      transferList: [port2],
    });
    return new JournalWriter(worker, port1, done);
  }

  /** Appends the lines to their segments; resolves once they are written and fsync'd. */
  append(parts: JournalPart[]): Promise<void> {
    return this.request((id) => ({ id, kind: 'append', parts }));
  }

  /** Writes the `acked` file atomically and drops the wholly acknowledged segments. */
  acknowledge(ack: Acknowledgement): Promise<void> {
    return this.request((id) => ({ id, kind: 'ack', ack }));
  }

  /**
   * Waits (blocking) until the thread has carried out every request made so far, settles their
   * promises, and ends the thread. Called at shutdown, so nothing asked for is left half done and a
   * journal reopened right after sees every byte.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.failure === undefined) {
      this.port.postMessage({ id: 0, kind: 'close' } satisfies Request);
      const waited = Atomics.wait(this.done, 0, 0, CLOSE_TIMEOUT_MS);
      for (let message = receiveMessageOnPort(this.port); message !== undefined; ) {
        this.settle(message.message as Reply);
        message = receiveMessageOnPort(this.port);
      }
      if (waited === 'timed-out') this.fail(new Error(`the journal writer did not finish in ${CLOSE_TIMEOUT_MS} ms`));
    }
    this.fail(this.failure ?? new Error('the journal writer is closed'));
    this.port.close();
  }

  private request(make: (id: number) => Request): Promise<void> {
    if (this.closed || this.failure !== undefined) {
      return Promise.reject(this.failure ?? new Error('the journal writer is closed'));
    }
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.port.ref(); // an answer is awaited: keep the process alive for it
      this.port.postMessage(make(id));
    });
  }

  private settle(reply: Reply): void {
    const settle = this.pending.get(reply.id);
    if (settle === undefined) return;
    this.pending.delete(reply.id);
    if (this.pending.size === 0) this.port.unref();
    if (reply.error === undefined) settle.resolve();
    else settle.reject(Object.assign(new Error(reply.error.message), { code: reply.error.code }));
  }

  /** Rejects everything still awaited; later requests are refused with the same error. */
  private fail(error: Error): void {
    this.failure ??= error;
    for (const settle of this.pending.values()) settle.reject(error);
    this.pending.clear();
    this.port.unref();
  }
}
