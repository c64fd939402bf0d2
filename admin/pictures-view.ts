import { api, endpoint } from './api.js';
import { errorBox, fmtAgo, fmtTime, h, pill, replace, table, timeZone } from './dom.js';
import { barChart } from './charts.js';
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

/** The hour on the time axis, in the admin's time zone (the chart's title names it). */
const hhmm = (ms: number) => fmtTime(ms, { zone: false }).slice(11, 16);

/** Pictures: sign-ins and failures over time, step-ups by action, revocation propagation, consoles by state. */
export const picturesView: View = (main) => {
  const box = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  replace(main, h('h1', {}, 'Pictures (last 24 hours)'), box, nodesSection());
  void api<Stats>(...endpoint('adminStats', {}, { bucketMinutes: 60 })).then(
    (s) => {
      const signInTotal = s.signIns.reduce((n, b) => n + b.success, 0);
      const failTotal = s.signIns.reduce((n, b) => n + b.failure, 0);
      const slowest = s.revocations.reduce((m, r) => Math.max(m, r.maxAckMs ?? 0), 0);
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
            title: `Sign-ins and failures per hour (${timeZone()})`,
            summary: `${signInTotal} sign-ins (new or resumed) and ${failTotal} failed sign-ins in the last 24 hours.`,
            categories: s.signIns.map((b) => hhmm(b.start)),
            series: [
              { label: 'sign-ins', className: 'bar-ok', values: s.signIns.map((b) => b.success) },
              { label: 'failures', className: 'bar-bad', values: s.signIns.map((b) => b.failure) },
            ],
            empty: 'No sign-ins and no failures in the last 24 hours.',
          }),
          barChart({
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
            empty: 'No step-ups in the last 24 hours.',
          }),
          barChart({
            title: 'Revocation propagation (slowest console acknowledgement)',
            summary:
              s.revocations.length === 0
                ? 'No revocations.'
                : `${s.revocations.length} revocations; the slowest reached its last console in ${slowest} ms.`,
            categories: s.revocations.map((r) => `#${r.epoch}`),
            series: [
              {
                label: 'ms to acknowledge',
                className: 'bar-accent',
                // An acknowledgement within the same millisecond still gets a bar (drawn as 1 ms); none, no bar.
                values: s.revocations.map((r) => (r.maxAckMs === null ? 0 : Math.max(1, r.maxAckMs))),
              },
            ],
            unit: ' ms',
            empty: 'No revocation reached a connected console in the last 24 hours.',
          }),
          barChart({
            title: 'Consoles by state',
            summary: `${s.consoles.online} online, ${s.consoles.offline} offline, ${s.consoles.revoked} revoked.`,
            categories: ['online', 'offline', 'revoked'],
            series: [
              {
                label: 'consoles',
                className: 'bar-muted',
                values: [s.consoles.online, s.consoles.offline, s.consoles.revoked],
              },
            ],
            empty: 'No console is enrolled yet.',
          }),
        ),
      );
    },
    (error: unknown) => replace(box, errorBox(error)),
  );
};
