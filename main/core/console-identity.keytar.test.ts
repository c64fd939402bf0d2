import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { BatonError } from '../../shared/errors.js';
import { BatonAgent, type AgentStatus, type CeremonyPort } from './agent.js';
import { CONSOLE_KEY_ACCOUNT } from './console-identity.js';
import { ConsoleKey } from './console-key.js';
import { KeytarSecretStore } from './secret-store.js';

// Runs against a real Secret Service and a real backend process: scripts/test.sh starts this file
// under `dbus-run-session` with an unlocked gnome-keyring and sets BATON_SECRET_SERVICE=1. Elsewhere
// it is skipped, with the reason printed (as secret-store.keytar.test.ts is).
const available = process.env.BATON_SECRET_SERVICE === '1';
const skip = available
  ? false
  : 'needs a real Secret Service: run through scripts/test.sh (dbus-run-session + gnome-keyring)';

const ROOT = join(import.meta.dirname, '..', '..');
const ORIGIN = 'http://localhost:8471';

/** No operator ceremonies here: the console's own identity is under test. */
const noCeremonies: CeremonyPort = {
  getAssertion: () => Promise.reject(new Error('NotAllowedError: no authenticator in this test')),
  createCredential: () => Promise.reject(new Error('NotAllowedError: no authenticator in this test')),
};

/**
 * The real backend CLI as a child process (main/core may not import backend/; the process
 * boundary is the one the product has too). Resolves with its URL and admin token once it listens.
 */
function spawnBackend(dataDir: string): Promise<{ child: ChildProcess; url: string; token: string }> {
  const tokenFile = join(dataDir, 'admin-token');
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(ROOT, 'backend', 'cli.ts'),
      ...['--port', '0', '--data-dir', dataDir, '--origin', ORIGIN, '--bootstrap-token-file', tokenFile],
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const output: string[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`backend did not start: ${output.join('\n')}`)), 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`backend exited with ${String(code)}: ${output.join('\n')}`));
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      output.push(line);
      if (!line.includes('baton backend listening')) return;
      clearTimeout(timer);
      const { url } = JSON.parse(line) as { url: string };
      resolve({ child, url: url.replace('127.0.0.1', 'localhost'), token: readFileSync(tokenFile, 'utf8').trim() });
    });
    createInterface({ input: child.stderr! }).on('line', (line) => output.push(line));
  });
}

