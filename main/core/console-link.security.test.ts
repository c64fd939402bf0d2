import assert from 'node:assert/strict';
import { readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { BatonError } from '../../shared/errors.js';
import { loadAgentConfig } from './agent-config.js';
import { writeAtomically } from './atomic-file.js';
import { systemClock } from './clock.js';
import { ConsoleIdentity } from './console-identity.js';
import type { SecretStore } from './secret-store.js';
import { tempDir as removedOnExit } from '../../test/helpers/temp-dir.js';

function tempDir(): string {
  return removedOnExit('baton-console-link-');
}

function load(fields: Record<string, unknown>) {
  const file = join(tempDir(), 'agent.json');
  writeFileSync(
    file,
    JSON.stringify({ channel: 'branch-kiosk', workspaceAppUrl: 'https://teller.bank.example/', ...fields }),
  );
  return loadAgentConfig({ platform: 'linux', env: { BATON_AGENT_CONFIG: file }, packaged: false });
}

async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const noSecrets: SecretStore = {
  get: () => Promise.resolve(null),
  set: () => Promise.resolve(),
  delete: () => Promise.resolve(false),
};

describe('the link to the backend and the console state on disk', () => {
  const servers: Server[] = [];
  after(() => servers.forEach((s) => s.close()));

  it('refuses a plain-http backend on another machine: whoever sits on the wire would be the backend', () => {
    for (const backendUrl of ['http://baton.branch12.internal:8470', 'http://10.0.0.5:8470', 'ws://10.0.0.5/']) {
      assert.throws(
        () => load({ backendUrl }),
        (error: unknown) =>
          error instanceof BatonError &&
          error.code === 'SCHEMA_INVALID' &&
          /backendUrl: expected an https/.test(error.message),
        backendUrl,
      );
    }
    for (const backendUrl of [
      'https://baton.branch12.internal:8470',
      'http://localhost:8470',
      'http://127.0.0.1:8470',
      'http://[::1]:8470',
    ]) {
      assert.equal(load({ backendUrl }).backendUrl, backendUrl);
    }
  });

  it('does not follow a redirect with the one-time enrolment token', async () => {
    const elsewhere: string[] = [];
    const other = await listen((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        elsewhere.push(body);
        res.writeHead(500).end();
      });
    });
    const backend = await listen((_req, res) => {
      res.writeHead(307, { location: `${other.url}/v1/consoles/enrol` }).end();
    });
    servers.push(other.server, backend.server);
    const identity = await ConsoleIdentity.load(tempDir(), noSecrets, systemClock);
    await assert.rejects(
      identity.enrol({ backendUrl: backend.url, token: 'bct_secret-enrolment-token', channel: 'branch-kiosk' }),
      (error: unknown) => error instanceof BatonError,
    );
    assert.deepEqual(elsewhere, [], 'the token went nowhere but the configured backend');
    assert.equal(identity.status.kind, 'unenrolled');
  });

  it('writes the state file through a fresh private file, never through a link planted beside it', () => {
    const dir = tempDir();
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'untouched\n', { mode: 0o644 });
    symlinkSync(victim, join(dir, 'console.json.tmp'));
    writeAtomically(join(dir, 'console.json'), '{"consoleId":"con_x"}\n');
    assert.equal(readFileSync(victim, 'utf8'), 'untouched\n', 'the link target was not written');
    assert.equal(readFileSync(join(dir, 'console.json'), 'utf8'), '{"consoleId":"con_x"}\n');
    assert.equal(statSync(join(dir, 'console.json')).mode & 0o777, 0o600);
  });
});
