import { test as base, expect, type Locator, type Page, type TestInfo } from '@playwright/test';
import { UiConsole } from '../helpers/agent-ui-console.js';

/**
 * The operator UI in Debian's Chromium, served by the UI server exactly as the shell serves it,
 * with the real agent core in this process behind the dev bridge, a real backend on a fake clock
 * the agent shares, and one CDP virtual authenticator per operator (plugged in before each tap).
 * Each screen is screenshotted (attached, and under test-results/) and checked for accessible
 * names and touch-target sizes.
 */
const test = base.extend<{ baton: UiConsole }>({
  baton: async ({ context, page }, use) => {
    const baton = await UiConsole.open(context, page);
    try {
      await use(baton);
      expect(baton.problems).toEqual([]);
    } finally {
      await baton.close();
    }
  },
});

const workspace = (page: Page) => page.getByTestId('workspace');
const notice = (page: Page) => page.getByTestId('notice');

/** The notice box is on screen and says `text`. */
async function expectNotice(page: Page, text: string): Promise<void> {
  await expect(notice(page)).toBeVisible();
  await expect(notice(page)).toContainText(text);
}

/** Screenshot + accessibility check of what is on screen now. */
async function screen(page: Page, info: TestInfo, name: string): Promise<void> {
  const path = info.outputPath(`${name}.png`);
  await page.screenshot({ path, fullPage: true });
  await info.attach(name, { path, contentType: 'image/png' });
  // Every control in the accessibility tree Chromium builds has a name.
  const tree = await page.locator('body').ariaSnapshot();
  const unnamed = tree
    .split('\n')
    .filter((line) => /^\s*- (button|textbox|link|checkbox|combobox)\s*(\[.*\])?:?$/.test(line));
  expect(unnamed, `${name}: controls without an accessible name\n${tree}`).toEqual([]);
  // Touch targets of at least 44 × 44 CSS px.
  const small = await page.$$eval('button, input, a[href]', (elements) =>
    elements
      .filter((e) => (e as HTMLElement).offsetParent !== null)
      .map((e) => ({ text: e.textContent ?? e.id, box: e.getBoundingClientRect() }))
      .filter(({ box }) => box.height < 44 || box.width < 44)
      .map(({ text, box }) => `${text.trim()} ${box.width}×${box.height}`),
  );
  expect(small, `${name}: touch targets under 44 px`).toEqual([]);
}

async function expectWorkspaceOf(page: Page, name: string): Promise<void> {
  await expect(workspace(page)).toBeVisible();
  await expect(workspace(page)).toHaveAttribute('data-operator', name);
  await expect(page.getByRole('heading', { level: 2, name: `${name}’s workspace` })).toBeVisible();
}

function switcherEntry(page: Page, name: string): Locator {
  return page.locator('#screen-lock:not([hidden]) .people li, #screen-workspace:not([hidden]) .people li', {
    hasText: name,
  });
}

