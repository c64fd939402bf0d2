/* eslint-disable no-empty-pattern -- Playwright reads fixtures from the first parameter's destructuring pattern; these tests need none. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, expect, type BrowserContext, type Locator, type Page, type TestInfo } from '@playwright/test';
import { encode } from 'uqr';
import { buildAdminConsole } from '../../backend/admin-console-build.js';
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
import { adminTime } from '../helpers/admin-time.js';
import { layoutProblems } from '../helpers/e2e-layout.js';
import { attachScreenshot } from '../helpers/e2e-screenshot.js';

/**
 * What an IT admin expects of the admin console every day (issue 12), in Chromium against a real
 * backend: first-run setup in the browser, ISO dates in the admin's zone, copy / print / QR for
 * one-time codes and tokens, confirmations that name what ends (a typed name for "revoke operator
 * everywhere"), names instead of ids, and the form-based policy editor with its diff and a publish
 * confirmation that says what changes for whom. Every page is checked at three screen sizes.
 */
test.describe.configure({ mode: 'serial' });

const ZONE = 'Europe/Paris';
const VIEWPORTS = [
  { width: 1024, height: 768 },
  { width: 1366, height: 768 },
  { width: 1920, height: 1080 },
] as const;
const ISO_IN_ZONE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2} \(Europe\/Paris\)$/;

let t: TestBackend;
let bundleDir: string;
let context: BrowserContext;
let page: Page;
let frontDesk: TestConsole;
let callDesk: TestConsole;
const sockets: ConsoleSocket[] = [];
let ada: { operatorId: string; credentialId: string };
let bob: { operatorId: string };
const problems: string[] = [];

/** A console enrolled with a name, on a channel, for a site (the token carries the site). */
async function enrolConsole(name: string, channel: string, site: string): Promise<TestConsole> {
  const { token } = await t.admin.ok('POST', '/v1/admin/console-tokens', { channel, site });
  const key = ConsoleKey.generate();
  const body = JSON.stringify({ token, publicKey: key.publicJwk(), channel, name });
  const path = '/v1/consoles/enrol';
  const result = await httpJson(`${t.url}${path}`, {
    method: 'POST',
    headers: key.signRequest({ consoleId: undefined, method: 'POST', path, body, now: Date.now() }),
    body,
  });
  expect(result.status).toBe(201);
  const console = new TestConsole(t.url, key, (result.body as { consoleId: string }).consoleId);
  const socket = await console.connect();
  sockets.push(socket);
  return console;
}

/** The date as the admin must read it: ISO, in Europe/Paris, with the zone. */
function inParis(ms: number): string {
  return adminTime(ms, ZONE);
}

/**
 * The layout as a person meets it, measured: no sideways scrolling of the page, and no visible
 * control or table overlapping another (the shared checker, plus tables against everything else).
 */
async function layoutOf(p: Page): Promise<string[]> {
  const shared = await layoutProblems(p);
  const more = await p.evaluate(() => {
    const out: string[] = [];
    const root = document.scrollingElement ?? document.documentElement;
    if (root.scrollWidth > window.innerWidth)
      out.push(`scrollWidth ${root.scrollWidth} > innerWidth ${window.innerWidth}`);
    const visible = (e: Element) => {
      const box = e.getBoundingClientRect();
      return box.width > 0 && box.height > 0 && getComputedStyle(e).visibility !== 'hidden';
    };
    const tables = Array.from(document.querySelectorAll('table')).filter(visible);
    const others = Array.from(document.querySelectorAll('button, input, select, textarea, table')).filter(visible);
    for (const table of tables) {
      const a = table.getBoundingClientRect();
      for (const other of others) {
        if (other === table || table.contains(other) || other.contains(table)) continue;
        const b = other.getBoundingClientRect();
        const x = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        const y = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        if (x > 1 && y > 1) {
          out.push(
            `table "${table.querySelector('caption')?.textContent ?? ''}" overlaps ${other.tagName.toLowerCase()} "${(other.getAttribute('aria-label') ?? other.textContent ?? '').trim().slice(0, 30)}"`,
          );
        }
      }
    }
    return out;
  });
  return [...shared, ...more];
}

