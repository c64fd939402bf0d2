/* eslint-disable no-empty-pattern -- Playwright reads fixtures from the first parameter's destructuring pattern; these tests need none. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, expect, type BrowserContext, type Page, type TestInfo } from '@playwright/test';
import { buildAdminConsole } from '../../backend/admin-console-build.js';
import { serviceStore } from '../../backend/service-accounts/service-store.js';
import { startTestBackend, type TestBackend } from '../helpers/backend-harness.js';
import { firstAdminInBrowser } from '../helpers/e2e-admin.js';
import { SECURITY_KEY } from '../helpers/e2e-fixtures.js';
import { layoutProblems } from '../helpers/e2e-layout.js';
import { attachScreenshot } from '../helpers/e2e-screenshot.js';

/**
 * Issue 12, the admin console's last tables and its pictures, in Chromium against a real backend:
 * the Sessions and Revocations pages searched, filtered and paged by names; the pictures' time-range
 * picker, dated time axes, legends in the bars' colours, revocation propagation as p50 / p99 over
 * time, and a bar that leads to the events it counts; then every admin page (the signed-out ones
 * too) at 1024×768, 1366×768 and 1920×1080, checked by bounding boxes.
 */
test.describe.configure({ mode: 'serial' });

const SESSIONS = 60;
const SERVICES = [
  ['svc_nightly', 'Nightly report'],
  ['svc_hr', 'HR sync'],
] as const;
const REVOCATIONS = 30;
const MINUTE = 60_000;

let t: TestBackend;
let bundleDir: string;
let context: BrowserContext;
let page: Page;
let problems: string[] = [];
const problemsAtSizes: string[] = [];

async function seed(now: number): Promise<void> {
  const store = t.backend.services.store;
  const consoles = [
    ['con_north', 'North desk', 'Leeds'],
    ['con_south', 'South desk', 'York'],
  ] as const;
  for (const [id, name, site] of consoles) {
    await store.consoles.insert({
      id,
      name,
      channel: 'branch-kiosk',
      site,
      publicJwk: '{}',
      jkt: `jkt-${id}`,
      enrolledAt: now - 10 * 86_400_000,
      lastSeenAt: null,
      policyVersion: 1,
      revocationEpoch: 0,
      revokedAt: null,
      revokedReason: null,
    });
  }
  for (const [id, name] of [
    ['op_ada', 'Ada Teller'],
    ['op_bob', 'Bob Clerk'],
  ] as const) {
    await store.operators.insert({
      id,
      displayName: name,
      roles: ['teller'],
      webauthnUserId: `wa-${id}`,
      createdAt: now - 10 * 86_400_000,
      failedAttempts: 0,
      revokedAt: null,
      revokedReason: null,
    });
  }
  // Sessions, newest first: Ada's on North desk every other one, Bob's on South desk; the newest five live.
  for (let i = 0; i < SESSIONS; i++) {
    const ada = i % 2 === 0;
    const started = now - (i + 1) * 10 * MINUTE;
    await store.sessions.insert({
      id: `ses_${String(i).padStart(3, '0')}`,
      operatorId: ada ? 'op_ada' : 'op_bob',
      consoleId: ada ? 'con_north' : 'con_south',
      channel: 'branch-kiosk',
      credentialId: 'cred_seeded',
      level: 'verified',
      authTime: started,
      startedAt: started,
      expiresAt: started + 8 * 60 * MINUTE,
      state: i < 5 ? 'active' : 'ended',
      suspendedAt: null,
      endedAt: i < 5 ? null : started + 5 * MINUTE,
      endReason: i < 5 ? null : 'sign-out',
    });
  }
  // Revocations in the last hours, each sent to both desks: North acknowledges in 10·(i+1) ms, South in 5 ms,
  // except the newest, which South never acknowledged.
  for (let i = 0; i < REVOCATIONS; i++) {
    const at = now - (REVOCATIONS - i) * 4 * MINUTE;
    const r = await store.revocations.insert({
      kind: i === REVOCATIONS - 1 ? 'console' : 'session',
      targetId: i === REVOCATIONS - 1 ? 'con_south' : `ses_${String(i).padStart(3, '0')}`,
      operatorId: i === REVOCATIONS - 1 ? null : 'op_ada',
      consoleId: i === REVOCATIONS - 1 ? 'con_south' : 'con_north',
      reason: i === REVOCATIONS - 1 ? 'stolen' : 'left the branch',
      actor: 'operator:op_ada',
      at,
    });
    await store.revocations.recordDeliveries(r.epoch, ['con_north', 'con_south'], at);
    await store.revocations.recordAck('con_north', r.epoch, at + 10 * (i + 1));
    if (i < REVOCATIONS - 1) await store.revocations.recordAck('con_south', r.epoch, at + 5);
  }
  // Two service accounts and the backend's events about each (issue 14): three tokens for the nightly report,
  // two for the HR sync, interleaved.
  for (const [id, name] of SERVICES) {
    await serviceStore(store).insertService({
      id,
      name,
      actions: ['customer.view'],
      enrolledAt: now - 86_400_000,
      enrolledBy: 'operator:op_ada',
      lastUsedAt: null,
      revokedAt: null,
      revokedBy: null,
      revokedReason: null,
    });
  }
  for (const service of ['svc_nightly', 'svc_hr', 'svc_nightly', 'svc_hr', 'svc_nightly']) {
    await t.backend.services.events.record({
      type: 'service-token-issued',
      subject: { service },
      outcome: 'success',
      reasons: ['service-action-allowed'],
      detail: { action: 'customer.view', audience: 'urn:bank:payments' },
    });
  }
  // Three sign-ins and a failure now, as the backend records them.
  for (let i = 0; i < 3; i++) {
    await t.backend.services.events.record({
      type: 'session-established',
      subject: { operator: 'op_ada', console: 'con_north', session: `ses_00${i}` },
      outcome: 'success',
      reasons: [],
    });
  }
  await t.backend.services.events.record({
    type: 'sign-in-failed',
    subject: { console: 'con_north' },
    outcome: 'failure',
    reasons: ['unknown-credential'],
  });
}

