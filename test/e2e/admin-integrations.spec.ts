/* eslint-disable no-empty-pattern -- Playwright reads fixtures from the first parameter's destructuring pattern; these tests need none. */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { test, expect, type BrowserContext, type Locator, type Page } from '@playwright/test';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { buildAdminConsole } from '../../backend/admin-console-build.js';
import { adminTime } from '../helpers/admin-time.js';
import { TestConsole, httpJson, startTestBackend, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { firstAdminInBrowser } from '../helpers/e2e-admin.js';
import { layoutProblems } from '../helpers/e2e-layout.js';
import { attachScreenshot } from '../helpers/e2e-screenshot.js';
import { ConformanceReceiver } from '../helpers/ssf-receiver.js';

/**
 * The Integrations page (issue 13's admin console), in Chromium against a real backend: a SIEM
 * collector that refuses, shown failing with its answer, then caught up once it takes batches; a
 * Shared Signals stream a receiver created, paused and resumed from the page; a push stream verified
 * from the page (accepted, then refused by a receiver answering 503) with its delivery latency
 * picture; each stream's events by short name (full URI as a tooltip) and since when a push receiver
 * answering 503 has been failing, back to none once it accepts again; an upstream source with its last SET, last action and rejections by reason;
 * a source whose upstream is this backend's own transmitter paused (with a reason), resumed and verified from the page,
 * its upstream stream following, and Disable asking first; a source accepting that still holds SETs (a resume that
 * stopped partway) offering Apply held SETs, which applies them.
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
let ledger: ConformanceReceiver;
/** The receiver token this backend issued for itself as a source's upstream (the "Head office" source). */
let branch: Json;
const UPSTREAM_ISSUER = 'https://idp.bank.example/';
const UPSTREAM_AUDIENCE = 'https://baton.bank.example/ssf';
const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';

/** The cell of `row` under the column headed `label` (by the table's headers, not a fixed position). */
async function cellUnder(table: Locator, row: Locator, label: string): Promise<Locator> {
  const headers = (await table.getByRole('columnheader').allTextContents()).map((text) => text.trim());
  expect(headers, `a "${label}" column`).toContain(label);
  return row.getByRole('cell').nth(headers.indexOf(label));
}

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
  // A second receiver (the ledger) takes device compliance changes by push, checked by the conformance receiver.
  const ledgerToken = (await t.admin.ok('POST', '/v1/admin/ssf/receivers', {
    name: 'Ledger',
    scopes: ['ssf.manage'],
  })) as Json;
  ledger = await new ConformanceReceiver({
    issuer: ((await httpJson(`${t.url}/.well-known/ssf-configuration`, { method: 'GET' })).body as Json).issuer,
    audience: ledgerToken.receiver.audience,
    jwksUri: `${t.url}/ssf/jwks.json`,
  }).listen();
  const push = await httpJson(`${t.url}/ssf/streams`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ledgerToken.token as string}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      delivery: { method: 'urn:ietf:rfc:8935', endpoint_url: ledger.url },
      events_requested: ['https://schemas.openid.net/secevent/caep/event-type/device-compliance-change'],
    }),
  });
  expect(push.status).toBe(201);
  // Two consoles enrolled: two SETs delivered to the ledger, so its latency picture has something to draw.
  await TestConsole.enrol(t.url, t.admin);
  await TestConsole.enrol(t.url, t.admin);
  await ledger.waitFor((sets) => sets.length >= 2, 15_000, 'the two enrolments');
  // An upstream identity provider (pinned key): one SET accepted (an unknown subject), one refused (forged).
  const upstream = await generateKeyPair('RS256', { modulusLength: 2048 });
  const forger = await generateKeyPair('RS256', { modulusLength: 2048 });
  const registered = (await t.admin.ok('POST', '/v1/admin/ssf/transmitters', {
    name: 'Workforce IdP',
    issuer: UPSTREAM_ISSUER,
    audience: UPSTREAM_AUDIENCE,
    jwks: { keys: [{ ...(await exportJWK(upstream.publicKey)), kid: 'idp-1', alg: 'RS256', use: 'sig' }] },
  })) as Json;
  const setFrom = (key: CryptoKey) =>
    new SignJWT({
      iss: UPSTREAM_ISSUER,
      aud: UPSTREAM_AUDIENCE,
      jti: randomUUID(),
      iat: Math.floor(Date.now() / 1000),
      sub_id: { format: 'email', email: 'nobody@bank.example' },
      events: { 'https://schemas.openid.net/secevent/risc/event-type/account-disabled': {} },
    })
      .setProtectedHeader({ alg: 'RS256', typ: 'secevent+jwt', kid: 'idp-1' })
      .sign(key);
  for (const [key, expected] of [
    [upstream.privateKey, 202],
    [forger.privateKey, 400],
  ] as const) {
    const answer = await fetch(registered.pushEndpoint as string, {
      method: 'POST',
      headers: {
        'content-type': 'application/secevent+jwt',
        authorization: `Bearer ${registered.pushToken as string}`,
      },
      body: await setFrom(key),
    });
    expect(answer.status).toBe(expected);
  }
  // A source whose upstream is this backend's own transmitter: Baton created the stream there with the token an
  // admin issued for it, so it can ask the upstream to pause, resume and send a verification event.
  const audience = 'https://baton.bank.example/branches';
  branch = (await t.admin.ok('POST', '/v1/admin/ssf/receivers', {
    name: 'Branch Baton',
    scopes: ['ssf.manage', 'ssf.read'],
    audience,
  })) as Json;
  const issuer = ((await httpJson(`${t.url}/.well-known/ssf-configuration`, { method: 'GET' })).body as Json).issuer;
  const headOffice = (await t.admin.ok('POST', '/v1/admin/ssf/transmitters', {
    name: 'Head office',
    issuer,
    audience,
    configurationUrl: `${t.url}/.well-known/ssf-configuration`,
  })) as Json;
  await t.admin.ok('POST', `/v1/admin/ssf/transmitters/${headOffice.transmitter.id as string}/stream`, {
    accessToken: branch.token,
  });
  // The first admin, set up in the browser with the bootstrap token.
  ({ context, page, problems } = await firstAdminInBrowser(browser, t));
});

