import WebSocket, { type RawData } from 'ws';
import type { z } from 'zod';
import { BatonError, type ErrorCode } from '../../shared/errors.js';
import {
  BackendMessageSchema,
  CLOSE_CODES,
  CONSOLE_WS_PATH,
  MAX_MESSAGE_BYTES,
  PROTOCOL_VERSION,
  type AgentMessage,
  type BackendMessage,
  type HelloMessage,
} from '../../shared/protocol.js';
import {
  ROUTES,
  buildRoutePath,
  type RouteBody,
  type RouteParams,
  type RouteResponse,
  type RouteSpec,
  type RoutesFor,
} from '../../shared/routes.js';
import { systemClock, type Clock, type Random, type Timer } from './clock.js';
import type { ConsoleKey } from './console-key.js';
import { HTTP_TIMEOUT_MS, SignedHttp, refusal } from './signed-http.js';

/** Reconnect delays: exponential from `RECONNECT_BASE_MS`, capped, with "equal jitter" (half fixed, half random). */
export const RECONNECT_BASE_MS = 250;
export const RECONNECT_CAP_MS = 30_000;
/** A connection that hears nothing (no message, no ping) for this many heartbeats is presumed dead. */
export const MISSED_HEARTBEATS = 2.5;

export type ConnectionState = 'connecting' | 'online' | 'offline' | 'stopped';

export interface BackendClientOptions {
  backendUrl: string;
  key: ConsoleKey;
  consoleId: string;
  clock: Clock;
  random: Random;
  agentVersion: string;
  /** What the agent holds, for `hello`. */
  hello: () => Pick<HelloMessage, 'policyVersion' | 'revocationEpoch' | 'outbox'>;
  onMessage: (message: BackendMessage) => void;
  /** The socket is open and `hello` is sent; the backend's `welcome` arrives through `onMessage`. */
  onOpen: () => void;
  onClose: (info: { code: number; reason: string; refused?: BatonError }) => void;
  /** A message the agent could not accept; the connection is dropped and re-established. */
  onProtocolError: (error: BatonError) => void;
}

/**
 * A request body's fields by name, their values unchecked here: the WebAuthn library's JSON types
 * are not the schemas' inferred types, and the backend validates every body against its schema.
 */
type FieldsOf<T> = T extends object ? { [K in keyof T]: unknown } : T;

