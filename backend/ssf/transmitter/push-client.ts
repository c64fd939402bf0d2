import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { SET_CONTENT_TYPE } from '../set.js';

/**
 * The RFC 8935 push client: one `POST` of `application/secevent+jwt` per SET over kept-alive HTTP/1.1
 * connections (node:net, node:tls with the system's CAs), written by hand because a push is the same small
 * request every time and node:http's general machinery (a ClientRequest, an IncomingMessage, their streams
 * and events, the agent's pool bookkeeping) cost about twice the CPU of the request itself (measured: 50–65 µs
 * per POST against 23–30; docs/benchmarks.md "Shared Signals").
 *
 * What it does, and only this: the request in one write (request line, Host, Content-Type, Accept,
 * Content-Length, the stream's Authorization if any, the body); the answer's status and at most
 * `MAX_ANSWER_BYTES` of its body (RFC 8935 §2.3's error JSON), with a body framed by Content-Length,
 * chunked transfer coding or the connection's end; 1xx interim answers skipped; a redirect is an answer
 * like any other (never followed); a connection is reused only when the answer said it may be (HTTP/1.1
 * without `Connection: close`, HTTP/1.0 with keep-alive) and its body was read to its end. A push that
 * fails on a connection reused from the pool before any byte of the answer came (the receiver closed it
 * meanwhile) is sent once more on a new connection, unless its time is up (a receiver that is only slow does
 * not get it twice). Every push ends about `timeoutMs` after it started (connecting, TLS, writing and the whole
 * answer; judged by one interval for all of them, not a timer per push, up to a quarter of `timeoutMs` or 1 s
 * late, and after reading what the connection holds).
 */

export interface PushAnswer {
  status: number;
  /** The answer's body (at most MAX_ANSWER_BYTES of it), as UTF-8. */
  text: string;
}

/** A push endpoint parsed once per stream (not per SET). */
export interface PushEndpoint {
  secure: boolean;
  host: string;
  port: number;
  /** The request head, up to the Content-Length value. */
  head: string;
  /** The pool's key: connections are shared by pushes to the same origin. */
  origin: string;
}

export const MAX_ANSWER_BYTES = 16 * 1024;
/** A body longer than this is not read to its end: the connection is closed instead. */
const MAX_DRAINED_BYTES = 1024 * 1024;
const MAX_HEAD_BYTES = 64 * 1024;
/**
 * An idle connection is not reused after this long (Node's servers close idle connections after 5 s by
 * default, others after more): one the receiver may be closing is not worth the retry.
 */
const IDLE_MS = 4000;

/** A header value we send: visible ASCII, space and tab (no CR, LF or NUL: no header injection). */
const HEADER_VALUE = /^[\t\x20-\x7e]*$/;

export function pushEndpoint(endpointUrl: string, authorization?: string): PushEndpoint {
  const url = new URL(endpointUrl);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`not an http(s) URL: ${url.protocol}`);
  if (authorization !== undefined && !HEADER_VALUE.test(authorization)) {
    throw new Error('the authorization_header has a character not allowed in an HTTP header');
  }
  const secure = url.protocol === 'https:';
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? (secure ? 443 : 80) : Number(url.port);
  const head =
    `POST ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: ${SET_CONTENT_TYPE}\r\n` +
    `Accept: application/json\r\n${authorization === undefined ? '' : `Authorization: ${authorization}\r\n`}` +
    'Content-Length: ';
  return { secure, host, port, head, origin: `${secure ? 's' : ''}${host}:${port}` };
}

class PushFailed extends Error {
  /** Failed on a reused connection before any byte of the answer: worth once more on a new one. */
  retry = false;
}

type Framing = 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-end' | 'trailers' | 'close';

/** One kept-alive connection: at most one push at a time on it. */
class Connection {
  /** Pushes this connection has answered (0: new). */
  served = 0;
  idleSince = 0;
  deadline = 0;
  private resolve: ((answer: PushAnswer) => void) | undefined;
  private reject: ((error: Error) => void) | undefined;
  private buffered: Buffer | undefined;
  private framing: Framing = 'head';
  private status = 0;
  private reusable = false;
  private remaining = 0;
  private received = false;
  private body: Buffer[] | undefined;
  private bodySize = 0;
  private closed = false;

