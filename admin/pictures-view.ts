import { serverNow } from './server-clock.js';
import { breakGlassPictures } from './break-glass-view.js';
import { api, endpoint } from './api.js';
import { errorBox, fmtAgo, fmtTime, h, pill, replace, table, timeZone } from './dom.js';
import { barChart } from './charts.js';
import { hashQuery } from './paged-table.js';
import type { View } from './view.js';

interface Stats {
  from: number;
  to: number;
  bucketMs: number;
  signIns: { start: number; success: number; failure: number }[];
  stepUpsByAction: { action: string; success: number; failure: number }[];
  revocations: {
    epoch: number;
    kind: string;
    targetId: string;
    at: number;
    deliveries: number;
    acknowledged: number;
    maxAckMs: number | null;
  }[];
  propagation: {
    start: number;
    acknowledgements: number;
    p50Ms: number | null;
    p99Ms: number | null;
    maxMs: number | null;
  }[];
  consoles: { online: number; offline: number; revoked: number };
  truncated: boolean;
}

interface Nodes {
  nodeId: string;
  staleAfterSeconds: number;
  freshness: { stale: boolean; reason?: string };
  nodes: {
    nodeId: string;
    host: string;
    pid: number;
    startedAt: number;
    lastBeat: number;
    state: 'live' | 'stale' | 'silent';
    staleReason: string | null;
    self: boolean;
  }[];
}

const NODE_TONE = { live: 'good', stale: 'warn', silent: 'bad' } as const;

/** The backend nodes and whether each one's view of revocations is current (GET /v1/admin/nodes). */
function nodesSection(): HTMLElement {
  const box = h('section', {}, h('h2', {}, 'Backend nodes'), h('p', { class: 'muted' }, 'Loading…'));
  void api<Nodes>(...endpoint('adminNodes')).then(
    (n) =>
      replace(
        box,
        h('h2', {}, 'Backend nodes'),
        n.freshness.stale
          ? h('p', { class: 'error' }, `The node answering is stale: ${n.freshness.reason ?? 'unknown'}`)
          : null,
        table(
          'Backend nodes',
          ['node', 'host', 'pid', 'started', 'last beat', 'state'],
          n.nodes.map((node) => [
            node.self ? `${node.nodeId} (this one)` : node.nodeId,
            node.host,
            String(node.pid),
            fmtTime(node.startedAt),
            fmtAgo(node.lastBeat),
            pill(node.state, NODE_TONE[node.state]),
          ]),
          'No node has reported yet.',
        ),
        h(
          'p',
          { class: 'muted' },
          `Stale: the node says its view of revocations is older than ${n.staleAfterSeconds} s. Silent: no heartbeat for that long (down, or cut off from the database).`,
        ),
      ),
    (error: unknown) => replace(box, h('h2', {}, 'Backend nodes'), errorBox(error)),
  );
  return box;
}

/** The time ranges the picker offers: how far back, and the bucket each bar covers. */
const RANGES = {
  '1h': { label: 'Last hour', span: 3_600_000, bucketMinutes: 5 },
  '24h': { label: 'Last 24 hours', span: 86_400_000, bucketMinutes: 60 },
  '7d': { label: 'Last 7 days', span: 7 * 86_400_000, bucketMinutes: 360 },
  '30d': { label: 'Last 30 days', span: 30 * 86_400_000, bucketMinutes: 1440 },
} as const;
type RangeKey = keyof typeof RANGES;

/** Bucket sizes a custom range may get (minutes): the smallest that keeps it to at most 60 bars. */
const BUCKETS = [5, 15, 60, 360, 1440];

/** The range the address asks for (`#/pictures?range=7d`, or `?from=…&to=…` in ms), aligned to its buckets. */
function rangeOf(
  query: URLSearchParams,
  now: number,
): { from: number; to: number; bucketMinutes: number; label: string; phrase: string } {
  const from = Number(query.get('from'));
  const to = Number(query.get('to'));
  if (query.has('from') && query.has('to') && Number.isFinite(from) && Number.isFinite(to) && from < to) {
    const bucketMinutes = BUCKETS.find((m) => (to - from) / (m * 60_000) <= 60) ?? 1440;
    const bucketMs = bucketMinutes * 60_000;
    const alignedFrom = Math.floor(from / bucketMs) * bucketMs;
    const count = Math.min(500, Math.ceil((to - alignedFrom) / bucketMs));
    return {
      from: alignedFrom,
      to: alignedFrom + count * bucketMs,
      bucketMinutes,
      label: `${fmtTime(from)} to ${fmtTime(to)}`,
      phrase: `from ${fmtTime(from)} to ${fmtTime(to)}`,
    };
  }
  const key = (query.get('range') ?? '24h') as RangeKey;
  const range = Object.hasOwn(RANGES, key) ? RANGES[key] : RANGES['24h'];
  const bucketMs = range.bucketMinutes * 60_000;
  // The last bar ends at the next bucket boundary: bars start on whole hours (days, 5 minutes).
  const end = Math.ceil((now + 1) / bucketMs) * bucketMs;
  const label = range.label.toLowerCase();
  return { from: end - range.span, to: end, bucketMinutes: range.bucketMinutes, label, phrase: `in the ${label}` };
}

