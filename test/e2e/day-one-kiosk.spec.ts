import { test as base, expect, type Page } from '@playwright/test';
import type { Json } from '../helpers/backend-harness.js';
import { UiConsole } from '../helpers/agent-ui-console.js';
import { attachScreenshot } from '../helpers/e2e-screenshot.js';

/**
 * What a new teller tripped over on day one, in the operator UI in Chromium with the real agent
 * core behind the dev bridge and a real backend: errors of an earlier attempt left on the shared
 * screen, a prompt over someone else's workspace, the same cancel shown twice in red, a wrong PIN
 * called "no key was touched", a token for another kind of console blamed on the server, and a
 * revoked console's header saying it was never set up.
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

const notice = (page: Page) => page.getByTestId('notice');
const tokenBox = (page: Page) => page.getByRole('textbox', { name: 'Console enrolment token from IT' });

const shot = attachScreenshot;

async function enrolConsole(baton: UiConsole, page: Page): Promise<void> {
  await tokenBox(page).fill(await baton.consoleToken());
  await page.getByRole('button', { name: 'Enrol this console' }).click();
  await expect(page.getByRole('heading', { name: 'Tap your key' })).toBeVisible();
}

async function enrolOperator(baton: UiConsole, page: Page, name: string) {
  const { operatorId, code } = await baton.newOperator(name);
  const key = await baton.use(baton.key(name));
  await page.getByRole('button', { name: 'First time here? Register your key' }).click();
  await page.getByRole('textbox', { name: 'Enrolment code' }).fill(code);
  await page.getByRole('button', { name: 'Register my key' }).click();
  // Registering signs the newcomer in (issue 12): their own workspace, with no second tap.
  await expect(page.getByTestId('workspace')).toHaveAttribute('data-operator', name);
  return { operatorId, key };
}

test('a token for another kind of console says so; after the right token, no earlier error is left, not even after a reload', async ({
  baton,
  page,
}, info) => {
  await tokenBox(page).fill('not-a-real-token-at-all');
  await page.getByRole('button', { name: 'Enrol this console' }).click();
  await expect(notice(page)).toContainText('That console enrolment token is not right');

  await tokenBox(page).fill(await baton.consoleToken('contact-centre'));
  await page.getByRole('button', { name: 'Enrol this console' }).click();
  await expect(notice(page)).toContainText('That token is for a different kind of console');
  await expect(notice(page)).toContainText('For IT: ENROLMENT_TOKEN_CHANNEL_MISMATCH');
  await expect(notice(page)).not.toContainText('does not know this console’s channel');
  await shot(page, info, '01-token-for-another-channel');

  await enrolConsole(baton, page);
  await expect(notice(page)).toBeHidden();
  await page.reload();
  await expect(page.getByRole('heading', { name: 'Tap your key' })).toBeVisible();
  await expect(page.getByTestId('connection')).toHaveText('Online');
  await expect(notice(page)).toBeHidden();
  await shot(page, info, '02-lock-screen-after-reload');
});

test('a wrong enrolment code, then Back: the lock screen shows no error, not even after a reload', async ({
  baton,
  page,
}, info) => {
  await enrolConsole(baton, page);
  await page.getByRole('button', { name: 'First time here? Register your key' }).click();
  await page.getByRole('textbox', { name: 'Enrolment code' }).fill('WRONG-CODE-0000');
  await page.getByRole('button', { name: 'Register my key' }).click();
  await expect(notice(page)).toContainText('That enrolment code is not right');
  await page.getByRole('button', { name: 'Back' }).click();
  await expect(page.getByRole('heading', { name: 'Tap your key' })).toBeVisible();
  await expect(notice(page)).toBeHidden();
  await page.reload();
  await expect(page.getByRole('heading', { name: 'Tap your key' })).toBeVisible();
  await expect(page.getByTestId('connection')).toHaveText('Online');
  await expect(notice(page)).toBeHidden();
  await shot(page, info, '03-lock-after-wrong-code-and-back');
});

test('another operator’s tap never shows the workspace in front behind the prompt; a deliberate cancel is said once, not as an error', async ({
  baton,
  page,
}, info) => {
  await enrolConsole(baton, page);
  const ada = await enrolOperator(baton, page, 'Ada Teller');
  // Back after a plain touch (no PIN): a payment will then need her to confirm with her key.
  await page.getByRole('button', { name: 'Lock' }).click();
  await baton.use(ada.key);
  await ada.key.presenceOnly(true);
  await page.getByRole('button', { name: 'Tap your key to sign in' }).click();
  await expect(page.getByTestId('workspace')).toHaveAttribute('data-operator', 'Ada Teller');

  // Someone else taps "Switch operator" with no key at hand: the prompt waits, over the lock screen.
  await ada.key.unplug();
  await page.getByRole('button', { name: 'Switch operator' }).click();
  await expect(page.getByTestId('ceremony')).toBeVisible();
  await expect(page.getByTestId('workspace')).toBeHidden();
  await expect(page.getByText('Ada Teller’s workspace')).toBeHidden();
  await shot(page, info, '04-switch-prompt');
  await page.getByRole('button', { name: 'Cancel' }).click();
  await expect(page.getByTestId('ceremony')).toBeHidden();
  await expect(notice(page)).toBeHidden();

  // Ada's step-up, cancelled on purpose: one plain line where she looked, no red notice as well.
  await expect(page.getByTestId('workspace')).toHaveAttribute('data-operator', 'Ada Teller');
  await page.getByRole('button', { name: 'Approve payment' }).click();
  await expect(page.getByRole('dialog', { name: 'Confirm it’s you: Approve a payment' })).toBeVisible();
  await page.getByRole('button', { name: 'Cancel' }).click();
  await expect(page.getByTestId('action-result')).toHaveText('Cancelled: Approve a payment was not done.');
  await expect(notice(page)).toBeHidden();
  await shot(page, info, '05-step-up-cancelled');
});

/**
 * Watches the page from now on: every time the tap prompt and the workspace are on screen
 * together, the name of the operator whose workspace it is. Read with `seenBehindPrompt`.
 */
