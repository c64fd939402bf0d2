import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test as base, expect } from '@playwright/test';
import { buildAdminConsole } from '../../backend/admin-console-build.js';
import type { Json } from '../helpers/backend-harness.js';
import { UiConsole } from '../helpers/agent-ui-console.js';
import { firstAdminInBrowser } from '../helpers/e2e-admin.js';

/**
 * Break-glass in Chromium (issue 14 item 7), with the real agent core behind the dev bridge, a real
 * backend and the admin console: an operator who forgot their key types their operator ID, a
 * supervisor touches their own (virtual) key on the same console, the capped session comes to the
 * front marked as such and is refused `payment.approve`; the admin reviews it, cannot sign it off
 * while it runs, and signs it off once it has ended; the operator's second request the same day is
 * refused with its code.
 */
const test = base.extend<{ baton: UiConsole }>({
  baton: async ({ context, page }, use) => {
    const bundleDir = mkdtempSync(join(tmpdir(), 'baton-admin-bundle-'));
    await buildAdminConsole(bundleDir);
    const baton = await UiConsole.open(context, page, 'branch-kiosk', { adminConsoleDir: bundleDir });
    try {
      await use(baton);
      expect(baton.problems).toEqual([]);
    } finally {
      await baton.close();
      rmSync(bundleDir, { recursive: true, force: true });
    }
  },
});

