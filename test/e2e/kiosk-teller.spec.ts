import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { test as base, expect, type Page } from '@playwright/test';
import type { Json } from '../helpers/backend-harness.js';
import { UiConsole } from '../helpers/agent-ui-console.js';
import { layoutProblems } from '../helpers/e2e-layout.js';
import { attachScreenshot } from '../helpers/e2e-screenshot.js';

/**
 * What a teller expects of a kiosk (issue 12), in the operator UI in Chromium with the real agent
 * core behind the dev bridge and a real backend: the lock screen says why it locked and a warning
 * with a way to stay comes before an idle lock; "Ask IT" shows the contact IT set for the site;
 * tap-and-go; "Register your key" from another operator's prompt; a revoked key said plainly.
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

const VIEWPORTS = [
  { width: 1024, height: 768 },
  { width: 1366, height: 768 },
  { width: 1920, height: 1080 },
] as const;

const notice = (page: Page) => page.getByTestId('notice');
const lockHeading = (page: Page) => page.getByRole('heading', { name: 'Tap your key' });

/** The element is on screen, inside the viewport, and the page has no sideways scroll or overlapping controls, at each size. */
async function expectLaidOut(page: Page, testId: string, info: Parameters<typeof attachScreenshot>[1], name: string) {
  for (const size of VIEWPORTS) {
    await page.setViewportSize(size);
    const box = await page.getByTestId(testId).boundingBox();
    expect(box, `${testId} at ${size.width}×${size.height}`).not.toBeNull();
    if (box === null) return;
    expect(box.x).toBeGreaterThanOrEqual(0);
    expect(box.x + box.width).toBeLessThanOrEqual(size.width);
    expect(await layoutProblems(page), `${name} at ${size.width}×${size.height}`).toEqual([]);
    await attachScreenshot(page, info, `${name}-${size.width}x${size.height}`);
  }
  await page.setViewportSize({ width: 1366, height: 768 });
}

async function enrolConsole(baton: UiConsole, page: Page, site?: string): Promise<void> {
  const { token } = (await baton.backend.admin.ok('POST', '/v1/admin/console-tokens', {
    channel: 'branch-kiosk',
    ...(site === undefined ? {} : { site }),
  })) as Json;
  await page.getByRole('textbox', { name: 'Console enrolment token from IT' }).fill(token as string);
  await page.getByRole('button', { name: 'Enrol this console' }).click();
  await expect(lockHeading(page)).toBeVisible();
}

async function registerKey(baton: UiConsole, page: Page, name: string) {
  const { operatorId, code } = await baton.newOperator(name);
  const key = await baton.use(baton.key(name));
  await page.getByRole('button', { name: 'First time here? Register your key' }).click();
  await page.getByRole('textbox', { name: 'Enrolment code' }).fill(code);
  await page.getByRole('button', { name: 'Register my key' }).click();
  // Registering signs the newcomer in (issue 12): their own workspace, with no second tap.
  await expect(page.getByTestId('workspace')).toHaveAttribute('data-operator', name);
  return { operatorId, key };
}

/** Publishes the current policy changed by `edit`, and waits until the console runs it. */
async function publishPolicy(baton: UiConsole, edit: (policy: Json) => void): Promise<void> {
  const current = (await baton.backend.admin.ok('GET', '/v1/admin/policy')) as Json;
  const policy = structuredClone(current.policy) as Json;
  edit(policy);
  const published = (await baton.backend.admin.ok('POST', '/v1/admin/policy', {
    baseVersion: current.version,
    policy,
  })) as Json;
  // A console enrolled later gets the current policy with its enrolment.
  if (baton.bridge.agent.status.identity.kind !== 'enrolled') return;
  await expect.poll(() => baton.bridge.agent.status.policyVersion).toBe(published.version);
}

