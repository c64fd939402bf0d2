import { join } from 'node:path';
import { safeStorage } from 'electron';
import type { SecretStoreKind } from '../core/agent-config.js';
import { CONSOLE_KEY_ACCOUNT } from '../core/console-identity.js';
import { SEALED_SECRETS_FILE_NAME, SealedFileSecretStore, type SecretSealer } from '../core/sealed-secret-store.js';
import { KeytarSecretStore, adoptSecrets, type SecretStore } from '../core/secret-store.js';

/** Electron's safeStorage as the sealed store's `SecretSealer` (call after the app is ready). */
export const electronSealer: SecretSealer = {
  isAvailable: () => safeStorage.isAsyncEncryptionAvailable(),
  linuxBackend: () => safeStorage.getSelectedStorageBackend(),
  encrypt: (plainText) => safeStorage.encryptStringAsync(plainText),
  decrypt: (sealed) => safeStorage.decryptStringAsync(sealed),
};

/**
 * The configured secret store. Choosing safeStorage on a console that kept its key in keytar moves
 * the key over (docs/adr/0004-secret-store.md), so the console stays enrolled.
 */
export async function openSecretStore(kind: SecretStoreKind, dataDir: string): Promise<SecretStore> {
  if (kind === 'keytar') return KeytarSecretStore.open();
  const store = await SealedFileSecretStore.open({
    path: join(dataDir, SEALED_SECRETS_FILE_NAME),
    sealer: electronSealer,
    platform: process.platform,
  });
  await adoptSecrets(store, () => KeytarSecretStore.open(), [CONSOLE_KEY_ACCOUNT]);
  return store;
}