test('a supervisor’s tap lets in an operator without their key, capped, reviewed, and limited', async ({
  baton,
  page,
  browser,
}) => {
  // The kiosk and the admin console in one journey: longer than the default minute on a loaded machine.
  test.setTimeout(150_000);
  const admin = baton.backend.admin;
  // The console, enrolled by IT.
  const { token } = (await admin.ok('POST', '/v1/admin/console-tokens', {
    channel: 'branch-kiosk',
    site: 'Leeds',
  })) as Json;
  await page.getByRole('textbox', { name: 'Console enrolment token from IT' }).fill(token as string);
  await page.getByRole('button', { name: 'Enrol this console' }).click();
  await expect(page.getByRole('heading', { name: 'Tap your key' })).toBeVisible();

  // The policy: break-glass for "customer.view" only, once per operator per day, approved by supervisors.
  const current = (await admin.ok('GET', '/v1/admin/policy')) as Json;
  const published = (await admin.ok('POST', '/v1/admin/policy', {
    baseVersion: current.version,
    policy: {
      ...current.policy,
      breakGlass: {
        lifetimeSeconds: 900,
        actions: ['customer.view'],
        maxPerOperatorPerDay: 1,
        maxPerSitePerDay: 5,
        approverRoles: ['supervisor'],
      },
    },
  })) as Json;
  await expect.poll(() => baton.bridge.agent.status.policyVersion).toBe(published.version);

  // Sam, a supervisor, registers his key on this console; Fay has none with her today.
  await admin.ok('POST', '/v1/admin/operators', { id: 'sam', displayName: 'Sam Supervisor', roles: ['supervisor'] });
  const { code } = (await admin.ok('POST', '/v1/admin/operators/sam/enrolment-codes', {})) as Json;
  await baton.use(baton.key('Sam'));
  await page.getByRole('button', { name: 'First time here? Register your key' }).click();
  await page.getByRole('textbox', { name: 'Enrolment code' }).fill(code as string);
  await page.getByRole('button', { name: 'Register my key' }).click();
  // Registering signs Sam in (issue 12); he locks the console before Fay comes to it.
  await expect(page.getByTestId('workspace')).toHaveAttribute('data-operator', 'Sam Supervisor');
  await page.getByRole('button', { name: 'Lock' }).click();
  await admin.ok('POST', '/v1/admin/operators', { id: 'fay', displayName: 'Fay Teller', roles: ['teller'] });

  // The lock screen names nobody: Fay types her operator ID, Sam touches his own key.
  await page.getByRole('button', { name: 'Forgot your key?' }).click();
  await expect(page.getByTestId('break-glass')).not.toContainText('Sam Supervisor');
  await page.getByRole('textbox', { name: 'Your operator ID' }).fill('fay');
  await page.getByRole('button', { name: 'Ask a supervisor to approve' }).click();
  await expect(page.getByRole('heading', { name: 'Fay Teller', exact: true })).toBeVisible();
  // Said as what it is (issue 14): temporary access approved by Sam, by the name Fay knows him by (issue 12),
  // never by his operator id nor as a "key tap"; what it may do right under it.
  const level = page.locator('#workspace-level');
  await expect(level).toContainText('Temporary access approved by supervisor Sam Supervisor, without your key · ends ');
  await expect(level).not.toContainText('supervisor sam,');
  await expect(level).not.toContainText('key tap');
  await expect(page.getByTestId('break-glass-mark')).toContainText('Only: View a customer');
  await expect(page.getByTestId('workspace')).not.toContainText('Signed in with');
  // The console assurance token carries the break-glass claim, as its events and action tokens do.
  const claims = JSON.parse(
    Buffer.from((baton.bridge.agent.frontToken ?? '').split('.')[1] ?? '', 'base64url').toString('utf8'),
  ) as Json;
  expect(claims.break_glass).toBe(true);
  // A reload (a shared screen) still says it: the marks come from the agent, not from the page's memory.
  await page.reload();
  await expect(level).toContainText('Temporary access approved by supervisor Sam Supervisor, without your key');
  await expect(page.getByTestId('break-glass-mark')).toContainText('Only: View a customer');

  // Capped: a payment approval is refused outright (no step-up can lift it), a customer lookup is allowed.
  await page.getByRole('button', { name: 'Approve payment' }).click();
  await expect(page.getByTestId('action-result')).toContainText('Not allowed: Approve a payment');
  await expect(page.getByTestId('action-result')).toContainText(
    'temporary access without your key does not allow this',
  );
  await page.getByRole('button', { name: 'View customer' }).click();
  await expect(page.getByTestId('action-result')).toContainText('Allowed: View a customer');

  // The admin reviews it in the admin console: who, how, approved by whom. While Fay's session runs it
  // cannot be signed off (a review covers all it did): the page says so, and the grant stays to review.
  const adminBrowser = await firstAdminInBrowser(browser, baton.backend);
  try {
    const adminPage = adminBrowser.page;
    await adminPage.getByRole('link', { name: 'Break-glass' }).click();
    const row = adminPage.locator('#break-glass-list tr', { hasText: 'fay' });
    await expect(row).toContainText('supervisor’s tap');
    await expect(row).toContainText('supervisor Sam Supervisor');
    await expect(row).toContainText('Leeds');
    await row.getByRole('textbox', { name: 'Review note for fay' }).fill('Sam confirmed Fay left her key at home');
    await row.getByRole('button', { name: 'Sign off' }).click();
    const refusal = adminPage.getByRole('alert');
    await expect(refusal).toContainText('Not signed off: the temporary access of Fay Teller is still running');
    await expect(refusal).toContainText('BREAK_GLASS_SESSION_ACTIVE');
    await expect(refusal.getByRole('link', { name: 'Fay Teller' })).toHaveAttribute('href', '#/operators/fay');
    await expect(row.getByRole('button', { name: 'Sign off' })).toBeVisible();
    // Fay's session still works within its terms.
    await page.getByRole('button', { name: 'View customer' }).click();
    await expect(page.getByTestId('action-result')).toContainText('Allowed: View a customer');

    // Fay signs out; once her session has ended, the admin signs the access off.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expect(page.getByRole('heading', { name: 'Tap your key' })).toBeVisible();
    // The agent tells the backend the session ended as soon as it can: the admin signs off once it knows.
    // Tried again while the backend still answers 409 (the session not ended yet); once it answers 200 the list is
    // read again (however long that takes) and has nothing left to review.
    await expect(async () => {
      const answer = adminPage.waitForResponse((r) => r.url().endsWith('/sign-off'), { timeout: 5000 });
      await row.getByRole('button', { name: 'Sign off' }).click({ timeout: 2000 });
      expect((await answer).status()).toBe(200);
    }).toPass();
    await expect(adminPage.locator('#break-glass-list')).toContainText('Nothing to review');
    await adminPage.getByRole('button', { name: 'Show the last 30 days' }).click();
    await expect(adminPage.locator('#break-glass-list')).toContainText('Sam confirmed Fay left her key at home');
    // The pictures page counts break-glass sessions per operator and per site.
    await adminPage.getByRole('link', { name: 'Pictures' }).click();
    await expect(adminPage.locator('#chart-break-glass-operators')).toContainText('Fay Teller 1');
    await expect(adminPage.locator('#chart-break-glass-sites')).toContainText('Leeds 1');
    expect(adminBrowser.problems).toEqual([]);
  } finally {
    await adminBrowser.context.close();
  }

  // A second request today is past the policy's limit, refused with its code.
  await page.getByRole('button', { name: 'Forgot your key?' }).click();
  await page.getByRole('textbox', { name: 'Your operator ID' }).fill('fay');
  await page.getByRole('button', { name: 'Ask a supervisor to approve' }).click();
  await expect(page.getByTestId('break-glass-result')).toContainText('(For IT: BREAK_GLASS_LIMIT_REACHED)');
  await expect(page.getByRole('heading', { name: 'Tap your key' })).toBeVisible();
});
