/* eslint-disable no-empty-pattern -- Playwright reads fixtures from the first parameter's destructuring pattern; these tests need none. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, expect, type BrowserContext, type Page, type TestInfo } from '@playwright/test';
import { buildAdminConsole } from '../../backend/admin-console-build.js';
import { httpJson, startTestBackend, type TestBackend } from '../helpers/backend-harness.js';
import { firstAdminInBrowser } from '../helpers/e2e-admin.js';
import { layoutProblems } from '../helpers/e2e-layout.js';
import { attachScreenshot } from '../helpers/e2e-screenshot.js';

/**
 * The admin console over an estate (issue 12), in Chromium against a real backend: a few hundred
 * consoles and operators seeded straight into its store, searched, filtered, sorted by a column
 * header and paged through with the URL keeping the place; admin API tokens issued and revoked from
 * the browser; operators imported from CSV after a dry run that names each row in error.
 */
test.describe.configure({ mode: 'serial' });

const CONSOLES = 300;
const OPERATORS = 400;
const SITES = ['Leeds', 'York', 'Hull'];

let t: TestBackend;
let bundleDir: string;
let context: BrowserContext;
let page: Page;
let problems: string[] = [];

async function seed(): Promise<void> {
  const store = t.backend.services.store;
  const now = Date.now();
  for (let i = 0; i < CONSOLES; i++) {
    const n = String(i).padStart(3, '0');
    await store.consoles.insert({
      id: `con_e2e${n}`,
      name: `Teller ${n}`,
      channel: 'branch-kiosk',
      site: SITES[i % SITES.length] ?? null,
      publicJwk: '{}',
      jkt: `jkt-e2e-${n}`,
      enrolledAt: now - i * 60_000,
      lastSeenAt: null,
      policyVersion: 1,
      revocationEpoch: 0,
      revokedAt: null,
      revokedReason: null,
    });
  }
  for (let i = 0; i < OPERATORS; i++) {
    const n = String(i).padStart(3, '0');
    await store.operators.insert({
      id: `op_e2e${n}`,
      displayName: i === 123 ? 'Zoë Quinn' : `Operator ${n}`,
      roles: ['teller'],
      webauthnUserId: `wa-e2e-${n}`,
      createdAt: now - i * 60_000,
      failedAttempts: 0,
      revokedAt: null,
      revokedReason: null,
    });
  }
  for (let i = 0; i < 3; i++) {
    await t.backend.services.events.record({
      type: 'admin-action',
      subject: { operator: 'op_e2e123', console: 'con_e2e042' },
      outcome: 'success',
      reasons: ['estate-e2e'],
    });
  }
}

async function checkLayout(p: Page, info: TestInfo, name: string): Promise<void> {
  for (const viewport of [
    { width: 1024, height: 768 },
    { width: 1366, height: 768 },
    { width: 1920, height: 1080 },
  ]) {
    await p.setViewportSize(viewport);
    await attachScreenshot(p, info, `${name}-${viewport.width}`);
    expect(await layoutProblems(p), `${name} at ${viewport.width}`).toEqual([]);
  }
  await p.setViewportSize({ width: 1366, height: 768 });
}

const rows = () => page.locator('#consoles-rows tbody tr');

test.beforeAll(async ({ browser }) => {
  bundleDir = mkdtempSync(join(tmpdir(), 'baton-admin-bundle-'));
  await buildAdminConsole(bundleDir);
  t = await startTestBackend({ adminConsoleDir: bundleDir });
  await seed();
  // The first admin, set up in the browser with the bootstrap token.
  ({ context, page, problems } = await firstAdminInBrowser(browser, t));
});

test.afterAll(async () => {
  await context?.close();
  await t?.stop();
  rmSync(bundleDir, { recursive: true, force: true });
});

