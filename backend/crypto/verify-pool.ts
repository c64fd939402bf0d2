import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  PQCNotSupportedError,
  SettingsService,
  SimpleWebAuthnError,
  type RootCertIdentifier,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type VerifiedAuthenticationResponse,
  type VerifiedRegistrationResponse,
} from '@simplewebauthn/server';
import { BatonError } from '../../shared/errors.js';

/**
 * A small pool of worker threads that runs @simplewebauthn/server's `verifyAuthenticationResponse`
 * and `verifyRegistrationResponse` off the event loop: what a single-process backend (embedded
 * SQLite) uses so a burst of sign-ins does not stall every socket while signatures are checked.
 *
 * The options are those of the library with `expectedChallenge` a string (a function cannot cross
 * threads) and keys as Uint8Array; the result is the library's, structured-cloned back. A refusal
 * comes back as the same error the in-thread call throws: the same class (`Error`,
 * `SimpleWebAuthnError`, `PQCNotSupportedError`, `TypeError`, …), message, `name`, `code` and
 * `cause`, so callers (and `webauthnRefusalCode`) cannot tell the difference.
 *
 * The threads get the attestation root certificates the library has in this thread when the pool is
 * made (SimpleWebAuthn's settings are per thread): make the pool after `loadAttestationRoots`.
 * A full queue refuses at once with BACKEND_BUSY; a thread that dies is replaced, and the job it
 * held is run once more on another thread (verification has no side effects); `close()` refuses
 * what is queued (SHUTTING_DOWN), lets what runs finish, and ends the threads.
 *
 * **A lone verification stays on the event loop.** When no other verification is in flight (no
 * thread busy, nothing queued, none running here), the call runs in this thread: handing one job to
 * a thread costs its structured clone, a wake-up of the thread and another of the loop for the
 * answer (+0.35 ms of CPU measured alone, and on a loaded two-core host the woken thread may wait for
 * a core: a tap's verify waited 11 ms for it against 3.6 ms in the loop, docs/benchmarks.md §7). A
 * burst still goes to the threads: the second verification in flight and every one after it
 * is posted. The result and the errors are the library's own, in this thread as in the threads
 * (`inlineWhenIdle: false` posts every job).
 */

/** `verifyAuthenticationResponse`'s options, with the challenge as the string it was issued as. */
export type PoolAuthenticationOpts = Omit<Parameters<typeof verifyAuthenticationResponse>[0], 'expectedChallenge'> & {
  expectedChallenge: string;
};
/** `verifyRegistrationResponse`'s options, with the challenge as the string it was issued as. */
export type PoolRegistrationOpts = Omit<Parameters<typeof verifyRegistrationResponse>[0], 'expectedChallenge'> & {
  expectedChallenge: string;
};

export interface VerifyPoolOptions {
  /** Threads. Default: the number of cores minus one (the event loop keeps one), at least 1. */
  size?: number;
  /** Jobs that may wait for a thread; one more is refused with BACKEND_BUSY. Default 256 per thread. */
  maxQueue?: number;
  /** Root certificates per attestation format. Default: what this thread's SimpleWebAuthn has now. */
  rootCertificates?: Partial<Record<RootCertIdentifier, string[]>>;
  /** Runs a verification in this thread when no other is in flight (see above). Default true. */
  inlineWhenIdle?: boolean;
}

export interface VerifyPoolStats {
  size: number;
  busy: number;
  queued: number;
  completed: number;
  /** Threads replaced after they died. */
  replaced: number;
  /** Jobs refused with BACKEND_BUSY. */
  refused: number;
  /** Verifications run in this thread because none other was in flight. */
  inline: number;
}

/**
 * Whether a single-process backend on `cores` cores is given a pool: from three cores up. On two the one
 * thread shares the second core with libuv's threads (where WebCrypto's signature check already runs
 * for a verification in the loop) and with everything else, and posting a job (its structured clone,
 * the thread's wake-up, the loop's for the answer, a second copy of the library warming up in the
 * thread) costs more CPU than it takes off the loop: measured on a 2-core host, 0.3–0.5 ms more
 * backend CPU per full sign-in with the pool at c=4 and a lower sign-in rate at c=8 (docs/benchmarks.md,
 * "Sign-in CPU per component"). Without a pool every verification runs in the loop, as a lone one
 * does with it.
 */
