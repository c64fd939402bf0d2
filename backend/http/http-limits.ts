import type { IncomingMessage, Server, ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { BatonError } from '../../shared/errors.js';
import { SECURITY_HEADERS, errorBody, sendError, type ErrorAnswer } from './http-kit.js';

export interface HttpLimitSettings {
  headersTimeoutSeconds: number;
  requestTimeoutSeconds: number;
  keepAliveTimeoutSeconds: number;
}

/**
 * The connection limits docs/api.md promises: a request's headers within `headersTimeoutSeconds`,
 * the whole request (body included) within `requestTimeoutSeconds`, an idle keep-alive connection
 * closed after `keepAliveTimeoutSeconds`. Node checks the first two on a timer
 * (`connectionsCheckingInterval`, 30 s by default, which held half-sent requests for up to 30 s past
 * their limit); here it runs at a tenth of the headers limit (at most every second), so a limit is
 * enforced within 10 % of its value. A request that runs out of time is answered
 * `408 REQUEST_TIMEOUT` (JSON, `Connection: close`) and its connection closed; a connection that
 * never sent a byte is closed without an answer.
 */
export class HttpLimits {
  private readonly inFlight = new WeakMap<Socket, ServerResponse>();

  constructor(
    private readonly settings: HttpLimitSettings,
    private readonly logger: Logger,
    private readonly clock: () => number,
    /** How a request's refusal is written, by its path (SCIM's shape under /scim/v2); Baton's JSON when undefined. */
    private readonly answerFor: (req: IncomingMessage) => ErrorAnswer | undefined = () => undefined,
  ) {}

  get serverOptions(): ServerOptions {
    const headersTimeout = Math.round(this.settings.headersTimeoutSeconds * 1000);
    const requestTimeout = Math.max(headersTimeout, Math.round(this.settings.requestTimeoutSeconds * 1000));
    return {
      headersTimeout,
      requestTimeout,
      connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.round(headersTimeout / 10))),
    };
  }

  /** Sets the keep-alive limit and answers the requests that run out of time. */
  apply(server: Server): void {
    server.keepAliveTimeout = Math.round(this.settings.keepAliveTimeoutSeconds * 1000);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const socket = req.socket;
      this.inFlight.set(socket, res);
      res.once('close', () => {
        if (this.inFlight.get(socket) === res) this.inFlight.delete(socket);
      });
    });
    server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => this.clientError(error, socket));
  }

  private clientError(error: NodeJS.ErrnoException, socket: Socket): void {
    if (error.code !== 'ERR_HTTP_REQUEST_TIMEOUT') {
      socket.destroy();
      return;
    }
    const res = this.inFlight.get(socket);
    if (res !== undefined) {
      // The headers came in time, the body did not: answer on the response the handler holds.
      const seconds = this.serverOptions.requestTimeout! / 1000;
      const timeout = new BatonError('REQUEST_TIMEOUT', `The request did not arrive completely within ${seconds} s`);
      if (res.headersSent) socket.destroy();
      else sendError(res, timeout, this.logger, this.clock(), this.answerFor(res.req));
      return;
    }
    if (socket.bytesRead === 0 || !socket.writable) {
      socket.destroy(); // an idle connection: nothing was asked, nothing to answer
      return;
    }
    const seconds = this.serverOptions.headersTimeout! / 1000;
    const timeout = new BatonError('REQUEST_TIMEOUT', `The request headers did not arrive within ${seconds} s`);
    const body = JSON.stringify(errorBody(timeout, this.clock()));
    const head = [
      'HTTP/1.1 408 Request Timeout',
      ...Object.entries(SECURITY_HEADERS).map(([name, value]) => `${name}: ${value}`),
      'content-type: application/json; charset=utf-8',
      `content-length: ${Buffer.byteLength(body)}`,
      'connection: close',
    ];
    socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
    socket.once('finish', () => socket.destroy());
  }
}
