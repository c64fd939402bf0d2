import { BatonError } from '../../shared/errors.js';

/**
 * Where the console keeps its private key: the OS credential store. On a console with one shared OS
 * login this protects the console's secret, not any operator's. A small interface so the archived
 * `keytar` can be swapped (Electron's `safeStorage` is the usual replacement).
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