test.afterAll(async () => {
  await context?.close();
  await ledger?.close();
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
    // After a few refusals the exporter waits up to its longest backoff (60 s) before the next try.
  }).toPass({ timeout: 90_000 });
  await expect(sink).toContainText('delivering');
  expect(received).toBeGreaterThan(0);
});

test('pauses and resumes a Shared Signals stream, naming the receiver it stops', async () => {
  await page.goto(`${t.url}/admin/#/integrations`);
  // By the receiver's name: both streams may carry the same millisecond, and the table then orders them by id.
  const stream = page
    .getByRole('table', { name: 'Shared Signals streams out' })
    .getByRole('row')
    .filter({ hasText: 'Core banking' });
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

test('verifies a push stream from the page and shows the result, and pictures its delivery latency', async ({}, info) => {
  await page.goto(`${t.url}/admin/#/integrations`);
  const streams = page.getByRole('table', { name: 'Shared Signals streams out' });
  const row = streams.getByRole('row').filter({ hasText: 'Ledger' });
  await expect(row).toContainText('push to 127.0.0.1');
  await expect(row).toContainText('never asked');
  // Latency: event recorded → SET accepted, p50 / p99 over the last hour, in the row and as a picture.
  await expect(row).toContainText(/\d+ (ms|s) \/ \d+ (ms|s)/);
  const picture = page.getByRole('figure', { name: 'Delivery latency to Ledger' });
  await expect(picture.getByRole('img')).toHaveAttribute(
    'aria-label',
    /p50 at most \d+ (ms|s), p99 at most \d+ (ms|s), 2 SETs/,
  );
  await expect(picture.locator('rect[data-series="p99"]').first()).toBeVisible();
  await expect(picture).toContainText('Last hour: p50 ≤');

  const before = ledger.accepted.length;
  await row.getByRole('button', { name: 'Verify' }).click();
  const result = page.locator('#ssf-streams').getByRole('status');
  await expect(result).toContainText(/Verified: Ledger accepted the verification event in \d+ (ms|s)\./);
  // The receiver did get it: an SSF verification SET, checked by the conformance receiver.
  expect(ledger.accepted.slice(before).map((s) => s.type)).toContain(
    'https://schemas.openid.net/secevent/ssf/event-type/verification',
  );
  await expect(row).toContainText('accepted by the receiver in');

  for (const viewport of [
    { width: 1024, height: 768 },
    { width: 1366, height: 768 },
    { width: 1920, height: 1080 },
  ]) {
    await page.setViewportSize(viewport);
    await attachScreenshot(page, info, `integrations-verified-${viewport.width}`);
    expect(await layoutProblems(page), `integrations (verified) at ${viewport.width}`).toEqual([]);
  }
  await page.setViewportSize({ width: 1366, height: 768 });

  // A receiver that refuses: the page says so, with its answer, and the event stays queued.
  ledger.setDown('503');
  await row.getByRole('button', { name: 'Verify' }).click();
  await expect(result).toContainText(
    'Not verified: Ledger has not accepted the verification event. The receiver answered: HTTP 503.',
  );
  ledger.setDown('no');
  expect(problems).toEqual([]);
});

test('shows the events each stream delivers, and since when a push receiver answering 503 has been failing', async () => {
  await page.goto(`${t.url}/admin/#/integrations`);
  const streams = page.getByRole('table', { name: 'Shared Signals streams out' });
  const core = streams.getByRole('row').filter({ hasText: 'Core banking' });
  const ledgerRow = streams.getByRole('row').filter({ hasText: 'Ledger' });
  // The events each receiver asked for, by short name, the full URI in the tooltip.
  const coreEvents = await cellUnder(streams, core, 'events');
  await expect(coreEvents).toHaveText('session-revoked');
  await expect(coreEvents.locator('.event-type')).toHaveAttribute('title', `${CAEP}session-revoked`);
  const ledgerEvents = await cellUnder(streams, ledgerRow, 'events');
  await expect(ledgerEvents).toHaveText('device-compliance-change');
  await expect(ledgerEvents.locator('.event-type')).toHaveAttribute('title', `${CAEP}device-compliance-change`);

  // A poll stream never fails a push; the ledger is up (the refused verification of the test before is retried).
  await expect(await cellUnder(streams, core, 'last error')).toHaveText('—');
  const lastError = await cellUnder(streams, ledgerRow, 'last error');
  const failingSince = lastError.locator('.failing-since');
  await expect(async () => {
    await page.reload();
    await expect(lastError).toHaveText('—', { timeout: 1000 });
  }).toPass({ timeout: 30_000 });
  await expect(failingSince).toHaveCount(0);

  // The ledger answers 503: the SET at the head of its queue is retried, and the row says since when it fails.
  ledger.setDown('503');
  const downAt = Date.now();
  try {
    await ledgerRow.getByRole('button', { name: 'Verify' }).click();
    await expect(page.locator('#ssf-streams').getByRole('status')).toContainText('The receiver answered: HTTP 503.');
    await page.reload();
    await expect(lastError).toContainText('HTTP 503');
    await expect(failingSince).toHaveText(/^ · failing since \d{4}-\d{2}-\d{2} \d{2}:\d{2} \(.+\)$/);
    // How often the waiting SET was tried, and when it is tried next (the queue's own attempts and schedule).
    await expect(lastError.locator('.retries')).toHaveText(
      /^ · [1-9]\d* attempts?, next \d{4}-\d{2}-\d{2} \d{2}:\d{2} \(.+\)$/,
    );
    // The minute it started failing, as the page writes times (the browser's zone: the admin's).
    const zone = await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone);
    const minute = (ms: number) => adminTime(ms, zone).slice(0, 16);
    const shown = (await failingSince.textContent()) ?? '';
    expect(
      [minute(downAt), minute(Date.now())].some((m) => shown.includes(m)),
      shown,
    ).toBe(true);
    await expect(await cellUnder(streams, ledgerRow, 'queued')).not.toHaveText('0');
  } finally {
    ledger.setDown('no');
  }
  // Up again: the retry is accepted, and nothing is failing any more.
  await expect(async () => {
    await page.reload();
    await expect(lastError).toHaveText('—', { timeout: 1000 });
  }).toPass({ timeout: 30_000 });
  await expect(failingSince).toHaveCount(0);
  await expect(await cellUnder(streams, ledgerRow, 'queued')).toHaveText('0');
  expect(problems).toEqual([]);
});

test('shows each Shared Signals source with its last SET, last action and rejections by reason', async () => {
  await page.goto(`${t.url}/admin/#/integrations`);
  const source = page
    .getByRole('table', { name: 'Shared Signals sources in' })
    .getByRole('row')
    .filter({ hasText: 'Workforce IdP' });
  await expect(source).toContainText('accepting');
  await expect(source).toContainText(UPSTREAM_ISSUER);
  await expect(source).toContainText('ignored-unknown-subject');
  // The forged SET's refusal is counted (written at most once a second): wait for the count the admin sees.
  await expect(async () => {
    await page.reload();
    await expect(source).toContainText('SSF_SET_SIGNATURE_INVALID: 1', { timeout: 1000 });
  }).toPass({ timeout: 15_000 });
  expect(problems).toEqual([]);
});

test('issues a receiver token shown once (copy, QR), lists it, and revokes it with a confirmation that names it', async ({}, info) => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: t.url });
  await page.goto(`${t.url}/admin/#/integrations`);
  const tokens = page.getByRole('table', { name: 'Shared Signals receiver tokens' });
  // The two receivers the setup issued by the API are listed, with their scopes and streams, never their tokens.
  const core = tokens.getByRole('row').filter({ hasText: 'Core banking' });
  await expect(core).toContainText('ssf.manage, ssf.read');
  await expect(core).toContainText('active');
  await expect(core.getByRole('cell').nth(6)).toHaveText('1');

  await page.getByLabel('Receiver', { exact: true }).fill('Fraud engine');
  await page.getByLabel('Audience it expects (optional)').fill('https://fraud.bank.example');
  await page.getByLabel(/ssf\.manage:/).uncheck();
  await page.getByLabel(/ssf\.read:/).check();
  await page.getByRole('button', { name: 'Issue receiver token' }).click();
  const secret = page.locator('#new-receiver-token');
  await expect(secret).toHaveText(/^ssf_/);
  const token = (await secret.textContent()) ?? '';
  const card = page.getByRole('status', { name: 'Receiver token for Fraud engine' });
  await expect(card).toContainText('Shown once. It works until it is revoked.');
  await expect(card).toContainText('"aud": "https://fraud.bank.example"');
  await expect(card.getByRole('img', { name: 'QR code of the receiver token for fraud engine' })).toBeVisible();
  await card.getByRole('button', { name: 'Copy Receiver token for Fraud engine' }).click();
  await expect(card.getByRole('button', { name: 'Copy Receiver token for Fraud engine' })).toHaveText('Copied');
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(token);

  // The page with the one-time card and the new row, at the three sizes.
  for (const viewport of [
    { width: 1024, height: 768 },
    { width: 1366, height: 768 },
    { width: 1920, height: 1080 },
  ]) {
    await page.setViewportSize(viewport);
    await attachScreenshot(page, info, `integrations-receivers-${viewport.width}`);
    expect(await layoutProblems(page), `integrations (receiver tokens) at ${viewport.width}`).toEqual([]);
  }
  await page.setViewportSize({ width: 1366, height: 768 });

  const fraud = tokens.getByRole('row').filter({ hasText: 'Fraud engine' });
  await expect(fraud).toContainText('ssf.read');
  await expect(fraud).not.toContainText('ssf.manage');
  await expect(fraud).toContainText('https://fraud.bank.example');
  await expect(fraud).toContainText('never');
  // The token works for what its scope allows: reading its streams.
  const read = () => fetch(`${t.url}/ssf/streams`, { headers: { authorization: `Bearer ${token}` } });
  expect((await read()).status).toBe(200);
  await expect(async () => {
    await page.reload();
    await expect(fraud).not.toContainText('never', { timeout: 1000 });
  }).toPass({ timeout: 15_000 });

  // Cancel changes nothing; the confirmation names the token it revokes.
  await fraud.getByRole('button', { name: 'Revoke the receiver token of Fraud engine' }).click();
  const dialog = page.getByRole('dialog');
  await expect(dialog).toContainText('Revoke the receiver token of Fraud engine');
  await expect(dialog).toContainText(
    'Fraud engine (audience https://fraud.bank.example) is refused from its next request',
  );
  await expect(dialog).toContainText('It has no stream.');
  await page.locator('#confirm-cancel').click();
  await expect(dialog).toBeHidden();
  expect((await read()).status).toBe(200);
  await expect(fraud).toContainText('active');

  await fraud.getByRole('button', { name: 'Revoke the receiver token of Fraud engine' }).click();
  await page.locator('#confirm-action').click();
  await expect(page.locator('#receiver-token-message')).toContainText('The receiver token of Fraud engine is revoked.');
  await expect(fraud).toContainText('revoked');
  await expect(fraud.getByRole('button', { name: 'Revoke the receiver token of Fraud engine' })).toBeDisabled();
  expect((await read()).status).toBe(401);
  // Core banking's token is untouched.
  await expect(core).toContainText('active');
  expect(problems).toEqual([]);
});

