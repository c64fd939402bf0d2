/* eslint-disable no-empty-pattern -- Playwright reads fixtures from the first parameter's destructuring pattern; these tests need none. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, expect, type BrowserContext, type Page, type TestInfo } from '@playwright/test';
import { buildAdminConsole } from '../../backend/admin-console-build.js';
import { kyselyOf } from '../../backend/store/kysely-store.js';
import { httpJson, startTestBackend, type TestBackend } from '../helpers/backend-harness.js';
import {
  consoleRecord,
  operatorRecord,
  passkeyRecord,
  sessionRecord,
  transmitterRow,
} from '../helpers/admin-estate-seed.js';
import { firstAdminInBrowser } from '../helpers/e2e-admin.js';
import { layoutProblems } from '../helpers/e2e-layout.js';
import { attachScreenshot } from '../helpers/e2e-screenshot.js';

/**
 * The admin console over an estate (issue 12), in Chromium against a real backend: a few hundred
 * consoles and operators seeded straight into its store, searched, filtered, sorted by a column
 * header and paged through with the URL keeping the place; admin API tokens issued and revoked from
 * the browser; operators imported from CSV after a dry run that names each row in error.
 */
test.describe.configure({ mode: 'serial' });

const CONSOLES = 300;
const OPERATORS = 400;
const SITES = ['Leeds', 'York', 'Hull'];

let t: TestBackend;
let bundleDir: string;
let context: BrowserContext;
let page: Page;
let problems: string[] = [];

async function seed(): Promise<void> {
  const store = t.backend.services.store;
  const now = Date.now();
  for (let i = 0; i < CONSOLES; i++) {
    const n = String(i).padStart(3, '0');
    await store.consoles.insert(
      consoleRecord({
        id: `con_e2e${n}`,
        name: `Teller ${n}`,
        site: SITES[i % SITES.length] ?? null,
        enrolledAt: now - i * 60_000,
      }),
    );
  }
  for (let i = 0; i < OPERATORS; i++) {
    const n = String(i).padStart(3, '0');
    await store.operators.insert(
      operatorRecord({
        id: `op_e2e${n}`,
        displayName: i === 123 ? 'Zoë Quinn' : `Operator ${n}`,
        createdAt: now - i * 60_000,
      }),
    );
  }
  for (let i = 0; i < 3; i++) {
    await t.backend.services.events.record({
      type: 'admin-action',
      subject: { operator: 'op_e2e123', console: 'con_e2e042' },
      outcome: 'success',
      reasons: ['estate-e2e'],
    });
  }
}

async function checkLayout(p: Page, info: TestInfo, name: string): Promise<void> {
  for (const viewport of [
    { width: 1024, height: 768 },
    { width: 1366, height: 768 },
    { width: 1920, height: 1080 },
  ]) {
    await p.setViewportSize(viewport);
    await attachScreenshot(p, info, `${name}-${viewport.width}`);
    expect(await layoutProblems(p), `${name} at ${viewport.width}`).toEqual([]);
  }
  await p.setViewportSize({ width: 1366, height: 768 });
}

const rows = () => page.locator('#consoles-rows tbody tr');

test.beforeAll(async ({ browser }) => {
  bundleDir = mkdtempSync(join(tmpdir(), 'baton-admin-bundle-'));
  await buildAdminConsole(bundleDir);
  t = await startTestBackend({ adminConsoleDir: bundleDir });
  await seed();
  // The first admin, set up in the browser with the bootstrap token.
  ({ context, page, problems } = await firstAdminInBrowser(browser, t));
});

test.afterAll(async () => {
  await context?.close();
  await t?.stop();
  rmSync(bundleDir, { recursive: true, force: true });
});

