/* eslint-disable no-empty-pattern -- Playwright reads fixtures from the first parameter's destructuring pattern; these tests need none. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, expect, type BrowserContext, type CDPSession, type Page, type TestInfo } from '@playwright/test';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { buildAdminConsole } from '../../backend/admin-console-build.js';
import { ADMIN_CONSOLE_CSP } from '../../backend/http/admin-assets.js';
import { sha256Hex } from '../../backend/crypto/secrets.js';
import { SERVICE_ENROLMENT_PROOF_AUDIENCE } from '../../shared/service-accounts-api.js';
import {
  httpJson,
  startTestBackend,
  TestConsole,
  type ConsoleSocket,
  type TestBackend,
} from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import type { SoftAuthenticator } from '../helpers/soft-authenticator.js';
import { SECURITY_KEY } from '../helpers/e2e-fixtures.js';
import { attachScreenshot } from '../helpers/e2e-screenshot.js';

/**
 * The admin console in Debian's Chromium against a real backend: the admin registers and signs in
 * with a passkey on a CDP virtual authenticator, watches a simulated console sign an operator in,
 * revokes that operator (with step-up) and sees the propagation time, edits a policy with a
 * mistake, previews and publishes it, and exports the audit trail. One backend for the whole story.
 */
test.describe.configure({ mode: 'serial' });

let t: TestBackend;
let bundleDir: string;
let context: BrowserContext;
let page: Page;
let cdp: CDPSession;
let kiosk: TestConsole;
let socket: ConsoleSocket;
let ada: { operatorId: string; authenticator: SoftAuthenticator };
let adminCode: string;
/** The backend's clock runs this far ahead of the wall clock (to let a step-up go stale). */
let clockOffset = 0;
const problems: string[] = [];

async function shot(info: TestInfo, name: string): Promise<void> {
  await attachScreenshot(page, info, name);
}

test.beforeAll(async ({ browser }) => {
  bundleDir = mkdtempSync(join(tmpdir(), 'baton-admin-bundle-'));
  await buildAdminConsole(bundleDir);
  t = await startTestBackend({ adminConsoleDir: bundleDir }, { clock: () => Date.now() + clockOffset });
  // Seed, with the bootstrap token, what exists before the first admin: a console and an operator.
  kiosk = await TestConsole.enrol(t.url, t.admin, 'branch-kiosk');
  socket = await kiosk.connect({ hello: false });
  socket.send({
    type: 'hello',
    protocol: 1,
    policyVersion: 0,
    revocationEpoch: 0,
    agentVersion: 'test',
    outbox: { pending: 3, max: 10000 },
  });
  await socket.next('welcome');
  const enrolled = await enrolOperator(t.admin, kiosk, { displayName: 'Ada Teller' });
  ada = { operatorId: enrolled.operatorId, authenticator: enrolled.authenticator };
  const first = await t.admin.ok('POST', '/v1/admin/bootstrap', { displayName: 'Grace Admin', id: 'grace' });
  adminCode = first.code as string;

  context = await browser.newContext();
  // The admin's PC clock runs two hours slow: the pages reckon time on the backend's clock (its Date header).
  await context.clock.install({ time: Date.now() - 2 * 3600_000 });
  page = await context.newPage();
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && !/status of 40[13]/.test(message.text())) problems.push(message.text());
  });
  cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  await cdp.send('WebAuthn.addVirtualAuthenticator', { options: SECURITY_KEY });
});

test.afterAll(async () => {
  await socket?.close();
  await context?.close();
  await t?.stop();
  rmSync(bundleDir, { recursive: true, force: true });
});