test('pauses, resumes and verifies a Shared Signals source, its upstream stream following', async ({}, info) => {
  await page.goto(`${t.url}/admin/#/integrations`);
  const sources = page.getByRole('table', { name: 'Shared Signals sources in' });
  const source = sources.getByRole('row').filter({ hasText: 'Head office' });
  const streamOut = page
    .getByRole('table', { name: 'Shared Signals streams out' })
    .getByRole('row')
    .filter({ hasText: 'Branch Baton' });
  const message = page.locator('#ssf-sources-message');
  await expect(source).toContainText('accepting');
  await expect(source).toContainText('never asked');
  await expect(streamOut).toContainText('enabled');
  // A source without a stream at its upstream (pinned keys, push only) offers no Verify.
  const pinned = sources.getByRole('row').filter({ hasText: 'Workforce IdP' });
  await expect(pinned.getByRole('button', { name: 'Pause the source Workforce IdP' })).toBeVisible();
  await expect(pinned.getByRole('button', { name: /^Verify/ })).toHaveCount(0);
  await expect(pinned).toContainText('push only');

  /** The step-up, when the admin's last passkey confirmation is older than 5 minutes. */
  const stepUpIfAsked = async (done: Locator) => {
    const stepUp = page.getByRole('dialog', { name: 'Confirm it is you' });
    await expect(done.or(stepUp).first()).toBeVisible();
    if (await stepUp.isVisible()) await stepUp.getByRole('button', { name: 'Confirm with passkey' }).click();
  };

  // Pause, with a reason and the upstream's token: Baton holds its SETs, and the upstream pauses its stream.
  await source.getByRole('button', { name: 'Pause the source Head office' }).click();
  const dialog = page.getByRole('dialog', { name: 'Pause the source Head office' });
  await expect(dialog).toContainText('no one is revoked until it is resumed');
  await dialog.getByLabel('Reason (optional, recorded)').fill('Maintenance window');
  await dialog.getByLabel(/Upstream access token/).fill(branch.token as string);
  await dialog.getByRole('button', { name: 'Pause source' }).click();
  await stepUpIfAsked(message.getByText('Head office is paused'));
  await expect(message).toContainText(
    'Head office is paused: its SETs are held. The upstream set its stream to paused.',
  );
  await expect(source).toContainText('paused');
  await expect(source).toContainText('Maintenance window');
  await expect(source).toContainText('paused, as asked');
  await expect(source.getByRole('button', { name: /^Verify/ })).toHaveCount(0);
  await page.reload();
  await expect(streamOut).toContainText('paused');
  await expect(streamOut).toContainText('Maintenance window');
  await attachScreenshot(page, info, 'integrations-source-paused');
  expect(await layoutProblems(page), 'integrations (source paused)').toEqual([]);

  // Resume: accepting again, and so is the upstream's stream.
  await source.getByRole('button', { name: 'Resume the source Head office' }).click();
  const resume = page.getByRole('dialog', { name: 'Resume the source Head office' });
  await resume.getByLabel(/Upstream access token/).fill(branch.token as string);
  await resume.getByRole('button', { name: 'Resume source' }).click();
  await stepUpIfAsked(message.getByText('Head office is accepting again'));
  await expect(message).toContainText('Head office is accepting again. The upstream set its stream to enabled.');
  await expect(source).toContainText('accepting');
  await expect(source).not.toContainText('Maintenance window');
  await page.reload();
  await expect(streamOut).toContainText('enabled');

  // Verify: the upstream sends a verification event carrying Baton's state; the page says when it came.
  await source.getByRole('button', { name: 'Verify the source Head office' }).click();
  const verify = page.getByRole('dialog', { name: 'Verify the source Head office' });
  await verify.getByLabel(/Upstream access token/).fill(branch.token as string);
  await verify.getByRole('button', { name: 'Ask for a verification event' }).click();
  await expect(message).toContainText(/Verified: Head office sent the verification event in \d+ (ms|s)\./);
  await expect(source).toContainText(/verification event received in \d+ (ms|s)/);

  // Disable asks first, naming what ends; Cancel changes nothing.
  await source.getByRole('button', { name: 'Disable the source Head office' }).click();
  const disable = page.getByRole('dialog', { name: 'Disable the source Head office' });
  await expect(disable).toContainText('pushes are refused from now on');
  await disable.getByRole('button', { name: 'Cancel' }).click();
  await expect(disable).toBeHidden();
  await expect(source).toContainText('accepting');
  expect(problems).toEqual([]);
});