async function until(agent: BatonAgent, test: (s: AgentStatus) => boolean, what: string): Promise<AgentStatus> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const status = agent.status;
    if (test(status)) return status;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(status)}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('console identity in the OS credential store (keytar against a real Secret Service)', { skip }, () => {
  const service = `Baton Console test ${randomUUID()}`;
  const agents: BatonAgent[] = [];
  let dataDir = '';
  let backendDir = '';
  let backend: { child: ChildProcess; url: string; token: string } | undefined;
  let consoleId = '';

  const admin = async (method: string, path: string, body?: unknown) => {
    assert.ok(backend !== undefined);
    const response = await fetch(`${backend.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${backend.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const json = (await response.json()) as Record<string, unknown>;
    assert.ok(response.ok, `${method} ${path} → ${response.status} ${JSON.stringify(json)}`);
    return json;
  };
  const consoleToken = async () =>
    (await admin('POST', '/v1/admin/console-tokens', { channel: 'branch-kiosk' })).token as string;
  const start = async (enrolmentToken?: string) => {
    assert.ok(backend !== undefined);
    const agent = await BatonAgent.start(
      {
        backendUrl: backend.url,
        channel: 'branch-kiosk',
        rpId: 'localhost',
        origin: ORIGIN,
        dataDir,
        agentVersion: 'test',
        ...(enrolmentToken === undefined ? {} : { enrolmentToken }),
      },
      // A fresh handle on the OS store each start, as a new agent process would open it.
      { secrets: await KeytarSecretStore.open(service), ceremonies: noCeremonies },
    );
    agents.push(agent);
    return agent;
  };

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'baton-keytar-agent-'));
    backendDir = mkdtempSync(join(tmpdir(), 'baton-keytar-backend-'));
    backend = await spawnBackend(backendDir);
  });
  after(async () => {
    for (const agent of agents) await agent.stop();
    await (await KeytarSecretStore.open(service)).delete(CONSOLE_KEY_ACCOUNT);
    backend?.child.kill('SIGKILL');
    if (dataDir !== '') rmSync(dataDir, { recursive: true, force: true });
    if (backendDir !== '') rmSync(backendDir, { recursive: true, force: true });
  });

  it('enrols with the private key in the OS store only, and the next start loads the same key and console id', async () => {
    const store = await KeytarSecretStore.open(service);
    assert.equal(await store.get(CONSOLE_KEY_ACCOUNT), null, 'a fresh keyring');
    const first = await start(await consoleToken());
    const enrolled = await until(first, (s) => s.connection === 'online', 'the enrolled console online');
    assert.equal(enrolled.identity.kind, 'enrolled');
    consoleId = enrolled.identity.kind === 'enrolled' ? enrolled.identity.consoleId : '';
    const secret = await store.get(CONSOLE_KEY_ACCOUNT);
    assert.ok(secret !== null, 'the console key is in the OS credential store');
    const key = ConsoleKey.fromPkcs8(Buffer.from(secret, 'base64url'));
    assert.equal(key.publicJwk().crv, 'P-256');
    for (const file of readdirSync(dataDir, { recursive: true, encoding: 'utf8' })) {
      const path = join(dataDir, file);
      if (!statSync(path).isFile()) continue;
      const text = readFileSync(path, 'utf8');
      assert.ok(!text.includes(secret), `${file} does not hold the private key`);
    }
    await first.stop();

    const second = await start();
    const loaded = await until(second, (s) => s.connection === 'online', 'the restarted console online');
    assert.deepEqual(loaded.identity, { kind: 'enrolled', consoleId, channel: 'branch-kiosk' });
    assert.equal(await store.get(CONSOLE_KEY_ACCOUNT), secret, 'the same key, not a new one');
    const { console: record } = (await admin('GET', `/v1/admin/consoles/${consoleId}`)) as {
      console: { online: boolean; revokedAt: number | null };
    };
    assert.equal(record.online, true, 'the backend accepted the signature made with the key from the OS store');
    await second.stop();
  });

  it('a key deleted from the OS store: the console says it must be re-enrolled (key-missing), no crash', async () => {
    const store = await KeytarSecretStore.open(service);
    assert.equal(await store.delete(CONSOLE_KEY_ACCOUNT), true);
    const agent = await start();
    assert.equal(agent.status.identity.kind, 're-enrolment-required');
    assert.equal(agent.status.identity.kind === 're-enrolment-required' && agent.status.identity.reason, 'key-missing');
    assert.equal(agent.status.connection, 'stopped', 'it does not try to connect without a key');
    await assert.rejects(
      agent.authorize('customer.view'),
      (e: unknown) => e instanceof BatonError && e.code === 'CONSOLE_REENROLMENT_REQUIRED',
    );
  });

  it('re-enrolled, then revoked through the admin API: reason revoked, and the key leaves the OS store', async () => {
    const agent = agents.at(-1);
    assert.ok(agent !== undefined);
    await agent.enrolConsole(await consoleToken());
    const enrolled = await until(agent, (s) => s.connection === 'online', 'the re-enrolled console online');
    assert.equal(enrolled.identity.kind, 'enrolled');
    const newId = enrolled.identity.kind === 'enrolled' ? enrolled.identity.consoleId : '';
    assert.notEqual(newId, consoleId, 're-enrolment gives a new console id');
    const store = await KeytarSecretStore.open(service);
    assert.notEqual(await store.get(CONSOLE_KEY_ACCOUNT), null, 'a new key in the OS store');

    await admin('POST', `/v1/admin/consoles/${newId}/revoke`, { reason: 'kiosk stolen' });
    const revoked = await until(
      agent,
      (s) => s.identity.kind === 're-enrolment-required' && s.notice?.code === 'CONSOLE_REVOKED',
      'the revocation applied and shown',
    );
    assert.equal(revoked.identity.kind === 're-enrolment-required' && revoked.identity.reason, 'revoked');
    assert.equal(revoked.connection, 'stopped');
    // The key is deleted after the state is saved; the OS store answers asynchronously.
    const deadline = Date.now() + 5_000;
    while ((await store.get(CONSOLE_KEY_ACCOUNT)) !== null) {
      assert.ok(Date.now() < deadline, 'the revoked console key was removed from the OS store');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await agent.stop();

    const restarted = await start();
    assert.equal(
      restarted.status.identity.kind === 're-enrolment-required' && restarted.status.identity.reason,
      'revoked',
      'a restart remembers the revocation',
    );
  });
});
