import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { z } from 'zod';
import { BatonError, isErrorCode } from '../../shared/errors.js';
import type { Clock } from './clock.js';
import type { ConsoleKey } from './console-key.js';

export const HTTP_TIMEOUT_MS = 10_000;
/** Signed HTTP requests in flight at once to the backend (a tap makes one at a time). */
const MAX_HTTP_SOCKETS = 8;

export interface SignedHttpOptions {
  backendUrl: string;
  key: ConsoleKey;
  consoleId: string;
  clock: Clock;
}

/**
 * The console's signed HTTP requests to the backend's console API, each signed with the console key
 * (method, path, body, time and a fresh nonce) and its answer checked against a schema. Keep-alive
 * connections through node:http, not `fetch`: undici's fetch costs ~0.6 ms more per request than
 * node:http on a kept connection (docs/benchmarks.md §7, 2026-12-05). Idle sockets do not keep the
 * process alive.
 */
export class SignedHttp {
  private readonly agent: HttpAgent;
  private readonly secure: boolean;

  constructor(private readonly options: SignedHttpOptions) {
    this.secure = new URL(options.backendUrl).protocol === 'https:';
    this.agent = this.secure
      ? new HttpsAgent({ keepAlive: true, maxSockets: MAX_HTTP_SOCKETS })
      : new HttpAgent({ keepAlive: true, maxSockets: MAX_HTTP_SOCKETS });
  }

  /** Idle kept connections go; a request still in flight finishes on its own. */
  closeIdle(): void {
    for (const sockets of Object.values(this.agent.freeSockets)) for (const socket of sockets ?? []) socket.destroy();
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
        agent: this.agent,
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
export function refusal(status: number, text: string): BatonError {
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