test('the first admin registers a passkey with the enrolment code, signs out, and signs in with it', async ({}, info) => {
  const response = await page.goto(`${t.url}/admin/#/register`);
  expect(response?.status()).toBe(200);
  expect(response?.headers()['content-security-policy']).toBe(ADMIN_CONSOLE_CSP);
  await page.getByLabel('Enrolment code').fill(adminCode);
  await shot(info, '01-register');
  await page.getByRole('button', { name: 'Register passkey' }).click();
  await expect(page.locator('#signed-in-as')).toHaveText('Grace Admin (grace)');

  // The bootstrap token is now refused with its own code.
  const refused = await t.admin.request('GET', '/v1/admin/consoles');
  expect(refused.status).toBe(401);
  expect(refused.body.error.code).toBe('ADMIN_BOOTSTRAP_DISABLED');

  // The session cookie is HttpOnly and SameSite=Strict: the page cannot read it.
  const cookies = await context.cookies();
  expect(cookies.find((c) => c.name === 'baton_admin')).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
  expect(await page.evaluate(() => document.cookie)).toBe('');

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('heading', { name: 'Sign in to the Baton admin console' })).toBeVisible();
  await shot(info, '02-sign-in');
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await expect(page.locator('#signed-in-as')).toHaveText('Grace Admin (grace)');
  await expect(page.getByRole('heading', { name: 'Live view' })).toBeVisible();
});

test('the live view shows a console sign-in as it happens, with its session path', async ({}, info) => {
  await expect(page.locator('#stream-state')).toHaveText('live: connected');
  await expect(page.getByRole('table', { name: 'Consoles' })).toContainText('online');
  // The last hour's events are there (the admin's own sign-in among them); no operator sign-in yet.
  await expect(page.locator('#event-rows tr[data-type="admin-action"]').first()).toContainText('admin-signed-in');
  await expect(page.locator('#event-rows tr[data-type="session-established"]')).toHaveCount(0);

  const result = await signIn(kiosk, ada.authenticator);
  expect(result.status).toBe(200);
  const sessionId = result.body.session.id as string;

  const row = page.locator('#event-rows tr[data-type="session-established"]');
  await expect(row).toHaveCount(1);
  await expect(row).toContainText('Ada Teller');
  await expect(row).toContainText(sessionId);
  await expect(page.getByRole('table', { name: 'Signed in now' })).toContainText('Ada Teller');
  await expect(page.getByRole('table', { name: 'Signed in now' })).toContainText('verified');

  await row.getByRole('button').click();
  await expect(page.locator('#drill-down')).toContainText(`Session ${sessionId}: every event, in order`);
  await expect(page.getByRole('table', { name: 'Session path' })).toContainText('session-established');
  await shot(info, '03-live');
});

test('revoking the operator needs a fresh step-up, ends her session and shows how fast consoles heard', async ({}, info) => {
  // The sign-in counted as a step-up; six minutes later it no longer does.
  clockOffset = 6 * 60 * 1000;
  const revocation = socket
    .next('revocation', () => true, 15_000)
    .then((m) => {
      socket.send({ type: 'ack', of: 'revocation', epoch: m.epoch });
      return m;
    });
  await page.getByRole('table', { name: 'Signed in now' }).getByRole('link', { name: 'Ada Teller' }).click();
  await expect(page.getByRole('heading', { name: /Ada Teller/ })).toBeVisible();
  await expect(page.locator('#operator-sessions')).toContainText('active');

  await page.getByRole('button', { name: 'Revoke operator everywhere' }).click();
  await expect(page.getByRole('alert')).toContainText('Type a reason first');
  await page.getByLabel('Reason for a revocation or reinstatement (audit trail)').fill('Badge reported stolen');
  await page.getByRole('button', { name: 'Revoke operator everywhere' }).click();
  // First what ends, with her name typed; then the passkey step-up.
  const confirm = page.getByRole('dialog', { name: 'Revoke operator Ada Teller everywhere' });
  await expect(confirm).toContainText('1 live session on 1 console ends now (test console).');
  await confirm.getByLabel('To confirm, type the name “Ada Teller”').fill('Ada Teller');
  await confirm.getByRole('button', { name: 'Revoke operator everywhere' }).click();
  const dialog = page.getByRole('dialog', { name: 'Confirm it is you' });
  await expect(dialog).toBeVisible();
  await shot(info, '04-step-up');
  await dialog.getByRole('button', { name: 'Confirm with passkey' }).click();

  await expect(page.locator('#revocation-result')).toContainText('Sessions ended: 1');
  const message = await revocation;
  expect(message.items.map((i) => i.kind)).toContain('operator');
  await expect(page.locator('#propagation')).toContainText(
    /Reached 1 of 1 console\(s\); slowest acknowledgement \d+ ms/,
  );
  await expect(page.locator('#operator-sessions')).toContainText('No live session');
  await expect(page.getByRole('heading', { name: /Ada Teller/ })).toContainText('revoked');
  await shot(info, '05-operator-revoked');

  // On the live view her session has gone and the revocation events arrived.
  await page.getByRole('link', { name: 'Live' }).click();
  await expect(page.locator('#event-rows tr[data-type="session-revoked"]')).toHaveCount(1);
  await expect(page.getByRole('table', { name: 'Signed in now' })).toHaveCount(0);
  await expect(page.getByText('Nobody is signed in on any console right now.')).toBeVisible();
});

