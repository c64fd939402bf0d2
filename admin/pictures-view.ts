import { api, endpoint } from './api.js';
import { errorBox, h, replace } from './dom.js';
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

const hhmm = (ms: number) => new Date(ms).toTimeString().slice(0, 5);

/** Pictures: sign-ins and failures over time, step-ups by action, revocation propagation, consoles by state. */
export const picturesView: View = (main) => {
  const box = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  replace(main, h('h1', {}, 'Pictures (last 24 hours)'), box);
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
            title: 'Sign-ins and failures per hour',
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
