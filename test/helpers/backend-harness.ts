import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import WebSocket from 'ws';
import { parseBackendConfig, type BackendConfig } from '../../backend/config.js';
import { startBackend, type Backend } from '../../backend/server.js';
import { KEY_ENCRYPTION_KEY_FILE } from '../../backend/crypto/key-encryption-key.js';
import { canonicalJson } from '../../shared/canonical-json.js';
import { GENESIS_HASH, type AssuranceEvent, type EventDraft } from '../../shared/events.js';
import { CONSOLE_WS_PATH, PROTOCOL_VERSION, type BackendMessage } from '../../shared/protocol.js';
import { ConsoleKey } from '../../main/core/console-key.js';
import { checkAnswer } from './route-contract.js';
import { dropTestDatabase, testDatabaseUrl } from './test-database.js';
import { createHash, randomUUID } from 'node:crypto';
import { tempDir } from './temp-dir.js';
import { DeadlineError, NETWORK_WAIT_MS, describeRequest, withDeadline } from './deadline.js';

export const TEST_ORIGIN = 'http://localhost:8471';
/** Real timers, captured before any test fakes them: a waiter's deadline stays real time. */
const realTimers = { setTimeout: globalThis.setTimeout, clearTimeout: globalThis.clearTimeout };

export interface HttpResult<T = Record<string, unknown>> {
  status: number;
  body: T;
}

// Test code reads JSON bodies loosely; assertions check the shape that matters.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

/**
 * One JSON request. The whole exchange (connecting, the answer's head and its body) is bounded by
 * `timeoutMs` (default NETWORK_WAIT_MS): a request that gets no answer fails naming its method and path.
 */
export async function httpJson(
  url: string,
  init: { method: string; headers?: Record<string, string>; body?: string; timeoutMs?: number },
): Promise<HttpResult<Json>> {
  const { status, text } = await withDeadline(
    describeRequest(init.method, url),
    async (signal) => {
      const response = await fetch(url, {
        method: init.method,
        headers: { ...(init.body === undefined ? {} : { 'content-type': 'application/json' }), ...init.headers },
        ...(init.body === undefined ? {} : { body: init.body }),
        signal,
      });
      return { status: response.status, text: await response.text() };
    },
    init.timeoutMs,
  );
  const body = text === '' ? {} : (JSON.parse(text) as Json);
  checkAnswer(init.method, url, status, body);
  return { status, body };
}

/** Asserts the HTTP status and the stable error code a caller (or an attacker) sees. */
export function assertError(result: HttpResult<Json>, status: number, code: string): void {
  assert.equal(
    result.status,
    status,
    `expected ${status} ${code}, got ${result.status} ${JSON.stringify(result.body)}`,
  );
  assert.equal(result.body.error?.code, code, JSON.stringify(result.body));
}

export class AdminClient {
  constructor(
    readonly url: string,
    readonly token: string,
  ) {}

  request(method: string, path: string, body?: unknown): Promise<HttpResult<Json>> {
    return httpJson(`${this.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.token}` },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  }

  async ok(method: string, path: string, body?: unknown): Promise<Json> {
    const result = await this.request(method, path, body);
    if (result.status >= 300) throw new Error(`${method} ${path} → ${result.status} ${JSON.stringify(result.body)}`);
    return result.body;
  }
}

export interface TestBackend {
  backend: Backend;
  url: string;
  dataDir: string;
  /** The PostgreSQL database this backend runs on; undefined on embedded SQLite (test-database.ts). */
  databaseUrl: string | undefined;
  admin: AdminClient;
  config: BackendConfig;
  stop(): Promise<void>;
}

/**
 * The key-encryption key of each database a test started backends on (ADR 0006): a second node on
 * the same database with a fresh data directory gets the first one's, as IT copies it to every node.
 */
const clusterKeys = new Map<string, Buffer>();
/** A start (migrations on PostgreSQL) or a stop takes a second or two; on a loaded machine far more. */
const BACKEND_START_MS = 90_000;

