/* eslint-disable no-empty-pattern -- Playwright reads fixtures from the first parameter's destructuring pattern; these tests need none. */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, expect, type BrowserContext, type Page } from '@playwright/test';
import { buildAdminConsole } from '../../backend/admin-console-build.js';
import { httpJson, startTestBackend, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { firstAdminInBrowser } from '../helpers/e2e-admin.js';
import { layoutProblems } from '../helpers/e2e-layout.js';
import { attachScreenshot } from '../helpers/e2e-screenshot.js';

/**
 * The Integrations page (issue 13's admin console), in Chromium against a real backend: a SIEM
 * collector that refuses, shown failing with its answer, then caught up once it takes batches; a
 * Shared Signals stream a receiver created, paused and resumed from the page.
 */
test.describe.configure({ mode: 'serial' });

let t: TestBackend;
let bundleDir: string;
let context: BrowserContext;
let page: Page;
let collector: Server;
let collectorAnswers = 503;
let received = 0;
let problems: string[] = [];

test.beforeAll(async ({ browser }) => {
  collector = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (collectorAnswers === 202)
        received += (JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown[]).length;
      res.writeHead(collectorAnswers).end();
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  const port = (collector.address() as AddressInfo).port;
  bundleDir = mkdtempSync(join(tmpdir(), 'baton-admin-bundle-'));
  await buildAdminConsole(bundleDir);
  t = await startTestBackend({
    adminConsoleDir: bundleDir,
    siem: { sinks: [{ name: 'lake', kind: 'http', url: `http://127.0.0.1:${port}/ocsf`, timeoutSeconds: 2 }] },
  });
  // A receiver (the core-banking app) creates a poll stream with the token an admin issued for it.
  const issued = (await t.admin.ok('POST', '/v1/admin/ssf/receivers', {
    name: 'Core banking',
    scopes: ['ssf.manage', 'ssf.read'],
  })) as Json;
  const created = await httpJson(`${t.url}/ssf/streams`, {
    method: 'POST',
    headers: { authorization: `Bearer ${issued.token as string}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      delivery: { method: 'urn:ietf:rfc:8936' },
      events_requested: ['https://schemas.openid.net/secevent/caep/event-type/session-revoked'],
    }),
  });
  expect(created.status).toBe(201);
  // The first admin, set up in the browser with the bootstrap token.
  ({ context, page, problems } = await firstAdminInBrowser(browser, t));
});

test.afterAll(async () => {
  await context?.close();
  await t?.stop();
  await new Promise<void>((resolve) => (collector ? collector.close(() => resolve()) : resolve()));
  rmSync(bundleDir, { recursive: true, force: true });
});

test('shows a SIEM collector that refuses with its answer, then caught up once it takes the batches', async ({}, info) => {
  await page.getByRole('link', { name: 'Integrations' }).click();
  const sink = page.getByRole('table', { name: 'SIEM sinks' }).getByRole('row').filter({ hasText: 'lake' });
  await expect(async () => {
    await page.reload();
    await expect(sink).toContainText('failing', { timeout: 1000 });
  }).toPass({ timeout: 15_000 });
  await expect(sink).toContainText('answered 503');
  await expect(sink).toContainText(/\d+ event\(s\)/);
  for (const viewport of [
    { width: 1024, height: 768 },
    { width: 1366, height: 768 },
    { width: 1920, height: 1080 },
  ]) {
    await page.setViewportSize(viewport);
    await attachScreenshot(page, info, `integrations-${viewport.width}`);
    expect(await layoutProblems(page), `integrations at ${viewport.width}`).toEqual([]);
  }
  await page.setViewportSize({ width: 1366, height: 768 });

  collectorAnswers = 202;
  await expect(async () => {
    await page.reload();
    await expect(sink).toContainText('up to date', { timeout: 1000 });
  }).toPass({ timeout: 30_000 });
  await expect(sink).toContainText('delivering');
  expect(received).toBeGreaterThan(0);
});

test('pauses and resumes a Shared Signals stream, naming the receiver it stops', async () => {
  await page.goto(`${t.url}/admin/#/integrations`);
  const stream = page.getByRole('table', { name: 'Shared Signals streams out' }).getByRole('row').nth(1);
  await expect(stream).toContainText('enabled');
  await expect(stream).toContainText('poll');
  await stream.getByRole('button', { name: 'Pause' }).click();
  await expect(page.getByRole('dialog')).toContainText('Pause the stream to');
  await page.locator('#confirm-action').click();
  await expect(stream).toContainText('paused');
  await stream.getByRole('button', { name: 'Resume' }).click();
  await page.locator('#confirm-action').click();
  await expect(stream).toContainText('enabled');
  expect(problems).toEqual([]);
});
