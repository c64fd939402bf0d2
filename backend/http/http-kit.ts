import type { IncomingMessage, ServerResponse } from 'node:http';
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

/** Reads the raw body, refusing more than `limit` bytes without buffering them. */
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
        failed = true;
        reject(new BatonError('PAYLOAD_TOO_LARGE', `The body exceeds ${limit} bytes`));
        req.pause();
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

export function sendError(res: ServerResponse, error: unknown, logger: Logger, now: number): void {
  const baton = error instanceof BatonError ? error : new BatonError('INTERNAL', 'Internal error', { cause: error });
  if (baton.code === 'INTERNAL') logger.error({ err: error }, 'request failed');
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const retryAfter = baton.extra?.retryAfterSeconds;
  if (typeof retryAfter === 'number') res.setHeader('retry-after', String(retryAfter));
  if (baton.code === 'PAYLOAD_TOO_LARGE') {
    // Do not keep reading the rest of an oversized body: answer, then close the connection.
    res.shouldKeepAlive = false;
    res.setHeader('connection', 'close');
    res.once('finish', () => res.socket?.destroy());
  }
  sendJson(res, baton.status, errorBody(baton, now));
}
