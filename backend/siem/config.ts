import { isIP } from 'node:net';
import { z } from 'zod';

/**
 * The `siem` section of the backend's config file: where the continuous export goes. Secrets (an HTTP
 * collector's token, a TLS client key) are named by file, never written in the config itself.
 * Unencrypted transport (syslog over plain TCP, an `http:` collector) is accepted only to a relay on
 * the same host (a loopback address or `localhost`).
 */

const LOOPBACK_NAMES = new Set(['localhost', '::1', '[::1]']);

/** Whether `host` is this machine (where an unencrypted hop to a local relay is acceptable). */
export function isLoopbackHost(host: string): boolean {
  if (LOOPBACK_NAMES.has(host.toLowerCase())) return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

const SinkName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,39}$/, 'expected a name of lower-case letters, digits and -, at most 40');

const Common = {
  name: SinkName,
  /** A new sink starts at the first stored event (`beginning`, default) or at the newest (`now`). */
  startAt: z.enum(['beginning', 'now']).default('beginning'),
  /** Records per batch (one write or one POST). */
  batchSize: z.int().min(1).max(5000).default(500),
  /** Connection and answer timeout. */
  timeoutSeconds: z.number().min(0.1).max(120).default(10),
};

export const SyslogSinkSchema = z
  .strictObject({
    ...Common,
    kind: z.literal('syslog'),
    host: z.string().min(1).max(253),
    /** 6514: syslog over TLS (RFC 5425). */
    port: z.int().min(1).max(65535).default(6514),
    /** TLS (default, with the system's CAs unless `caFile`), or `false` for plain TCP to a local relay. */
    tls: z
      .union([
        z.literal(false),
        z.strictObject({
          caFile: z.string().min(1).optional(),
          certFile: z.string().min(1).optional(),
          keyFile: z.string().min(1).optional(),
          servername: z.string().min(1).max(253).optional(),
        }),
      ])
      .default({}),
    /** RFC 5424 facility: 10 (authpriv) by default; 16–23 are local0–local7. */
    facility: z.int().min(0).max(23).default(10),
    appName: z
      .string()
      .regex(/^[\x21-\x7e]{1,48}$/)
      .default('baton'),
    /** Syslog over TCP has no acknowledgement: a batch counts once the connection stayed up this long after it. */
    settleMs: z.int().min(0).max(10_000).default(200),
  })
  .refine((sink) => sink.tls !== false || isLoopbackHost(sink.host), {
    message: 'plain TCP (tls: false) is only allowed to a relay on this host (127.0.0.1, ::1 or localhost)',
    path: ['tls'],
  })
  .refine((sink) => sink.tls === false || (sink.tls.certFile === undefined) === (sink.tls.keyFile === undefined), {
    message: 'a TLS client certificate needs both certFile and keyFile',
    path: ['tls'],
  });

export const HttpSinkSchema = z
  .strictObject({
    ...Common,
    kind: z.literal('http'),
    url: z.url({ protocol: /^https?$/ }),
    /** A file holding the bearer token the collector expects. */
    tokenFile: z.string().min(1).optional(),
    /** PEM bundle for a collector whose certificate a private CA issued. */
    caFile: z.string().min(1).optional(),
  })
  .refine((sink) => new URL(sink.url).protocol === 'https:' || isLoopbackHost(new URL(sink.url).hostname), {
    message: 'an http: collector is only allowed on this host; use https:',
    path: ['url'],
  });

export const SiemConfigSchema = z
  .strictObject({
    sinks: z
      .array(z.discriminatedUnion('kind', [SyslogSinkSchema, HttpSinkSchema]))
      .max(16)
      .default([]),
  })
  .refine((siem) => new Set(siem.sinks.map((sink) => sink.name)).size === siem.sinks.length, {
    message: 'two sinks have the same name',
    path: ['sinks'],
  });

export type SiemConfig = z.infer<typeof SiemConfigSchema>;
export type SiemSinkConfig = SiemConfig['sinks'][number];