  constructor(
    readonly socket: Socket,
    readonly origin: string,
    private readonly released: (connection: Connection) => void,
    private readonly gone: (connection: Connection) => void,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.on('end', () => this.ended());
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.ended());
  }

  get busy(): boolean {
    return this.resolve !== undefined;
  }

  send(endpoint: PushEndpoint, body: string, deadline: number): Promise<PushAnswer> {
    return new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      this.deadline = deadline;
      this.framing = 'head';
      this.received = false;
      this.body = undefined;
      this.bodySize = 0;
      this.socket.write(`${endpoint.head}${Buffer.byteLength(body)}\r\n\r\n${body}`);
    });
  }

  /** Ends the push in flight (the watchdog: no answer in time) and the connection. */
  destroy(error?: Error): void {
    if (error !== undefined) this.fail(error);
    else this.close();
  }

  private read(chunk: Buffer): void {
    if (this.resolve === undefined) {
      // Bytes nobody asked for (an idle connection): this connection's framing can no longer be trusted.
      this.close();
      return;
    }
    this.received = true;
    const data = this.buffered === undefined ? chunk : Buffer.concat([this.buffered, chunk]);
    this.buffered = undefined;
    // Read by offset (no Buffer per step): an answer is most often one chunk of one head and no body.
    let at = 0;
    for (;;) {
      switch (this.framing) {
        case 'head': {
          const end = data.indexOf('\r\n\r\n', at);
          if (end === -1) {
            if (data.length - at > MAX_HEAD_BYTES) return this.fail(new Error('the answer head is too large'));
            return this.keep(data, at);
          }
          const error = this.head(data.toString('latin1', at, end));
          if (error !== undefined) return this.fail(new Error(error));
          at = end + 4;
          break;
        }
        case 'length': {
          const take = Math.min(this.remaining, data.length - at);
          this.collect(data, at, at + take);
          at += take;
          this.remaining -= take;
          if (this.remaining > 0) return;
          return this.complete(data.length - at);
        }
        case 'chunk-size': {
          const end = data.indexOf('\r\n', at);
          if (end === -1) {
            if (data.length - at > 4096) return this.fail(new Error('a chunk size line is too long'));
            return this.keep(data, at);
          }
          const size = (data.toString('latin1', at, end).split(';')[0] ?? '').trim();
          if (!/^[0-9a-fA-F]{1,8}$/.test(size)) return this.fail(new Error('a chunk size is not hexadecimal'));
          this.remaining = parseInt(size, 16);
          this.framing = this.remaining === 0 ? 'trailers' : 'chunk-data';
          at = end + 2;
          break;
        }
        case 'chunk-data': {
          const take = Math.min(this.remaining, data.length - at);
          this.collect(data, at, at + take);
          at += take;
          this.remaining -= take;
          if (this.remaining > 0) return;
          this.framing = 'chunk-end';
          break;
        }
        case 'chunk-end': {
          if (data.length - at < 2) return this.keep(data, at);
          if (data[at] !== 13 || data[at + 1] !== 10) return this.fail(new Error('a chunk does not end with CRLF'));
          at += 2;
          this.framing = 'chunk-size';
          break;
        }
        case 'trailers': {
          const end = data.indexOf('\r\n', at);
          if (end === -1) {
            if (data.length - at > MAX_HEAD_BYTES) return this.fail(new Error('the answer trailers are too large'));
            return this.keep(data, at);
          }
          const last = end === at;
          at = end + 2;
          if (last) return this.complete(data.length - at);
          break;
        }
        case 'close':
          this.collect(data, at, data.length);
          return;
      }
      if (this.bodySize > MAX_DRAINED_BYTES) {
        this.reusable = false;
        return this.complete(0);
      }
    }
  }

  private keep(data: Buffer, at: number): void {
    if (at < data.length) this.buffered = at === 0 ? data : data.subarray(at);
  }

  /** The answer's status line and headers; undefined when understood, else why not. */
  private head(text: string): string | undefined {
    const lines = text.split('\r\n');
    const status = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: |$)/.exec(lines[0] ?? '');
    if (status === null) return 'the receiver did not answer HTTP/1.x';
    const code = Number(status[2]);
    if (code === 101) return 'the receiver switched protocols';
    if (code < 200) return undefined; // an interim answer (100, 103): the final one follows
    let length: number | undefined;
    let chunked = false;
    let close = status[1] === '0';
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i] as string;
      const colon = line.indexOf(':');
      if (colon <= 0) return 'the answer has a malformed header';
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line
        .slice(colon + 1)
        .trim()
        .toLowerCase();
      if (name === 'content-length') {
        if (!/^\d{1,15}$/.test(value) || (length !== undefined && length !== Number(value))) {
          return 'the answer has an invalid Content-Length';
        }
        length = Number(value);
      } else if (name === 'transfer-encoding') {
        chunked = value.split(',').at(-1)?.trim() === 'chunked';
        if (!chunked) close = true; // the body ends with the connection
      } else if (name === 'connection') {
        const tokens = value.split(',').map((t) => t.trim());
        if (tokens.includes('close')) close = true;
        else if (tokens.includes('keep-alive')) close = status[1] === '0' ? false : close;
      }
    }
    this.status = code;
    this.reusable = !close;
    if (code === 204 || code === 304) {
      this.framing = 'length';
      this.remaining = 0;
    } else if (chunked) {
      // Both framings: Transfer-Encoding wins, and the connection is not reused (RFC 9112 §6.3).
      if (length !== undefined) this.reusable = false;
      this.framing = 'chunk-size';
    } else if (length !== undefined) {
      this.framing = 'length';
      this.remaining = length;
    } else {
      this.framing = 'close';
      this.reusable = false;
    }
    return undefined;
  }

  private collect(data: Buffer, from: number, to: number): void {
    if (to <= from) return;
    if (this.bodySize < MAX_ANSWER_BYTES) {
      (this.body ??= []).push(data.subarray(from, Math.min(to, from + MAX_ANSWER_BYTES - this.bodySize)));
    }
    this.bodySize += to - from;
  }

  /** `rest`: bytes received after the answer's end. */
  private complete(rest: number): void {
    const resolve = this.resolve;
    const body = this.body;
    this.resolve = undefined;
    this.reject = undefined;
    this.body = undefined;
    // Anything after the answer is not ours to read (nothing was pipelined): the connection is not reused.
    if (rest > 0) this.reusable = false;
    this.served++;
    if (this.reusable && !this.closed) this.released(this);
    else this.close();
    resolve?.({
      status: this.status,
      text:
        body === undefined ? '' : body.length === 1 ? (body[0] as Buffer).toString() : Buffer.concat(body).toString(),
    });
  }

  private ended(): void {
    if (this.resolve !== undefined && this.framing === 'close') {
      this.reusable = false;
      this.complete(0);
      return;
    }
    this.fail(new Error('the receiver closed the connection before the end of its answer'));
  }

  private fail(error: Error): void {
    const reject = this.reject;
    this.resolve = undefined;
    this.reject = undefined;
    this.body = undefined;
    this.buffered = undefined;
    if (reject !== undefined) {
      const failed = new PushFailed(error.message, { cause: error });
      failed.retry = this.served > 0 && !this.received;
      reject(failed);
    }
    this.close();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.gone(this);
    this.socket.destroy();
  }
}