/** Screenshots the page at each size and fails on any layout problem found there. */
async function checkAtEverySize(p: Page, info: TestInfo, name: string): Promise<void> {
  for (const viewport of VIEWPORTS) {
    await p.setViewportSize(viewport);
    await attachScreenshot(p, info, `${name}-${viewport.width}`);
    expect(await layoutOf(p), `${name} at ${viewport.width}×${viewport.height}`).toEqual([]);
  }
  await p.setViewportSize({ width: 1366, height: 768 });
}

/** The QR code shows exactly `value`: its dark modules are those of the QR encoding of `value`. */
async function expectQrOf(qr: Locator, value: string): Promise<void> {
  await expect(qr).toBeVisible();
  const { data, size } = encode(value, { ecc: 'M', border: 2 });
  const expected: string[] = [];
  data.forEach((row, y) => row.forEach((dark, x) => dark && expected.push(`${x},${y}`)));
  const d = (await qr.locator('path').getAttribute('d')) ?? '';
  const drawn = [...d.matchAll(/M(\d+) (\d+)h1v1h-1z/g)].map((m) => `${m[1]},${m[2]}`);
  expect(await qr.getAttribute('viewBox')).toBe(`0 0 ${size} ${size}`);
  expect(drawn.sort()).toEqual(expected.sort());
  // Large enough to scan from a phone held at a screen: at least 120 px.
  expect((await qr.boundingBox())?.width ?? 0).toBeGreaterThanOrEqual(120);
}

/** Copy puts the value on the clipboard; Print shows only the code's card on paper. */
async function expectCopyAndPrint(card: Locator, value: string, title: string): Promise<void> {
  await card.getByRole('button', { name: `Copy ${title}` }).click();
  await expect(card.getByRole('button', { name: `Copy ${title}` })).toHaveText('Copied');
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(value);
  // The browser's print dialog is replaced by a counter: what would be on paper is the print media view.
  await page.evaluate(() => {
    (window as unknown as { printed: number }).printed = 0;
    window.print = () => void ((window as unknown as { printed: number }).printed += 1);
  });
  await card.getByRole('button', { name: `Print ${title}` }).click();
  expect(await page.evaluate(() => (window as unknown as { printed: number }).printed)).toBe(1);
  await page.emulateMedia({ media: 'print' });
  await expect(card.getByText(value, { exact: true })).toBeVisible();
  await expect(page.getByRole('heading', { level: 1 })).toBeHidden();
  await expect(page.getByRole('navigation')).toBeHidden();
  await page.evaluate(() => window.dispatchEvent(new Event('afterprint')));
  await page.emulateMedia({ media: 'screen' });
  await expect(page.getByRole('heading', { level: 1 })).toBeVisible();
}

test.beforeAll(async ({ browser }) => {
  bundleDir = mkdtempSync(join(tmpdir(), 'baton-admin-bundle-'));
  await buildAdminConsole(bundleDir);
  t = await startTestBackend({ adminConsoleDir: bundleDir });
  frontDesk = await enrolConsole('Front desk', 'branch-kiosk', 'Branch 12');
  callDesk = await enrolConsole('Call desk 3', 'contact-centre', 'Lyon centre');
  // Ada is signed in on both consoles with her one passkey; Bob on the front desk.
  const enrolled = await enrolOperator(t.admin, frontDesk, { displayName: 'Ada Teller' });
  ada = { operatorId: enrolled.operatorId, credentialId: enrolled.credentialId };
  expect((await signIn(frontDesk, enrolled.authenticator)).status).toBe(200);
  expect((await signIn(callDesk, enrolled.authenticator)).status).toBe(200);
  const bobs = await enrolOperator(t.admin, frontDesk, { displayName: 'Bob Cashier' });
  bob = { operatorId: bobs.operatorId };
  expect((await signIn(frontDesk, bobs.authenticator)).status).toBe(200);
  await t.admin.ok('POST', `/v1/admin/operators/${ada.operatorId}/enrolment-codes`, {});

  context = await browser.newContext({ timezoneId: ZONE, locale: 'en-US' });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: t.url });
  page = await context.newPage();
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  await cdp.send('WebAuthn.addVirtualAuthenticator', { options: SECURITY_KEY });
});

