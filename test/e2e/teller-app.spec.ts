import { test as base, expect, type Page, type Request } from '@playwright/test';
import { startTellerApp, type TellerApp } from '../../examples/teller-app/teller-app.js';
import { startDevWorkspace, type DevWorkspace } from '../../main/ui/dev-workspace.js';
import type { Revocation } from '../../packages/verifier/src/index.js';
import { appKeyPair, publishPolicy, tellerPolicy } from '../helpers/action-token-fixtures.js';
import { UiConsole } from '../helpers/agent-ui-console.js';
import type { Json } from '../helpers/backend-harness.js';

/**
 * Issue 14 end to end in Chromium: the sample teller app as the workspace of a console (the real
 * agent core behind the dev bridge, the real backend), its page getting action tokens through
 * `window.baton` (in the browser: the development stand-in for the workspace preload,
 * main/ui/dev-workspace.ts), its server deciding with @baton/verifier alone.
 */
interface Rig {
  baton: UiConsole;
  teller: TellerApp;
  workspace: DevWorkspace;
  heard: Revocation[];
  stepUps: string[];
}

const test = base.extend<{ rig: Rig; revocationsBy: 'baton-feed' | 'ssf-poll' }>({
  // How the teller app's server hears of revocations: Baton's own feed (its revocation key), or Baton's
  // Shared Signals stream polled (RFC 8936) with a receiver token an admin issued.
  revocationsBy: ['baton-feed', { option: true }],
  rig: async ({ context, page, revocationsBy }, use) => {
    const baton = await UiConsole.open(context, page);
    const keys = await appKeyPair();
    await publishPolicy(baton.backend.admin, tellerPolicy(keys.publicJwk, 600));
    const heard: Revocation[] = [];
    const follow =
      revocationsBy === 'ssf-poll'
        ? {
            ssfToken: (
              (await baton.backend.admin.ok('POST', '/v1/admin/ssf/receivers', {
                name: 'Teller app server',
                scopes: ['ssf.manage'],
              })) as { token: string }
            ).token,
          }
        : { revocationKey: keys.privateJwk };
    const teller = await startTellerApp({
      batonUrl: baton.backend.url,
      ...follow,
      clock: () => baton.clock.now(),
      onRevocation: (r) => heard.push(r),
    });
    // The teller page gets tokens for its server only from the origin the policy names for it (apps[].workspaceOrigins).
    // The payments server is another app, served to workspaces from its own origin.
    const policy = tellerPolicy(keys.publicJwk, 600, [new URL(teller.url).origin]);
    policy.apps = [
      ...(policy.apps ?? []),
      {
        audience: 'urn:bank:payments',
        name: 'Payments',
        actions: ['customer.view'],
        workspaceOrigins: ['https://payments.bank.example'],
      },
    ];
    await publishPolicy(baton.backend.admin, policy);
    const workspace = await startDevWorkspace({ bridge: baton.bridge, appUrl: teller.url });
    const stepUps: string[] = [];
    const unsubscribe = baton.bridge.agent.onStatus((s) => {
      if (s.phase.kind === 'stepping-up' && stepUps.at(-1) !== s.phase.action) stepUps.push(s.phase.action);
      if (s.phase.kind === 'idle' && (stepUps.at(-1) ?? '') !== '') stepUps.push('');
    });
    try {
      await teller.subscription?.ready;
      await use({ baton, teller, workspace, heard, stepUps });
      expect(baton.problems).toEqual([]);
    } finally {
      unsubscribe();
      await workspace.close();
      await teller.close();
      await baton.close();
    }
  },
});

/** The JWT's claims (the test reads what the page sent; it verifies nothing). */
function claimsOf(request: Request): Json {
  const token = (request.headers().authorization ?? '').replace(/^Bearer /, '');
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Json;
}

const approvalOf = (id: string) => (r: { url(): string; request(): Request }) =>
  r.url().endsWith(`/api/payments/${id}/approve`) && r.request().method() === 'POST';

/** The operator works in the teller page for a minute: a key press (reported as activity), then the minute passes. */
/**
 * IT enrols the console on the lock screen; Ada gets an enrolment code and registers her key (a security key
 * with PIN), which signs her in (issue 12: no second tap). Returns her session's id.
 */