/** The delay before reconnect attempt `attempt` (0-based). */
export function reconnectDelay(attempt: number, random: Random): number {
  const ceiling = Math.min(RECONNECT_CAP_MS, RECONNECT_BASE_MS * 2 ** Math.min(attempt, 20));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** How long a stopping agent lets a close handshake the backend began finish before it drops the socket. */
const CLOSING_GRACE_MS = 1000;

/**
 * The console's half of the backend protocol: signed HTTP requests (`SignedHttp`, signed-http.ts),
 * and the one WebSocket, re-established with backoff and jitter whenever it drops. Every inbound
 * message is validated against its schema before anyone sees it.
 */

export class BackendClient {
  private socket: WebSocket | undefined;
  private reconnectTimer: Timer | undefined;
  private watchdog: Timer | undefined;
  private attempt = 0;
  private heartbeatMs = 30_000;
  private stopped = true;
  /** The signed requests; the socket's upgrade is signed the same way. */
  private readonly http: SignedHttp;

  constructor(private readonly options: BackendClientOptions) {
    this.http = new SignedHttp(options);
  }

  get connected(): boolean {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  /** Starts (or restarts) the connection loop. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.http.closeIdle();
    this.reconnectTimer?.cancel();
    this.watchdog?.cancel();
    const socket = this.socket;
    this.socket = undefined;
    if (socket !== undefined) {
      socket.removeAllListeners();
      socket.on('error', () => undefined);
      if (socket.readyState === WebSocket.OPEN) socket.close(CLOSE_CODES.NORMAL, 'agent stopping');
      else if (socket.readyState === WebSocket.CLOSING) {
        // The backend's close frame arrived and ours is on its way back: destroying the socket now
        // could drop it, and the backend would see 1006 (for a revoked console, an unacknowledged
        // revocation). Let the handshake finish, bounded.
        const timer = systemClock.setTimer(CLOSING_GRACE_MS, () => socket.terminate());
        socket.once('close', () => timer.cancel());
      } else socket.terminate();
    }
  }

  /** Drops the connection (as a network fault would); the loop reconnects with backoff. */
  drop(): void {
    this.socket?.terminate();
  }

  /** The backend announced its heartbeat interval (in `welcome`): the watchdog follows it. */
  welcomed(heartbeatSeconds: number): void {
    this.attempt = 0;
    this.heartbeatMs = heartbeatSeconds * 1000;
    this.armWatchdog();
  }

  send(message: AgentMessage): boolean {
    return this.sendText(JSON.stringify(message));
  }

  /** Sends an already serialised agent message (the outbox builds `events` frames from its journal lines). */
  sendText(text: string): boolean {
    const socket = this.socket;
    if (socket === undefined || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(text);
    return true;
  }

  /**
   * Calls one console route of shared/routes.ts, signed; the answer is checked against the route's
   * declared response schema. `client.call('sessionEnd', { id }, { reason: 'sign-out' })`.
   */
  async call<R extends RoutesFor<'console'>>(
    route: R,
    params: RouteParams<R>,
    body: FieldsOf<RouteBody<R>> | undefined,
  ): Promise<RouteResponse<R>> {
    const spec: RouteSpec = ROUTES[route];
    const method = spec.method as 'GET' | 'POST';
    const path = buildRoutePath(route, params as Record<string, string>);
    if (spec.response === null) throw new Error(`Route ${route} does not answer with JSON`);
    return (await this.request(method, path, body, spec.response)) as RouteResponse<R>;
  }

  /** A signed request to the console API; the response is checked against `schema`. */
  request<S extends z.ZodType>(method: 'GET' | 'POST', path: string, body: unknown, schema: S): Promise<z.infer<S>> {
    return this.http.request(method, path, body, schema);
  }

  private connect(): void {
    if (this.stopped) return;
    const url = new URL(CONSOLE_WS_PATH, this.options.backendUrl);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const headers = this.options.key.signRequest({
      consoleId: this.options.consoleId,
      method: 'GET',
      path: CONSOLE_WS_PATH,
      now: this.options.clock.now(),
    });
    const socket = new WebSocket(url, {
      headers,
      perMessageDeflate: false,
      maxPayload: MAX_MESSAGE_BYTES,
      handshakeTimeout: HTTP_TIMEOUT_MS,
    });
    this.socket = socket;
    let refused: BatonError | undefined;
    socket.on('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => {
        if (chunks.reduce((n, c) => n + c.length, 0) < 16_384) chunks.push(chunk);
      });
      res.on('end', () => {
        refused = refusal(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'));
        socket.terminate();
        this.closed(socket, CLOSE_CODES.ABNORMAL, 'upgrade refused', refused);
      });
      res.on('error', () => this.closed(socket, CLOSE_CODES.ABNORMAL, 'upgrade refused', refused));
    });
    socket.on('open', () => {
      socket.send(
        JSON.stringify({
          type: 'hello',
          protocol: PROTOCOL_VERSION,
          agentVersion: this.options.agentVersion,
          ...this.options.hello(),
        } satisfies HelloMessage),
      );
      this.armWatchdog();
      this.options.onOpen();
    });
    socket.on('ping', () => this.armWatchdog());
    socket.on('message', (data, isBinary) => {
      this.armWatchdog();
      this.onData(socket, data, isBinary);
    });
    socket.on('error', (error: Error & { code?: unknown }) => {
      // Network errors: the close that follows carries what matters. A frame `ws` itself refused
      // (over maxPayload, invalid UTF-8, bad opcode) is the backend breaking the protocol: say so.
      if (typeof error.code !== 'string' || !error.code.startsWith('WS_ERR_')) return;
      this.options.onProtocolError(
        error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
          ? new BatonError('PAYLOAD_TOO_LARGE', `The backend sent a message larger than ${MAX_MESSAGE_BYTES} bytes`)
          : new BatonError('BAD_JSON', `The backend sent a frame the agent cannot read (${error.message})`),
      );
    });
    socket.on('close', (code, reason) => this.closed(socket, code, reason.toString('utf8')));
  }

  private onData(socket: WebSocket, data: RawData, isBinary: boolean): void {
    let parsed: unknown;
    try {
      if (isBinary) throw new Error('binary frame');
      parsed = JSON.parse(rawText(data));
    } catch {
      this.violation(socket, 'BAD_JSON', CLOSE_CODES.BAD_JSON, 'The backend sent a message that is not JSON text');
      return;
    }
    const type = typeof parsed === 'object' && parsed !== null ? (parsed as { type?: unknown }).type : undefined;
    const known = ['welcome', 'events-ack', 'policy', 'revocation', 'command', 'error'];
    if (typeof type !== 'string' || !known.includes(type)) {
      this.violation(
        socket,
        'MESSAGE_TYPE_UNKNOWN',
        CLOSE_CODES.MESSAGE_TYPE_UNKNOWN,
        `The backend sent a message of unknown type ${JSON.stringify(type)?.slice(0, 40) ?? 'undefined'}`,
      );
      return;
    }
    const result = BackendMessageSchema.safeParse(parsed);
    if (!result.success) {
      const issue = result.error.issues[0];
      this.violation(
        socket,
        'SCHEMA_INVALID',
        CLOSE_CODES.SCHEMA_INVALID,
        `The backend sent an invalid "${type}" message (${issue?.path.join('.') ?? ''}: ${issue?.message ?? ''})`,
      );
      return;
    }
    try {
      this.options.onMessage(result.data);
    } catch (cause) {
      // A message that parsed but does not hold together (a policy not matching its hash) is the
      // backend breaking the protocol; anything else is the agent failing.
      if (cause instanceof BatonError && cause.code === 'BACKEND_PROTOCOL_ERROR') {
        this.violation(socket, cause.code, CLOSE_CODES.SCHEMA_INVALID, cause.message);
        return;
      }
      this.violation(socket, 'INTERNAL', CLOSE_CODES.INTERNAL, 'The agent failed to apply a backend message', cause);
    }
  }

  private violation(socket: WebSocket, code: ErrorCode, closeCode: number, message: string, cause?: unknown): void {
    this.options.onProtocolError(new BatonError(code, message, cause === undefined ? undefined : { cause }));
    if (socket.readyState === WebSocket.OPEN) socket.close(closeCode, code);
  }

  private closed(socket: WebSocket, code: number, reason: string, refused?: BatonError): void {
    if (socket !== this.socket) return;
    this.socket = undefined;
    this.watchdog?.cancel();
    socket.removeAllListeners();
    socket.on('error', () => undefined);
    this.options.onClose({ code, reason, ...(refused === undefined ? {} : { refused }) });
    if (this.stopped) return;
    const delay = reconnectDelay(this.attempt++, this.options.random);
    this.reconnectTimer = this.options.clock.setTimer(delay, () => this.connect());
  }

  private armWatchdog(): void {
    this.watchdog?.cancel();
    const socket = this.socket;
    // Real time on purpose: the watchdog measures the network, not policy, so a test's fake clock
    // jumping minutes ahead does not make a healthy socket look dead.
    this.watchdog = systemClock.setTimer(this.heartbeatMs * MISSED_HEARTBEATS, () => {
      if (socket === this.socket) socket?.terminate();
    });
  }
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data as ArrayBuffer).toString('utf8');
}