test.afterAll(async () => {
  for (const socket of sockets) await socket.close();
  await context?.close();
  await t?.stop();
  rmSync(bundleDir, { recursive: true, force: true });
});

test('a first visitor is offered setup, not a red error; the bootstrap token creates the first admin with a passkey', async ({}, info) => {
  await page.goto(`${t.url}/admin/`);
  await expect(page.getByRole('heading', { name: 'Set up the Baton admin console' })).toBeVisible();
  await expect(page.getByText('No admin exists yet.')).toBeVisible();
  await expect(page.getByRole('alert')).toHaveCount(0);
  await expect(page.locator('.error')).toHaveCount(0);
  await checkAtEverySize(page, info, 'setup');

  // A mistyped token is refused in plain words, and nothing was created.
  await page.getByLabel(/^Bootstrap token/).fill('bat_not_the_token_at_all');
  await page.getByLabel('Your name').fill('Grace Admin');
  await page.getByLabel('Your admin id').fill('grace');
  await page.getByRole('button', { name: 'Create admin and register passkey' }).click();
  await expect(page.getByRole('alert')).toContainText(
    'Setup failed. The bootstrap token was not accepted: copy it again from the bootstrap-admin-token file',
  );
  expect((await t.admin.ok('GET', '/v1/admin/operators')).operators).toHaveLength(2);

  await page.getByLabel(/^Bootstrap token/).fill(t.admin.token);
  await page.getByRole('button', { name: 'Create admin and register passkey' }).click();
  await expect(page.locator('#signed-in-as')).toHaveText('Grace Admin (grace)');
  await expect(page.getByRole('heading', { name: 'Live view' })).toBeVisible();
  // From now on the bootstrap token is retired, exactly as after the README's curl steps.
  const refused = await t.admin.request('GET', '/v1/admin/consoles');
  expect(refused.body.error.code).toBe('ADMIN_BOOTSTRAP_DISABLED');

  // Signed out, the landing page is the sign-in page, again with no red error.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.goto(`${t.url}/admin/`);
  await expect(page.getByRole('heading', { name: 'Sign in to the Baton admin console' })).toBeVisible();
  await expect(page.getByRole('alert')).toHaveCount(0);
  await checkAtEverySize(page, info, 'sign-in');
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await expect(page.locator('#signed-in-as')).toHaveText('Grace Admin (grace)');
});

test('dates are ISO, in the admin’s time zone, with the zone shown', async () => {
  await expect(page.locator('#session-ends')).toContainText(`times in ${ZONE}`);
  await expect(page.getByRole('columnheader', { name: `time (${ZONE})` })).toBeVisible();
  await page.getByRole('link', { name: 'Operators' }).click();
  const row = page.getByRole('table', { name: 'Operators' }).getByRole('row').filter({ hasText: 'Ada Teller' });
  const stored = await t.backend.store.operators.get(ada.operatorId);
  const cell = row.getByRole('cell').nth(4);
  await expect(cell).toHaveText(inParis(stored?.createdAt ?? 0));
  expect(await cell.textContent()).toMatch(ISO_IN_ZONE);
  await page.getByRole('link', { name: 'Audit' }).click();
  await expect(page.getByLabel(`From (${ZONE})`)).toBeVisible();
  await page.getByRole('link', { name: 'Pictures' }).click();
  await expect(page.getByRole('figure', { name: `Sign-ins and failures per hour (${ZONE})` })).toBeVisible();
});

