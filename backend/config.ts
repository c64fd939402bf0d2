import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { BatonError } from '../shared/errors.js';
import { toFieldIssues } from '../shared/policy.js';
import { isAddressOrNetwork } from './http/client-address.js';
import { SiemConfigSchema } from './siem/config.js';
import { SsfTransmitterConfigSchema } from './ssf/transmitter/config.js';

/** The most backend processes one host runs (`--workers`). */
export const MAX_WORKERS = 64;

const DATABASE_URL_EXPECTED = 'expected a postgres:// or postgresql:// URL (PostgreSQL is the only cluster engine)';

/**
 * Backend configuration: defaults < config file (`--config` or BATON_CONFIG) < environment
 * (BATON_*) < command-line flags. Validated once, then frozen.
 */
export const BackendConfigSchema = z.strictObject({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.int().min(0).max(65535).default(8470),
  dataDir: z.string().min(1).default('./data'),
  /** WebAuthn relying party id: `localhost` for the default agent, or the deployment's domain. */
  rpId: z.string().min(1).max(253).default('localhost'),
  rpName: z.string().min(1).max(100).default('Baton'),
  /** Exact origins the console renderers run on; WebAuthn responses from any other are refused. */
  origins: z
    .array(z.url({ protocol: /^https?$/ }))
    .min(1)
    .default(['http://localhost:8471']),
  /**
   * The admin console's origin: admin passkey ceremonies must run there, and cookie-authenticated
   * admin requests must come from there. Default: `http://localhost:<the port the backend listens on>`.
   */
  adminOrigin: z.url({ protocol: /^https?$/ }).optional(),
  /** Where the built admin console (index.html, admin.js, admin.css) is served from under `/admin/`. */
  adminConsoleDir: z.string().min(1).optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Where the bootstrap admin token is written (mode 0600) on first start, besides the terminal. */
  bootstrapTokenFile: z.string().min(1).optional(),
  challengeTtlSeconds: z.int().min(10).max(600).default(120),
  consoleTokenTtlSeconds: z
    .int()
    .min(60)
    .max(30 * 24 * 3600)
    .default(24 * 3600),
  enrolmentCodeTtlSeconds: z
    .int()
    .min(60)
    .max(7 * 24 * 3600)
    .default(24 * 3600),
  heartbeatSeconds: z.int().min(1).max(300).default(15),
  /** A console socket that has not sent `hello` within this time is closed (4006). */
  helloTimeoutSeconds: z.int().min(1).max(60).default(10),
  /** Every chain head is signed this often (only when one moved) and on shutdown. */
  checkpointIntervalSeconds: z.int().min(1).max(3600).default(60),
  /** The checkpoint signing key is replaced once it is this old (0: only when an admin rotates it). */
  checkpointKeyRotationDays: z.int().min(0).max(3650).default(90),
  /** The assurance-token signing key is replaced once it is this old (0: only when an admin rotates it). */
  tokenKeyRotationDays: z.int().min(0).max(3650).default(30),
  /** A live-stream reader that takes nothing for this long (its socket full) is disconnected. */
  eventStreamStallSeconds: z.int().min(1).max(600).default(30),
  /**
   * A live stream writes a keep-alive comment this often, and re-checks that its admin session is still
   * valid (below the idle timeout of any proxy between the admin console and the backend).
   */
  eventStreamKeepAliveSeconds: z.int().min(1).max(3600).default(15),
  /** The continuous export to the SIEM (config file only): backend/siem/config.ts, docs/siem.md. */
  siem: SiemConfigSchema.default({ sinks: [] }),
  /** The Shared Signals transmitter (config file; `defaultSubjects` also BATON_SSF_DEFAULT_SUBJECTS): backend/ssf/transmitter/config.ts, docs/shared-signals.md. */
  ssf: SsfTransmitterConfigSchema.prefault({}),
  /** The start-up database integrity check (`PRAGMA quick_check`) is abandoned after this. */
  integrityCheckSeconds: z.int().min(1).max(3600).default(60),
  /**
   * PEM bundle of authenticator vendors' attestation root certificates. Only credentials whose
   * attestation chains to one of them count as attested (required for the `hardware` level).
   */
  attestationRootsFile: z.string().min(1).optional(),
  /**
   * A FIDO Metadata Service (MDS3) BLOB file, read and verified at start when newer than the one
   * stored (admins can also upload one: POST /v1/admin/authenticator-metadata). Never fetched.
   */
  mdsBlobFile: z.string().min(1).optional(),
  /** PEM bundle of metadata trust anchors. Default: the FIDO MDS roots SimpleWebAuthn ships (GlobalSign R3, R46). */
  mdsRootsFile: z.string().min(1).optional(),
  /** SQLite `synchronous`: FULL survives power loss; NORMAL survives a killed process only. */
  durability: z.enum(['full', 'normal']).default('full'),
  /**
   * Reverse proxies (addresses or networks: `10.0.0.5`, `10.0.0.0/8`, `fd00::/8`) whose
   * `X-Forwarded-For` is believed when one of them is the TCP peer. Default: none, so a client is the
   * socket's address and `X-Forwarded-For` is ignored. Per-client limits and the audit trail use it.
   */
  trustProxy: z
    .array(z.string().refine(isAddressOrNetwork, 'expected an IP address or network such as 10.0.0.0/8'))
    .max(64)
    .default([]),
  /** HTTP limits (seconds, fractions allowed): a request's headers must arrive within this. */
  headersTimeoutSeconds: z.number().min(0.05).max(300).default(10),
  /** The whole request, headers and body, must arrive within this (at least `headersTimeoutSeconds`). */
  requestTimeoutSeconds: z.number().min(0.05).max(600).default(30),
  /** A keep-alive connection with no request in progress is closed after this. */
  keepAliveTimeoutSeconds: z.number().min(0.05).max(600).default(5),
  /**
   * The PostgreSQL database of a cluster (`postgres://` or `postgresql://`). Absent: the embedded
   * SQLite database in `dataDir`. Never logged as given: use `redactedDatabaseUrl()`.
   */
  databaseUrl: z.string().max(4096).refine(isPostgresUrl, { message: DATABASE_URL_EXPECTED, abort: true }).optional(),
  /**
   * Backend processes on this host sharing the port (node:cluster). Default: the number of cores
   * with PostgreSQL, 1 with embedded SQLite (which refuses more: one writer). Filled in by
   * `parseBackendConfig`.
   */
  workers: z.int().min(1).max(MAX_WORKERS).optional(),
  /** A node whose view of revocations (the database, its notifications) is older than this is stale. */
  staleAfterSeconds: z.int().min(1).max(3600).default(10),
  /**
   * This process's id in the cluster (logs, node health, `/healthz`). Set by the CLI: `<host>:<pid>`
   * (a cluster worker always gets its own); a config file may name a single process.
   */
  nodeId: z
    .string()
    .min(1)
    .max(200)
    .regex(/^[A-Za-z0-9._:@-]+$/, 'expected letters, digits and . _ : @ -')
    .optional(),
});

