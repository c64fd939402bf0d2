/* eslint-disable no-empty-pattern -- Playwright reads fixtures from the first parameter's destructuring pattern; these tests need none. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, expect, type BrowserContext, type Page, type TestInfo } from '@playwright/test';
import { buildAdminConsole } from '../../backend/admin-console-build.js';
import { policyHash } from '../../backend/services/policy-hash.js';
import { ConsoleKey } from '../../main/core/console-key.js';
import {
  httpJson,
  startTestBackend,
  TestConsole,
  type ConsoleSocket,
  type TestBackend,
} from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { SECURITY_KEY } from '../helpers/e2e-fixtures.js';
import { WIDE_VIEWPORTS, expectClickable, layoutProblems } from '../helpers/e2e-layout.js';
import { attachScreenshot } from '../helpers/e2e-screenshot.js';

/**
 * What a new IT admin tripped over on day one, in the admin console in Chromium against a real
 * backend: the operator page's cards overlapping, the live view scrolling sideways, a console that
 * runs the current policy shown as "v0", a console revocation never shown as acknowledged, and a
 * failed sign-in that showed a library's internal code and a link. One backend for the story.
 */
test.describe.configure({ mode: 'serial' });

let t: TestBackend;
let bundleDir: string;
let context: BrowserContext;
let page: Page;
let kiosk: TestConsole;
let socket: ConsoleSocket;
let adaId: string;

/** A console enrolled as the agent enrols one: with no name, so the admin console shows its id. */
async function enrolUnnamedConsole(): Promise<TestConsole> {
  const { token } = await t.admin.ok('POST', '/v1/admin/console-tokens', { channel: 'branch-kiosk' });
  const key = ConsoleKey.generate();
  const body = JSON.stringify({ token, publicKey: key.publicJwk(), channel: 'branch-kiosk' });
  const path = '/v1/consoles/enrol';
  const result = await httpJson(`${t.url}${path}`, {
    method: 'POST',
    headers: key.signRequest({ consoleId: undefined, method: 'POST', path, body, now: Date.now() }),
    body,
  });
  expect(result.status).toBe(201);
  return new TestConsole(t.url, key, (result.body as { consoleId: string }).consoleId);
}

async function shot(info: TestInfo, name: string): Promise<void> {
  await attachScreenshot(page, info, name);
}

test.beforeAll(async ({ browser }) => {
  bundleDir = mkdtempSync(join(tmpdir(), 'baton-admin-bundle-'));
  await buildAdminConsole(bundleDir);
  t = await startTestBackend({ adminConsoleDir: bundleDir });
  // A console freshly enrolled: it got the current policy with its enrolment, and says so in its hello.
  kiosk = await TestConsole.enrol(t.url, t.admin, 'branch-kiosk');
  socket = await kiosk.connect({ hello: false });
  const current = t.backend.policies.version;
  socket.send({
    type: 'hello',
    protocol: 1,
    policyVersion: current.version,
    policyHash: policyHash(current),
    revocationEpoch: 0,
    agentVersion: 'test',
  });
  await socket.next('welcome');
  // An operator with a passkey, a live session and two unused enrolment codes.
  const ada = await enrolOperator(t.admin, kiosk, { displayName: 'Ada Teller' });
  adaId = ada.operatorId;
  expect((await signIn(kiosk, ada.authenticator)).status).toBe(200);
  // Bob signs in on a console with no name (shown by its id), as the agent enrols them.
  const unnamed = await enrolUnnamedConsole();
  const bob = await enrolOperator(t.admin, unnamed, { displayName: 'Bob Cashier-Longname' });
  expect((await signIn(unnamed, bob.authenticator)).status).toBe(200);
  for (let i = 0; i < 2; i++) await t.admin.ok('POST', `/v1/admin/operators/${adaId}/enrolment-codes`, {});
  const first = await t.admin.ok('POST', '/v1/admin/bootstrap', { displayName: 'Grace Admin', id: 'grace' });

  context = await browser.newContext();
  page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  await cdp.send('WebAuthn.addVirtualAuthenticator', { options: SECURITY_KEY });
  await page.goto(`${t.url}/admin/#/register`);
  await page.getByLabel('Enrolment code').fill(first.code as string);
  await page.getByRole('button', { name: 'Register passkey' }).click();
  await expect(page.locator('#signed-in-as')).toHaveText('Grace Admin (grace)');
});

test.afterAll(async () => {
  await socket?.close();
  await context?.close();
  await t?.stop();
  rmSync(bundleDir, { recursive: true, force: true });
});

test('the live view does not scroll sideways at 1366 px, with someone signed in', async ({}, info) => {
  await page.setViewportSize({ width: 1366, height: 768 });
  await page.goto(`${t.url}/admin/#/live`);
  await expect(page.getByRole('table', { name: 'Signed in now' })).toContainText('Ada Teller');
  await expect(page.getByRole('table', { name: 'Signed in now' })).toContainText('Bob Cashier-Longname');
  await expect(page.getByRole('table', { name: 'Consoles' })).toContainText('online');
  await shot(info, 'live-1366');
  expect(await layoutProblems(page)).toEqual([]);
});