test('an enrolment code comes with copy, print and a QR code of the code', async ({}, info) => {
  await page.goto(`${t.url}/admin/#/operators/${ada.operatorId}`);
  await page.getByRole('button', { name: 'Issue enrolment code' }).click();
  const title = 'Enrolment code for Ada Teller';
  const card = page.getByRole('status', { name: title });
  const code = (await card.locator('#new-code').textContent()) ?? '';
  expect(code).toMatch(/^[A-Z0-9]{4}(-[A-Z0-9]{4}){3}$/);
  await expect(card).toContainText(/Shown once\. Valid until \d{4}-\d{2}-\d{2} \d{2}:\d{2} \(Europe\/Paris\)\./);
  await expectQrOf(card.getByRole('img', { name: 'QR code of the enrolment code for ada teller' }), code);
  await expectCopyAndPrint(card, code, title);
  await checkAtEverySize(page, info, 'operator-with-code');
});

test('a console enrolment token comes with copy, print and a QR code of the token', async ({}, info) => {
  await page.getByRole('link', { name: 'Consoles' }).click();
  await page.locator('#token-channel').selectOption('contact-centre');
  await page.locator('#token-site').fill('Lyon centre');
  await page.getByRole('button', { name: 'Issue enrolment token' }).click();
  const title = 'Console enrolment token for contact-centre at Lyon centre';
  const card = page.getByRole('status', { name: title });
  const token = (await card.locator('#new-console-token').textContent()) ?? '';
  expect(token.length).toBeGreaterThan(20);
  await expectQrOf(card.getByRole('img', { name: `QR code of the ${title.toLowerCase()}` }), token);
  await expectCopyAndPrint(card, token, title);
  await checkAtEverySize(page, info, 'consoles-with-token');
});

test('names, not ids: consoles by name and site, operators by name, who issued and published', async () => {
  await page.goto(`${t.url}/admin/#/operators/${ada.operatorId}`);
  const sessions = page.getByRole('table', { name: 'Live sessions' });
  await expect(sessions.getByRole('link', { name: 'Front desk (Branch 12)' })).toBeVisible();
  await expect(sessions.getByRole('link', { name: 'Call desk 3 (Lyon centre)' })).toBeVisible();
  await expect(sessions).not.toContainText(frontDesk.id);
  await expect(page.getByRole('table', { name: 'Passkeys' })).toContainText('on Front desk (Branch 12)');
  const codes = page.getByRole('table', { name: 'Enrolment codes' });
  await expect(codes.getByRole('row').filter({ hasText: 'Grace Admin' })).toHaveCount(1);
  // The code she enrolled with and one still unused, both issued before the first admin existed.
  await expect(codes.getByRole('row').filter({ hasText: 'the bootstrap token' })).toHaveCount(2);
  await expect(codes).not.toContainText('operator:grace');

  await page.goto(`${t.url}/admin/#/consoles/${frontDesk.id}`);
  const onConsole = page.getByRole('table', { name: 'Live sessions' });
  await expect(onConsole.getByRole('link', { name: 'Ada Teller' })).toBeVisible();
  await expect(onConsole.getByRole('link', { name: 'Bob Cashier' })).toBeVisible();
  await expect(onConsole).not.toContainText(ada.operatorId);

  await page.getByRole('link', { name: 'Live' }).click();
  const signedIn = page.getByRole('table', { name: 'Signed in now' });
  await expect(signedIn.getByRole('row').filter({ hasText: 'Call desk 3' })).toContainText('Ada Teller');
  await expect(signedIn).not.toContainText(callDesk.id);
});