test('a warning with a way to stay comes before the idle lock, and the lock screen says why it locked', async ({
  baton,
  page,
}, info) => {
  test.setTimeout(90_000);
  await enrolConsole(baton, page);
  await registerKey(baton, page, 'Ada Teller');
  const warning = page.getByTestId('idle-warning');
  await expect(warning).toBeHidden();

  // 30 s before the 2-minute idle lock: the warning, on the agent's clock.
  const idle = baton.bridge.agent.status.limits?.idleLockSeconds ?? 0;
  expect(idle).toBe(120);
  await baton.clock.advance((idle - 30) * 1000);
  await page.clock.setFixedTime(baton.clock.now());
  await expect(warning).toBeVisible();
  await expect(warning).toHaveAttribute('role', 'alert');
  await expect(warning).toContainText('This console locks in 30 seconds because nobody has used it for a while.');
  await expectLaidOut(page, 'idle-warning', info, 'k01-idle-warning');

  // "Stay signed in": the warning goes and the session stays.
  await page.getByRole('button', { name: 'Stay signed in' }).click();
  await expect(warning).toBeHidden();
  await baton.clock.advance(60_000);
  expect(baton.bridge.agent.status.front?.state).toBe('active');

  // Nobody answers the next warning: the lock, and the lock screen says why.
  await baton.clock.advance((idle - 30 - 60) * 1000);
  await page.clock.setFixedTime(baton.clock.now());
  await expect(warning).toBeVisible();
  await baton.clock.advance(30_000);
  await expect(lockHeading(page)).toBeVisible();
  await expect(warning).toBeHidden();
  const why = page.getByTestId('lock-why');
  await expect(why).toHaveText('Locked because nobody used it for 2 minutes. Ada Teller, tap your key to come back.');
  await expectLaidOut(page, 'lock-why', info, 'k02-locked-idle');

  // Back in, then locked by hand: said as such.
  await page.getByRole('button', { name: 'Tap your key to sign in' }).click();
  await expect(page.getByTestId('workspace')).toHaveAttribute('data-operator', 'Ada Teller');
  await expect(why).toBeHidden();
  await page.getByRole('button', { name: 'Lock' }).click();
  await expect(why).toHaveText('Locked: Ada Teller stepped away and locked it. Tap your key to come back.');
});

test('“Ask IT” shows the contact IT set for this console’s site, and follows the policy', async ({
  baton,
  page,
}, info) => {
  await publishPolicy(baton, (policy) => {
    policy.support = {
      default: { name: 'Group IT service desk', phone: '+44 20 7946 0000' },
      sites: {
        'Leeds Branch': {
          name: 'Leeds branch IT',
          phone: '+44 113 496 0000',
          email: 'leeds-it@bank.example',
          hours: 'Mon–Sat 08:00–18:00',
          note: 'Quote the console name at the top of the screen.',
        },
      },
    };
  });
  await enrolConsole(baton, page, 'Leeds Branch');
  const askIt = page.getByRole('button', { name: 'Ask IT' });
  await expect(askIt).toHaveAttribute('aria-expanded', 'false');
  await askIt.click();
  const panel = page.getByTestId('ask-it');
  await expect(panel).toBeVisible();
  await expect(askIt).toHaveAttribute('aria-expanded', 'true');
  await expect(page.getByRole('heading', { name: 'Ask IT' })).toBeFocused();
  await expect(panel).toContainText('Leeds branch IT');
  await expect(panel.getByRole('listitem')).toHaveText([
    'Phone: +44 113 496 0000',
    'Email: leeds-it@bank.example',
    'Hours: Mon–Sat 08:00–18:00',
    'Quote the console name at the top of the screen.',
  ]);
  await expectLaidOut(page, 'ask-it', info, 'k03-ask-it');

  // IT drops the site's own contact: the group desk, as soon as the console has the new policy.
  await publishPolicy(baton, (policy) => {
    (policy.support as Json).sites = {};
  });
  await expect(panel).toContainText('Group IT service desk');
  await expect(panel.getByRole('listitem')).toHaveText(['Phone: +44 20 7946 0000']);
  await page.getByRole('button', { name: 'Close' }).click();
  await expect(panel).toBeHidden();
  await expect(askIt).toHaveAttribute('aria-expanded', 'false');
});

