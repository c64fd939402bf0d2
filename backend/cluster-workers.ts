import cluster, { type Worker } from 'node:cluster';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { BatonError } from '../shared/errors.js';
import { LOCK_FILE } from './data-dir-lock.js';

/**
 * `--workers N` on one host: the CLI process becomes a supervisor (node:cluster, round-robin
 * connection scheduling, so HTTP and WebSocket upgrades on the one shared port are spread over the
 * workers), forks N workers that each run a whole backend (`startBackend`), restarts one that dies
 * (with backoff; it gives up after a crash loop), and stops them all on SIGTERM or SIGINT.
 *
 * The supervisor takes the data directory's lock (`baton.lock`) once, for all of them; it tells each
 * worker so explicitly in its environment (`BATON_CLUSTER_WORKER`, `BATON_DATA_DIR_LOCK_HOLDER`),
 * and a worker checks that claim (the holder is its parent, and the lock file names it) instead of
 * taking the lock itself.
 *
 * Exit codes of the supervisor: 0 stopped on a signal (every worker stopped cleanly); 1 a worker
 * failed before the cluster was up, or a worker had to be killed at stop; 70 gave up after a crash
 * loop (as a single backend exits 70 on a fault, so `Restart=on-failure` applies the same way).
 */

/** Environment variables the supervisor sets for its workers (and only it does). */
export const WORKER_ENV = {
  /** `1` in a worker forked by the supervisor. */
  worker: 'BATON_CLUSTER_WORKER',
  /** The worker's slot, 0..N-1 (a restarted worker takes the slot of the one it replaces). */
  index: 'BATON_CLUSTER_WORKER_INDEX',
  /** The pid of the supervisor, which holds the data directory's lock for the workers. */
  lockHolder: 'BATON_DATA_DIR_LOCK_HOLDER',
} as const;

/** The message a worker sends once its backend listens and serves. */
export interface WorkerReadyMessage {
  type: 'baton:worker-ready';
  nodeId: string;
  port: number;
  url: string;
}

export interface WorkerIdentity {
  /** The slot this worker fills, 0..N-1. */
  index: number;
  /** The supervisor's pid: it holds the data directory's lock. */
  lockHolder: number;
}

/**
 * This process's identity as a cluster worker, or undefined when it is not one. Both signs are
 * required: node:cluster says it is a worker, and the supervisor's explicit variables are set.
 */
export function clusterWorkerIdentity(
  env: NodeJS.ProcessEnv = process.env,
  isWorker: boolean = cluster.isWorker,
): WorkerIdentity | undefined {
  if (!isWorker || env[WORKER_ENV.worker] !== '1') return undefined;
  const index = Number(env[WORKER_ENV.index]);
  const lockHolder = Number(env[WORKER_ENV.lockHolder]);
  if (!Number.isSafeInteger(index) || index < 0 || !Number.isSafeInteger(lockHolder) || lockHolder <= 0) {
    throw new BatonError(
      'INTERNAL',
      `A cluster worker was started without a valid ${WORKER_ENV.index} / ${WORKER_ENV.lockHolder}`,
    );
  }
  return { index, lockHolder };
}

/**
 * The node id a backend process passes to `startBackend`: `<configured id or host name>:<pid>` for a
 * cluster worker (each worker, and each restart, is its own node), the configured id or
 * `<host name>:<pid>` for a single process.
 */
export function nodeIdFor(
  configured: string | undefined,
  worker: boolean,
  pid: number = process.pid,
  host: string = hostname(),
): string {
  if (worker) return `${configured ?? host}:${pid}`;
  return configured ?? `${host}:${pid}`;
}

/**
 * A worker's check of the supervisor's claim that it holds the data directory's lock for it: the
 * holder must be this process's parent, and the lock file must name the holder. Anything else is
 * refused with DATA_DIR_LOCKED (the worker then exits before it touches the directory).
 */