test('revoking a passkey asks first, naming the passkey and the sessions that end; Cancel changes nothing', async ({}, info) => {
  await page.goto(`${t.url}/admin/#/operators/${ada.operatorId}`);
  await page.getByLabel('Reason for a revocation or reinstatement (audit trail)').fill('Key reported lost');
  await page
    .getByRole('table', { name: 'Passkeys' })
    .getByRole('button', { name: /^Revoke passkey/ })
    .click();
  const dialog = page.getByRole('dialog', { name: /^Revoke Ada Teller’s passkey “passkey / });
  await expect(dialog).toBeVisible();
  await expect(dialog).toContainText(
    '2 live sessions on 2 consoles end now (Front desk (Branch 12), Call desk 3 (Lyon centre)).',
  );
  await expect(dialog).toContainText(
    'It is Ada Teller’s only passkey: they cannot sign in until they enrol another key.',
  );
  await attachScreenshot(page, info, 'confirm-passkey');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await expect(dialog).toHaveCount(0);
  expect((await t.backend.store.operators.getCredential(ada.credentialId))?.revokedAt).toBeNull();
  await expect(page.locator('#operator-sessions')).toContainText('Call desk 3');

  await page
    .getByRole('table', { name: 'Passkeys' })
    .getByRole('button', { name: /^Revoke passkey/ })
    .click();
  await dialog.getByRole('button', { name: 'Revoke passkey' }).click();
  await expect(page.locator('#revocation-result')).toContainText('Sessions ended: 2');
  await expect(page.locator('#operator-sessions')).toContainText('No live session');
});

test('revoking an operator everywhere asks twice: what ends, then the operator’s name typed', async ({}, info) => {
  await page.goto(`${t.url}/admin/#/operators/${bob.operatorId}`);
  await page.getByLabel('Reason for a revocation or reinstatement (audit trail)').fill('Left the bank');
  await page.getByRole('button', { name: 'Revoke operator everywhere' }).click();
  const dialog = page.getByRole('dialog', { name: 'Revoke operator Bob Cashier everywhere' });
  await expect(dialog).toContainText('1 live session on 1 console ends now (Front desk (Branch 12)).');
  await expect(dialog).toContainText(
    'Bob Cashier can no longer sign in anywhere: 1 passkey and 0 unused enrolment codes stop working.',
  );
  const confirm = dialog.getByRole('button', { name: 'Revoke operator everywhere' });
  await expect(confirm).toBeDisabled();
  await dialog.getByLabel('To confirm, type the name “Bob Cashier”').fill('Bob');
  await expect(confirm).toBeDisabled();
  await attachScreenshot(page, info, 'confirm-operator');
  await dialog.getByLabel('To confirm, type the name “Bob Cashier”').fill('Bob Cashier');
  await expect(confirm).toBeEnabled();
  await confirm.click();
  await expect(page.locator('#revocation-result')).toContainText('Sessions ended: 1');
  await expect(page.getByRole('heading', { name: /Bob Cashier/ })).toContainText('revoked');
  expect((await t.backend.store.operators.get(bob.operatorId))?.revokedAt).not.toBeNull();
});

