import { fmtTime, h, pill, replace, timeZone } from './dom.js';
import { pagedTable } from './paged-table.js';
import type { View } from './view.js';

interface SessionRow {
  id: string;
  operatorId: string;
  operatorName: string | null;
  consoleId: string;
  consoleName: string | null;
  consoleSite: string | null;
  channel: string;
  level: string;
  startedAt: number;
  expiresAt: number;
  state: string;
  endedAt: number | null;
  endReason: string | null;
}

const STATE_TONE: Record<string, 'good' | 'warn' | 'bad' | ''> = {
  active: 'good',
  suspended: 'warn',
  revoked: 'bad',
  expired: '',
  ended: '',
};

/**
 * Sessions (issue 12: search, sort, filters and paging on every table): every operator session of the
 * estate, newest first, served a page at a time by the admin API (`GET /v1/admin/sessions`, cursor
 * paging). Filters take names: an operator's or a console's name, a site. Each row links to its
 * operator and console, where a live session can be ended or revoked.
 */
export const sessionsView: View = (main) => {
  replace(
    main,
    h('h1', {}, 'Sessions'),
    h(
      'section',
      { class: 'card' },
      h('h2', {}, 'Every session'),
      h(
        'p',
        { class: 'muted' },
        `Newest first. Search by an operator's or a console's name or a site; times in ${timeZone()}. To end or revoke a live session, open its operator.`,
      ),
      pagedTable<SessionRow>({
        id: 'sessions',
        route: 'adminSessions',
        listKey: 'sessions',
        caption: 'Sessions',
        searchLabel: 'Search sessions',
        searchPlaceholder: 'operator or console name',
        filters: [
          {
            key: 'state',
            label: 'State',
            options: [
              ['active', 'active'],
              ['suspended', 'suspended'],
              ['ended', 'ended'],
              ['expired', 'expired'],
              ['revoked', 'revoked'],
            ],
          },
          { key: 'operator', label: 'Operator', placeholder: 'type a name…', picker: 'operator' },
          { key: 'console', label: 'Console', placeholder: 'type a name…', picker: 'console' },
          { key: 'site', label: 'Site', placeholder: 'exact site' },
        ],
        defaultSort: 'started',
        defaultOrder: 'desc',
        columns: [
          {
            label: 'operator',
            cell: (s) =>
              h('a', { href: `#/operators/${encodeURIComponent(s.operatorId)}` }, s.operatorName ?? s.operatorId),
          },
          {
            label: 'console',
            cell: (s) =>
              h('a', { href: `#/consoles/${encodeURIComponent(s.consoleId)}` }, s.consoleName ?? s.consoleId),
          },
          { label: 'site', cell: (s) => s.consoleSite ?? '—' },
          { label: 'channel', cell: (s) => s.channel },
          { label: 'level', cell: (s) => s.level },
          { label: 'state', cell: (s) => pill(s.state, STATE_TONE[s.state] ?? '') },
          { label: 'started', sort: 'started', cell: (s) => fmtTime(s.startedAt) },
          {
            label: 'ends / ended',
            sort: 'expires',
            cell: (s) =>
              s.endedAt === null
                ? fmtTime(s.expiresAt)
                : [fmtTime(s.endedAt), s.endReason === null ? '' : ` (${s.endReason})`],
          },
        ],
        empty: 'No operator has signed in yet.',
      }),
    ),
  );
};
