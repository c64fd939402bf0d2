import { api, endpoint } from './api.js';
import { barChart } from './charts.js';
import { announce, errorBox, fmtTime, h, pill, replace, table } from './dom.js';
import { oneTimeSecret } from './one-time-secret.js';
import type { Names } from './paged-table.js';
import type { View } from './view.js';

/** One break-glass grant as `GET /v1/admin/break-glass` lists it (docs/break-glass.md). */
interface Grant {
  id: string;
  operatorId: string;
  consoleId: string;
  site: string | null;
  method: string;
  approvedBy: string;
  reason: string;
  issuedAt: number;
  usedAt: number | null;
  sessionId: string | null;
  signedOffAt: number | null;
  signedOffBy?: string | null;
  signOffNote?: string | null;
}

const METHOD: Record<string, string> = {
  'supervisor-tap': 'supervisor’s tap',
  'admin-code': 'code from IT',
};

/** Who approved, as a reviewer reads it: "supervisor op_sam" or "admin admin:…". */
function approver(grant: Grant): string {
  return grant.approvedBy.startsWith('operator:')
    ? `supervisor ${grant.approvedBy.slice('operator:'.length)}`
    : grant.approvedBy;
}

/**
 * Break-glass review (issue 14 item 7): every temporary access given without the operator's key,
 * with who approved it and how, waits here until an admin signs it off with a note; "all" shows the
 * last 30 days, signed off or not. An admin can also issue a one-time code for an operator on a console.
 */
export const breakGlassView: View = (main) => {
  let all = false;
  const list = h('div', { id: 'break-glass-list' }, h('p', { class: 'muted' }, 'Loading break-glass grants…'));
  const message = h('div', { id: 'break-glass-message' });
  const toggle = h(
    'button',
    { type: 'button', id: 'break-glass-all', 'aria-pressed': 'false' },
    'Show the last 30 days',
  );
  toggle.addEventListener('click', () => {
    all = !all;
    toggle.setAttribute('aria-pressed', String(all));
    toggle.textContent = all ? 'Show only those waiting for review' : 'Show the last 30 days';
    void load();
  });

  const load = async () => {
    try {
      const { grants } = await api<{ grants: Grant[] }>(...endpoint('adminBreakGlass', {}, all ? { all: 'true' } : {}));
      // Names, not ids: looked up for the grants shown only (never the whole estate's lists).
      const { names } = await api<{ names: Names }>(
        ...endpoint(
          'adminNames',
          {},
          {
            operators: [...new Set(grants.map((g) => g.operatorId))].slice(0, 200).join(','),
            consoles: [...new Set(grants.map((g) => g.consoleId))].slice(0, 200).join(','),
          },
        ),
      );
      replace(
        list,
        table(
          all ? 'Break-glass grants of the last 30 days' : 'Break-glass grants waiting for review',
          ['operator', 'console', 'site', 'how', 'approved by', 'reason', 'issued', 'session', 'review'],
          grants.map((g) => [
            h(
              'a',
              { href: `#/operators/${encodeURIComponent(g.operatorId)}` },
              names.operators[g.operatorId] ?? g.operatorId,
              names.operators[g.operatorId] === undefined ? '' : h('span', { class: 'muted' }, ` ${g.operatorId}`),
            ),
            h(
              'a',
              { href: `#/consoles/${encodeURIComponent(g.consoleId)}` },
              names.consoles[g.consoleId]?.name ?? g.consoleId,
            ),
            g.site ?? '—',
            METHOD[g.method] ?? g.method,
            approver(g),
            g.reason,
            fmtTime(g.issuedAt),
            g.sessionId === null
              ? pill('not used', 'warn')
              : h('span', { title: g.sessionId }, `started ${fmtTime(g.usedAt)}`),
            g.signedOffAt === null
              ? signOffForm(g)
              : pill(`signed off ${fmtTime(g.signedOffAt)} by ${g.signedOffBy ?? '?'}: ${g.signOffNote ?? ''}`, 'good'),
          ]),
          all
            ? 'No break-glass access in the last 30 days.'
            : 'Nothing to review: every break-glass access has been signed off.',
        ),
      );
    } catch (error) {
      replace(list, errorBox(error));
    }
  };

  const signOffForm = (g: Grant) => {
    const note = h('input', {
      id: `sign-off-note-${g.id}`,
      maxlength: 500,
      required: true,
      placeholder: 'what you checked',
      'aria-label': `Review note for ${g.operatorId}`,
    });
    const form = h(
      'form',
      { class: 'row', 'data-grant': g.id },
      note,
      h('button', { type: 'submit', class: 'primary' }, 'Sign off'),
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      void (async () => {
        if (note.value.trim() === '') {
          replace(message, h('p', { class: 'error', role: 'alert' }, 'Write what you checked before signing off.'));
          note.focus();
          return;
        }
        try {
          await api(...endpoint('adminBreakGlassSignOff', { id: g.id }), { note: note.value.trim() });
          replace(message);
          announce(`Break-glass access of ${g.operatorId} signed off`);
          await load();
        } catch (error) {
          replace(message, errorBox(error));
        }
      })();
    });
    return form;
  };

  const operator = h('input', { id: 'break-glass-operator', required: true, maxlength: 128 });
  const consoleId = h('input', { id: 'break-glass-console', required: true, maxlength: 128 });
  const reason = h('input', {
    id: 'break-glass-reason',
    required: true,
    maxlength: 500,
    placeholder: 'key left at home',
  });
  const issue = h(
    'form',
    { class: 'row', 'aria-label': 'Issue a temporary access code' },
    h('label', { for: 'break-glass-operator' }, 'Operator ID', operator),
    h('label', { for: 'break-glass-console' }, 'Console ID', consoleId),
    h('label', { for: 'break-glass-reason' }, 'Reason', reason),
    h('button', { type: 'submit', class: 'primary', id: 'break-glass-issue' }, 'Issue code'),
  );
  issue.addEventListener('submit', (e) => {
    e.preventDefault();
    void (async () => {
      try {
        const { code, expiresAt } = await api<{ code: string; expiresAt: number }>(
          ...endpoint('adminBreakGlassCodeIssue'),
          { operatorId: operator.value.trim(), consoleId: consoleId.value.trim(), reason: reason.value.trim() },
        );
        replace(
          message,
          oneTimeSecret({
            title: `Temporary access code for ${operator.value.trim()}`,
            value: code,
            expiresAt,
            id: 'new-break-glass-code',
            instructions:
              'Read it to the operator at that console: they choose “Forgot your key?” and enter it with their operator ID. It works once, on that console only.',
          }),
        );
        await load();
      } catch (error) {
        replace(message, errorBox(error));
      }
    })();
  });

  replace(
    main,
    h('h1', {}, 'Break-glass'),
    h(
      'section',
      { class: 'card' },
      h('h2', {}, 'Review'),
      h(
        'p',
        { class: 'muted' },
        'Temporary access without the operator’s key: approved by a supervisor’s tap on the console or by a code from IT, capped by the policy’s breakGlass section. Each one waits here until someone signs it off.',
      ),
      toggle,
      list,
      message,
    ),
    h('section', { class: 'card' }, h('h2', {}, 'Issue a temporary access code'), issue),
  );
  void load();
};

