import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import { BatonError } from '../../shared/errors.js';
import { writeAtomically } from './atomic-file.js';
import type { SecretStore } from './secret-store.js';

/**
 * A secret store that keeps each secret sealed by the OS in one file of the data directory: the
 * replacement for the archived `keytar` (docs/adr/0004-secret-store.md). The OS does the
 * cryptography and holds the key — Electron's `safeStorage`: Keychain on macOS, DPAPI on Windows,
 * the Secret Service or KWallet on Linux — through a `SecretSealer` (main/shell/secret-store.ts
 * adapts Electron's; tests use a stand-in). Electron-free: what this file decides (refuse a sealer
 * that cannot protect anything, the file's format, atomic private writes) is tested under Node.
 */
export interface SecretSealer {
  /** Whether the OS can encrypt now (`safeStorage.isAsyncEncryptionAvailable()`). */
  isAvailable(): Promise<boolean>;
  /** Linux only: the key store Chromium picked (`safeStorage.getSelectedStorageBackend()`); undefined elsewhere. */
  linuxBackend(): string | undefined;
  encrypt(plainText: string): Promise<Buffer>;
  decrypt(sealed: Buffer): Promise<{ result: string; shouldReEncrypt: boolean }>;
}

/** Linux key stores that keep the key in an OS store. `basic_text` uses a fixed key in Chromium's source. */
const LINUX_OS_BACKENDS: ReadonlySet<string> = new Set(['gnome_libsecret', 'kwallet', 'kwallet5', 'kwallet6']);

/**
 * Why this sealer must not hold the console's key, or undefined when it may. Refused: no encryption
 * at all, and on Linux any backend but an OS key store — `basic_text` (no desktop environment
 * recognised, or `--password-store=basic`) "encrypts" with a key anyone can read in Chromium's
 * source, and `unknown` means it was asked before the app was ready.
 */
export function sealerRefusal(
  available: boolean,
  platform: NodeJS.Platform,
  linuxBackend: string | undefined,
): string | undefined {
  if (!available) {
    return 'The OS cannot encrypt secrets for Baton (Electron safeStorage: encryption is not available)';
  }
  if (platform === 'linux' && (linuxBackend === undefined || !LINUX_OS_BACKENDS.has(linuxBackend))) {
    return `Electron safeStorage found no OS key store on this Linux session (backend ${linuxBackend ?? 'none'}): a secret sealed now would be readable by anyone. Run a Secret Service (gnome-keyring) or KWallet in the console's session (or start Baton with --password-store=gnome-libsecret), or set "secretStore": "keytar"`;
  }
  return undefined;
}

const ACCOUNT = /^[A-Za-z0-9._-]{1,100}$/;

/** The file: a format mark, its version, and each account's secret sealed by the OS, in base64. */
export const SealedSecretsFileSchema = z.strictObject({
  format: z.literal('baton-sealed-secrets'),
  version: z.literal(1),
  secrets: z.record(z.string().regex(ACCOUNT), z.base64()),
});
export type SealedSecretsFile = z.infer<typeof SealedSecretsFileSchema>;

export const SEALED_SECRETS_FILE_NAME = 'secrets.sealed.json';

export interface SealedStoreOptions {
  /** The file (created 0600, its directory 0700, when missing). */
  path: string;
  sealer: SecretSealer;
  platform: NodeJS.Platform;
}

export class SealedFileSecretStore implements SecretStore {
  private constructor(
    private readonly path: string,
    private readonly sealer: SecretSealer,
    private readonly sealed: Map<string, string>,
  ) {}

  /** Checks the sealer first (refusing one that cannot protect anything), then reads and checks the file. */
  static async open(options: SealedStoreOptions): Promise<SealedFileSecretStore> {
    const { path, sealer, platform } = options;
    let available: boolean;
    try {
      available = await sealer.isAvailable();
    } catch (cause) {
      throw new BatonError('SECRET_STORE_UNAVAILABLE', 'The OS could not say whether it can encrypt secrets', {
        cause,
      });
    }
    const refusal = sealerRefusal(available, platform, platform === 'linux' ? sealer.linuxBackend() : undefined);
    if (refusal !== undefined) throw new BatonError('SECRET_STORE_UNAVAILABLE', refusal);
    return new SealedFileSecretStore(path, sealer, readSealedFile(path));
  }

