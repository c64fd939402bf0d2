import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { DevMemorySecretStore } from '../ui/dev-secret-store.js';
import { tempDir } from '../../test/helpers/temp-dir.js';
import { systemClock } from './clock.js';
import { CONSOLE_KEY_ACCOUNT, ConsoleIdentity } from './console-identity.js';
import { ConsoleKey } from './console-key.js';

/** An enrolled console's data directory (console.json and its key) that remembers `revocationEpoch`. */
async function enrolledDir(revocationEpoch: number): Promise<{ dir: string; secrets: DevMemorySecretStore }> {
  const dir = tempDir('baton-identity-');
  const secrets = new DevMemorySecretStore();
  await secrets.set(CONSOLE_KEY_ACCOUNT, ConsoleKey.generate().toPkcs8().toString('base64url'));
  const state = {
    version: 1,
    consoleId: 'con_1',
    channel: 'branch-kiosk',
    backendUrl: 'https://baton.example.internal',
    enrolledAt: 0,
    revocationEpoch,
  };
  writeFileSync(join(dir, 'console.json'), JSON.stringify(state));
  return { dir, secrets };
}

function rememberedOnDisk(dir: string): number {
  return (JSON.parse(readFileSync(join(dir, 'console.json'), 'utf8')) as { revocationEpoch: number }).revocationEpoch;
}

describe('ConsoleIdentity revocation epoch', () => {
  test('a restored backend’s lower epoch is taken and kept on disk, so the next start’s hello asks from it', async () => {
    const { dir, secrets } = await enrolledDir(1000);
    const identity = await ConsoleIdentity.load(dir, secrets, systemClock);
    assert.equal(identity.takeBackendRevocationEpoch(950), true);
    assert.equal(identity.revocationEpoch, 950);
    assert.equal(rememberedOnDisk(dir), 950);
    const restarted = await ConsoleIdentity.load(dir, secrets, systemClock);
    assert.equal(restarted.status.kind, 'enrolled');
    assert.equal(restarted.revocationEpoch, 950);
  });

  test('a backend epoch at or above the remembered one changes nothing: only applied revocations raise it', async () => {
    const { dir, secrets } = await enrolledDir(40);
    const identity = await ConsoleIdentity.load(dir, secrets, systemClock);
    assert.equal(identity.takeBackendRevocationEpoch(40), false);
    assert.equal(identity.takeBackendRevocationEpoch(90), false);
    assert.equal(identity.revocationEpoch, 40);
    identity.rememberRevocationEpoch(30);
    assert.equal(rememberedOnDisk(dir), 40, 'an applied epoch below the remembered one lowers nothing');
  });
});
