import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { BatonError } from '../../shared/errors.js';
import { CHANNEL_NAME, toFieldIssues } from '../../shared/policy.js';

/**
 * The agent's machine-wide configuration, pushed by IT (file, registry-backed file or MDM profile
 * that writes it). Loaded once at start, validated, frozen. Environment overrides exist for
 * development only and are ignored by packaged builds.
 */
const loopbackOrHttps = (what: string) =>
  z.url().refine((value) => {
    const url = new URL(value);
    return url.protocol === 'https:' || (url.protocol === 'http:' && url.hostname === 'localhost');
  }, `expected an https URL, or http://localhost for ${what}`);

const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['localhost', '127.0.0.1', '[::1]']);

export const AgentConfigSchema = z.strictObject({
  /**
   * Where the assurance backend listens: https, or plain http only on this machine. The backend
   * does not sign its answers, so whoever can read and rewrite plain http between the console and
   * it is the backend: they could put any operator in front, push a policy, or acknowledge (and so
   * make the console drop) its audit events, and they would read the enrolment token.
   */
  backendUrl: z.url().refine((value) => {
    const url = new URL(value);
    return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname));
  }, 'expected an https URL, or http on this machine (localhost, 127.0.0.1, [::1]) for the backend'),
  /** The channel this console serves (`branch-kiosk`, `contact-centre`, `shared-console`, …). */
  channel: z.string().regex(CHANNEL_NAME, 'expected a channel name like "branch-kiosk"'),
  /** WebAuthn RP ID and the exact origin the operator UI is served on (pinned on the backend too). */
  rpId: z.string().min(1).max(253).default('localhost'),
  origin: loopbackOrHttps('the operator UI').default('http://localhost:8471'),
  /** The line-of-business app each operator's workspace loads. */
  workspaceAppUrl: loopbackOrHttps('the workspace app'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** One-time console enrolment token for the first start; ignored once the console is enrolled. */
  enrolmentToken: z.string().min(10).max(200).optional(),
  /** Where the agent keeps its outbox and state (defaults per OS). */
  dataDir: z.string().min(1).optional(),
  /** Branch kiosks run full screen with no escape shortcuts. */
  kiosk: z.boolean().default(false),
  /**
   * Where the console's private key is kept: sealed by the OS through Electron's safeStorage in the
   * data directory, or in the OS credential store through keytar. Default per OS: see
   * `defaultSecretStore` and docs/adr/0004-secret-store.md.
   */
  secretStore: z.enum(['safe-storage', 'keytar']).optional(),
});

export type SecretStoreKind = 'safe-storage' | 'keytar';

export type AgentConfig = Readonly<
  z.infer<typeof AgentConfigSchema> & { dataDir: string; source: string; secretStore: SecretStoreKind }
>;

/**
 * safeStorage on Windows (DPAPI) and macOS (Keychain): no native module. keytar on Linux, where
 * safeStorage picks its key store from the desktop environment and a bare kiosk session gets the
 * unprotected `basic_text` one (docs/adr/0004-secret-store.md).
 */
export function defaultSecretStore(platform: NodeJS.Platform): SecretStoreKind {
  return platform === 'win32' || platform === 'darwin' ? 'safe-storage' : 'keytar';
}

/** The usual machine-wide place for the file on each OS. */
export function defaultConfigPath(platform: NodeJS.Platform, env: NodeJS.ProcessEnv): string {
  if (platform === 'win32') return join(env.ProgramData ?? 'C:\\ProgramData', 'Baton', 'agent.json');
  if (platform === 'darwin') return '/Library/Application Support/Baton/agent.json';
  return '/etc/baton/agent.json';
}

export function defaultDataDir(platform: NodeJS.Platform, env: NodeJS.ProcessEnv): string {
  if (platform === 'win32') return join(env.ProgramData ?? 'C:\\ProgramData', 'Baton', 'data');
  if (platform === 'darwin') return '/Library/Application Support/Baton/data';
  return '/var/lib/baton-agent';
}

const DEV_OVERRIDES: Record<string, keyof z.infer<typeof AgentConfigSchema>> = {
  BATON_AGENT_BACKEND_URL: 'backendUrl',
  BATON_AGENT_CHANNEL: 'channel',
  BATON_AGENT_RP_ID: 'rpId',
  BATON_AGENT_ORIGIN: 'origin',
  BATON_AGENT_WORKSPACE_URL: 'workspaceAppUrl',
  BATON_AGENT_LOG_LEVEL: 'logLevel',
  BATON_AGENT_DATA_DIR: 'dataDir',
};

export interface LoadOptions {
  platform: NodeJS.Platform;
  env: NodeJS.ProcessEnv;
  /** Packaged builds read only the machine-wide file: no path or field overrides from the environment. */
  packaged: boolean;
}

/** Reads, validates and freezes the configuration; a bad file names the file, the field and what was expected. */
export function loadAgentConfig(options: LoadOptions): AgentConfig {
  const { env, platform, packaged } = options;
  const file = (!packaged && env.BATON_AGENT_CONFIG) || defaultConfigPath(platform, env);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new BatonError('NOT_FOUND', `The agent configuration file ${file} cannot be read; IT must install it`, {
      cause,
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new BatonError('BAD_JSON', `The agent configuration file ${file} is not valid JSON`, { cause });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    const received = raw === null ? 'null' : Array.isArray(raw) ? 'an array' : typeof raw;
    const issue = { path: '(root)', message: `expected a JSON object of settings, received ${received}` };
    const message = `The agent configuration file ${file} is invalid: ${issue.path}: ${issue.message}`;
    throw new BatonError('SCHEMA_INVALID', message, { issues: [issue] });
  }
  const merged: Record<string, unknown> = { ...raw };
  if (!packaged) {
    for (const [name, key] of Object.entries(DEV_OVERRIDES)) {
      const value = env[name];
      if (value !== undefined && value !== '') merged[key] = value;
    }
  }
  const result = AgentConfigSchema.safeParse(merged);
  if (!result.success) {
    const issues = toFieldIssues(result.error);
    throw new BatonError(
      'SCHEMA_INVALID',
      `The agent configuration file ${file} is invalid: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
      { issues },
    );
  }
  return Object.freeze({
    ...result.data,
    dataDir: result.data.dataDir ?? defaultDataDir(platform, env),
    secretStore: result.data.secretStore ?? defaultSecretStore(platform),
    source: file,
  });
}
