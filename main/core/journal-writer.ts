import { close, constants, fsync, open, readdir, rename, rm, write } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** How long `close()` waits for the writes already asked for before it gives up on them. */
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

const openFile = promisify(open);
const closeFile = promisify(close);
const syncFile = promisify(fsync);
const writeFile = promisify(write);
const readDir = promisify(readdir);
const renameFile = promisify(rename);
const remove = promisify(rm);

// Never through a link planted in the journal directory: O_NOFOLLOW makes that an error. O_SYNC: each
// write returns only once its bytes and the file's metadata are on disk, as a write then an fsync would,
// in one trip to the thread pool instead of two.
const APPEND_FLAGS =
  constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_SYNC | (constants.O_NOFOLLOW ?? 0);

async function writeAll(fd: number, buffer: Buffer): Promise<void> {
  let offset = 0;
  while (offset < buffer.length) {
    const { bytesWritten } = await writeFile(fd, buffer, offset, buffer.length - offset, null);
    offset += bytesWritten;
  }
}

/**
 * Owns the journal's files through Node's asynchronous file calls, so the writes and fsyncs of the
 * event outbox run on libuv's thread pool and never block the main thread (in the desktop agent, the
 * thread that runs the UI). No thread or isolate of its own: a worker thread cost the agent ~15 MiB of
 * resident memory for the same job (docs/benchmarks.md §6). Requests are carried out one at a time in
 * the order they were made; each promise settles only after its bytes are fsync'd. `close()` resolves
 * once everything already asked for is done.
 */
export class JournalWriter {
  /** The last request made; the next one starts when it has settled, whatever its outcome. */
  private tail: Promise<void> = Promise.resolve();
  private fd: number | undefined;
  private fdFile: string | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly dir: string,
    private readonly segment: RegExp,
    private readonly segmentEvents: number,
  ) {}

  /** A writer for the journal in `dir` (its segment files match `segmentPattern`). */
  static start(dir: string, options: { segmentPattern: RegExp; segmentEvents: number }): JournalWriter {
    return new JournalWriter(dir, options.segmentPattern, options.segmentEvents);
  }

  /** Appends the lines to their segments; resolves once they are written and fsync'd. */
  append(parts: JournalPart[]): Promise<void> {
    return this.request(async () => {
      for (const part of parts) {
        const fd = await this.segmentFd(part.file);
        await writeAll(fd, Buffer.from(part.text, 'utf8')); // O_SYNC: durable when it returns
      }
    });
  }

  /** Writes the `acked` file atomically and drops the wholly acknowledged segments. */
  acknowledge(ack: Acknowledgement): Promise<void> {
    return this.request(async () => {
      await this.writeAtomically(join(this.dir, 'acked'), ack.content);
      for (const file of await readDir(this.dir)) {
        const match = this.segment.exec(file);
        if (match === null) continue;
        const start = Number(match[1]);
        if (start + this.segmentEvents - 1 <= ack.ackedSeq && start !== ack.headStart) {
          if (file === this.fdFile) await this.closeSegment();
          await remove(join(this.dir, file), { force: true });
        }
      }
    });
  }

  /**
   * Waits until every request made so far has been carried out (their promises settle first), then
   * closes the open segment. Later requests are refused. Called at shutdown, so nothing asked for is
   * left half done and a journal reopened right after sees every byte. Rejects if that takes longer
   * than CLOSE_TIMEOUT_MS (a disk that stopped answering); the writes already started go on.
   */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    const finished = this.tail.then(() => this.closeSegment());
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the journal writer did not finish in ${CLOSE_TIMEOUT_MS} ms`)),
        CLOSE_TIMEOUT_MS,
      );
      timer.unref();
    });
    this.closing = Promise.race([finished, timedOut]).finally(() => clearTimeout(timer));
    return this.closing;
  }

  private request(work: () => Promise<void>): Promise<void> {
    if (this.closing !== undefined) return Promise.reject(new Error('the journal writer is closed'));
    const done = this.tail.then(work);
    this.tail = done.catch(() => undefined);
    return done;
  }

  private async segmentFd(file: string): Promise<number> {
    if (this.fdFile === file && this.fd !== undefined) return this.fd;
    await this.closeSegment();
    this.fd = await openFile(join(this.dir, file), APPEND_FLAGS, 0o600);
    this.fdFile = file;
    return this.fd;
  }

  private async closeSegment(): Promise<void> {
    const fd = this.fd;
    this.fd = undefined;
    this.fdFile = undefined;
    if (fd !== undefined) await closeFile(fd);
  }

  // The same steps as main/core/atomic-file.ts: a fresh private temporary file, written, fsync'd, renamed.
  private async writeAtomically(file: string, content: string): Promise<void> {
    const temp = `${file}.tmp`;
    await remove(temp, { force: true });
    const fd = await openFile(temp, 'wx', 0o600);
    try {
      await writeAll(fd, Buffer.from(content, 'utf8'));
      await syncFile(fd);
    } finally {
      await closeFile(fd);
    }
    await renameFile(temp, file);
  }
}