async function watchBehindPrompt(page: Page): Promise<void> {
  await page.evaluate(`(() => {
    const seen = (window.__behindPrompt = []);
    const ceremony = document.getElementById('ceremony');
    const workspace = document.getElementById('workspace');
    const look = () => {
      // visibilityProperty: a workspace kept laid out under \`visibility: hidden\` is not on screen.
      const drawn = (el) => el.checkVisibility({ visibilityProperty: true });
      if (!drawn(ceremony) || !drawn(workspace)) return;
      const who = workspace.dataset.operator ?? '(nobody)';
      if (seen[seen.length - 1] !== who) seen.push(who);
    };
    new MutationObserver(look).observe(document.body, { attributes: true, childList: true, subtree: true });
    const frame = () => { look(); requestAnimationFrame(frame); };
    requestAnimationFrame(frame);
  })()`);
}

function seenBehindPrompt(page: Page): Promise<string[]> {
  return page.evaluate('window.__behindPrompt.slice()');
}

test('a switch between two signed-in operators never shows the one in front behind the other’s prompt, completed or cancelled', async ({
  baton,
  page,
}) => {
  await enrolConsole(baton, page);
  const ada = await enrolOperator(baton, page, 'Ada Teller');
  await page.getByRole('button', { name: 'Lock' }).click();
  const bob = await enrolOperator(baton, page, 'Bob Cashier');
  await baton.use(ada.key);
  await page.getByRole('button', { name: 'Switch operator' }).click();
  await expect(page.getByTestId('workspace')).toHaveAttribute('data-operator', 'Ada Teller');
  await baton.use(bob.key);
  await page.getByRole('button', { name: 'Switch operator' }).click();
  await expect(page.getByTestId('workspace')).toHaveAttribute('data-operator', 'Bob Cashier');
  await expect(page.getByTestId('ceremony')).toBeHidden();

  // Switches back and forth, watched in every frame and DOM change: while a prompt is up, the
  // workspace on screen is only ever that of whoever the tap has just verified.
  await watchBehindPrompt(page);
  for (const [key, name] of [
    [ada.key, 'Ada Teller'],
    [bob.key, 'Bob Cashier'],
    [ada.key, 'Ada Teller'],
  ] as const) {
    await baton.use(key);
    await page.getByRole('button', { name: 'Switch operator' }).click();
    await expect(page.getByTestId('workspace')).toHaveAttribute('data-operator', name);
    await expect(page.getByTestId('ceremony')).toBeHidden();
    for (const who of await seenBehindPrompt(page)) expect(who).toBe(name);
    await page.evaluate('window.__behindPrompt.length = 0');
  }

  // A switch nobody answers, then cancelled: Ada's workspace never shows behind the prompt, and comes back after it.
  await ada.key.unplug();
  await page.getByRole('button', { name: 'Switch operator' }).click();
  await expect(page.getByTestId('ceremony')).toBeVisible();
  await expect(page.getByText('Ada Teller’s workspace')).toBeHidden();
  await page.getByRole('button', { name: 'Cancel' }).click();
  await expect(page.getByTestId('ceremony')).toBeHidden();
  await expect(page.getByTestId('workspace')).toHaveAttribute('data-operator', 'Ada Teller');
  expect(await seenBehindPrompt(page)).toEqual([]);
});