  async get(account: string): Promise<string | null> {
    checkAccount(account);
    const sealed = this.sealed.get(account);
    if (sealed === undefined) return null;
    let opened: { result: string; shouldReEncrypt: boolean };
    try {
      opened = await this.sealer.decrypt(Buffer.from(sealed, 'base64'));
    } catch (cause) {
      throw new BatonError(
        'SECRET_STORE_UNAVAILABLE',
        `The OS cannot decrypt the secret "${account}" in ${this.path} (was its key store reset, or the file copied from another machine or user?)`,
        { cause },
      );
    }
    // The OS rotated its key (or offers a better one): seal again so the old key can go.
    if (opened.shouldReEncrypt) await this.set(account, opened.result);
    return opened.result;
  }

  async set(account: string, secret: string): Promise<void> {
    checkAccount(account);
    let sealed: Buffer;
    try {
      sealed = await this.sealer.encrypt(secret);
    } catch (cause) {
      throw new BatonError('SECRET_STORE_UNAVAILABLE', `The OS refused to encrypt the secret "${account}"`, { cause });
    }
    const previous = this.sealed.get(account);
    this.sealed.set(account, sealed.toString('base64'));
    this.writeOrRestore(account, previous);
  }

  delete(account: string): Promise<boolean> {
    return new Promise((resolve) => resolve(this.deleteNow(account)));
  }

  private deleteNow(account: string): boolean {
    checkAccount(account);
    const previous = this.sealed.get(account);
    if (previous === undefined) return false;
    this.sealed.delete(account);
    this.writeOrRestore(account, previous);
    return true;
  }

  /** Writes the file; if that fails, memory goes back to what the file still holds. */
  private writeOrRestore(account: string, previous: string | undefined): void {
    try {
      this.write();
    } catch (error) {
      if (previous === undefined) this.sealed.delete(account);
      else this.sealed.set(account, previous);
      throw error;
    }
  }

  /** The whole file, replaced atomically (a crash leaves the old or the new one), private to this user. */
  private write(): void {
    const file: SealedSecretsFile = {
      format: 'baton-sealed-secrets',
      version: 1,
      secrets: Object.fromEntries([...this.sealed].sort(([a], [b]) => a.localeCompare(b))),
    };
    try {
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
      writeAtomically(this.path, `${JSON.stringify(file, null, 2)}\n`);
    } catch (cause) {
      throw new BatonError('SECRET_STORE_UNAVAILABLE', `The sealed secrets file ${this.path} cannot be written`, {
        cause,
      });
    }
  }
}

function checkAccount(account: string): void {
  if (!ACCOUNT.test(account)) {
    throw new BatonError(
      'SCHEMA_INVALID',
      `expected a secret's account name like "console-key", received ${JSON.stringify(account.slice(0, 120))}`,
    );
  }
}

/** The file's sealed secrets; none when there is no file yet. A damaged file is an error, never silently empty. */
function readSealedFile(path: string): Map<string, string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw new BatonError('SECRET_STORE_UNAVAILABLE', `The sealed secrets file ${path} cannot be read`, { cause });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new BatonError('SECRET_STORE_UNAVAILABLE', `The sealed secrets file ${path} is not valid JSON`, { cause });
  }
  const parsed = SealedSecretsFileSchema.safeParse(raw);
  if (!parsed.success) {
    const where = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new BatonError(
      'SECRET_STORE_UNAVAILABLE',
      `The sealed secrets file ${path} is not in Baton's format: ${where}`,
      {
        cause: parsed.error,
      },
    );
  }
  return new Map(Object.entries(parsed.data.secrets));
}
