/**
 * Helpers for the cluster benchmarks (issue 10): a throwaway PostgreSQL (or the reason there is none),
 * a Baton node started the way IT starts one (`backend/cli.ts`, optionally `--workers N`), process CPU
 * time of a whole process tree read from /proc (supervisor + workers, or the postmaster + its
 * backends), the naive anchors of ../shared/anchors run in the same run, and the machine's load.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  freePort,
  postgresAvailable,
  startPostgres,
  createDatabase,
  type PostgresServer,
} from '../../backend/store/postgres-throwaway.js';
import { AdminClient, TEST_ORIGIN } from '../../test/helpers/backend-harness.js';
import { KEY_ENCRYPTION_KEY_FILE } from '../../backend/crypto/key-encryption-key.js';

export const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** ../shared/anchors beside the project; BENCH_ANCHORS_DIR when the project is a copy elsewhere (a snapshot of a commit). */
export const ANCHORS_DIR = process.env.BENCH_ANCHORS_DIR ?? join(PROJECT_ROOT, '..', 'shared', 'anchors');

/** `uptime`-style load line: the machine is shared, so every figure is printed with it. */
export function loadLine(): string {
  const [one, five, fifteen] = loadavg();
  return `load average ${one?.toFixed(2)}, ${five?.toFixed(2)}, ${fifteen?.toFixed(2)}`;
}

/** A throwaway PostgreSQL server for the run, or the reason the PostgreSQL parts are skipped. */
export async function postgresForBench(
  settings: Record<string, string> = {},
): Promise<{ server: PostgresServer } | { skip: string }> {
  if (process.env.BENCH_NO_POSTGRES === '1') return { skip: 'BENCH_NO_POSTGRES=1' };
  const available = postgresAvailable();
  if (!available.ok) return { skip: available.reason };
  try {
    // Settings of a small production server: durable commits (fsync, synchronous_commit on), more connections
    // than the default 100 for 4 workers × pool, shared buffers large enough for the bench's working set.
    const server = await startPostgres({ settings: { max_connections: '200', shared_buffers: '128MB', ...settings } });
    return { server };
  } catch (error) {
    return { skip: `a throwaway PostgreSQL could not start: ${(error as Error).message}` };
  }
}

let databases = 0;
/** A fresh, empty database on the server (Baton's nodes migrate it once, under their lock). */
export function freshDatabase(server: PostgresServer, prefix = 'bench'): Promise<string> {
  return createDatabase(server.url, `${prefix}_${process.pid}_${databases++}`);
}

// ---- process CPU time from /proc ----

const CLK_TCK = 100;

function statOf(pid: number): { ppid: number; cpuMs: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name: state ppid … utime(14) stime(15) cutime(16) cstime(17).
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(rest[1]);
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    return { ppid, cpuMs: ((utime + stime) * 1000) / CLK_TCK };
  } catch {
    return undefined;
  }
}

/** The pid and all its live descendants. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const stat = statOf(pid);
    if (stat === undefined) continue;
    const list = children.get(stat.ppid) ?? [];
    list.push(pid);
    children.set(stat.ppid, list);
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    out.push(pid);
    for (const child of children.get(pid) ?? []) walk(child);
  };
  walk(root);
  return out;
}

/**
 * CPU ms (user + system) of a process tree, per pid. Diff two readings for an interval; a pid that
 * exists in only one of them (a short-lived PostgreSQL backend) is counted from zero.
 */
export function treeCpu(root: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of processTree(root)) {
    const stat = statOf(pid);
    if (stat !== undefined) out.set(pid, stat.cpuMs);
  }
  return out;
}

export function cpuDelta(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [pid, ms] of after) sum += ms - (before.get(pid) ?? 0);
  return sum;
}

/** The postmaster of a throwaway server (its backends are its children). */
export function postmasterPid(server: PostgresServer): number | undefined {
  try {
    const pid = Number(readFileSync(join(server.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

// ---- anchors ----

/** Runs `node ../shared/anchors/<script> …args` from the project root; returns its JSON lines. */
export function runAnchor(script: string, args: readonly string[] = []): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ANCHORS_DIR, script), ...args], {
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) {
        reject(new Error(`anchor ${script} exited with ${code}`));
        return;
      }
      resolve(
        out
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Record<string, unknown>),
      );
    });
  });
}

// ---- a Baton node started from the CLI ----