test('tap-and-go: the lock screen waits for a key by itself, registering signs the newcomer in, using the screen for something else cancels quietly, a wrong PIN is said once', async ({
  baton,
  page,
}, info) => {
  test.setTimeout(90_000);
  await publishPolicy(baton, (policy) => {
    ((policy.channels as Json)['branch-kiosk'] as Json).tapAndGo = true;
  });
  await enrolConsole(baton, page);
  // Nothing to press: the lock screen says the key is awaited, with no prompt over it.
  const ready = page.getByTestId('tap-wait');
  await expect(ready).toHaveText('Ready: touch your key now. There is nothing to press first.');
  await expect(page.getByRole('button', { name: 'Tap your key to sign in' })).toBeHidden();
  await expect(page.getByTestId('ceremony')).toBeHidden();
  await expectLaidOut(page, 'tap-wait', info, 'k04-tap-and-go');

  // "Register your key" cancels the wait without a word; registering the key signs Ada in.
  const { key } = await registerKey(baton, page, 'Ada Teller');
  await expect(page.getByTestId('workspace')).toHaveAttribute('data-operator', 'Ada Teller');
  await expect(page.getByTestId('ceremony')).toBeHidden();
  await expect(notice(page)).toBeHidden();

  // Locked with the key away: the lock screen waits for it again; the wrong PIN is said once, plainly.
  await key.unplug();
  await page.getByRole('button', { name: 'Lock' }).click();
  await expect(ready).toBeVisible();
  await page.getByRole('button', { name: 'First time here? Register your key' }).click();
  await expect(page.getByRole('textbox', { name: 'Enrolment code' })).toBeVisible();
  await expect(notice(page)).toBeHidden();
  await baton.use(key);
  await key.setUserVerified(false);
  await page.getByRole('button', { name: 'Back to the lock screen' }).click();
  await expect(notice(page)).toContainText('its PIN or fingerprint was not accepted');
  await expect(notice(page)).not.toContainText('No key was touched in time');
  await expect(page.getByRole('alert').filter({ hasText: 'PIN or fingerprint' })).toHaveCount(1);
  await expect(ready).toBeHidden();
  expect(baton.bridge.agent.status.front?.state).toBe('locked');
});

test('“Register your key” is reachable from another operator’s prompt while someone is in front; a revoked key is said plainly', async ({
  baton,
  page,
}, info) => {
  await enrolConsole(baton, page);
  const ada = await registerKey(baton, page, 'Ada Teller');

  // A newcomer at Ada's desk: "Switch operator", then "New here? Register your key" in the prompt.
  await ada.key.unplug();
  await page.getByRole('button', { name: 'Switch operator' }).click();
  const enrol = page.getByRole('button', { name: 'New here? Register your key' });
  await expect(enrol).toBeVisible();
  await expectLaidOut(page, 'ceremony', info, 'k05-register-from-prompt');
  await enrol.click();
  await expect(page.getByRole('textbox', { name: 'Enrolment code' })).toBeVisible();
  await expect(page.getByTestId('workspace')).toBeHidden();
  await expect(notice(page)).toBeHidden();
  expect(baton.bridge.agent.status.front?.state).toBe('locked');
  const bob = await baton.newOperator('Bob Cashier');
  await baton.use(baton.key('Bob Cashier'));
  await page.getByRole('textbox', { name: 'Enrolment code' }).fill(bob.code);
  await page.getByRole('button', { name: 'Register my key' }).click();
  // Bob's registration signs him in; Ada's session waits, suspended.
  await expect(page.getByTestId('workspace')).toHaveAttribute('data-operator', 'Bob Cashier');
  expect(baton.bridge.agent.status.sessions.map((s) => [s.operatorName, s.state])).toEqual([
    ['Ada Teller', 'suspended'],
    ['Bob Cashier', 'active'],
  ]);

  // IT withdraws Ada's key: her tap says so, in plain words, once.
  const detail = (await baton.backend.admin.ok('GET', `/v1/admin/operators/${ada.operatorId}`)) as Json;
  const credential = (detail.credentials as Json[])[0] as Json;
  await baton.revoke('credentials', credential.id as string);
  await baton.use(ada.key);
  await page.getByRole('button', { name: 'Switch operator' }).click();
  await expect(notice(page)).toContainText('This key has been withdrawn by IT');
  await expect(page.getByRole('alert').filter({ hasText: 'withdrawn' })).toHaveCount(1);
});

