import type { SecretStore } from '../core/secret-store.js';

/**
 * DEVELOPMENT ONLY: keeps the console key in this process's memory instead of the OS credential
 * store. The key is gone when the process exits, so every `npm run agent:dev` start is a new
 * console (enrol it again with a fresh token). Never used by the shell or a packaged build.
 */
export class DevMemorySecretStore implements SecretStore {
  private readonly values = new Map<string, string>();

  get(account: string): Promise<string | null> {
    return Promise.resolve(this.values.get(account) ?? null);
  }

  set(account: string, secret: string): Promise<void> {
    this.values.set(account, secret);
    return Promise.resolve();
  }

  delete(account: string): Promise<boolean> {
    return Promise.resolve(this.values.delete(account));
  }
}
