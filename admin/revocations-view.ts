import { fmtTime, h, pill, replace, timeZone } from './dom.js';
import { pagedTable, type Names } from './paged-table.js';
import type { View } from './view.js';

interface RevocationRow {
  epoch: number;
  kind: string;
  targetId: string;
  operatorId: string | null;
  consoleId: string | null;
  reason: string;
  actor: string;
  at: number;
  deliveries: { sent: number; acknowledged: number; maxAckMs: number | null };
}

/** What was revoked, by name where the row names an operator or a console. */
function target(r: RevocationRow, names: Names): Node | string {
  const operator = r.operatorId === null ? undefined : names.operators[r.operatorId];
  const consoleName = r.consoleId === null ? undefined : names.consoles[r.consoleId]?.name;
  switch (r.kind) {
    case 'operator':
      return h('a', { href: `#/operators/${encodeURIComponent(r.targetId)}` }, operator ?? r.targetId);
    case 'console':
      return h('a', { href: `#/consoles/${encodeURIComponent(r.targetId)}` }, consoleName ?? r.targetId);
    case 'credential':
      return `a passkey of ${operator ?? r.operatorId ?? 'an operator'}`;
    case 'session':
      return `a session of ${operator ?? r.operatorId ?? 'an operator'}${consoleName === undefined ? '' : ` on ${consoleName}`}`;
    default:
      return r.targetId;
  }
}

/** How far it got: acknowledged by how many of the consoles it was sent to, and the slowest. */
function reached(r: RevocationRow): Node | string {
  const d = r.deliveries;
  if (d.sent === 0) return 'no console was connected; each gets it when it reconnects';
  const text = `${d.acknowledged} of ${d.sent} console(s)${d.maxAckMs === null ? '' : `, slowest ${d.maxAckMs} ms`}`;
  return pill(text, d.acknowledged === d.sent ? 'good' : 'warn');
}

/**
 * Revocations (issue 12: every table searched, filtered and paged): every revocation, newest first, with
 * what it revoked by name, who did it and why, and how far it reached the consoles, a page at a time
 * (`GET /v1/admin/revocations`, cursor paging). The target filter takes an operator's or a console's
 * name as well as an id.
 */
export const revocationsView: View = (main) => {
  replace(
    main,
    h('h1', {}, 'Revocations'),
    h(
      'section',
      { class: 'card' },
      h('h2', {}, 'Every revocation'),
      h(
        'p',
        { class: 'muted' },
        `Newest first; times in ${timeZone()}. “Reached” counts the consoles that acknowledged it among those it was sent to while connected.`,
      ),
      pagedTable<RevocationRow>({
        id: 'revocations',
        route: 'adminRevocations',
        listKey: 'revocations',
        caption: 'Revocations',
        searchLabel: 'Revoked operator or console',
        searchKey: 'target',
        searchPlaceholder: 'name or id',
        filters: [
          {
            key: 'kind',
            label: 'What',
            options: [
              ['operator', 'operator'],
              ['credential', 'passkey'],
              ['console', 'console'],
              ['session', 'session'],
              ['service', 'service'],
            ],
          },
        ],
        defaultSort: 'epoch',
        defaultOrder: 'desc',
        columns: [
          { label: '#', sort: 'epoch', cell: (r) => String(r.epoch) },
          { label: 'when', cell: (r) => fmtTime(r.at) },
          { label: 'what', cell: (r) => (r.kind === 'credential' ? 'passkey' : r.kind) },
          { label: 'revoked', cell: target },
          { label: 'reason', cell: (r) => r.reason },
          { label: 'by', cell: (r, names) => actorName(r.actor, names) },
          { label: 'reached', cell: reached },
        ],
        empty: 'Nothing has been revoked yet.',
      }),
    ),
  );
};

function actorName(actor: string, names: Names): string {
  const m = /^operator:(.+)$/.exec(actor);
  return m?.[1] === undefined ? actor : (names.operators[m[1]] ?? m[1]);
}