test('registering a key signs the operator in, with no second tap and no tap-and-go; nothing of the attempt survives a lock', async ({
  baton,
  page,
}, info) => {
  await enrolConsole(baton, page);
  expect(baton.bridge.agent.status.limits?.tapAndGo).not.toBe(true);
  const ada = await baton.newOperator('Ada Teller');
  await baton.use(baton.key('Ada Teller'));
  await page.getByRole('button', { name: 'First time here? Register your key' }).click();
  // A wrong code first: said on the enrolment screen.
  await page.getByRole('textbox', { name: 'Enrolment code' }).fill('ABCD-EFGH-JKLM-NPQR');
  await page.getByRole('button', { name: 'Register my key' }).click();
  await expect(notice(page)).toBeVisible();
  await page.getByRole('textbox', { name: 'Enrolment code' }).fill(ada.code);
  await page.getByRole('button', { name: 'Register my key' }).click();

  // One touch: the key is registered and Ada is at work in her own session, the lock screen's button never pressed.
  const workspace = page.getByTestId('workspace');
  await expect(workspace).toHaveAttribute('data-operator', 'Ada Teller');
  await expect(page.getByRole('heading', { level: 2, name: 'Ada Teller’s workspace' })).toBeVisible();
  await expect(page.getByText('Signed in with a key with PIN or fingerprint ·')).toBeVisible();
  await expect(page.getByTestId('ceremony')).toBeHidden();
  await expect(notice(page)).toBeHidden();
  const front = baton.bridge.agent.status.front;
  expect(front?.operatorId).toBe(ada.operatorId);
  expect(front?.state).toBe('active');
  await expectLaidOut(page, 'workspace', info, 'k06-registered-and-signed-in');
  // The backend recorded the session on the key just registered.
  const established = (await baton.backend.admin.ok(
    'GET',
    `/v1/admin/events?type=session-established&operator=${ada.operatorId}`,
  )) as Json;
  expect((established.events as Json[]).map((e) => [(e.subject as Json).session, e.reasons])).toEqual([
    [front?.id, ['sign-in-allowed', 'operator-enrolled']],
  ]);

  // Locked: the lock screen, with nothing of the registration (no welcome, no error) on it.
  await page.getByRole('button', { name: 'Lock' }).click();
  await expect(lockHeading(page)).toBeVisible();
  await expect(notice(page)).toBeHidden();
  await page.reload();
  await expect(lockHeading(page)).toBeVisible();
  await expect(notice(page)).toBeHidden();
});

test('tap-and-go: a registered key touched at the lock screen signs its operator in, with nothing pressed first', async ({
  baton,
  page,
}) => {
  await publishPolicy(baton, (policy) => {
    ((policy.channels as Json)['branch-kiosk'] as Json).tapAndGo = true;
  });
  await enrolConsole(baton, page);
  const { key } = await registerKey(baton, page, 'Ada Teller');
  // Ada locks and walks away with her key; the lock screen waits for a key by itself.
  await key.unplug();
  await page.getByRole('button', { name: 'Lock' }).click();
  await expect(lockHeading(page)).toBeVisible();
  await expect(page.getByTestId('tap-wait')).toBeVisible();
  await expect(page.getByRole('button', { name: 'Tap your key to sign in' })).toBeHidden();
  // Someone opens "Register your key" meanwhile (the wait is cancelled quietly), then goes Back as Ada
  // returns with her key: touching it is all she does.
  await page.getByRole('button', { name: 'First time here? Register your key' }).click();
  await baton.use(key);
  await page.getByRole('button', { name: 'Back to the lock screen' }).click();
  await expect(page.getByTestId('workspace')).toHaveAttribute('data-operator', 'Ada Teller');
  await expect(page.getByTestId('ceremony')).toBeHidden();
  await expect(notice(page)).toBeHidden();
  expect(baton.bridge.agent.status.front?.state).toBe('active');
});