export class PushClient {
  private readonly idle = new Map<string, Connection[]>();
  private readonly active = new Set<Connection>();
  private watchdog: NodeJS.Timeout | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private destroyed = false;

  constructor(
    readonly timeoutMs: number,
    /** TLS options for every connection (tests: a private CA); default: the system's CAs. */
    private readonly tls: ConnectionOptions = {},
  ) {}

  /** One push; rejects when the receiver could not be reached or its answer could not be read. */
  async post(endpoint: PushEndpoint, body: string): Promise<PushAnswer> {
    const deadline = performance.now() + this.timeoutMs;
    try {
      return await this.send(endpoint, body, deadline, false);
    } catch (error) {
      if (!(error instanceof PushFailed) || !error.retry || performance.now() >= deadline) throw error;
      // The receiver closed a kept connection meanwhile: once more, on a new one.
      return this.send(endpoint, body, deadline, true);
    }
  }

  /** Closes every connection (the transmitter stops). */
  destroy(): void {
    this.destroyed = true;
    clearInterval(this.watchdog);
    clearInterval(this.sweeper);
    for (const list of this.idle.values()) for (const c of [...list]) c.destroy();
    for (const c of [...this.active]) c.destroy(new Error('the transmitter stopped'));
  }

  private send(endpoint: PushEndpoint, body: string, deadline: number, fresh: boolean): Promise<PushAnswer> {
    if (this.destroyed) return Promise.reject(new Error('the transmitter stopped'));
    const connection = (fresh ? undefined : this.reuse(endpoint.origin)) ?? this.open(endpoint);
    connection.socket.ref();
    this.active.add(connection);
    this.watchdog ??= setInterval(() => this.check(), Math.min(1000, Math.max(25, this.timeoutMs / 4)));
    this.watchdog.unref();
    return connection.send(endpoint, body, deadline);
  }