test('the operator page lays its cards out without overlap at 1366 and 1920 px, every Revoke button clickable', async ({}, info) => {
  await page.goto(`${t.url}/admin/#/operators/${adaId}`);
  await expect(page.getByRole('table', { name: 'Passkeys' })).toBeVisible();
  await expect(page.getByRole('table', { name: 'Enrolment codes' }).getByText('usable')).toHaveCount(2);
  await expect(page.locator('#operator-sessions')).toContainText('active');
  for (const viewport of WIDE_VIEWPORTS) {
    await page.setViewportSize(viewport);
    await shot(info, `operator-${viewport.width}`);
    expect(await layoutProblems(page), `at ${viewport.width} px`).toEqual([]);
    await expectClickable(page.getByRole('table', { name: 'Passkeys' }).getByRole('button', { name: /Revoke/ }));
    await expectClickable(page.getByRole('table', { name: 'Enrolment codes' }).getByRole('button', { name: /Revoke/ }));
  }
});

test('a revoked operator’s unused enrolment codes no longer read “usable”', async ({}, info) => {
  await page.getByLabel('Reason for a revocation or reinstatement (audit trail)').fill('Left the bank');
  await page.getByRole('button', { name: 'Revoke operator everywhere' }).click();
  const confirm = page.getByRole('dialog', { name: 'Revoke operator Ada Teller everywhere' });
  await confirm.getByLabel('To confirm, type the name “Ada Teller”').fill('Ada Teller');
  await confirm.getByRole('button', { name: 'Revoke operator everywhere' }).click();
  await expect(page.locator('#revocation-result')).toContainText('Sessions ended: 1');
  await expect(page.getByRole('heading', { name: /Ada Teller/ })).toContainText('revoked');
  const codes = page.getByRole('table', { name: 'Enrolment codes' });
  await expect(codes.getByText('not usable: operator revoked')).toHaveCount(2);
  await expect(codes.getByText('usable', { exact: true })).toHaveCount(0);
  for (const button of await codes.getByRole('button', { name: /Revoke/ }).all()) await expect(button).toBeDisabled();
  await shot(info, 'operator-revoked');
});

test('a console enrolled with the current policy shows that version, not “v0”', async ({}, info) => {
  const version = t.backend.policies.version.version;
  expect(version).toBeGreaterThan(0);
  await page.getByRole('link', { name: 'Consoles' }).click();
  const row = page.getByRole('table', { name: 'Consoles' }).getByRole('row').filter({ hasText: 'test console' });
  await expect(row).toContainText(`v${version}`);
  await expect(row).not.toContainText('v0');
  await page.getByRole('link', { name: 'Policy' }).click();
  const byVersion = page.getByRole('table', { name: 'Consoles by policy version' });
  await expect(byVersion.getByRole('row').filter({ hasText: 'test console' })).toContainText(`v${version} (current)`);
  await expect(byVersion.getByRole('row').filter({ hasText: 'test console' })).not.toContainText('none yet');
  await shot(info, 'policy-versions');
});

test('a console revocation shows as acknowledged once the console has it, with its bar in the chart', async ({}, info) => {
  await page.getByRole('link', { name: 'Consoles' }).click();
  await page.getByRole('table', { name: 'Consoles' }).getByRole('link', { name: 'test console' }).click();
  await page.getByLabel('Reason for revocation').fill('Stolen from the branch');
  await page.getByRole('button', { name: 'Revoke console' }).click();
  const confirm = page.getByRole('dialog', { name: 'Revoke console test console' });
  await expect(confirm).toContainText('Nobody is signed in on it: no session ends.');
  await confirm.getByRole('button', { name: 'Revoke console' }).click();
  await expect(page.locator('#propagation')).toContainText(
    /Reached 1 of 1 console\(s\); slowest acknowledgement \d+ ms/,
  );
  await shot(info, 'console-revoked');
  await page.getByRole('link', { name: 'Pictures' }).click();
  const chart = page.getByRole('figure', { name: 'Revocation propagation (slowest console acknowledgement)' });
  await expect(chart.getByRole('img')).toBeVisible();
  // The operator revocation before it went to a console that never acknowledged it: no bar; this one has one.
  const bars = chart.locator('svg[role="img"] rect.bar-accent');
  await expect(bars).toHaveCount(2);
  expect(Number(await bars.last().getAttribute('height'))).toBeGreaterThan(0);
  await shot(info, 'pictures');
});

test('a failed admin sign-in says what happened in plain words, with no internal code or link', async ({
  browser,
}, info) => {
  // Another browser whose authenticator holds no passkey for this admin console.
  const other = await browser.newContext();
  try {
    const stranger = await other.newPage();
    const cdp = await other.newCDPSession(stranger);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    await cdp.send('WebAuthn.addVirtualAuthenticator', { options: SECURITY_KEY });
    await stranger.goto(`${t.url}/admin/`);
    await stranger.getByRole('button', { name: 'Sign in with a passkey' }).click();
    const alert = stranger.getByRole('alert').filter({ hasText: 'Sign-in failed' });
    await expect(alert).toContainText('No passkey was used');
    await expect(alert).not.toContainText('ERROR_');
    await expect(alert).not.toContainText('http');
    const path = info.outputPath('sign-in-failed.png');
    await stranger.screenshot({ path });
    await info.attach('sign-in-failed', { path, contentType: 'image/png' });
  } finally {
    await other.close();
  }
});