test('offers Apply held SETs for an accepting source that still holds SETs, and applies them', async () => {
  // The state a resume that stopped partway leaves: the source accepting, a SET still held (here written as the
  // hold writes it: about someone Baton does not know, so applying it is recorded as ignored-unknown-subject).
  const workforce = (await t.backend.store.ssfInbound.listTransmitters()).find((s) => s.name === 'Workforce IdP');
  expect(workforce?.status).toBe('enabled');
  const jti = randomUUID();
  await t.backend.store.ssfInbound.holdSet(workforce?.id ?? '', {
    jti,
    receivedAt: Date.now(),
    set: JSON.stringify({
      iss: UPSTREAM_ISSUER,
      jti,
      iat: Math.floor(Date.now() / 1000),
      txn: undefined,
      type: 'https://schemas.openid.net/secevent/risc/event-type/account-disabled',
      event: {},
      subject: { format: 'email', email: 'nobody@bank.example' },
      known: true,
    }),
  });
  await page.goto(`${t.url}/admin/#/integrations`);
  await page.reload(); // the page may already be there (the hash alone does not load it again)
  const source = page
    .getByRole('table', { name: 'Shared Signals sources in' })
    .getByRole('row')
    .filter({ hasText: 'Workforce IdP' });
  const message = page.locator('#ssf-sources-message');
  await expect(source).toContainText('accepting');
  await expect(source).toContainText('1 SET(s) held');
  await expect(source.getByRole('button', { name: /^Resume/ })).toHaveCount(0);
  await source.getByRole('button', { name: 'Apply the SETs held for Workforce IdP' }).click();
  const dialog = page.getByRole('dialog', { name: 'Apply the SETs held for Workforce IdP' });
  await expect(dialog).toContainText('The 1 SET(s) still held are applied now, oldest first');
  await expect(dialog).toContainText('New SETs from Workforce IdP already act as they arrive.');
  await dialog.getByRole('button', { name: 'Apply held SETs' }).click();
  const done = message.getByText('Workforce IdP: 1 held SET(s) applied.');
  const stepUp = page.getByRole('dialog', { name: 'Confirm it is you' });
  await expect(done.or(stepUp).first()).toBeVisible();
  if (await stepUp.isVisible()) await stepUp.getByRole('button', { name: 'Confirm with passkey' }).click();
  await expect(done).toBeVisible();
  await expect(source).not.toContainText('SET(s) held');
  await expect(source.getByRole('button', { name: 'Apply the SETs held for Workforce IdP' })).toHaveCount(0);
  expect(await t.backend.store.ssfInbound.heldCount(workforce?.id ?? '')).toBe(0);
  const events = await t.backend.events.query({ type: 'ssf-set-received', limit: 1000 });
  const applied = events.find((e) => e.detail?.jti === jti && e.detail.action !== 'held');
  expect(applied?.detail?.action).toBe('ignored-unknown-subject');
  expect(problems).toEqual([]);
});
