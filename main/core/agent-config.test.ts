import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BatonError } from '../../shared/errors.js';
import { defaultConfigPath, loadAgentConfig } from './agent-config.js';
import { tempDir } from '../../test/helpers/temp-dir.js';

function configFile(content: unknown): string {
  const file = join(tempDir('baton-agent-config-'), 'agent.json');
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

const valid = {
  backendUrl: 'https://baton.bank.example:8470',
  channel: 'branch-kiosk',
  workspaceAppUrl: 'https://teller.bank.example/',
  kiosk: true,
};

describe('agent configuration', () => {
  it('reads the machine-wide file, fills defaults and freezes the result', () => {
    const file = configFile(valid);
    const config = loadAgentConfig({ platform: 'linux', env: { BATON_AGENT_CONFIG: file }, packaged: false });
    assert.equal(config.channel, 'branch-kiosk');
    assert.equal(config.rpId, 'localhost');
    assert.equal(config.origin, 'http://localhost:8471');
    assert.equal(config.dataDir, '/var/lib/baton-agent');
    assert.equal(config.source, file);
    assert.ok(Object.isFrozen(config));
  });

  it('keeps the console key with safeStorage on Windows and macOS and keytar on Linux, unless IT chooses', () => {
    const file = configFile(valid);
    const load = (platform: NodeJS.Platform, path = file) =>
      loadAgentConfig({ platform, env: { BATON_AGENT_CONFIG: path }, packaged: false });
    assert.equal(load('win32').secretStore, 'safe-storage');
    assert.equal(load('darwin').secretStore, 'safe-storage');
    assert.equal(load('linux').secretStore, 'keytar');
    assert.equal(load('linux', configFile({ ...valid, secretStore: 'safe-storage' })).secretStore, 'safe-storage');
    assert.equal(load('darwin', configFile({ ...valid, secretStore: 'keytar' })).secretStore, 'keytar');
    assert.throws(
      () => load('linux', configFile({ ...valid, secretStore: 'plain-file' })),
      (error: unknown) =>
        error instanceof BatonError && error.code === 'SCHEMA_INVALID' && /secretStore/.test(error.message),
    );
  });

  it('knows the usual place on each OS', () => {
    assert.equal(defaultConfigPath('linux', {}), '/etc/baton/agent.json');
    assert.equal(defaultConfigPath('darwin', {}), '/Library/Application Support/Baton/agent.json');
    assert.match(defaultConfigPath('win32', { ProgramData: 'D:\\PD' }), /D:\\PD.Baton.agent\.json$/);
  });

  it('names the file, the field and what was expected when a value has the wrong type', () => {
    const file = configFile({
      ...valid,
      kiosk: 'yes',
      channel: 'Branch Kiosk',
      workspaceAppUrl: 'http://teller.example/',
    });
    assert.throws(
      () => loadAgentConfig({ platform: 'linux', env: { BATON_AGENT_CONFIG: file }, packaged: false }),
      (error: unknown) => {
        if (!(error instanceof BatonError) || error.code !== 'SCHEMA_INVALID') return false;
        const paths = (error.issues ?? []).map((i) => i.path);
        return (
          error.message.includes(file) &&
          paths.includes('kiosk') &&
          paths.includes('channel') &&
          paths.includes('workspaceAppUrl')
        );
      },
    );
  });

  it('refuses unknown fields, unreadable JSON and a missing file with clear errors', () => {
    const env = (file: string) => ({ platform: 'linux' as const, env: { BATON_AGENT_CONFIG: file }, packaged: false });
    assert.throws(
      () => loadAgentConfig(env(configFile({ ...valid, backendURL: 'x' }))),
      (e: unknown) => e instanceof BatonError && e.code === 'SCHEMA_INVALID',
    );
    assert.throws(
      () => loadAgentConfig(env(configFile('{ "channel": '))),
      (e: unknown) => e instanceof BatonError && e.code === 'BAD_JSON',
    );
    assert.throws(
      () => loadAgentConfig(env('/nonexistent/agent.json')),
      (e: unknown) =>
        e instanceof BatonError && e.code === 'NOT_FOUND' && e.message.includes('/nonexistent/agent.json'),
    );
  });

  it('applies environment overrides in development only; a packaged build ignores them', () => {
    const file = configFile(valid);
    const env = { BATON_AGENT_CONFIG: file, BATON_AGENT_CHANNEL: 'contact-centre' };
    assert.equal(loadAgentConfig({ platform: 'linux', env, packaged: false }).channel, 'contact-centre');
    assert.throws(
      () => loadAgentConfig({ platform: 'linux', env, packaged: true }),
      (e: unknown) => e instanceof BatonError && e.code === 'NOT_FOUND' && e.message.includes('/etc/baton/agent.json'),
      'a packaged build reads only the machine-wide file, not BATON_AGENT_CONFIG',
    );
  });
});