test('the workspace says how the operator signed in in plain words, never “AAL”, and the session’s end with its date when it is not today', async ({
  baton,
  page,
}, info) => {
  await enrolConsole(baton, page);
  await enrolOperator(baton, page, 'Ada Teller');
  const level = page.locator('#workspace-level');
  await expect(level).toContainText('Signed in with a key with PIN or fingerprint · session ends ');
  await expect(page.getByTestId('workspace')).not.toContainText('AAL');

  const ends = baton.bridge.agent.status.front?.expiresAt ?? 0;
  const end = new Date(ends);
  const hhmm = `${String(end.getHours()).padStart(2, '0')}:${String(end.getMinutes()).padStart(2, '0')}`;
  const day = (offset: number) => new Date(end.getFullYear(), end.getMonth(), end.getDate() + offset, 0, 0, 1);
  const month = end.toLocaleString('en-GB', { month: 'long' });
  // The page reads the time of day from its own clock, the one on the wall of the branch.
  const seenOn = async (now: Date, text: string) => {
    await page.clock.setFixedTime(now);
    baton.bridge.agent.changed();
    await expect(level).toHaveText(`Signed in with a key with PIN or fingerprint · session ends ${text}`);
  };
  await seenOn(day(0), `at ${hhmm}`);
  await seenOn(day(-1), `tomorrow at ${hhmm}`);
  await seenOn(day(-3), `on ${end.getDate()} ${month} at ${hhmm}`);
  await shot(page, info, '06b-session-ends-another-day');
});

test('a wrong PIN and an unregistered key are not called “no key was touched in time”', async ({
  baton,
  page,
}, info) => {
  await enrolConsole(baton, page);
  const ada = await enrolOperator(baton, page, 'Ada Teller');
  await page.getByRole('button', { name: 'Lock' }).click();

  await ada.key.setUserVerified(false);
  await page.getByRole('button', { name: 'Tap your key to sign in' }).click();
  await expect(notice(page)).toContainText('its PIN or fingerprint was not accepted');
  await expect(notice(page)).not.toContainText('No key was touched in time');
  await shot(page, info, '06-wrong-pin');

  await baton.use(baton.key('Stranger'));
  await page.getByRole('button', { name: 'Tap your key to sign in' }).click();
  await expect(notice(page)).toContainText('this key is not registered here');
  await expect(notice(page)).not.toContainText('No key was touched in time');
  await shot(page, info, '07-unregistered-key');
});

test('a revoked console says so in its header, and its revocation is acknowledged', async ({ baton, page }, info) => {
  await enrolConsole(baton, page);
  // Revoked only once it is connected: a console revoked before its WebSocket is up gets no push (no delivery
  // row), and is refused as revoked when it connects: the same header, but nothing to acknowledge.
  await expect(page.getByTestId('connection')).toHaveText('Online');
  const identity = baton.bridge.agent.status.identity;
  if (identity.kind !== 'enrolled') throw new Error('expected an enrolled console');
  const { epoch } = (await baton.backend.admin.ok('POST', `/v1/admin/consoles/${identity.consoleId}/revoke`, {
    reason: 'e2e',
  })) as Json;
  await expect(page.getByRole('heading', { name: 'This console must be re-enrolled' })).toBeVisible();
  await expect(page.locator('#console-name')).toHaveText('Console must be re-enrolled');
  await shot(page, info, '08-revoked-console');
  await expect
    .poll(async () => {
      const d = (await baton.backend.admin.ok('GET', `/v1/admin/revocations/${epoch as number}/deliveries`)) as Json;
      return `${d.acknowledged as number} of ${(d.deliveries as unknown[]).length}`;
    })
    .toBe('1 of 1');
});