/**
 * The backend's logger in tests: nothing printed, but its last warnings and errors are kept, so that a
 * start or stop that never finishes says what the backend was doing (a PostgreSQL backend does not
 * listen before its cluster bus listens, and retries that without end, logging each attempt).
 */
function recentWarnings(keep = 10): { logger: Logger; explain: (error: unknown) => never } {
  const lines: string[] = [];
  const logger = pino(
    { level: 'warn' },
    {
      write: (line: string) => {
        lines.push(briefLogLine(line));
        if (lines.length > keep) lines.shift();
      },
    },
  );
  const explain = (error: unknown): never => {
    if (!(error instanceof DeadlineError)) throw error;
    const detail = lines.length === 0 ? 'the backend logged no warning' : `its last warnings: ${lines.join('; ')}`;
    throw new DeadlineError(error.what, error.ms, detail);
  };
  return { logger, explain };
}

/** A pino line as `message (error)`; the line itself if it is not one. */
function briefLogLine(line: string): string {
  try {
    const { msg, err } = JSON.parse(line) as { msg?: string; err?: string | { message?: string } };
    const why = typeof err === 'string' ? err : err?.message;
    return why === undefined ? String(msg) : `${String(msg)} (${why})`;
  } catch {
    return line.trim();
  }
}

/**
 * Starts a backend in this process on a fresh data directory (or `overrides.dataDir`), on the
 * engine the suite runs on (BATON_TEST_DATABASE, test-database.ts): a backend started again on the
 * same data directory finds the same database. Its start and stop are bounded (BACKEND_START_MS),
 * as is creating its database: a hang fails naming the step.
 */
export async function startTestBackend(
  overrides: Partial<Record<keyof BackendConfig, unknown>> = {},
  deps: { clock?: () => number; adminToken?: string; startTimeoutMs?: number } = {},
): Promise<TestBackend> {
  const dataDir = (overrides.dataDir as string | undefined) ?? tempDir('baton-test-');
  const given = overrides.databaseUrl as string | undefined;
  const databaseUrl = given ?? (await testDatabaseUrl(dataDir));
  const kekFile = join(dataDir, KEY_ENCRYPTION_KEY_FILE);
  const clusterKey = given === undefined ? undefined : clusterKeys.get(given);
  if (clusterKey !== undefined && !existsSync(kekFile)) writeFileSync(kekFile, clusterKey, { mode: 0o600 });
  const config = parseBackendConfig(
    {
      port: 0,
      origins: [TEST_ORIGIN],
      logLevel: 'silent',
      durability: 'normal',
      ...overrides,
      dataDir,
      ...(databaseUrl === undefined ? {} : { databaseUrl }),
    },
    'test',
  );
  const engine = databaseUrl === undefined ? 'SQLite' : `PostgreSQL database ${new URL(databaseUrl).pathname.slice(1)}`;
  const logs = recentWarnings();
  const starting = startBackend(config, {
    logger: logs.logger,
    ...(deps.clock === undefined ? {} : { clock: deps.clock }),
  });
  const backend = await withDeadline(
    `starting a test backend on ${engine} (migrations, cluster bus, listening)`,
    () => starting,
    deps.startTimeoutMs ?? BACKEND_START_MS,
  ).catch((error: unknown) => {
    // A start that still finishes is stopped at once: nothing is left running in the test process.
    void starting.then((late) => late.stop()).catch(() => undefined);
    return logs.explain(error);
  });
  if (given !== undefined && !clusterKeys.has(given) && existsSync(kekFile))
    clusterKeys.set(given, readFileSync(kekFile));
  const token = backend.bootstrapAdminToken ?? deps.adminToken;
  if (token === undefined) throw new Error('startTestBackend: pass the admin token when reusing a data directory');
  const url = `http://localhost:${backend.port}`;
  return {
    backend,
    url,
    dataDir,
    databaseUrl,
    config,
    admin: new AdminClient(url, token),
    stop: async () => {
      await withDeadline(`stopping the test backend at ${url}`, () => backend.stop(), BACKEND_START_MS).catch(
        logs.explain,
      );
      if (overrides.dataDir !== undefined) return; // the test reuses it (and its database)
      rmSync(dataDir, { recursive: true, force: true });
      if (given === undefined) await dropTestDatabase(dataDir);
    },
  };
}