async function enrolConsoleAndRegisterAda(baton: UiConsole, page: Page): Promise<string> {
  await page.getByRole('textbox', { name: 'Console enrolment token from IT' }).fill(await baton.consoleToken());
  await page.getByRole('button', { name: 'Enrol this console' }).click();
  await expect(page.getByRole('heading', { name: 'Tap your key' })).toBeVisible();
  const { code } = await baton.newOperator('Ada Teller');
  await baton.use(baton.key('Ada Teller'));
  await page.getByRole('button', { name: 'First time here? Register your key' }).click();
  await page.getByRole('textbox', { name: 'Enrolment code' }).fill(code);
  await page.getByRole('button', { name: 'Register my key' }).click();
  await expect(page.getByTestId('workspace')).toHaveAttribute('data-operator', 'Ada Teller');
  return baton.bridge.agent.status.front?.id ?? '';
}

async function workAMinute(baton: UiConsole, app: Page): Promise<void> {
  const noted = app.waitForResponse((r) => r.url().endsWith('/__baton/activity'));
  await app.getByRole('textbox', { name: 'Payment id' }).press('End');
  await noted;
  await baton.clock.advance(60_000);
}

test('the teller app: a lookup without step-up, a payment answered with the RFC 9470 challenge, step-up and retry; a revoked session refused by the app server before its token expires', async ({
  rig,
  page,
  context,
}) => {
  test.setTimeout(90_000);
  const { baton, teller, workspace, heard, stepUps } = rig;

  // IT enrols the console; Ada registers her key (a security key with PIN), which signs her in.
  const session = await enrolConsoleAndRegisterAda(baton, page);

  // Her workspace: the teller app, with window.baton as the preload gives it.
  const app = await context.newPage();
  // What the page asks of window.baton (in Electron the preload's IPC; here the stand-in's calls).
  const asked: Json[] = [];
  app.on('request', (r) => {
    if (r.url().endsWith('/__baton/ipc')) asked.push(JSON.parse(r.postData() ?? '{}') as Json);
  });
  await app.goto(workspace.url);
  await expect(app.getByRole('heading', { name: 'Teller' })).toBeVisible();
  const out = app.getByRole('status');

  // A customer lookup: a token for customer.view, no step-up.
  const lookup = app.waitForResponse((r) => r.url().endsWith('/api/customers/c-1001'));
  await app.getByRole('button', { name: 'Look up customer' }).click();
  expect((await lookup).status()).toBe(200);
  await expect(out).toContainText('Grace Hopper');
  expect(claimsOf((await lookup).request())).toMatchObject({ action: 'customer.view', sid: session });
  expect(stepUps).toEqual([]);

  // A script in the teller page asks for a token for another app's server: the agent refuses it.
  const foreign = await app.evaluate(() =>
    (
      window as unknown as { baton: { actionToken(r: { audience: string; action: string }): Promise<unknown> } }
    ).baton.actionToken({ audience: 'urn:bank:payments', action: 'customer.view' }),
  );
  expect(foreign).toMatchObject({ ok: true, value: { outcome: 'refused', code: 'AUDIENCE_NOT_FOR_WORKSPACE' } });

  // She approves payment p-1 at once: her tap with PIN is fresh, the app server accepts the token.
  const first = app.waitForResponse(approvalOf('p-1'));
  await app.getByRole('button', { name: 'Approve payment' }).click();
  expect((await first).status()).toBe(200);
  await expect(out).toContainText('"approved": "p-1"');
  expect(stepUps).toEqual([]);

  // Six minutes of work in the teller app; then p-2, with the token the page still holds (valid for
  // 10 minutes, but her PIN check is now older than the payment's 5 minutes).
  for (let minute = 0; minute < 6; minute++) await workAMinute(baton, app);
  await app.getByRole('textbox', { name: 'Payment id' }).fill('p-2');
  const answers: { status: number; challenge: string | undefined; request: Request }[] = [];
  const seen = new Promise<void>((resolve) => {
    app.on('response', (r) => {
      if (!approvalOf('p-2')(r)) return;
      void r.allHeaders().then((headers) => {
        answers.push({ status: r.status(), challenge: headers['www-authenticate'], request: r.request() });
        if (answers.length === 2) resolve();
      });
    });
  });
  await app.getByRole('button', { name: 'Approve payment' }).click();
  await seen;

  // The app server's answer: 401 with the RFC 9470 challenge.
  expect(answers[0]?.status).toBe(401);
  expect(answers[0]?.challenge).toMatch(/^Bearer /);
  expect(answers[0]?.challenge).toContain('error="insufficient_user_authentication"');
  expect(answers[0]?.challenge).toContain('acr_values="phr phrh"');
  expect(answers[0]?.challenge).toContain('max_age=300');
  // The page handed the challenge to the agent as it came…
  expect(asked.filter((c) => c.payload?.challenge !== undefined).map((c) => c.payload)).toEqual([
    { audience: 'urn:bank:teller', action: 'payment.approve', challenge: answers[0]?.challenge },
  ]);
  // …and the agent understood it: it asked Ada to step up (her key with PIN answered), then the retry passed.
  expect(stepUps).toEqual(['payment.approve', '']);
  expect(answers[1]?.status).toBe(200);
  await expect(out).toContainText('"approved": "p-2"');
  await expect(out).toContainText('"level": "verified"');
  expect(teller.approvals.get('p-2')).toMatchObject({ session, level: 'verified' });
  const retried = claimsOf(answers[1]!.request);
  expect(retried.auth_time as number).toBeGreaterThan(claimsOf(answers[0]!.request).auth_time as number);
  await expect(page.getByText('Signed in with a key with PIN or fingerprint ·')).toBeVisible();

  // IT revokes her session. The app server hears of it on Baton's stream…
  await baton.revoke('sessions', session);
  await expect.poll(() => heard.some((r) => r.kind === 'session' && r.targetId === session)).toBe(true);
  await expect(page.getByRole('heading', { name: 'Tap your key' })).toBeVisible();

  // …and refuses the next call, made with the token the page still holds, well before it expires.
  await app.getByRole('textbox', { name: 'Payment id' }).fill('p-3');
  const refusedCall = app.waitForResponse(approvalOf('p-3'));
  await app.getByRole('button', { name: 'Approve payment' }).click();
  const refused = await refusedCall;
  expect(refused.status()).toBe(401);
  expect((await refused.allHeaders())['www-authenticate']).toContain('error="invalid_token"');
  const held = claimsOf(refused.request());
  expect(held.jti).toBe(retried.jti);
  expect(held.exp as number).toBeGreaterThan(baton.clock.now() / 1000 + 60);
  // The page says so: the server's refusal code, and the agent has no session to exchange for any more.
  await expect(out).toContainText('The teller server refused the call (TOKEN_REVOKED)');
  await expect(out).toContainText('NO_SESSION_IN_FRONT');
  expect(teller.approvals.has('p-3')).toBe(false);
});