test('an operator enrols the console and their key, taps in, locks when idle and resumes; a second operator switches in and out', async ({
  baton,
  page,
}, info) => {
  test.setTimeout(60_000);
  // ---- console enrolment with a token from IT ----
  await expect(page.getByRole('heading', { name: 'Set up this console' })).toBeVisible();
  await expect(page.getByRole('textbox', { name: 'Console enrolment token from IT' })).toBeFocused();
  await screen(page, info, '01-console-enrolment');
  await page.getByRole('textbox', { name: 'Console enrolment token from IT' }).fill('not-a-real-token-at-all');
  await page.getByRole('button', { name: 'Enrol this console' }).click();
  await expectNotice(page, 'That console enrolment token is not right');
  await expectNotice(page, 'For IT: ENROLMENT_TOKEN_INVALID');
  await page.getByRole('textbox', { name: 'Console enrolment token from IT' }).fill(await baton.consoleToken());
  await page.getByRole('button', { name: 'Enrol this console' }).click();
  await expect(page.getByRole('heading', { name: 'Tap your key' })).toBeVisible();
  await expect(page.getByTestId('connection')).toHaveText('Online');
  await screen(page, info, '02-lock-screen-empty');

  // ---- operator enrolment with a code, keyboard only ----
  const ada = await baton.newOperator('Ada Teller');
  const adaKey = await baton.use(baton.key('Ada'));
  await expect(page.getByRole('button', { name: 'Tap your key to sign in' })).toBeFocused();
  await page.keyboard.press('Tab');
  await expect(page.getByRole('button', { name: 'First time here? Register your key' })).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(page.getByRole('textbox', { name: 'Enrolment code' })).toBeFocused();
  await screen(page, info, '03-operator-enrolment');
  await page.keyboard.type(ada.code);
  await page.keyboard.press('Enter');

  // ---- registering the key signs her in (issue 12): her workspace, no second tap ----
  await expectWorkspaceOf(page, 'Ada Teller');
  await expect(page.getByRole('heading', { level: 1, name: 'Ada Teller' })).toBeFocused();
  await expect(notice(page)).toBeHidden();
  await expect(page.getByText('Signed in with a key with PIN or fingerprint ·')).toBeVisible();
  await screen(page, info, '04-workspace-ada');

  // ---- idle lock on the agent's clock, then the same operator resumes ----
  const idle = baton.bridge.agent.status.limits?.idleLockSeconds ?? 0;
  expect(idle).toBeGreaterThan(0);
  await baton.clock.advance(idle * 1000 + 1);
  await expect(page.getByRole('heading', { name: 'Tap your key' })).toBeVisible();
  await expect(workspace(page)).toBeHidden();
  await expect(switcherEntry(page, 'Ada Teller')).toContainText('in front, locked');
  await screen(page, info, '05-lock-screen-idle');
  const before = baton.bridge.agent.status.front?.id;
  await page.getByRole('button', { name: 'Tap your key to sign in' }).click();
  await expectWorkspaceOf(page, 'Ada Teller');
  expect(baton.bridge.agent.status.front?.id).toBe(before);

  // ---- a second operator enrols, which signs him in; the first is suspended ----
  const bob = await baton.newOperator('Bob Cashier');
  await page.getByRole('button', { name: 'Lock' }).click();
  await page.getByRole('button', { name: 'First time here? Register your key' }).click();
  await baton.use(baton.key('Bob'));
  await page.getByRole('textbox', { name: 'Enrolment code' }).fill(bob.code);
  await page.getByRole('button', { name: 'Register my key' }).click();
  await expectWorkspaceOf(page, 'Bob Cashier');
  await expect(switcherEntry(page, 'Ada Teller')).toContainText('waiting: tap your key to switch back');
  await expect(switcherEntry(page, 'Bob Cashier')).toContainText('in front now');
  await screen(page, info, '06-switcher-two-operators');

  // ---- switch back: Ada taps while Bob is in front ----
  await baton.use(adaKey);
  await page.getByRole('button', { name: 'Switch operator' }).click();
  await expectWorkspaceOf(page, 'Ada Teller');
  // The prompt's focus and the window's title follow her workspace (a frame after it is drawn).
  await expect(page.getByRole('heading', { level: 1, name: 'Ada Teller' })).toBeFocused();
  await expect(page).toHaveTitle('Baton — Ada Teller');
  await expect(switcherEntry(page, 'Bob Cashier')).toContainText('waiting');
  expect(baton.bridge.agent.status.sessions.map((s) => [s.operatorName, s.state])).toEqual([
    ['Ada Teller', 'active'],
    ['Bob Cashier', 'suspended'],
  ]);
  expect(ada.operatorId).toBe(baton.bridge.agent.status.front?.operatorId);

  // ---- Ada signs out: her session ends, Bob's waits ----
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expectNotice(page, 'Ada Teller signed out.');
  await expect(page.getByRole('heading', { name: 'Tap your key' })).toBeVisible();
  await expect(switcherEntry(page, 'Ada Teller')).toHaveCount(0);
  await expect(switcherEntry(page, 'Bob Cashier')).toContainText('waiting');
  await screen(page, info, '06b-signed-out');
});