test('pages through 300 consoles by name, and the URL keeps the place across a reload and the back button', async ({}, info) => {
  await page.goto(`${t.url}/admin/#/consoles`);
  await expect(rows()).toHaveCount(25);
  await expect(rows().first()).toContainText('Teller 000');
  await expect(page.locator('#consoles-position')).toHaveText('Rows 1–25 of 300');
  await expect(page.locator('#consoles-prev')).toBeDisabled();
  await page.locator('#consoles-next').click();
  await expect(page.locator('#consoles-position')).toHaveText('Rows 26–50 of 300');
  await expect(rows().first()).toContainText('Teller 025');
  await page.locator('#consoles-next').click();
  await expect(rows().first()).toContainText('Teller 050');
  expect(page.url()).toMatch(/#\/consoles\?.*cursor=/);
  await page.reload();
  await expect(rows().first()).toContainText('Teller 050');
  await expect(page.locator('#consoles-position')).toHaveText('Rows 51–75 of 300');
  await page.goBack();
  await expect(rows().first()).toContainText('Teller 025');
  await page.locator('#consoles-prev').click();
  await expect(rows().first()).toContainText('Teller 000');
  await checkLayout(page, info, 'consoles-estate');
});

test('searches and filters consoles by name and site, and sorts by a column header', async () => {
  await page.goto(`${t.url}/admin/#/consoles`);
  await page.locator('#consoles-search').fill('teller 29');
  await page.locator('#consoles-apply').click();
  await expect(page.locator('#consoles-position')).toHaveText('Rows 1–10 of 10');
  await expect(rows().first()).toContainText('Teller 290');
  await page.locator('#consoles-clear').click();
  await page.locator('#consoles-site').fill('york');
  await page.locator('#consoles-apply').click();
  await expect(page.locator('#consoles-position')).toHaveText('Rows 1–25 of 100');
  await expect(rows().first()).toContainText('York');
  // Sorted by name, descending, from the column header.
  await page.locator('#consoles-sort-name').click();
  await expect(page.locator('th[aria-sort="descending"]')).toContainText('console');
  await expect(rows().first()).toContainText('Teller 298');
  expect(page.url()).toContain('site=york');
  await page.locator('#consoles-search').fill('nobody by that name');
  await page.locator('#consoles-apply').click();
  await expect(page.locator('#consoles-empty')).toHaveText('Nothing matches this search.');
});

test('finds an operator among 400 by part of the name, and their events by name', async () => {
  await page.goto(`${t.url}/admin/#/operators?q=${encodeURIComponent('zoë')}`);
  const table = page.locator('#operators-rows tbody tr');
  await expect(table).toHaveCount(1);
  await expect(table.first()).toContainText('Zoë Quinn');
  await page.goto(`${t.url}/admin/#/audit`);
  await page.locator('#events-operator').fill('Zoë Quinn');
  await page.locator('#events-apply').click();
  const events = page.locator('#events-rows tbody tr');
  await expect(events).toHaveCount(3);
  await expect(events.first()).toContainText('Zoë Quinn');
  await expect(events.first()).toContainText('Teller 042 (Leeds)');
});

test('the live view reads pages, not the whole estate: the consoles heard from last, of 300, and a way to all', async () => {
  // Every request the live view makes for consoles or operators must be a page (limit), never the whole list.
  const whole: string[] = [];
  const watch = (request: { url: () => string }) => {
    const url = new URL(request.url());
    if (/^\/v1\/admin\/(consoles|operators)$/.test(url.pathname) && !url.searchParams.has('limit')) {
      whole.push(url.pathname);
    }
  };
  page.on('request', watch);
  await page.goto(`${t.url}/admin/#/live`);
  await expect(page.locator('#live-consoles-shown')).toHaveText(
    'The 25 heard from most recently, of 300. All consoles',
  );
  await expect(page.getByRole('table', { name: 'Consoles' }).locator('tbody tr')).toHaveCount(25);
  // The stream names the operator of an event although no list of all operators was read.
  await expect(page.locator('[data-operator-id="op_e2e123"]').first()).toContainText('Zoë Quinn');
  page.off('request', watch);
  expect(whole).toEqual([]);
  await page.locator('#live-consoles-shown').getByRole('link', { name: 'All consoles' }).click();
  await expect(page.locator('#consoles-position')).toHaveText('Rows 1–25 of 300');
});

test('an admin API token is issued with a passkey, works for a script, and is revoked from the browser', async ({}, info) => {
  await page.getByRole('link', { name: 'API tokens' }).click();
  await page.locator('#api-token-label').fill('nightly report');
  await page.locator('#api-token-issue').click();
  const secret = (await page.locator('#new-api-token').textContent()) ?? '';
  expect(secret).toMatch(/^bapi_/);
  const read = await httpJson(`${t.url}/v1/admin/consoles?q=teller%20001`, {
    method: 'GET',
    headers: { authorization: `Bearer ${secret}` },
  });
  expect(read.status).toBe(200);
  expect((read.body.consoles as { name: string }[]).map((c) => c.name)).toEqual(['Teller 001']);
  await page.reload();
  const row = page
    .getByRole('table', { name: 'Admin API tokens' })
    .getByRole('row')
    .filter({ hasText: 'nightly report' });
  await expect(row).toContainText('active');
  await expect(row.getByRole('cell').nth(6)).toHaveText('1');
  await checkLayout(page, info, 'api-tokens');
  await row.getByRole('button', { name: 'Revoke' }).click();
  await page.locator('#confirm-action').click();
  await expect(row).toContainText('revoked');
  const refused = await httpJson(`${t.url}/v1/admin/consoles`, {
    method: 'GET',
    headers: { authorization: `Bearer ${secret}` },
  });
  expect(refused.body.error.code).toBe('ADMIN_API_TOKEN_REVOKED');
});

test('a CSV dry run names each row in error; the corrected file is imported whole', async () => {
  await page.goto(`${t.url}/admin/#/operators`);
  await page.locator('#import-csv').fill('displayName,roles\nAda Import,teller\n,teller\nBob Import,Teller!');
  await page.locator('#import-dry-run').click();
  const result = page.locator('#import-result');
  await expect(result).toContainText('2 of 3 rows are in error; nothing was stored.');
  await expect(result.getByRole('row').filter({ hasText: 'displayName' })).toContainText('3');
  await expect(result.getByRole('row').filter({ hasText: 'roles' })).toContainText('4');
  await page.locator('#import-csv').fill('displayName,roles\nAda Import,teller\nBob Import,teller;supervisor');
  await page.locator('#import-dry-run').click();
  await expect(result).toContainText('All 2 rows are fine');
  await page.locator('#import-run').click();
  await expect(result).toContainText('Imported 2 operators.');
  const found = await t.admin.ok('GET', '/v1/admin/operators?q=import').catch(() => undefined);
  // The bootstrap token is retired by now: the store says what was imported.
  expect(found).toBeUndefined();
  const imported = (await t.backend.services.store.operators.list()).filter((o) => o.displayName.endsWith(' Import'));
  expect(imported.map((o) => [o.displayName, o.roles])).toEqual([
    ['Ada Import', ['teller']],
    ['Bob Import', ['teller', 'supervisor']],
  ]);
  expect(problems).toEqual([]);
});
