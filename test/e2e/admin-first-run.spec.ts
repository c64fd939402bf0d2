import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, expect } from '@playwright/test';
import { encode } from 'uqr';
import { buildAdminConsole } from '../../backend/admin-console-build.js';
import { startTestBackend, type TestBackend } from '../helpers/backend-harness.js';
import { SECURITY_KEY } from '../helpers/e2e-fixtures.js';
import { attachScreenshot } from '../helpers/e2e-screenshot.js';

/**
 * First-run setup when the first admin's security key is on another computer: the setup page
 * creates the admin with the bootstrap token and shows the one-time admin enrolment code (copy,
 * print, QR); a second browser, with the key, registers with that code and is signed in.
 */
let t: TestBackend;
let bundleDir: string;

test.beforeAll(async () => {
  bundleDir = mkdtempSync(join(tmpdir(), 'baton-admin-bundle-'));
  await buildAdminConsole(bundleDir);
  t = await startTestBackend({ adminConsoleDir: bundleDir });
});

test.afterAll(async () => {
  await t?.stop();
  rmSync(bundleDir, { recursive: true, force: true });
});

test('setup shows the first admin’s one-time code for another computer, which registers with it', async ({
  browser,
}, info) => {
  const desk = await browser.newContext({ timezoneId: 'Europe/Paris' });
  const laptop = await browser.newContext();
  try {
    await desk.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: t.url });
    const page = await desk.newPage();
    await page.goto(`${t.url}/admin/`);
    await page.getByLabel(/^Bootstrap token/).fill(t.admin.token);
    await page.getByLabel('Your name').fill('Grace Admin');
    await page.getByLabel('Your admin id').fill('grace');
    await page.getByRole('button', { name: 'Create admin, show the code for another computer' }).click();
    const title = 'Admin enrolment code for Grace Admin';
    const card = page.getByRole('status', { name: title });
    const code = (await card.locator('#setup-code').textContent()) ?? '';
    expect(code).toMatch(/^[A-Z0-9]{4}(-[A-Z0-9]{4}){3}$/);
    await expect(card).toContainText(`open ${t.url}/admin/#/register, type this code`);
    await expect(card).toContainText(/Valid until \d{4}-\d{2}-\d{2} \d{2}:\d{2} \(Europe\/Paris\)/);
    // The QR code holds the code itself.
    const qr = card.getByRole('img', { name: `QR code of the ${title.toLowerCase()}` });
    const { data } = encode(code, { ecc: 'M', border: 2 });
    const expected = data.flatMap((row, y) => row.flatMap((dark, x) => (dark ? [`${x},${y}`] : [])));
    const d = (await qr.locator('path').getAttribute('d')) ?? '';
    expect([...d.matchAll(/M(\d+) (\d+)h1v1h-1z/g)].map((m) => `${m[1]},${m[2]}`).sort()).toEqual(expected.sort());
    await card.getByRole('button', { name: `Copy ${title}` }).click();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(code);
    // The token was used once and is no longer on the page; the fields are locked.
    await expect(page.getByLabel(/^Bootstrap token/)).toHaveValue('');
    await expect(page.getByLabel('Your name')).toBeDisabled();
    await attachScreenshot(page, info, 'setup-code');

    // The computer with the key registers with the code.
    const other = await laptop.newPage();
    const cdp = await laptop.newCDPSession(other);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    await cdp.send('WebAuthn.addVirtualAuthenticator', { options: SECURITY_KEY });
    await other.goto(`${t.url}/admin/#/register`);
    await other.getByLabel('Enrolment code').fill(code);
    await other.getByRole('button', { name: 'Register passkey' }).click();
    await expect(other.locator('#signed-in-as')).toHaveText('Grace Admin (grace)');
    expect((await t.admin.request('GET', '/v1/admin/consoles')).body.error.code).toBe('ADMIN_BOOTSTRAP_DISABLED');

    // Back at the desk, the landing page is now the sign-in page.
    await page.goto(`${t.url}/admin/`);
    await expect(page.getByRole('heading', { name: 'Sign in to the Baton admin console' })).toBeVisible();
    await expect(page.getByRole('alert')).toHaveCount(0);
  } finally {
    await desk.close();
    await laptop.close();
  }
});