test('pages through 300 consoles by name, and the URL keeps the place across a reload and the back button', async ({}, info) => {
  await page.goto(`${t.url}/admin/#/consoles`);
  await expect(rows()).toHaveCount(25);
  await expect(rows().first()).toContainText('Teller 000');
  await expect(page.locator('#consoles-position')).toHaveText('Rows 1–25 of 300');
  await expect(page.locator('#consoles-prev')).toBeDisabled();
  await page.locator('#consoles-next').click();
  await expect(page.locator('#consoles-position')).toHaveText('Rows 26–50 of 300');
  await expect(rows().first()).toContainText('Teller 025');
  await page.locator('#consoles-next').click();
  await expect(rows().first()).toContainText('Teller 050');
  expect(page.url()).toMatch(/#\/consoles\?.*cursor=/);
  await page.reload();
  await expect(rows().first()).toContainText('Teller 050');
  await expect(page.locator('#consoles-position')).toHaveText('Rows 51–75 of 300');
  await page.goBack();
  await expect(rows().first()).toContainText('Teller 025');
  await page.locator('#consoles-prev').click();
  await expect(rows().first()).toContainText('Teller 000');
  await checkLayout(page, info, 'consoles-estate');
});

test('searches and filters consoles by name and site, and sorts by a column header', async () => {
  await page.goto(`${t.url}/admin/#/consoles`);
  await page.locator('#consoles-search').fill('teller 29');
  await page.locator('#consoles-apply').click();
  await expect(page.locator('#consoles-position')).toHaveText('Rows 1–10 of 10');
  await expect(rows().first()).toContainText('Teller 290');
  await page.locator('#consoles-clear').click();
  // Clear changes the address; the page is drawn again on the next task: fill the new form, not the old one.
  await expect(page.locator('#consoles-search')).toHaveValue('');
  await page.locator('#consoles-site').fill('york');
  await page.locator('#consoles-apply').click();
  await expect(page.locator('#consoles-position')).toHaveText('Rows 1–25 of 100');
  await expect(rows().first()).toContainText('York');
  // Sorted by name, descending, from the column header.
  await page.locator('#consoles-sort-name').click();
  await expect(page.locator('th[aria-sort="descending"]')).toContainText('console');
  await expect(rows().first()).toContainText('Teller 298');
  expect(page.url()).toContain('site=york');
  await page.locator('#consoles-search').fill('nobody by that name');
  await page.locator('#consoles-apply').click();
  await expect(page.locator('#consoles-empty')).toHaveText('Nothing matches this search.');
});

test('finds an operator among 400 by part of the name, and their events by name', async () => {
  await page.goto(`${t.url}/admin/#/operators?q=${encodeURIComponent('zoë')}`);
  const table = page.locator('#operators-rows tbody tr');
  await expect(table).toHaveCount(1);
  await expect(table.first()).toContainText('Zoë Quinn');
  await page.goto(`${t.url}/admin/#/audit`);
  await page.locator('#events-operator').fill('Zoë Quinn');
  await page.locator('#events-apply').click();
  const events = page.locator('#events-rows tbody tr');
  await expect(events).toHaveCount(3);
  await expect(events.first()).toContainText('Zoë Quinn');
  await expect(events.first()).toContainText('Teller 042 (Leeds)');
});

test('the live view reads pages, not the whole estate: the consoles heard from last, of 300, and a way to all', async () => {
  // Every request the live view makes for consoles or operators must be a page (limit), never the whole list.
  const whole: string[] = [];
  const watch = (request: { url: () => string }) => {
    const url = new URL(request.url());
    if (/^\/v1\/admin\/(consoles|operators)$/.test(url.pathname) && !url.searchParams.has('limit')) {
      whole.push(url.pathname);
    }
  };
  page.on('request', watch);
  await page.goto(`${t.url}/admin/#/live`);
  await expect(page.locator('#live-consoles-shown')).toHaveText(
    'The 25 heard from most recently, of 300. All consoles',
  );
  await expect(page.getByRole('table', { name: 'Consoles' }).locator('tbody tr')).toHaveCount(25);
  // The stream names the operator of an event although no list of all operators was read.
  await expect(page.locator('[data-operator-id="op_e2e123"]').first()).toContainText('Zoë Quinn');
  page.off('request', watch);
  expect(whole).toEqual([]);
  await page.locator('#live-consoles-shown').getByRole('link', { name: 'All consoles' }).click();
  await expect(page.locator('#consoles-position')).toHaveText('Rows 1–25 of 300');
});

test('an admin API token is issued with a passkey, works for a script, and is revoked from the browser', async ({}, info) => {
  await page.getByRole('link', { name: 'API tokens' }).click();
  await page.locator('#api-token-label').fill('nightly report');
  await page.locator('#api-token-issue').click();
  const secret = (await page.locator('#new-api-token').textContent()) ?? '';
  expect(secret).toMatch(/^bapi_/);
  const read = await httpJson(`${t.url}/v1/admin/consoles?q=teller%20001`, {
    method: 'GET',
    headers: { authorization: `Bearer ${secret}` },
  });
  expect(read.status).toBe(200);
  expect((read.body.consoles as { name: string }[]).map((c) => c.name)).toEqual(['Teller 001']);
  await page.reload();
  const row = page
    .getByRole('table', { name: 'Admin API tokens' })
    .getByRole('row')
    .filter({ hasText: 'nightly report' });
  await expect(row).toContainText('active');
  await expect(row.getByRole('cell').nth(6)).toHaveText('1');
  await checkLayout(page, info, 'api-tokens');
  // The tokens table is searched and paged by the API like the others.
  await page.locator('#tokens-search').fill('nightly');
  // Apply changes the address and the page is drawn again on the next task, with the same one row as before the
  // search: wait until the old form is gone, so the next search is typed into the new one.
  const formBefore = await page.locator('#tokens-search').elementHandle();
  await page.locator('#tokens-apply').click();
  await formBefore?.waitForElementState('hidden');
  await expect(page.locator('#tokens-position')).toHaveText('Rows 1–1 of 1');
  await page.locator('#tokens-search').fill('no such script');
  await page.locator('#tokens-apply').click();
  await expect(page.locator('#tokens-empty')).toHaveText('Nothing matches this search.');
  await page.locator('#tokens-clear').click();
  await row.getByRole('button', { name: 'Revoke' }).click();
  await page.locator('#confirm-action').click();
  await expect(row).toContainText('revoked');
  const refused = await httpJson(`${t.url}/v1/admin/consoles`, {
    method: 'GET',
    headers: { authorization: `Bearer ${secret}` },
  });
  expect(refused.body.error.code).toBe('ADMIN_API_TOKEN_REVOKED');
});

test('a CSV dry run names each row in error; the corrected file is imported whole', async () => {
  await page.goto(`${t.url}/admin/#/operators`);
  await page.locator('#import-csv').fill('displayName,roles\nAda Import,teller\n,teller\nBob Import,Teller!');
  await page.locator('#import-dry-run').click();
  const result = page.locator('#import-result');
  await expect(result).toContainText('2 of 3 rows are in error; nothing was stored.');
  await expect(result.getByRole('row').filter({ hasText: 'displayName' })).toContainText('3');
  await expect(result.getByRole('row').filter({ hasText: 'roles' })).toContainText('4');
  await page.locator('#import-csv').fill('displayName,roles\nAda Import,teller\nBob Import,teller;supervisor');
  await page.locator('#import-dry-run').click();
  await expect(result).toContainText('All 2 rows are fine');
  await page.locator('#import-run').click();
  await expect(result).toContainText('Imported 2 operators.');
  const found = await t.admin.ok('GET', '/v1/admin/operators?q=import').catch(() => undefined);
  // The bootstrap token is retired by now: the store says what was imported.
  expect(found).toBeUndefined();
  // Both rows may carry the same millisecond, so the store's order between them is its ids': compare by name.
  const imported = (await t.backend.services.store.operators.list())
    .filter((o) => o.displayName.endsWith(' Import'))
    .sort((a, b) => a.displayName.localeCompare(b.displayName));
  expect(imported.map((o) => [o.displayName, o.roles])).toEqual([
    ['Ada Import', ['teller']],
    ['Bob Import', ['teller', 'supervisor']],
  ]);
  expect(problems).toEqual([]);
});

/**
 * Every request the page makes for a list (consoles, operators, sessions, events, revocations, a
 * revocation's deliveries, services, break-glass grants, Shared Signals streams and sources, policy
 * versions, an operator's enrolment codes, suspended passkeys, API tokens) must carry a page limit:
 * no admin page reads a whole list.
 */
function watchLists(p: Page): { whole: string[]; lists: string[]; stop: () => void } {
  const whole: string[] = [];
  const lists: string[] = [];
  const LIST =
    /^\/v1\/admin\/(consoles|operators|sessions|events|revocations|revocations\/\d+\/deliveries|services|break-glass|ssf\/streams|ssf\/transmitters|policy\/versions|operators\/[^/]+\/enrolment-codes|credentials\/suspended|api-tokens)$/;
  const watch = (request: { url: () => string; method: () => string }) => {
    const url = new URL(request.url());
    // A list is read with GET (issuing a code POSTs to the codes' path).
    if (request.method() !== 'GET' || !LIST.test(url.pathname)) return;
    lists.push(`${url.pathname}${url.search}`);
    const limit = Number(url.searchParams.get('limit') ?? 'NaN');
    if (!(limit >= 0 && limit <= 1000)) whole.push(`${url.pathname}${url.search}`);
  };
  p.on('request', watch);
  return { whole, lists, stop: () => p.off('request', watch) };
}

/** Zoë Quinn (operator 123 of 400): a passkey registered on Teller 250, signed in on Teller 299 and Teller 150. */
async function seedZoe(): Promise<void> {
  const store = t.backend.services.store;
  const now = Date.now();
  await store.operators.insertCredential(
    passkeyRecord({
      id: 'cred_zoe',
      operatorId: 'op_e2e123',
      registeredOnConsole: 'con_e2e250',
      createdAt: now - 3_600_000,
      lastUsedAt: now - 60_000,
    }),
  );
  for (const [i, consoleId] of ['con_e2e299', 'con_e2e150'].entries()) {
    await store.sessions.insert(
      sessionRecord({
        id: `ses_zoe${i}`,
        operatorId: 'op_e2e123',
        consoleId,
        credentialId: 'cred_zoe',
        startedAt: now - (i + 1) * 60_000,
        expiresAt: now + 3_600_000,
      }),
    );
  }
}

test('an operator’s page and a console’s page name the consoles and people they show without reading a whole list', async ({}, info) => {
  await seedZoe();
  const lists = watchLists(page);
  await page.goto(`${t.url}/admin/#/operators/op_e2e123`);
  await expect(page.getByRole('heading', { level: 1 })).toContainText('Zoë Quinn');
  // Consoles far past the first page of 25, named (console and site) although no list of consoles was read.
  const passkeys = page.getByRole('table', { name: 'Passkeys' });
  await expect(passkeys).toContainText('on Teller 250 (York)');
  const sessions = page.locator('#operator-sessions');
  await expect(sessions).toContainText('Teller 299 (Hull)');
  await expect(sessions).toContainText('Teller 150 (Leeds)');
  await page.locator('#issue-code').click();
  await expect(page.getByRole('table', { name: 'Enrolment codes' })).toContainText('Grace Admin');
  await checkLayout(page, info, 'operator-estate');
  // What the revocation would end, by name; Cancel changes nothing.
  await page.locator('#revoke-reason').fill('estate e2e');
  await page.locator('#revoke-operator').click();
  const dialog = page.getByRole('dialog');
  await expect(dialog).toContainText('2 live sessions on 2 consoles end now');
  await expect(dialog).toContainText('Teller 299 (Hull)');
  await expect(dialog).toContainText('Teller 150 (Leeds)');
  await page.locator('#confirm-cancel').click();
  await expect(dialog).toBeHidden();

  await page.goto(`${t.url}/admin/#/consoles/con_e2e299`);
  const live = page.getByRole('table', { name: 'Live sessions' });
  await expect(live.getByRole('link', { name: 'Zoë Quinn' })).toBeVisible();
  await page.getByLabel('Reason for revocation').fill('estate e2e');
  await page.getByRole('button', { name: 'Revoke console' }).click();
  await expect(page.getByRole('dialog')).toContainText('1 live session on it ends now (Zoë Quinn).');
  await page.locator('#confirm-cancel').click();
  await checkLayout(page, info, 'console-estate');
  lists.stop();
  expect(lists.whole).toEqual([]);
  expect(problems).toEqual([]);
});

test('the policy page counts the consoles each channel and version reaches, and its publish confirmation says so', async ({}, info) => {
  const lists = watchLists(page);
  await page.goto(`${t.url}/admin/#/policy`);
  const kiosk = page.getByRole('group', { name: 'Channel branch-kiosk' });
  await expect(kiosk.locator('legend').first()).toHaveText('Channel branch-kiosk (300 consoles)');
  // Which consoles run which version: the count of all 300, a few names, and a link to every one of them.
  const adoption = page.getByRole('table', { name: 'Consoles by policy version' });
  const v1 = adoption.getByRole('row').filter({ hasText: 'v1 (current)' });
  await expect(v1.getByRole('cell').nth(1)).toHaveText('300');
  await expect(v1).toContainText('Teller 000 (Leeds), Teller 001 (York)');
  await expect(v1).toContainText('and 295 more: all 300');
  await checkLayout(page, info, 'policy-estate');
  await kiosk.getByLabel('Idle lock after (s)').fill('90');
  await page.getByRole('button', { name: 'Publish' }).click();
  const dialog = page.getByRole('dialog');
  await expect(dialog).toContainText('branch-kiosk (300 consoles): idle lock after 90 s (was 2 min)');
  await page.locator('#confirm-cancel').click();
  await v1.getByRole('link', { name: 'all 300' }).click();
  await expect(page.locator('#consoles-window')).toContainText('policyVersion: 1');
  await expect(page.locator('#consoles-position')).toHaveText('Rows 1–25 of 300');
  lists.stop();
  expect(lists.whole).toEqual([]);
  expect(lists.lists.some((l) => l.includes('policyVersion=1'))).toBe(true);
  expect(problems).toEqual([]);
});

test('a console or an operator is chosen with a search-as-you-type picker that asks for a few matches, never the list', async ({}, info) => {
  const lists = watchLists(page);
  await page.goto(`${t.url}/admin/#/sessions`);
  const operator = page.getByRole('combobox', { name: 'Operator' });
  await operator.pressSequentially('zoë');
  const operatorMatches = page.locator('#sessions-operator-matches');
  await expect(operatorMatches.getByRole('option')).toHaveText(['Zoë Quinn teller · op_e2e123']);
  await operatorMatches.getByRole('option', { name: /Zoë Quinn/ }).click();
  await expect(operator).toHaveValue('Zoë Quinn');

  const console = page.getByRole('combobox', { name: 'Console' });
  await console.pressSequentially('teller 29');
  // Ten consoles match: the first eight are offered, and the picker says how many there are.
  const consoleMatches = page.locator('#sessions-console-matches');
  await expect(consoleMatches.getByRole('option')).toHaveCount(8);
  await expect(consoleMatches).toContainText('8 of 10: type more to narrow');
  await attachScreenshot(page, info, 'picker-open-1366');
  expect(await layoutProblems(page), 'sessions with the picker open').toEqual([]);
  await console.pressSequentially('9');
  await expect(consoleMatches.getByRole('option')).toHaveCount(1);
  await console.press('ArrowDown');
  await console.press('Enter');
  await expect(console).toHaveValue('Teller 299 (Hull)');
  await page.locator('#sessions-apply').click();
  // The chosen ids are what the address keeps; the session shown is Zoë's on Teller 299.
  await expect(page).toHaveURL(/operator=op_e2e123/);
  await expect(page).toHaveURL(/console=con_e2e299/);
  const rows = page.locator('#sessions-rows tbody tr');
  await expect(rows).toHaveCount(1);
  await expect(rows.first()).toContainText('Zoë Quinn');
  await expect(rows.first()).toContainText('Teller 299');
  // After a reload the pickers show the names of the ids in the address.
  await page.reload();
  await expect(page.getByRole('combobox', { name: 'Console' })).toHaveValue('Teller 299 (Hull)');
  await expect(page.getByRole('combobox', { name: 'Operator' })).toHaveValue('Zoë Quinn');
  await checkLayout(page, info, 'sessions-picker');
  lists.stop();
  expect(lists.whole).toEqual([]);
  // The picker asked for a few matches at a time.
  expect(lists.lists.filter((l) => l.includes('q=')).every((l) => l.includes('limit=8'))).toBe(true);
  expect(problems).toEqual([]);
});

/**
 * The smaller tables of an estate: 30 services, 30 break-glass grants, 14 upstream Shared Signals
 * sources, 14 more policy versions, 15 enrolment codes of one operator and 12 suspended passkeys.
 */
async function seedSmallTables(): Promise<void> {
  const store = t.backend.services.store;
  const db = kyselyOf(store);
  if (db === undefined) throw new Error('a Kysely store');
  const now = Date.now();
  const pad = (i: number) => String(i).padStart(3, '0');
  const policy = (await store.policies.latest())?.policy;
  if (policy === undefined) throw new Error('a policy');
  for (let i = 0; i < 30; i++) {
    const n = pad(i);
    await db
      .insertInto('services')
      .values({
        id: `svc_e2e${n}`,
        name: i % 3 === 0 ? `payroll export ${n}` : `fraud scorer ${n}`,
        actions: '["customer.view"]',
        enrolled_at: now - (30 - i) * 60_000,
        enrolled_by: 'operator:op_e2e123',
        last_used_at: null,
        revoked_at: null,
        revoked_by: null,
        revoked_reason: null,
      })
      .execute();
    await db
      .insertInto('break_glass_grants')
      .values({
        id: `bg_e2e${n}`,
        operator_id: `op_e2e${n}`,
        console_id: `con_e2e${n}`,
        site: SITES[i % SITES.length] ?? null,
        method: 'supervisor-tap',
        approved_by: 'operator:op_e2e123',
        reason: 'key left at home',
        code_hash: null,
        issued_at: now - (30 - i) * 60_000,
        expires_at: now + 3_600_000,
        used_at: now - (30 - i) * 60_000,
        session_id: `ses_bg${n}`,
        signed_off_at: null,
        signed_off_by: null,
        sign_off_note: null,
      })
      .execute();
  }
  for (let i = 0; i < 15; i++) {
    const n = pad(i);
    if (i < 14) {
      await db
        .insertInto('ssf_transmitters')
        .values(
          transmitterRow({
            id: `tx_e2e${n}`,
            name: i % 2 === 1 ? `Okta ${n}` : `Entra ${n}`,
            issuer: `https://idp${n}.bank.example`,
            created_at: now - i * 60_000,
          }),
        )
        .execute();
      await store.policies.insert({
        version: 2 + i,
        policy,
        publishedAt: now - (14 - i) * 60_000,
        publishedBy: i % 2 === 0 ? 'operator:op_e2e123' : 'operator:op_e2e001',
      });
    }
    await db
      .insertInto('operator_enrolment_codes')
      .values({
        code_hash: `${n}${'cd'.repeat(30)}0`,
        operator_id: 'op_e2e300',
        issued_by: 'operator:op_e2e123',
        issued_at: now - (15 - i) * 60_000,
        expires_at: i % 3 === 0 ? now - 1 : now + 3_600_000,
        used_at: null,
        credential_id: null,
        revoked_at: null,
      })
      .execute();
  }
  for (let i = 10; i < 22; i++) {
    await store.operators.insertCredential(
      passkeyRecord({
        id: `cred_sus${pad(i)}`,
        operatorId: `op_e2e${pad(i)}`,
        registeredOnConsole: `con_e2e${pad(i)}`,
        createdAt: now - 86_400_000,
        suspendedAt: now - i * 1000,
        suspendedReason: 'signature counter went back',
      }),
    );
  }
}

test('the smaller tables are searched and paged by the admin API as well: services, break-glass, sources, suspended passkeys, codes, policy versions', async ({}, info) => {
  await seedSmallTables();
  const lists = watchLists(page);

  await page.goto(`${t.url}/admin/#/services`);
  await expect(page.locator('#services-position')).toHaveText('Rows 1–25 of 30');
  await page.locator('#services-next').click();
  await expect(page.locator('#services-position')).toHaveText('Rows 26–30 of 30');
  await page.locator('#services-search').fill('payroll');
  await page.locator('#services-apply').click();
  await expect(page.locator('#services-position')).toHaveText('Rows 1–10 of 10');
  // Who enrolled it, by name.
  await expect(page.locator('#services-rows tbody tr').first()).toContainText('token by Zoë Quinn');

  // Break-glass: the review list is paged, names its people and is searched by an operator's name.
  await page.goto(`${t.url}/admin/#/break-glass`);
  await expect(page.locator('#grants-position')).toHaveText('Rows 1–25 of 30');
  const newest = page.locator('#grants-rows tbody tr').first();
  await expect(newest).toContainText('Operator 029');
  await expect(newest).toContainText('supervisor Zoë Quinn');
  await expect(newest).toContainText('Teller 029');
  await page.locator('#grants-search').fill('operator 007');
  await page.locator('#grants-apply').click();
  await expect(page.locator('#grants-position')).toHaveText('Rows 1–1 of 1');
  // A code from IT is issued for an operator and a console chosen by name, not typed as ids.
  const issueFor = page.locator('#break-glass-operator');
  await issueFor.pressSequentially('operator 007');
  await page
    .locator('#break-glass-operator-matches')
    .getByRole('option', { name: /Operator 007/ })
    .click();
  await expect(issueFor).toHaveValue('Operator 007');
  await checkLayout(page, info, 'break-glass-estate');

  // The pictures label each operator's bar by name, and a bar leads to that operator's grants.
  await page.goto(`${t.url}/admin/#/pictures`);
  const perOperator = page.locator('#chart-break-glass-operators');
  await expect(perOperator).toContainText('Operator 000');
  await expect(perOperator).not.toContainText('op_e2e0');

  // Integrations: the upstream sources, ten a page, searched by name.
  await page.goto(`${t.url}/admin/#/integrations`);
  await expect(page.locator('#sources-position')).toHaveText('Rows 1–10 of 14');
  await page.locator('#sources-next').click();
  await expect(page.locator('#sources-position')).toHaveText('Rows 11–14 of 14');
  await page.locator('#sources-search').fill('okta');
  await page.locator('#sources-apply').click();
  await expect(page.locator('#sources-position')).toHaveText('Rows 1–7 of 7');
  await expect(page.locator('#streams-empty')).toBeVisible();

  // Operators: the suspended passkeys are paged on their own; the operators table keeps its place.
  await page.goto(`${t.url}/admin/#/operators`);
  await expect(page.locator('#suspended-position')).toHaveText('Rows 1–10 of 12');
  const operatorsAt = (await page.locator('#operators-position').textContent()) ?? '';
  await page.locator('#suspended-next').click();
  await expect(page.locator('#suspended-position')).toHaveText('Rows 11–12 of 12');
  await expect(page.locator('#operators-position')).toHaveText(operatorsAt);
  // Suspended most recently first: the second page holds the two suspended longest ago.
  await expect(page.getByRole('table', { name: 'Suspended passkeys' })).toContainText('Operator 021');

  // One operator's enrolment codes, ten a page, filtered by state.
  await page.goto(`${t.url}/admin/#/operators/op_e2e300`);
  await expect(page.locator('#codes-position')).toHaveText('Rows 1–10 of 15');
  await page.locator('#codes-state').selectOption('expired');
  await page.locator('#codes-apply').click();
  await expect(page.locator('#codes-position')).toHaveText('Rows 1–5 of 5');
  await expect(page.getByRole('table', { name: 'Enrolment codes' })).toContainText('Zoë Quinn');

  // Policy versions, newest first, searched by who published them.
  await page.goto(`${t.url}/admin/#/policy`);
  await expect(page.locator('#versions-position')).toHaveText('Rows 1–10 of 15');
  await expect(page.locator('#versions-rows tbody tr').first()).toContainText('v15');
  await page.locator('#versions-search').fill('zoë');
  await page.locator('#versions-apply').click();
  await expect(page.locator('#versions-position')).toHaveText('Rows 1–7 of 7');

  lists.stop();
  expect(lists.whole).toEqual([]);
  for (const path of ['services', 'break-glass', 'ssf/transmitters', 'ssf/streams', 'credentials/suspended']) {
    expect(
      lists.lists.some((l) => l.startsWith(`/v1/admin/${path}?`)),
      path,
    ).toBe(true);
  }
  expect(problems).toEqual([]);
});
