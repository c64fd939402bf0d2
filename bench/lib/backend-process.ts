import { fork, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KEY_ENCRYPTION_KEY_FILE } from '../../backend/crypto/key-encryption-key.js';
import { AdminClient } from '../../test/helpers/backend-harness.js';
import { wallMs } from './report.js';

export type ChildRequest = { id: number; command: string } & Record<string, unknown>;
export type ChildReply =
  | ({ type: 'reply'; id: number } & Record<string, unknown>)
  | { type: 'ready'; url: string; port: number; adminToken: string; durability: string };

/** The parent's handle on a backend running in its own process (see backend-child.ts). */
export class BackendProcess {
  private nextId = 1;
  private readonly waiting = new Map<number, (reply: Record<string, unknown>) => void>();
  readonly admin: AdminClient;
  /** This process's wall clock minus the child's (add to a child timestamp to compare with ours). */
  clockOffsetMs = 0;

  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
    readonly adminToken: string,
    readonly durability: string,
    readonly dataDir: string,
  ) {
    this.admin = new AdminClient(url, adminToken);
    child.on('message', (raw: unknown) => {
      const message = raw as ChildReply;
      if (message.type !== 'reply') return;
      const resolve = this.waiting.get(message.id);
      this.waiting.delete(message.id);
      resolve?.(message);
    });
  }

  /**
   * `keysFrom`: another node of the same cluster (one PostgreSQL database), whose key-encryption key
   * is copied into this node's data directory first, as operations.md tells IT to (ADR 0006).
   */
  static async start(
    options: { durability?: 'full' | 'normal'; exposeGc?: boolean; keysFrom?: BackendProcess } = {},
  ): Promise<BackendProcess> {
    const dataDir = mkdtempSync(join(tmpdir(), 'baton-bench-'));
    if (options.keysFrom !== undefined) {
      copyFileSync(join(options.keysFrom.dataDir, KEY_ENCRYPTION_KEY_FILE), join(dataDir, KEY_ENCRYPTION_KEY_FILE));
    }
    const script = fileURLToPath(new URL('./backend-child.ts', import.meta.url));
    const child = fork(script, [], {
      execArgv: [
        '--import',
        'tsx',
        ...(options.exposeGc === false ? [] : ['--expose-gc']),
        // BENCH_BACKEND_NODE_FLAGS: extra node flags for the backend only, e.g. "--cpu-prof --cpu-prof-dir=prof".
        ...(process.env.BENCH_BACKEND_NODE_FLAGS?.split(' ').filter(Boolean) ?? []),
      ],
      env: {
        ...process.env,
        BENCH_DATA_DIR: dataDir,
        ...(options.durability === undefined ? {} : { BENCH_DURABILITY: options.durability }),
      },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const ready = await new Promise<Extract<ChildReply, { type: 'ready' }>>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`backend child exited early (${code})`)));
      child.on('message', (raw: unknown) => {
        const message = raw as ChildReply;
        if (message.type === 'ready') resolve(message);
      });
    });
    child.removeAllListeners('exit');
    const handle = new BackendProcess(child, ready.url, ready.adminToken, ready.durability, dataDir);
    await handle.calibrateClock();
    return handle;
  }

  request<T = Record<string, unknown>>(command: string, body: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, (reply) => {
        if (typeof reply.error === 'string') reject(new Error(`backend child: ${reply.error}`));
        else resolve(reply as T);
      });
      this.child.send({ id, command, ...body } satisfies ChildRequest);
    });
  }

  /** Estimates the clock offset from the IPC round trip with the smallest delay (NTP-style). */
  async calibrateClock(rounds = 50): Promise<void> {
    let best = { rtt: Infinity, offset: 0 };
    for (let i = 0; i < rounds; i++) {
      const t0 = wallMs();
      const { now } = await this.request<{ now: number }>('clock');
      const t1 = wallMs();
      if (t1 - t0 < best.rtt) best = { rtt: t1 - t0, offset: (t0 + t1) / 2 - now };
    }
    this.clockOffsetMs = best.offset;
  }

  /** Stops the backend cleanly and removes its data directory unless `keepData`. */
  async stop(keepData = false): Promise<void> {
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    await this.request('stop');
    await exited;
    if (!keepData) this.removeData();
  }

  /** SIGKILL: no shutdown hook runs, so only what was committed before survives. */
  async kill(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }

  removeData(): void {
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
