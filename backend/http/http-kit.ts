import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { BatonError, type ErrorBody } from '../../shared/errors.js';
import { MAX_HTTP_BODY_BYTES } from '../../shared/http-api.js';
import { toFieldIssues } from '../../shared/policy.js';

export const SECURITY_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'cross-origin-resource-policy': 'same-origin',
} as const;

/** Reads the raw body, refusing more than `limit` bytes without keeping them. */
export function readBody(req: IncomingMessage, limit = MAX_HTTP_BODY_BYTES): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > limit) {
      reject(new BatonError('PAYLOAD_TOO_LARGE', `The body is ${declared} bytes; at most ${limit} are accepted`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        // Nothing more is kept: the rest is read only to be discarded while the 413 goes out
        // (see `lingeringClose`), and the connection is closed after it.
        failed = true;
        chunks.length = 0;
        reject(new BatonError('PAYLOAD_TOO_LARGE', `The body exceeds ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on('error', (error) => {
      if (!failed) reject(error);
    });
  });
}

/** Parses a JSON body and validates it; empty bodies parse as `{}`. */
export function parseJson<S extends z.ZodType>(req: IncomingMessage, body: Buffer, schema: S): z.infer<S> {
  let value: unknown = {};
  if (body.length > 0) {
    const type = req.headers['content-type'] ?? '';
    if (!/^application\/json(\s*;|$)/i.test(type)) {
      throw new BatonError('UNSUPPORTED_MEDIA_TYPE', `Expected content-type application/json, got "${type}"`);
    }
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch (cause) {
      throw new BatonError('BAD_JSON', 'The body is not valid JSON', { cause });
    }
  }
  return parseWith(schema, value);
}

export function parseWith<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issues = toFieldIssues(result.error);
    throw new BatonError(
      'SCHEMA_INVALID',
      `The request does not match its schema: ${issues
        .slice(0, 3)
        .map((i) => `${i.path}: ${i.message}`)
        .join('; ')}`,
      { issues },
    );
  }
  return result.data;
}

let dateSecond = Number.NaN;
let dateText = '';

/**
 * The `Date` header for an answer, on the backend's clock (Node's own header reads the OS clock). The admin
 * console reads it to compute its time ranges on the backend's clock (admin/server-clock.ts). Formatted once a second.
 */
export function httpDate(now: number): string {
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(second * 1000).toUTCString();
  }
  return dateText;
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(data),
  });
  res.end(data);
}

export function errorBody(error: BatonError, now: number): ErrorBody {
  return {
    error: {
      code: error.code,
      message: error.message,
      ...(error.issues === undefined ? {} : { issues: error.issues }),
      ...(error.code === 'CONSOLE_SIGNATURE_STALE' ? { serverTime: now } : {}),
      ...(error.extra?.decision === undefined ? {} : { decision: error.extra.decision }),
    },
  };
}

/** Node's codes for a database connection that failed or dropped. */
const CONNECTION_FAULTS: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * SQLite's answers to a statement it refuses as written: the same statement fails again on a retry. A
 * trigger's refusal (`SQLITE_CONSTRAINT_TRIGGER`: Baton's schema has none; a guard its administrator
 * added, as a test adds one to stand for a full disk) stays a storage fault, like PostgreSQL's `RAISE`
 * with an operational SQLSTATE.
 */
const SQLITE_REFUSED =
  /^SQLITE_(CONSTRAINT(_(PRIMARYKEY|UNIQUE|NOTNULL|CHECK|FOREIGNKEY|DATATYPE|ROWID|PINNED))?|ERROR|MISMATCH|RANGE|MISUSE|TOOBIG)$/;

/**
 * What a request tells its client when the store could not do its work, whatever the engine:
 * `DATABASE_UNREACHABLE` (503) for PostgreSQL (SQLSTATE classes 08 connection, 40 rollback such as a
 * deadlock or serialization failure, 53 resources, 57 operator intervention such as a shutdown, 58
 * system; a connection that failed, dropped or timed out), `STORAGE_UNAVAILABLE` (503) for SQLite
 * (full, read-only, I/O, busy) and for a PostgreSQL that answers but accepts no writes (SQLSTATE 25006
 * read_only_sql_transaction: a standby in recovery after a failover that DNS has not followed yet, or
 * `default_transaction_read_only`). Undefined for anything else, a statement the database refused as
 * such included (a key, a constraint, a type, SQL it cannot run: `SQLITE_REFUSED`, as PostgreSQL's
 * classes 22, 23 and 42 are left out): retrying would not help, so it is the server's fault, as on
 * PostgreSQL. (A damaged SQLite page is mapped to `DATABASE_DAMAGED` before this, by the server.) The
 * client retries later: a clear code, not a 500. Why (a full disk, a read-only database or a standby, an I/O error)
 * is for the log, which has the driver's own error (`sendError`), and /healthz: a caller, signed in or not, learns
 * no more than that the database is unavailable.
 */
export function storageFault(error: unknown): BatonError | undefined {
  if (!(error instanceof Error)) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && code.startsWith('SQLITE_')) {
    if (SQLITE_REFUSED.test(code)) return undefined;
    return new BatonError('STORAGE_UNAVAILABLE', 'The backend cannot use its database; retry later', { cause: error });
  }
  if (code === '25006') {
    return new BatonError('STORAGE_UNAVAILABLE', 'The backend cannot use its database; retry later', { cause: error });
  }
  const pg =
    (typeof code === 'string' &&
      (/^(08|40|53|57|58)[0-9A-Z]{3}$/.test(code) ||
        // The server ended a transaction left idle past idle_in_transaction_session_timeout (a stalled node).
        code === '25P03' ||
        CONNECTION_FAULTS.has(code))) ||
    // node-postgres' own errors carry no code: a connection that ended or is no longer usable, or none to be had in time.
    /^(Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect|Query read timeout)/.test(
      error.message,
    );
  return pg
    ? new BatonError('DATABASE_UNREACHABLE', 'The backend cannot reach its database; retry later', { cause: error })
    : undefined;
}

/** How an error is written once `sendError` has logged it and set its headers (Baton's JSON shape by default). */
export type ErrorAnswer = (res: ServerResponse, error: BatonError, now: number) => void;

export const answerJsonError: ErrorAnswer = (res, error, now) => sendJson(res, error.status, errorBody(error, now));

export function sendError(
  res: ServerResponse,
  error: unknown,
  logger: Logger,
  now: number,
  answer: ErrorAnswer = answerJsonError,
): void {
  const fault = error instanceof BatonError ? undefined : storageFault(error);
  const baton =
    error instanceof BatonError ? error : (fault ?? new BatonError('INTERNAL', 'Internal error', { cause: error }));
  if (baton.code === 'INTERNAL') logger.error({ err: error }, 'request failed');
  else if (fault !== undefined) logger.error({ err: error, code: fault.code }, 'request failed: the database');
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const retryAfter = baton.extra?.retryAfterSeconds;
  if (typeof retryAfter === 'number') res.setHeader('retry-after', String(retryAfter));
  if (baton.code === 'PAYLOAD_TOO_LARGE' || baton.code === 'REQUEST_TIMEOUT') {
    // The rest of the body is not read as part of the request: answer, then close the connection.
    res.shouldKeepAlive = false;
    res.setHeader('connection', 'close');
    const socket = res.socket;
    if (socket !== null) res.once('finish', () => lingeringClose(socket));
  }
  answer(res, baton, now);
}

/** How long a connection closed while its client may still be sending is drained before it is dropped. */
export const LINGER_MS = 2000;

/**
 * Closes a connection whose client may still be sending (an oversized or late body) without
 * losing the answer just written to it. Closing a socket with unread input makes the kernel send a
 * reset, and a client that gets the reset before it has read the answer sees only "connection
 * reset". So, as web servers do (Apache's and nginx's lingering close): end our side (FIN after the
 * answer), read and discard whatever still arrives, and drop the connection when the client closes
 * its side or after `LINGER_MS`, whichever comes first.
 */
export function lingeringClose(socket: Socket): void {
  // Node's own close after a `Connection: close` answer destroys the socket as soon as our FIN is
  // out, unread input or not; this takes its place.
  // (`destroySoon` registers the socket's own `destroy` method, so that is what is removed.)
  // eslint-disable-next-line @typescript-eslint/unbound-method
  socket.removeListener('finish', socket.destroy);
  if (socket.destroyed) return;
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.once('end', () => socket.destroy());
  socket.on('data', () => undefined);
  socket.end();
  socket.resume();
}
