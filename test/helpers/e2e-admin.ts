import { expect, type Browser, type BrowserContext, type Page } from '@playwright/test';
import type { TestBackend } from './backend-harness.js';
import { SECURITY_KEY } from './e2e-fixtures.js';

/**
 * A browser signed in to the admin console as its first admin, set up the way a new IT admin does
 * it: the setup page, the bootstrap token, a passkey registered on a virtual security key. Page
 * errors are collected in `problems` for the spec to assert on.
 */
export async function firstAdminInBrowser(
  browser: Browser,
  t: TestBackend,
): Promise<{ context: BrowserContext; page: Page; problems: string[] }> {
  const problems: string[] = [];
  const context = await browser.newContext({ timezoneId: 'Europe/London', locale: 'en-GB' });
  const page = await context.newPage();
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  await cdp.send('WebAuthn.addVirtualAuthenticator', { options: SECURITY_KEY });
  await page.goto(`${t.url}/admin/`);
  await page.getByLabel(/^Bootstrap token/).fill(t.admin.token);
  await page.getByLabel('Your name').fill('Grace Admin');
  await page.getByLabel('Your admin id').fill('grace');
  await page.getByRole('button', { name: 'Create admin and register passkey' }).click();
  await expect(page.locator('#signed-in-as')).toHaveText('Grace Admin (grace)');
  return { context, page, problems };
}