async function checkAtSizes(p: Page, info: TestInfo, name: string): Promise<void> {
  for (const viewport of [
    { width: 1024, height: 768 },
    { width: 1366, height: 768 },
    { width: 1920, height: 1080 },
  ]) {
    await p.setViewportSize(viewport);
    await attachScreenshot(p, info, `${name}-${viewport.width}`);
    for (const problem of await layoutProblems(p)) problemsAtSizes.push(`${name} at ${viewport.width}: ${problem}`);
  }
  await p.setViewportSize({ width: 1366, height: 768 });
}

test.beforeAll(async ({ browser }, info) => {
  // A bundle build, a backend, the estate, the setup page at three sizes and the first admin: more than a minute on
  // a machine shared by seven helpers.
  test.setTimeout(180_000);
  bundleDir = mkdtempSync(join(tmpdir(), 'baton-admin-bundle-'));
  await buildAdminConsole(bundleDir);
  t = await startTestBackend({ adminConsoleDir: bundleDir });
  await seed(Date.now());
  // The first-run setup page, before any admin exists, at the three sizes.
  const first = await browser.newContext({ timezoneId: 'Europe/London', locale: 'en-GB' });
  const setup = await first.newPage();
  await setup.goto(`${t.url}/admin/`);
  await expect(setup.getByLabel(/^Bootstrap token/)).toBeVisible();
  await checkAtSizes(setup, info, 'setup');
  await first.close();
  ({ context, page, problems } = await firstAdminInBrowser(browser, t));
});

test.afterAll(async () => {
  await context?.close();
  await t?.stop();
  rmSync(bundleDir, { recursive: true, force: true });
});

const sessionRows = () => page.locator('#sessions-rows tbody tr');
const revocationRows = () => page.locator('#revocations-rows tbody tr');

