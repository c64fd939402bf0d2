/* eslint-disable no-empty-pattern -- Playwright reads fixtures from the first parameter's destructuring pattern; these tests need none. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, expect, type BrowserContext, type Page, type TestInfo } from '@playwright/test';
import { buildAdminConsole } from '../../backend/admin-console-build.js';
import { startTestBackend, TestConsole, TEST_ORIGIN, type TestBackend } from '../helpers/backend-harness.js';
import { enrolOperator } from '../helpers/operator-flow.js';
import { SoftAuthenticator } from '../helpers/soft-authenticator.js';
import { SECURITY_KEY } from '../helpers/e2e-fixtures.js';
import { createTestMdsSigner, type TestMdsSigner } from '../helpers/test-mds-blob.js';
import { attachScreenshot } from '../helpers/e2e-screenshot.js';

/**
 * An admin loads a FIDO metadata BLOB file in the admin console and then reads each passkey's model,
 * its certification and a compromise warning instead of a bare AAGUID. A garbled file is refused
 * with its stable code and the loaded metadata stays.
 */
test.describe.configure({ mode: 'serial' });

const LEAKY = '4a1c0c9e-0d5b-4a53-9b0a-6d8f3f1e2a02';

let t: TestBackend;
let dir: string;
let signer: TestMdsSigner;
let context: BrowserContext;
let page: Page;
let operatorId: string;
let adminCode: string;
const problems: string[] = [];

async function shot(info: TestInfo, name: string): Promise<void> {
  await attachScreenshot(page, info, name);
}

test.beforeAll(async ({ browser }) => {
  dir = mkdtempSync(join(tmpdir(), 'baton-mds-e2e-'));
  await buildAdminConsole(join(dir, 'bundle'));
  signer = await createTestMdsSigner();
  writeFileSync(join(dir, 'mds-roots.pem'), signer.rootPem);
  t = await startTestBackend({ adminConsoleDir: join(dir, 'bundle'), mdsRootsFile: join(dir, 'mds-roots.pem') });
  // A teller registered her key before anyone knew its model was compromised.
  const kiosk = await TestConsole.enrol(t.url, t.admin, 'branch-kiosk');
  const key = new SoftAuthenticator(TEST_ORIGIN, { aaguid: LEAKY });
  operatorId = (await enrolOperator(t.admin, kiosk, { displayName: 'Ada Teller', authenticator: key })).operatorId;
  adminCode = (await t.admin.ok('POST', '/v1/admin/bootstrap', { displayName: 'Grace Admin', id: 'grace' }))
    .code as string;

  context = await browser.newContext();
  page = await context.newPage();
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  await cdp.send('WebAuthn.addVirtualAuthenticator', { options: SECURITY_KEY });
  await page.goto(`${t.url}/admin/#/register`);
  await page.getByLabel('Enrolment code').fill(adminCode);
  await page.getByRole('button', { name: 'Register passkey' }).click();
  await expect(page.locator('#signed-in-as')).toHaveText('Grace Admin (grace)');
});

test.afterAll(async () => {
  await context?.close();
  await t?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('an admin loads a BLOB file and sees the model, certification and compromise of a passkey', async ({}, info) => {
  await page.getByRole('link', { name: 'Operators' }).click();
  const card = page.getByRole('region', { name: 'Authenticator models (FIDO metadata)' });
  await expect(card).toContainText('No metadata loaded');

  const blob = await signer.blob({
    no: 42,
    entries: [
      {
        aaguid: LEAKY,
        description: 'Leaky Key 1',
        statusReports: [
          { status: 'FIDO_CERTIFIED_L1', effectiveDate: '2022-01-10' },
          { status: 'USER_KEY_PHYSICAL_COMPROMISE', effectiveDate: '2024-03-02' },
        ],
      },
    ],
  });
  await card.getByLabel('Metadata BLOB file').setInputFiles({
    name: 'blob.jwt',
    mimeType: 'application/octet-stream',
    buffer: Buffer.from(blob),
  });
  await card.getByRole('button', { name: 'Load BLOB' }).click();
  await expect(card.getByRole('status')).toHaveText('Loaded BLOB no 42.');
  await expect(card).toContainText('BLOB no 42 · 1 models');
  await shot(info, '01-metadata-loaded');

  // A garbled file is refused with its code; the loaded BLOB stays.
  await card.getByLabel('Metadata BLOB file').setInputFiles({
    name: 'blob.jwt',
    mimeType: 'application/octet-stream',
    buffer: Buffer.from('not a blob'),
  });
  await card.getByRole('button', { name: 'Load BLOB' }).click();
  await expect(card.getByRole('alert')).toContainText('METADATA_BLOB_INVALID');
  await expect(card).toContainText('BLOB no 42');

  await page.goto(`${t.url}/admin/#/operators/${operatorId}`);
  const passkeys = page.getByRole('table', { name: 'Passkeys' });
  await expect(passkeys).toContainText('Leaky Key 1');
  await expect(passkeys).toContainText('FIDO L1');
  await expect(passkeys).toContainText('user key physical compromise');
  await shot(info, '02-passkey-model');
  expect(problems).toEqual([]);
});
