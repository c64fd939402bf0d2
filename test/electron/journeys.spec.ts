import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { _electron, expect, test, type CDPSession, type ElectronApplication, type Page } from '@playwright/test';
import type { AccountChoiceRequest, AgentStatusView, IpcResult } from '../../shared/ipc.js';
import { bundleElectron } from '../../build/bundle-electron.js';
import { startTestBackend, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { SECURITY_KEY } from '../helpers/e2e-fixtures.js';
import { electronRuntimeMissing } from './electron-runtime.js';

/**
 * The operator journeys in the real desktop agent: Electron main process, sandboxed preload, the
 * operator UI served on http://localhost:<port>, workspace views, and a CDP virtual authenticator
 * per security key. Driven through `window.baton` (the preload's API) so the assertions are about
 * the contract and what Electron did (views, partitions), whatever the UI's markup.
 */
const missing = electronRuntimeMissing();
if (missing !== undefined) process.stdout.write(`\n[electron suite] ${missing}\n`);
test.skip(missing !== undefined, missing);

interface Baton {
  getStatus(): Promise<IpcResult<AgentStatusView>>;
  enrolOperator(code: string): Promise<IpcResult<{ operatorId: string; displayName: string; signedIn: boolean }>>;
  tapIn(): Promise<IpcResult<{ id: string; operatorName: string }>>;
  authorize(action: string): Promise<IpcResult<{ outcome: string }>>;
  onAccountChoice(listener: (request: AccountChoiceRequest) => void): () => void;
  chooseAccount(requestId: string, credentialId: string | null): Promise<IpcResult<unknown>>;
}
declare const baton: Baton;

const ROOT = join(import.meta.dirname, '..', '..');

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A stand-in line-of-business app that counts how often it is loaded (a reload would show). */
async function workspaceApp(): Promise<{ url: string; loads: () => number; server: Server }> {
  let loads = 0;
  const server = createServer((req, res) => {
    if (req.url === '/') loads++;
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': "default-src 'none'" });
    res.end('<!doctype html><title>Workspace app</title><h1>Customer records</h1>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://localhost:${(server.address() as AddressInfo).port}/`, loads: () => loads, server };
}

let backend: TestBackend;
let app: ElectronApplication;
let page: Page;
let cdp: CDPSession;
let workspace: Awaited<ReturnType<typeof workspaceApp>>;
let dir: string;

async function addKey(): Promise<string> {
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', { options: SECURITY_KEY });
  return authenticatorId;
}

/** Only `active` answers the next ceremony: the operator holding that key taps it. */
async function holdOnly(active: string, all: string[]): Promise<void> {
  for (const id of all) {
    await cdp.send('WebAuthn.setAutomaticPresenceSimulation', { authenticatorId: id, enabled: id === active });
  }
}

async function enrol(name: string): Promise<string> {
  const { operator } = (await backend.admin.ok('POST', '/v1/admin/operators', { displayName: name })) as Json;
  const { code } = (await backend.admin.ok(
    'POST',
    `/v1/admin/operators/${operator.id as string}/enrolment-codes`,
    {},
  )) as Json;
  const result = await page.evaluate((c) => baton.enrolOperator(c), code as string);
  expect(result.ok, JSON.stringify(result)).toBe(true);
  // Registering the key signs the operator in (issue 12): no second tap.
  expect(result.ok && result.value.signedIn).toBe(true);
  return operator.id as string;
}

async function workspaceViews(): Promise<{ url: string; visible: boolean }[]> {
  return app.evaluate(({ BrowserWindow, WebContentsView }) =>
    (BrowserWindow.getAllWindows()[0]?.contentView.children ?? [])
      .filter((v): v is InstanceType<typeof WebContentsView> => v instanceof WebContentsView)
      .map((v) => ({ url: v.webContents.getURL(), visible: v.getVisible() })),
  );
}

test.beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'baton-electron-e2e-'));
  await bundleElectron(join(ROOT, 'dist', 'app'));
  const origin = `http://localhost:${await freePort()}`;
  backend = await startTestBackend({ origins: [origin] });
  workspace = await workspaceApp();
  const { token } = (await backend.admin.ok('POST', '/v1/admin/console-tokens', { channel: 'contact-centre' })) as Json;
  const configFile = join(dir, 'agent.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      backendUrl: backend.url,
      channel: 'contact-centre',
      origin,
      rpId: 'localhost',
      workspaceAppUrl: workspace.url,
      enrolmentToken: token,
      dataDir: join(dir, 'data'),
      kiosk: false,
    }),
  );
  app = await _electron.launch({
    args: [join(ROOT, 'dist', 'app')],
    env: { ...process.env, BATON_AGENT_CONFIG: configFile },
  });
  page = await app.firstWindow();
  await page.waitForFunction(() => typeof (window as unknown as { baton?: unknown }).baton === 'object');
  cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
});