export function verifyPoolPays(cores: number = availableParallelism()): boolean {
  return cores > 2;
}

/** The default size: every core but the event loop's, at least one. */
export function defaultVerifyPoolSize(cores: number = availableParallelism()): number {
  return Math.max(1, cores - 1);
}

const ROOT_IDENTIFIERS: readonly RootCertIdentifier[] = [
  'packed',
  'fido-u2f',
  'tpm',
  'android-key',
  'android-safetynet',
  'apple',
  'mds',
];

/** An error as it crosses the thread boundary. */
interface WireError {
  /** The constructor's name: which class to rebuild. */
  kind: string;
  name: string;
  message: string;
  stack?: string;
  code?: string;
  cause?: WireError;
  /** Other own enumerable properties (an ASN.1 error's `schemas`, …), cloned. */
  props?: Record<string, unknown>;
  /** `name` is an own property of the error (set in its constructor), not its prototype's. */
  ownName?: boolean;
  /** Something thrown that was not an Error. */
  thrown?: unknown;
}

type Job =
  | { id: number; kind: 'authentication'; opts: PoolAuthenticationOpts }
  | { id: number; kind: 'registration'; opts: PoolRegistrationOpts };

type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: WireError };

type Started = { ready: true } | { ready: false; error: WireError };

// Plain JavaScript (no loader in the thread): imports the library's ESM entry, the one this thread
// uses, sets the same root certificates, and answers one job at a time.
const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
function wire(error, depth) {
  if (!(error instanceof Error)) return { kind: 'NonError', name: 'Error', message: String(error), thrown: safe(error) };
  const out = { kind: (error.constructor && error.constructor.name) || 'Error', name: error.name, message: error.message, stack: error.stack };
  if (Object.prototype.hasOwnProperty.call(error, 'name')) out.ownName = true;
  const props = {};
  for (const key of Object.keys(error)) {
    if (key === 'name' || key === 'code' || key === 'cause' || key === 'message' || key === 'stack') continue;
    props[key] = safe(error[key]);
  }
  if (Object.keys(props).length > 0) out.props = props;
  if (typeof error.code === 'string') out.code = error.code;
  if (error.cause !== undefined && depth < 5) out.cause = wire(error.cause, depth + 1);
  return out;
}
function safe(value) {
  try { structuredClone(value); return value; } catch { return String(value); }
}
const ready = import(workerData.library).then((lib) => {
  for (const [identifier, certificates] of Object.entries(workerData.roots)) {
    lib.SettingsService.setRootCertificates({ identifier, certificates });
  }
  return lib;
});
ready.then(
  () => parentPort.postMessage({ ready: true }),
  (error) => parentPort.postMessage({ ready: false, error: wire(error, 0) }),
);
parentPort.on('message', async (job) => {
  if (job.kind === 'crash-for-test') process.exit(1);
  let reply;
  try {
    const lib = await ready;
    const result = job.kind === 'authentication'
      ? await lib.verifyAuthenticationResponse(job.opts)
      : await lib.verifyRegistrationResponse(job.opts);
    reply = { id: job.id, ok: true, result };
  } catch (error) {
    reply = { id: job.id, ok: false, error: wire(error, 0) };
  }
  try {
    parentPort.postMessage(reply);
  } catch (error) {
    parentPort.postMessage({ id: job.id, ok: false, error: wire(error, 0) });
  }
});
`;

const LIBRARY = import.meta.resolve('@simplewebauthn/server');

const STANDARD_ERRORS: Record<string, ErrorConstructor> = {
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
};

type MessageErrorConstructor = new (message: string) => Error;

/**
 * Error classes of the library's own dependencies that callers could name, taken from the very
 * module the library loads (so `instanceof` holds): the ASN.1 parser's schema error (a signature or
 * certificate that is not well-formed DER).
 */
const DEPENDENCY_ERRORS: Record<string, MessageErrorConstructor> = (() => {
  const found: Record<string, MessageErrorConstructor> = {};
  try {
    const requireFromLibrary = createRequire(fileURLToPath(LIBRARY));
    const asn1 = requireFromLibrary('@peculiar/asn1-schema') as { AsnSchemaValidationError?: MessageErrorConstructor };
    if (typeof asn1.AsnSchemaValidationError === 'function') {
      found.AsnSchemaValidationError = asn1.AsnSchemaValidationError;
    }
  } catch {
    // Not installed as expected: such errors come back as a same-named Error subclass instead.
  }
  return found;
})();

/**
 * Classes private to the library (`UnexpectedRPIDHash`, …) cannot be named by any caller: they come
 * back as an Error subclass of the same name, one per name, with the same `name` and message.
 */
const STAND_INS = new Map<string, MessageErrorConstructor>();
function standIn(kind: string): MessageErrorConstructor {
  let Ctor = STAND_INS.get(kind);
  if (Ctor === undefined) {
    Ctor = class extends Error {};
    Object.defineProperty(Ctor, 'name', { value: kind });
    STAND_INS.set(kind, Ctor);
  }
  return Ctor;
}

/** Rebuilds the error the thread caught as the class the in-thread call would have thrown. */
export function reviveError(wire: WireError): Error {
  const cause = wire.cause === undefined ? undefined : reviveError(wire.cause);
  let error: Error;
  if (wire.kind === 'SimpleWebAuthnError' || wire.kind === 'PQCNotSupportedError') {
    error = new SimpleWebAuthnError({
      message: wire.message,
      code: wire.code as SimpleWebAuthnError['code'],
      ...(cause === undefined ? {} : { cause }),
    });
    if (wire.kind === 'PQCNotSupportedError') Object.setPrototypeOf(error, PQCNotSupportedError.prototype);
  } else if (wire.kind === 'NonError') {
    // Something thrown that was not an Error: the caller gets what was thrown, as in the thread.
    error = new Error(wire.message);
    (error as Error & { thrown?: unknown }).thrown = wire.thrown;
  } else if (wire.kind === 'DOMException') {
    // WebCrypto's refusals (DataError, OperationError, …).
    error = new DOMException(wire.message, wire.name);
  } else {
    const standard = STANDARD_ERRORS[wire.kind];
    if (standard !== undefined) {
      error = cause === undefined ? new standard(wire.message) : new standard(wire.message, { cause });
    } else {
      error = new (DEPENDENCY_ERRORS[wire.kind] ?? standIn(wire.kind))(wire.message);
      if (cause !== undefined)
        Object.defineProperty(error, 'cause', { value: cause, configurable: true, writable: true });
    }
    // An own `name` where the thrower set one (`this.name = …`), as the original has.
    if (wire.ownName === true) error.name = wire.name;
    else if (error.name !== wire.name)
      Object.defineProperty(error, 'name', { value: wire.name, configurable: true, writable: true });
    if (wire.code !== undefined) (error as Error & { code?: string }).code = wire.code;
  }
  if (wire.props !== undefined) Object.assign(error, wire.props);
  if (wire.stack !== undefined) error.stack = wire.stack;
  return error;
}

interface Pending {
  job: Job;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  /** Run once more after its thread died under it. */
  retried: boolean;
}

interface Thread {
  worker: Worker;
  ready: boolean;
  current: Pending | undefined;
  exiting: boolean;
}

/** How many times in a row a new thread may fail to start before the pool refuses all work. */
const MAX_START_FAILURES = 3;

export class VerifyPool {
  readonly size: number;
  private readonly maxQueue: number;
  private readonly workerData: { library: string; roots: Partial<Record<RootCertIdentifier, string[]>> };
  private readonly threads = new Set<Thread>();
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private closing: Promise<void> | undefined;
  private startFailures = 0;
  private broken: Error | undefined;
  private counts = { completed: 0, replaced: 0, refused: 0, inline: 0 };
  private readonly inlineWhenIdle: boolean;
  /** Verifications running in this thread (the library's calls are asynchronous: WebCrypto). */
  private inlineRunning = 0;
  private readonly allReady: Promise<void>;

  constructor(options: VerifyPoolOptions = {}) {
    this.size = options.size ?? defaultVerifyPoolSize();
    if (!Number.isInteger(this.size) || this.size < 1 || this.size > 256) {
      throw new BatonError('INTERNAL', `A verification pool has 1 to 256 threads, not ${this.size}`);
    }
    this.maxQueue = options.maxQueue ?? 256 * this.size;
    this.inlineWhenIdle = options.inlineWhenIdle ?? true;
    const roots: Partial<Record<RootCertIdentifier, string[]>> = {};
    for (const identifier of ROOT_IDENTIFIERS) {
      roots[identifier] = options.rootCertificates?.[identifier] ?? [
        ...SettingsService.getRootCertificates({ identifier }),
      ];
    }
    this.workerData = { library: LIBRARY, roots };
    const started: Promise<void>[] = [];
    for (let i = 0; i < this.size; i++) started.push(this.spawn());
    this.allReady = Promise.all(started).then(() => undefined);
    this.allReady.catch(() => undefined);
  }

  /** Resolves once every thread has loaded the library (the first verification is then warm). */
  ready(): Promise<void> {
    return this.allReady;
  }

  /** `verifyAuthenticationResponse(opts)` on a pool thread. */
  verifyAuthentication(opts: PoolAuthenticationOpts): Promise<VerifiedAuthenticationResponse> {
    if (this.idle()) return this.inThread(() => verifyAuthenticationResponse(opts));
    return this.submit(() => ({
      id: this.nextId++,
      kind: 'authentication',
      opts: cloneable(opts),
    })) as Promise<VerifiedAuthenticationResponse>;
  }

  /** `verifyRegistrationResponse(opts)` on a pool thread. */
  verifyRegistration(opts: PoolRegistrationOpts): Promise<VerifiedRegistrationResponse> {
    if (this.idle()) return this.inThread(() => verifyRegistrationResponse(opts));
    return this.submit(() => ({
      id: this.nextId++,
      kind: 'registration',
      opts: cloneable(opts),
    })) as Promise<VerifiedRegistrationResponse>;
  }

  /** Nothing in flight anywhere, and the pool open: a verification may run in this thread. */
  private idle(): boolean {
    if (!this.inlineWhenIdle || this.inlineRunning > 0 || this.queue.length > 0) return false;
    if (this.closing !== undefined || this.broken !== undefined) return false;
    for (const thread of this.threads) if (thread.current !== undefined) return false;
    return true;
  }

  private async inThread<T>(run: () => Promise<T>): Promise<T> {
    this.inlineRunning++;
    this.counts.inline++;
    try {
      return await run();
    } finally {
      this.inlineRunning--;
    }
  }

  get stats(): VerifyPoolStats {
    let busy = 0;
    for (const thread of this.threads) if (thread.current !== undefined) busy++;
    return { size: this.size, busy, queued: this.queue.length, ...this.counts };
  }

  /** Refuses what waits (SHUTTING_DOWN), lets running jobs finish (at most `graceMs`), ends the threads. */
  close(graceMs = 2000): Promise<void> {
    this.closing ??= (async () => {
      for (const pending of this.queue.splice(0)) {
        pending.reject(new BatonError('SHUTTING_DOWN', 'The verification pool is closing'));
      }
      const running = [...this.threads].filter((t) => t.current !== undefined);
      if (running.length > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, graceMs);
          const check = setInterval(() => {
            if ([...this.threads].every((t) => t.current === undefined)) {
              clearTimeout(timer);
              clearInterval(check);
              resolve();
            }
          }, 5);
          timer.unref();
        });
      }
      const threads = [...this.threads];
      this.threads.clear();
      for (const thread of threads) {
        thread.exiting = true;
        thread.current?.reject(new BatonError('SHUTTING_DOWN', 'The verification pool closed'));
        thread.current = undefined;
      }
      await Promise.all(threads.map((t) => t.worker.terminate()));
    })();
    return this.closing;
  }

  /** For tests: makes one thread exit as if it crashed. */
  crashOneThreadForTests(): void {
    const thread = [...this.threads][0];
    thread?.worker.postMessage({ kind: 'crash-for-test' });
  }

  private submit(makeJob: () => Job): Promise<unknown> {
    let job: Job;
    try {
      job = makeJob();
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    if (this.closing !== undefined) {
      return Promise.reject(new BatonError('SHUTTING_DOWN', 'The verification pool is closing'));
    }
    if (this.broken !== undefined) return Promise.reject(this.broken);
    if (this.queue.length >= this.maxQueue) {
      this.counts.refused++;
      return Promise.reject(
        new BatonError(
          'BACKEND_BUSY',
          `The backend is verifying ${this.size} passkey responses with ${this.queue.length} more waiting; retry shortly`,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ job, resolve, reject, retried: false });
      this.dispatch();
    });
  }

  private dispatch(): void {
    for (const thread of this.threads) {
      if (this.queue.length === 0) return;
      if (!thread.ready || thread.current !== undefined || thread.exiting) continue;
      const pending = this.queue.shift();
      if (pending === undefined) return;
      thread.current = pending;
      thread.worker.ref();
      thread.worker.postMessage(pending.job);
    }
  }

  private spawn(): Promise<void> {
    const worker = new Worker(THREAD_SOURCE, { eval: true, execArgv: [], workerData: this.workerData });
    worker.unref();
    const thread: Thread = { worker, ready: false, current: undefined, exiting: false };
    this.threads.add(thread);
    return new Promise<void>((resolve, reject) => {
      worker.on('message', (message: Started | Reply) => {
        if ('ready' in message) {
          if (message.ready) {
            thread.ready = true;
            this.startFailures = 0;
            resolve();
            this.dispatch();
          } else {
            reject(reviveError(message.error));
            this.fail(thread, reviveError(message.error));
          }
          return;
        }
        const pending = thread.current;
        if (pending === undefined || pending.job.id !== message.id) return;
        thread.current = undefined;
        worker.unref();
        this.counts.completed++;
        if (message.ok) pending.resolve(message.result);
        else pending.reject(reviveError(message.error));
        this.dispatch();
      });
      worker.on('error', (error) => {
        if (!thread.ready) reject(error);
        this.fail(thread, error);
      });
      worker.on('exit', (code) => {
        if (!thread.ready) reject(new Error(`a verification thread exited with code ${code} before it was ready`));
        this.fail(thread, new Error(`a verification thread exited with code ${code}`));
      });
    });
  }

  /** A thread died (or could not start): its job runs once more elsewhere, and it is replaced. */
  private fail(thread: Thread, error: Error): void {
    if (thread.exiting || !this.threads.has(thread)) return;
    thread.exiting = true;
    this.threads.delete(thread);
    void thread.worker.terminate();
    const pending = thread.current;
    thread.current = undefined;
    if (pending !== undefined) {
      if (pending.retried) {
        pending.reject(
          new BatonError('INTERNAL', 'The passkey response could not be verified: its verification thread died twice', {
            cause: error,
          }),
        );
      } else {
        pending.retried = true;
        this.queue.unshift(pending);
      }
    }
    if (this.closing !== undefined) return;
    if (!thread.ready) this.startFailures++;
    if (this.startFailures >= MAX_START_FAILURES) {
      this.broken = new BatonError('INTERNAL', `The verification threads cannot start: ${error.message}`, {
        cause: error,
      });
      for (const waiting of this.queue.splice(0)) waiting.reject(this.broken);
      return;
    }
    this.counts.replaced++;
    this.spawn().catch(() => undefined);
  }
}

/** The options as plain data: Uint8Array (not Buffer) keys, no functions. */
function cloneable<T extends { expectedChallenge: unknown }>(opts: T): T {
  if (typeof opts.expectedChallenge !== 'string') {
    throw new BatonError('INTERNAL', 'The verification pool needs the expected challenge as a string');
  }
  const credential = (opts as { credential?: { publicKey: Uint8Array } }).credential;
  if (credential === undefined) return opts;
  return { ...opts, credential: { ...credential, publicKey: new Uint8Array(credential.publicKey) } };
}