/**
 * For the pictures page: break-glass sessions of the last 30 days per operator and per site (the
 * policy limits both, per day), each bar leading to the review list.
 */
export function breakGlassPictures(): HTMLElement {
  const box = h('div', { class: 'grid', id: 'break-glass-pictures' }, h('p', { class: 'muted' }, 'Loading…'));
  void api<{ grants: Grant[] }>(...endpoint('adminBreakGlass', {}, { all: 'true' })).then(
    ({ grants }) => {
      const used = grants.filter((g) => g.sessionId !== null);
      const count = (key: (g: Grant) => string) => {
        const counts = new Map<string, number>();
        for (const g of used) counts.set(key(g), (counts.get(key(g)) ?? 0) + 1);
        return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, 20);
      };
      const chart = (id: string, what: string, rows: [string, number][]) =>
        barChart({
          id,
          title: `Break-glass sessions per ${what} (last 30 days)`,
          summary:
            rows.length === 0
              ? 'No break-glass session in the last 30 days.'
              : `Break-glass sessions per ${what}: ${rows.map(([k, n]) => `${k} ${n}`).join('; ')}.`,
          categories: rows.map(([k]) => k),
          series: [{ label: 'break-glass sessions', className: 'bar-warn', values: rows.map(([, n]) => n) }],
          link: () => '#/break-glass',
          empty: 'No break-glass session in the last 30 days.',
        });
      replace(
        box,
        chart(
          'chart-break-glass-operators',
          'operator',
          count((g) => g.operatorId),
        ),
        chart(
          'chart-break-glass-sites',
          'site',
          count((g) => g.site ?? '(no site)'),
        ),
      );
    },
    (error: unknown) => replace(box, errorBox(error)),
  );
  return box;
}