test('the Sessions page pages every session by name, newest first, and filters by an operator’s name', async ({}, info) => {
  await page.getByRole('link', { name: 'Sessions' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Sessions' })).toBeVisible();
  await expect(sessionRows()).toHaveCount(25);
  await expect(page.locator('#sessions-position')).toHaveText(`Rows 1–25 of ${SESSIONS}`);
  // Names instead of ids, newest first.
  await expect(sessionRows().first()).toContainText('Ada Teller');
  await expect(sessionRows().first()).toContainText('North desk');
  await expect(sessionRows().first()).toContainText('Leeds');
  await expect(sessionRows().first()).toContainText('active');
  await expect(sessionRows().nth(1)).toContainText('Bob Clerk');
  await page.locator('#sessions-next').click();
  await expect(page.locator('#sessions-position')).toHaveText(`Rows 26–50 of ${SESSIONS}`);
  await page.locator('#sessions-operator').fill('ada teller');
  await page.locator('#sessions-apply').click();
  await expect(page.locator('#sessions-position')).toHaveText(`Rows 1–25 of ${SESSIONS / 2}`);
  for (const row of await sessionRows().all()) await expect(row).toContainText('Ada Teller');
  await page.locator('#sessions-state').selectOption('active');
  await page.locator('#sessions-apply').click();
  await expect(page.locator('#sessions-position')).toHaveText('Rows 1–3 of 3');
  await checkAtSizes(page, info, 'sessions');
  // A row leads to its operator, where a live session can be ended.
  await sessionRows().first().getByRole('link', { name: 'Ada Teller' }).click();
  await expect(page.getByRole('heading', { level: 1, name: /Ada Teller/ })).toBeVisible();
});

test('the Revocations page says what was revoked by name, who did it and how far it reached', async ({}, info) => {
  await page.getByRole('link', { name: 'Revocations' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Revocations' })).toBeVisible();
  await expect(revocationRows()).toHaveCount(25);
  const newest = revocationRows().first();
  await expect(newest).toContainText('South desk');
  await expect(newest).toContainText('stolen');
  await expect(newest).toContainText('Ada Teller');
  await expect(newest).toContainText(`1 of 2 console(s), slowest ${10 * REVOCATIONS} ms`);
  await expect(revocationRows().nth(1)).toContainText(`2 of 2 console(s), slowest ${10 * (REVOCATIONS - 1)} ms`);
  await page.locator('#revocations-next').click();
  await expect(revocationRows()).toHaveCount(REVOCATIONS - 25);
  await page.locator('#revocations-search').fill('South desk');
  await page.locator('#revocations-apply').click();
  await expect(revocationRows()).toHaveCount(1);
  await page.locator('#revocations-clear').click();
  // Clear changes the address; the page is drawn again on the next task: fill the new form, not the old one.
  await expect(page.locator('#revocations-search')).toHaveValue('');
  await page.locator('#revocations-kind').selectOption('session');
  await page.locator('#revocations-apply').click();
  await expect(revocationRows().first()).toContainText('a session of Ada Teller on North desk');
  await checkAtSizes(page, info, 'revocations');
});

test('pictures: a time-range picker, dated axes, legends in the bars’ colours, propagation as p50 and p99', async ({}, info) => {
  await page.getByRole('link', { name: 'Pictures' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Pictures (last 24 hours)' })).toBeVisible();
  const signIns = page.locator('#chart-sign-ins');
  await expect(signIns.getByRole('heading', { name: 'Sign-ins and failures per hour (Europe/London)' })).toBeVisible();
  // The axis dates its first label (ISO, the admin's zone) and labels the rest by the hour, except a
  // label that falls on a new day, which is dated too (which label that is depends on the hour of the run).
  const ticks = signIns.locator('svg.chart text.tick');
  await expect(ticks.first()).toHaveText(/^\d{4}-\d{2}-\d{2}$/);
  const labels = await ticks.allTextContents();
  expect(
    labels.slice(1).every((t) => /^(\d{2}:00|\d{4}-\d{2}-\d{2})$/.test(t)),
    labels.join(' '),
  ).toBe(true);
  expect(labels.filter((t) => /^\d{2}:00$/.test(t)).length, labels.join(' ')).toBeGreaterThan(0);
  const dates = labels.filter((t) => /^\d{4}-\d{2}-\d{2}$/.test(t));
  expect(dates.length, 'a 24-hour range crosses at most one midnight').toBeLessThanOrEqual(2);
  expect([...dates].sort(), 'the dates in order').toEqual(dates);
  // Each legend swatch is painted as its series' bars are.
  for (const series of ['sign-ins', 'failures']) {
    const bar = await signIns
      .locator(`rect[data-series="${series}"]`)
      .first()
      .evaluate((e) => getComputedStyle(e).fill);
    const swatch = await signIns
      .locator(`.legend li[data-series="${series}"] rect`)
      .evaluate((e) => getComputedStyle(e).fill);
    expect(swatch, `the legend of ${series}`).toBe(bar);
  }
  const [okFill, badFill] = await Promise.all(
    ['sign-ins', 'failures'].map((s) =>
      signIns.locator(`.legend li[data-series="${s}"] rect`).evaluate((e) => getComputedStyle(e).fill),
    ),
  );
  expect(okFill).not.toBe(badFill);
  // Propagation over time: this hour's p50 and p99 of the 59 acknowledgements (5 ms ×29, 10 … 300 ms).
  const propagation = page.locator('#chart-propagation');
  await expect(
    propagation.getByRole('heading', { name: /^Revocation propagation per hour, p50 and p99/ }),
  ).toBeVisible();
  // One p50 and one p99 bar per hour, in the same order. Which hours the 30 revocations (every 4 minutes over the
  // last 2 hours) fall in depends on the time of day: an hour may hold only the newest one (p50 = p99 = 300 ms).
  const values = (series: string) =>
    propagation
      .locator(`rect[data-series="${series}"]`)
      .evaluateAll((rects) => rects.map((r) => Number(r.getAttribute('data-value'))));
  const [p50Values, p99Values] = await Promise.all([values('p50'), values('p99')]);
  expect(p50Values.length).toBe(p99Values.length);
  expect(p50Values.some((v) => v > 0)).toBe(true);
  expect(Math.max(...p99Values)).toBe(10 * REVOCATIONS);
  p50Values.forEach((v, i) => expect(v, `hour ${i}: p50 at most p99`).toBeLessThanOrEqual(p99Values[i] ?? 0));
  // The hours holding several revocations show their spread: a median below the slowest.
  expect(p50Values.some((v, i) => v > 0 && v < (p99Values[i] ?? 0))).toBe(true);
  await checkAtSizes(page, info, 'pictures-24h');

  // The picker: the last 7 days, in 6-hour bars; the address keeps the choice across a reload.
  await page.locator('#range').selectOption('7d');
  await expect(page.getByRole('heading', { level: 1, name: 'Pictures (last 7 days)' })).toBeVisible();
  await expect(
    page.locator('#chart-sign-ins').getByRole('heading', { name: 'Sign-ins and failures per 6 hours (Europe/London)' }),
  ).toBeVisible();
  await page.reload();
  await expect(page.getByRole('heading', { level: 1, name: 'Pictures (last 7 days)' })).toBeVisible();
  await expect(page.locator('#chart-sign-ins svg.chart text.tick').first()).toHaveText(/^\d{4}-\d{2}-\d{2}$/);
  await checkAtSizes(page, info, 'pictures-7d');
  // A range of one's own: from … to …, refused when backwards.
  await page.locator('#range').selectOption('custom');
  await page.locator('#range-from').fill('2026-01-02T10:00');
  await page.locator('#range-to').fill('2026-01-01T10:00');
  await page.locator('#range-apply').click();
  await expect(page.getByRole('alert')).toHaveText('The start must be before the end.');
});

test('a bar leads to the events it counts, and “Show all” goes back to every event', async ({}, info) => {
  await page.goto(`${t.url}/admin/#/pictures?range=1h`);
  await expect(page.getByRole('heading', { level: 1, name: 'Pictures (last hour)' })).toBeVisible();
  const bar = page.locator('#chart-sign-ins a.bar-link rect[data-series="sign-ins"]').last();
  await expect(bar).toHaveAttribute('data-value', '3');
  await bar.click();
  await expect(page.getByRole('heading', { level: 1, name: 'Audit' })).toBeVisible();
  await expect(page.locator('#events-window')).toContainText(
    'Showing only type: session-established or session-resumed, origin: backend, from ',
  );
  const rows = page.locator('#events-rows tbody tr');
  await expect(rows).toHaveCount(3);
  for (const row of await rows.all()) await expect(row).toContainText('session-established');
  await attachScreenshot(page, info, 'audit-from-a-bar');
  await page.locator('#events-all').click();
  await expect(page.locator('#events-window')).toHaveCount(0);
  await expect(rows.filter({ hasText: 'sign-in-failed' })).toHaveCount(1);
  // The failures bar leads to the failure.
  await page.goto(`${t.url}/admin/#/pictures?range=1h`);
  await page.locator('#chart-sign-ins a.bar-link rect[data-series="failures"]').last().click();
  await expect(page.locator('#events-rows tbody tr')).toHaveCount(1);
  await expect(page.locator('#events-rows tbody tr').first()).toContainText('sign-in-failed');
  // A revocation bar leads to that revocation.
  await page.goto(`${t.url}/admin/#/pictures`);
  await page.locator('#chart-revocations a.bar-link').last().click();
  await expect(page.getByRole('heading', { level: 1, name: 'Revocations' })).toBeVisible();
  await expect(revocationRows()).toHaveCount(1);
  await expect(revocationRows().first()).toContainText('South desk');
});

test('the audit trail of one service account: from its row on the Services page, and by the Audit page’s service filter', async ({}, info) => {
  await page.goto(`${t.url}/admin/#/services`);
  await expect(page.getByRole('heading', { level: 1, name: 'Services' })).toBeVisible();
  await page
    .locator('#services-rows tbody tr', { hasText: 'Nightly report' })
    .getByRole('link', { name: 'events' })
    .click();
  await expect(page.getByRole('heading', { level: 1, name: 'Audit' })).toBeVisible();
  await expect(page.locator('#events-service')).toHaveValue('svc_nightly');
  const rows = page.locator('#events-rows tbody tr');
  await expect(rows).toHaveCount(3);
  // The service by name (its id as the tooltip), and none of the other service's events or anyone else's.
  for (const row of await rows.all()) {
    await expect(row).toContainText('service-token-issued');
    await expect(row.getByTitle('svc_nightly')).toHaveText('Nightly report');
  }
  await attachScreenshot(page, info, 'audit-by-service');
  // The filter takes a name as typed.
  await page.locator('#events-service').fill('hr sync');
  await page.locator('#events-apply').click();
  await expect(page.locator('#events-service')).toHaveValue('hr sync');
  await expect(rows).toHaveCount(2);
  for (const row of await rows.all()) await expect(row.getByTitle('svc_hr')).toHaveText('HR sync');
  // Cleared, the list holds every event again: both services' and the sign-ins.
  await page.locator('#events-clear').click();
  await expect(page.locator('#events-service')).toHaveValue('');
  await expect(rows.filter({ hasText: 'Nightly report' })).toHaveCount(3);
  await expect(rows.filter({ hasText: 'HR sync' })).toHaveCount(2);
  await expect(rows.filter({ hasText: 'session-established' })).toHaveCount(3);
});

test('every other admin page, signed in and signed out, at 1024, 1366 and 1920 px: no sideways scrolling, no overlap', async ({
  browser,
}, info) => {
  test.slow();
  for (const [name, hash, heading] of [
    ['api-tokens', '#/tokens', 'API tokens'],
    ['services', '#/services', 'Service'],
    ['integrations', '#/integrations', 'Integrations'],
  ] as const) {
    await page.goto(`${t.url}/admin/${hash}`);
    await expect(page.getByRole('heading', { level: 1, name: new RegExp(`^${heading}`) })).toBeVisible();
    await expect(page.getByText(/^Loading/)).toHaveCount(0);
    await checkAtSizes(page, info, name);
  }
  // Signed out: the sign-in page and the register page (a second browser, no session).
  const other = await browser.newContext({ timezoneId: 'Europe/London', locale: 'en-GB' });
  const signedOut = await other.newPage();
  const cdp = await other.newCDPSession(signedOut);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  await cdp.send('WebAuthn.addVirtualAuthenticator', { options: SECURITY_KEY });
  await signedOut.goto(`${t.url}/admin/`);
  await expect(signedOut.getByRole('button', { name: /sign in/i }).first()).toBeVisible();
  await checkAtSizes(signedOut, info, 'sign-in');
  await signedOut.goto(`${t.url}/admin/#/register`);
  await expect(signedOut.getByRole('heading', { level: 1 })).toBeVisible();
  await checkAtSizes(signedOut, info, 'register');
  await other.close();
  expect(problemsAtSizes).toEqual([]);
  expect(problems).toEqual([]);
});
