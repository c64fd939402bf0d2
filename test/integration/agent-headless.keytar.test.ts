import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { startTestBackend, type Json, type TestBackend } from '../helpers/backend-harness.js';

const ROOT = join(import.meta.dirname, '..', '..');

interface Run {
  lines: Json[];
  exited: Promise<number | null>;
  waitFor(test: (line: Json) => boolean, ms?: number): Promise<Json>;
  stop(): Promise<number | null>;
}

/** Runs `npm run agent:headless` as IT would (through tsx), with a config file. */
function runHeadless(configFile: string): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'main', 'headless.ts')], {
    cwd: ROOT,
    env: { ...process.env, BATON_AGENT_CONFIG: configFile },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Json[] = [];
  const waiters = new Set<() => void>();
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      try {
        lines.push(JSON.parse(line));
      } catch {
        lines.push({ raw: line });
      }
      for (const w of waiters) w();
    });
  }
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    lines,
    exited,
    waitFor: (predicate, ms = 20_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const hit = lines.find(predicate);
          if (hit === undefined) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching line; got ${JSON.stringify(lines)}`));
        }, ms);
        waiters.add(check);
        check();
      }),
    stop: () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

describe('headless agent: configuration errors', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'baton-headless-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a config file with wrong types stops it with the file, the field and what was expected', async () => {
    const file = join(dir, 'agent.json');
    writeFileSync(file, JSON.stringify({ backendUrl: 8470, channel: 'Branch Kiosk', workspaceAppUrl: 'http://x/' }));
    const run = runHeadless(file);
    assert.equal(await run.exited, 78);
    const fatal = run.lines.find((l) => l.level === 60);
    assert.equal(fatal?.code, 'SCHEMA_INVALID');
    assert.match(fatal?.msg ?? '', new RegExp(`${file}.*backendUrl: .*expected string`));
    assert.match(fatal?.msg ?? '', /channel: expected a channel name/);
  });

  test('an unenrolled console without a token says what IT must do', async () => {
    const file = join(dir, 'unenrolled.json');
    writeFileSync(
      file,
      JSON.stringify({
        backendUrl: 'http://localhost:9',
        channel: 'branch-kiosk',
        workspaceAppUrl: 'http://localhost:9/',
        dataDir: join(dir, 'data-unenrolled'),
      }),
    );
    const run = runHeadless(file);
    assert.equal(await run.exited, 78);
    assert.ok(run.lines.some((l) => l.level === 60 && /enrolmentToken/.test(l.msg as string)));
  });
});

// Needs a real Secret Service: scripts/test.sh runs this file under dbus-run-session with gnome-keyring.
const skip =
  process.env.BATON_SECRET_SERVICE === '1'
    ? false
    : 'needs a real Secret Service: run through scripts/test.sh (dbus-run-session + gnome-keyring)';

describe('headless agent with the OS credential store', { skip }, () => {
  let backend: TestBackend;
  let dir: string;
  before(async () => {
    backend = await startTestBackend();
    dir = mkdtempSync(join(tmpdir(), 'baton-headless-'));
  });
  after(async () => {
    await backend.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('enrols with the token, comes online, and after a restart is the same console without one', async () => {
    const { token } = (await backend.admin.ok('POST', '/v1/admin/console-tokens', { channel: 'branch-kiosk' })) as Json;
    const config = {
      backendUrl: backend.url,
      channel: 'branch-kiosk',
      workspaceAppUrl: 'http://localhost:9/',
      dataDir: join(dir, 'data'),
    };
    const file = join(dir, 'agent.json');
    writeFileSync(file, JSON.stringify({ ...config, enrolmentToken: token }));
    const first = runHeadless(file);
    const online = await first.waitFor((l) => l.status?.connection === 'online');
    const consoleId = online.status.identity.consoleId as string;
    assert.match(consoleId, /^con_/);
    assert.equal(await first.stop(), 0);
    assert.ok(!JSON.stringify(first.lines).includes(token as string), 'the enrolment token is never logged');

    writeFileSync(file, JSON.stringify(config));
    const second = runHeadless(file);
    const again = await second.waitFor((l) => l.status?.connection === 'online');
    assert.equal(again.status.identity.consoleId, consoleId, 'the key came back from the OS store');
    assert.equal(await second.stop(), 0);
  });
});
