import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BatonError } from '../shared/errors.js';
import { loadBackendConfig } from './config.js';
import { tempDir } from './temp-dir.js';

describe('backend configuration', () => {
  it('uses safe defaults: loopback, port 8470, RP ID localhost, durable commits', () => {
    const config = loadBackendConfig([], {});
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.port, 8470);
    assert.equal(config.rpId, 'localhost');
    assert.deepEqual(config.origins, ['http://localhost:8471']);
    assert.equal(config.durability, 'full');
    assert.ok(Object.isFrozen(config));
  });

  it('layers file < environment < flags', () => {
    const dir = tempDir('baton-config-');
    const file = join(dir, 'backend.json');
    writeFileSync(file, JSON.stringify({ port: 9000, rpId: 'bank.example', logLevel: 'warn' }));
    const config = loadBackendConfig(['--config', file, '--port', '9100'], {
      BATON_PORT: '9050',
      BATON_ORIGINS: 'https://a.example, https://b.example',
    });
    assert.equal(config.port, 9100);
    assert.equal(config.rpId, 'bank.example');
    assert.equal(config.logLevel, 'warn');
    assert.deepEqual(config.origins, ['https://a.example', 'https://b.example']);
  });

  it('names the field and what was expected when a value is wrong', () => {
    const dir = tempDir('baton-config-');
    const file = join(dir, 'backend.json');
    writeFileSync(file, JSON.stringify({ port: 'eighty', origins: ['ftp://x'] }));
    assert.throws(
      () => loadBackendConfig(['--config', file], {}),
      (error: unknown) =>
        error instanceof BatonError &&
        error.code === 'SCHEMA_INVALID' &&
        error.message.includes(file) &&
        (error.issues ?? []).some((i) => i.path === 'port') &&
        (error.issues ?? []).some((i) => i.path === 'origins[0]'),
    );
  });

  it('refuses unknown flags and keys instead of ignoring them', () => {
    assert.throws(() => loadBackendConfig(['--prot', '1'], {}));
    const dir = tempDir('baton-config-');
    const file = join(dir, 'backend.json');
    writeFileSync(file, JSON.stringify({ prot: 1 }));
    assert.throws(
      () => loadBackendConfig(['--config', file], {}),
      (e: unknown) => e instanceof BatonError && e.code === 'SCHEMA_INVALID',
    );
  });

  it('reports a config file that is not JSON', () => {
    const dir = tempDir('baton-config-');
    const file = join(dir, 'backend.json');
    writeFileSync(file, '{ port: 1');
    assert.throws(
      () => loadBackendConfig(['--config', file], {}),
      (e: unknown) => e instanceof BatonError && e.code === 'BAD_JSON',
    );
  });
});