export type BackendConfig = Readonly<Omit<z.infer<typeof BackendConfigSchema>, 'workers'> & { workers: number }>;

/** Whether `value` is a URL the `pg` driver takes: postgres:// or postgresql://. */
export function isPostgresUrl(value: string): boolean {
  if (!/^postgres(ql)?:\/\//i.test(value)) return false;
  try {
    new URL(value);
    return true;
  } catch {
    return false;
  }
}

/** Query parameters libpq and `pg` read secrets from; their values are never shown either. */
const SECRET_PARAMS = new Set(['password', 'sslpassword', 'sslkey', 'passfile']);

/**
 * The database URL with its password (and any secret query parameter) replaced by `***`: what logs,
 * errors and `/healthz` may show. Something that is not a URL gives `[unparseable database URL]`,
 * never the text itself.
 */
export function redactedDatabaseUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return '[unparseable database URL]';
  }
  const user = parsed.username === '' ? '' : `${parsed.username}${parsed.password === '' ? '' : ':***'}@`;
  const auth = user === '' && parsed.password !== '' ? ':***@' : user;
  const params = [...parsed.searchParams].map(
    ([key, value]) =>
      `${encodeURIComponent(key)}=${SECRET_PARAMS.has(key.toLowerCase()) ? '***' : encodeURIComponent(value)}`,
  );
  return `${parsed.protocol}//${auth}${parsed.host}${parsed.pathname}${params.length > 0 ? `?${params.join('&')}` : ''}`;
}

/** The storage engine a configuration selects. */
export function databaseEngine(config: Pick<BackendConfig, 'databaseUrl'>): 'sqlite' | 'postgres' {
  return config.databaseUrl === undefined ? 'sqlite' : 'postgres';
}

/** The default `workers`: every core with PostgreSQL (at most MAX_WORKERS), one with embedded SQLite. */
export function defaultWorkers(engine: 'sqlite' | 'postgres', cores: number = availableParallelism()): number {
  return engine === 'sqlite' ? 1 : Math.max(1, Math.min(MAX_WORKERS, cores));
}

const FLAG_NAMES = {
  host: 'host',
  port: 'port',
  'data-dir': 'dataDir',
  'rp-id': 'rpId',
  'rp-name': 'rpName',
  origin: 'origins',
  'admin-origin': 'adminOrigin',
  'log-level': 'logLevel',
  'bootstrap-token-file': 'bootstrapTokenFile',
  'attestation-roots': 'attestationRootsFile',
  'mds-blob': 'mdsBlobFile',
  'mds-roots': 'mdsRootsFile',
  durability: 'durability',
  'trust-proxy': 'trustProxy',
  database: 'databaseUrl',
  workers: 'workers',
  'stale-after-seconds': 'staleAfterSeconds',
} as const;

