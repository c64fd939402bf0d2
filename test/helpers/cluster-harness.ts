/**
 * A cluster of real backend processes on one PostgreSQL database, for test/integration/cluster.test.ts.
 *
 * Each node is `backend/cli.ts --workers 1 --database <url>` in a child process of its own, on its own
 * port and its own data directory (a single-process backend takes its data directory's lock, so
 * nodes cannot share one, just as nodes on several hosts would not). The signing key rings are in the
 * database, sealed under the key-encryption key (ADR 0006): every node must hold the same
 * `key-encryption-key` file, made once and copied into every node's data directory before the nodes
 * start, as docs/operations.md tells IT to do (a node without it refuses to start).
 *
 * `ClusterConsole` plays an agent that knows every node's address: it keeps an outbox of its chained
 * events, sends them in batches (at most MAX_BATCHES_IN_FLIGHT awaiting their ack), acknowledges
 * revocations, policies and commands as the agent does, and when its socket closes it connects to the
 * next node of its list (round robin, with a short jittered backoff), trims its outbox to the
 * `welcome`'s `ackedSeq` and replays the rest.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { AssuranceEvent } from '../../shared/events.js';
import { MAX_BATCHES_IN_FLIGHT, type BackendMessage } from '../../shared/protocol.js';
import { AdminClient, TEST_ORIGIN, TestConsole, type ConsoleSocket } from './backend-harness.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from './postgres-server.js';
import { withDeadline } from './deadline.js';
import { DATABASE_WAIT_MS, TEST_ENGINE } from './test-database.js';
import { KEY_ENCRYPTION_KEY_FILE, KeyEncryptionKey } from '../../backend/crypto/key-encryption-key.js';

const ROOT = join(import.meta.dirname, '..', '..');
/** The key file every node must share (not in the database on purpose). */
const SHARED_KEY_FILES = [KEY_ENCRYPTION_KEY_FILE];

export interface ClusterNode {
  readonly name: string;
  readonly dataDir: string;
  child: ChildProcess;
  url: string;
  port: number;
  /** Every line the process printed (JSON log lines). */
  readonly output: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function spawnNode(name: string, dataDir: string, databaseUrl: string, tokenFile: string): Promise<ClusterNode> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(ROOT, 'backend', 'cli.ts'),
      '--port',
      '0',
      '--data-dir',
      dataDir,
      '--origin',
      TEST_ORIGIN,
      '--bootstrap-token-file',
      tokenFile,
      '--log-level',
      'info',
      '--database',
      databaseUrl,
      '--workers',
      '1',
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const output: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`node ${name} did not start within 90 s: ${output.slice(-20).join('\n')}`)),
      90_000,
    );
    for (const stream of [child.stdout, child.stderr]) {
      if (stream === null) continue;
      createInterface({ input: stream }).on('line', (line) => {
        output.push(line);
        if (!line.includes('baton backend listening')) return;
        const { url, port } = JSON.parse(line) as { url: string; port: number };
        clearTimeout(timer);
        resolve({ name, dataDir, child, url: url.replace('127.0.0.1', 'localhost'), port, output, exited });
      });
    }
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`node ${name} exited (${String(code ?? signal)}) before listening: ${output.join('\n')}`));
    });
  });
}

/**
 * The skip reason of a test that starts its own cluster on its own PostgreSQL: none in the default pass where
 * PostgreSQL can run; in the PostgreSQL pass (BATON_TEST_DATABASE=postgres) it would only run a second time.
 */
export function clusterSkip(): false | string {
  const missing = postgresSkip();
  if (missing !== false) return missing;
  return TEST_ENGINE === 'postgres'
    ? 'the cluster test runs in the default pass (it starts its own PostgreSQL)'
    : false;
}

export class Cluster {
  private constructor(
    readonly server: PostgresServer,
    readonly databaseUrl: string,
    readonly nodes: ClusterNode[],
    readonly adminToken: string,
    private readonly dirs: string[],
  ) {}