test('a policy edit with a mistake points at the field; fixed, previewed and published', async ({}, info) => {
  await page.getByRole('link', { name: 'Policy' }).click();
  // The expert's way: the whole document as JSON (the form follows it).
  await page.getByText('JSON view (for experts)').click();
  const editor = page.getByLabel('Policy document (JSON)');
  await expect(editor).toHaveValue(/branch-kiosk/);
  const policy = JSON.parse(await editor.inputValue());
  policy.channels['branch-kiosk'].idleLockSeconds = 1;
  await editor.fill(JSON.stringify(policy, null, 2));
  await page.getByRole('button', { name: 'Validate' }).click();
  const issue = page.locator('#policy-issues');
  await expect(issue).toContainText('The draft has 1 problem(s)');
  await expect(issue.getByRole('button', { name: 'channels.branch-kiosk.idleLockSeconds' })).toBeVisible();
  await expect(issue).toContainText('>=5');
  await expect(editor).toHaveAttribute('aria-invalid', 'true');
  await shot(info, '06-policy-error');
  await issue.getByRole('button', { name: 'channels.branch-kiosk.idleLockSeconds' }).click();
  await expect(editor).toBeFocused();

  policy.channels['branch-kiosk'].idleLockSeconds = 90;
  policy.actions['payment.approve'].level = 'hardware';
  await editor.fill(JSON.stringify(policy, null, 2));
  await page.getByRole('button', { name: 'Validate' }).click();
  await expect(issue).toContainText('The draft is valid.');

  await page.getByLabel('Signed in at level').selectOption('verified');
  await page.getByRole('button', { name: 'Preview decision' }).click();
  await expect(page.locator('#preview-result')).toContainText('Draft decides: step-up to hardware');

  await page.getByRole('button', { name: 'Publish' }).click();
  const publish = page.getByRole('dialog', { name: 'Publish policy version 2' });
  await expect(publish).toContainText('branch-kiosk (1 console): idle lock after 90 s (was 2 min)');
  await expect(publish).toContainText(
    "branch-kiosk (1 console): step-up for payment.approve now requires 'hardware' within 5 min (was 'verified' within 5 min)",
  );
  await publish.getByRole('button', { name: 'Publish version 2' }).click(); // the step-up above is still fresh
  await expect(page.locator('#policy-result')).toContainText('Published version 2');
  await expect(page.locator('#policy-current')).toContainText('Version 2');
  await socket.next('policy', (m) => m.version === 2);
  await shot(info, '07-policy-published');
});