const ENV_NAMES: Record<string, keyof z.infer<typeof BackendConfigSchema>> = {
  BATON_HOST: 'host',
  BATON_PORT: 'port',
  BATON_DATA_DIR: 'dataDir',
  BATON_RP_ID: 'rpId',
  BATON_ORIGINS: 'origins',
  BATON_ADMIN_ORIGIN: 'adminOrigin',
  BATON_LOG_LEVEL: 'logLevel',
  BATON_BOOTSTRAP_TOKEN_FILE: 'bootstrapTokenFile',
  BATON_ATTESTATION_ROOTS: 'attestationRootsFile',
  BATON_MDS_BLOB: 'mdsBlobFile',
  BATON_MDS_ROOTS: 'mdsRootsFile',
  BATON_DURABILITY: 'durability',
  BATON_TRUST_PROXY: 'trustProxy',
  BATON_DATABASE_URL: 'databaseUrl',
  BATON_WORKERS: 'workers',
  BATON_STALE_AFTER_SECONDS: 'staleAfterSeconds',
};

/** Environment variables for one member of a section of the config file: `BATON_SSF_DEFAULT_SUBJECTS` is `ssf.defaultSubjects`. */
const SECTION_ENV_NAMES: Record<string, readonly [section: 'ssf', key: string]> = {
  BATON_SSF_DEFAULT_SUBJECTS: ['ssf', 'defaultSubjects'],
};

const NUMERIC = new Set(['port', 'workers', 'staleAfterSeconds']);

function coerce(key: string, value: string): unknown {
  if (key === 'origins' || key === 'trustProxy')
    return value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  if (NUMERIC.has(key) && /^\d+$/.test(value)) return Number(value);
  return value;
}

export function parseBackendConfig(input: unknown, source: string): BackendConfig {
  const result = BackendConfigSchema.safeParse(input);
  if (!result.success) {
    const issues = toFieldIssues(result.error);
    throw new BatonError(
      'SCHEMA_INVALID',
      `Invalid backend configuration (${source}): ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
      { issues },
    );
  }
  const engine = databaseEngine(result.data);
  if (engine === 'sqlite' && result.data.workers !== undefined && result.data.workers > 1) {
    const issues = [
      {
        path: 'workers',
        message: `embedded SQLite runs one backend process (one SQLite writer per database file); ${result.data.workers} workers need PostgreSQL (--database postgres://… or BATON_DATABASE_URL)`,
      },
    ];
    throw new BatonError(
      'SCHEMA_INVALID',
      `Invalid backend configuration (${source}): workers: ${issues[0]?.message ?? ''}`,
      { issues },
    );
  }
  return Object.freeze({
    ...result.data,
    workers: result.data.workers ?? defaultWorkers(engine),
    origins: Object.freeze([...result.data.origins]) as string[],
    trustProxy: Object.freeze([...result.data.trustProxy]) as string[],
  });
}

export function loadBackendConfig(argv: string[], env: NodeJS.ProcessEnv): BackendConfig {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      'data-dir': { type: 'string' },
      'rp-id': { type: 'string' },
      'rp-name': { type: 'string' },
      origin: { type: 'string', multiple: true },
      'admin-origin': { type: 'string' },
      'log-level': { type: 'string' },
      'bootstrap-token-file': { type: 'string' },
      'attestation-roots': { type: 'string' },
      'mds-blob': { type: 'string' },
      'mds-roots': { type: 'string' },
      durability: { type: 'string' },
      'trust-proxy': { type: 'string', multiple: true },
      database: { type: 'string' },
      workers: { type: 'string' },
      'stale-after-seconds': { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });

  let merged: Record<string, unknown> = {};
  const sources: string[] = ['defaults'];
  const configPath = values.config ?? env.BATON_CONFIG;
  if (configPath !== undefined) {
    const file = resolve(configPath);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (cause) {
      throw new BatonError('NOT_FOUND', `Cannot read the config file ${file}`, { cause });
    }
    try {
      merged = { ...(JSON.parse(text) as Record<string, unknown>) };
    } catch (cause) {
      throw new BatonError('BAD_JSON', `The config file ${file} is not valid JSON`, { cause });
    }
    sources.push(file);
  }
  for (const [name, key] of Object.entries(ENV_NAMES)) {
    const value = env[name];
    if (value !== undefined && value !== '') {
      merged[key] = coerce(key, value);
      sources.push(name);
    }
  }
  for (const [name, [section, key]] of Object.entries(SECTION_ENV_NAMES)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    const current = merged[section];
    // Over the file's section, member by member (a section the file got wrong is left for the schema to refuse).
    if (current === undefined || (current !== null && typeof current === 'object' && !Array.isArray(current))) {
      merged[section] = { ...(current as Record<string, unknown> | undefined), [key]: value };
    }
    sources.push(name);
  }
  for (const [flag, key] of Object.entries(FLAG_NAMES)) {
    const value = values[flag as keyof typeof values];
    if (value === undefined) continue;
    merged[key] = Array.isArray(value) ? value : coerce(key, value);
    sources.push(`--${flag}`);
  }
  return parseBackendConfig(merged, sources.join(' < '));
}