export function assertInheritedDataDirLock(dataDir: string, holder: number, parent: number = process.ppid): void {
  const file = join(dataDir, LOCK_FILE);
  if (holder !== parent) {
    throw new BatonError(
      'DATA_DIR_LOCKED',
      `This cluster worker's lock holder (pid ${holder}) is not its supervisor (pid ${parent}); it does not use ${dataDir}`,
    );
  }
  let owner: number | undefined;
  try {
    owner = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
  } catch {
    owner = undefined;
  }
  if (owner !== holder) {
    throw new BatonError(
      'DATA_DIR_LOCKED',
      `The lock file ${file} is not held by this worker's supervisor (pid ${holder}); it does not use ${dataDir}`,
    );
  }
}

/** Tells the supervisor (over the cluster's IPC channel) that this worker's backend serves. */
export function reportWorkerReady(ready: Omit<WorkerReadyMessage, 'type'>): void {
  const message: WorkerReadyMessage = { type: 'baton:worker-ready', ...ready };
  process.send?.(message);
}

function isReadyMessage(message: unknown): message is WorkerReadyMessage {
  if (typeof message !== 'object' || message === null) return false;
  const m = message as Partial<WorkerReadyMessage>;
  return m.type === 'baton:worker-ready' && typeof m.port === 'number' && typeof m.nodeId === 'string';
}

export interface RestartPolicy {
  /** The wait before the first restart of a slot; it doubles with each crash within the window. */
  initialDelayMs: number;
  maxDelayMs: number;
  /** This many crashes of one slot within `crashLoopWindowMs` is a crash loop: the supervisor gives up. */
  crashLoopCount: number;
  crashLoopWindowMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  initialDelayMs: 500,
  maxDelayMs: 30_000,
  crashLoopCount: 5,
  crashLoopWindowMs: 60_000,
};

/** One slot's recent crashes: the backoff before its next restart, or the verdict of a crash loop. */
export class CrashHistory {
  private crashes: number[] = [];