/** The range picker: presets, or a from / to in the admin's time zone; the choice lives in the address. */
function rangePicker(query: URLSearchParams): HTMLElement {
  const current = query.has('from') ? 'custom' : (query.get('range') ?? '24h');
  const localInput = (ms: number) => fmtTime(ms, { zone: false }).replace(' ', 'T');
  const select = h(
    'select',
    { id: 'range' },
    Object.entries(RANGES).map(([key, r]) => h('option', { value: key, selected: key === current }, r.label)),
    h('option', { value: 'custom', selected: current === 'custom' }, 'From… to…'),
  );
  const now = serverNow();
  const fromInput = h('input', {
    id: 'range-from',
    type: 'datetime-local',
    value: localInput(query.has('from') ? Number(query.get('from')) : now - 86_400_000),
  });
  const toInput = h('input', {
    id: 'range-to',
    type: 'datetime-local',
    value: localInput(query.has('to') ? Number(query.get('to')) : now),
  });
  const custom = h(
    'span',
    { class: 'row', hidden: current !== 'custom' },
    h('label', { for: 'range-from' }, `From (${timeZone()})`, fromInput),
    h('label', { for: 'range-to' }, `To (${timeZone()})`, toInput),
  );
  const form = h(
    'form',
    { class: 'row table-tools', id: 'range-form', 'aria-label': 'Time range' },
    h('label', { for: 'range' }, 'Time range', select),
    custom,
    h('button', { type: 'submit', id: 'range-apply' }, 'Show'),
  );
  select.addEventListener('change', () => {
    custom.hidden = select.value !== 'custom';
    if (select.value !== 'custom') location.hash = `#/pictures?range=${select.value}`;
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (select.value !== 'custom') {
      location.hash = `#/pictures?range=${select.value}`;
      return;
    }
    // datetime-local is read in the browser's zone, which is the admin's zone every date here is shown in.
    const from = new Date(fromInput.value).getTime();
    const to = new Date(toInput.value).getTime();
    if (!Number.isFinite(from) || !Number.isFinite(to) || from >= to) {
      replace(
        custom,
        custom.firstChild,
        custom.childNodes[1] ?? null,
        h('span', { class: 'error', role: 'alert' }, 'The start must be before the end.'),
      );
      return;
    }
    location.hash = `#/pictures?from=${from}&to=${to}`;
  });
  return form;
}

/** What one bar covers, in words. */
const per = (minutes: number): string =>
  minutes === 60
    ? 'per hour'
    : minutes === 1440
      ? 'per day'
      : minutes % 60 === 0
        ? `per ${minutes / 60} hours`
        : `per ${minutes} minutes`;

const audit = (params: Record<string, string | number>) =>
  `#/audit?${new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)])).toString()}`;

/**
 * Pictures: sign-ins and failures over time, step-ups by action, revocation propagation (p50 / p99 over
 * time, and each revocation's slowest console), consoles by state. Time axes carry ISO dates in the
 * admin's zone; a range picker chooses the window; each bar leads to the events (or revocations,
 * consoles) it counts.
 */
