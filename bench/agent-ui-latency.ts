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
 * With `--steps`, an init script in the page (not the page's own code, so the same bench times any
 * tree) records each bridge frame as it arrives (status pushes with their phase and front operator,
 * the ceremony request, call replies), how long the page's handler for it ran (its render), and
 * the WebAuthn call; the report then gives the median time from the click to each step. It also
 * reads Chromium's own counters for the page (CDP `Performance.getMetrics`, in thread CPU time)
 * around each timed tap: the renderer's work per tap (script, style, layout, tasks), a figure the
 * machine's load moves far less than the wall-clock times.
 *
 *   node --import tsx bench/agent-ui-latency.ts [--taps 60] [--switches 60] [--warmup 5] [--steps]
 *     [--samples-out <file.json>] [--click-at-once]
 *
 * `--samples-out` writes every timed sample (ms, in order) of (a) and (b) as JSON, for
 * `bench/compare-ui-samples.ts`, which compares several runs of two trees (alternated) with a
 * confidence interval instead of one median against another.
 */
import { Server, type IncomingMessage, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { chromium, type CDPSession, type Page } from '@playwright/test';
import { CHROMIUM, CHROMIUM_ARGS } from '../playwright.config.js';
import { UiConsole } from '../test/helpers/agent-ui-console.js';
import { fmt, fmtInt, heading, printJsonLine, printTable, summarize, verdict, type Summary } from './lib/report.js';

const { values: args } = parseArgs({
  options: {
    taps: { type: 'string', default: '60' },
    switches: { type: 'string', default: '60' },
    warmup: { type: 'string', default: '5' },
    steps: { type: 'boolean', default: false },
    'click-at-once': { type: 'boolean', default: false },
    'samples-out': { type: 'string' },
  },
});
const TAPS = Number(args.taps);
const SWITCHES = Number(args.switches);
const WARMUP = Number(args.warmup);
const GOAL_P95_MS = 300;
const STEPS = args.steps;

/**
 * Installed before the page's scripts (only with --steps): wraps the WebSocket the dev bridge
 * client opens and the WebAuthn call, and appends `{ what, at, ms }` to `window.__steps` — `at`
 * when a frame arrived (performance.now()), `ms` how long the page's handler ran for it.
 */
const STEP_RECORDER = `(() => {
  const steps = (window.__steps = []);
  const Native = window.WebSocket;
  const describe = (data) => {
    try {
      const f = JSON.parse(data);
      if (f.event === 'agent:status') {
        const p = f.payload;
        return 'status ' + p.phase.kind + (p.locked ? ' locked' : '') + ' front=' + (p.front ? p.front.operatorName : '-');
      }
      if (typeof f.event === 'string') return f.event;
      return 'reply';
    } catch { return 'frame'; }
  };
  window.WebSocket = class extends Native {
    addEventListener(type, listener, options) {
      if (type !== 'message') return super.addEventListener(type, listener, options);
      return super.addEventListener(type, (event) => {
        const at = performance.now();
        listener.call(this, event);
        steps.push({ what: describe(event.data), at, ms: performance.now() - at, bytes: typeof event.data === 'string' ? event.data.length : 0 });
      }, options);
    }
    send(data) {
      try { steps.push({ what: 'call ' + JSON.parse(data).channel, at: performance.now(), ms: 0 }); } catch {}
      return super.send(data);
    }
  };
  const proto = CredentialsContainer.prototype;
  const get = proto.get;
  proto.get = function (...a) {
    const at = performance.now();
    return get.apply(this, a).finally(() => steps.push({ what: 'webauthn get', at, ms: performance.now() - at }));
  };
})();`;

interface Step {
  what: string;
  at: number;
  ms: number;
  /** A bridge frame's size (characters of JSON). */
  bytes?: number;
}
interface Timed {
  ms: number;
  t0: number;
  seen: number;
  steps: Step[];
  /** With --steps: the page's renderer work during this tap (CDP metrics, ms of thread CPU or counts). */
  cost?: Record<string, number>;
}

/**
 * With --steps, the backend's own time for each sign-in request of a timed tap (Node's `request`
 * event to the response's `finish`): the backend runs in this process, so `http.Server` is observed
 * here without touching its code, the same in any tree.
 */
const backendMs = new Map<string, number[]>();
let timingBackend = false;
function observeBackend(): void {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with the server as `this`
  const emit = Server.prototype.emit as (this: Server, type: string | symbol, ...rest: unknown[]) => boolean;
  Server.prototype.emit = function (this: Server, type: string | symbol, ...rest: unknown[]): boolean {
    if (type === 'request' && timingBackend) {
      const [req, res] = rest as [IncomingMessage, ServerResponse];
      const path = (req.url ?? '').split('?')[0] ?? '';
      if (path.includes('/sign-in/')) {
        const start = performance.now();
        res.once('finish', () => {
          const list = backendMs.get(path) ?? [];
          list.push(performance.now() - start);
          backendMs.set(path, list);
        });
      }
    }
    return emit.call(this, type, ...rest);
  } as typeof Server.prototype.emit;
}

/** Chromium's per-page counters read around each tap (Performance.getMetrics, thread CPU time). */
const COSTS = [
  'TaskDuration',
  'ScriptDuration',
  'RecalcStyleDuration',
  'LayoutDuration',
  'RecalcStyleCount',
  'LayoutCount',
];

/**
 * Clicks `buttonId` and resolves with the ms until the workspace shows `operator` on screen. The
 * page script is a string: tsx would otherwise wrap its named functions in a helper the page lacks.
 */
async function timeTap(page: Page, buttonId: string, operator: string): Promise<Timed> {
  const delayMs = (phase() * frameMs).toFixed(3);
  // With --click-at-once, the click as soon as the page gets the call (before the phases were set).
  const [open, close] = args['click-at-once']
    ? ['(() => {', '})();']
    : ['requestAnimationFrame(() => setTimeout(() => {', `}, ${delayMs}));`];
  return page.evaluate(`new Promise((resolve, reject) => {
    const steps = window.__steps;
    const panel = document.getElementById('workspace');
    const button = document.getElementById(${JSON.stringify(buttonId)});
    const operator = ${JSON.stringify(operator)};
    const timeout = setTimeout(() => reject(new Error('no workspace for ' + operator + ' within 10 s')), 10000);
    // The click at a set phase of the display's frame: at the start of a frame, then the delay.
    ${open}
      if (steps) steps.length = 0;
      const t0 = performance.now();
      const observer = new MutationObserver(() => {
        if (panel.dataset.operator !== operator || panel.offsetParent === null) return;
        if (!panel.checkVisibility({ visibilityProperty: true })) return;
        const seen = performance.now();
        observer.disconnect();
        clearTimeout(timeout);
        requestAnimationFrame(() => resolve({ ms: performance.now() - t0, t0, seen, steps: steps ? steps.slice() : [] }));
      });
      observer.observe(document.body, { attributes: true, childList: true, subtree: true });
      button.click();
    ${close}
  })`);
}

/**
 * A sample ends at an animation frame, so its time holds the wait for that frame (0 to one frame
 * period). Clicks made right after the previous sample's frame would all fall at about the same
 * phase of the frame clock, and a run would inherit one phase: its median moved by most of a frame
 * from run to run (23.1 to 37.9 ms in six runs of one tree). Each click is therefore made at its own
 * phase of the frame, the fractional parts of k × the golden ratio (k = 1, 2, …; evenly spread, the
 * same sequence in every run and tree), times the frame period measured in the page.
 */
let frameMs = 1000 / 60;
let phaseIndex = 0;
function phase(): number {
  phaseIndex += 1;
  return (phaseIndex * 0.6180339887498949) % 1;
}

/** The page's frame period: the median interval of 31 consecutive animation frames. */
async function measureFrameMs(page: Page): Promise<number> {
  return page.evaluate(`new Promise((resolve) => {
    const at = [];
    const tick = (t) => {
      at.push(t);
      if (at.length < 32) return requestAnimationFrame(tick);
      const gaps = at.slice(1).map((t, i) => t - at[i]).sort((a, b) => a - b);
      resolve(gaps[Math.floor(gaps.length / 2)]);
    };
    requestAnimationFrame(tick);
  })`);
}

/** Clicks and times as `timeTap` does, with the renderer's work during the tap when a CDP session is given. */
async function timeTapCost(
  page: Page,
  cdp: CDPSession | undefined,
  buttonId: string,
  operator: string,
  /** A timed tap (not a warm-up): its sign-in requests count in the backend's figures. */
  timed: boolean,
): Promise<Timed> {
  if (cdp === undefined) return timeTap(page, buttonId, operator);
  const read = async () => {
    const { metrics } = (await cdp.send('Performance.getMetrics')) as { metrics: { name: string; value: number }[] };
    return new Map(metrics.map((m) => [m.name, m.value]));
  };
  const before = await read();
  timingBackend = timed;
  const sample = await timeTap(page, buttonId, operator).finally(() => (timingBackend = false));
  const after = await read();
  sample.cost = Object.fromEntries(
    COSTS.map((name) => {
      const d = (after.get(name) ?? 0) - (before.get(name) ?? 0);
      return [name, name.endsWith('Duration') ? d * 1000 : d];
    }),
  );
  return sample;
}

function costRows(label: string, samples: readonly Timed[]): string[] {
  return [
    label,
    ...COSTS.map((name) => {
      const s = summarize(samples.map((t) => t.cost?.[name] ?? 0));
      return name.endsWith('Duration') ? `${fmt(s.p50, 2)} / ${fmt(s.p95, 2)}` : `${fmt(s.p50, 0)}`;
    }),
  ];
}

/**
 * The median time from the click to each step of the samples, and the median time the page's
 * handler ran for it (its render). Steps are named by what arrived, the operator tapping as "them"
 * and the other as "other"; a step that repeats in a sample is numbered.
 */
function stepRows(samples: readonly Timed[], operator: (i: number) => string): string[][] {
  const at = new Map<string, number[]>();
  const run = new Map<string, number[]>();
  const order: string[] = [];
  const waited: number[] = [];
  samples.forEach((sample, i) => {
    const name = operator(i);
    const seen = new Map<string, number>();
    const steps = [...sample.steps].sort((x, y) => x.at - y.at);
    // The first status saying the tapper is in front, unlocked: from then on the page knows.
    const known = steps.find(
      (step) =>
        step.what.startsWith('status ') && step.what.endsWith(` front=${name}`) && !step.what.includes(' locked '),
    );
    if (known !== undefined) waited.push(sample.seen - known.at);
    steps.push({ what: 'workspace shows them (observer)', at: sample.seen, ms: 0 });
    steps.push({ what: 'next animation frame', at: sample.t0 + sample.ms, ms: 0 });
    for (const step of steps) {
      if (step.at < sample.t0) continue;
      const what = step.what.replace(/front=(.+)$/, (_m, who: string) =>
        who === '-' ? 'front=-' : who === name ? 'front=them' : 'front=other',
      );
      const count = (seen.get(what) ?? 0) + 1;
      seen.set(what, count);
      const key = count === 1 ? what : `${what} #${count}`;
      if (!at.has(key)) {
        at.set(key, []);
        run.set(key, []);
        order.push(key);
      }
      at.get(key)?.push(step.at - sample.t0);
      run.get(key)?.push(step.ms);
    }
  });
  const rows = order
    .filter((key) => (at.get(key)?.length ?? 0) >= samples.length / 2)
    .sort((x, y) => summarize(at.get(x) ?? []).p50 - summarize(at.get(y) ?? []).p50)
    .map((key) => {
      const a = summarize(at.get(key) ?? []);
      const r = summarize(run.get(key) ?? []);
      return [key, fmtInt(a.n), fmt(a.p50, 1), fmt(a.p95, 1), fmt(r.p50, 2), fmt(r.p95, 2)];
    });
  const w = summarize(waited);
  rows.push(['first status with them in front → workspace shows', fmtInt(w.n), fmt(w.p50, 1), fmt(w.p95, 1), '', '']);
  return rows;
}

function cpuMs(usage: NodeJS.CpuUsage): number {
  return (usage.user + usage.system) / 1000;
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
  if (STEPS) {
    await page.addInitScript(STEP_RECORDER);
    observeBackend();
  }
  const baton = await UiConsole.open(context, page);
  const cdp = STEPS ? await context.newCDPSession(page) : undefined;
  await cdp?.send('Performance.enable', { timeDomain: 'threadTicks' });
  try {
    frameMs = await measureFrameMs(page);
    console.log(
      args['click-at-once']
        ? `clicks: as soon as the page gets the call (--click-at-once); frame period ${fmt(frameMs, 2)} ms`
        : `clicks: each at its own phase of the ${fmt(frameMs, 2)} ms frame (golden-ratio sequence)`,
    );
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
      // Since issue 12 registering signs the newcomer in; before it (the baseline tree), it only
      // welcomed them. Either way the timed taps start with keys registered and no session open.
      const workspace = page.locator(`#workspace[data-operator="${name}"]`);
      await page.getByTestId('notice').getByText(`Welcome, ${name}`).or(workspace).first().waitFor();
      if (await workspace.isVisible()) {
        await page.getByRole('button', { name: 'Sign out' }).click();
        await waitForScreen(page, 'Tap your key');
      }
      keys.push(key);
    }
    const [ada, bob] = keys as [(typeof keys)[number], (typeof keys)[number]];

    // (a) tap → own workspace
    await baton.use(ada);
    const taps: Timed[] = [];
    let cpuFrom = process.cpuUsage();
    for (let i = 0; i < WARMUP + TAPS; i++) {
      if (i === WARMUP) cpuFrom = process.cpuUsage();
      if (i > 0) {
        await page.getByRole('button', { name: 'Lock' }).click();
        await waitForScreen(page, 'Tap your key');
      }
      const ms = await timeTapCost(page, cdp, 'tap', 'Ada Teller', i >= WARMUP);
      if (i >= WARMUP) taps.push(ms);
    }
    const tapCpuMs = cpuMs(process.cpuUsage(cpuFrom)) / TAPS;

    // (b) switch between two signed-in operators
    await baton.use(bob);
    await timeTap(page, 'switch', 'Bob Cashier'); // Bob's first sign-in
    const switches: Timed[] = [];
    for (let i = 0; i < WARMUP + SWITCHES; i++) {
      if (i === WARMUP) cpuFrom = process.cpuUsage();
      const [key, name] = i % 2 === 0 ? [ada, 'Ada Teller'] : [bob, 'Bob Cashier'];
      await baton.use(key);
      const ms = await timeTapCost(page, cdp, 'switch', name, i >= WARMUP);
      if (i >= WARMUP) switches.push(ms);
    }
    const switchCpuMs = cpuMs(process.cpuUsage(cpuFrom)) / SWITCHES;
    const sessions = baton.bridge.agent.status.sessions.map((s) => `${s.operatorName}:${s.state}`);

    const a = summarize(taps.map((t) => t.ms));
    const b = summarize(switches.map((t) => t.ms));
    if (args['samples-out'] !== undefined) {
      const samples = { a: taps.map((t) => t.ms), b: switches.map((t) => t.ms), steps: STEPS };
      writeFileSync(args['samples-out'], `${JSON.stringify(samples)}\n`);
    }
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
    console.log(
      `this process's CPU per timed tap with its untimed set-up (the agent core, the backend and this driver; steadier under load than the times): ` +
        `(a) ${fmt(tapCpuMs, 2)} ms, (b) ${fmt(switchCpuMs, 2)} ms`,
    );
    if (STEPS) {
      const headers = ['step (from the click)', 'n', 'at p50', 'at p95', 'handler p50', 'handler p95'];
      printTable(
        '(a) tap: steps in the page (ms)',
        headers,
        stepRows(taps, () => 'Ada Teller'),
      );
      const switcher = (i: number) => ((WARMUP + i) % 2 === 0 ? 'Ada Teller' : 'Bob Cashier');
      printTable('(b) switch: steps in the page (ms)', headers, stepRows(switches, switcher));
      printTable(
        "the page's renderer work per tap (CDP Performance.getMetrics, thread CPU ms p50 / p95; counts p50)",
        ['path', 'task', 'script', 'style', 'layout', 'style recalcs', 'layouts'],
        [costRows('(a) tap → own workspace', taps), costRows('(b) switch → other workspace', switches)],
      );
      const pushes = (samples: readonly Timed[]) => {
        const frames = samples.map((t) => t.steps.filter((step) => step.what.startsWith('status ')));
        const count = summarize(frames.map((f) => f.length));
        const bytes = summarize(frames.flat().map((step) => step.bytes ?? 0));
        return `${fmt(count.p50, 0)} pushes of ${fmt(bytes.p50, 0)} B (p50; largest ${fmt(bytes.max, 0)} B)`;
      };
      console.log(`status pushes per tap: (a) ${pushes(taps)}; (b) ${pushes(switches)}`);
      printTable(
        'backend: sign-in requests of the timed taps, request → response finished (ms, in this process)',
        ['request', 'n', 'p50', 'p95'],
        [...backendMs].map(([path, list]) => {
          const s = summarize(list);
          return [`POST ${path}`, fmtInt(s.n), fmt(s.p50, 2), fmt(s.p95, 2)];
        }),
      );
    }
    console.log(`sessions at end: ${sessions.join(', ')}; page problems: ${baton.problems.length}`);
    printTable(
      'goals',
      ['goal', 'measured', 'verdict'],
      [
        [`(a) tap → workspace p95 ≤ ${GOAL_P95_MS} ms`, `${fmt(a.p95, 1)} ms`, verdict(a.p95 <= GOAL_P95_MS)],
        [`(b) switch → workspace p95 ≤ ${GOAL_P95_MS} ms`, `${fmt(b.p95, 1)} ms`, verdict(b.p95 <= GOAL_P95_MS)],
      ],
    );
    printJsonLine('agent-ui-latency', {
      tapMs: a,
      switchMs: b,
      tapCpuMs,
      switchCpuMs,
      problems: baton.problems.length,
    });
    if (baton.problems.length > 0 || sessions.length !== 2) process.exitCode = 1;
  } finally {
    await baton.close();
    await browser.close();
  }
}

await main();