/**
 * Registers before/after hooks that start a backend and enrol one console for a describe block,
 * handing both to `use` (tests keep them in their own variables).
 */
export function withBackendAndConsole(
  use: (backend: TestBackend, console: TestConsole) => void,
  overrides: Partial<Record<keyof BackendConfig, unknown>> = {},
  deps: { clock?: () => number } = {},
): void {
  let backend: TestBackend | undefined;
  before(async () => {
    backend = await startTestBackend(overrides, deps);
    use(backend, await TestConsole.enrol(backend.url, backend.admin));
  });
  after(() => backend?.stop());
}

/** A console as the backend sees it: a key, an id, signed HTTP and the WebSocket. */
export class TestConsole {
  seq = 0;
  lastHash = GENESIS_HASH;

  constructor(
    readonly url: string,
    readonly key: ConsoleKey,
    readonly id: string,
    readonly clock: () => number = Date.now,
  ) {}

  static async enrol(
    url: string,
    admin: AdminClient,
    channel = 'branch-kiosk',
    key = ConsoleKey.generate(),
  ): Promise<TestConsole> {
    const { token } = (await admin.ok('POST', '/v1/admin/console-tokens', { channel })) as { token: string };
    const body = JSON.stringify({ token, publicKey: key.publicJwk(), channel, name: 'test console' });
    const path = '/v1/consoles/enrol';
    const result = await httpJson(`${url}${path}`, {
      method: 'POST',
      headers: key.signRequest({ consoleId: undefined, method: 'POST', path, body, now: Date.now() }),
      body,
    });
    if (result.status !== 201) throw new Error(`enrol → ${result.status} ${JSON.stringify(result.body)}`);
    return new TestConsole(url, key, (result.body as { consoleId: string }).consoleId);
  }

  signedHeaders(method: string, path: string, body = ''): Record<string, string> {
    return this.key.signRequest({ consoleId: this.id, method, path, body, now: this.clock() });
  }

  request(method: string, path: string, payload?: unknown): Promise<HttpResult<Json>> {
    const body = payload === undefined ? '' : JSON.stringify(payload);
    return httpJson(`${this.url}${path}`, {
      method,
      headers: this.signedHeaders(method, path, body),
      ...(payload === undefined ? {} : { body }),
    });
  }

  async ok(method: string, path: string, payload?: unknown): Promise<Json> {
    const result = await this.request(method, path, payload);
    if (result.status >= 300) throw new Error(`${method} ${path} → ${result.status} ${JSON.stringify(result.body)}`);
    return result.body;
  }

  /** Next event of this console's chain: sequence number and previous hash filled in. */
  nextEvent(draft: Partial<EventDraft> = {}): AssuranceEvent {
    const event: AssuranceEvent = {
      id: randomUUID(),
      seq: ++this.seq,
      time: Date.now(),
      type: draft.type ?? 'session-locked',
      subject: draft.subject ?? { console: this.id },
      outcome: draft.outcome ?? 'info',
      reasons: draft.reasons ?? ['idle'],
      ...(draft.detail === undefined ? {} : { detail: draft.detail }),
      prevHash: this.lastHash,
    };
    this.lastHash = createHash('sha256').update(canonicalJson(event)).digest('hex');
    return event;
  }

  /**
   * A barrier on one socket, instead of a sleep: sends one event batch and waits for its
   * `events-ack`. A WebSocket is ordered both ways, so once it resolves the backend has handled
   * every message this console sent before it, and every message the backend sent before the ack
   * is in `socket.received` — a message that is not there was never sent.
   */
  async roundTrip(socket: ConsoleSocket): Promise<void> {
    const event = this.nextEvent({ type: 'agent-online', outcome: 'info', reasons: [] });
    socket.send({ type: 'events', events: [event] });
    await socket.next('events-ack', (m) => m.upToSeq >= event.seq);
  }

