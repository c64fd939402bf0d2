import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { BatonError } from '../../shared/errors.js';
import {
  SealedFileSecretStore,
  SealedSecretsFileSchema,
  sealerRefusal,
  type SecretSealer,
} from './sealed-secret-store.js';

/** A stand-in for Electron's safeStorage: "seals" by XOR with a key it can rotate, and records what it saw. */
class FakeSealer implements SecretSealer {
  available = true;
  backend: string | undefined = 'gnome_libsecret';
  key = 0x5a;
  rotated = false;
  failDecrypt = false;
  failEncrypt = false;
  isAvailable(): Promise<boolean> {
    return Promise.resolve(this.available);
  }
  linuxBackend(): string | undefined {
    return this.backend;
  }
  encrypt(plainText: string): Promise<Buffer> {
    if (this.failEncrypt) return Promise.reject(new Error('keychain locked'));
    return Promise.resolve(Buffer.from([this.key, ...Buffer.from(plainText).map((b) => b ^ this.key)]));
  }
  decrypt(sealed: Buffer): Promise<{ result: string; shouldReEncrypt: boolean }> {
    if (this.failDecrypt) return Promise.reject(new Error('bad key'));
    const key = sealed[0] as number;
    const result = Buffer.from(sealed.subarray(1).map((b) => b ^ key)).toString();
    return Promise.resolve({ result, shouldReEncrypt: key !== this.key });
  }
}

const root = mkdtempSync(join(tmpdir(), 'baton-sealed-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshPath = () => join(root, `d${++n}`, 'secrets.sealed.json');
const SECRET = 'MC4CAQAwBQYDK2VwBCIEIPrivateKeyOfTheConsole';

async function rejectsWith(promise: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof BatonError);
    assert.equal(error.code, code);
    if (message !== undefined) assert.match(error.message, message);
    return true;
  });
}

describe('the safeStorage secret store refuses a sealer that protects nothing', () => {
  test('refuses when the OS says encryption is unavailable, and writes no file', async () => {
    const sealer = new FakeSealer();
    sealer.available = false;
    const path = freshPath();
    await rejectsWith(
      SealedFileSecretStore.open({ path, sealer, platform: 'darwin' }),
      'SECRET_STORE_UNAVAILABLE',
      /not available/,
    );
    assert.throws(() => statSync(path), { code: 'ENOENT' });
  });

  test('refuses the basic_text backend on Linux (a fixed, public key) and an unknown one', async () => {
    for (const backend of ['basic_text', 'unknown', undefined]) {
      const sealer = new FakeSealer();
      sealer.backend = backend;
      await rejectsWith(
        SealedFileSecretStore.open({ path: freshPath(), sealer, platform: 'linux' }),
        'SECRET_STORE_UNAVAILABLE',
        /no OS key store/,
      );
    }
  });

  test('accepts the Secret Service and KWallet on Linux, and ignores the Linux backend elsewhere', () => {
    for (const backend of ['gnome_libsecret', 'kwallet', 'kwallet5', 'kwallet6']) {
      assert.equal(sealerRefusal(true, 'linux', backend), undefined, backend);
    }
    assert.equal(sealerRefusal(true, 'win32', undefined), undefined);
    assert.equal(sealerRefusal(true, 'darwin', 'basic_text'), undefined);
    assert.match(sealerRefusal(false, 'win32', undefined) ?? '', /not available/);
  });
});