test('the audit trail exports a range as CSV and JSON Lines', async ({}, info) => {
  await page.getByRole('link', { name: 'Audit' }).click();
  // The backend's clock ran ahead (see the step-up test): export up to an hour from now.
  const inAnHour = new Date(Date.now() + 3600_000 - new Date().getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
  await page.getByLabel(/^To \(/).fill(inAnHour);
  await page.getByLabel('Format').selectOption('csv');
  await shot(info, '08-audit');
  const [csv] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download export' }).click(),
  ]);
  expect(csv.suggestedFilename()).toMatch(/^baton-events-.*\.csv$/);
  const text = readFileSync(await csv.path(), 'utf8');
  const lines = text.trimEnd().split('\r\n');
  expect(lines[0]).toBe(
    '"cursor","time","id","origin","seq","type","outcome","operator","console","session","credential","level","reasons","detail","integrity","hash"',
  );
  expect(lines.some((l) => l.includes('"session-established"') && l.includes(`"${ada.operatorId}"`))).toBe(true);
  expect(lines.some((l) => l.includes('"operator-revoked"') && l.includes('""actor"":""operator:grace""'))).toBe(true);

  await page.getByLabel('Format').selectOption('jsonl');
  const [jsonl] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download export' }).click(),
  ]);
  const events = readFileSync(await jsonl.path(), 'utf8')
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l));
  expect(events.map((e) => e.type)).toEqual(
    expect.arrayContaining(['session-established', 'operator-revoked', 'policy-changed']),
  );
  // Each export is itself recorded before it runs: this one holds the CSV's events plus its own record.
  expect(events.length).toBe(lines.length);
  const exported = (format: string) => ({
    type: 'admin-action',
    reasons: ['audit-exported'],
    detail: { actor: 'operator:grace', format },
  });
  expect(events.at(-2)).toMatchObject(exported('csv'));
  expect(events.at(-1)).toMatchObject(exported('jsonl'));
});

test('the audit list says which service did it and under which policy version', async ({}, info) => {
  // The admin issues a service enrolment token on the Services page; a batch job enrols with it and a key of its own.
  await page.getByRole('link', { name: 'Services' }).click();
  await page.locator('#service-name').fill('nightly payments batch');
  await page.locator('#service-actions').fill('customer.view');
  await page.locator('#service-token-issue').click();
  const token = (await page.locator('#new-service-token').textContent()) ?? '';
  expect(token).toMatch(/^bst_/);
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const { kty, crv, x, y } = await exportJWK(publicKey);
  const backendNow = Math.floor((Date.now() + clockOffset) / 1000); // the backend's clock runs ahead
  const proof = await new SignJWT({ nonce: sha256Hex(token) })
    .setProtectedHeader({ alg: 'ES256' })
    .setAudience(SERVICE_ENROLMENT_PROOF_AUDIENCE)
    .setIssuedAt(backendNow)
    .setExpirationTime(backendNow + 120)
    .sign(privateKey);
  const enrolled = await httpJson(`${t.url}/v1/services/enrol`, {
    method: 'POST',
    body: JSON.stringify({ token, publicKey: { kty, crv, x, y }, proof }),
  });
  expect(enrolled.status, JSON.stringify(enrolled.body)).toBe(201);
  const serviceId = enrolled.body.serviceId as string;

  await page.getByRole('link', { name: 'Audit' }).click();
  const cells = async (type: string) => {
    await page.locator('#events-type').selectOption(type);
    await page.locator('#events-apply').click();
    const rows = page.locator('#events-rows tbody tr');
    await expect(rows.first().locator('td').nth(1)).toHaveText(type);
    await expect(rows).toHaveCount(1);
    const headers = await page.locator('#events-rows thead th').allTextContents();
    const texts = await rows.first().locator('td').allTextContents();
    return Object.fromEntries(
      headers.map((label, i) => [label.replace(/ [▲▼]$/, '').replace(/ \(.*\)$/, ''), texts[i]]),
    );
  };
  // The service's own event names it (by its name, the id as the tooltip); no operator or console did it, and
  // no policy decided it.
  expect(await cells('service-enrolled')).toMatchObject({
    type: 'service-enrolled',
    operator: '—',
    console: '—',
    service: 'nightly payments batch',
    policy: '—',
  });
  await expect(page.locator('#events-rows tbody tr').first().getByTitle(serviceId)).toHaveText(
    'nightly payments batch',
  );
  await shot(info, '08b-audit-service');
  // Ada's sign-in was decided under policy version 1 (version 2 was published after it); no service took part.
  expect(await cells('session-established')).toMatchObject({
    type: 'session-established',
    operator: 'Ada Teller',
    service: '—',
    policy: 'v1',
  });
  expect((await t.backend.events.query({ type: 'session-established', limit: 10 }))[0]?.detail?.policyVersion).toBe(1);
});