test('the policy editor: a form per channel and action, Publish disabled on errors, a diff, and a confirmation that says what changes for whom', async ({}, info) => {
  await page.getByRole('link', { name: 'Policy' }).click();
  const kiosk = page.getByRole('group', { name: 'Channel branch-kiosk' });
  const payment = page.getByRole('group', { name: 'Action payment.approve' });
  const publish = page.getByRole('button', { name: 'Publish' });
  await expect(kiosk.getByLabel('Idle lock after (s)')).toHaveValue('120');
  await expect(publish).toBeDisabled(); // nothing changed yet
  await expect(page.getByText('No change against version 1.')).toBeVisible();

  // A mistake: the field says so, Publish stays disabled.
  await kiosk.getByLabel('Idle lock after (s)').fill('1');
  await expect(kiosk.getByLabel('Idle lock after (s)')).toHaveAttribute('aria-invalid', 'true');
  await expect(kiosk).toContainText('>=5');
  await expect(page.locator('#policy-issues')).toContainText('The draft has 1 problem(s)');
  await expect(publish).toBeDisabled();
  await checkAtEverySize(page, info, 'policy-error');

  // Fixed, and a stricter payment approval.
  await kiosk.getByLabel('Idle lock after (s)').fill('90');
  await payment.getByLabel('Step-up level').selectOption('hardware');
  await expect(page.locator('#policy-issues')).toContainText('The draft is valid.');
  await expect(publish).toBeEnabled();
  const diff = page.getByRole('table', { name: 'Changes against version 1' });
  await expect(diff.getByRole('row')).toHaveCount(3);
  await expect(diff.getByRole('row').filter({ hasText: 'channels.branch-kiosk.idleLockSeconds' })).toContainText(
    '12090',
  );
  await expect(diff.getByRole('row').filter({ hasText: 'actions.payment.approve.level' })).toContainText(
    '"verified""hardware"',
  );

  // The JSON view for experts is the same draft, both ways.
  await page.getByText('JSON view (for experts)').click();
  const json = page.getByLabel('Policy document (JSON)');
  expect(JSON.parse(await json.inputValue()).channels['branch-kiosk'].idleLockSeconds).toBe(90);
  const edited = JSON.parse(await json.inputValue());
  edited.channels['contact-centre'].maxSessions = 7;
  await json.fill(JSON.stringify(edited, null, 2));
  await expect(
    page.getByRole('group', { name: 'Channel contact-centre' }).getByLabel('Sessions held at once'),
  ).toHaveValue('7');
  await checkAtEverySize(page, info, 'policy-draft');

  await publish.click();
  const dialog = page.getByRole('dialog', { name: 'Publish policy version 2' });
  await expect(dialog).toContainText('branch-kiosk (1 console): idle lock after 90 s (was 2 min)');
  await expect(dialog).toContainText('contact-centre (1 console): sessions held at once 7 (was 5)');
  await expect(dialog).toContainText(
    "contact-centre (1 console): step-up for payment.approve now requires 'hardware' within 5 min (was 'verified' within 5 min)",
  );
  await expect(dialog).toContainText(
    "shared-console (0 consoles): step-up for payment.approve now requires 'hardware' within 5 min",
  );
  await attachScreenshot(page, info, 'policy-confirm');
  await dialog.getByRole('button', { name: 'Publish version 2' }).click();
  await expect(page.locator('#policy-result')).toContainText('Published version 2');
  await expect(page.locator('#policy-current')).toContainText('Version 2');
  await expect(page.locator('#policy-current')).toContainText('by Grace Admin');
  expect(t.backend.policies.version.policy.actions['payment.approve']?.level).toBe('hardware');
  expect(t.backend.policies.version.policy.channels['branch-kiosk']?.idleLockSeconds).toBe(90);
  await expect(publish).toBeDisabled();
});

test('every admin page, at 1024, 1366 and 1920 px wide: no sideways scrolling, no overlapping controls or tables', async ({}, info) => {
  // Eight pages, three sizes each (24 screenshots and layout measurements): more than the default minute on a busy machine.
  test.slow();
  const pages = [
    ['live', '#/live', 'Live view'],
    ['operators', '#/operators', 'Operators'],
    ['operator', `#/operators/${ada.operatorId}`, 'Ada Teller'],
    ['consoles', '#/consoles', 'Consoles'],
    ['console', `#/consoles/${frontDesk.id}`, 'Front desk'],
    ['policy', '#/policy', 'Policy'],
    ['audit', '#/audit', 'Audit'],
    ['pictures', '#/pictures', 'Pictures \\(last 24 hours\\)'],
  ] as const;
  for (const [name, hash, heading] of pages) {
    await page.goto(`${t.url}/admin/${hash}`);
    await expect(page.getByRole('heading', { level: 1, name: new RegExp(`^${heading}`) })).toBeVisible();
    await expect(page.getByText(/^Loading/)).toHaveCount(0);
    await checkAtEverySize(page, info, `page-${name}`);
  }
  expect(problems).toEqual([]);
});
