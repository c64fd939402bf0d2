import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { adoptSecrets, type SecretStore } from './secret-store.js';

class MemoryStore implements SecretStore {
  readonly secrets = new Map<string, string>();
  failGet = false;
  get(account: string): Promise<string | null> {
    if (this.failGet) return Promise.reject(new Error('locked'));
    return Promise.resolve(this.secrets.get(account) ?? null);
  }
  set(account: string, secret: string): Promise<void> {
    this.secrets.set(account, secret);
    return Promise.resolve();
  }
  delete(account: string): Promise<boolean> {
    return Promise.resolve(this.secrets.delete(account));
  }
}

describe('moving to another secret store keeps the console enrolled', () => {
  test('a key only the legacy store holds moves to the new store and leaves the legacy one', async () => {
    const store = new MemoryStore();
    const legacy = new MemoryStore();
    legacy.secrets.set('console-key', 'k1');
    assert.deepEqual(await adoptSecrets(store, () => Promise.resolve(legacy), ['console-key']), ['console-key']);
    assert.equal(store.secrets.get('console-key'), 'k1');
    assert.equal(legacy.secrets.has('console-key'), false);
  });

  test('a key the new store already holds wins, and the legacy store is not even opened', async () => {
    const store = new MemoryStore();
    store.secrets.set('console-key', 'new');
    let opened = false;
    const moved = await adoptSecrets(store, () => {
      opened = true;
      return Promise.resolve(new MemoryStore());
    }, ['console-key']);
    assert.deepEqual(moved, []);
    assert.equal(opened, false);
    assert.equal(store.secrets.get('console-key'), 'new');
  });

  test('no legacy store (keytar not installed): nothing moves, nothing fails', async () => {
    const store = new MemoryStore();
    assert.deepEqual(await adoptSecrets(store, () => Promise.reject(new Error('no keytar')), ['console-key']), []);
    assert.equal(store.secrets.size, 0);
  });

  test('a legacy store that opens but fails is an error, and the key stays where it was', async () => {
    const store = new MemoryStore();
    const legacy = new MemoryStore();
    legacy.secrets.set('console-key', 'k1');
    legacy.failGet = true;
    await assert.rejects(adoptSecrets(store, () => Promise.resolve(legacy), ['console-key']));
    assert.equal(store.secrets.size, 0);
    assert.equal(legacy.secrets.get('console-key'), 'k1');
  });

  test('a key that does not read back from the new store is not removed from the legacy one', async () => {
    const legacy = new MemoryStore();
    legacy.secrets.set('console-key', 'k1');
    const lossy: SecretStore = {
      get: () => Promise.resolve(null),
      set: () => Promise.resolve(),
      delete: () => Promise.resolve(false),
    };
    await assert.rejects(
      adoptSecrets(lossy, () => Promise.resolve(legacy), ['console-key']),
      { code: 'SECRET_STORE_UNAVAILABLE' },
    );
    assert.equal(legacy.secrets.get('console-key'), 'k1');
  });
});