  /**
   * `start`, every node reading `config` as its configuration file: BATON_CONFIG is set while the nodes
   * start (they inherit the environment), then put back. The file is removed with the cluster.
   */
  static async startWithConfig(names: string[], config: Record<string, unknown>): Promise<Cluster> {
    const dir = mkdtempSync(join(tmpdir(), 'baton-cluster-config-'));
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify(config));
    const previous = process.env.BATON_CONFIG;
    process.env.BATON_CONFIG = file;
    try {
      const cluster = await Cluster.start(names);
      cluster.dirs.push(dir);
      return cluster;
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      throw error;
    } finally {
      if (previous === undefined) delete process.env.BATON_CONFIG;
      else process.env.BATON_CONFIG = previous;
    }
  }

  /**
   * Starts PostgreSQL, one database, and a node per name on it, all at once (the first start of the
   * database's bootstrap token is decided in the database: exactly one node must print it). The
   * key-encryption key is made once, as on a first host, and copied into every node's data directory first.
   */
  static async start(names: string[]): Promise<Cluster> {
    const server = await startPostgres();
    const dirs: string[] = [];
    const nodes: ClusterNode[] = [];
    try {
      const databaseUrl = await withDeadline(
        'creating the cluster database baton_cluster',
        () => createDatabase(server.url, 'baton_cluster', { migrated: true }),
        DATABASE_WAIT_MS,
      );
      const keys = mkdtempSync(join(tmpdir(), 'baton-cluster-keys-'));
      dirs.push(keys);
      KeyEncryptionKey.create(join(keys, KEY_ENCRYPTION_KEY_FILE));
      const started = await Promise.allSettled(
        names.map((name) => {
          const dir = mkdtempSync(join(tmpdir(), `baton-cluster-${name}-`));
          dirs.push(dir);
          for (const file of SHARED_KEY_FILES) copyFileSync(join(keys, file), join(dir, file));
          return spawnNode(name, dir, databaseUrl, join(dir, 'bootstrap-admin-token'));
        }),
      );
      for (const result of started) if (result.status === 'fulfilled') nodes.push(result.value);
      const failed = started.find((r) => r.status === 'rejected');
      if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
      const tokens = nodes
        .map((node) => join(node.dataDir, 'bootstrap-admin-token'))
        .filter((file) => existsSync(file))
        .map((file) => readFileSync(file, 'utf8').trim());
      if (tokens.length !== 1) {
        throw new Error(`exactly one node must create the bootstrap admin token; ${tokens.length} did`);
      }
      return new Cluster(server, databaseUrl, nodes, tokens[0] ?? '', dirs);
    } catch (error) {
      for (const node of nodes) node.child.kill('SIGKILL');
      await Promise.all(nodes.map((node) => node.exited));
      await server.stop();
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  }

  node(name: string): ClusterNode {
    const node = this.nodes.find((n) => n.name === name);
    if (node === undefined) throw new Error(`no node ${name}`);
    return node;
  }

  admin(name: string): AdminClient {
    return new AdminClient(this.node(name).url, this.adminToken);
  }

  /** For a failure message: whether the node still runs (or how it exited), and its last log lines. */
  state(name: string, lines = 8): string {
    const node = this.node(name);
    const exit = node.child.exitCode ?? node.child.signalCode;
    const fault = node.output.find((line) => line.includes('BACKEND_FAULT'));
    return `node ${name} ${exit === null ? 'running' : `exited (${String(exit)})`}${
      fault === undefined ? '' : `; fault: ${fault}`
    }; last lines: ${node.output.slice(-lines).join('\n')}`;
  }

  /** SIGKILL, and waits until the process is gone. */
  async kill(name: string): Promise<void> {
    const node = this.node(name);
    node.child.kill('SIGKILL');
    await node.exited;
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.nodes.map(async (node) => {
        if (node.child.exitCode !== null || node.child.signalCode !== null) return;
        node.child.kill('SIGTERM');
        const timer = setTimeout(() => node.child.kill('SIGKILL'), 5000);
        await node.exited;
        clearTimeout(timer);
      }),
    );
    await this.server.stop();
    for (const dir of this.dirs) rmSync(dir, { recursive: true, force: true });
  }
}

/** What a console saw on one connection (or one refused attempt). */
export interface ConnectionRecord {
  url: string;
  /** The upgrade was refused: HTTP status and the error code of its body. */
  refused?: { status: number | undefined; code: string | undefined };
  /** The connection could not be made at all (ECONNREFUSED and the like). */
  failed?: string;
  welcomed: boolean;
  close?: { code: number; reason: string };
  /** `error` messages the backend sent on this socket. */
  errors: string[];
}

/**
 * An agent that knows every node: see the file comment. `produce(n)` journals n events; `drained()`
 * waits until all are acknowledged.
 */
