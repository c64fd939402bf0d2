import { serverNow } from './server-clock.js';
import { api, endpoint } from './api.js';
import { barChart } from './charts.js';
import { announce, errorBox, fmtTime, h, pill, replace } from './dom.js';
import { oneTimeSecret } from './one-time-secret.js';
import { hashQuery, pagedTable, type Names } from './paged-table.js';
import { entityPicker } from './picker.js';
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

/**
 * Why a sign-off was refused, in plain words: a session still running is reviewed once it has ended
 * (`BREAK_GLASS_SESSION_ACTIVE`), and the operator's page is where an admin ends it now.
 */
function signOffRefusal(error: unknown, grant: Grant, operatorName: string): HTMLElement {
  if (!(error instanceof Error && 'code' in error && error.code === 'BREAK_GLASS_SESSION_ACTIVE'))
    return errorBox(error);
  return h(
    'div',
    { class: 'error', role: 'alert' },
    `Not signed off: the temporary access of ${operatorName} is still running, and a review covers all it did. Sign it off once it has ended; to end it now, open `,
    h('a', { href: `#/operators/${encodeURIComponent(grant.operatorId)}` }, operatorName),
    ' and end or revoke the session. (BREAK_GLASS_SESSION_ACTIVE)',
  );
}

/** A person by name (their id in the tooltip), or the id when the name is unknown. */
function person(id: string, names: Names): HTMLElement {
  const name = names.operators[id];
  return h('span', { title: id }, name ?? id);
}

/** Who approved, as a reviewer reads it: "supervisor Sam Okafor" (a tap) or "IT: Grace Admin" (a code). */
function approver(grant: Grant, names: Names): (HTMLElement | string)[] {
  const id = grant.approvedBy.replace(/^operator:/, '');
  if (grant.approvedBy === 'admin:bootstrap') return ['IT: the bootstrap token'];
  return [grant.method === 'supervisor-tap' ? 'supervisor ' : 'IT: ', person(id, names)];
}

const DAY_MS = 86_400_000;

/**
 * Break-glass review (issue 14 item 7): every temporary access given without the operator's key,
 * with who approved it and how, waits here until an admin signs it off with a note; "the last 30
 * days" shows those too, signed off or not. Searched (operator, console or site), filtered and paged
 * by the admin API; the mode is `?all=true` in the address, the table's place `grants.…`. An admin
 * can also issue a one-time code for an operator on a console.
 */