test('consoles and pictures pages show backlog, state and charts with text alternatives', async ({}, info) => {
  // The console's own events (its chain) arrive, so there is a chain to verify.
  socket.send({ type: 'events', events: [kiosk.nextEvent(), kiosk.nextEvent()] });
  await socket.next('events-ack', (m) => m.upToSeq === 2);
  await page.getByRole('link', { name: 'Consoles' }).click();
  const consoles = page.getByRole('table', { name: 'Consoles' });
  await expect(consoles).toContainText('3 / 10000');
  await expect(consoles).toContainText('online');
  await shot(info, '09-consoles');
  await consoles.getByRole('link').first().click();
  await expect(page.getByText('No gaps or broken chains were found when events arrived.')).toBeVisible();
  await page.getByRole('button', { name: 'Re-verify event chain now' }).click();
  await expect(page.getByRole('status').filter({ hasText: '2 events checked: chain intact' })).toBeVisible();
  await shot(info, '10-console-detail');

  await page.getByRole('link', { name: 'Pictures' }).click();
  await expect(page.getByRole('img', { name: /1 sign-ins \(new or resumed\) and 0 failed sign-ins/ })).toBeVisible();
  await expect(
    page.getByRole('img', { name: /1 revocations; the slowest reached its last console in \d+ ms/ }),
  ).toBeVisible();
  await expect(page.getByRole('img', { name: '1 online, 0 offline, 0 revoked.' })).toBeVisible();
  await expect(page.getByText('No step-ups in the last 24 hours.')).toBeVisible();
  await shot(info, '11-pictures');
  expect(problems).toEqual([]);
});

test('a page on another port of localhost cannot borrow the admin cookie, not even to start an export', async () => {
  // Another port on localhost is the same site, so SameSite=Strict lets the admin's cookie go along.
  const elsewhere = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>Another app on this machine</title>');
  });
  await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
  const exports = async () =>
    (await t.backend.events.query({ type: 'admin-action', limit: 1000 })).filter((e) =>
      e.reasons.includes('audit-exported'),
    ).length;
  const before = await exports();
  const other = await context.newPage();
  try {
    await other.goto(`http://localhost:${(elsewhere.address() as AddressInfo).port}/`);
    await other.evaluate(async (backend) => {
      const to = Date.now() + 3600_000;
      await fetch(`${backend}/v1/admin/events/export?format=jsonl&from=0&to=${to}`, {
        credentials: 'include',
        mode: 'no-cors',
        // The request goes out and the backend acts on it (or not) before the browser's CORP check
        // turns the answer into a network error the page cannot read: the harm needs no reply.
      }).catch(() => undefined);
    }, t.url);
  } finally {
    await other.close();
    elsewhere.close();
  }
  expect(await exports()).toBe(before);
  // The admin console itself still exports.
  await page.getByRole('link', { name: 'Audit' }).click();
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download export' }).click(),
  ]);
  expect(download.suggestedFilename()).toMatch(/\.(csv|jsonl)$/);
  expect(await exports()).toBe(before + 1);
});