test('a message from an earlier attempt never survives a lock: not for the same operator, not for the next one', async ({
  baton,
  page,
}) => {
  await enrolConsole(baton, page);
  const ada = await registerKey(baton, page, 'Ada Teller');
  // Ada back with a plain touch (no PIN): a payment then needs her to confirm with her key.
  await page.getByRole('button', { name: 'Lock' }).click();
  await ada.key.presenceOnly(true);
  await page.getByRole('button', { name: 'Tap your key to sign in' }).click();
  await expect(page.getByTestId('workspace')).toHaveAttribute('data-operator', 'Ada Teller');
  // She starts a payment approval with her key away from the reader, then cancels it: said where she looked.
  const result = page.getByTestId('action-result');
  await ada.key.unplug();
  await page.getByRole('button', { name: 'Approve payment' }).click();
  await expect(page.getByRole('dialog', { name: 'Confirm it’s you: Approve a payment' })).toBeVisible();
  await page.getByRole('button', { name: 'Cancel' }).click();
  await expect(result).toHaveText('Cancelled: Approve a payment was not done.');

  // She locks; the lock screen shows nothing of it, nor does her workspace when she is back.
  await page.getByRole('button', { name: 'Lock' }).click();
  await expect(lockHeading(page)).toBeVisible();
  await expect(notice(page)).toBeHidden();
  await expect(page.getByText('Approve a payment was not done')).toBeHidden();
  await baton.use(ada.key);
  await page.getByRole('button', { name: 'Tap your key to sign in' }).click();
  await expect(page.getByTestId('workspace')).toHaveAttribute('data-operator', 'Ada Teller');
  await expect(result).toHaveText('');

  // Another message, another lock, and Bob registers at the same console: his workspace starts clean.
  await page.getByRole('button', { name: 'View customer' }).click();
  await expect(result).toHaveText('Allowed: View a customer.');
  await page.getByRole('button', { name: 'Lock' }).click();
  await registerKey(baton, page, 'Bob Cashier');
  await expect(result).toHaveText('');
  await expect(notice(page)).toBeHidden();
});

test('a wrong PIN, a key whose passkey Baton does not know, and a cancel are each said in their own words, once', async ({
  baton,
  page,
}) => {
  await enrolConsole(baton, page);
  const ada = await registerKey(baton, page, 'Ada Teller');
  await page.getByRole('button', { name: 'Lock' }).click();
  const tap = page.getByRole('button', { name: 'Tap your key to sign in' });

  // A wrong PIN: the key refuses at once (the browser does not tell the page whether it was the PIN or a
  // key with no passkey for this site at all, so the words name both, and how to go on).
  await ada.key.setUserVerified(false);
  await tap.click();
  await expect(notice(page)).toContainText('its PIN or fingerprint was not accepted');
  await expect(page.getByRole('alert').filter({ hasText: 'PIN' })).toHaveCount(1);

  // A key holding a passkey for this site that Baton does not know (registered elsewhere, or long removed):
  // its answer reaches the server, which says so; no word of a PIN.
  const stranger = await baton.use(baton.key('Stranger'));
  const pkcs8 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'der' });
  await baton.cdp.send('WebAuthn.addCredential', {
    authenticatorId: stranger.id ?? '',
    credential: {
      credentialId: randomBytes(16).toString('base64'),
      isResidentCredential: true,
      rpId: 'localhost',
      privateKey: pkcs8.toString('base64'),
      userHandle: randomBytes(16).toString('base64'),
      signCount: 1,
    },
  });
  await tap.click();
  await expect(notice(page)).toContainText('This key is not registered with Baton');
  await expect(notice(page)).not.toContainText('PIN');
  await expect(page.getByRole('alert').filter({ hasText: 'not registered' })).toHaveCount(1);

  // A cancel, on purpose: nobody did anything wrong, so nothing red is left (not the earlier refusal either).
  await stranger.unplug();
  await tap.click();
  await expect(page.getByTestId('ceremony')).toBeVisible();
  await page.getByRole('button', { name: 'Cancel' }).click();
  await expect(page.getByTestId('ceremony')).toBeHidden();
  await expect(notice(page)).toBeHidden();
  await expect(page.getByRole('alert')).toHaveCount(0);
});