  private reuse(origin: string): Connection | undefined {
    const list = this.idle.get(origin);
    if (list === undefined) return undefined;
    const now = performance.now();
    for (let c = list.pop(); c !== undefined; c = list.pop()) {
      if (now - c.idleSince < IDLE_MS) return c;
      c.destroy();
    }
    return undefined;
  }

  private open(endpoint: PushEndpoint): Connection {
    const socket = endpoint.secure
      ? tlsConnect({
          host: endpoint.host,
          port: endpoint.port,
          ...(isIP(endpoint.host) === 0 ? { servername: endpoint.host } : {}),
          ALPNProtocols: ['http/1.1'],
          ...this.tls,
        })
      : netConnect({ host: endpoint.host, port: endpoint.port });
    return new Connection(
      socket,
      endpoint.origin,
      (c) => this.release(c),
      (c) => this.forget(c),
    );
  }

  private release(connection: Connection): void {
    this.active.delete(connection);
    if (this.destroyed) {
      connection.destroy();
      return;
    }
    connection.idleSince = performance.now();
    connection.socket.unref();
    let list = this.idle.get(connection.origin);
    if (list === undefined) this.idle.set(connection.origin, (list = []));
    list.push(connection);
    if (this.sweeper === undefined) {
      this.sweeper = setInterval(() => this.sweep(), IDLE_MS);
      this.sweeper.unref();
    }
  }

  private forget(connection: Connection): void {
    this.active.delete(connection);
    const list = this.idle.get(connection.origin);
    const at = list?.indexOf(connection) ?? -1;
    if (list !== undefined && at !== -1) list.splice(at, 1);
  }

  /**
   * Ends every push past its deadline; stops when nothing is in flight (started again by the next push). The
   * verdict waits for one more turn of the loop's I/O: an answer that came while this process was frozen is read
   * first (the push then settled, or its connection carries a newer push with a later deadline).
   */
  private check(): void {
    const now = performance.now();
    const overdue = [...this.active].filter((c) => c.busy && c.deadline <= now);
    if (overdue.length > 0) {
      setImmediate(() => {
        for (const c of overdue) {
          if (c.busy && c.deadline <= now) c.destroy(new Error(`no answer within ${this.timeoutMs} ms`));
        }
      });
    }
    if (this.active.size === 0) {
      clearInterval(this.watchdog);
      this.watchdog = undefined;
    }
  }

  /** Closes connections idle for longer than IDLE_MS; stops when none is left. */
  private sweep(): void {
    const now = performance.now();
    for (const [origin, list] of this.idle) {
      for (const c of list.filter((c) => now - c.idleSince >= IDLE_MS)) c.destroy();
      if (list.length === 0) this.idle.delete(origin);
    }
    if (this.idle.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }
}
