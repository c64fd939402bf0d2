/**
 * Tap → workspace on screen, in the browser journey: the operator UI served by the UI server in
 * Debian's Chromium, the real agent core behind the dev bridge, the real backend (in this process,
 * as in the e2e journeys), and one CDP virtual authenticator per operator. Each sample is timed in
 * the page with performance.now(): from the click that triggers the tap to the first animation
 * frame after the workspace panel shows that operator. In between: the bridge call, signed
 * `/v1/sign-in/options`, the `ceremony:request` to the page, the WebAuthn assertion by the virtual
 * authenticator, `ceremony:answer`, signed `/v1/sign-in/verify`, the status push and the render.
 *
 * (a) tap → own workspace: one operator locks (untimed) and taps back in (a resume of the same session);
 * (b) switch: two operators signed in; the other operator's key is plugged in (untimed), then
 *     "Switch operator" → the other workspace on screen (their suspended session resumed).
 *
 *   node --import tsx bench/agent-ui-latency.ts [--taps 60] [--switches 60] [--warmup 5]
 */
import { parseArgs } from 'node:util';
import { chromium, type Page } from '@playwright/test';
import { CHROMIUM, CHROMIUM_ARGS } from '../playwright.config.js';
import { UiConsole } from '../test/helpers/agent-ui-console.js';
import { fmt, fmtInt, heading, printJsonLine, printTable, summarize, verdict, type Summary } from './lib/report.js';

const { values: args } = parseArgs({
  options: {
    taps: { type: 'string', default: '60' },
    switches: { type: 'string', default: '60' },
    warmup: { type: 'string', default: '5' },
  },
});
const TAPS = Number(args.taps);
const SWITCHES = Number(args.switches);
const WARMUP = Number(args.warmup);
const GOAL_P95_MS = 300;

/**
 * Clicks `buttonId` and resolves with the ms until the workspace shows `operator` on screen. The
 * page script is a string: tsx would otherwise wrap its named functions in a helper the page lacks.
 */
function timeTap(page: Page, buttonId: string, operator: string): Promise<number> {
  return page.evaluate(`new Promise((resolve, reject) => {
    const panel = document.getElementById('workspace');
    const button = document.getElementById(${JSON.stringify(buttonId)});
    const operator = ${JSON.stringify(operator)};
    const timeout = setTimeout(() => reject(new Error('no workspace for ' + operator + ' within 10 s')), 10000);
    const t0 = performance.now();
    const observer = new MutationObserver(() => {
      if (panel.dataset.operator !== operator || panel.offsetParent === null) return;
      observer.disconnect();
      clearTimeout(timeout);
      requestAnimationFrame(() => resolve(performance.now() - t0));
    });
    observer.observe(document.body, { attributes: true, childList: true, subtree: true });
    button.click();
  })`);
}

async function waitForScreen(page: Page, heading: string): Promise<void> {
  await page.getByRole('heading', { name: heading }).waitFor({ state: 'visible' });
}

async function main(): Promise<void> {
  heading('agent-ui-latency');
  console.log(`taps ${TAPS}, switches ${SWITCHES}, warm-up ${WARMUP} each (excluded); goal p95 ≤ ${GOAL_P95_MS} ms`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  const context = await browser.newContext();
  const page = await context.newPage();
  const baton = await UiConsole.open(context, page);
  try {
    await page.getByRole('textbox', { name: 'Console enrolment token from IT' }).fill(await baton.consoleToken());
    await page.getByRole('button', { name: 'Enrol this console' }).click();
    await waitForScreen(page, 'Tap your key');
    const keys = [];
    for (const name of ['Ada Teller', 'Bob Cashier']) {
      const { code } = await baton.newOperator(name);
      const key = await baton.use(baton.key(name));
      await page.getByRole('button', { name: 'First time here? Register your key' }).click();
      await page.getByRole('textbox', { name: 'Enrolment code' }).fill(code);
      await page.getByRole('button', { name: 'Register my key' }).click();
      await page.getByTestId('notice').getByText(`Welcome, ${name}`).waitFor();
      keys.push(key);
    }
    const [ada, bob] = keys as [(typeof keys)[number], (typeof keys)[number]];

    // (a) tap → own workspace
    await baton.use(ada);
    const taps: number[] = [];
    for (let i = 0; i < WARMUP + TAPS; i++) {
      if (i > 0) {
        await page.getByRole('button', { name: 'Lock' }).click();
        await waitForScreen(page, 'Tap your key');
      }
      const ms = await timeTap(page, 'tap', 'Ada Teller');
      if (i >= WARMUP) taps.push(ms);
    }

    // (b) switch between two signed-in operators
    await baton.use(bob);
    await timeTap(page, 'switch', 'Bob Cashier'); // Bob's first sign-in
    const switches: number[] = [];
    for (let i = 0; i < WARMUP + SWITCHES; i++) {
      const [key, name] = i % 2 === 0 ? [ada, 'Ada Teller'] : [bob, 'Bob Cashier'];
      await baton.use(key);
      const ms = await timeTap(page, 'switch', name);
      if (i >= WARMUP) switches.push(ms);
    }
    const sessions = baton.bridge.agent.status.sessions.map((s) => `${s.operatorName}:${s.state}`);

    const a = summarize(taps);
    const b = summarize(switches);
    const row = (name: string, s: Summary) => [
      name,
      fmtInt(s.n),
      fmt(s.p50, 1),
      fmt(s.p95, 1),
      fmt(s.p99, 1),
      fmt(s.max, 1),
    ];
    printTable(
      'tap → workspace on screen (ms, in the page)',
      ['path', 'n', 'p50', 'p95', 'p99', 'max'],
      [row('(a) tap → own workspace (resume)', a), row('(b) switch → other workspace', b)],
    );
    console.log(`sessions at end: ${sessions.join(', ')}; page problems: ${baton.problems.length}`);
    printTable(
      'goals',
      ['goal', 'measured', 'verdict'],
      [
        [`(a) tap → workspace p95 ≤ ${GOAL_P95_MS} ms`, `${fmt(a.p95, 1)} ms`, verdict(a.p95 <= GOAL_P95_MS)],
        [`(b) switch → workspace p95 ≤ ${GOAL_P95_MS} ms`, `${fmt(b.p95, 1)} ms`, verdict(b.p95 <= GOAL_P95_MS)],
      ],
    );
    printJsonLine('agent-ui-latency', { tapMs: a, switchMs: b, problems: baton.problems.length });
    if (baton.problems.length > 0 || sessions.length !== 2) process.exitCode = 1;
  } finally {
    await baton.close();
    await browser.close();
  }
}

await main();