  constructor(
    private readonly policy: RestartPolicy,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Records a crash now; returns how long to wait before the restart, or `give-up` on a crash loop. */
  onCrash(): { restartInMs: number; recent: number } | { giveUp: true; recent: number } {
    const now = this.clock();
    this.crashes = this.crashes.filter((at) => now - at < this.policy.crashLoopWindowMs);
    this.crashes.push(now);
    const recent = this.crashes.length;
    if (recent >= this.policy.crashLoopCount) return { giveUp: true, recent };
    const restartInMs = Math.min(this.policy.maxDelayMs, this.policy.initialDelayMs * 2 ** (recent - 1));
    return { restartInMs, recent };
  }
}

/** Why a worker exited, in words for the log. */
export function exitReason(code: number | null, signal: string | null): string {
  if (signal !== null) return `killed by ${signal}`;
  if (code === 70) return 'stopped on a fault (exit code 70: see its BACKEND_FAULT line)';
  if (code === 0) return 'exited (code 0) without being asked to stop';
  return `exited with code ${String(code)}`;
}

export type LogLevel = 'info' | 'warn' | 'error';
export type SupervisorLog = (level: LogLevel, fields: Record<string, unknown>, msg: string) => void;

const LEVELS: Record<LogLevel, number> = { info: 30, warn: 40, error: 50 };

/** JSON lines on stdout, shaped like the backend's own (pino) lines. */
export const jsonLineLog: SupervisorLog = (level, fields, msg) => {
  process.stdout.write(
    `${JSON.stringify({ level: LEVELS[level], time: Date.now(), pid: process.pid, service: 'baton-backend', role: 'supervisor', ...fields, msg })}\n`,
  );
};

export interface SupervisorOptions {
  /** How many workers (2..64 in practice; 1 works too). */
  workers: number;
  /** The pid holding the data directory's lock for the workers (the supervisor's own). */
  lockHolder: number;
  /** The script each worker runs; default: this process's own (`process.argv[1]`). */
  exec?: string;
  /** Its arguments; default: this process's. */
  args?: string[];
  /** Node options for the workers; default: this process's (`--import tsx`). */
  execArgv?: string[];
  /** Extra environment for every worker. */
  env?: Record<string, string>;
  restart?: Partial<RestartPolicy>;
  /** How long the workers get to stop after SIGTERM before they are killed. Default 20 s. */
  stopTimeoutMs?: number;
  /** Installs SIGTERM and SIGINT handlers (default true). */
  handleSignals?: boolean;
  log?: SupervisorLog;
  /** More fields for the one "listening" line (the storage engine, the redacted database URL). */
  listeningFields?: Record<string, unknown>;
  clock?: () => number;
}

export interface ClusterReady {
  port: number;
  url: string;
  workers: number;
  nodeIds: string[];
}

export interface Supervisor {
  /** Every worker serves (the one "listening" line was printed); rejects when the start failed. */
  readonly ready: Promise<ClusterReady>;
  /** The exit code for the supervisor once every worker is gone. */
  readonly done: Promise<number>;
  /** Stops every worker gracefully (SIGTERM), killing those that outlast the stop timeout. */
  stop(reason: string): Promise<number>;
}

interface Slot {
  index: number;
  worker: Worker | undefined;
  nodeId: string | undefined;
  ready: boolean;
  history: CrashHistory;
  restartTimer: NodeJS.Timeout | undefined;
}

type Phase = 'starting' | 'running' | 'stopping';

/** Forks the workers and supervises them. Call once per process, from the primary. */
export function startSupervisor(options: SupervisorOptions): Supervisor {
  if (!cluster.isPrimary) throw new BatonError('INTERNAL', 'Only the primary process can supervise workers');
  const log = options.log ?? jsonLineLog;
  const clock = options.clock ?? Date.now;
  const policy: RestartPolicy = { ...DEFAULT_RESTART_POLICY, ...options.restart };
  const stopTimeoutMs = options.stopTimeoutMs ?? 20_000;

  // Round robin in the primary (Node's default except on Windows, set here explicitly): the primary
  // accepts each connection and hands it to the next worker, upgrades and WebSockets included.
  cluster.schedulingPolicy = cluster.SCHED_RR;
  cluster.setupPrimary({
    exec: options.exec ?? process.argv[1],
    args: options.args ?? process.argv.slice(2),
    execArgv: options.execArgv ?? process.execArgv,
  });

  const slots: Slot[] = Array.from({ length: options.workers }, (_, index) => ({
    index,
    worker: undefined,
    nodeId: undefined,
    ready: false,
    history: new CrashHistory(policy, clock),
    restartTimer: undefined,
  }));
  let phase: Phase = 'starting';
  let exitCode = 0;
  let listening: { port: number; url: string } | undefined;

  let resolveReady!: (ready: ClusterReady) => void;
  let rejectReady!: (error: Error) => void;
  const ready = new Promise<ClusterReady>((resolve, reject) => {
    resolveReady = resolve;
    rejectReady = reject;
  });
  // A caller that only awaits `done` must not see an unhandled rejection.
  ready.catch(() => undefined);
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((resolve) => (resolveDone = resolve));
  let killTimer: NodeJS.Timeout | undefined;

  const live = () => slots.filter((slot) => slot.worker !== undefined);

  function fork(slot: Slot): void {
    slot.ready = false;
    slot.nodeId = undefined;
    const worker = cluster.fork({
      ...options.env,
      [WORKER_ENV.worker]: '1',
      [WORKER_ENV.index]: String(slot.index),
      [WORKER_ENV.lockHolder]: String(options.lockHolder),
    });
    slot.worker = worker;
    worker.on('message', (message: unknown) => {
      if (!isReadyMessage(message) || slot.worker !== worker) return;
      slot.ready = true;
      slot.nodeId = message.nodeId;
      listening ??= { port: message.port, url: message.url };
      if (phase === 'starting') {
        if (slots.every((s) => s.ready)) {
          phase = 'running';
          const up: ClusterReady = {
            ...listening,
            workers: slots.length,
            nodeIds: slots.map((s) => s.nodeId ?? ''),
          };
          log(
            'info',
            { ...options.listeningFields, url: up.url, port: up.port, workers: up.workers, nodeIds: up.nodeIds },
            'baton cluster listening',
          );
          resolveReady(up);
        }
      } else if (phase === 'running') {
        log('info', { worker: slot.index, nodeId: message.nodeId, workerPid: worker.process.pid }, 'worker restarted');
      }
    });
    worker.on('exit', (code: number | null, signal: string | null) => onExit(slot, worker, code, signal));
  }

  function onExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    slot.ready = false;
    const fields = { worker: slot.index, nodeId: slot.nodeId, workerPid: worker.process.pid, code, signal };
    if (phase === 'stopping') {
      if (code !== 0) exitCode = Math.max(exitCode, 1);
      if (live().length === 0) finish();
      return;
    }
    const reason = exitReason(code, signal);
    if (phase === 'starting') {
      log('error', { ...fields, reason }, `worker ${slot.index} failed to start (${reason}); stopping the cluster`);
      rejectReady(new BatonError('INTERNAL', `A cluster worker failed to start: ${reason}`));
      void stopAll(1, 'a worker failed to start');
      return;
    }
    const verdict = slot.history.onCrash();
    if ('giveUp' in verdict) {
      log(
        'error',
        {
          ...fields,
          reason,
          code: 'CLUSTER_CRASH_LOOP',
          workerCode: code,
          crashes: verdict.recent,
          windowMs: policy.crashLoopWindowMs,
        },
        `worker ${slot.index} ${reason}: ${verdict.recent} crashes within ${policy.crashLoopWindowMs / 1000} s is a crash loop; giving up and stopping the cluster`,
      );
      void stopAll(70, 'crash loop');
      return;
    }
    log(
      'warn',
      { ...fields, reason, restartInMs: verdict.restartInMs, crashes: verdict.recent },
      `worker ${slot.index} ${reason}; restarting it in ${verdict.restartInMs} ms`,
    );
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (phase === 'running') fork(slot);
    }, verdict.restartInMs);
  }

  function finish(): void {
    if (killTimer !== undefined) clearTimeout(killTimer);
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.removeListener(signal, onSignal);
    resolveDone(exitCode);
  }

  function stopAll(code: number, reason: string): Promise<number> {
    if (phase === 'stopping') return done;
    phase = 'stopping';
    exitCode = Math.max(exitCode, code);
    for (const slot of slots) {
      if (slot.restartTimer !== undefined) clearTimeout(slot.restartTimer);
      slot.restartTimer = undefined;
    }
    const workers = live();
    log('info', { reason, workers: workers.length }, 'baton cluster stopping');
    if (workers.length === 0) {
      finish();
      return done;
    }
    // SIGTERM each worker: it closes its consoles' sockets (1001) and exits 0 after its last commit.
    for (const slot of workers) slot.worker?.process.kill('SIGTERM');
    killTimer = setTimeout(() => {
      const stuck = live();
      log('error', { workers: stuck.map((s) => s.index), stopTimeoutMs }, 'workers did not stop in time; killing them');
      exitCode = Math.max(exitCode, 1);
      for (const slot of stuck) slot.worker?.process.kill('SIGKILL');
    }, stopTimeoutMs);
    return done;
  }

  let signals = 0;
  function onSignal(signal: NodeJS.Signals): void {
    signals++;
    if (signals === 1) {
      void stopAll(0, signal);
      return;
    }
    // A second signal: no more waiting.
    log('warn', { signal }, 'second signal: killing the workers');
    exitCode = Math.max(exitCode, 1);
    for (const slot of live()) slot.worker?.process.kill('SIGKILL');
  }
  if (options.handleSignals ?? true) {
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }

  for (const slot of slots) fork(slot);

  return { ready, done, stop: (reason) => stopAll(0, reason) };
}