test.describe("following Baton's Shared Signals stream", () => {
  test.use({ revocationsBy: 'ssf-poll' });

  test("the teller app's verifier, following the Shared Signals stream by poll (RFC 8936), refuses a revoked session's token before it expires", async ({
    rig,
    page,
    context,
  }) => {
    test.setTimeout(90_000);
    const { baton, teller, workspace, heard } = rig;
    expect(teller.subscription?.constructor.name).toBe('SsfSubscription');

    // Ada's console is enrolled and her key registered, which signs her in.
    const session = await enrolConsoleAndRegisterAda(baton, page);

    // A customer lookup in the teller app: accepted.
    const app = await context.newPage();
    await app.goto(workspace.url);
    const out = app.getByRole('status');
    const lookup = app.waitForResponse((r) => r.url().endsWith('/api/customers/c-1001'));
    await app.getByRole('button', { name: 'Look up customer' }).click();
    expect((await lookup).status()).toBe(200);
    await expect(out).toContainText('Grace Hopper');

    // IT revokes her session: the app server hears it as a CAEP session-revoked SET on the poll…
    await baton.revoke('sessions', session);
    await expect.poll(() => heard.some((r) => r.kind === 'session' && r.targetId === session)).toBe(true);

    // …and refuses the next lookup, made with the token the page still holds, before it expires.
    const again = app.waitForResponse((r) => r.url().endsWith('/api/customers/c-1001'));
    await app.getByRole('button', { name: 'Look up customer' }).click();
    const refused = await again;
    expect(refused.status()).toBe(401);
    expect((await refused.allHeaders())['www-authenticate']).toContain('error="invalid_token"');
    expect(claimsOf(refused.request()).sid).toBe(session);
    expect(claimsOf(refused.request()).exp as number).toBeGreaterThan(baton.clock.now() / 1000 + 60);
    await expect(out).toContainText('The teller server refused the call (TOKEN_REVOKED)');
  });
});