describe('the sealed secrets file', () => {
  test('keeps a secret across a restart, sealed: the file never holds it in clear, and is private to the user', async () => {
    const path = freshPath();
    const sealer = new FakeSealer();
    const store = await SealedFileSecretStore.open({ path, sealer, platform: 'linux' });
    assert.equal(await store.get('console-key'), null);
    await store.set('console-key', SECRET);
    const text = readFileSync(path, 'utf8');
    assert.ok(!text.includes(SECRET));
    assert.ok(!text.includes(Buffer.from(SECRET).toString('base64')));
    assert.equal(SealedSecretsFileSchema.parse(JSON.parse(text)).version, 1);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const reopened = await SealedFileSecretStore.open({ path, sealer, platform: 'linux' });
    assert.equal(await reopened.get('console-key'), SECRET);
  });

  test('delete removes the secret from the file, and says whether there was one', async () => {
    const path = freshPath();
    const sealer = new FakeSealer();
    const store = await SealedFileSecretStore.open({ path, sealer, platform: 'win32' });
    await store.set('console-key', SECRET);
    await store.set('other', 'x');
    assert.equal(await store.delete('console-key'), true);
    assert.equal(await store.delete('console-key'), false);
    const reopened = await SealedFileSecretStore.open({ path, sealer, platform: 'win32' });
    assert.equal(await reopened.get('console-key'), null);
    assert.equal(await reopened.get('other'), 'x');
  });

  test('re-seals a secret the OS asks to re-encrypt (its key rotated), so the old key can go', async () => {
    const path = freshPath();
    const sealer = new FakeSealer();
    const store = await SealedFileSecretStore.open({ path, sealer, platform: 'darwin' });
    await store.set('console-key', SECRET);
    const before = readFileSync(path, 'utf8');
    sealer.key = 0x33;
    assert.equal(await store.get('console-key'), SECRET);
    const after = JSON.parse(readFileSync(path, 'utf8')) as { secrets: Record<string, string> };
    assert.notEqual(JSON.stringify(after), JSON.stringify(JSON.parse(before)));
    assert.equal(Buffer.from(after.secrets['console-key'] ?? '', 'base64')[0], 0x33);
  });

  test('a damaged or foreign file is an error at open, never an empty store that would lose the key', async () => {
    for (const content of ['{not json', '{"format":"other","version":1,"secrets":{}}', '[]']) {
      const path = freshPath();
      const store = await SealedFileSecretStore.open({ path, sealer: new FakeSealer(), platform: 'darwin' });
      await store.set('console-key', SECRET);
      writeFileSync(path, content);
      await rejectsWith(
        SealedFileSecretStore.open({ path, sealer: new FakeSealer(), platform: 'darwin' }),
        'SECRET_STORE_UNAVAILABLE',
        /sealed secrets file/,
      );
      assert.equal(readFileSync(path, 'utf8'), content);
    }
  });

  test('a secret the OS cannot decrypt is a stable error, not a wrong key', async () => {
    const path = freshPath();
    const sealer = new FakeSealer();
    const store = await SealedFileSecretStore.open({ path, sealer, platform: 'darwin' });
    await store.set('console-key', SECRET);
    sealer.failDecrypt = true;
    await rejectsWith(store.get('console-key'), 'SECRET_STORE_UNAVAILABLE', /cannot decrypt/);
  });

  test('when the OS refuses to encrypt, the file keeps what it had', async () => {
    const path = freshPath();
    const sealer = new FakeSealer();
    const store = await SealedFileSecretStore.open({ path, sealer, platform: 'darwin' });
    await store.set('console-key', SECRET);
    const before = readFileSync(path, 'utf8');
    sealer.failEncrypt = true;
    await rejectsWith(store.set('console-key', 'another'), 'SECRET_STORE_UNAVAILABLE', /refused to encrypt/);
    assert.equal(readFileSync(path, 'utf8'), before);
    sealer.failEncrypt = false;
    assert.equal(await store.get('console-key'), SECRET);
  });

  test('account names are checked before anything is sealed or read', async () => {
    const store = await SealedFileSecretStore.open({ path: freshPath(), sealer: new FakeSealer(), platform: 'darwin' });
    for (const account of ['', '../escape', 'a b', 'x'.repeat(101)]) {
      await rejectsWith(store.set(account, 's'), 'SCHEMA_INVALID');
      await rejectsWith(store.get(account), 'SCHEMA_INVALID');
    }
  });
});