export class ClusterConsole {
  private readonly chain: TestConsole;
  private outbox: AssuranceEvent[] = [];
  private inFlight: number[] = [];
  private stopped = false;
  private policyVersion = 0;
  private revocationEpoch = 0;
  /** Highest sequence number the backend acknowledged (or reported stored in a welcome). */
  acked = 0;
  produced = 0;
  socket: ConsoleSocket | undefined;
  /** The node URL of the current (welcomed) socket. */
  currentUrl: string | undefined;
  readonly connections: ConnectionRecord[] = [];
  readonly messages: { url: string; message: BackendMessage }[] = [];
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly enrolled: TestConsole,
    readonly urls: string[],
  ) {
    this.chain = enrolled;
  }

  get id(): string {
    return this.chain.id;
  }

  /** Connects (to urls[0] first) and keeps connected until `stop()`. */
  start(): void {
    void this.loop();
  }

  stop(): Promise<void> {
    this.stopped = true;
    const socket = this.socket;
    this.socket = undefined;
    this.notify();
    return socket === undefined ? Promise.resolve() : socket.close().then(() => undefined);
  }

  produce(n: number): void {
    for (let i = 0; i < n; i++) this.outbox.push(this.chain.nextEvent({ type: 'agent-online', reasons: [] }));
    this.produced += n;
    this.pump();
  }

  /** Resolves once `test` holds (re-checked on every message and state change); fails naming `what`. */
  until(test: () => boolean, what: string, ms = 15_000): Promise<void> {
    if (test()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        reject(new Error(`console ${this.id}: timed out after ${ms} ms waiting for ${what}`));
      }, ms);
      const check = () => {
        if (!test()) return;
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve();
      };
      this.listeners.add(check);
    });
  }

  drained(ms = 20_000): Promise<void> {
    return this.until(() => this.acked >= this.produced, `every produced event acknowledged`, ms);
  }

  /** Messages of one type received from any node. */
  received<T extends BackendMessage['type']>(type: T): Extract<BackendMessage, { type: T }>[] {
    return this.messages.filter((m) => m.message.type === type).map((m) => m.message) as Extract<
      BackendMessage,
      { type: T }
    >[];
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  private async loop(): Promise<void> {
    let index = 0;
    let failures = 0;
    while (!this.stopped) {
      const url = this.urls[index % this.urls.length] ?? '';
      index++;
      const record: ConnectionRecord = { url, welcomed: false, errors: [] };
      this.connections.push(record);
      const closed = await this.session(url, record);
      this.notify();
      if (this.stopped) return;
      failures = closed.welcomed ? 0 : failures + 1;
      // The agent's backoff, short for a test: 50–150 ms, longer after repeated failures.
      const delay = Math.min(1000, 50 * 2 ** Math.min(failures, 4)) * (0.5 + Math.random());
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  /** One connection, until it closes. */
  private async session(url: string, record: ConnectionRecord): Promise<ConnectionRecord> {
    const at = new TestConsole(url, this.chain.key, this.chain.id);
    let socket: ConsoleSocket;
    try {
      socket = await at.connect({ policyVersion: this.policyVersion, revocationEpoch: this.revocationEpoch });
    } catch (error) {
      const { status, body } = error as { status?: number; body?: string };
      if (status !== undefined) {
        let code: string | undefined;
        try {
          code = (JSON.parse(body ?? '{}') as { error?: { code?: string } }).error?.code;
        } catch {
          code = undefined;
        }
        record.refused = { status, code };
      } else {
        record.failed = error instanceof Error ? error.message : String(error);
      }
      return record;
    }
    socket.ws.on('error', () => undefined);
    if (this.stopped) {
      await socket.close();
      return record;
    }
    this.inFlight = [];
    for (const message of socket.received) this.onMessage(url, socket, record, message);
    socket.ws.on('message', () => {
      const message = socket.received[socket.received.length - 1];
      if (message !== undefined) this.onMessage(url, socket, record, message);
    });
    const closed = await socket.closed;
    record.close = closed;
    if (this.socket === socket) {
      this.socket = undefined;
      this.currentUrl = undefined;
    }
    this.inFlight = [];
    return record;
  }

  private onMessage(url: string, socket: ConsoleSocket, record: ConnectionRecord, message: BackendMessage): void {
    this.messages.push({ url, message });
    switch (message.type) {
      case 'welcome': {
        record.welcomed = true;
        this.socket = socket;
        this.currentUrl = url;
        this.acked = Math.max(this.acked, message.ackedSeq);
        this.outbox = this.outbox.filter((e) => e.seq > this.acked);
        this.inFlight = [];
        this.lastSent = this.acked;
        this.pump();
        break;
      }
      case 'events-ack': {
        this.acked = Math.max(this.acked, message.upToSeq);
        this.outbox = this.outbox.filter((e) => e.seq > this.acked);
        this.inFlight = this.inFlight.filter((seq) => seq > message.upToSeq);
        this.pump();
        break;
      }
      case 'revocation':
        this.revocationEpoch = Math.max(this.revocationEpoch, message.epoch);
        socket.send({ type: 'ack', of: 'revocation', epoch: message.epoch });
        break;
      case 'policy':
        this.policyVersion = Math.max(this.policyVersion, message.version);
        socket.send({ type: 'ack', of: 'policy', version: message.version });
        break;
      case 'command':
        socket.send({ type: 'ack', of: 'command', commandId: message.commandId });
        break;
      case 'error':
        record.errors.push(message.code);
        break;
    }
    this.notify();
  }

  /** Highest sequence number sent on the current socket. */
  private lastSent = 0;

  /** Sends the next batches of the outbox, at most MAX_BATCHES_IN_FLIGHT unacknowledged. */
  private pump(): void {
    const socket = this.socket;
    if (socket === undefined || socket.ws.readyState !== socket.ws.OPEN) return;
    while (this.inFlight.length < MAX_BATCHES_IN_FLIGHT) {
      const batch = this.outbox.filter((e) => e.seq > this.lastSent).slice(0, 50);
      if (batch.length === 0) return;
      const last = batch[batch.length - 1]?.seq ?? 0;
      socket.send({ type: 'events', events: batch });
      this.inFlight.push(last);
      this.lastSent = last;
    }
  }
}
