/* eslint-disable no-empty-pattern -- Playwright reads fixtures from the first parameter's destructuring pattern; these tests need none. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, expect, type BrowserContext, type Locator, type Page } from '@playwright/test';
import { buildAdminConsole } from '../../backend/admin-console-build.js';
import { DEFAULT_POLICY, type Policy } from '../../shared/policy.js';
import { startTestBackend, type TestBackend } from '../helpers/backend-harness.js';
import { firstAdminInBrowser } from '../helpers/e2e-admin.js';
import { attachScreenshot } from '../helpers/e2e-screenshot.js';
import { enrolService, requestServiceToken, type EnrolledService } from '../helpers/service-account-fixtures.js';

/**
 * The Services page's Revoke button, in Chromium against a real backend: two enrolled services, the
 * admin revokes one from its row (confirming in the dialog), the row shows it revoked and its button
 * goes, the other stays active, and the revoked service's next token request is refused with
 * SERVICE_REVOKED while the other still gets tokens.
 */
test.describe.configure({ mode: 'serial' });

const PAYMENTS = 'https://payments.bank.example';
let t: TestBackend;
let bundleDir: string;
let context: BrowserContext;
let page: Page;
let problems: string[] = [];
let batch: EnrolledService;
let scoring: EnrolledService;

/** The cell of `row` under the column headed `label` (by the table's headers, not a fixed position). */
async function cellUnder(table: Locator, row: Locator, label: string): Promise<Locator> {
  // The table is drawn once its list request answers (and again after a reload): wait for it before reading.
  await expect(table.getByRole('columnheader', { name: label }).first()).toBeVisible();
  await expect(row).toHaveCount(1);
  const headers = (await table.getByRole('columnheader').allTextContents()).map((text) => text.replace(/ [▲▼]$/, ''));
  expect(headers, `a "${label}" column`).toContain(label);
  return row.getByRole('cell').nth(headers.indexOf(label));
}

test.beforeAll(async ({ browser }) => {
  bundleDir = mkdtempSync(join(tmpdir(), 'baton-admin-bundle-'));
  await buildAdminConsole(bundleDir);
  t = await startTestBackend({ adminConsoleDir: bundleDir });
  // The policy's service channel lets services get customer.view tokens for the payments app.
  const current = (await t.admin.ok('GET', '/v1/admin/policy')) as { version: number; policy: Policy };
  const policy: Policy = {
    ...DEFAULT_POLICY,
    apps: [{ audience: PAYMENTS, name: 'Payments', actions: ['customer.view'] }],
    service: { actions: { 'customer.view': { actor: 'none' } } },
  };
  await t.admin.ok('POST', '/v1/admin/policy', { baseVersion: current.version, policy });
  batch = await enrolService(t, 'nightly payments batch', ['customer.view']);
  scoring = await enrolService(t, 'fraud scoring feed', ['customer.view']);
  // Both work before anything is revoked.
  for (const service of [batch, scoring]) {
    const issued = await requestServiceToken(t, service, PAYMENTS, 'customer.view');
    expect(issued.status, JSON.stringify(issued.body)).toBe(200);
  }
  ({ context, page, problems } = await firstAdminInBrowser(browser, t));
});

test.afterAll(async () => {
  await context?.close();
  await t?.stop();
  rmSync(bundleDir, { recursive: true, force: true });
});

test('the admin revokes a service from its row: confirmed, shown revoked, its next token refused', async ({}, info) => {
  await page.getByRole('link', { name: 'Services' }).click();
  const table = page.getByRole('table', { name: 'Service accounts' });
  const batchRow = table.getByRole('row').filter({ hasText: 'nightly payments batch' });
  const scoringRow = table.getByRole('row').filter({ hasText: 'fraud scoring feed' });
  await expect(await cellUnder(table, batchRow, 'state')).toHaveText('active');
  await expect(await cellUnder(table, scoringRow, 'state')).toHaveText('active');

  // The row's button asks first, naming the service and what ends; Cancel changes nothing.
  const revoke = batchRow.getByRole('button', { name: 'Revoke the service nightly payments batch' });
  await revoke.click();
  const dialog = page.getByRole('dialog', { name: 'Revoke the service "nightly payments batch"' });
  await expect(dialog).toBeVisible();
  await expect(dialog).toContainText('Its next token request is refused, on every node');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await expect(dialog).toHaveCount(0);
  expect((await requestServiceToken(t, batch, PAYMENTS, 'customer.view')).status).toBe(200);

  await revoke.click();
  await attachScreenshot(page, info, 'services-revoke-confirm');
  await dialog.getByRole('button', { name: 'Revoke service' }).click();

  // The row shows it revoked (with the reason the page gives) and its button is disabled; the other is untouched.
  await expect(await cellUnder(table, batchRow, 'state')).toHaveText(/^revoked .+: revoked in the admin console$/);
  await expect(revoke).toBeDisabled();
  await expect(await cellUnder(table, scoringRow, 'state')).toHaveText('active');
  await expect(scoringRow.getByRole('button', { name: 'Revoke the service fraud scoring feed' })).toBeEnabled();
  await attachScreenshot(page, info, 'services-revoked');

  // The revoked service's next token request is refused; the other still gets tokens.
  const refused = await requestServiceToken(t, batch, PAYMENTS, 'customer.view');
  expect(refused.status, JSON.stringify(refused.body)).toBe(403);
  expect(refused.body.error.code).toBe('SERVICE_REVOKED');
  expect((await requestServiceToken(t, scoring, PAYMENTS, 'customer.view')).status).toBe(200);
  // Recorded as this admin's revocation.
  const events = await t.backend.events.query({ type: 'service-revoked', limit: 10 });
  expect(events.map((e) => [e.subject.service, e.detail?.['actor']])).toEqual([[batch.id, 'operator:grace']]);
  expect(problems).toEqual([]);
});