/** Files a node needs from the first node's data directory (docs/operations.md: copied to every node). */
/** What every node of one cluster must share in its data directory (ADR 0006: the key rings are in the database). */
const SHARED_KEY_FILES = [KEY_ENCRYPTION_KEY_FILE];

export interface NodeOptions {
  /** postgres://…; absent: embedded SQLite in the node's data directory. */
  databaseUrl?: string;
  /** `--workers` (PostgreSQL only when > 1). */
  workers?: number;
  /** Copy the signing keys from this data directory before start (a second node of the same cluster). */
  keysFrom?: string;
  /** Extra node flags for the backend processes, e.g. --cpu-prof. */
  nodeFlags?: string[];
  /** Run the node from another copy of the project (an A/B against a snapshot of an earlier commit). */
  root?: string;
}

/** One Baton node: `node --import tsx backend/cli.ts …` (a supervisor and its workers when --workers > 1). */
export class CliNode {
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
    readonly port: number,
    readonly dataDir: string,
    readonly admin: AdminClient,
    private readonly exited: Promise<number | null>,
  ) {}

  static async start(options: NodeOptions = {}): Promise<CliNode> {
    const dataDir = mkdtempSync(join(tmpdir(), 'baton-bench-node-'));
    try {
      return await CliNode.startIn(dataDir, options);
    } catch (error) {
      // Workers starting together on a fresh data directory can race to create the same key file
      // (EEXIST, the supervisor gives up): reported; the files exist now, so one more start is fair.
      if (!(error as Error).message.includes('EEXIST')) throw error;
      console.log(
        `(node start failed with EEXIST on a fresh data directory, workers racing for a key file; started again)`,
      );
      return await CliNode.startIn(dataDir, options);
    }
  }

  private static async startIn(dataDir: string, options: NodeOptions): Promise<CliNode> {
    if (options.keysFrom !== undefined) {
      for (const file of SHARED_KEY_FILES) {
        if (existsSync(join(options.keysFrom, file))) copyFileSync(join(options.keysFrom, file), join(dataDir, file));
      }
    }
    const port = await freePort();
    const tokenFile = join(dataDir, 'bench-admin-token');
    const args = [
      ...(options.nodeFlags ?? []),
      '--import',
      'tsx',
      join(options.root ?? PROJECT_ROOT, 'backend', 'cli.ts'),
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--data-dir',
      dataDir,
      '--origin',
      TEST_ORIGIN,
      '--rp-id',
      'localhost',
      '--log-level',
      'silent',
      '--bootstrap-token-file',
      tokenFile,
      '--workers',
      String(options.workers ?? 1),
      ...(options.databaseUrl === undefined ? [] : ['--database', options.databaseUrl]),
    ];
    const child = spawn(process.execPath, args, {
      cwd: options.root ?? PROJECT_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.stdout?.on('data', (chunk: Buffer) => (stdout = (stdout + chunk.toString('utf8')).slice(-20_000)));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 180_000;
    let earlyExit: number | null | undefined;
    void exited.then((code) => (earlyExit = code));
    // Ready: a supervisor prints "baton cluster listening" once every worker serves; one process answers /healthz.
    for (;;) {
      if (earlyExit !== undefined) throw new Error(`node exited early (${earlyExit}): ${stderr.slice(-2000)}`);
      if (Date.now() > deadline) throw new Error(`node did not become ready: ${stderr.slice(-2000)}`);
      if ((options.workers ?? 1) > 1) {
        if (stdout.includes('baton cluster listening')) break;
      } else {
        try {
          const res = await fetch(`${url}/healthz`);
          await res.arrayBuffer();
          if (res.status === 200) break;
        } catch {
          // not listening yet
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // The bootstrap token: written by whichever node created it (a later node of the same cluster gets none).
    let token = '';
    for (let i = 0; i < 50 && token === ''; i++) {
      if (existsSync(tokenFile)) token = readFileSync(tokenFile, 'utf8').trim();
      else await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return new CliNode(child, url, port, dataDir, new AdminClient(url, token), exited);
  }

  /** An admin client on this node with another node's token (admin sessions are in the shared store). */
  adminWith(token: string): AdminClient {
    return new AdminClient(this.url, token);
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** SIGTERM (the supervisor stops its workers), then the data directory is removed. */
  async stop(): Promise<void> {
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 20_000);
    await this.exited;
    clearTimeout(timer);
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** SIGKILL of every process of the node (supervisor and workers): a lost host. */
  async kill(): Promise<void> {
    for (const pid of processTree(this.pid).reverse()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await this.exited;
  }
}