export const picturesView: View = (main) => {
  const range = rangeOf(hashQuery(), serverNow());
  const box = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  replace(
    main,
    h('h1', {}, `Pictures (${range.label})`),
    rangePicker(hashQuery()),
    box,
    nodesSection(),
    // Break-glass sessions per operator and per site (glass, admin/break-glass-view.ts).
    breakGlassPictures(),
  );
  void api<Stats>(
    ...endpoint('adminStats', {}, { from: range.from, to: range.to, bucketMinutes: range.bucketMinutes }),
  ).then(
    (s) => {
      const signInTotal = s.signIns.reduce((n, b) => n + b.success, 0);
      const failTotal = s.signIns.reduce((n, b) => n + b.failure, 0);
      const slowest = s.revocations.reduce((m, r) => Math.max(m, r.maxAckMs ?? 0), 0);
      const acks = s.propagation.reduce((n, b) => n + b.acknowledgements, 0);
      const worstP99 = s.propagation.reduce((m, b) => Math.max(m, b.p99Ms ?? 0), 0);
      const time = { starts: s.signIns.map((b) => b.start), bucketMs: s.bucketMs };
      const window = (i: number) => ({ from: time.starts[i] ?? s.from, to: (time.starts[i] ?? s.from) + s.bucketMs });
      replace(
        box,
        s.truncated
          ? h(
              'p',
              { class: 'error' },
              'Too many events to count them all; the pictures show the first 50 000 of each kind.',
            )
          : null,
        h(
          'div',
          { class: 'grid' },
          barChart({
            id: 'chart-sign-ins',
            title: `Sign-ins and failures ${per(range.bucketMinutes)} (${timeZone()})`,
            summary: `${signInTotal} sign-ins (new or resumed) and ${failTotal} failed sign-ins ${range.phrase}.`,
            categories: [],
            time,
            series: [
              { label: 'sign-ins', className: 'bar-ok', values: s.signIns.map((b) => b.success) },
              { label: 'failures', className: 'bar-bad', values: s.signIns.map((b) => b.failure) },
            ],
            link: (series, i) =>
              series === 0
                ? audit({ type: 'session-established,session-resumed', origin: 'backend', ...window(i) })
                : audit({ type: 'sign-in-failed', ...window(i) }),
            empty: `No sign-ins and no failures ${range.phrase}.`,
          }),
          barChart({
            id: 'chart-step-ups',
            title: 'Step-ups by action',
            summary:
              s.stepUpsByAction.length === 0
                ? 'No step-ups.'
                : `Step-ups by action: ${s.stepUpsByAction.map((a) => `${a.action} ${a.success} passed, ${a.failure} failed`).join('; ')}.`,
            categories: s.stepUpsByAction.map((a) => a.action),
            series: [
              { label: 'passed', className: 'bar-accent', values: s.stepUpsByAction.map((a) => a.success) },
              { label: 'failed', className: 'bar-bad', values: s.stepUpsByAction.map((a) => a.failure) },
            ],
            link: (series) =>
              audit({ type: series === 0 ? 'session-stepped-up' : 'step-up-failed', from: s.from, to: s.to }),
            empty: `No step-ups ${range.phrase}.`,
          }),
          barChart({
            id: 'chart-propagation',
            title: `Revocation propagation ${per(range.bucketMinutes)}, p50 and p99 (${timeZone()})`,
            summary:
              acks === 0
                ? 'No console acknowledged a revocation in this range.'
                : `${acks} console acknowledgements of revocations; the worst p99 of a period was ${worstP99} ms.`,
            categories: [],
            time: { starts: s.propagation.map((b) => b.start), bucketMs: s.bucketMs },
            series: [
              { label: 'p50', className: 'bar-accent', values: s.propagation.map((b) => b.p50Ms ?? 0) },
              { label: 'p99', className: 'bar-warn', values: s.propagation.map((b) => b.p99Ms ?? 0) },
            ],
            unit: ' ms',
            link: (_, i) =>
              `#/revocations?${new URLSearchParams({ from: String(window(i).from), to: String(window(i).to) }).toString()}`,
            empty: `No revocation reached a connected console ${range.phrase}.`,
          }),
          barChart({
            id: 'chart-revocations',
            title: 'Revocation propagation (slowest console acknowledgement)',
            summary:
              s.revocations.length === 0
                ? 'No revocations.'
                : `${s.revocations.length} revocations; the slowest reached its last console in ${slowest} ms.`,
            categories: s.revocations.map((r) => `#${r.epoch}`),
            series: [
              {
                label: 'ms to the slowest acknowledgement',
                className: 'bar-accent',
                // An acknowledgement within the same millisecond still gets a bar (drawn as 1 ms); none, no bar.
                values: s.revocations.map((r) => (r.maxAckMs === null ? 0 : Math.max(1, r.maxAckMs))),
              },
            ],
            unit: ' ms',
            link: (_, i) => {
              const r = s.revocations[i];
              return r === undefined
                ? undefined
                : `#/revocations?kind=${r.kind}&target=${encodeURIComponent(r.targetId)}`;
            },
            empty: `No revocation reached a connected console ${range.phrase}.`,
          }),
          barChart({
            id: 'chart-consoles',
            title: 'Consoles by state (now)',
            summary: `${s.consoles.online} online, ${s.consoles.offline} offline, ${s.consoles.revoked} revoked.`,
            categories: ['online', 'offline', 'revoked'],
            series: [
              {
                label: 'consoles',
                className: 'bar-muted',
                values: [s.consoles.online, s.consoles.offline, s.consoles.revoked],
              },
            ],
            link: (_, i) => (i === 2 ? '#/consoles?state=revoked' : '#/consoles?state=active'),
            empty: 'No console is enrolled yet.',
          }),
        ),
      );
    },
    (error: unknown) => replace(box, errorBox(error)),
  );
};
