import { BatonError } from '../../shared/errors.js';

/**
 * Where the console keeps its private key: the OS credential store. On a console with one shared OS
 * login this protects the console's secret, not any operator's. A small interface so the archived
 * `keytar` can be swapped: `SealedFileSecretStore` (sealed-secret-store.ts) keeps secrets sealed by
 * Electron's `safeStorage` instead; the configuration chooses (docs/adr/0004-secret-store.md).
 */
export interface SecretStore {
  get(account: string): Promise<string | null>;
  set(account: string, secret: string): Promise<void>;
  delete(account: string): Promise<boolean>;
}

export const SECRET_SERVICE_NAME = 'Baton Console';

interface KeytarModule {
  getPassword(service: string, account: string): Promise<string | null>;
  setPassword(service: string, account: string, password: string): Promise<void>;
  deletePassword(service: string, account: string): Promise<boolean>;
}

/** The real store: keytar over the Secret Service (Linux), Keychain (macOS) or Credential Vault (Windows). */
export class KeytarSecretStore implements SecretStore {
  private constructor(
    private readonly keytar: KeytarModule,
    private readonly service: string,
  ) {}

  /** Loads keytar; a machine without it (or without an OS store) gets a clear, stable error. */
  static async open(service = SECRET_SERVICE_NAME): Promise<KeytarSecretStore> {
    let loaded: unknown;
    try {
      loaded = await import('keytar');
    } catch (cause) {
      throw new BatonError('SECRET_STORE_UNAVAILABLE', 'The OS credential store module (keytar) is not installed', {
        cause,
      });
    }
    const module = ((loaded as { default?: KeytarModule }).default ?? loaded) as KeytarModule;
    return new KeytarSecretStore(module, service);
  }

  async get(account: string): Promise<string | null> {
    return this.call(() => this.keytar.getPassword(this.service, account));
  }

  async set(account: string, secret: string): Promise<void> {
    await this.call(() => this.keytar.setPassword(this.service, account, secret));
  }

  async delete(account: string): Promise<boolean> {
    return this.call(() => this.keytar.deletePassword(this.service, account));
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (cause) {
      throw new BatonError(
        'SECRET_STORE_UNAVAILABLE',
        'The OS credential store refused the request (is it running and unlocked?)',
        {
          cause,
        },
      );
    }
  }
}

/**
 * Changing stores must not lose the console's key (and make IT re-enrol the console): each of
 * `accounts` that `store` lacks is copied from the legacy store, read back, and only then removed
 * there. A legacy store that cannot be opened (keytar not installed) has nothing to give; one that
 * opens but fails is an error, so the key stays where it is and the next start tries again.
 * Returns the accounts moved.
 */
export async function adoptSecrets(
  store: SecretStore,
  openLegacy: () => Promise<SecretStore>,
  accounts: readonly string[],
): Promise<string[]> {
  const missing: string[] = [];
  for (const account of accounts) if ((await store.get(account)) === null) missing.push(account);
  if (missing.length === 0) return [];
  let legacy: SecretStore;
  try {
    legacy = await openLegacy();
  } catch {
    return [];
  }
  const moved: string[] = [];
  for (const account of missing) {
    const secret = await legacy.get(account);
    if (secret === null) continue;
    await store.set(account, secret);
    if ((await store.get(account)) !== secret) {
      throw new BatonError('SECRET_STORE_UNAVAILABLE', `The secret "${account}" did not read back from the new store`);
    }
    await legacy.delete(account);
    moved.push(account);
  }
  return moved;
}
