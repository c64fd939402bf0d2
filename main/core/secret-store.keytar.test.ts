import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { ConsoleKey } from './console-key.js';
import { KeytarSecretStore } from './secret-store.js';

// Runs against a real Secret Service: scripts/test.sh starts this file under `dbus-run-session` with an
// unlocked gnome-keyring and sets BATON_SECRET_SERVICE=1. Elsewhere it is skipped, with the reason printed.
const available = process.env.BATON_SECRET_SERVICE === '1';
const skip = available
  ? false
  : 'needs a real Secret Service: run through scripts/test.sh (dbus-run-session + gnome-keyring)';

describe('keytar against a real Secret Service', { skip }, () => {
  it('stores, reads back and deletes the console private key', async () => {
    const store = await KeytarSecretStore.open(`Baton Console test ${randomUUID()}`);
    const key = ConsoleKey.generate();
    const secret = key.toPkcs8().toString('base64');
    assert.equal(await store.get('console-key'), null);
    await store.set('console-key', secret);
    const read = await store.get('console-key');
    assert.equal(read, secret);
    assert.deepEqual(
      ConsoleKey.fromPkcs8(Buffer.from(read ?? '', 'base64')).publicJwk(),
      key.publicJwk(),
      'the same key comes back',
    );
    assert.equal(await store.delete('console-key'), true);
    assert.equal(await store.get('console-key'), null, 'a deleted key is gone: the console must be re-enrolled');
    assert.equal(await store.delete('console-key'), false);
  });

  it('keeps services apart: another service does not see this console key', async () => {
    const ours = await KeytarSecretStore.open(`Baton Console test ${randomUUID()}`);
    const theirs = await KeytarSecretStore.open(`Baton Console test ${randomUUID()}`);
    await ours.set('console-key', 'ours');
    assert.equal(await theirs.get('console-key'), null);
    await ours.delete('console-key');
  });
});