  /**
   * `autoPong: false`: a ping is answered only while the socket's `answerPings` is true (the test decides).
   * An upgrade not answered within `timeoutMs` (default NETWORK_WAIT_MS) fails naming it.
   */
  connect(
    options: {
      hello?: boolean;
      policyVersion?: number;
      revocationEpoch?: number;
      autoPong?: boolean;
      timeoutMs?: number;
    } = {},
  ): Promise<ConsoleSocket> {
    const wsUrl = `${this.url.replace(/^http/, 'ws')}${CONSOLE_WS_PATH}`;
    const ws = new WebSocket(wsUrl, {
      headers: this.signedHeaders('GET', CONSOLE_WS_PATH),
      perMessageDeflate: false,
      autoPong: options.autoPong ?? true,
    });
    const socket = new ConsoleSocket(ws, options.autoPong === false);
    return new Promise((resolveOpen, rejectOpen) => {
      // The upgrade (and a refusal's body) is bounded too: a backend that never answers it fails naming it.
      const timeoutMs = options.timeoutMs ?? NETWORK_WAIT_MS;
      const timer = realTimers.setTimeout(() => {
        rejectOpen(new DeadlineError(`WebSocket upgrade ${describeRequest('GET', wsUrl)}`, timeoutMs));
        ws.terminate();
      }, timeoutMs);
      const resolve = (value: ConsoleSocket) => {
        realTimers.clearTimeout(timer);
        resolveOpen(value);
      };
      const reject = (error: Error) => {
        realTimers.clearTimeout(timer);
        rejectOpen(error);
      };
      ws.once('open', () => {
        if (options.hello ?? true) {
          socket.send({
            type: 'hello',
            protocol: PROTOCOL_VERSION,
            policyVersion: options.policyVersion ?? 0,
            revocationEpoch: options.revocationEpoch ?? 0,
            agentVersion: 'test',
          });
        }
        resolve(socket);
      });
      ws.once('unexpected-response', (_req, res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () =>
          reject(
            Object.assign(new Error(`upgrade refused: ${res.statusCode} ${text}`), {
              status: res.statusCode,
              body: text,
            }),
          ),
        );
      });
      ws.once('error', reject);
    });
  }
}

export class ConsoleSocket {
  readonly received: BackendMessage[] = [];
  private waiters: { predicate: (m: BackendMessage) => boolean; resolve: (m: BackendMessage) => void }[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  /** Pings received from the backend. */
  pings = 0;
  /** With `connect({ autoPong: false })`: whether a ping is answered now (a test turns it off and on). */
  answerPings = true;

  constructor(
    readonly ws: WebSocket,
    manualPong = false,
  ) {
    ws.on('ping', () => {
      this.pings++;
      if (manualPong && this.answerPings) ws.pong();
    });
    ws.on('message', (data) => {
      const message = JSON.parse(
        Buffer.isBuffer(data) ? data.toString('utf8') : String(data as unknown as string),
      ) as BackendMessage;
      this.received.push(message);
      this.waiters = this.waiters.filter((w) => {
        if (!w.predicate(message)) return true;
        w.resolve(message);
        return false;
      });
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** Resolves with the first message (already received or still to come) that matches. */
  next<T extends BackendMessage['type']>(
    type: T,
    predicate: (m: Extract<BackendMessage, { type: T }>) => boolean = () => true,
    timeoutMs = 5000,
  ): Promise<Extract<BackendMessage, { type: T }>> {
    const test = (m: BackendMessage) => m.type === type && predicate(m as Extract<BackendMessage, { type: T }>);
    const found = this.received.find(test);
    if (found) return Promise.resolve(found as Extract<BackendMessage, { type: T }>);
    return new Promise((resolve, reject) => {
      const timer = realTimers.setTimeout(
        () => reject(new Error(`no "${type}" message within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiters.push({
        predicate: test,
        resolve: (m) => {
          realTimers.clearTimeout(timer);
          resolve(m as Extract<BackendMessage, { type: T }>);
        },
      });
    });
  }

  close(): Promise<{ code: number; reason: string }> {
    this.ws.close();
    return this.closed;
  }
}
