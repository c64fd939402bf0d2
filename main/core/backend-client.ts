import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import WebSocket, { type RawData } from 'ws';
import type { z } from 'zod';
import { BatonError, isErrorCode, type ErrorCode } from '../../shared/errors.js';
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

/** Reconnect delays: exponential from `RECONNECT_BASE_MS`, capped, with "equal jitter" (half fixed, half random). */
export const RECONNECT_BASE_MS = 250;
export const RECONNECT_CAP_MS = 30_000;
/** A connection that hears nothing (no message, no ping) for this many heartbeats is presumed dead. */
export const MISSED_HEARTBEATS = 2.5;
export const HTTP_TIMEOUT_MS = 10_000;
/** Signed HTTP requests in flight at once to the backend (a tap makes one at a time). */
const MAX_HTTP_SOCKETS = 8;

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

/**
 * The console's half of the backend protocol: signed HTTP requests, and the one WebSocket,
 * re-established with backoff and jitter whenever it drops. Every inbound message is validated
 * against its schema before anyone sees it.
 */
/** How long a stopping agent lets a close handshake the backend began finish before it drops the socket. */
const CLOSING_GRACE_MS = 1000;

export class BackendClient {
  private socket: WebSocket | undefined;
  private reconnectTimer: Timer | undefined;
  private watchdog: Timer | undefined;
  private attempt = 0;
  private heartbeatMs = 30_000;
  private stopped = true;
  /**
   * Keep-alive connections for the signed HTTP requests (node:http, not `fetch`): a tap makes two
   * requests in a row, and undici's fetch costs ~0.6 ms more per request than node:http on a kept
   * connection (docs/benchmarks.md §7, 2026-12-05). Idle sockets do not keep the process alive.
   */
  private readonly http: HttpAgent;
  private readonly secure: boolean;

  constructor(private readonly options: BackendClientOptions) {
    this.secure = new URL(options.backendUrl).protocol === 'https:';
    this.http = this.secure
      ? new HttpsAgent({ keepAlive: true, maxSockets: MAX_HTTP_SOCKETS })
      : new HttpAgent({ keepAlive: true, maxSockets: MAX_HTTP_SOCKETS });
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
    // Idle kept connections go; a request still in flight finishes on its own.
    for (const sockets of Object.values(this.http.freeSockets)) for (const socket of sockets ?? []) socket.destroy();
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
  async request<S extends z.ZodType>(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    schema: S,
  ): Promise<z.infer<S>> {
    const text = body === undefined ? '' : JSON.stringify(body);
    const headers = this.options.key.signRequest({
      consoleId: this.options.consoleId,
      method,
      path,
      body: text,
      now: this.options.clock.now(),
    });
    const answer = await this.roundTrip(method, path, headers, text);
    return parseAnswer(answer.status, answer.text, schema, `${method} ${path}`);
  }

  /**
   * One HTTP exchange on a kept connection. Never follows a redirect (it would carry the signed
   * request and its body to wherever the answer points): a 3xx is an answer like any other, refused
   * by `parseAnswer`. Bounded by HTTP_TIMEOUT_MS in all. A kept connection the backend closed just
   * as it was reused (reset before any answer) is retried once on a new one with the same signed
   * request: if the first did reach the backend, its nonce is claimed and the retry is refused.
   */
  private async roundTrip(
    method: string,
    path: string,
    headers: Record<string, string>,
    text: string,
  ): Promise<{ status: number; text: string }> {
    const url = new URL(path, this.options.backendUrl);
    const deadline = Date.now() + HTTP_TIMEOUT_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.exchange(url, method, headers, text, deadline - Date.now());
      } catch (error) {
        const stale = (error as { reusedSocket?: boolean }).reusedSocket === true;
        if (stale && attempt === 0 && Date.now() < deadline) continue;
        if (error instanceof BatonError) throw error;
        throw new BatonError('BACKEND_UNREACHABLE', 'The backend cannot be reached', { cause: error });
      }
    }
  }

  private exchange(
    url: URL,
    method: string,
    headers: Record<string, string>,
    text: string,
    timeoutMs: number,
  ): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const body = Buffer.from(text, 'utf8');
      const request = (this.secure ? httpsRequest : httpRequest)(url, {
        method,
        agent: this.http,
        headers: {
          ...headers,
          ...(text === '' ? {} : { 'content-type': 'application/json' }),
          'content-length': String(body.length),
        },
      });
      let answered = false;
      const timer = setTimeout(
        () => request.destroy(new Error(`no answer within ${HTTP_TIMEOUT_MS} ms`)),
        Math.max(0, timeoutMs),
      );
      const fail = (error: Error) => {
        clearTimeout(timer);
        // Reset on a kept connection before any answer: the backend closed it meanwhile.
        if (!answered && request.reusedSocket) Object.assign(error, { reusedSocket: true });
        reject(error);
      };
      request.on('error', fail);
      request.on('response', (response: IncomingMessage) => {
        answered = true;
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', (cause) => {
          clearTimeout(timer);
          reject(
            new BatonError('BACKEND_UNREACHABLE', `The backend's answer to ${method} ${url.pathname} was cut short`, {
              cause,
            }),
          );
        });
        response.on('end', () => {
          clearTimeout(timer);
          if (!response.complete) {
            reject(
              new BatonError('BACKEND_UNREACHABLE', `The backend's answer to ${method} ${url.pathname} was cut short`),
            );
            return;
          }
          resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
        });
      });
      request.end(body);
    });
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

/** Reads a console API response: the body on 2xx (checked against `schema`), a BatonError otherwise. */
export async function parseResponse<S extends z.ZodType>(
  response: Response,
  schema: S,
  what: string,
): Promise<z.infer<S>> {
  let text: string;
  try {
    text = await response.text();
  } catch (cause) {
    throw new BatonError('BACKEND_UNREACHABLE', `The backend's answer to ${what} was cut short`, { cause });
  }
  return parseAnswer(response.status, text, schema, what);
}

/** An answer's status and body: the body on 2xx (checked against `schema`), a BatonError otherwise. */
export function parseAnswer<S extends z.ZodType>(status: number, text: string, schema: S, what: string): z.infer<S> {
  if (status < 200 || status > 299) throw refusal(status, text);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new BatonError('BACKEND_PROTOCOL_ERROR', `The backend's answer to ${what} is not JSON`, { cause });
  }
  const result = schema.safeParse(json);
  if (!result.success) {
    throw new BatonError('BACKEND_PROTOCOL_ERROR', `The backend's answer to ${what} has an unexpected shape`, {
      cause: result.error,
    });
  }
  return result.data;
}

/** The backend's error body as a BatonError with its stable code (or a protocol error when it has none). */
function refusal(status: number, text: string): BatonError {
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    const code = body.error?.code;
    if (isErrorCode(code)) {
      return new BatonError(code, typeof body.error?.message === 'string' ? body.error.message : code);
    }
  } catch {
    // fall through
  }
  if (status === 502 || status === 503 || status === 504) {
    return new BatonError('BACKEND_UNREACHABLE', `The backend answered ${status}`);
  }
  return new BatonError('BACKEND_PROTOCOL_ERROR', `The backend answered ${status} without an error code`);
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data as ArrayBuffer).toString('utf8');
}