export const breakGlassView: View = (main) => {
  const all = hashQuery().get('all') === 'true';
  const list = h('div', { id: 'break-glass-list' });
  const message = h('div', { id: 'break-glass-message' });
  const toggle = h(
    'button',
    { type: 'button', id: 'break-glass-all', 'aria-pressed': String(all) },
    all ? 'Show only those waiting for review' : 'Show the last 30 days',
  );
  // A new mode starts on its first page, with no search.
  toggle.addEventListener('click', () => (location.hash = all ? '#/break-glass' : '#/break-glass?all=true'));

  const load = () =>
    replace(
      list,
      pagedTable<Grant>({
        id: 'grants',
        scope: 'grants',
        route: 'adminBreakGlass',
        listKey: 'grants',
        caption: all ? 'Break-glass grants of the last 30 days' : 'Break-glass grants waiting for review',
        fixed: all ? { from: String(serverNow() - 30 * DAY_MS) } : { state: 'awaiting' },
        searchLabel: 'Search grants',
        searchPlaceholder: 'operator, console or site',
        filters: [
          {
            key: 'method',
            label: 'How',
            options: [
              ['supervisor-tap', METHOD['supervisor-tap'] ?? ''],
              ['admin-code', METHOD['admin-code'] ?? ''],
            ],
          },
          { key: 'operator', label: 'Operator', picker: 'operator' },
          { key: 'site', label: 'Site', placeholder: 'e.g. Leeds' },
        ],
        defaultSort: 'issued',
        defaultOrder: 'desc',
        limit: 25,
        columns: [
          {
            label: 'operator',
            cell: (g, names) =>
              h(
                'a',
                { href: `#/operators/${encodeURIComponent(g.operatorId)}`, title: g.operatorId },
                names.operators[g.operatorId] ?? g.operatorId,
              ),
          },
          {
            label: 'console',
            cell: (g, names) => {
              const c = names.consoles[g.consoleId];
              return h(
                'a',
                { href: `#/consoles/${encodeURIComponent(g.consoleId)}`, title: g.consoleId },
                c?.name ?? g.consoleId,
              );
            },
          },
          { label: 'site', cell: (g) => g.site ?? '—' },
          { label: 'how', cell: (g) => METHOD[g.method] ?? g.method },
          { label: 'approved by', cell: (g, names) => approver(g, names) },
          { label: 'reason', cell: (g) => g.reason },
          { label: 'issued', sort: 'issued', cell: (g) => fmtTime(g.issuedAt) },
          {
            label: 'session',
            cell: (g) =>
              g.sessionId === null
                ? pill('not used', 'warn')
                : h('span', { title: g.sessionId }, `started ${fmtTime(g.usedAt)}`),
          },
          {
            label: 'review',
            cell: (g, names) =>
              g.signedOffAt === null
                ? signOffForm(g, names.operators[g.operatorId] ?? g.operatorId)
                : pill(
                    `signed off ${fmtTime(g.signedOffAt)} by ${
                      g.signedOffBy === null || g.signedOffBy === undefined
                        ? '?'
                        : (names.operators[g.signedOffBy.replace(/^operator:/, '')] ?? g.signedOffBy)
                    }: ${g.signOffNote ?? ''}`,
                    'good',
                  ),
          },
        ],
        empty: all
          ? 'No break-glass access in the last 30 days.'
          : 'Nothing to review: every break-glass access has been signed off.',
      }),
    );

  const signOffForm = (g: Grant, operatorName: string) => {
    const note = h('input', {
      id: `sign-off-note-${g.id}`,
      maxlength: 500,
      required: true,
      placeholder: 'what you checked',
      'aria-label': `Review note for ${operatorName}`,
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
          announce(`Break-glass access of ${operatorName} signed off`);
          load();
        } catch (error) {
          replace(message, signOffRefusal(error, g, operatorName));
        }
      })();
    });
    return form;
  };

  // Chosen by name (search-as-you-type, a few matches at a time); the id goes to the API.
  let operatorName: string | undefined;
  const operator = entityPicker({
    id: 'break-glass-operator',
    kind: 'operator',
    placeholder: 'type a name…',
    onChoose: (_id, label) => (operatorName = label),
  });
  const consoleId = entityPicker({ id: 'break-glass-console', kind: 'console', placeholder: 'type a name…' });
  operator.input.required = true;
  operator.input.addEventListener('input', () => (operatorName = undefined));
  consoleId.input.required = true;
  const reason = h('input', {
    id: 'break-glass-reason',
    required: true,
    maxlength: 500,
    placeholder: 'key left at home',
  });
  const issue = h(
    'form',
    { class: 'row', 'aria-label': 'Issue a temporary access code' },
    h('label', { for: 'break-glass-operator' }, 'Operator', operator.element),
    h('label', { for: 'break-glass-console' }, 'Console', consoleId.element),
    h('label', { for: 'break-glass-reason' }, 'Reason', reason),
    h('button', { type: 'submit', class: 'primary', id: 'break-glass-issue' }, 'Issue code'),
  );
  issue.addEventListener('submit', (e) => {
    e.preventDefault();
    void (async () => {
      try {
        const { code, expiresAt } = await api<{ code: string; expiresAt: number }>(
          ...endpoint('adminBreakGlassCodeIssue'),
          { operatorId: operator.value().trim(), consoleId: consoleId.value().trim(), reason: reason.value.trim() },
        );
        replace(
          message,
          oneTimeSecret({
            title: `Temporary access code for ${operatorName ?? operator.value().trim()}`,
            value: code,
            expiresAt,
            id: 'new-break-glass-code',
            instructions:
              'Read it to the operator at that console: they choose “Forgot your key?” and enter it with their operator ID. It works once, on that console only.',
          }),
        );
        load();
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
  load();
};

/** At most this many break-glass sessions are counted for the pictures (the newest of the 30 days). */
const PICTURE_GRANTS = 1000;

/**
 * For the pictures page: break-glass sessions of the last 30 days per operator (by name) and per
 * site (the policy limits both, per day), each bar leading to those grants in the review list. One
 * page of the admin API's list (sessions started, newest first), with the names of its operators.
 */
export function breakGlassPictures(): HTMLElement {
  const box = h('div', { class: 'grid', id: 'break-glass-pictures' }, h('p', { class: 'muted' }, 'Loading…'));
  const from = serverNow() - 30 * DAY_MS;
  void api<{ grants: Grant[]; names: Names; total: number; totalAtLeast: boolean }>(
    ...endpoint('adminBreakGlass', {}, { used: 'true', from, limit: PICTURE_GRANTS }),
  ).then(
    ({ grants, names, total }) => {
      const count = (key: (g: Grant) => string) => {
        const counts = new Map<string, number>();
        for (const g of grants) counts.set(key(g), (counts.get(key(g)) ?? 0) + 1);
        return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, 20);
      };
      const partly = total > grants.length ? ` (the newest ${grants.length.toLocaleString('en-GB')})` : '';
      const chart = (
        id: string,
        what: string,
        rows: [string, number][],
        label: (key: string) => string,
        link: (key: string) => string,
      ) =>
        barChart({
          id,
          title: `Break-glass sessions per ${what} (last 30 days)${partly}`,
          summary:
            rows.length === 0
              ? 'No break-glass session in the last 30 days.'
              : `Break-glass sessions per ${what}: ${rows.map(([k, n]) => `${label(k)} ${n}`).join('; ')}.`,
          categories: rows.map(([k]) => label(k)),
          series: [{ label: 'break-glass sessions', className: 'bar-warn', values: rows.map(([, n]) => n) }],
          link: (_, i) => link(rows[i]?.[0] ?? ''),
          empty: 'No break-glass session in the last 30 days.',
        });
      // A bar leads to the grants it counts: the review list of the last 30 days, filtered.
      const review = (key: string, value: string) =>
        `#/break-glass?all=true&grants.${key}=${encodeURIComponent(value)}`;
      replace(
        box,
        chart(
          'chart-break-glass-operators',
          'operator',
          count((g) => g.operatorId),
          // By name; the id only when the operator has none (deleted since).
          (id) => names.operators[id] ?? id,
          (id) => review('operator', id),
        ),
        chart(
          'chart-break-glass-sites',
          'site',
          count((g) => g.site ?? '(no site)'),
          (site) => site,
          (site) => (site === '(no site)' ? '#/break-glass?all=true' : review('site', site)),
        ),
      );
    },
    (error: unknown) => replace(box, errorBox(error)),
  );
  return box;
}