test.afterAll(async () => {
  await app?.close();
  await backend?.stop();
  workspace?.server.close();
  rmSync(dir, { recursive: true, force: true });
});

test.describe.serial('the desktop agent in Electron', () => {
  let keyNia = '';
  let keyOz = '';

  test('the window is hardened: no Node in the page, no ipcRenderer, no new windows', async () => {
    const exposed = await page.evaluate(() => ({
      require: typeof (window as unknown as { require?: unknown }).require,
      process: typeof (window as unknown as { process?: unknown }).process,
      keys: Object.keys(baton).sort(),
    }));
    expect(exposed.require).toBe('undefined');
    expect(exposed.process).toBe('undefined');
    expect(exposed.keys).not.toContain('ipcRenderer');
    // window.open and navigation away are refused by the guards.
    await page.evaluate(() => window.open('https://example.invalid/'));
    expect(app.windows()).toHaveLength(1);
  });

  test('enrol two operators, each on their own key: registering signs each in, their workspace app in its own view', async () => {
    keyNia = await addKey();
    keyOz = await addKey();
    await holdOnly(keyNia, [keyNia, keyOz]);
    await enrol('Nia Electron');
    await expect.poll(workspaceViews).toEqual([{ url: workspace.url, visible: true }]);
    await holdOnly(keyOz, [keyNia, keyOz]);
    await enrol('Oz Electron');
    await expect.poll(async () => (await workspaceViews()).map((v) => v.visible).sort()).toEqual([false, true]);
    const status = await page.evaluate(() => baton.getStatus());
    expect(status.ok && status.value.front?.operatorName).toBe('Oz Electron');
  });

  test('tap in: Nia’s tap brings her own workspace back to the front, reloading nothing', async () => {
    const loads = workspace.loads();
    await holdOnly(keyNia, [keyNia, keyOz]);
    const tap = await page.evaluate(() => baton.tapIn());
    expect(tap.ok, JSON.stringify(tap)).toBe(true);
    expect(tap.ok && tap.value.operatorName).toBe('Nia Electron');
    await expect.poll(async () => (await workspaceViews()).map((v) => v.visible).sort()).toEqual([false, true]);
    expect(workspace.loads()).toBe(loads);
  });

  test('switch: a second operator suspends the first; switching back reloads nothing', async () => {
    await holdOnly(keyOz, [keyNia, keyOz]);
    expect((await page.evaluate(() => baton.tapIn())).ok).toBe(true);
    await expect.poll(async () => (await workspaceViews()).map((v) => v.visible).sort()).toEqual([false, true]);
    const loads = workspace.loads();
    await holdOnly(keyNia, [keyNia, keyOz]);
    expect((await page.evaluate(() => baton.tapIn())).ok).toBe(true);
    const status = await page.evaluate(() => baton.getStatus());
    expect(status.ok && status.value.front?.operatorName).toBe('Nia Electron');
    expect(workspace.loads()).toBe(loads);
  });

  test('step-up for a risky action', async () => {
    await holdOnly(keyNia, [keyNia, keyOz]);
    const result = await page.evaluate(() => baton.authorize('payment.approve'));
    expect(result.ok && result.value.outcome, JSON.stringify(result)).toBe('allow');
  });

  test('account picker: one key holding two operators asks Baton’s UI which one', async () => {
    const shared = await addKey();
    await holdOnly(shared, [keyNia, keyOz, shared]);
    await enrol('Ana Shared');
    await enrol('Ben Shared');
    // The test answers the picker as the operator would: Ben.
    await page.evaluate(() => {
      baton.onAccountChoice((request) => {
        const ben = request.accounts.find((a) => (a.displayName ?? a.name ?? '').startsWith('Ben'));
        void baton.chooseAccount(request.requestId, ben?.credentialId ?? null);
      });
    });
    const tap = await page.evaluate(() => baton.tapIn());
    expect(tap.ok, JSON.stringify(tap)).toBe(true);
    expect(tap.ok && tap.value.operatorName).toBe('Ben Shared');
  });
});