test('step-up names the action and why; a failed check changes nothing; IT revokes the session on screen; offline, a suspended operator comes back within the grace; a revoked console asks to be re-enrolled', async ({
  baton,
  page,
}, info) => {
  test.setTimeout(60_000);
  await page.getByRole('textbox', { name: 'Console enrolment token from IT' }).fill(await baton.consoleToken());
  await page.getByRole('button', { name: 'Enrol this console' }).click();
  const enrol = async (name: string) => {
    const { operatorId, code } = await baton.newOperator(name);
    const key = await baton.use(baton.key(name));
    await page.getByRole('button', { name: 'First time here? Register your key' }).click();
    await page.getByRole('textbox', { name: 'Enrolment code' }).fill(code);
    await page.getByRole('button', { name: 'Register my key' }).click();
    // Registering signs the newcomer in (issue 12); they lock before the next one comes.
    await expectWorkspaceOf(page, name);
    await page.getByRole('button', { name: 'Lock' }).click();
    return { operatorId, key };
  };
  const carol = await enrol('Carol Clerk');
  const dan = await enrol('Dan Desk');

  // Dan signs in, then Carol with a plain touch (no PIN): a presence-level session in front.
  await page.getByRole('button', { name: 'Tap your key to sign in' }).click();
  await expectWorkspaceOf(page, 'Dan Desk');
  await baton.use(carol.key);
  await carol.key.presenceOnly(true);
  await page.getByRole('button', { name: 'Switch operator' }).click();
  await expectWorkspaceOf(page, 'Carol Clerk');
  await expect(page.getByText('Signed in with a key tap ·')).toBeVisible();

  // ---- step-up: the prompt names the action and why; with the key away, she cancels ----
  await carol.key.unplug();
  await page.getByRole('button', { name: 'Approve payment' }).click();
  const prompt = page.getByRole('dialog', { name: 'Confirm it’s you: Approve a payment' });
  await expect(prompt).toBeVisible();
  await expect(prompt).toContainText('Why: it needs a stronger check than the one you signed in with.');
  await expect(prompt).toContainText('Only Carol Clerk can confirm this');
  await expect(page.getByRole('button', { name: 'Cancel' })).toBeFocused();
  await screen(page, info, '07-step-up-prompt');
  await page.keyboard.press('Enter');
  await expect(prompt).toBeHidden();
  // A deliberate cancel is said once, where she looked, and not as an error.
  await expect(page.getByTestId('action-result')).toHaveText('Cancelled: Approve a payment was not done.');
  await expect(notice(page)).toBeHidden();

  // A failed PIN/fingerprint check gives no assertion: refused, the session unchanged.
  await baton.use(carol.key);
  await carol.key.presenceOnly(false);
  await carol.key.setUserVerified(false);
  await page.getByRole('button', { name: 'Approve payment' }).click();
  await expect(page.getByTestId('action-result')).toContainText('Not done:');
  await expectWorkspaceOf(page, 'Carol Clerk');
  await expect(page.getByText('Signed in with a key tap ·')).toBeVisible();

  // The check succeeds: allowed, and the session is raised.
  await carol.key.setUserVerified(true);
  await page.getByRole('button', { name: 'Approve payment' }).click();
  await expect(page.getByTestId('action-result')).toHaveText('Allowed: Approve a payment (confirmed with your key).');
  await expect(page.getByText('Signed in with a key with PIN or fingerprint ·')).toBeVisible();
  await screen(page, info, '08-step-up-allowed');

  // ---- IT revokes Carol's session: it leaves the screen at once ----
  const carolSession = baton.bridge.agent.status.front?.id ?? '';
  await baton.revoke('sessions', carolSession);
  await expect(page.getByRole('heading', { name: 'Tap your key' })).toBeVisible();
  await expectNotice(page, 'Carol Clerk’s session was ended by IT: the session was revoked.');
  await expect(switcherEntry(page, 'Carol Clerk')).toHaveCount(0);
  await expect(switcherEntry(page, 'Dan Desk')).toContainText('waiting');
  await screen(page, info, '09-session-revoked');

  // ---- the backend cannot be reached: offline state; Dan (suspended) comes back; Carol cannot ----
  baton.proxy.cut();
  await expect(page.getByTestId('banner')).toContainText(
    'The Baton server cannot be reached: only people already signed in here can come back, for 15 minutes',
  );
  await expect(page.getByTestId('connection')).toHaveText('Offline');
  await screen(page, info, '10-offline');
  await page.getByRole('button', { name: 'Tap your key to sign in' }).click();
  await expectNotice(page, 'new sign-ins must wait');
  await expectNotice(page, 'For IT: OFFLINE_SIGN_IN_REFUSED');
  await baton.use(dan.key);
  await page.getByRole('button', { name: 'Tap your key to sign in' }).click();
  await expectWorkspaceOf(page, 'Dan Desk');
  await screen(page, info, '11-offline-resumed');

  // ---- back online; then IT revokes the whole console ----
  baton.proxy.restore();
  await baton.reconnect();
  await expect(page.getByTestId('connection')).toHaveText('Online');
  await expect(page.getByTestId('banner')).toBeHidden();
  const identity = baton.bridge.agent.status.identity;
  if (identity.kind !== 'enrolled') throw new Error('expected an enrolled console');
  await baton.revoke('consoles', identity.consoleId);
  await expect(page.getByRole('heading', { name: 'This console must be re-enrolled' })).toBeVisible();
  await expect(page.getByText('IT has withdrawn this console’s access (it was revoked).')).toBeVisible();
  await expect(workspace(page)).toBeHidden();
  await screen(page, info, '12-re-enrolment-required');
  await page.getByRole('textbox', { name: 'Console enrolment token from IT' }).fill(await baton.consoleToken());
  await page.getByRole('button', { name: 'Enrol this console' }).click();
  await expect(page.getByRole('heading', { name: 'Tap your key' })).toBeVisible();
  await expect(page.getByTestId('connection')).toHaveText('Online');
});
